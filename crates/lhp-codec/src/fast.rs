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

/// The members a [`Table`] holds. A header with more (up to [`MAX_MEMBERS`]) is still
/// accepted by the fast path, but its typed header is read by `serde_json`: the table goes
/// into every frame by value, and a small one costs little to move.
pub(crate) const TABLE_MEMBERS: usize = 8;

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
        n: U53,
    },
    Bool(bool),
    Null,
}

/// An integer of at most 53 bits (the range of §4.2), kept in two 32-bit halves so that a
/// [`Val`], and so a [`Table`], needs only 4-octet alignment (20 octets an [`Entry`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct U53([u32; 2]);

impl U53 {
    /// `n`, of which only the low 64 bits are kept (the scan never gives more than 53).
    #[inline(always)]
    pub fn new(n: u64) -> Self {
        U53([n as u32, (n >> 32) as u32])
    }

    /// The value.
    #[inline(always)]
    pub fn get(self) -> u64 {
        u64::from(self.0[0]) | u64::from(self.0[1]) << 32
    }
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
    pub entries: [Entry; TABLE_MEMBERS],
    /// The number of members of the header (more than the table holds when the header has
    /// more than [`TABLE_MEMBERS`]).
    pub len: usize,
}

impl Table {
    /// The members, when the table holds them all.
    pub fn entries(&self) -> Option<&[Entry]> {
        self.entries.get(..self.len)
    }

    /// The table holds every member of the header.
    pub fn is_complete(&self) -> bool {
        self.len <= TABLE_MEMBERS
    }
}

const EMPTY: Entry = Entry {
    name: (0, 0),
    val: Val::Null,
};

impl Default for Table {
    fn default() -> Self {
        Table {
            entries: [EMPTY; TABLE_MEMBERS],
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

/// `0x01` in every octet of a word.
const ONES: u64 = u64::from_le_bytes([1; 8]);
/// `0x80` in every octet of a word.
const HIGHS: u64 = ONES * 0x80;

/// The octets of `w` (eight string octets, the first in the low octet) that end a run of
/// plain ones: `"`, `\`, a control character, or a non-ASCII octet, each marked by its high
/// bit. The lowest mark is always exact (a borrow only ever runs upwards from an octet that
/// is marked itself), so `trailing_zeros / 8` is the first such octet.
#[inline(always)]
fn specials(w: u64) -> u64 {
    let zero = |x: u64| x.wrapping_sub(ONES) & !x;
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    (control | zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\'))) | w) & HIGHS
}

/// The index of the first octet at or after `i` that is not plain string content (see
/// [`specials`]), or `b.len()`: eight octets at a time, the last few one by one.
#[inline(always)]
fn plain_run(b: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = b.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        let m = specials(u64::from_le_bytes(*chunk));
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if ESCAPE[usize::from(c)] || c >= 0x80 {
            break;
        }
        i += 1;
    }
    i
}

/// A string whose contents begin at `i` (after the opening quote): the index of its closing
/// quote, and whether it has escapes. Non-ASCII octets must form valid UTF-8 sequences
/// (RFC 3629), so a text the scan accepts is UTF-8 throughout (outside strings it takes
/// ASCII only). `None`: anything the general parser must decide.
#[inline(always)]
fn string(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    loop {
        i = plain_run(b, i);
        match *b.get(i)? {
            b'"' => return Some((i, escaped)),
            b'\\' => {
                escaped = true;
                match *b.get(i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                    b'u' => {
                        let hex = b.get(i + 2..i + 6)?;
                        let mut cp = 0u32;
                        for &h in hex {
                            cp = cp * 16 + char::from(h).to_digit(16)?;
                        }
                        // Surrogates (paired or not) are left to the general parser.
                        if (0xD800..=0xDFFF).contains(&cp) {
                            return None;
                        }
                        i += 6;
                    }
                    _ => return None,
                }
            }
            lead @ 0x80.. => {
                let width = match lead {
                    0xC2..=0xDF => 2,
                    0xE0..=0xEF => 3,
                    0xF0..=0xF4 => 4,
                    _ => return None,
                };
                // One sequence, checked exactly (overlong forms and surrogates included).
                std::str::from_utf8(b.get(i..i + width)?).ok()?;
                i += width;
            }
            // A control character.
            _ => return None,
        }
    }
}

/// An integer literal in -(2^53−1)..=2^53−1 written the way JSON allows, starting at `i`:
/// the value and the index after it.
#[inline(always)]
fn integer(b: &[u8], mut i: usize) -> Option<(Val, usize)> {
    let neg = b.get(i) == Some(&b'-');
    if neg {
        i += 1;
    }
    let start = i;
    let mut n: u64 = 0;
    while let Some(&c) = b.get(i) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        n = n.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    let digits = i - start;
    let leading_zero = digits > 1 && b.get(start) == Some(&b'0');
    if digits == 0
        || digits > 16
        || leading_zero
        || n > MAX_SAFE_INTEGER
        || (neg && n == 0)
        || matches!(b.get(i), Some(b'.' | b'e' | b'E'))
    {
        return None;
    }
    Some((
        Val::Int {
            neg,
            n: U53::new(n),
        },
        i,
    ))
}

/// `b[i..]` begins with `lit`.
macro_rules! at {
    ($b:expr, $i:expr, $lit:literal) => {
        $b.get($i..).and_then(<[u8]>::first_chunk) == Some($lit)
    };
}

/// A member name at `i` (after its opening quote) that is registered, recognised by its first
/// octet and one compare that includes the closing quote: its slot (see [`registered`]) and
/// the index of the closing quote.
#[inline(always)]
fn registered_at(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let (slot, len) = match *b.get(i)? {
        b'k' if at!(b, i, b"kind\"") => (3, 4),
        b'i' if at!(b, i, b"id\"") => (4, 2),
        b'n' if at!(b, i, b"name\"") => (5, 4),
        b'b' if at!(b, i, b"body_len\"") => (0, 8),
        b'v' if at!(b, i, b"v\"") => (7, 1),
        b's' if at!(b, i, b"sha256\"") => (6, 6),
        b'f' if at!(b, i, b"file_size\"") => (1, 9),
        b't' if at!(b, i, b"total_size\"") => (2, 10),
        b'm' if at!(b, i, b"md5\"") => (8, 3),
        _ => return None,
    };
    Some((slot, i + len))
}

/// JSON's insignificant whitespace (RFC 8259 §2).
#[inline(always)]
fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

/// The index of the first octet at or after `i` that is not whitespace, noting in `ws`
/// whether there was any.
#[inline(always)]
fn skip_ws(b: &[u8], mut i: usize, ws: &mut bool) -> usize {
    while let Some(&c) = b.get(i) {
        if !is_ws(c) {
            break;
        }
        *ws = true;
        i += 1;
    }
    i
}

/// The index after the octet `c`, expected at `i` after optional whitespace.
#[inline(always)]
fn expect(b: &[u8], i: usize, c: u8, ws: &mut bool) -> Option<usize> {
    if b.get(i) == Some(&c) {
        return Some(i + 1);
    }
    let i = skip_ws(b, i, ws);
    (b.get(i) == Some(&c)).then_some(i + 1)
}

/// A scalar value at `i`: the value and the index after it.
#[inline(always)]
fn value(b: &[u8], i: usize) -> Option<(Val, usize)> {
    match *b.get(i)? {
        b'"' => {
            let (end, escaped) = string(b, i + 1)?;
            // `scan_raw` takes only texts whose offsets fit in `u32`.
            let val = Val::Str {
                start: (i + 1) as u32,
                end: end as u32,
                escaped,
            };
            Some((val, end + 1))
        }
        b'-' | b'0'..=b'9' => integer(b, i),
        b't' if at!(b, i, b"true") => Some((Val::Bool(true), i + 4)),
        b'f' if at!(b, i, b"false") => Some((Val::Bool(false), i + 5)),
        b'n' if at!(b, i, b"null") => Some((Val::Null, i + 4)),
        _ => None,
    }
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
        Val::Int { neg: false, n } => Some(n.get()),
        _ => None,
    }
}

/// Accepts `text` as a valid header under `profile`, or returns `None` to send it to the
/// general parser.
pub(crate) fn scan(text: &str, profile: Profile) -> Option<Fast> {
    scan_raw(text.as_bytes(), profile, None)
}

#[cfg(test)]
/// [`scan`], also writing the members, in order, into `table` (valid when it accepts and
/// [`Table::is_complete`]): a typed header is deserialized from the table without parsing
/// the text again.
pub(crate) fn scan_into(text: &str, profile: Profile, table: Option<&mut Table>) -> Option<Fast> {
    scan_raw(text.as_bytes(), profile, table)
}

/// [`scan`] on octets not yet known to be UTF-8, also writing the members, in order, into
/// `table` when given (valid when it accepts and [`Table::is_complete`]: a typed header is
/// deserialized from the table without parsing the text again). What it accepts is UTF-8 (it checks the non-ASCII octets
/// of strings and takes only ASCII elsewhere), so a receiver need not check the whole text
/// first.
///
/// One loop per member: the name is recognised among the registered ones by its first octet
/// and one compare (a bit each for duplicates), or scanned as a string and compared with the
/// earlier extension names when their Bloom bit says it may repeat one; the value is read by
/// its first octet (strings eight octets at a time, integers parsed as they are scanned).
pub(crate) fn scan_raw(b: &[u8], profile: Profile, table: Option<&mut Table>) -> Option<Fast> {
    // Offsets are kept as `u32`.
    u32::try_from(b.len()).ok()?;
    // One table either way: the member loop then writes it without asking whether it has one.
    let mut scratch;
    let table = match table {
        Some(t) => t,
        None => {
            scratch = Table::default();
            &mut scratch
        }
    };
    let mut ws = false;
    let mut escaped = false;
    // Registered members seen, one bit per slot; extension names and their Bloom filter.
    let mut seen = 0u32;
    let mut bloom = 0u64;
    let mut ext: [(u32, u32); MAX_MEMBERS] = [(0, 0); MAX_MEMBERS];
    let mut ext_count = 0;
    let mut count = 0;
    let mut slots: [Option<Val>; 9] = [None; 9];

    let mut i = expect(b, 0, b'{', &mut ws)?;
    let mut close = expect(b, i, b'}', &mut ws);
    while close.is_none() {
        i = expect(b, i, b'"', &mut ws)?;
        let start = i;
        let slot = registered_at(b, i);
        let end = match slot {
            Some((s, end)) => {
                let bit = 1 << s;
                if seen & bit != 0 {
                    return None;
                }
                seen |= bit;
                end
            }
            None => {
                let (end, name_escaped) = string(b, i)?;
                if name_escaped {
                    return None;
                }
                let name = b.get(start..end)?;
                let bit = name_bit(name);
                if bloom & bit != 0
                    && ext
                        .get(..ext_count)?
                        .iter()
                        .any(|&(s, e)| b.get(s as usize..e as usize) == Some(name))
                {
                    return None;
                }
                bloom |= bit;
                *ext.get_mut(ext_count)? = (start as u32, end as u32);
                ext_count += 1;
                end
            }
        };
        i = expect(b, end + 1, b':', &mut ws)?;
        if b.get(i).copied().is_some_and(is_ws) {
            i = skip_ws(b, i, &mut ws);
        }
        let (v, after) = value(b, i)?;
        if count == MAX_MEMBERS {
            return None;
        }
        if let Some(e) = table.entries.get_mut(count) {
            *e = Entry {
                name: (start as u32, end as u32),
                val: v,
            };
        }
        count += 1;
        if let Val::Str { escaped: true, .. } = v {
            escaped = true;
        }
        if let Some((s, _)) = slot {
            *slots.get_mut(s)? = Some(v);
        }
        match b.get(after) {
            Some(b',') => i = after + 1,
            Some(b'}') => close = Some(after + 1),
            _ => match expect(b, after, b',', &mut ws) {
                Some(next) => i = next,
                None => close = Some(expect(b, after, b'}', &mut ws)?),
            },
        }
    }
    let end = close?;
    if end != b.len() && skip_ws(b, end, &mut ws) != b.len() {
        return None;
    }

    let (checked, fields) = check_registered(b, &slots, profile)?;
    table.len = count;
    Some(Fast {
        checked,
        fields,
        canonical: !ws && !escaped,
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
    // By reference: the slots are not copied.
    let [body_len_v, file_size, total_size, kind, id, name, sha256, version, md5] = slots;
    let mut body_len = match body_len_v {
        Some(v) => Some(non_negative(*v)?),
        None => None,
    };
    if profile == Profile::SeedCompat {
        for v in [file_size, total_size].into_iter().flatten() {
            let n = non_negative(*v)?;
            match body_len {
                Some(first) if first != n => return None,
                _ => body_len = Some(n),
            }
        }
    }
    let mut fields = Fields::default();
    if let Some(v) = *kind {
        fields.kind = span(v)?;
    }
    if let Some(v) = *id {
        fields.id = Some(non_negative(v)?);
    }
    if let Some(v) = *name {
        fields.name = span(v)?;
    }
    let mut digests = Vec::new();
    if let Some(v) = *sha256 {
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
    if let Some(v) = *version {
        if non_negative(v)? != 1 {
            return None;
        }
        fields.v = Some(1);
    }
    if profile == Profile::SeedCompat {
        match *md5 {
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

    /// The octets a receiver may meet where UTF-8 can go wrong: lone continuation octets,
    /// overlong forms, surrogates, code points past U+10FFFF, truncated sequences.
    fn raw_octets() -> impl Strategy<Value = Vec<u8>> {
        prop::sample::select(vec![
            vec![0x80],
            vec![0xBF],
            vec![0xC0, 0xAF],
            vec![0xC1, 0xBF],
            vec![0xC3],
            vec![0xC3, 0xA9],
            vec![0xE0, 0x80, 0xAF],
            vec![0xE2, 0x82, 0xAC],
            vec![0xE2, 0x82],
            vec![0xED, 0xA0, 0x80],
            vec![0xED, 0x9F, 0xBF],
            vec![0xF0, 0x9F, 0x98, 0x80],
            vec![0xF0, 0x8F, 0xBF, 0xBF],
            vec![0xF4, 0x8F, 0xBF, 0xBF],
            vec![0xF4, 0x90, 0x80, 0x80],
            vec![0xF5, 0x80, 0x80, 0x80],
            vec![0xFF],
        ])
    }

    /// `raw` goes through `header::validate` (fast path first) and through the general parser
    /// alone: the same answer, accept (same body length and digests) or reject (same error).
    /// Whenever the fast path accepts, the text is UTF-8 and [`agree`] holds for it.
    fn agree_raw(raw: &[u8]) {
        for profile in PROFILES {
            let general = parse(raw, profile);
            let mut table = Table::default();
            match (
                crate::header::validate(raw, profile, Some(&mut table)),
                &general,
            ) {
                (Ok((c, fast)), Ok((_, g))) => {
                    assert_eq!(c.body_len, g.body_len, "{raw:?}");
                    assert_eq!(c.digests, g.digests, "{raw:?}");
                    if fast {
                        let text = std::str::from_utf8(raw).expect("the fast path took non-UTF-8");
                        agree(text);
                    }
                }
                (Err(a), Err(b)) => assert_eq!(&a, b, "{raw:?} {profile}"),
                (a, b) => panic!(
                    "{raw:?} {profile}: validate {:?}, general {:?}",
                    a.err(),
                    b.as_ref().err()
                ),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::test_support::proptest_cases(4000)))]

        /// Octets that are not UTF-8, or are in ways a scanner gets wrong, put into headers
        /// anywhere (inside strings, names, between tokens), or replacing octets.
        #[test]
        fn fast_path_and_general_parser_agree_on_any_octets(
            text in header(),
            at in any::<prop::sample::Index>(),
            with in raw_octets(),
            replace in any::<bool>(),
        ) {
            let mut bytes = text.into_bytes();
            let i = at.index(bytes.len() + 1);
            if replace && i < bytes.len() {
                bytes.remove(i);
            }
            bytes.splice(i..i, with);
            agree_raw(&bytes);
        }

        #[test]
        fn fast_path_and_general_parser_agree_after_any_one_octet_change(
            text in header(),
            at in any::<prop::sample::Index>(),
            with in any::<u8>(),
            delete in any::<bool>(),
        ) {
            let mut bytes = text.into_bytes();
            agree_raw(&bytes);
            let i = at.index(bytes.len());
            if delete {
                bytes.remove(i);
            } else {
                bytes[i] = with;
            }
            agree_raw(&bytes);
        }
    }

    #[test]
    fn long_strings_and_every_special_octet_at_every_position() {
        // The eight-at-a-time string scan: each special octet at each position of a word,
        // and near the end of the text (where the scan goes octet by octet).
        for len in 0..40 {
            for special in [
                "\\n", "\\\"", "\\u00e9", "é", "€", "😀", "\u{1}", "\u{7f}", "~",
            ] {
                for pos in 0..=len {
                    let mut s = "a".repeat(len);
                    s.insert_str(pos, special);
                    for text in [
                        format!("{{\"{s}\":1}}"),
                        format!("{{\"k\":\"{s}\"}}"),
                        format!("{{\"k\":\"{s}\",\"name\":\"{s}\",\"z\":\"{s}\"}}"),
                    ] {
                        agree_raw(text.as_bytes());
                    }
                }
            }
        }
        // Plain long values are taken, and end where they end.
        let text = format!(
            "{{\"kind\":\"{}\",\"x\":\"{}\"}}",
            "k".repeat(100),
            "é".repeat(50)
        );
        let f = scan(&text, Profile::Lhp1).expect("plain");
        assert_eq!(f.fields.kind, Span::Plain(9, 109));
    }

    #[test]
    fn registered_names_are_told_apart_from_their_prefixes_and_extensions() {
        for name in [
            "kin",
            "kinds",
            "i",
            "ids",
            "nam",
            "body_le",
            "body_lens",
            "vv",
            "sha25",
            "md",
            "file_siz",
            "total_siz",
            "K",
            "Kind",
        ] {
            let text = format!(r#"{{"{name}":"x","kind":"a","{name}x":1}}"#);
            agree_raw(text.as_bytes());
            let f = scan(&text, Profile::Lhp1).unwrap_or_else(|| panic!("{text}"));
            let at = 16 + name.len() as u32;
            assert_eq!(f.fields.kind, Span::Plain(at, at + 1), "{text}");
        }
        // Duplicates among registered names, among extensions, and a registered name written
        // with an escape (left to the general parser, which finds the duplicate).
        for dup in [
            r#"{"kind":"a","kind":"b"}"#,
            r#"{"id":1,"x":2,"id":1}"#,
            r#"{"ext":1,"kind":"a","ext":2}"#,
            r#"{"\u006bind":"a","kind":"b"}"#,
        ] {
            assert!(scan(dup, Profile::Lhp1).is_none(), "{dup}");
            agree_raw(dup.as_bytes());
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
        // Every kind of string and integer peers send: spaces (also among the last octets,
        // which are scanned one by one), two-, three- and four-octet UTF-8, escapes, `false`,
        // zero, sixteen digits, the largest safe integer.
        let everyday = [
            r#"{"kind":"put","id":0,"ok":false,"name":"my file.txt","note":"a b"}"#.to_owned(),
            format!(r#"{{"name":"données","n":1234567890123456,"id":{MAX_SAFE_INTEGER}}}"#),
            r#"{"name":"日本語","crab":"🦀","e":"\u00e9\n\"\\\/","neg":-7}"#.to_owned(),
        ];
        for text in &everyday {
            assert!(scan(text, Profile::Lhp1).is_some(), "{text}");
            agree(text);
        }
        // A literal misspelt at its own length is no literal.
        for bad in [
            r#"{"a":trux}"#,
            r#"{"a":fals3}"#,
            r#"{"a":nul1}"#,
            r#"{"a":tru}"#,
        ] {
            assert!(scan(bad, Profile::Lhp1).is_none(), "{bad}");
            assert!(parse(bad.as_bytes(), Profile::Lhp1).is_err(), "{bad}");
        }
        // Escaped values are still fast; escaped names, nesting and fractions are not.
        assert!(scan(r#"{"kind":"a\nb"}"#, Profile::Lhp1).is_some_and(|f| !f.canonical));
        for slow in [r#"{"\u0061":1}"#, r#"{"a":{"b":1}}"#, r#"{"a":1.5}"#] {
            assert!(scan(slow, Profile::Lhp1).is_none(), "{slow}");
        }
    }
}
