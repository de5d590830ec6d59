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

fn write_value(value: &Value, out: &mut BytesMut) -> serde_json::Result<()> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(n, out)?,
        Value::String(s) => write_str(s, out),
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
    let mut digits = itoa::Buffer::new();
    if let Some(u) = n.as_u64() {
        out.extend_from_slice(digits.format(u).as_bytes());
    } else if let Some(i) = n.as_i64() {
        out.extend_from_slice(digits.format(i).as_bytes());
    } else {
        serde_json::to_writer(out.writer(), n)?;
    }
    Ok(())
}

/// A JSON string: `"`, `\` and the control characters escaped, as `serde_json` does.
fn write_str(s: &str, out: &mut BytesMut) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.put_u8(b'"');
    let mut plain = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let short = match c {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x0c => b'f',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x00..=0x1f => b'u',
            _ => continue,
        };
        out.extend_from_slice(bytes.get(plain..i).unwrap_or_default());
        plain = i + 1;
        if short == b'u' {
            let hi = HEX.get(usize::from(c >> 4)).copied().unwrap_or(b'0');
            let lo = HEX.get(usize::from(c & 0xf)).copied().unwrap_or(b'0');
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hi, lo]);
        } else {
            out.extend_from_slice(&[b'\\', short]);
        }
    }
    out.extend_from_slice(bytes.get(plain..).unwrap_or_default());
    out.put_u8(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
        #![proptest_config(ProptestConfig::with_cases(2000))]

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
    fn every_control_character() {
        let s: String = (0u8..0x80).map(char::from).collect();
        let mut m = Map::new();
        m.insert(s.clone(), Value::String(s));
        let mut out = BytesMut::new();
        write_members(&m, &mut out).unwrap();
        assert_eq!(&out[..], serde_json::to_string(&m).unwrap().as_bytes());
    }
}
