//! The canonical header text (§9), written directly into the output buffer.
//!
//! Byte for byte what `serde_json::to_writer` writes for the same members (compact, members
//! in order, `"`, `\` and control characters escaped the way `serde_json` escapes them,
//! nothing else), without going through `io::Write` one token at a time. Fractions and
//! exponents, rare in headers, are still formatted by `serde_json`. The tests below check
//! the equality on arbitrary JSON values.

use bytes::{BufMut, BytesMut};
use serde_json::{Map, Number, Value};

/// Appends `members` as one JSON object.
pub(crate) fn write_members(
    members: &Map<String, Value>,
    out: &mut BytesMut,
) -> serde_json::Result<()> {
    out.reserve(2 + members.len() * 24);
    out.put_u8(b'{');
    for (i, (name, value)) in members.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        write_str(name, out);
        out.put_u8(b':');
        write_value(value, out)?;
    }
    out.put_u8(b'}');
    Ok(())
}

pub(crate) fn write_value(value: &Value, out: &mut BytesMut) -> serde_json::Result<()> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(n, out)?,
        Value::String(s) => {
            write_str(s, out);
        }
        Value::Array(items) => {
            out.put_u8(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.put_u8(b',');
                }
                write_value(item, out)?;
            }
            out.put_u8(b']');
        }
        Value::Object(members) => write_members(members, out)?,
    }
    Ok(())
}

fn write_number(n: &Number, out: &mut BytesMut) -> serde_json::Result<()> {
    if let Some(u) = n.as_u64() {
        write_int(out, false, u);
    } else if let Some(i) = n.as_i64() {
        write_int(out, i < 0, i.unsigned_abs());
    } else {
        serde_json::to_writer(out.writer(), n)?;
    }
    Ok(())
}

/// A short constant text (at most 16 octets), appended with one fixed-size copy: the whole
/// block is written and the extra octets cut off again, which costs a few instructions where a
/// call to `memcpy` for a few octets costs tens.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Block {
    bytes: [u8; Block::SIZE],
    len: usize,
}

impl Block {
    const SIZE: usize = 16;

    /// The block holding `text` (a longer text is a compile-time error where used in a
    /// `const`).
    pub(crate) const fn new(text: &[u8]) -> Block {
        assert!(text.len() <= Block::SIZE);
        let mut bytes = [0u8; Block::SIZE];
        let mut i = 0;
        while i < text.len() {
            bytes[i] = text[i];
            i += 1;
        }
        Block {
            bytes,
            len: text.len(),
        }
    }

    /// Appends the text.
    pub(crate) fn put(&self, out: &mut BytesMut) {
        out.reserve(Block::SIZE);
        let at = out.len();
        out.extend_from_slice(&self.bytes);
        out.truncate(at + self.len);
    }
}

/// Appends the decimal digits of `n`, after a `-` when `neg`: a single digit (`"v":1`) as
/// one octet, anything longer as `itoa` formats it.
pub(crate) fn write_int(out: &mut BytesMut, neg: bool, n: u64) {
    if neg {
        out.put_u8(b'-');
    }
    if n < 10 {
        out.put_u8(b'0' + n as u8);
    } else {
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }
}

/// How `serde_json` escapes each octet: 0 not at all, `u` as `\u00XX`, else `\` + it.
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = b'u';
        c += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// A JSON string: `"`, `\` and the control characters escaped, as `serde_json` does. Returns
/// whether any octet needed an escape.
pub(crate) fn write_str(s: &str, out: &mut BytesMut) -> bool {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut rest = s.as_bytes();
    out.reserve(rest.len() + 2);
    out.put_u8(b'"');
    if !needs_escape(rest) {
        out.extend_from_slice(rest);
        out.put_u8(b'"');
        return false;
    }
    // Runs of octets that need no escape, copied whole; usually the whole string.
    while let Some(at) = rest.iter().position(|&c| ESCAPE[usize::from(c)] != 0) {
        let (plain, tail) = rest.split_at(at);
        out.extend_from_slice(plain);
        let Some((&c, tail)) = tail.split_first() else {
            break;
        };
        match ESCAPE[usize::from(c)] {
            b'u' => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(c >> 4)],
                HEX[usize::from(c & 0xf)],
            ]),
            short => out.extend_from_slice(&[b'\\', short]),
        }
        rest = tail;
    }
    out.extend_from_slice(rest);
    out.put_u8(b'"');
    true
}

/// Whether any octet of `b` needs an escape (`"`, `\\` or a control character), eight
/// octets at a time.
pub(crate) fn needs_escape(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Nonzero when some octet of `w` is below `n` (n ≤ 0x80; exact as a yes/no answer).
    let below = |w: u64, n: u64| w.wrapping_sub(ONES * n) & !w & HIGH;
    let mut words = b.chunks_exact(8);
    for word in &mut words {
        let Ok(word) = <[u8; 8]>::try_from(word) else {
            return true;
        };
        let w = u64::from_le_bytes(word);
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        if below(w, 0x20) | below(quote, 1) | below(backslash, 1) != 0 {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&c| ESCAPE[usize::from(c)] != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn integers_are_written_as_itoa_writes_them() {
        let mut edges = vec![
            0u64,
            9,
            10,
            99,
            100,
            101,
            999,
            1000,
            u64::MAX,
            (1 << 53) - 1,
        ];
        edges.extend((0..20).map(|p| 10u64.pow(p)));
        edges.extend((1..20).map(|p| 10u64.pow(p) - 1));
        for n in edges {
            for neg in [false, true] {
                let mut out = BytesMut::from(&b"x"[..]);
                write_int(&mut out, neg, n);
                let want = format!("x{}{}", if neg { "-" } else { "" }, n);
                assert_eq!(std::str::from_utf8(&out).unwrap(), want);
            }
        }
    }

    proptest! {
        #[test]
        fn any_integer_is_written_as_itoa_writes_it(n in any::<u64>(), neg in any::<bool>()) {
            let mut out = BytesMut::new();
            write_int(&mut out, neg, n);
            let digits = itoa::Buffer::new().format(n).to_owned();
            let want = if neg { format!("-{digits}") } else { digits };
            prop_assert_eq!(&out[..], want.as_bytes());
        }
    }

    #[test]
    fn blocks_append_exactly_their_text() {
        for text in [&b""[..], b"v", b",\"body_len\":", b"0123456789abcdef"] {
            let mut out = BytesMut::from(&b"ab"[..]);
            Block::new(text).put(&mut out);
            assert_eq!(&out[..2], b"ab");
            assert_eq!(&out[2..], text);
        }
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter_map("finite", Number::from_f64)
                .prop_map(Value::Number),
            any::<String>().prop_map(Value::String),
            "[\\x00-\\x7f]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((any::<String>(), inner), 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::test_support::proptest_cases(2000)))]

        #[test]
        fn writes_what_serde_json_writes(
            members in prop::collection::vec(("[\\x00-\\x7f]{0,8}|\\PC{0,4}", value()), 0..8)
        ) {
            let members: Map<String, Value> = members.into_iter().collect();
            let mut out = BytesMut::new();
            write_members(&members, &mut out).unwrap();
            prop_assert_eq!(
                String::from_utf8_lossy(&out),
                serde_json::to_string(&members).unwrap()
            );
        }
    }

    #[test]
    fn needs_escape_finds_every_escaped_octet_anywhere() {
        for c in 0u8..=255 {
            for at in 0..19 {
                let mut b = vec![b'a'; 19];
                b[at] = c;
                assert_eq!(
                    needs_escape(&b),
                    ESCAPE[usize::from(c)] != 0,
                    "{c:#x} at {at}"
                );
            }
        }
        assert!(!needs_escape("sensor-42/temperature.bin é 你好".as_bytes()));
    }

    #[test]
    fn every_control_character() {
        let s: String = (0u8..0x80).map(char::from).collect();
        let mut m = Map::new();
        m.insert(s.clone(), Value::String(s));
        let mut out = BytesMut::new();
        write_members(&m, &mut out).unwrap();
        assert_eq!(&out[..], serde_json::to_string(&m).unwrap().as_bytes());
    }
}
