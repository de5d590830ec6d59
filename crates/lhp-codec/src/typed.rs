//! Typed headers through serde (§4, §9): a user's own `#[derive(Serialize, Deserialize)]`
//! struct as the header, encoded straight onto the wire and decoded borrowed from the frame.
//!
//! ```
//! use bytes::BytesMut;
//! use lhp_codec::{Decoder, Encoder};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Upload<'a> {
//!     kind: &'a str,
//!     id: u64,
//!     name: &'a str,
//! }
//!
//! let mut wire = BytesMut::new();
//! let up = Upload { kind: "put", id: 7, name: "a.txt" };
//! // `body_len` is filled in; the header is checked as a receiver checks it.
//! Encoder::new().encode_typed(&up, b"abc", &mut wire).unwrap();
//! assert_eq!(&wire[4..], &br#"{"kind":"put","id":7,"name":"a.txt","body_len":3}abc"#[..]);
//!
//! let mut dec = Decoder::new();
//! let frame = dec.decode_ref(&wire).unwrap().unwrap(); // borrows `wire`
//! let back: Upload<'_> = frame.header().unwrap(); // borrows the header text: no allocation
//! assert_eq!((back, frame.body()), (up, &b"abc"[..]));
//! ```
//!
//! A received header goes through the same §4 validation pass as every other header
//! (duplicates, number ranges, the registered members' types, the body length limit, the
//! digest) before it is deserialized. A struct field that names a registered member must agree
//! with the frame; a header that does not fit the struct is a [`TypedError`] naming the
//! member, never a panic.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::ops::Range;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::de::value::{BorrowedStrDeserializer, StringDeserializer};
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::Serialize;

use crate::canon;
use crate::decoder::{MIN_HEADER_LEN, PREFIX_LEN};
use crate::error::{DecodeError, DecodeErrorKind, EncodeError};
use crate::fast::{Entry, Table, Val};
use crate::header::{self, parse_header, MAX_SAFE_INTEGER};
use crate::{Encoder, Frame, Header, Profile};

/// Room reserved for a header before encoding it: most headers fit, so the one pass rarely
/// grows the buffer while it writes.
const HEAD_ROOM: usize = 128;

/// A frame decoded in place: its validated header text and its body, both borrowed from the
/// caller's buffer (see [`Decoder::decode_ref`](crate::Decoder::decode_ref)).
///
/// It also borrows the decoder that lent it out: the members the §4 validation pass read
/// (the fast path's member table, which [`header`](Self::header) deserializes from) stay in
/// the decoder and are not copied into each frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRef<'a> {
    header: &'a str,
    body: &'a [u8],
    len: usize,
    profile: Profile,
    /// The decoder's member table for this header, when the fast path read all its members.
    table: Option<&'a Table>,
}

impl<'a> FrameRef<'a> {
    #[inline]
    pub(crate) fn new(
        buf: &'a [u8],
        span: &FrameSpan,
        profile: Profile,
        table: Option<&'a Table>,
    ) -> Option<Self> {
        let header = std::str::from_utf8(buf.get(span.header.clone())?).ok()?;
        let body = buf.get(span.body.clone())?;
        Some(FrameRef {
            header,
            body,
            len: span.body.end,
            profile,
            table,
        })
    }

    /// The header deserialized into `T`, borrowing from the header text (`&'a str` fields
    /// cost nothing). See [`TypedError`] for what is checked.
    pub fn header<T: Deserialize<'a>>(&self) -> Result<T, TypedError> {
        deserialize_header(
            self.header,
            self.table,
            self.body.len() as u64,
            self.profile,
        )
    }

    /// The header's JSON text, as it arrived (validated: §4).
    pub fn header_text(&self) -> &'a str {
        self.header
    }

    /// The body (its digest, if the header has one, verified).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Octets the frame took on the wire: prefix, header and body.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for no frame octets at all (never: a frame has at least a prefix and `{}`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The header as a map-style [`Header`] (allocates).
    pub fn to_header(&self) -> Header {
        to_header(self.header, self.profile)
    }

    /// An owned [`Frame`] (allocates and copies the body).
    pub fn to_frame(&self) -> Frame {
        Frame {
            header: self.to_header(),
            body: Bytes::copy_from_slice(self.body),
        }
    }
}

/// A frame decoded without building its header: the validated header text and the body, both
/// cut out of the receive buffer without a copy (see
/// [`Decoder::decode_raw`](crate::Decoder::decode_raw)). What a `tokio_util` codec yields.
///
/// The header text and the body are one shared slice of the receive buffer (one reference
/// count per frame, as for a `LengthDelimitedCodec` frame); [`into_body`](Self::into_body)
/// and [`body_bytes`](Self::body_bytes) give the body as [`Bytes`] of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawFrame {
    /// The header text, then the body (the prefix is not kept).
    octets: Bytes,
    /// Octets of header text at the front of `octets`.
    header_len: usize,
    profile: Profile,
    table: Option<Table>,
}

impl RawFrame {
    #[inline]
    pub(crate) fn new(
        octets: Bytes,
        header_len: usize,
        profile: Profile,
        table: Option<&Table>,
    ) -> Self {
        // The table is copied here, straight into the frame.
        RawFrame {
            octets,
            header_len,
            profile,
            table: table.copied(),
        }
    }

    /// The header deserialized into `T`, borrowing from this frame. See [`TypedError`].
    pub fn header<'de, T: Deserialize<'de>>(&'de self) -> Result<T, TypedError> {
        deserialize_header(
            self.header_text(),
            self.table.as_ref(),
            self.body().len() as u64,
            self.profile,
        )
    }

    /// The header's JSON text, as it arrived (validated: §4).
    pub fn header_text(&self) -> &str {
        // Validated as UTF-8 by the decoder; the fallback is never taken.
        let text = self.octets.get(..self.header_len).unwrap_or_default();
        std::str::from_utf8(text).unwrap_or_default()
    }

    /// The body (its digest, if the header has one, verified).
    pub fn body(&self) -> &[u8] {
        self.octets.get(self.header_len..).unwrap_or_default()
    }

    /// The body as [`Bytes`] sharing the receive buffer (not copied).
    pub fn body_bytes(&self) -> Bytes {
        self.octets.slice(self.header_len.min(self.octets.len())..)
    }

    /// The body, taken out of the frame (not copied).
    pub fn into_body(mut self) -> Bytes {
        self.octets.advance(self.header_len.min(self.octets.len()));
        self.octets
    }

    /// The header as a map-style [`Header`] (allocates).
    pub fn to_header(&self) -> Header {
        to_header(self.header_text(), self.profile)
    }

    /// A [`Frame`] with a map-style header; the body is shared, not copied.
    pub fn into_frame(self) -> Frame {
        Frame {
            header: self.to_header(),
            body: self.into_body(),
        }
    }
}

/// Where a frame decoded in place lies in the caller's buffer (see
/// [`Decoder::decode_span`](crate::Decoder::decode_span)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameSpan {
    /// The header text.
    pub header: Range<usize>,
    /// The body; `body.end` is the frame's length on the wire.
    pub body: Range<usize>,
    /// The fast path read the header (its members are in the decoder's table).
    pub(crate) fast: bool,
}

fn to_header(text: &str, profile: Profile) -> Header {
    // Validated when decoded: parsing again cannot fail.
    parse_header(text.as_bytes(), profile)
        .map(|(h, _)| h)
        .unwrap_or_default()
}

/// A received header that does not fit the caller's type.
#[derive(Debug)]
#[non_exhaustive]
pub enum TypedError {
    /// A member of the header does not fit the type (wrong type, out of the field's range, an
    /// unknown member under `deny_unknown_fields`), or a required field is missing.
    Member {
        /// The member, when one can be named.
        member: Option<String>,
        /// `serde_json`'s account of the problem.
        source: serde_json::Error,
    },
    /// A field naming a registered member (§4.4) disagrees with the frame: e.g. a `body_len`
    /// field left at its default while the frame carries a body (declared, in `seed-compat`,
    /// by `file_size`).
    Disagrees {
        /// The registered member.
        member: &'static str,
        /// What the frame says.
        frame: String,
    },
}

impl TypedError {
    /// The member at fault, when one can be named.
    pub fn member(&self) -> Option<&str> {
        match self {
            TypedError::Member { member, .. } => member.as_deref(),
            TypedError::Disagrees { member, .. } => Some(member),
        }
    }
}

impl fmt::Display for TypedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypedError::Member {
                member: Some(m),
                source,
            } => write!(f, "header member `{m}` does not fit the type: {source}"),
            TypedError::Member {
                member: None,
                source,
            } => write!(f, "the header does not fit the type: {source}"),
            TypedError::Disagrees { member, frame } => write!(
                f,
                "the type's `{member}` field disagrees with the frame, which has {frame}"
            ),
        }
    }
}

impl std::error::Error for TypedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TypedError::Member { source, .. } => Some(source),
            TypedError::Disagrees { .. } => None,
        }
    }
}

/// Deserializes a validated header text into `T` (§4: the text has passed validation, so the
/// registered members it carries already agree with the frame).
pub(crate) fn deserialize_header<'de, T: Deserialize<'de>>(
    text: &'de str,
    table: Option<&Table>,
    body_len: u64,
    profile: Profile,
) -> Result<T, TypedError> {
    let mut fields: &'static [&'static str] = &[];
    // A header with more members than a table holds is read by `serde_json`.
    let table = table.filter(|t| t.is_complete());
    let value = match table {
        // The fast path's table: deserialized without parsing the text again.
        Some(table) => {
            let at = Cell::new(None);
            T::deserialize(TableDe {
                text,
                entries: table.entries().unwrap_or_default(),
                fields: &mut fields,
                at: &at,
            })
            .map_err(|source| TypedError::Member {
                member: named_in(&source).or_else(|| {
                    at.get()
                        .and_then(|e: &Entry| name_of(text, e))
                        .map(str::to_owned)
                }),
                source,
            })?
        }
        None => {
            let mut de = serde_json::Deserializer::from_str(text);
            T::deserialize(Fields {
                inner: &mut de,
                fields: &mut fields,
            })
            .and_then(|v| de.end().map(|()| v))
            .map_err(|source| TypedError::Member {
                member: member_at(text, &source),
                source,
            })?
        }
    };
    // In `lhp1` a body implies a `body_len` member, which the field then read. In
    // `seed-compat` the length may be in `file_size` or `total_size` alone.
    if profile == Profile::SeedCompat && body_len > 0 && fields.contains(&"body_len") {
        let has_body_len = match table {
            Some(table) => table
                .entries()
                .unwrap_or_default()
                .iter()
                .any(|e| name_of(text, e) == Some("body_len")),
            None => top_level(text).any(|m| m.name == "body_len"),
        };
        if !has_body_len {
            return Err(TypedError::Disagrees {
                member: "body_len",
                frame: format!("a {body_len}-octet body and no `body_len` member"),
            });
        }
    }
    Ok(value)
}

#[inline]
fn name_of<'t>(text: &'t str, e: &Entry) -> Option<&'t str> {
    text.get(e.name.0 as usize..e.name.1 as usize)
}

/// The member a "missing field" / "unknown field" message names.
fn named_in(e: &serde_json::Error) -> Option<String> {
    let msg = e.to_string();
    ["missing field `", "unknown field `", "duplicate field `"]
        .iter()
        .find_map(|p| msg.strip_prefix(p))
        .and_then(|rest| rest.split('`').next())
        .map(str::to_owned)
}

/// Deserializes a header from the fast path's table of members: names and unescaped strings
/// are borrowed from the text, integers were parsed by the scan. Errors are `serde_json`'s.
struct TableDe<'de, 'a> {
    text: &'de str,
    entries: &'a [Entry],
    fields: &'a mut &'static [&'static str],
    /// The member being deserialized, for errors.
    at: &'a Cell<Option<&'a Entry>>,
}

impl<'de, 'a> Deserializer<'de> for TableDe<'de, 'a> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(TableMap {
            text: self.text,
            rest: self.entries.iter(),
            value: None,
            at: self.at,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.fields = fields;
        self.deserialize_any(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

struct TableMap<'de, 'a> {
    text: &'de str,
    rest: std::slice::Iter<'a, Entry>,
    /// The member whose value is next (by reference: an entry is not copied).
    value: Option<&'a Entry>,
    at: &'a Cell<Option<&'a Entry>>,
}

impl<'de, 'a> de::MapAccess<'de> for TableMap<'de, 'a> {
    type Error = serde_json::Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some(e) = self.rest.next() else {
            return Ok(None);
        };
        self.at.set(Some(e));
        self.value = Some(e);
        // The fast path takes only unescaped names.
        let name = name_of(self.text, e).unwrap_or_default();
        seed.deserialize(BorrowedStrDeserializer::new(name))
            .map(Some)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let val = self.value.take().map_or(Val::Null, |e| e.val);
        seed.deserialize(ValDe {
            text: self.text,
            val,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.rest.len())
    }
}

/// One scalar member value from the table.
struct ValDe<'de> {
    text: &'de str,
    val: Val,
}

impl ValDe<'_> {
    /// An escaped string's contents, unescaped (the fast path checked the escapes).
    fn unescaped(&self, start: u32, end: u32) -> Result<String, serde_json::Error> {
        let quoted = self
            .text
            .get(start as usize - 1..end as usize + 1)
            .unwrap_or("\"\"");
        serde_json::from_str(quoted)
    }
}

impl<'de> Deserializer<'de> for ValDe<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.val {
            Val::Str {
                start,
                end,
                escaped: false,
            } => visitor.visit_borrowed_str(
                self.text
                    .get(start as usize..end as usize)
                    .unwrap_or_default(),
            ),
            Val::Str { start, end, .. } => visitor.visit_string(self.unescaped(start, end)?),
            Val::Int { neg: false, n } => visitor.visit_u64(n.get()),
            // |n| ≤ 2^53−1: fits.
            Val::Int { neg: true, n } => visitor.visit_i64(-(n.get() as i64)),
            Val::Bool(b) => visitor.visit_bool(b),
            Val::Null => visitor.visit_unit(),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.val {
            Val::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    /// A member the struct skips: its value was validated already and is not unescaped (no
    /// allocation for an escaped string nobody reads).
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_unit()
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.val {
            Val::Str {
                start,
                end,
                escaped: false,
            } => visitor.visit_enum(BorrowedStrDeserializer::new(
                self.text
                    .get(start as usize..end as usize)
                    .unwrap_or_default(),
            )),
            Val::Str { start, end, .. } => {
                visitor.visit_enum(StringDeserializer::new(self.unescaped(start, end)?))
            }
            _ => self.deserialize_any(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

/// The top-level member a `serde_json` error points into: the one named in a "missing field" /
/// "unknown field" message, else the last member beginning before the error's position.
fn member_at(text: &str, e: &serde_json::Error) -> Option<String> {
    if let Some(name) = named_in(e) {
        return Some(name);
    }
    // serde_json counts lines from 1 and columns (in octets) from 1.
    let mut at = 0usize;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if i + 1 == e.line() {
            at += e.column().saturating_sub(1);
            break;
        }
        at += line.len();
    }
    top_level(text)
        .take_while(|m| m.start < at)
        .last()
        .map(|m| m.name.into_owned())
}

/// A top-level member of a valid header text.
struct Member<'a> {
    name: Cow<'a, str>,
    /// Offset of the member name's opening quote.
    start: usize,
}

/// The top-level members of a header text already known to be a valid JSON object.
fn top_level(text: &str) -> impl Iterator<Item = Member<'_>> {
    let b = text.as_bytes();
    let mut i = 0usize;
    let mut depth = 0usize;
    std::iter::from_fn(move || {
        while let Some(&c) = b.get(i) {
            match c {
                b'"' => {
                    let start = i;
                    let end = string_end(b, i + 1);
                    i = end + 1;
                    // A name at depth 1 is followed (after whitespace) by ':'.
                    let is_name = depth == 1
                        && b.get(i..)
                            .and_then(|r| r.iter().find(|c| !c.is_ascii_whitespace()))
                            == Some(&b':');
                    if is_name {
                        let raw = text.get(start..=end)?;
                        let name = match text.get(start + 1..end) {
                            Some(plain) if !plain.contains('\\') => Cow::Borrowed(plain),
                            _ => Cow::Owned(serde_json::from_str::<String>(raw).ok()?),
                        };
                        return Some(Member { name, start });
                    }
                }
                b'{' | b'[' => {
                    depth += 1;
                    i += 1;
                }
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    i += 1;
                }
                _ => i += 1,
            }
        }
        None
    })
}

/// The offset of the quote closing a string whose contents begin at `i`.
fn string_end(b: &[u8], mut i: usize) -> usize {
    while let Some(&c) = b.get(i) {
        match c {
            b'\\' => i += 2,
            b'"' => return i,
            _ => i += 1,
        }
    }
    b.len()
}

/// A deserializer that passes everything to `serde_json`'s, noting the field names a struct
/// asks for at the top level.
struct Fields<'f, D> {
    inner: D,
    fields: &'f mut &'static [&'static str],
}

macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*)),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, Self::Error> {
                self.inner.$method($($arg,)* visitor)
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Fields<'_, D> {
    type Error = D::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.fields = fields;
        self.inner.deserialize_struct(name, fields, visitor)
    }

    forward! {
        deserialize_any(), deserialize_bool(), deserialize_i8(), deserialize_i16(),
        deserialize_i32(), deserialize_i64(), deserialize_u8(), deserialize_u16(),
        deserialize_u32(), deserialize_u64(), deserialize_f32(), deserialize_f64(),
        deserialize_char(), deserialize_str(), deserialize_string(), deserialize_bytes(),
        deserialize_byte_buf(), deserialize_option(), deserialize_unit(),
        deserialize_unit_struct(name: &'static str),
        deserialize_newtype_struct(name: &'static str), deserialize_seq(),
        deserialize_tuple(len: usize),
        deserialize_tuple_struct(name: &'static str, len: usize), deserialize_map(),
        deserialize_enum(name: &'static str, variants: &'static [&'static str]),
        deserialize_identifier(), deserialize_ignored_any(),
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

impl Encoder {
    /// Appends a whole frame whose header is the caller's own type: the prefix, the header
    /// serialized straight into `dst` (no `serde_json::Value` in between), `body_len` added
    /// when `body` is not empty and `T` does not carry it, then the body.
    ///
    /// The header is checked as a receiver would check it (§4): it must be a JSON object, a
    /// `body_len` it carries must equal the body's length, and the registered members must
    /// have their registered types. On error nothing is appended.
    ///
    /// A header of strings, integers, booleans and `null` (what headers are made of) is
    /// written and checked in one pass, by a serializer that notes each member as it writes
    /// it; anything else (floats, nested values, more than 16 members) is serialized by
    /// `serde_json` and then validated. Both ways write the same octets (§9's canonical
    /// form) and refuse the same headers with the same error.
    pub fn encode_typed<T: Serialize + ?Sized>(
        &self,
        header: &T,
        body: &[u8],
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        // One reservation for the whole frame: the header's usual size and the body.
        dst.reserve(PREFIX_LEN + HEAD_ROOM + body.len());
        self.encode_typed_head(header, body.len() as u64, dst)?;
        dst.extend_from_slice(body);
        Ok(())
    }

    /// [`encode_typed`](Self::encode_typed) without the body: appends the prefix and header of
    /// a frame whose body of `body_len` octets the caller sends next.
    pub fn encode_typed_head<T: Serialize + ?Sized>(
        &self,
        header: &T,
        body_len: u64,
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let start = dst.len();
        let result = self.write_typed(header, body_len, start, dst);
        if result.is_err() {
            dst.truncate(start);
        }
        result
    }

    fn write_typed<T: Serialize + ?Sized>(
        &self,
        header: &T,
        body_len: u64,
        start: usize,
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        dst.reserve(PREFIX_LEN + HEAD_ROOM);
        dst.put_u32(0);
        let text_start = start + PREFIX_LEN;
        // One pass: canonical JSON written and the registered members checked as it goes.
        match canon::write(header, dst, self.profile()) {
            Ok(w) if w.declared == body_len => return self.write_prefix(start, dst),
            Ok(w) if w.declared != 0 => {
                return Err(EncodeError::BodyLenMismatch {
                    declared: w.declared,
                    actual: body_len,
                })
            }
            Ok(w) if !w.has_length && body_len <= MAX_SAFE_INTEGER => {
                // No length member: add `body_len` before the closing brace.
                dst.truncate(dst.len() - 1);
                dst.extend_from_slice(if w.members == 0 {
                    b"\"body_len\":"
                } else {
                    b",\"body_len\":"
                });
                crate::json::write_int(dst, false, body_len);
                dst.put_u8(b'}');
                return self.write_prefix(start, dst);
            }
            // The general path below decides (and names the error).
            Ok(_) | Err(canon::GiveUp) => dst.truncate(text_start),
        }
        self.write_typed_general(header, body_len, start, dst)
    }

    /// [`write_typed`](Self::write_typed) the general way, for what the one-pass encoder does
    /// not take: `serde_json` writes the text, then the validator of §4 checks it.
    pub(crate) fn write_typed_general<T: Serialize + ?Sized>(
        &self,
        header: &T,
        body_len: u64,
        start: usize,
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let invalid = |kind| EncodeError::InvalidHeader(DecodeError::new(0, kind));
        let text_start = start + PREFIX_LEN;
        serde_json::to_writer((&mut *dst).writer(), header).map_err(EncodeError::Serialize)?;
        let text = dst.get(text_start..).unwrap_or_default();
        if text.first() != Some(&b'{') {
            let found = match text.first() {
                Some(b'[') => "an array",
                Some(b'"') => "a string",
                Some(b'n') => "null",
                Some(b't' | b'f') => "a boolean",
                _ => "a number",
            };
            return Err(invalid(DecodeErrorKind::HeaderNotObject { found }));
        }
        let (declared, _) = header::validate(text, self.profile(), None).map_err(invalid)?;
        if declared.body_len != body_len {
            if declared.body_len != 0 {
                return Err(EncodeError::BodyLenMismatch {
                    declared: declared.body_len,
                    actual: body_len,
                });
            }
            // No length member (or an explicit 0): add `body_len` before the closing brace.
            let empty = text == b"{}";
            dst.truncate(dst.len() - 1);
            let mut digits = itoa::Buffer::new();
            dst.extend_from_slice(if empty {
                b"\"body_len\":"
            } else {
                b",\"body_len\":"
            });
            dst.extend_from_slice(digits.format(body_len).as_bytes());
            dst.put_u8(b'}');
            let text = dst.get(text_start..).unwrap_or_default();
            // An explicit `"body_len":0` is now a duplicate: the caller's header disagrees.
            match header::validate(text, self.profile(), None) {
                Ok((c, _)) if c.body_len == body_len => {}
                _ => {
                    return Err(EncodeError::BodyLenMismatch {
                        declared: 0,
                        actual: body_len,
                    })
                }
            }
        }
        self.write_prefix(start, dst)
    }

    /// Fills in the prefix of the frame whose header starts at `start + PREFIX_LEN` and runs to
    /// the end of `dst`, after checking the header's length.
    pub(crate) fn write_prefix(&self, start: usize, dst: &mut BytesMut) -> Result<(), EncodeError> {
        let len = dst.len() - start - PREFIX_LEN;
        let max = self.max_header_len();
        let Some(h) = u32::try_from(len)
            .ok()
            .filter(|&h| h <= max && h >= MIN_HEADER_LEN)
        else {
            return Err(EncodeError::HeaderTooLarge { len, max });
        };
        let prefix = match self.profile() {
            Profile::Lhp1 => h.to_be_bytes(),
            Profile::SeedCompat => h.to_le_bytes(),
        };
        if let Some(p) = dst.get_mut(start..start + PREFIX_LEN) {
            p.copy_from_slice(&prefix);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::Value;

    use super::*;
    use crate::{Decoder, Limits};

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Msg<'a> {
        kind: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        #[serde(borrow)]
        name: Cow<'a, str>,
    }

    /// An `lhp1` frame of header `text` and no body, written by hand (the text as it is).
    fn text_frame(text: &str) -> BytesMut {
        let mut buf = BytesMut::new();
        buf.put_u32(text.len() as u32);
        buf.extend_from_slice(text.as_bytes());
        buf
    }

    fn wire<T: Serialize>(h: &T, body: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        Encoder::new().encode_typed(h, body, &mut out).unwrap();
        out
    }

    #[test]
    fn typed_round_trip_borrows_and_fills_body_len() {
        let m = Msg {
            kind: "put",
            id: Some(3),
            name: "a\"b".into(),
        };
        let out = wire(&m, b"xyz");
        assert_eq!(
            &out[4..],
            br#"{"kind":"put","id":3,"name":"a\"b","body_len":3}xyz"#
        );
        let mut dec = Decoder::new();
        let f = dec.decode_ref(&out).unwrap().unwrap();
        let back: Msg<'_> = f.header().unwrap();
        assert_eq!(back, m);
        assert!(
            matches!(back.name, Cow::Owned(_)),
            "escaped: unescaped copy"
        );
        assert_eq!(f.len(), out.len());
        // Same text as the map-style encoder writes for the same members.
        let mut h = Header::with_kind("put");
        h.set_id(3).set_name("a\"b").set_body_len(3);
        assert_eq!(f.to_header(), h);
        let mut map_wire = BytesMut::new();
        Encoder::new()
            .encode(&Frame::new(h, "xyz".into()), &mut map_wire)
            .unwrap();
        assert_eq!(map_wire, out);
        // Empty body: no `body_len`; empty object stays `{}`.
        assert_eq!(&wire(&serde_json::json!({}), b"")[4..], b"{}");
        assert_eq!(
            &wire(&serde_json::json!({}), b"ab")[4..],
            b"{\"body_len\":2}ab"
        );
    }

    #[test]
    fn typed_encode_applies_receiver_rules() {
        let enc = Encoder::new();
        let mut out = BytesMut::from(&b"keep"[..]);
        let bad = [
            (serde_json::json!({"kind": 1}), "invalid_member"),
            (serde_json::json!({"v": 2}), "unsupported_version"),
            (
                serde_json::json!({"n": 9007199254740992u64}),
                "number_out_of_range",
            ),
            (serde_json::json!([1]), "header_not_object"),
        ];
        for (h, code) in bad {
            let e = enc.encode_typed(&h, b"", &mut out).unwrap_err();
            match e {
                EncodeError::InvalidHeader(d) => assert_eq!(d.code(), code, "{h}"),
                other => panic!("{h}: {other}"),
            }
            assert_eq!(&out[..], b"keep");
        }
        for h in [
            serde_json::json!({"body_len": 2}),
            serde_json::json!({"body_len": 0}),
        ] {
            assert!(matches!(
                enc.encode_typed(&h, b"abc", &mut out),
                Err(EncodeError::BodyLenMismatch { actual: 3, .. })
            ));
            assert_eq!(&out[..], b"keep");
        }
        enc.encode_typed(&serde_json::json!({"body_len": 3}), b"abc", &mut out)
            .unwrap();
        let mut small = Encoder::new();
        small.set_max_header_len(8);
        assert!(matches!(
            small.encode_typed(&serde_json::json!({"kind": "long"}), b"", &mut out),
            Err(EncodeError::HeaderTooLarge { .. })
        ));
    }

    /// A header that is not an object is refused by the typed encoder as a receiver refuses
    /// it (§4.1): `header_not_object`, naming the same JSON type.
    #[test]
    fn a_header_that_is_no_object_is_named_as_a_receiver_names_it() {
        let enc = Encoder::new();
        for h in [
            serde_json::json!([1]),
            serde_json::json!("s"),
            serde_json::json!(null),
            serde_json::json!(true),
            serde_json::json!(false),
            serde_json::json!(12345),
            serde_json::json!(-1.5),
        ] {
            let mut out = BytesMut::new();
            let sent = match enc.encode_typed(&h, b"", &mut out) {
                Err(EncodeError::InvalidHeader(d)) => d,
                other => panic!("{h}: {other:?}"),
            };
            let text = h.to_string();
            let mut wire = text_frame(&text);
            let received = Decoder::new().decode(&mut wire).unwrap_err();
            assert!(
                matches!(sent.kind(), DecodeErrorKind::HeaderNotObject { .. }),
                "{h}: {sent}"
            );
            assert_eq!(sent.kind(), received.kind(), "{h}");
        }
    }

    #[test]
    fn a_header_that_does_not_fit_names_the_member() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Strict<'a> {
            kind: &'a str,
            id: u8,
            #[serde(default)]
            n: u8,
        }
        let cases: [(&str, Option<&str>); 7] = [
            (r#"{"kind":"x","id":300}"#, Some("id")),
            (r#"{"kind":5,"id":1}"#, None), // a receiver rejects this first: not reached
            (r#"{"id":1}"#, Some("kind")),
            (
                r#"{"kind":"x","id":1,  "note":[1,{"n":"s"}],"n":"s"}"#,
                Some("n"),
            ),
            (r#"{"kind":"a\nb","id":1}"#, Some("kind")), // escaped: cannot borrow
            // Read by `serde_json` (a nested member), over several lines: the member is found
            // on the line the error is on.
            (
                "{\"x\":{\"a\":1},\n  \"id\":300,\n  \"kind\":\"x\"}",
                Some("id"),
            ),
            ("{\"x\":[1],\n\"kind\":\"x\",\n\"id\":300}", Some("id")),
        ];
        for (text, member) in cases {
            let buf = text_frame(text);
            let mut dec = Decoder::new();
            let f = match dec.decode_ref(&buf) {
                Ok(Some(f)) => f,
                Ok(None) => panic!("{text}: incomplete"),
                Err(e) => {
                    assert!(member.is_none(), "{text}: {e}");
                    continue;
                }
            };
            let e = f.header::<Strict<'_>>().unwrap_err();
            assert_eq!(e.member(), member, "{text}: {e}");
        }
    }

    /// `seed-compat`: a `body_len` field is checked against the frame whichever way the header
    /// is read (the member table, or `serde_json` for a header the fast path leaves, here one
    /// with a nested member), is satisfied by a `body_len` member, and has nothing to disagree
    /// with when the body is empty.
    #[test]
    fn seed_compat_body_len_field_must_agree() {
        #[derive(Deserialize, Debug)]
        struct Put {
            #[serde(default)]
            body_len: u64,
        }
        let cases: [(&str, &[u8], Option<u64>); 6] = [
            (r#"{"file_size":2}"#, b"ab", None),
            (r#"{"file_size":2,"x":{"a":[1]}}"#, b"ab", None),
            (r#"{"file_size":2,"body_len":2}"#, b"ab", Some(2)),
            (
                r#"{"file_size":2,"x":{"a":[1]},"body_len":2}"#,
                b"ab",
                Some(2),
            ),
            (r#"{"file_size":0}"#, b"", Some(0)),
            (r#"{"file_size":0,"x":{"a":[1]}}"#, b"", Some(0)),
        ];
        for (text, body, want) in cases {
            let mut buf = BytesMut::new();
            buf.put_u32_le(text.len() as u32);
            buf.extend_from_slice(text.as_bytes());
            buf.extend_from_slice(body);
            let mut dec = Decoder::with(Profile::SeedCompat, Limits::default());
            let f = dec.decode_ref(&buf).unwrap().unwrap();
            match (f.header::<Put>(), want) {
                (Ok(put), Some(n)) => assert_eq!(put.body_len, n, "{text}"),
                (Err(TypedError::Disagrees { member, frame }), None) => {
                    assert_eq!(member, "body_len", "{text}");
                    assert!(frame.contains("2-octet body"), "{text}: {frame}");
                }
                (other, _) => panic!("{text}: {other:?}"),
            }
            #[derive(Deserialize)]
            struct Any {}
            assert!(f.header::<Any>().is_ok(), "{text}");
        }
    }

    /// A `null` member fills an `Option` field with `None`, and a string member reads into a
    /// unit enum (as a `kind` often is), escaped or not, whether the header is read from the
    /// member table or by `serde_json` (a header with a nested member).
    #[test]
    fn null_options_and_enums_read_alike_on_both_paths() {
        #[derive(Deserialize, Debug, PartialEq, Clone, Copy)]
        #[serde(rename_all = "lowercase")]
        enum Kind {
            Put,
            Get,
        }
        #[derive(Deserialize, Debug, PartialEq)]
        struct H<'a> {
            kind: Kind,
            #[serde(default, borrow)]
            note: Option<&'a str>,
        }
        let cases = [
            (r#"{"kind":"put","note":null}"#, Kind::Put, None),
            (r#"{"kind":"g\u0065t","note":"n"}"#, Kind::Get, Some("n")),
            (r#"{"kind":"get"}"#, Kind::Get, None),
        ];
        for (text, kind, note) in cases {
            for text in [text.to_owned(), text.replacen('{', r#"{"x":{"a":1},"#, 1)] {
                let buf = text_frame(&text);
                let mut dec = Decoder::new();
                let f = dec.decode_ref(&buf).unwrap().unwrap();
                assert_eq!(f.header::<H<'_>>().unwrap(), H { kind, note }, "{text}");
            }
        }
    }

    /// A type that reads differently for humans than for compact formats (an address: a
    /// string for humans, octets otherwise) reads from a header as from any JSON, on both
    /// paths: a header is human-readable.
    #[test]
    fn human_readable_types_read_as_from_json() {
        #[derive(Deserialize, Debug, PartialEq)]
        struct H {
            addr: std::net::Ipv4Addr,
        }
        for text in [
            r#"{"addr":"192.0.2.7"}"#,
            r#"{"x":{"a":1},"addr":"192.0.2.7"}"#,
        ] {
            let buf = text_frame(text);
            let mut dec = Decoder::new();
            let f = dec.decode_ref(&buf).unwrap().unwrap();
            let addr = std::net::Ipv4Addr::new(192, 0, 2, 7);
            assert_eq!(f.header::<H>().unwrap(), H { addr }, "{text}");
        }
    }

    /// What a frame read in place, or as a `RawFrame`, offers besides its typed header: its
    /// length on the wire (never empty), the header map-style, the frame; and a typed error
    /// says which member and why, with `serde_json`'s error as its source when it has one.
    #[test]
    fn frames_and_typed_errors_explain_themselves() {
        let msg = Msg {
            kind: "put",
            id: Some(300),
            name: "n".into(),
        };
        let w = wire(&msg, b"xy");
        let mut dec = Decoder::new();
        let f = dec.decode_ref(&w).unwrap().unwrap();
        assert_eq!(f.len(), w.len());
        assert!(!f.is_empty());
        let h = f.to_header();
        assert_eq!(
            (h.kind(), h.id(), h.body_len()),
            (Some("put"), Some(300), 2)
        );

        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Small {
            id: u8,
        }
        let e = f.header::<Small>().unwrap_err();
        assert_eq!(e.member(), Some("id"));
        assert!(
            e.to_string()
                .starts_with("header member `id` does not fit the type: "),
            "{e}"
        );
        let source = std::error::Error::source(&e).expect("serde_json's error");
        assert!(e.to_string().ends_with(&source.to_string()), "{e}");

        let raw = dec.decode_raw(&mut w.clone()).unwrap().unwrap();
        let h = raw.to_header();
        assert_eq!(
            (h.kind(), h.id(), h.name()),
            (Some("put"), Some(300), Some("n"))
        );
        let frame = raw.into_frame();
        assert_eq!(
            (frame.header.kind(), &frame.body[..]),
            (Some("put"), &b"xy"[..])
        );

        let disagrees = TypedError::Disagrees {
            member: "body_len",
            frame: "a 2-octet body and no `body_len` member".into(),
        };
        assert_eq!(
            disagrees.to_string(),
            "the type's `body_len` field disagrees with the frame, which has a 2-octet body and \
             no `body_len` member"
        );
        assert!(std::error::Error::source(&disagrees).is_none());
    }

    #[test]
    fn top_level_members_skip_nested_names_and_strings() {
        let text = r#"{"a":{"b":"x\":"},"c" : [ {"d":1} ],"\u0065":null}"#;
        let names: Vec<String> = top_level(text).map(|m| m.name.into_owned()).collect();
        assert_eq!(names, ["a", "c", "e"]);
    }

    /// A struct with the field shapes headers use: borrowed, `Cow`, optional, integers of
    /// several widths, a boolean, an enum written as a string, unknown members ignored.
    #[derive(Deserialize, Debug, PartialEq)]
    struct Probe<'a> {
        #[serde(default, borrow)]
        kind: Option<Cow<'a, str>>,
        #[serde(default)]
        id: Option<u64>,
        #[serde(default)]
        name: Option<&'a str>,
        #[serde(default)]
        v: Option<u8>,
        #[serde(default)]
        mode: Option<Mode>,
        #[serde(default)]
        n: Option<i32>,
        #[serde(default)]
        ok: Option<bool>,
        #[serde(default)]
        s: Option<String>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        Fast,
        Slow,
    }

    fn probe_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let name = prop::sample::select(vec![
            "kind", "id", "name", "v", "mode", "n", "ok", "s", "x", "body_len",
        ]);
        let value = prop::sample::select(vec![
            "\"fast\"",
            "\"slow\"",
            "\"other\"",
            "\"a\\nb\"",
            "\"\\u00e9t\\u00e9\"",
            "\"plain\"",
            "\"\"",
            "0",
            "1",
            "7",
            "255",
            "256",
            "-1",
            "-2147483648",
            "-2147483649",
            "4294967296",
            "9007199254740991",
            "true",
            "false",
            "null",
        ]);
        prop::collection::vec((name, value), 0..8).prop_map(|m| {
            let mut seen = Vec::new();
            let body: Vec<String> = m
                .into_iter()
                .filter(|(n, _)| {
                    let fresh = !seen.contains(n);
                    seen.push(*n);
                    fresh
                })
                .map(|(n, v)| format!("\"{n}\":{v}"))
                .collect();
            format!("{{{}}}", body.join(","))
        })
    }

    /// Required fields and `deny_unknown_fields`: the errors a strict receiver meets.
    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Strict<'a> {
        kind: &'a str,
        id: u32,
        #[serde(default)]
        n: Option<i64>,
        #[serde(default)]
        s: Option<String>,
    }

    /// Header texts for the differential tests: registered and extension members, the value
    /// shapes of §4 with escapes, non-ASCII text, integers at the edges of every width, nested
    /// extension values (which take the general path), whitespace between any two tokens.
    fn differential_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let name = prop::sample::select(vec![
            "kind", "id", "name", "v", "mode", "n", "ok", "s", "x", "body_len", "é", "a b",
        ]);
        let fixed = prop::sample::select(vec![
            "\"fast\"",
            "\"slow\"",
            "\"sl\\u006fw\"",
            "\"other\"",
            "\"a\\nb\"",
            "\"q\\\"q\\\\/\\/\"",
            "\"\\u00e9t\\u00e9\"",
            "\"\\ud83d\\ude00\"",
            "\"naïve ☃ 😀\"",
            "\"plain\"",
            "\"\"",
            "\"12\"",
            "0",
            "1",
            "7",
            "255",
            "256",
            "-1",
            "-128",
            "2147483647",
            "-2147483648",
            "-2147483649",
            "4294967295",
            "4294967296",
            "9007199254740991",
            "-9007199254740991",
            "1.5",
            "1e2",
            "true",
            "false",
            "null",
            "[]",
            "[1,\"a\",{\"b\":null}]",
            "{\"kind\":\"inner\",\"id\":\"x\"}",
        ])
        .prop_map(str::to_owned);
        let value = prop_oneof![
            6 => fixed,
            1 => (0u64..(1 << 53)).prop_map(|n| n.to_string()),
            1 => (1u64..(1 << 53)).prop_map(|n| format!("-{n}")),
            1 => "[a-z0-9 é\\\\]{0,20}".prop_map(|s| format!("\"{}\"", s.replace('\\', "\\\\"))),
        ];
        let ws = prop::sample::select(vec!["", "", "", " ", "\n\t", "\r\n "]);
        (
            prop::collection::vec((name, value, ws.clone(), ws.clone()), 0..8),
            ws.clone(),
            ws,
        )
            .prop_map(|(members, a, b)| {
                let mut seen = Vec::new();
                let body: Vec<String> = members
                    .into_iter()
                    .filter(|(n, ..)| {
                        let fresh = !seen.contains(n);
                        seen.push(*n);
                        fresh
                    })
                    .map(|(n, v, x, y)| format!("{x}\"{n}\"{y}:{x}{v}{y}"))
                    .collect();
                format!("{a}{{{}}}{b}", body.join(","))
            })
    }

    /// `serde_json`'s message without its position (the table reader has none).
    fn message(e: &TypedError) -> String {
        match e {
            TypedError::Member { source, .. } => {
                let m = source.to_string();
                m.split(" at line ").next().unwrap_or_default().to_owned()
            }
            other => other.to_string(),
        }
    }

    /// For a validated `text`, the typed header through the decoder's path (the scan's member
    /// table when the fast path accepted it, else `serde_json` over the text) is exactly what
    /// `serde_json::from_str` gives: the same value, or an error with the same message.
    fn agrees_with_serde_json<'a, T>(
        text: &'a str,
    ) -> Result<(), proptest::test_runner::TestCaseError>
    where
        T: Deserialize<'a> + PartialEq + fmt::Debug,
    {
        let mut table = Table::default();
        let Ok((checked, fast)) =
            header::validate(text.as_bytes(), Profile::Lhp1, Some(&mut table))
        else {
            return Ok(());
        };
        let general = serde_json::from_str::<T>(text);
        for path in [fast, false] {
            let t = Some(&table).filter(|_| path);
            let ours = deserialize_header::<T>(text, t, checked.body_len, Profile::Lhp1);
            match (&ours, &general) {
                (Ok(a), Ok(b)) => proptest::prop_assert_eq!(a, b, "{} (table: {})", text, path),
                (Err(a), Err(b)) => {
                    let b = b.to_string();
                    let b = b.split(" at line ").next().unwrap_or_default();
                    // serde_json says only "expected value" for an enum given a number, a
                    // boolean or null; the table reader names the type, as for any field.
                    if b != "expected value" {
                        proptest::prop_assert_eq!(message(a), b, "{} (table: {})", text, path);
                    }
                }
                _ => proptest::prop_assert!(
                    false,
                    "{} (table: {}): ours {:?}, serde_json {:?}",
                    text,
                    path,
                    ours,
                    general
                ),
            }
        }
        Ok(())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(
            crate::test_support::proptest_cases(3000)
        ))]

        /// The typed reader over the fast path's member table gives what
        /// `serde_json` gives for the same text, for field shapes a header uses (borrowed,
        /// `Cow`, optional, integers of every width, enums), for a strict struct (missing and
        /// unknown fields, wrong types, out-of-range integers, escaped text into `&str`) and
        /// for `serde_json::Value` (every member kept, in order).
        #[test]
        fn typed_decoding_from_the_table_agrees_with_serde_json_on_every_value_shape(text in differential_text()) {
            agrees_with_serde_json::<Probe<'_>>(&text)?;
            agrees_with_serde_json::<Strict<'_>>(&text)?;
            agrees_with_serde_json::<Value>(&text)?;
            agrees_with_serde_json::<std::collections::BTreeMap<Cow<'_, str>, Value>>(&text)?;
        }

        /// The same for flat texts of the `Probe` members only.
        #[test]
        fn typed_decoding_agrees_with_serde_json_on_probe_texts(text in probe_text()) {
            agrees_with_serde_json::<Probe<'_>>(&text)?;
            agrees_with_serde_json::<Strict<'_>>(&text)?;
        }
    }

    #[test]
    fn raw_frames_share_one_slice_of_the_receive_buffer() {
        // Two frames and the start of a third: each `RawFrame` is cut off the front, its
        // header text and body read back as sent, its body shared (not copied) either way.
        let mut buf = BytesMut::new();
        let enc = Encoder::new();
        let up = |id| Msg {
            kind: "put",
            id: Some(id),
            name: "n".into(),
        };
        enc.encode_typed(&up(1), b"first", &mut buf).unwrap();
        enc.encode_typed(&up(2), b"", &mut buf).unwrap();
        enc.encode_typed(&up(3), b"third", &mut buf).unwrap();
        let whole = buf.len();
        buf.truncate(whole - 2);
        let mut dec = Decoder::new();
        let a = dec.decode_raw(&mut buf).unwrap().unwrap();
        assert_eq!(
            a.header_text(),
            r#"{"kind":"put","id":1,"name":"n","body_len":5}"#
        );
        assert_eq!(
            (a.body(), &a.body_bytes()[..]),
            (&b"first"[..], &b"first"[..])
        );
        assert_eq!(a.header::<Msg<'_>>().unwrap(), up(1));
        let b = dec.decode_raw(&mut buf).unwrap().unwrap();
        assert_eq!(b.header_text(), r#"{"kind":"put","id":2,"name":"n"}"#);
        assert!(b.body().is_empty() && b.body_bytes().is_empty());
        assert_eq!(dec.decode_raw(&mut buf).unwrap(), None);
        assert_eq!(a.clone().into_frame().body, Bytes::from_static(b"first"));
        let body = a.into_body();
        assert_eq!(&body[..], b"first");
        assert!(b.into_body().is_empty());
    }

    #[test]
    fn headers_past_the_table_size_and_long_texts_read_as_serde_json_reads_them() {
        // More members than a table holds (the typed header is then read by serde_json), and
        // an 80 KB text (offsets past 16 bits): the fast path accepts both, and the typed
        // header is what serde_json reads, through `decode_ref` and `decode_raw`.
        let many: String = (0..12).map(|i| format!(",\"x{i}\":{i}")).collect();
        let long = "é".repeat(40_000);
        for text in [
            format!(r#"{{"kind":"put","id":3{many},"name":"a\"b"}}"#),
            format!(r#"{{"note":"{long}","kind":"put","id":3,"name":"n"}}"#),
        ] {
            let buf = text_frame(&text);
            let mut dec = Decoder::with(Profile::Lhp1, Limits::new().with_max_header_len(1 << 20));
            let f = dec.decode_ref(&buf).unwrap().unwrap();
            let got: Msg<'_> = f.header().unwrap();
            assert_eq!(got, serde_json::from_str::<Msg<'_>>(&text).unwrap());
            let mut buf = BytesMut::from(&buf[..]);
            let raw = dec.decode_raw(&mut buf).unwrap().unwrap();
            let got: Value = raw.header().unwrap();
            assert_eq!(got, serde_json::from_str::<Value>(&text).unwrap());
        }
    }

    #[test]
    fn table_reader_names_the_member_that_does_not_fit_as_serde_json_does() {
        let cases: [(&str, &str, &str); 6] = [
            (
                r#"{"kind":"x","id":4294967296}"#,
                "id",
                "invalid value: integer `4294967296`, expected u32",
            ),
            (
                r#"{"kind":"x","n":"-1","id":1}"#,
                "n",
                "invalid type: string \"-1\", expected i64",
            ),
            (
                r#"{"kind":"x","id":1,"s":7}"#,
                "s",
                "invalid type: integer `7`, expected a string",
            ),
            (
                r#"{"kind":"a\nb","id":1}"#,
                "kind",
                "invalid type: string \"a\\nb\", expected a borrowed string",
            ),
            (r#"{"kind":"x"}"#, "id", "missing field `id`"),
            (
                r#"{"kind":"x","id":1,"zz":true}"#,
                "zz",
                "unknown field `zz`, expected one of `kind`, `id`, `n`, `s`",
            ),
        ];
        for (text, member, msg) in cases {
            let mut table = Table::default();
            let (_, fast) =
                header::validate(text.as_bytes(), Profile::Lhp1, Some(&mut table)).unwrap();
            assert!(fast, "{text}: the fast path takes it");
            let e =
                deserialize_header::<Strict<'_>>(text, Some(&table), 0, Profile::Lhp1).unwrap_err();
            assert_eq!(e.member(), Some(member), "{text}: {e}");
            assert_eq!(message(&e), msg, "{text}");
        }
    }
}
