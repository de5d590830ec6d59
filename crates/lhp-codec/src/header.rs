//! The JSON header (§4): typed access to the registered members, unknown members kept in
//! order, and the I-JSON validation every received header goes through.

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Serialize;
use serde_json::{Map, Number, Value};

use crate::caps;
use crate::error::{DecodeError, DecodeErrorKind, EncodeError};
use crate::fast::{self, Fields, Span};
use crate::members::{Built, MemberRef, Reg};
use crate::Profile;

/// The largest integer I-JSON allows: 2^53−1 (§4.2).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// The registered members of `lhp1`, in the order §4.5 checks them.
pub const REGISTERED: [&str; 6] = ["body_len", "kind", "id", "name", "sha256", "v"];

/// A frame's header: a JSON object whose members keep the order they were given in.
///
/// The registered members (§4.4) have typed accessors and setters; every other member is an
/// extension and is preserved for the application (§4.3).
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
/// assert_eq!(h.to_string(), r#"{"kind":"echo","id":7,"trace":"abc"}"#);
/// ```
///
/// Two headers are equal when their members are: the same names with the same values in the
/// same order.
///
/// # Building a header
///
/// The registered members `kind`, `id`, `name`, `sha256`, `body_len` and `v` are typed fields,
/// not map entries, and the other members are kept in a small ordered list. Strings are taken
/// as `impl Into<Cow<'static, str>>`: a `&'static str` is kept as it is, a `String` moves in
/// without a copy (pass `s.to_owned()` for a borrowed `&str`). So a header of registered
/// members allocates nothing beyond what the caller hands over, and the encoder writes its
/// canonical text (§9) straight into the output buffer. Members are written in the order
/// they were first given; a member given again keeps its place.
///
/// # A received header
///
/// A received header keeps its JSON text (a slice of the receive buffer, not a copy) and
/// parses it into members only when they are first asked for: the typed accessors
/// ([`kind`](Self::kind), [`id`](Self::id), [`name`](Self::name), [`sha256`](Self::sha256),
/// [`version`](Self::version), [`body_len`](Self::body_len)) read the text directly, and a
/// received header sent on unchanged is written out as it arrived (when that text is
/// canonical, §9).
///
/// # Map-style access
///
/// [`get`](Self::get) of an extension reads it where it is kept; [`members`](Self::members),
/// and [`get`](Self::get) of a registered member, build a `serde_json::Map` of all members
/// the first time they are called (kept until the header changes). Prefer the typed
/// accessors on hot paths.
#[derive(Clone, Debug, Default)]
pub struct Header {
    repr: Repr,
    /// The body length declared (see [`Header::body_len`]).
    body_len: u64,
    /// All members as a map, built when first asked for; emptied by every change.
    view: OnceLock<Box<Map<String, Value>>>,
}

#[derive(Clone, Debug)]
enum Repr {
    /// Built by the application, or received through the general parser.
    Built(Built),
    /// Received through the fast path, unchanged since.
    Received(Received),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Built(Built::default())
    }
}

/// A header as the decoder's fast path accepted it.
#[derive(Clone, Debug)]
struct Received {
    /// The header text (valid UTF-8), cut out of the receive buffer.
    text: Bytes,
    fields: Fields,
    /// `text` is what the encoder would write for these members.
    canonical: bool,
    /// The profile that read the body length.
    profile: Profile,
}

impl Received {
    fn text(&self) -> &str {
        // Validated as UTF-8 before it was kept; the fallback is never taken.
        std::str::from_utf8(&self.text).unwrap_or_default()
    }

    fn span(&self, span: Span) -> Option<&str> {
        match span {
            Span::Plain(start, end) => self
                .text
                .get(start as usize..end as usize)
                .and_then(|s| std::str::from_utf8(s).ok()),
            Span::Absent | Span::Escaped => None,
        }
    }

    fn parse(&self) -> Map<String, Value> {
        // The fast path accepted this text: it parses, and has no duplicate names.
        serde_json::from_slice(&self.text).unwrap_or_default()
    }
}

impl Header {
    /// An empty header (`{}`), body length 0.
    #[inline]
    pub fn new() -> Self {
        Header::default()
    }

    /// A header with just `kind`.
    #[inline]
    pub fn with_kind(kind: impl Into<Cow<'static, str>>) -> Self {
        // Written in place: the same header as `new` + `set_kind`.
        Header {
            repr: Repr::Built(Built::with_kind(kind.into())),
            body_len: 0,
            view: OnceLock::new(),
        }
    }

    /// Validates a member map under `profile` (§4, with the parser caps of §4.2) and makes it
    /// a header.
    pub fn from_members(
        members: Map<String, Value>,
        profile: Profile,
    ) -> Result<Self, EncodeError> {
        let body_len = check_map(&members, profile)?;
        Ok(Header {
            repr: Repr::Built(Built::from_map(members)),
            body_len,
            view: OnceLock::new(),
        })
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
        match &self.repr {
            Repr::Received(r) => serde_json::from_slice(&r.text),
            Repr::Built(b) => {
                let mut text = BytesMut::new();
                b.write(&mut text)?;
                serde_json::from_slice(&text)
            }
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
        match &self.repr {
            Repr::Received(r) => self.received_str(r, r.fields.kind, "kind"),
            Repr::Built(b) => b.kind(),
        }
    }

    /// `id`: correlates a reply with its request.
    pub fn id(&self) -> Option<u64> {
        match &self.repr {
            Repr::Received(r) => r.fields.id,
            Repr::Built(b) => b.id(),
        }
    }

    /// `name`: a file or resource name (untrusted: see §11).
    pub fn name(&self) -> Option<&str> {
        match &self.repr {
            Repr::Received(r) => self.received_str(r, r.fields.name, "name"),
            Repr::Built(b) => b.name(),
        }
    }

    /// `sha256`: lowercase hex digest of the body.
    pub fn sha256(&self) -> Option<&str> {
        match &self.repr {
            Repr::Received(r) => self.received_str(r, r.fields.sha256, "sha256"),
            Repr::Built(b) => b.sha256(),
        }
    }

    /// `v`: the protocol version (1 when present).
    pub fn version(&self) -> Option<u64> {
        match &self.repr {
            Repr::Received(r) => r.fields.v,
            Repr::Built(b) => b.version(),
        }
    }

    /// Any member, registered or not. An extension of a header being built is read where it
    /// is kept; anything else goes through [`members`](Self::members).
    pub fn get(&self, name: &str) -> Option<&Value> {
        if let Repr::Built(b) = &self.repr {
            if let Some(v) = b.ext_get(name) {
                return Some(v);
            }
            if Reg::from_name(name).is_none() || !b.contains(name) {
                return None;
            }
        }
        self.members().get(name)
    }

    /// True when the header has a member `name`, whatever its value.
    pub fn contains(&self, name: &str) -> bool {
        match &self.repr {
            Repr::Built(b) => b.contains(name),
            Repr::Received(_) => self.members().contains_key(name),
        }
    }

    /// All members, in order, as a map: built the first time it is asked for after a change
    /// (an allocation per member), then kept.
    pub fn members(&self) -> &Map<String, Value> {
        self.view.get_or_init(|| {
            Box::new(match &self.repr {
                Repr::Received(r) => r.parse(),
                Repr::Built(b) => b.to_map(),
            })
        })
    }

    /// The members that are not registered in `lhp1`, in order (§4.3).
    pub fn extensions(&self) -> impl Iterator<Item = (&str, &Value)> {
        let (built, map) = match &self.repr {
            Repr::Built(b) => (Some(b.extensions()), None),
            Repr::Received(_) => (None, Some(self.members().iter())),
        };
        let map = map
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v))
            .filter(|(k, _)| !REGISTERED.contains(k));
        built.into_iter().flatten().chain(map)
    }

    /// Consumes the header, returning its members.
    pub fn into_members(mut self) -> Map<String, Value> {
        if let Some(view) = self.view.take() {
            return *view;
        }
        match &self.repr {
            Repr::Received(r) => r.parse(),
            Repr::Built(b) => b.to_map(),
        }
    }

    /// A string member of a received header: from its text when it is there unescaped.
    fn received_str<'a>(&'a self, r: &'a Received, span: Span, name: &str) -> Option<&'a str> {
        match span {
            Span::Absent => None,
            Span::Plain(..) => r.span(span),
            Span::Escaped => self.members().get(name).and_then(Value::as_str),
        }
    }

    /// The members, for a change: the received text no longer describes the header.
    #[inline]
    fn built(&mut self) -> &mut Built {
        // A header being built with no map view (the common case) is changed in place.
        if matches!(self.repr, Repr::Received(_)) || self.view.get_mut().is_some() {
            self.unshare();
        }
        match &mut self.repr {
            Repr::Built(b) => b,
            Repr::Received(_) => unreachable!("a received header was converted by unshare"),
        }
    }

    /// Makes a received header a built one, and drops the map view.
    #[cold]
    #[inline(never)]
    fn unshare(&mut self) {
        if let Repr::Received(r) = &self.repr {
            let map = match self.view.take() {
                Some(view) => *view,
                None => r.parse(),
            };
            self.repr = Repr::Built(Built::from_map(map));
        }
        self.view.take();
    }

    /// Sets `kind`.
    #[inline]
    pub fn set_kind(&mut self, kind: impl Into<Cow<'static, str>>) -> &mut Self {
        self.built().set_str(Reg::Kind, kind.into());
        self
    }

    /// Sets `id`.
    #[inline]
    pub fn set_id(&mut self, id: u64) -> &mut Self {
        self.built().set_int(Reg::Id, id);
        self
    }

    /// Sets `name`.
    #[inline]
    pub fn set_name(&mut self, name: impl Into<Cow<'static, str>>) -> &mut Self {
        self.built().set_str(Reg::Name, name.into());
        self
    }

    /// Sets `sha256` from a 32-octet digest (kept as its 64 hex digits, no allocation).
    #[inline]
    pub fn set_sha256(&mut self, digest: &[u8; 32]) -> &mut Self {
        self.built().set_sha256(digest);
        self
    }

    /// Sets `v`, the protocol version (1 is the only one a receiver accepts, §4.4).
    #[inline]
    pub fn set_version(&mut self, v: u64) -> &mut Self {
        self.built().set_int(Reg::V, v);
        self
    }

    /// Sets the body length the `lhp1` way: the `body_len` member, added when `len > 0` or
    /// replaced when present. (`file_size` and `total_size` are ordinary members in `lhp1`.)
    #[inline]
    pub fn set_body_len(&mut self, len: u64) -> &mut Self {
        self.set_body_len_for(Profile::Lhp1, len)
    }

    /// Sets the body length as `profile` carries it (§3.3, §4.4). In `seed-compat` every body
    /// length member present (`body_len`, `file_size`, `total_size`) is updated, and `body_len`
    /// is added only when none is present and `len > 0`.
    #[inline]
    pub fn set_body_len_for(&mut self, profile: Profile, len: u64) -> &mut Self {
        if let Repr::Received(r) = &self.repr {
            // Received under this profile with this length: every length member agrees.
            if r.profile == profile && len == self.body_len {
                return self;
            }
        }
        if profile == Profile::Lhp1 {
            // Only `body_len` carries the length: set when present (whatever its value) or
            // when `len > 0`.
            let b = self.built();
            if len > 0 || b.contains_reg(Reg::BodyLen) {
                b.set_int(Reg::BodyLen, len);
            }
            self.body_len = len;
            return self;
        }
        self.set_seed_compat_len(profile, len)
    }

    /// [`set_body_len_for`](Self::set_body_len_for) outside `lhp1`: every length member.
    fn set_seed_compat_len(&mut self, profile: Profile, len: u64) -> &mut Self {
        let b = self.built();
        let mut found = b.contains("body_len");
        if found {
            b.set_int(Reg::BodyLen, len);
        }
        if profile == Profile::SeedCompat {
            for member in &LENGTH_MEMBERS[1..] {
                found |= b.replace_ext(member, Value::from(len));
            }
        }
        if !found && len > 0 {
            b.set_int(Reg::BodyLen, len);
        }
        self.body_len = len;
        self
    }

    /// Inserts or replaces any member (a replaced member keeps its place). Registered
    /// members are checked when the frame is encoded; inserting `body_len` also sets
    /// [`body_len`](Self::body_len).
    #[inline]
    pub fn insert(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Value>,
    ) -> &mut Self {
        let name = name.into();
        let value = value.into();
        // A registered member of its registered type goes straight to its typed field
        // (what `Built::insert` would do, without looking the name up again).
        match (Reg::from_name(&name), value) {
            (Some(reg @ (Reg::Id | Reg::BodyLen | Reg::V)), Value::Number(n)) if n.is_u64() => {
                let n = n.as_u64().unwrap_or_default();
                if reg == Reg::BodyLen {
                    self.body_len = n;
                }
                self.built().set_int(reg, n);
                self
            }
            (Some(reg @ (Reg::Kind | Reg::Name)), Value::String(s)) => {
                self.built().set_str(reg, Cow::Owned(s));
                self
            }
            (_, value) => self.insert_value(name, value),
        }
    }

    /// [`insert`](Self::insert) of any other member or value type.
    fn insert_value(&mut self, name: Cow<'static, str>, value: Value) -> &mut Self {
        if name == "body_len" {
            if let Some(n) = value.as_u64() {
                self.body_len = n;
            }
        }
        self.built().insert(name, value);
        self
    }

    /// Removes a member, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let v = self.built().remove(name);
        if name == "body_len" && v.is_some() {
            self.body_len = 0;
        }
        v
    }

    /// The members in order, however they are kept.
    fn iter(&self) -> impl Iterator<Item = (&str, MemberRef<'_>)> {
        let (built, map) = match &self.repr {
            Repr::Built(b) => (Some(b.iter()), None),
            Repr::Received(_) => (None, Some(self.members().iter())),
        };
        let map = map
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), MemberRef::Value(v)));
        built.into_iter().flatten().chain(map)
    }

    /// The JSON text to send for this header under `profile`, checked as a receiver would
    /// check it (§4), and the body length it declares.
    pub(crate) fn encoding(&self, profile: Profile) -> Result<(Encoding<'_>, u64), EncodeError> {
        match &self.repr {
            Repr::Received(r) => {
                if r.canonical {
                    // Accepted under this very profile when it arrived: nothing to check again.
                    if r.profile == profile {
                        return Ok((Encoding::Text(&r.text), self.body_len));
                    }
                    if let Some(f) = fast::scan(r.text(), profile) {
                        return Ok((Encoding::Text(&r.text), f.checked.body_len));
                    }
                }
                let members = self.members();
                Ok((Encoding::Members(members), check_map(members, profile)?))
            }
            Repr::Built(b) => {
                // The registered members are typed, so they are valid by construction when
                // the integers are in range; else (or in `seed-compat`, whose length and
                // digest members are extensions here) every rule is checked on the map.
                if profile == Profile::Lhp1 && !b.has_mistyped() && b.integers_valid() {
                    let fail = |kind| EncodeError::InvalidHeader(DecodeError::new(0, kind));
                    // Registered members are scalars: within the member count, only the
                    // extensions can break a cap.
                    let capped = if b.len() > caps::MAX_MEMBERS {
                        caps::check_members(b.iter().map(|(_, v)| v))
                    } else {
                        caps::check_members(b.ext_values().map(MemberRef::Value))
                    };
                    capped.map_err(|cap| {
                        fail(DecodeErrorKind::HeaderNotJson {
                            detail: cap.detail(),
                        })
                    })?;
                    b.ext_values()
                        .try_for_each(check_number_range)
                        .map_err(fail)?;
                    return Ok((Encoding::Built(b), b.body_len().unwrap_or(0)));
                }
                let members = self.members();
                Ok((Encoding::Members(members), check_map(members, profile)?))
            }
        }
    }
}

/// How a header is written (see [`Header::encoding`]).
pub(crate) enum Encoding<'a> {
    /// Canonical text as received.
    Text(&'a [u8]),
    /// Members to serialize.
    Members(&'a Map<String, Value>),
    /// A header built member by member.
    Built(&'a Built),
}

impl Encoding<'_> {
    /// Appends the header text.
    pub(crate) fn write(&self, out: &mut BytesMut) -> serde_json::Result<()> {
        match self {
            Encoding::Text(text) => {
                out.extend_from_slice(text);
                Ok(())
            }
            Encoding::Members(members) => crate::json::write_members(members, out),
            Encoding::Built(b) => b.write(out),
        }
    }
}

impl PartialEq for Header {
    fn eq(&self, other: &Self) -> bool {
        // `body_len` is derived from the members (and the profile that read them).
        if let (Repr::Received(a), Repr::Received(b)) = (&self.repr, &other.repr) {
            if a.canonical && b.canonical && a.text == b.text {
                return true;
            }
        }
        let mut a = self.iter();
        let mut b = other.iter();
        loop {
            match (a.next(), b.next()) {
                (None, None) => return true,
                (Some((na, va)), Some((nb, vb))) if na == nb && va.same(vb) => {}
                _ => return false,
            }
        }
    }
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = BytesMut::new();
        let written = match &self.repr {
            Repr::Received(r) if r.canonical => return f.write_str(r.text()),
            Repr::Received(_) => crate::json::write_members(self.members(), &mut out),
            Repr::Built(b) => b.write(&mut out),
        };
        match (written, std::str::from_utf8(&out)) {
            (Ok(()), Ok(text)) => f.write_str(text),
            _ => Err(fmt::Error),
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
/// The text is copied; the decoder uses [`check_header`] to keep a slice of its buffer.
pub(crate) fn parse_header(
    raw: &[u8],
    profile: Profile,
) -> Result<(Header, Checked), DecodeErrorKind> {
    let (pending, checked) = check_header(raw, profile)?;
    let header = pending.into_header(|| Bytes::copy_from_slice(raw));
    Ok((header, checked))
}

/// A received header validated but not yet made a [`Header`] (see [`check_header`]).
pub(crate) struct Pending {
    body_len: u64,
    profile: Profile,
    how: How,
}

enum How {
    /// Accepted by the fast path: the header keeps the text.
    Fast { fields: Fields, canonical: bool },
    /// Parsed by the general parser.
    General(Map<String, Value>),
}

impl Pending {
    /// True when the header will keep its text (it came through the fast path).
    pub(crate) fn keeps_text(&self) -> bool {
        matches!(self.how, How::Fast { .. })
    }

    /// The header, given its text (the octets [`check_header`] checked) when it needs it.
    pub(crate) fn into_header(self, text: impl FnOnce() -> Bytes) -> Header {
        let repr = match self.how {
            How::Fast { fields, canonical } => Repr::Received(Received {
                text: text(),
                fields,
                canonical,
                profile: self.profile,
            }),
            How::General(members) => Repr::Built(Built::from_map(members)),
        };
        Header {
            repr,
            body_len: self.body_len,
            view: OnceLock::new(),
        }
    }
}

/// Validates a complete received header (§4): through the fast path when it can, else
/// through [`parse`]. The [`Header`] is made afterwards ([`Pending::into_header`]), so that
/// the decoder can cut the text out of its buffer only once the frame is accepted.
pub(crate) fn check_header(
    raw: &[u8],
    profile: Profile,
) -> Result<(Pending, Checked), DecodeErrorKind> {
    // The fast path checks UTF-8 as it goes: a text it accepts is UTF-8.
    if let Some(f) = fast::scan_raw(raw, profile, None) {
        let pending = Pending {
            body_len: f.checked.body_len,
            profile,
            how: How::Fast {
                fields: f.fields,
                canonical: f.canonical,
            },
        };
        return Ok((pending, f.checked));
    }
    let (members, checked) = parse(raw, profile)?;
    let pending = Pending {
        body_len: checked.body_len,
        profile,
        how: How::General(members),
    };
    Ok((pending, checked))
}

/// Validates a complete received header (§4) without building a [`Header`]: the fast path
/// when it can, else [`parse`] (which names every error).
/// Through the fast path (`true`), also fills `table` with the members it read.
pub(crate) fn validate(
    raw: &[u8],
    profile: Profile,
    table: Option<&mut fast::Table>,
) -> Result<(Checked, bool), DecodeErrorKind> {
    // The fast path checks UTF-8 as it goes: a text it accepts is UTF-8.
    if let Some(f) = fast::scan_raw(raw, profile, table) {
        return Ok((f.checked, true));
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

/// Checks members given by the application as a receiver would check them (§4.2 caps, §4.2
/// number range, §4.4 registered members); returns the body length they declare.
pub(crate) fn check_map(
    members: &Map<String, Value>,
    profile: Profile,
) -> Result<u64, EncodeError> {
    let fail = |kind| EncodeError::InvalidHeader(DecodeError::new(0, kind));
    caps::check_members(members.values().map(MemberRef::Value)).map_err(|cap| {
        fail(DecodeErrorKind::HeaderNotJson {
            detail: cap.detail(),
        })
    })?;
    // 5. The version before the number range, as a receiver ranks them (§4.5, decisions E8):
    //    any integer `v` other than 1, whatever its size.
    if let Some(v @ Value::Number(n)) = members.get("v") {
        if (n.is_u64() || n.is_i64()) && n.as_u64() != Some(1) {
            return Err(fail(DecodeErrorKind::UnsupportedVersion {
                version: v.to_string(),
            }));
        }
    }
    members
        .values()
        .try_for_each(check_number_range)
        .map_err(fail)?;
    validate_members(members, profile)
        .map(|c| c.body_len)
        .map_err(fail)
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
    // An integer other than 1 was refused at rank 5 (§4.5) by both callers (`parse` for a
    // received header, `check_map` for one the application built); what is left is either 1
    // or not an integer at all.
    match version_v {
        Some(v) if v.as_u64() == Some(1) => {}
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

/// The number-range rule (§4.2) for a value given by the application (received headers are
/// checked while parsing).
fn check_number_range(v: &Value) -> Result<(), DecodeErrorKind> {
    match v {
        Value::Number(n) if !number_in_range(n) => Err(DecodeErrorKind::NumberOutOfRange {
            number: n.to_string(),
        }),
        Value::Array(a) => a.iter().try_for_each(check_number_range),
        Value::Object(m) => m.values().try_for_each(check_number_range),
        _ => Ok(()),
    }
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

    /// §3.3: in seed-compat every length member present must agree; agreeing ones give the
    /// length, a disagreeing one is `invalid_body_len` naming it.
    #[test]
    fn seed_compat_length_members_must_agree() {
        let seed = |raw: &str| {
            parse(raw.as_bytes(), Profile::SeedCompat)
                .map(|(_, c)| c.body_len)
                .map_err(|k| DecodeError::new(0, k).to_string())
        };
        assert_eq!(seed(r#"{"file_size":3}"#), Ok(3));
        assert_eq!(
            seed(r#"{"body_len":3,"file_size":3,"total_size":3}"#),
            Ok(3)
        );
        let e = seed(r#"{"body_len":3,"total_size":4}"#).unwrap_err();
        assert!(
            e.contains("invalid_body_len") && e.contains("total_size"),
            "{e}"
        );
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

    /// Setting the body length of a received header keeps it only when nothing changes (the
    /// same profile and the same length); a new length, or the length as another profile
    /// carries it, is written into the members (§3.3, §4.4).
    #[test]
    fn setting_the_body_length_of_a_received_header() {
        let (lhp1, _) = parse_header(br#"{"kind":"put","body_len":3}"#, Profile::Lhp1).unwrap();
        let mut same = lhp1.clone();
        same.set_body_len(3);
        assert!(matches!(
            same.encoding(Profile::Lhp1).unwrap().0,
            Encoding::Text(_)
        ));
        let mut longer = lhp1.clone();
        longer.set_body_len(5);
        assert_eq!(longer.body_len(), 5);
        assert_eq!(longer.to_string(), r#"{"kind":"put","body_len":5}"#);
        // Read in seed-compat (`file_size`), then set for lhp1: `body_len` is added.
        let (seed, _) =
            parse_header(br#"{"kind":"put","file_size":3}"#, Profile::SeedCompat).unwrap();
        assert_eq!(seed.body_len(), 3);
        let mut h = seed.clone();
        h.set_body_len(3);
        assert_eq!(
            h.to_string(),
            r#"{"kind":"put","file_size":3,"body_len":3}"#
        );
        assert_eq!(h.encoding(Profile::Lhp1).unwrap().1, 3);
    }

    /// In seed-compat every length member present is updated; `body_len` is added only when
    /// there is none and the body is not empty.
    #[test]
    fn seed_compat_lengths_update_what_is_there() {
        let set = |h: &Header, len: u64| {
            let mut h = h.clone();
            h.set_body_len_for(Profile::SeedCompat, len);
            h.to_string()
        };
        let bare = Header::with_kind("cmd");
        assert_eq!(set(&bare, 0), r#"{"kind":"cmd"}"#);
        assert_eq!(set(&bare, 5), r#"{"kind":"cmd","body_len":5}"#);
        let mut sized = Header::with_kind("cmd");
        sized.insert("total_size", 1).insert("file_size", 1);
        assert_eq!(
            set(&sized, 0),
            r#"{"kind":"cmd","total_size":0,"file_size":0}"#
        );
        assert_eq!(
            set(&sized, 9),
            r#"{"kind":"cmd","total_size":9,"file_size":9}"#
        );
    }

    /// `from_serialize` gives the members of the value, in its field order, checked as a
    /// receiver checks them; a value that is not an object, or breaks a member rule, is an
    /// error naming the rule.
    #[test]
    fn from_serialize_takes_the_members_of_an_object() {
        #[derive(serde::Serialize)]
        struct Put<'a> {
            kind: &'a str,
            name: &'a str,
            body_len: u64,
            extra: bool,
        }
        let put = Put {
            kind: "put",
            name: "a.txt",
            body_len: 3,
            extra: true,
        };
        let h = Header::from_serialize(&put).unwrap();
        assert_eq!(
            (h.kind(), h.name(), h.body_len()),
            (Some("put"), Some("a.txt"), 3)
        );
        assert_eq!(
            h.to_string(),
            r#"{"kind":"put","name":"a.txt","body_len":3,"extra":true}"#
        );
        let e = Header::from_serialize(&[1, 2]).unwrap_err();
        assert!(e.to_string().contains("header_not_object"), "{e}");
        let e = Header::from_serialize(&serde_json::json!({"kind": 7})).unwrap_err();
        assert!(e.to_string().contains("invalid_member"), "{e}");
    }

    /// `extensions()` lists the members `lhp1` does not register, in order, the same for a
    /// built header and a received one; a registered name holding a value of another type (in
    /// a header being built, which the encoder will refuse) is not an extension.
    #[test]
    fn extensions_are_the_unregistered_members_in_order() {
        let mut built = Header::with_kind("x");
        built
            .insert("b", 2)
            .set_id(1)
            .insert("a", "one")
            .insert("name", 5);
        let (received, _) =
            parse_header(br#"{"kind":"x","b":2,"id":1,"a":"one"}"#, Profile::Lhp1).unwrap();
        for h in [&built, &received] {
            let ext: Vec<(&str, &Value)> = h.extensions().collect();
            assert_eq!(ext, [("b", &Value::from(2)), ("a", &Value::from("one"))]);
        }
    }

    /// Headers are equal when their members are, in order, as JSON values, whether built or
    /// received: a built integer equals the same received integer, never another one.
    #[test]
    fn built_and_received_headers_compare_by_value() {
        // Not canonical (spaces), so compared member by member, not by text.
        let (received, _) =
            parse_header(br#"{"kind": "x", "id": 5, "name": "n"}"#, Profile::Lhp1).unwrap();
        let built = |kind: &'static str, id: u64, name: &'static str| {
            let mut h = Header::with_kind(kind);
            h.set_id(id).set_name(name);
            h
        };
        assert_eq!(built("x", 5, "n"), received);
        assert_eq!(received, built("x", 5, "n"));
        for other in [built("x", 6, "n"), built("y", 5, "n"), built("x", 5, "m")] {
            assert_ne!(other, received, "{other}");
            assert_ne!(received, other, "{other}");
        }
        let mut mistyped = Header::with_kind("x");
        mistyped.insert("id", "5").set_name("n");
        assert_ne!(mistyped, received);
        // Two received headers: equal by their members, canonical text or not.
        let got = |text: &[u8]| parse_header(text, Profile::Lhp1).unwrap().0;
        let canonical = got(br#"{"kind":"x","id":5,"name":"n"}"#);
        assert_eq!(canonical, received);
        assert_eq!(canonical, got(br#"{"kind":"x","id":5,"name":"n"}"#));
        for other in [
            got(br#"{"kind":"x","id":6,"name":"n"}"#),
            got(br#"{"kind": "x", "id": 6, "name": "n"}"#),
        ] {
            assert_ne!(canonical, other);
            assert_ne!(other, canonical);
        }
    }

    #[test]
    fn received_headers_are_sent_on_as_they_arrived_when_canonical() {
        let text = r#"{"file_name":"a.txt","file_size":3,"kind":"put"}"#;
        let (h, _) = parse_header(text.as_bytes(), Profile::SeedCompat).unwrap();
        assert_eq!(h.body_len(), 3);
        assert_eq!(h.kind(), Some("put"));
        // Same profile: the text as it is, with the length it was accepted with.
        let (json, declared) = h.encoding(Profile::SeedCompat).unwrap();
        assert!(matches!(json, Encoding::Text(t) if t == text.as_bytes()));
        assert_eq!(declared, 3);
        assert_eq!(h.to_string(), text);
        // Another profile reads the length differently: checked again.
        let (_, declared) = h.encoding(Profile::Lhp1).unwrap();
        assert_eq!(declared, 0);
        // Changed: members again, and the text is gone.
        let mut changed = h.clone();
        changed.set_kind("get");
        let (json, _) = changed.encoding(Profile::SeedCompat).unwrap();
        assert!(matches!(json, Encoding::Members(m) if m.get("kind") == Some(&Value::from("get"))));
        // In lhp1 the typed members are written directly.
        let (json, _) = changed.encoding(Profile::Lhp1).unwrap();
        assert!(matches!(json, Encoding::Built(b) if b.kind() == Some("get")));
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
