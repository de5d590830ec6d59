//! The JSON header (§4): typed access to the registered members, unknown members kept in
//! order, and the I-JSON validation every received header goes through.

use std::fmt;
use std::sync::OnceLock;

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Serialize;
use serde_json::{Map, Number, Value};

use crate::caps;
use crate::error::{DecodeError, DecodeErrorKind, EncodeError};
use crate::fast::{self, Fields, Span};
use crate::Profile;

/// The largest integer I-JSON allows: 2^53−1 (§4.2).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// The registered members of `lhp1`, in the order §4.5 checks them.
pub const REGISTERED: [&str; 6] = ["body_len", "kind", "id", "name", "sha256", "v"];

/// A frame's header: a JSON object whose members keep the order they arrived in.
///
/// The registered members (§4.4) have typed accessors; every other member is an extension
/// and is preserved for the application (§4.3).
///
/// ```
/// use lhp_codec::Header;
///
/// let mut h = Header::new();
/// h.set_kind("echo").set_id(7).insert("trace", "abc");
/// assert_eq!(h.kind(), Some("echo"));
/// assert_eq!(h.id(), Some(7));
/// assert_eq!(h.get("trace").and_then(|v| v.as_str()), Some("abc"));
/// assert_eq!(h.body_len(), 0);
/// ```
///
/// Two headers are equal when their members are (names, values and order).
///
/// A received header keeps its JSON text and parses it into members only when they are
/// first asked for: the typed accessors ([`kind`](Self::kind), [`id`](Self::id),
/// [`name`](Self::name), [`sha256`](Self::sha256), [`version`](Self::version),
/// [`body_len`](Self::body_len)) read the text directly, and a received header sent on
/// unchanged is written out as it arrived (when that text is canonical, §9).
#[derive(Clone, Debug, Default)]
pub struct Header {
    /// The members; for a received header, filled from `received` on first use.
    members: OnceLock<Map<String, Value>>,
    /// The text a received header arrived as, while the header is unchanged.
    received: Option<Box<Received>>,
    body_len: u64,
}

/// A header as the decoder's fast path accepted it.
#[derive(Clone, Debug)]
struct Received {
    text: Box<str>,
    fields: Fields,
    /// `text` is what the encoder would write for these members.
    canonical: bool,
    /// The profile that read the body length.
    profile: Profile,
}

impl Header {
    /// An empty header (`{}`), body length 0.
    pub fn new() -> Self {
        Header::default()
    }

    /// A header with just `kind`.
    pub fn with_kind(kind: impl Into<String>) -> Self {
        let mut h = Header::new();
        h.set_kind(kind);
        h
    }

    /// Validates a member map under `profile` and makes it a header (§4).
    pub fn from_members(
        members: Map<String, Value>,
        profile: Profile,
    ) -> Result<Self, EncodeError> {
        let body_len = check_numbers(&members)
            .and_then(|()| validate_members(&members, profile))
            .map_err(|kind| EncodeError::InvalidHeader(DecodeError::new(0, kind)))?
            .body_len;
        Ok(Header::from_parts(members, body_len))
    }

    /// Serializes a user's own `serde` type into a header. The type must serialize to a JSON
    /// object, and registered members must have their registered types.
    ///
    /// ```
    /// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    /// struct Upload { kind: String, name: String, body_len: u64 }
    ///
    /// let up = Upload { kind: "put".into(), name: "a.txt".into(), body_len: 3 };
    /// let h = lhp_codec::Header::from_serialize(&up).unwrap();
    /// assert_eq!(h.body_len(), 3);
    /// assert_eq!(h.deserialize::<Upload>().unwrap(), up);
    /// ```
    pub fn from_serialize<T: Serialize>(value: &T) -> Result<Self, EncodeError> {
        match serde_json::to_value(value).map_err(EncodeError::Serialize)? {
            Value::Object(m) => Header::from_members(m, Profile::Lhp1),
            other => Err(EncodeError::InvalidHeader(DecodeError::new(
                0,
                DecodeErrorKind::HeaderNotObject {
                    found: json_type(&other),
                },
            ))),
        }
    }

    /// Deserializes the whole header into a user's own `serde` type.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        match &self.received {
            Some(r) => serde_json::from_str(&r.text),
            None => T::deserialize(Value::Object(self.members().clone())),
        }
    }

    /// The body length this header declares: for a received header, as its profile reads it
    /// (`body_len`, or in `seed-compat` also `file_size` / `total_size`); for one being built,
    /// the last value given to `set_body_len*` or inserted as `body_len`. 0 when absent.
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    /// `kind`: the message type.
    pub fn kind(&self) -> Option<&str> {
        self.registered_str("kind", |f| f.kind)
    }

    /// `id`: correlates a reply with its request.
    pub fn id(&self) -> Option<u64> {
        match &self.received {
            Some(r) => r.fields.id,
            None => self.members().get("id").and_then(Value::as_u64),
        }
    }

    /// `name`: a file or resource name (untrusted: see §11).
    pub fn name(&self) -> Option<&str> {
        self.registered_str("name", |f| f.name)
    }

    /// `sha256`: lowercase hex digest of the body.
    pub fn sha256(&self) -> Option<&str> {
        self.registered_str("sha256", |f| f.sha256)
    }

    /// `v`: the protocol version (1 when present).
    pub fn version(&self) -> Option<u64> {
        match &self.received {
            Some(r) => r.fields.v,
            None => self.members().get("v").and_then(Value::as_u64),
        }
    }

    /// Any member, registered or not.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.members().get(name)
    }

    /// All members, in order.
    pub fn members(&self) -> &Map<String, Value> {
        self.members.get_or_init(|| match &self.received {
            // The fast path accepted this text: it parses, and has no duplicate names.
            Some(r) => serde_json::from_str(&r.text).unwrap_or_default(),
            None => Map::new(),
        })
    }

    /// The members that are not registered in `lhp1`, in order (§4.3).
    pub fn extensions(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.members()
            .iter()
            .filter(|(k, _)| !REGISTERED.contains(&k.as_str()))
    }

    /// Consumes the header, returning its members.
    pub fn into_members(mut self) -> Map<String, Value> {
        std::mem::take(self.members_mut())
    }

    /// A string member: from the received text when it is there unescaped.
    fn registered_str(&self, name: &str, span: impl Fn(&Fields) -> Span) -> Option<&str> {
        if let Some(r) = &self.received {
            match span(&r.fields) {
                Span::Absent => return None,
                Span::Plain(start, end) => return r.text.get(start as usize..end as usize),
                Span::Escaped => {}
            }
        }
        self.members().get(name).and_then(Value::as_str)
    }

    /// The members, for a change: the received text no longer describes the header.
    fn members_mut(&mut self) -> &mut Map<String, Value> {
        self.members();
        self.received = None;
        match self.members.get_mut() {
            Some(m) => m,
            // `members()` just filled it.
            None => unreachable!("header members are initialized"),
        }
    }

    /// Sets `kind`.
    pub fn set_kind(&mut self, kind: impl Into<String>) -> &mut Self {
        self.members_mut()
            .insert("kind".into(), Value::String(kind.into()));
        self
    }

    /// Sets `id`.
    pub fn set_id(&mut self, id: u64) -> &mut Self {
        self.members_mut().insert("id".into(), Value::from(id));
        self
    }

    /// Sets `name`.
    pub fn set_name(&mut self, name: impl Into<String>) -> &mut Self {
        self.members_mut()
            .insert("name".into(), Value::String(name.into()));
        self
    }

    /// Sets `sha256` from a 32-octet digest.
    pub fn set_sha256(&mut self, digest: &[u8; 32]) -> &mut Self {
        self.members_mut()
            .insert("sha256".into(), Value::String(hex_lower(digest)));
        self
    }

    /// Sets the body length the `lhp1` way: the `body_len` member, added when `len > 0` or
    /// replaced when present. (`file_size` and `total_size` are ordinary members in `lhp1`.)
    pub fn set_body_len(&mut self, len: u64) -> &mut Self {
        self.set_body_len_for(Profile::Lhp1, len)
    }

    /// Sets the body length as `profile` carries it (§3.3, §4.4). In `seed-compat` every body
    /// length member present (`body_len`, `file_size`, `total_size`) is updated, and `body_len`
    /// is added only when none is present and `len > 0`.
    pub fn set_body_len_for(&mut self, profile: Profile, len: u64) -> &mut Self {
        if let Some(r) = &self.received {
            // Received under this profile with this length: every length member agrees.
            if r.profile == profile && len == self.body_len {
                return self;
            }
        }
        let members: &[&str] = match profile {
            Profile::Lhp1 => &LENGTH_MEMBERS[..1],
            Profile::SeedCompat => &LENGTH_MEMBERS[..],
        };
        let mut found = false;
        let map = self.members_mut();
        for key in members {
            if let Some(v) = map.get_mut(*key) {
                *v = Value::from(len);
                found = true;
            }
        }
        if !found && len > 0 {
            map.insert("body_len".into(), Value::from(len));
        }
        self.body_len = len;
        self
    }

    /// Inserts or replaces any member. Registered members are checked when the frame is
    /// encoded; inserting `body_len` also sets [`body_len`](Self::body_len).
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Value>) -> &mut Self {
        let name = name.into();
        let value = value.into();
        if name == "body_len" {
            if let Some(n) = value.as_u64() {
                self.body_len = n;
            }
        }
        self.members_mut().insert(name, value);
        self
    }

    /// Removes a member, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let v = self.members_mut().shift_remove(name);
        if name == "body_len" && v.is_some() {
            self.body_len = 0;
        }
        v
    }

    pub(crate) fn from_parts(members: Map<String, Value>, body_len: u64) -> Self {
        Header {
            members: OnceLock::from(members),
            received: None,
            body_len,
        }
    }

    /// The JSON text to send for this header under `profile`, checked as a receiver would
    /// check it (§4.4), and the body length it declares.
    pub(crate) fn encoding(&self, profile: Profile) -> Result<(Encoding<'_>, u64), EncodeError> {
        if let Some(r) = self.received.as_ref().filter(|r| r.canonical) {
            // Accepted under this very profile when it arrived: nothing to check again.
            if r.profile == profile {
                return Ok((Encoding::Text(&r.text), self.body_len));
            }
            if let Some(f) = fast::scan(&r.text, profile) {
                return Ok((Encoding::Text(&r.text), f.checked.body_len));
            }
        }
        let declared = check_for_encoding(self, profile)?;
        Ok((Encoding::Members(self.members()), declared))
    }
}

/// How a header is written (see [`Header::encoding`]).
pub(crate) enum Encoding<'a> {
    /// Canonical text as received.
    Text(&'a str),
    /// Members to serialize.
    Members(&'a Map<String, Value>),
}

impl PartialEq for Header {
    fn eq(&self, other: &Self) -> bool {
        // `body_len` is derived from the members (and the profile that read them).
        if let (Some(a), Some(b)) = (&self.received, &other.received) {
            if a.canonical && b.canonical && a.text == b.text {
                return true;
            }
        }
        self.members() == other.members()
    }
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(r) = self.received.as_ref().filter(|r| r.canonical) {
            return f.write_str(&r.text);
        }
        match serde_json::to_string(self.members()) {
            Ok(s) => f.write_str(&s),
            Err(_) => Err(fmt::Error),
        }
    }
}

/// Members that carry the body length: `body_len` in every profile, the other two only in
/// `seed-compat` (§3.3).
const LENGTH_MEMBERS: [&str; 3] = ["body_len", "file_size", "total_size"];

/// A digest the body must match (§6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ExpectedDigest {
    Sha256([u8; 32]),
    Md5([u8; 16]),
}

/// What validation learned about a header.
pub(crate) struct Checked {
    pub body_len: u64,
    /// `sha256`, then (in `seed-compat`) `md5`: both are verified when both are present.
    pub digests: Vec<ExpectedDigest>,
}

/// Validates a complete received header (§4) and makes it a [`Header`]: through the fast
/// path when it can (see `fast.rs`), else through [`parse`], which also names every error.
pub(crate) fn parse_header(
    raw: &[u8],
    profile: Profile,
) -> Result<(Header, Checked), DecodeErrorKind> {
    if let Ok(text) = std::str::from_utf8(raw) {
        if let Some(f) = fast::scan(text, profile) {
            let header = Header {
                members: OnceLock::new(),
                received: Some(Box::new(Received {
                    text: text.into(),
                    fields: f.fields,
                    canonical: f.canonical,
                    profile,
                })),
                body_len: f.checked.body_len,
            };
            return Ok((header, f.checked));
        }
    }
    let (members, checked) = parse(raw, profile)?;
    Ok((Header::from_parts(members, checked.body_len), checked))
}

/// Validates a complete received header (§4) without building a [`Header`]: the fast path
/// when it can, else [`parse`] (which names every error).
/// Through the fast path (`true`), also fills `table` with the members it read.
pub(crate) fn validate(
    raw: &[u8],
    profile: Profile,
    table: Option<&mut fast::Table>,
) -> Result<(Checked, bool), DecodeErrorKind> {
    if let Ok(text) = std::str::from_utf8(raw) {
        if let Some(f) = fast::scan_into(text, profile, table) {
            return Ok((f.checked, true));
        }
    }
    parse(raw, profile).map(|(_, checked)| (checked, false))
}

/// Parses and validates a complete header text (§4), in the precedence order of §4.5.
/// Errors are returned as kinds; the caller knows the offset.
pub(crate) fn parse(
    raw: &[u8],
    profile: Profile,
) -> Result<(Map<String, Value>, Checked), DecodeErrorKind> {
    // 1. UTF-8.
    let text = std::str::from_utf8(raw).map_err(|e| DecodeErrorKind::HeaderNotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    // 2. JSON syntax. I-JSON violations are recorded, not raised, so that a syntax error later
    //    in the text still takes precedence (§4.5).
    let mut found = Violations::default();
    let mut de = serde_json::Deserializer::from_str(text);
    let value = ValueSeed { found: &mut found }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| DecodeErrorKind::HeaderNotJson {
            detail: e.to_string(),
        })?;
    // 2 (cont.). The parser caps of §4.2, also `header_not_json`.
    let version = caps::scan(text).map_err(|cap| DecodeErrorKind::HeaderNotJson {
        detail: cap.detail(),
    })?;
    // 3. An object.
    let members = match value {
        Value::Object(m) => m,
        other => {
            return Err(DecodeErrorKind::HeaderNotObject {
                found: json_type(&other),
            })
        }
    };
    // 4. I-JSON: duplicates.
    if let Some(name) = found.duplicate {
        return Err(DecodeErrorKind::DuplicateMember { name });
    }
    // 5. The version, before any rule a later version may change (§4.5): any integer literal
    //    other than 1, whatever its sign or size.
    if let Some(token) = version.filter(|t| caps::is_integer_literal(t) && *t != "1") {
        return Err(DecodeErrorKind::UnsupportedVersion {
            version: token.to_owned(),
        });
    }
    // 6. Number range.
    if let Some(number) = found.out_of_range {
        return Err(DecodeErrorKind::NumberOutOfRange { number });
    }
    // 7, 8. Registered members.
    let checked = validate_members(&members, profile)?;
    Ok((members, checked))
}

/// Serializes the members as canonical JSON (§9) after checking a receiver would accept them.
pub(crate) fn check_for_encoding(header: &Header, profile: Profile) -> Result<u64, EncodeError> {
    check_numbers(header.members())
        .and_then(|()| validate_members(header.members(), profile))
        .map(|c| c.body_len)
        .map_err(|kind| EncodeError::InvalidHeader(DecodeError::new(0, kind)))
}

/// Checks the registered members (§4.4) in the order of §4.5.
fn validate_members(
    members: &Map<String, Value>,
    profile: Profile,
) -> Result<Checked, DecodeErrorKind> {
    // One pass picks out the registered members; the checks below then run in §4.5 order.
    let mut slots: [Option<&Value>; 9] = [None; 9];
    for (k, v) in members {
        let i = match k.as_str() {
            "body_len" => 0,
            "file_size" => 1,
            "total_size" => 2,
            "kind" => 3,
            "id" => 4,
            "name" => 5,
            "sha256" => 6,
            "v" => 7,
            "md5" => 8,
            _ => continue,
        };
        if let Some(slot) = slots.get_mut(i) {
            *slot = Some(v);
        }
    }
    let [body_len_v, file_size, total_size, kind, id, name, sha256, version_v, md5] = slots;
    let lengths: [(&'static str, Option<&Value>); 3] = [
        ("body_len", body_len_v),
        ("file_size", file_size),
        ("total_size", total_size),
    ];
    let length_members = match profile {
        Profile::Lhp1 => &lengths[..1],
        Profile::SeedCompat => &lengths[..],
    };
    let mut body_len = None;
    for &(member, v) in length_members {
        let Some(v) = v else {
            continue;
        };
        let n = integer_literal(v).ok_or_else(|| DecodeErrorKind::InvalidBodyLen {
            member,
            reason: format!("must be an integer in 0..=2^53−1, not {v}"),
        })?;
        match body_len {
            Some((first, m)) if first != n => {
                return Err(DecodeErrorKind::InvalidBodyLen {
                    member,
                    reason: format!("is {n} but `{m}` is {first}; they must agree"),
                })
            }
            _ => body_len = Some((n, member)),
        }
    }
    let body_len = body_len.map_or(0, |(n, _)| n);

    if kind.is_some_and(|v| !v.is_string()) {
        return Err(invalid("kind", "a string"));
    }
    if id.is_some_and(|v| integer_literal(v).is_none()) {
        return Err(invalid("id", "an integer in 0..=2^53−1"));
    }
    if name.is_some_and(|v| !v.is_string()) {
        return Err(invalid("name", "a string"));
    }
    let mut digests = Vec::new();
    if let Some(v) = sha256 {
        let d = v
            .as_str()
            .and_then(|s| parse_hex::<32>(s, false))
            .ok_or_else(|| invalid("sha256", "a string of 64 lowercase hex digits"))?;
        digests.push(ExpectedDigest::Sha256(d));
    }
    // An integer literal other than 1 was refused at rank 5 (§4.5); what is left is either 1
    // or not an integer literal at all.
    match version_v {
        Some(v) if v.as_u64() == Some(1) => {}
        Some(v) if integer_literal(v).is_some() => {
            // Only reached for headers the application built (`check_for_encoding`).
            return Err(DecodeErrorKind::UnsupportedVersion {
                version: v.to_string(),
            });
        }
        Some(_) => return Err(invalid("v", "the integer 1")),
        None => {}
    }
    if profile == Profile::SeedCompat {
        // The seeds send placeholders such as "hih1jk5jk151jk51": only a real digest is one.
        if let Some(d) = md5
            .and_then(Value::as_str)
            .and_then(|s| parse_hex::<16>(s, true))
        {
            digests.push(ExpectedDigest::Md5(d));
        }
    }
    Ok(Checked { body_len, digests })
}

fn invalid(member: &'static str, expected: &'static str) -> DecodeErrorKind {
    DecodeErrorKind::InvalidMember { member, expected }
}

/// A JSON integer literal (no fraction, no exponent) in 0..=2^53−1.
fn integer_literal(v: &Value) -> Option<u64> {
    v.as_u64().filter(|&n| n <= MAX_SAFE_INTEGER)
}

/// The number-range rule for headers built by the application (received headers are checked
/// while parsing).
fn check_numbers(members: &Map<String, Value>) -> Result<(), DecodeErrorKind> {
    fn walk(v: &Value) -> Result<(), DecodeErrorKind> {
        match v {
            Value::Number(n) if !number_in_range(n) => Err(DecodeErrorKind::NumberOutOfRange {
                number: n.to_string(),
            }),
            Value::Array(a) => a.iter().try_for_each(walk),
            Value::Object(m) => m.values().try_for_each(walk),
            _ => Ok(()),
        }
    }
    members.values().try_for_each(walk)
}

fn number_in_range(n: &Number) -> bool {
    if let Some(u) = n.as_u64() {
        u <= MAX_SAFE_INTEGER
    } else if let Some(i) = n.as_i64() {
        i.unsigned_abs() <= MAX_SAFE_INTEGER
    } else {
        n.as_f64()
            .is_some_and(|f| f.abs() <= MAX_SAFE_INTEGER as f64)
    }
}

pub(crate) fn parse_hex<const N: usize>(s: &str, any_case: bool) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        *o = (nibble(*hi, any_case)? << 4) | nibble(*lo, any_case)?;
    }
    Some(out)
}

fn nibble(c: u8, any_case: bool) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' if any_case => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Lowercase hex of a digest.
pub fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The first I-JSON violations seen while parsing (§4.2).
#[derive(Default)]
struct Violations {
    duplicate: Option<String>,
    out_of_range: Option<String>,
}

/// Builds a `serde_json::Value` while recording duplicate names and out-of-range numbers at
/// any depth. `serde_json`'s own `Value` silently keeps the last duplicate.
struct ValueSeed<'a> {
    found: &'a mut Violations,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl ValueSeed<'_> {
    fn number(self, n: Number) -> Value {
        if self.found.out_of_range.is_none() && !number_in_range(&n) {
            self.found.out_of_range = Some(n.to_string());
        }
        Value::Number(n)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(self.number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(self.number(n.into()))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Value, E> {
        let n = Number::from_f64(f).ok_or_else(|| E::custom("number is not finite"))?;
        Ok(self.number(n))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let found = self.found;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
        while let Some(v) = seq.next_element_seed(ValueSeed { found: &mut *found })? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let found = self.found;
        // Headers typically have 3–8 members: sizing the map once avoids the rehash at 4.
        let mut members = Map::with_capacity(8);
        while let Some(name) = map.next_key::<String>()? {
            let value = map.next_value_seed(ValueSeed { found: &mut *found })?;
            match members.entry(name) {
                serde_json::map::Entry::Vacant(e) => {
                    e.insert(value);
                }
                serde_json::map::Entry::Occupied(e) => {
                    if found.duplicate.is_none() {
                        found.duplicate = Some(e.key().clone());
                    }
                }
            }
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(raw: &str) -> Result<u64, &'static str> {
        parse(raw.as_bytes(), Profile::Lhp1)
            .map(|(_, c)| c.body_len)
            .map_err(|k| DecodeError::new(0, k).code())
    }

    #[test]
    fn registered_members() {
        assert_eq!(
            code(r#"{"body_len":5,"kind":"x","id":1,"name":"n","v":1}"#),
            Ok(5)
        );
        assert_eq!(code(r#"{"body_len":"5"}"#), Err("invalid_body_len"));
        assert_eq!(code(r#"{"body_len":5.0}"#), Err("invalid_body_len"));
        assert_eq!(code(r#"{"body_len":-1}"#), Err("invalid_body_len"));
        assert_eq!(code(r#"{"kind":1}"#), Err("invalid_member"));
        assert_eq!(code(r#"{"v":2}"#), Err("unsupported_version"));
        assert_eq!(code(r#"{"v":"1"}"#), Err("invalid_member"));
        assert_eq!(code(r#"{"sha256":"AB"}"#), Err("invalid_member"));
    }

    #[test]
    fn ijson_rules_and_precedence() {
        assert_eq!(code(r#"{"a":1,"a":2}"#), Err("duplicate_member"));
        assert_eq!(code(r#"{"a":{"b":1,"\u0062":2}}"#), Err("duplicate_member"));
        assert_eq!(
            code(r#"{"a":9007199254740992}"#),
            Err("number_out_of_range")
        );
        assert_eq!(code(r#"{"a":-9007199254740991}"#), Ok(0));
        // A syntax error after a duplicate still wins: precedence is by rule, not position.
        assert_eq!(code(r#"{"a":1,"a":2,}"#), Err("header_not_json"));
        assert_eq!(
            code(r#"{"a":1,"a":9007199254740992}"#),
            Err("duplicate_member")
        );
        assert_eq!(code(r#"[1]"#), Err("header_not_object"));
        assert_eq!(code("\u{feff}{}"), Err("header_not_json"));
        assert_eq!(code(r#"{"a":"\ud800"}"#), Err("header_not_json"));
        assert_eq!(code(" {} \n"), Ok(0));
    }

    #[test]
    fn received_headers_are_sent_on_as_they_arrived_when_canonical() {
        let text = r#"{"file_name":"a.txt","file_size":3,"kind":"put"}"#;
        let (h, _) = parse_header(text.as_bytes(), Profile::SeedCompat).unwrap();
        assert_eq!(h.body_len(), 3);
        assert_eq!(h.kind(), Some("put"));
        // Same profile: the text as it is, with the length it was accepted with.
        let (json, declared) = h.encoding(Profile::SeedCompat).unwrap();
        assert!(matches!(json, Encoding::Text(t) if t == text));
        assert_eq!(declared, 3);
        // Another profile reads the length differently: checked again.
        let (_, declared) = h.encoding(Profile::Lhp1).unwrap();
        assert_eq!(declared, 0);
        // Changed: members again, and the text is gone.
        let mut changed = h.clone();
        changed.set_kind("get");
        let (json, _) = changed.encoding(Profile::SeedCompat).unwrap();
        assert!(matches!(json, Encoding::Members(m) if m.get("kind") == Some(&Value::from("get"))));
        assert_eq!(changed.kind(), Some("get"));
        assert_ne!(changed, h);
        // Not canonical (whitespace): serialized from the members.
        let (h, _) = parse_header(br#"{"kind": "x"}"#, Profile::Lhp1).unwrap();
        assert!(matches!(
            h.encoding(Profile::Lhp1).unwrap().0,
            Encoding::Members(_)
        ));
        assert_eq!(h.to_string(), r#"{"kind":"x"}"#);
    }

    #[test]
    fn lhp1_length_is_only_body_len() {
        // `file_size` is an ordinary member in lhp1: setting the body length leaves it alone.
        let mut h = Header::with_kind("put");
        h.insert("file_size", "abc").insert("total_size", 5);
        assert_eq!(h.body_len(), 0);
        h.set_body_len(3);
        assert_eq!(h.get("file_size"), Some(&Value::from("abc")));
        assert_eq!(h.get("total_size"), Some(&Value::from(5)));
        assert_eq!(h.get("body_len"), Some(&Value::from(3)));
        // In seed-compat the length members present are the ones updated.
        let mut s = Header::new();
        s.insert("file_name", "a").insert("file_size", 0);
        s.set_body_len_for(Profile::SeedCompat, 9);
        assert_eq!(s.get("file_size"), Some(&Value::from(9)));
        assert_eq!(s.get("body_len"), None);
    }

    #[test]
    fn seed_compat_lengths_and_md5() {
        let p = |s: &str| {
            parse(s.as_bytes(), Profile::SeedCompat)
                .map(|(_, c)| (c.body_len, !c.digests.is_empty()))
                .map_err(|k| DecodeError::new(0, k).code())
        };
        assert_eq!(p(r#"{"file_size": 3}"#), Ok((3, false)));
        assert_eq!(
            p(r#"{"total_size": 3, "md5": "hih1jk5jk151jk51"}"#),
            Ok((3, false))
        );
        assert_eq!(
            p(r#"{"file_size": 3, "md5": "900150983CD24FB0D6963F7D28E17F72"}"#),
            Ok((3, true))
        );
        assert_eq!(
            p(r#"{"file_size": 3, "total_size": 4}"#),
            Err("invalid_body_len")
        );
    }
}
