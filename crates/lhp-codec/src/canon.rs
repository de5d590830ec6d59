//! The one-pass typed encoder (§9, §4.4): a serde [`Serializer`] that writes a caller's header
//! as canonical JSON straight into the output buffer and applies the receiver's rules to each
//! member as it writes it, instead of a second parse of the text.
//!
//! Like the fast path of validation (`fast.rs`), it only ever *accepts*: it takes what headers
//! are made of — an object (a struct or a map with string keys) of strings, integers within
//! ±(2^53−1), booleans and `null`, at most [`MAX_EXTENSIONS`] members besides the registered
//! ones, names that need no escape — and gives up on anything else (floats, nested values,
//! escaped or repeated names, a value out of range, a registered member of the wrong type, a
//! serializer error). The caller then encodes the header the general way (`serde_json`, then
//! the full validation of §4), which decides and names the error. So this path changes how
//! quickly a header is encoded, never the octets written or the error returned: the tests at
//! the end of this file check both against `serde_json` and the validator.
//!
//! The text written is `serde_json`'s compact form, octet for octet: members in the order
//! the type serializes them, no whitespace, strings escaped as `serde_json` escapes them
//! (`"`, `\`, and control characters; `\b \f \n \r \t` in short form, the others as
//! `\u00XX`; see `json::write_str`).
//!
//! What one member costs: a registered name is recognised by its length and first octet (one
//! comparison of at most ten octets, no chain of string compares) and written with its quotes,
//! comma and colon in one copy; it is checked for repetition with one bit. Any other name is
//! tested for escapes eight octets at a time and for repetition with a one-word Bloom filter,
//! compared with the earlier names only when its bit is already set.

use std::fmt;

use bytes::{BufMut, BytesMut};
use serde::ser::{self, Impossible, Serialize, Serializer};

use crate::fast::name_bit;
use crate::header::MAX_SAFE_INTEGER;
use crate::json::{self, Block};
use crate::Profile;

/// Members besides the registered ones that the one pass tracks; a header with more takes the
/// general path.
pub(crate) const MAX_EXTENSIONS: usize = 16;

/// Why the one-pass encoder gave up: the general path decides.
#[derive(Debug)]
pub(crate) struct GiveUp;

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("left to the general encoder")
    }
}

impl std::error::Error for GiveUp {}

impl ser::Error for GiveUp {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        GiveUp
    }
}

/// What the one-pass encoder learned about the header it wrote.
pub(crate) struct Written {
    /// The body length the header declares (0 when it declares none).
    pub declared: u64,
    /// The header carries a length member of `profile` (`body_len`; in `seed-compat` also
    /// `file_size`, `total_size`).
    pub has_length: bool,
    /// Members written.
    pub members: usize,
}

/// Serializes `header` as canonical JSON onto the end of `dst` and checks the registered
/// members (§4.4), or gives up (leaving whatever it wrote for the caller to cut off).
pub(crate) fn write<T: Serialize + ?Sized>(
    header: &T,
    dst: &mut BytesMut,
    profile: Profile,
) -> Result<Written, GiveUp> {
    let start = dst.len();
    let mut members = Members {
        out: dst,
        start,
        profile,
        names: [(0, 0); MAX_EXTENSIONS],
        extensions: 0,
        len: 0,
        seen: 0,
        registered: 0,
        slot: None,
        declared: None,
        after_key: false,
    };
    header.serialize(Top(&mut members))?;
    // Name offsets are kept as `u32`: a longer text is left to the general path (and is far
    // over any `max_header_len` anyway).
    if u32::try_from(members.out.len() - start).is_err() {
        return Err(GiveUp);
    }
    Ok(Written {
        declared: members.declared.unwrap_or(0),
        has_length: members.declared.is_some(),
        members: members.len,
    })
}

/// The registered members (§4.4, and `seed-compat`'s length and digest members), by slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reg {
    BodyLen,
    FileSize,
    TotalSize,
    Kind,
    Id,
    Name,
    Sha256,
    V,
    Md5,
}

impl Reg {
    /// The registered member `name` names: its length and first octet pick the one candidate,
    /// then one comparison of a known length decides.
    fn of(name: &[u8]) -> Option<Reg> {
        // A comparison with an array of known length: one or two integer compares, where a
        // slice comparison would call `bcmp`.
        fn is<const N: usize>(name: &[u8], text: &[u8; N]) -> bool {
            <&[u8; N]>::try_from(name).is_ok_and(|a| a == text)
        }
        let reg = match (name.len(), name.first()) {
            (1, _) if is(name, b"v") => Reg::V,
            (2, _) if is(name, b"id") => Reg::Id,
            (3, _) if is(name, b"md5") => Reg::Md5,
            (4, Some(b'k')) if is(name, b"kind") => Reg::Kind,
            (4, _) if is(name, b"name") => Reg::Name,
            (6, _) if is(name, b"sha256") => Reg::Sha256,
            (8, _) if is(name, b"body_len") => Reg::BodyLen,
            (9, _) if is(name, b"file_size") => Reg::FileSize,
            (10, _) if is(name, b"total_size") => Reg::TotalSize,
            _ => return None,
        };
        Some(reg)
    }

    /// `,"name":` — the member's name written whole, comma included, or without the comma for
    /// the first member.
    fn written(self, first: bool) -> &'static Block {
        const fn pair(name: &[u8]) -> [Block; 2] {
            let mut text = [0u8; 16];
            text[0] = b',';
            text[1] = b'"';
            let mut i = 0;
            while i < name.len() {
                text[2 + i] = name[i];
                i += 1;
            }
            text[2 + i] = b'"';
            text[3 + i] = b':';
            let (with_comma, _) = text.split_at(name.len() + 4);
            let (_, without) = with_comma.split_at(1);
            [Block::new(with_comma), Block::new(without)]
        }
        const KEYS: [[Block; 2]; 9] = [
            pair(b"body_len"),
            pair(b"file_size"),
            pair(b"total_size"),
            pair(b"kind"),
            pair(b"id"),
            pair(b"name"),
            pair(b"sha256"),
            pair(b"v"),
            pair(b"md5"),
        ];
        &KEYS[self as usize][usize::from(first)]
    }
}

/// A value as written: enough to apply a registered member's rule to it.
#[derive(Clone, Copy, Debug)]
enum Wrote {
    /// A string whose opening quote is at `at` in the output.
    Str { at: usize, escaped: bool },
    /// An integer literal, `-n` when `neg`.
    Int { neg: bool, n: u64 },
    /// `true`, `false` or `null`.
    Other,
}

/// The object being written: the output and what the receiver's rules need to know of the
/// members so far.
struct Members<'a> {
    out: &'a mut BytesMut,
    /// The header text's first octet in `out`.
    start: usize,
    profile: Profile,
    /// `text[a..b]` (offsets from `start`) names each extension so far.
    names: [(u32, u32); MAX_EXTENSIONS],
    extensions: usize,
    /// Members written.
    len: usize,
    /// A one-word Bloom filter of the extensions' names (see [`name_bit`]): a name is compared
    /// with the earlier ones only when its bit is already set.
    seen: u64,
    /// One bit per registered member written.
    registered: u16,
    /// The registered member whose name was just written.
    slot: Option<Reg>,
    /// The body length declared by the length members so far.
    declared: Option<u64>,
    /// A map's key was written; its value comes next.
    after_key: bool,
}

impl Members<'_> {
    /// Writes `"name":` (after a `,` unless first), refusing a name that needs an escape or
    /// repeats an earlier one, and more than [`MAX_EXTENSIONS`] other members.
    fn key(&mut self, name: &str) -> Result<(), GiveUp> {
        let n = name.as_bytes();
        if let Some(reg) = Reg::of(n) {
            let bit = 1 << reg as u16;
            if self.registered & bit != 0 {
                return Err(GiveUp);
            }
            self.registered |= bit;
            self.slot = Some(reg);
            reg.written(self.len == 0).put(self.out);
            return Ok(());
        }
        if self.extensions == MAX_EXTENSIONS || json::needs_escape(n) {
            return Err(GiveUp);
        }
        let bit = name_bit(n);
        if self.seen & bit != 0 {
            let text = self.out.get(self.start..).unwrap_or_default();
            let repeated = self
                .names
                .get(..self.extensions)
                .unwrap_or_default()
                .iter()
                .any(|&(a, b)| text.get(a as usize..b as usize) == Some(n));
            if repeated {
                return Err(GiveUp);
            }
        }
        self.seen |= bit;
        self.slot = None;
        self.out.reserve(n.len() + 4);
        if self.len > 0 {
            self.out.put_u8(b',');
        }
        self.out.put_u8(b'"');
        let a = self.out.len() - self.start;
        self.out.extend_from_slice(n);
        if let Some(e) = self.names.get_mut(self.extensions) {
            // Checked against `u32` once the text is complete.
            *e = (a as u32, (a + n.len()) as u32);
        }
        self.extensions += 1;
        self.out.extend_from_slice(b"\":");
        Ok(())
    }

    /// Writes the value of the member whose key was just written, applying its rule if it is
    /// a registered member.
    fn value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), GiveUp> {
        let v = value.serialize(Scalar(&mut *self.out))?;
        if let Some(reg) = self.slot.take() {
            self.check(reg, v)?;
        }
        self.len += 1;
        Ok(())
    }

    /// The rule of §4.4 for registered member `reg` with value `v` (as `header::validate_members`
    /// and `fast::check_registered` apply it; anything they would refuse is given up).
    fn check(&mut self, reg: Reg, v: Wrote) -> Result<(), GiveUp> {
        let ok = match (reg, v) {
            (Reg::FileSize | Reg::TotalSize | Reg::Md5, _) if self.profile == Profile::Lhp1 => true,
            (Reg::BodyLen | Reg::FileSize | Reg::TotalSize, Wrote::Int { neg: false, n }) => {
                let agrees = self.declared.is_none_or(|d| d == n);
                self.declared = Some(n);
                agrees
            }
            (Reg::Kind | Reg::Name, Wrote::Str { .. }) => true,
            (Reg::Id, Wrote::Int { neg: false, .. }) => true,
            (Reg::V, Wrote::Int { neg: false, n }) => n == 1,
            (Reg::Sha256, Wrote::Str { at, escaped: false }) => {
                // 64 lowercase hex digits (§4.4), between the quotes just written.
                let end = self.out.len().saturating_sub(1);
                self.out
                    .get(at + 1..end)
                    .is_some_and(|hex| hex.len() == 64 && hex.iter().all(|c| is_lower_hex(*c)))
            }
            // `seed-compat`: an `md5` that is not a digest is only not checked, but an escaped
            // one is the general parser's to read.
            (Reg::Md5, Wrote::Str { escaped, .. }) => !escaped,
            (Reg::Md5, _) => true,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(GiveUp)
        }
    }
}

fn is_lower_hex(c: u8) -> bool {
    matches!(c, b'0'..=b'9' | b'a'..=b'f')
}

/// The header itself: an object, or the general path.
struct Top<'s, 'a>(&'s mut Members<'a>);

/// A map's key: a string, or the general path.
struct Key<'s, 'a>(&'s mut Members<'a>);

/// A member's value: a scalar, or the general path.
struct Scalar<'a>(&'a mut BytesMut);

/// A newtype struct by these names is `serde_json`'s own (`RawValue`, arbitrary-precision
/// numbers): its text is not what it serializes as.
fn serde_json_private(name: &str) -> bool {
    name.starts_with("$serde_json")
}

/// The methods every serializer here has alike: a newtype struct is what it wraps (unless
/// it is `serde_json`'s own), a newtype variant gives up, `Some` is either what it wraps or
/// given up, and so is each listed method.
macro_rules! serializer_common {
    ($ok:ty; some: $some:ident; $($method:ident($($arg:ty),*) -> $ret:ty;)*) => {
        serializer_common!(@some $some $ok);

        fn serialize_newtype_struct<T: Serialize + ?Sized>(
            self,
            name: &'static str,
            value: &T,
        ) -> Result<$ok, GiveUp> {
            if serde_json_private(name) {
                return Err(GiveUp);
            }
            value.serialize(self)
        }

        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _name: &'static str,
            _index: u32,
            _variant: &'static str,
            _value: &T,
        ) -> Result<$ok, GiveUp> {
            Err(GiveUp)
        }

        $(
            fn $method(self, $(_: $arg),*) -> Result<$ret, GiveUp> {
                Err(GiveUp)
            }
        )*
    };
    (@some forward $ok:ty) => {
        fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<$ok, GiveUp> {
            value.serialize(self)
        }
    };
    (@some give_up $ok:ty) => {
        fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<$ok, GiveUp> {
            Err(GiveUp)
        }
    };
}

impl<'s, 'a> Serializer for Top<'s, 'a> {
    type Ok = ();
    type Error = GiveUp;
    type SerializeSeq = Impossible<(), GiveUp>;
    type SerializeTuple = Impossible<(), GiveUp>;
    type SerializeTupleStruct = Impossible<(), GiveUp>;
    type SerializeTupleVariant = Impossible<(), GiveUp>;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), GiveUp>;

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, GiveUp> {
        self.0.out.put_u8(b'{');
        Ok(self)
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self, GiveUp> {
        self.0.out.put_u8(b'{');
        Ok(self)
    }

    serializer_common! {
        ();
        some: give_up;
        serialize_bool(bool) -> ();
        serialize_i8(i8) -> ();
        serialize_i16(i16) -> ();
        serialize_i32(i32) -> ();
        serialize_i64(i64) -> ();
        serialize_i128(i128) -> ();
        serialize_u8(u8) -> ();
        serialize_u16(u16) -> ();
        serialize_u32(u32) -> ();
        serialize_u64(u64) -> ();
        serialize_u128(u128) -> ();
        serialize_f32(f32) -> ();
        serialize_f64(f64) -> ();
        serialize_char(char) -> ();
        serialize_str(&str) -> ();
        serialize_bytes(&[u8]) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_unit_variant(&'static str, u32, &'static str) -> ();
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }
}

impl ser::SerializeStruct for Top<'_, '_> {
    type Ok = ();
    type Error = GiveUp;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), GiveUp> {
        self.0.key(key)?;
        self.0.value(value)
    }

    fn end(self) -> Result<(), GiveUp> {
        self.0.out.put_u8(b'}');
        Ok(())
    }
}

impl ser::SerializeMap for Top<'_, '_> {
    type Ok = ();
    type Error = GiveUp;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), GiveUp> {
        if self.0.after_key {
            return Err(GiveUp);
        }
        key.serialize(Key(&mut *self.0))?;
        self.0.after_key = true;
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), GiveUp> {
        if !std::mem::take(&mut self.0.after_key) {
            return Err(GiveUp);
        }
        self.0.value(value)
    }

    fn end(self) -> Result<(), GiveUp> {
        if self.0.after_key {
            return Err(GiveUp);
        }
        self.0.out.put_u8(b'}');
        Ok(())
    }
}

impl Serializer for Key<'_, '_> {
    type Ok = ();
    type Error = GiveUp;
    type SerializeSeq = Impossible<(), GiveUp>;
    type SerializeTuple = Impossible<(), GiveUp>;
    type SerializeTupleStruct = Impossible<(), GiveUp>;
    type SerializeTupleVariant = Impossible<(), GiveUp>;
    type SerializeMap = Impossible<(), GiveUp>;
    type SerializeStruct = Impossible<(), GiveUp>;
    type SerializeStructVariant = Impossible<(), GiveUp>;

    fn serialize_str(self, v: &str) -> Result<(), GiveUp> {
        self.0.key(v)
    }

    serializer_common! {
        ();
        some: give_up;
        serialize_bool(bool) -> ();
        serialize_i8(i8) -> ();
        serialize_i16(i16) -> ();
        serialize_i32(i32) -> ();
        serialize_i64(i64) -> ();
        serialize_i128(i128) -> ();
        serialize_u8(u8) -> ();
        serialize_u16(u16) -> ();
        serialize_u32(u32) -> ();
        serialize_u64(u64) -> ();
        serialize_u128(u128) -> ();
        serialize_f32(f32) -> ();
        serialize_f64(f64) -> ();
        serialize_char(char) -> ();
        serialize_bytes(&[u8]) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_unit_variant(&'static str, u32, &'static str) -> ();
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct(&'static str, usize) -> Self::SerializeStruct;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }
}

impl Scalar<'_> {
    /// An integer, `-n` when `neg`, within ±(2^53−1) (§4.3), or the general path.
    fn int(self, neg: bool, n: u64) -> Result<Wrote, GiveUp> {
        if n > MAX_SAFE_INTEGER {
            return Err(GiveUp);
        }
        let neg = neg && n != 0;
        json::write_int(self.0, neg, n);
        Ok(Wrote::Int { neg, n })
    }

    fn signed(self, v: i64) -> Result<Wrote, GiveUp> {
        self.int(v < 0, v.unsigned_abs())
    }
}

impl Serializer for Scalar<'_> {
    type Ok = Wrote;
    type Error = GiveUp;
    type SerializeSeq = Impossible<Wrote, GiveUp>;
    type SerializeTuple = Impossible<Wrote, GiveUp>;
    type SerializeTupleStruct = Impossible<Wrote, GiveUp>;
    type SerializeTupleVariant = Impossible<Wrote, GiveUp>;
    type SerializeMap = Impossible<Wrote, GiveUp>;
    type SerializeStruct = Impossible<Wrote, GiveUp>;
    type SerializeStructVariant = Impossible<Wrote, GiveUp>;

    fn serialize_bool(self, v: bool) -> Result<Wrote, GiveUp> {
        self.0.extend_from_slice(if v { b"true" } else { b"false" });
        Ok(Wrote::Other)
    }

    fn serialize_i8(self, v: i8) -> Result<Wrote, GiveUp> {
        self.signed(v.into())
    }

    fn serialize_i16(self, v: i16) -> Result<Wrote, GiveUp> {
        self.signed(v.into())
    }

    fn serialize_i32(self, v: i32) -> Result<Wrote, GiveUp> {
        self.signed(v.into())
    }

    fn serialize_i64(self, v: i64) -> Result<Wrote, GiveUp> {
        self.signed(v)
    }

    fn serialize_i128(self, v: i128) -> Result<Wrote, GiveUp> {
        self.signed(i64::try_from(v).map_err(|_| GiveUp)?)
    }

    fn serialize_u8(self, v: u8) -> Result<Wrote, GiveUp> {
        self.int(false, v.into())
    }

    fn serialize_u16(self, v: u16) -> Result<Wrote, GiveUp> {
        self.int(false, v.into())
    }

    fn serialize_u32(self, v: u32) -> Result<Wrote, GiveUp> {
        self.int(false, v.into())
    }

    fn serialize_u64(self, v: u64) -> Result<Wrote, GiveUp> {
        self.int(false, v)
    }

    fn serialize_u128(self, v: u128) -> Result<Wrote, GiveUp> {
        self.int(false, u64::try_from(v).map_err(|_| GiveUp)?)
    }

    fn serialize_f32(self, _v: f32) -> Result<Wrote, GiveUp> {
        Err(GiveUp)
    }

    fn serialize_f64(self, _v: f64) -> Result<Wrote, GiveUp> {
        Err(GiveUp)
    }

    fn serialize_char(self, v: char) -> Result<Wrote, GiveUp> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }

    fn serialize_str(self, v: &str) -> Result<Wrote, GiveUp> {
        let at = self.0.len();
        let escaped = json::write_str(v, self.0);
        Ok(Wrote::Str { at, escaped })
    }

    fn serialize_bytes(self, _v: &[u8]) -> Result<Wrote, GiveUp> {
        Err(GiveUp)
    }

    fn serialize_none(self) -> Result<Wrote, GiveUp> {
        self.serialize_unit()
    }

    fn serialize_unit(self) -> Result<Wrote, GiveUp> {
        self.0.extend_from_slice(b"null");
        Ok(Wrote::Other)
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<Wrote, GiveUp> {
        self.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Wrote, GiveUp> {
        self.serialize_str(variant)
    }

    serializer_common! {
        Wrote;
        some: forward;
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct(&'static str, usize) -> Self::SerializeStruct;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde::ser::SerializeMap;
    use serde::Serialize;
    use serde_json::Value;

    use super::*;
    use crate::header;
    use crate::Encoder;

    const PROFILES: [Profile; 2] = [Profile::Lhp1, Profile::SeedCompat];

    /// Members in the order given, duplicates included (a `Map` cannot repeat a name).
    #[derive(Debug)]
    struct Pairs(Vec<(String, Value)>);

    impl Serialize for Pairs {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in &self.0 {
                m.serialize_entry(k, v)?;
            }
            m.end()
        }
    }

    /// The reference: the general path alone (`serde_json`, then the validator).
    fn general<T: Serialize + ?Sized>(
        enc: &Encoder,
        h: &T,
        body_len: u64,
    ) -> Result<BytesMut, String> {
        let mut out = BytesMut::from(&b"before\0\0\0\0"[..]);
        enc.write_typed_general(h, body_len, 6, &mut out)
            .map(|()| out.split_off(6))
            .map_err(|e| format!("{e:?}"))
    }

    /// The one-pass encoder agrees with `serde_json` and the validator whenever it accepts,
    /// and `encode_typed_head` (one pass, or the general path when it gives up) always writes
    /// the same octets or returns the same error as the general path alone.
    fn agree<T: Serialize + ?Sized + fmt::Debug>(h: &T, body_len: u64) {
        for profile in PROFILES {
            let mut text = BytesMut::new();
            if let Ok(w) = write(h, &mut text, profile) {
                let json = serde_json::to_vec(h).unwrap();
                assert_eq!(&text[..], &json[..], "{h:?}");
                let (checked, _) = header::validate(&text, profile, None)
                    .unwrap_or_else(|e| panic!("{h:?} {profile}: one pass accepted, {e:?}"));
                assert_eq!(checked.body_len, w.declared, "{h:?} {profile}");
            }
            let enc = Encoder::with_profile(profile);
            let mut out = BytesMut::from(&b"before"[..]);
            let got = enc
                .encode_typed_head(h, body_len, &mut out)
                .map(|()| out.split_off(6))
                .map_err(|e| format!("{e:?}"));
            assert_eq!(
                got,
                general(&enc, h, body_len),
                "{h:?} {profile} {body_len}"
            );
            assert_eq!(&out[..6], b"before");
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
            "é",
            "a\"b",
            "tab\t",
            "",
        ])
        .prop_map(str::to_owned)
    }

    fn scalar() -> impl Strategy<Value = Value> {
        let fixed = prop::sample::select(vec![
            Value::from(0),
            Value::from(1),
            Value::from(2),
            Value::from(3),
            Value::from(-1),
            Value::from(9_007_199_254_740_991u64),
            Value::from(9_007_199_254_740_992u64),
            Value::from(-9_007_199_254_740_991i64),
            Value::from(-9_007_199_254_740_992i64),
            Value::from(u64::MAX),
            Value::from(i64::MIN),
            Value::from(1.5),
            Value::from(1.0),
            Value::from(-0.0),
            Value::Bool(true),
            Value::Bool(false),
            Value::Null,
            Value::from(""),
            Value::from("x"),
            Value::from("a\nb\u{1}\u{1f}\u{7f}\"\\/é😀"),
            Value::from("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            Value::from("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"),
            Value::from("900150983cd24fb0d6963f7d28e17f72"),
            Value::from("900150983CD24FB0D6963F7D28E17F72"),
            serde_json::json!([1, "a"]),
            serde_json::json!({"n": 1}),
            serde_json::json!({}),
        ]);
        prop_oneof![
            4 => fixed,
            1 => any::<i64>().prop_map(Value::from),
            1 => (0u64..20).prop_map(Value::from),
            1 => "\\PC{0,6}".prop_map(Value::from),
            1 => "[\\x00-\\x7f]{0,6}".prop_map(Value::from),
        ]
    }

    fn pairs() -> impl Strategy<Value = Pairs> {
        prop::collection::vec((name(), scalar()), 0..20).prop_map(Pairs)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::test_support::proptest_cases(3000)))]

        #[test]
        fn one_pass_encoding_agrees_with_serde_json_and_the_validator(
            h in pairs(),
            body_len in prop_oneof![Just(0u64), Just(3), Just(9_007_199_254_740_992), 0u64..5],
        ) {
            agree(&h, body_len);
        }
    }

    #[derive(Serialize, Debug)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        GetAll,
        #[allow(dead_code)]
        Tagged(u8),
    }

    #[derive(Serialize, Debug)]
    struct Id(u64);

    #[derive(Serialize, Debug)]
    struct Typed<'a> {
        kind: Kind,
        id: Id,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<Cow<'a, str>>,
        note: Option<&'a str>,
        c: char,
        small: i8,
        big: i128,
        unit: (),
        #[serde(flatten)]
        extra: BTreeMap<String, Value>,
    }

    #[test]
    fn derived_structs_take_the_one_pass_path() {
        let mut extra = BTreeMap::new();
        extra.insert("trace".to_owned(), Value::from("t\u{0}"));
        let h = Typed {
            kind: Kind::GetAll,
            id: Id(7),
            name: Some("a\"b".into()),
            note: None,
            c: '\n',
            small: -128,
            big: -9_007_199_254_740_991,
            unit: (),
            extra,
        };
        let mut out = BytesMut::new();
        let w = write(&h, &mut out, Profile::Lhp1)
            .map_err(|_| "gave up")
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"kind":"get_all","id":7,"name":"a\"b","note":null,"c":"\n","small":-128,"big":-9007199254740991,"unit":null,"trace":"t\u0000"}"#
        );
        assert_eq!((w.declared, w.has_length, w.members), (0, false, 9));
        for body_len in [0, 5] {
            agree(&h, body_len);
        }
        // What the one pass leaves to the general path, which decides the same.
        let slow = [Typed {
            kind: Kind::Tagged(1),
            ..h
        }];
        for h in &slow {
            assert!(write(h, &mut BytesMut::new(), Profile::Lhp1).is_err());
            agree(h, 0);
        }
        let fallbacks: Vec<Value> = vec![
            serde_json::json!({"n": 1.5}),
            serde_json::json!({"n": {"a": 1}}),
            serde_json::json!({"kind": 1}),
            serde_json::json!({"v": 2}),
            serde_json::json!({"id": -1}),
            serde_json::json!({"body_len": 2}),
            serde_json::json!({"sha256": "00"}),
            serde_json::json!([1]),
            serde_json::json!("s"),
            Value::Null,
        ];
        for h in &fallbacks {
            for body_len in [0, 2] {
                agree(h, body_len);
            }
        }
        // More members than the fast path tracks: the general path.
        let many = Pairs((0..17).map(|i| (format!("m{i}"), Value::from(i))).collect());
        assert!(write(&many, &mut BytesMut::new(), Profile::Lhp1).is_err());
        agree(&many, 1);
    }
}
