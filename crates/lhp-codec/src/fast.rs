//! The fast path of header validation (§4).
//!
//! One pass over the header text that accepts what peers actually send — a flat JSON object
//! whose values are strings, integers, booleans or `null` — and checks every rule of §4
//! without building a map: UTF-8 (checked by the caller), syntax, duplicate names, the
//! integer range, and the registered members (§4.4). It only ever *accepts*. Anything it is
//! not sure about (nested objects or arrays, fractions, exponents, escaped member names,
//! surrogate escapes, more than [`MAX_MEMBERS`] members) and every error go to the general
//! parser, [`crate::header::parse`], which decides and names the rule and the offset. So the
//! fast path can change how quickly a header is accepted, never whether it is, or which error
//! a bad one gets.
//!
//! The tests at the end of this file check that whenever this path accepts a text, the general parser
//! accepts it too, with the same members, body length and digests, and that a canonical text
//! is byte for byte what the encoder would write.

use crate::header::{parse_hex, Checked, ExpectedDigest, MAX_SAFE_INTEGER};
use crate::Profile;

/// Headers with more members than this take the general path.
pub(crate) const MAX_MEMBERS: usize = 16;

/// Where a registered string member's value is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Span {
    /// The member is absent.
    #[default]
    Absent,
    /// `text[start..end]` is the value, which has no escapes.
    Plain(u32, u32),
    /// The value has escapes: read it from the parsed members.
    Escaped,
}

/// The registered members, as the fast path found them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Fields {
    pub kind: Span,
    pub name: Span,
    pub sha256: Span,
    pub id: Option<u64>,
    pub v: Option<u64>,
}

/// What the fast path learned about an accepted header.
pub(crate) struct Fast {
    pub checked: Checked,
    pub fields: Fields,
    /// The text is exactly what the encoder writes for these members (§9): no insignificant
    /// whitespace and no escapes, so it can be sent again as it is.
    pub canonical: bool,
}

/// A scalar value as the fast path read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Val {
    /// `text[start..end]` is the string's contents (with escapes when `escaped`).
    Str {
        start: u32,
        end: u32,
        escaped: bool,
    },
    /// An integer literal, `-n` when `neg`.
    Int {
        neg: bool,
        n: u64,
    },
    Bool(bool),
    Null,
}

/// One member of a header the fast path accepted: its (unescaped) name is
/// `text[name.0..name.1]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub name: (u32, u32),
    pub val: Val,
}

/// The members of a header the fast path accepted, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Table {
    pub entries: [Entry; MAX_MEMBERS],
    pub len: usize,
}

impl Table {
    /// The members.
    pub fn entries(&self) -> &[Entry] {
        self.entries.get(..self.len).unwrap_or_default()
    }
}

const EMPTY: Entry = Entry {
    name: (0, 0),
    val: Val::Null,
};

impl Default for Table {
    fn default() -> Self {
        Table {
            entries: [EMPTY; MAX_MEMBERS],
            len: 0,
        }
    }
}

/// The octets a JSON string cannot hold as they are: `"`, `\` and the control characters
/// (one table lookup per octet instead of three comparisons).
pub(crate) static ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// A member name's bit in a one-word Bloom filter (from its length and last octet): names
/// are compared with the earlier ones only when their bit is already set.
pub(crate) fn name_bit(name: &[u8]) -> u64 {
    let last = name.last().copied().unwrap_or(0);
    1 << ((name.len() * 7 + usize::from(last)) & 63)
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
    whitespace: bool,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
            self.whitespace = true;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    /// A string whose opening quote has been eaten: `(start, end, escaped)` of its contents.
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        let start = self.i;
        let mut escaped = false;
        loop {
            // Plain octets up to the first that needs a look: `"`, `\` or a control character.
            // (Eight octets at a time, SWAR, ran more instructions on the short strings of
            // headers: 4,707 against 2,770 per frame of the typed codec case, callgrind.)
            while let Some(&c) = self.b.get(self.i) {
                if ESCAPE[usize::from(c)] {
                    break;
                }
                self.i += 1;
            }
            match self.peek()? {
                b'"' => {
                    let end = self.i;
                    self.i += 1;
                    return Some((start, end, escaped));
                }
                b'\\' => {
                    escaped = true;
                    self.i += 1;
                    match self.peek()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                        b'u' => {
                            let hex = self.b.get(self.i + 1..self.i + 5)?;
                            let mut cp = 0u32;
                            for &h in hex {
                                cp = cp * 16 + char::from(h).to_digit(16)?;
                            }
                            // Surrogates (paired or not) are left to the general parser.
                            if (0xD800..=0xDFFF).contains(&cp) {
                                return None;
                            }
                            self.i += 5;
                        }
                        _ => return None,
                    }
                }
                0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
    }

    /// An integer literal in -(2^53−1)..=2^53−1, written the way JSON allows.
    fn integer(&mut self) -> Option<Val> {
        let neg = self.eat(b'-').is_some();
        let start = self.i;
        let mut n: u64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            n = n * 10 + u64::from(c - b'0');
            self.i += 1;
            if self.i - start > 16 {
                return None;
            }
        }
        let digits = self.i - start;
        let leading_zero = digits > 1 && self.b.get(start) == Some(&b'0');
        if digits == 0
            || leading_zero
            || n > MAX_SAFE_INTEGER
            || (neg && n == 0)
            || matches!(self.peek(), Some(b'.' | b'e' | b'E'))
        {
            return None;
        }
        Some(Val::Int { neg, n })
    }

    fn literal(&mut self, word: &[u8], val: Val) -> Option<Val> {
        if self.b.get(self.i..self.i + word.len())? == word {
            self.i += word.len();
            Some(val)
        } else {
            None
        }
    }

    fn value(&mut self) -> Option<Val> {
        match self.peek()? {
            b'"' => {
                self.i += 1;
                let (start, end, escaped) = self.string()?;
                Some(Val::Str {
                    start: u32::try_from(start).ok()?,
                    end: u32::try_from(end).ok()?,
                    escaped,
                })
            }
            b'-' | b'0'..=b'9' => self.integer(),
            b't' => self.literal(b"true", Val::Bool(true)),
            b'f' => self.literal(b"false", Val::Bool(false)),
            b'n' => self.literal(b"null", Val::Null),
            _ => None,
        }
    }
}

/// The slot of a registered member (the order of `header::validate_members`).
pub(crate) fn registered(name: &[u8]) -> Option<usize> {
    Some(match name {
        b"body_len" => 0,
        b"file_size" => 1,
        b"total_size" => 2,
        b"kind" => 3,
        b"id" => 4,
        b"name" => 5,
        b"sha256" => 6,
        b"v" => 7,
        b"md5" => 8,
        _ => return None,
    })
}

fn span(v: Val) -> Option<Span> {
    match v {
        Val::Str { escaped: true, .. } => Some(Span::Escaped),
        Val::Str { start, end, .. } => Some(Span::Plain(start, end)),
        _ => None,
    }
}

fn non_negative(v: Val) -> Option<u64> {
    match v {
        Val::Int { neg: false, n } => Some(n),
        _ => None,
    }
}

/// Accepts `text` (already known to be UTF-8) as a valid header under `profile`, or returns
/// `None` to send it to the general parser.
pub(crate) fn scan(text: &str, profile: Profile) -> Option<Fast> {
    scan_into(text, profile, None)
}

/// [`scan`], also writing every member, in order, into `table` (valid when it accepts): a
/// typed header is deserialized from the table without parsing the text again.
pub(crate) fn scan_into(
    text: &str,
    profile: Profile,
    mut table: Option<&mut Table>,
) -> Option<Fast> {
    let b = text.as_bytes();
    let mut c = Cursor {
        b,
        i: 0,
        whitespace: false,
    };
    let mut names: [&[u8]; MAX_MEMBERS] = [&[]; MAX_MEMBERS];
    let mut count = 0;
    let mut seen = 0u64;
    let mut escaped = false;
    let mut slots: [Option<Val>; 9] = [None; 9];

    c.skip_ws();
    c.eat(b'{')?;
    c.skip_ws();
    if c.eat(b'}').is_none() {
        loop {
            c.eat(b'"')?;
            let (start, end, name_escaped) = c.string()?;
            if name_escaped {
                return None;
            }
            let name = b.get(start..end)?;
            let bit = name_bit(name);
            if seen & bit != 0 && names.get(..count)?.contains(&name) {
                return None;
            }
            seen |= bit;
            *names.get_mut(count)? = name;
            count += 1;
            c.skip_ws();
            c.eat(b':')?;
            c.skip_ws();
            let v = c.value()?;
            if let Some(t) = table.as_deref_mut() {
                *t.entries.get_mut(count - 1)? = Entry {
                    name: (u32::try_from(start).ok()?, u32::try_from(end).ok()?),
                    val: v,
                };
            }
            if let Val::Str { escaped: true, .. } = v {
                escaped = true;
            }
            if let Some(i) = registered(name) {
                *slots.get_mut(i)? = Some(v);
            }
            c.skip_ws();
            match c.peek()? {
                b',' => {
                    c.i += 1;
                    c.skip_ws();
                }
                b'}' => {
                    c.i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    c.skip_ws();
    if c.i != b.len() {
        return None;
    }

    let (checked, fields) = check_registered(b, &slots, profile)?;
    if let Some(t) = table {
        t.len = count;
    }
    Some(Fast {
        checked,
        fields,
        canonical: !c.whitespace && !escaped,
    })
}

/// The registered members' rules of §4.4, as `header::validate_members` checks them, on the
/// values found for each registered slot (see [`registered`]) of the object `text`: the body
/// length and digests, or `None` for anything the general parser must decide.
pub(crate) fn check_registered(
    text: &[u8],
    slots: &[Option<Val>; 9],
    profile: Profile,
) -> Option<(Checked, Fields)> {
    let &[body_len_v, file_size, total_size, kind, id, name, sha256, version, md5] = slots;
    let lengths = [body_len_v, file_size, total_size];
    let length_members = match profile {
        Profile::Lhp1 => &lengths[..1],
        Profile::SeedCompat => &lengths[..],
    };
    let mut body_len = None;
    for v in length_members.iter().flatten() {
        let n = non_negative(*v)?;
        match body_len {
            Some(first) if first != n => return None,
            _ => body_len = Some(n),
        }
    }
    let mut fields = Fields::default();
    if let Some(v) = kind {
        fields.kind = span(v)?;
    }
    if let Some(v) = id {
        fields.id = Some(non_negative(v)?);
    }
    if let Some(v) = name {
        fields.name = span(v)?;
    }
    let mut digests = Vec::new();
    if let Some(v) = sha256 {
        let Val::Str {
            start,
            end,
            escaped: false,
        } = v
        else {
            return None;
        };
        let hex = std::str::from_utf8(text.get(start as usize..end as usize)?).ok()?;
        digests.push(ExpectedDigest::Sha256(parse_hex::<32>(hex, false)?));
        fields.sha256 = span(v)?;
    }
    if let Some(v) = version {
        if non_negative(v)? != 1 {
            return None;
        }
        fields.v = Some(1);
    }
    if profile == Profile::SeedCompat {
        match md5 {
            Some(Val::Str { escaped: true, .. }) => return None,
            Some(Val::Str { start, end, .. }) => {
                if let Some(d) = text
                    .get(start as usize..end as usize)
                    .and_then(|s| std::str::from_utf8(s).ok())
                    .and_then(|s| parse_hex::<16>(s, true))
                {
                    digests.push(ExpectedDigest::Md5(d));
                }
            }
            _ => {}
        }
    }
    Some((
        Checked {
            body_len: body_len.unwrap_or(0),
            digests,
        },
        fields,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::parse;
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    const PROFILES: [Profile; 2] = [Profile::Lhp1, Profile::SeedCompat];

    /// Whenever the fast path accepts, the general parser accepts the same thing.
    fn agree(text: &str) {
        for profile in PROFILES {
            let Some(f) = scan(text, profile) else {
                continue;
            };
            let (members, checked) = match parse(text.as_bytes(), profile) {
                Ok(ok) => ok,
                Err(kind) => panic!("fast path accepted {text:?} ({profile}); general: {kind:?}"),
            };
            assert_eq!(f.checked.body_len, checked.body_len, "{text:?} {profile}");
            assert_eq!(f.checked.digests, checked.digests, "{text:?} {profile}");
            let lazy: Map<String, Value> = serde_json::from_str(text).unwrap();
            assert_eq!(lazy, members, "{text:?}");
            let s = |span: Span, name: &str| match span {
                Span::Absent => assert!(members.get(name).is_none(), "{text:?} {name}"),
                Span::Plain(a, b) => assert_eq!(
                    text.get(a as usize..b as usize),
                    members.get(name).and_then(Value::as_str),
                    "{text:?} {name}"
                ),
                Span::Escaped => assert!(members.get(name).is_some_and(Value::is_string)),
            };
            s(f.fields.kind, "kind");
            s(f.fields.name, "name");
            s(f.fields.sha256, "sha256");
            assert_eq!(f.fields.id, members.get("id").and_then(Value::as_u64));
            assert_eq!(f.fields.v, members.get("v").and_then(Value::as_u64));
            if f.canonical {
                assert_eq!(serde_json::to_string(&members).unwrap(), text);
            }
            // A typed header read from the scan's table is what serde_json reads from the text.
            let mut table = Table::default();
            assert!(scan_into(text, profile, Some(&mut table)).is_some());
            let via_table: Value =
                crate::typed::deserialize_header(text, Some(&table), 0, Profile::Lhp1)
                    .unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(via_table, Value::Object(lazy.clone()), "{text:?}");
        }
    }

    fn name() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "body_len",
            "file_size",
            "total_size",
            "kind",
            "id",
            "name",
            "sha256",
            "v",
            "md5",
            "a",
            "b",
            "\\u0061",
            "é",
            "body_len ",
        ])
        .prop_map(|s| format!("\"{s}\""))
    }

    fn value() -> impl Strategy<Value = String> {
        let fixed = prop::sample::select(vec![
            "0",
            "-0",
            "1",
            "2",
            "-1",
            "007",
            "1.0",
            "1e3",
            "9007199254740991",
            "9007199254740992",
            "-9007199254740991",
            "-9007199254740992",
            "12345678901234567",
            "true",
            "false",
            "null",
            "tru",
            "\"\"",
            "\"x\"",
            "\"a\\nb\"",
            "\"\\u00e9\"",
            "\"\\ud83d\\ude00\"",
            "\"\\ud800\"",
            "\"\\u12\"",
            "\"\\q\"",
            "\"tab\there\"",
            "\"ünï\"",
            "\"1\"",
            "\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"",
            "\"E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855\"",
            "\"900150983cd24fb0d6963f7d28e17f72\"",
            "\"900150983CD24FB0D6963F7D28E17F72\"",
            "\"hih1jk5jk151jk51\"",
            "{\"x\":1}",
            "[1,2]",
        ])
        .prop_map(str::to_owned);
        prop_oneof![
            4 => fixed,
            1 => (0u64..(1 << 54)).prop_map(|n| n.to_string()),
            1 => "[a-z0-9 ]{0,12}".prop_map(|s| format!("\"{s}\"")),
        ]
    }

    fn ws() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["", "", "", " ", "\n", "\t ", "\r\n"])
    }

    fn header() -> impl Strategy<Value = String> {
        (
            prop::collection::vec((name(), value(), ws(), ws()), 0..10),
            ws(),
            ws(),
            any::<bool>(),
        )
            .prop_map(|(members, lead, trail, compact)| {
                // Half the texts are compact, so that canonical ones are common.
                let w = |s: &'static str| if compact { "" } else { s };
                let body: Vec<String> = members
                    .into_iter()
                    .map(|(n, v, a, b)| format!("{}{n}{}:{}{v}{}", w(a), w(b), w(a), w(b)))
                    .collect();
                format!("{}{{{}}}{}", w(lead), body.join(","), w(trail))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::test_support::proptest_cases(4000)))]

        #[test]
        fn fast_path_only_accepts_what_the_general_parser_accepts(text in header()) {
            agree(&text);
        }

        #[test]
        fn and_so_after_any_one_octet_change(
            text in header(),
            at in any::<prop::sample::Index>(),
            with in prop::sample::select(vec![b'"', b'\\', b',', b':', b'{', b'}', b' ', b'0', b'-', b'.', b'a', 0x01]),
            delete in any::<bool>(),
        ) {
            let mut bytes = text.into_bytes();
            let i = at.index(bytes.len());
            if delete {
                bytes.remove(i);
            } else {
                bytes[i] = with;
            }
            if let Ok(text) = String::from_utf8(bytes) {
                agree(&text);
            }
        }
    }

    #[test]
    fn takes_what_peers_send() {
        let ok = [
            r#"{"kind":"upload","id":100000,"name":"sensor-42/temperature.bin","body_len":100,"v":1}"#,
            r#"{}"#,
            r#"{"kind":"echo","trace":"x","n":-3,"ok":true,"none":null}"#,
            r#"{"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}"#,
        ];
        for text in ok {
            let f = scan(text, Profile::Lhp1).unwrap_or_else(|| panic!("{text}"));
            assert!(f.canonical, "{text}");
            agree(text);
        }
        let seed =
            r#"{"file_name": "a.txt", "file_size": 3, "md5": "900150983cd24fb0d6963f7d28e17f72"}"#;
        let f = scan(seed, Profile::SeedCompat).unwrap();
        assert_eq!(f.checked.body_len, 3);
        assert_eq!(f.checked.digests.len(), 1);
        assert!(!f.canonical);
        // Escaped values are still fast; escaped names, nesting and fractions are not.
        assert!(scan(r#"{"kind":"a\nb"}"#, Profile::Lhp1).is_some_and(|f| !f.canonical));
        for slow in [r#"{"\u0061":1}"#, r#"{"a":{"b":1}}"#, r#"{"a":1.5}"#] {
            assert!(scan(slow, Profile::Lhp1).is_none(), "{slow}");
        }
    }
}
