//! The members of a header being built (§4.3, §4.4), and their canonical text (§9).
//!
//! The registered members of `lhp1` (`kind`, `id`, `name`, `sha256`, `body_len`, `v`) are
//! typed fields; every other member is an extension, kept in a `Vec` in the order it was
//! given. Each member carries a sequence number taken when it was first given, so that the
//! header is written with its members "in the order the application gave them" (§9), wherever
//! they are stored: a member replaced keeps its place, one removed and given again goes last,
//! as in a `serde_json::Map`.
//!
//! Strings are `Cow<'static, str>`: a `&'static str` is kept as it is and a `String` moves in,
//! so a header of registered members allocates nothing beyond what the caller hands over.
//!
//! A registered member given a value of another type (`kind: 5`, `sha256: "AB"`) is kept as
//! an extension holding that value, so that the header still says what the application said;
//! the encoder then refuses it (§4.4) with the error a receiver would give.

use std::borrow::Cow;
use std::iter::Peekable;
use std::slice;

use bytes::{BufMut, BytesMut};
use serde_json::{Map, Value};

use crate::json::{self, Block};

/// A registered member of `lhp1` that a built header keeps typed (§4.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reg {
    Kind = 0,
    Id,
    Name,
    Sha256,
    BodyLen,
    V,
}

impl Reg {
    /// The registered member `name` names, if any: told apart by length and first octet,
    /// then confirmed by one comparison of known length.
    #[inline]
    pub(crate) fn from_name(name: &str) -> Option<Reg> {
        let reg = match (name.len(), name.as_bytes().first()) {
            (4, Some(b'k')) => Reg::Kind,
            (2, Some(b'i')) => Reg::Id,
            (4, Some(b'n')) => Reg::Name,
            (6, Some(b's')) => Reg::Sha256,
            (8, Some(b'b')) => Reg::BodyLen,
            (1, Some(b'v')) => return Some(Reg::V),
            _ => return None,
        };
        (name == reg.name()).then_some(reg)
    }

    /// The member's name quoted, with its colon and, unless `first`, the comma before it:
    /// `,"kind":`.
    fn quoted(self, first: bool) -> &'static Block {
        const KEYS: [[Block; 2]; 6] = [
            [Block::new(b",\"kind\":"), Block::new(b"\"kind\":")],
            [Block::new(b",\"id\":"), Block::new(b"\"id\":")],
            [Block::new(b",\"name\":"), Block::new(b"\"name\":")],
            [Block::new(b",\"sha256\":"), Block::new(b"\"sha256\":")],
            [Block::new(b",\"body_len\":"), Block::new(b"\"body_len\":")],
            [Block::new(b",\"v\":"), Block::new(b"\"v\":")],
        ];
        &KEYS[self as usize][usize::from(first)]
    }

    /// The member's name.
    #[inline]
    pub(crate) fn name(self) -> &'static str {
        match self {
            Reg::Kind => "kind",
            Reg::Id => "id",
            Reg::Name => "name",
            Reg::Sha256 => "sha256",
            Reg::BodyLen => "body_len",
            Reg::V => "v",
        }
    }
}

/// `seq` of a registered member that is absent.
const ABSENT: u32 = u32::MAX;

/// The registered members, in the order of [`Built::seq`].
const ALL: [Reg; 6] = [
    Reg::Kind,
    Reg::Id,
    Reg::Name,
    Reg::Sha256,
    Reg::BodyLen,
    Reg::V,
];

/// An extension member (or a registered one whose value is not of its registered type).
#[derive(Clone, Debug)]
struct Ext {
    seq: u32,
    name: Cow<'static, str>,
    value: Value,
}

/// One member's value, borrowed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum MemberRef<'a> {
    /// A string (`kind`, `name`, `sha256`).
    Str(&'a str),
    /// A non-negative integer (`id`, `body_len`, `v`).
    Int(u64),
    /// Any JSON value (an extension).
    Value(&'a Value),
}

impl MemberRef<'_> {
    /// The value as JSON.
    pub(crate) fn to_value(self) -> Value {
        match self {
            MemberRef::Str(s) => Value::String(s.to_owned()),
            MemberRef::Int(n) => Value::from(n),
            MemberRef::Value(v) => v.clone(),
        }
    }

    /// Equal as JSON values: `Int(5)` is the integer `5`, not the float `5.0`.
    pub(crate) fn same(self, other: MemberRef<'_>) -> bool {
        match (self, other) {
            (MemberRef::Value(a), MemberRef::Value(b)) => a == b,
            (MemberRef::Str(a), MemberRef::Str(b)) => a == b,
            (MemberRef::Int(a), MemberRef::Int(b)) => a == b,
            (MemberRef::Str(s), MemberRef::Value(v)) | (MemberRef::Value(v), MemberRef::Str(s)) => {
                v.as_str() == Some(s)
            }
            (MemberRef::Int(n), MemberRef::Value(v)) | (MemberRef::Value(v), MemberRef::Int(n)) => {
                v.is_u64() && v.as_u64() == Some(n)
            }
            (MemberRef::Str(_), MemberRef::Int(_)) | (MemberRef::Int(_), MemberRef::Str(_)) => {
                false
            }
        }
    }
}

/// The members of a header being built.
#[derive(Clone, Debug)]
pub(crate) struct Built {
    /// The place of each registered member (indexed by `Reg as usize`), [`ABSENT`] when it is
    /// absent (its value below is then meaningless).
    seq: [u32; 6],
    kind: Cow<'static, str>,
    name: Cow<'static, str>,
    /// Lowercase hex, always valid.
    sha256: [u8; 64],
    id: u64,
    body_len: u64,
    v: u64,
    /// Ordered by `seq`.
    ext: Vec<Ext>,
    /// The next sequence number.
    next: u32,
}

impl Default for Built {
    #[inline]
    fn default() -> Self {
        Built {
            seq: [ABSENT; 6],
            kind: Cow::Borrowed(""),
            name: Cow::Borrowed(""),
            sha256: [b'0'; 64],
            id: 0,
            body_len: 0,
            v: 0,
            ext: Vec::new(),
            next: 0,
        }
    }
}

impl Built {
    /// Just `kind` (what `set_str(Reg::Kind, kind)` makes of an empty one).
    #[inline]
    pub(crate) fn with_kind(kind: Cow<'static, str>) -> Built {
        let mut seq = [ABSENT; 6];
        seq[Reg::Kind as usize] = 0;
        Built {
            seq,
            kind,
            next: 1,
            ..Built::default()
        }
    }

    /// The members of `map`, in its order.
    pub(crate) fn from_map(map: Map<String, Value>) -> Built {
        let mut b = Built::default();
        for (name, value) in map {
            b.insert(Cow::Owned(name), value);
        }
        b
    }

    /// The members as a map, in order.
    pub(crate) fn to_map(&self) -> Map<String, Value> {
        self.iter()
            .map(|(name, v)| (name.to_owned(), v.to_value()))
            .collect()
    }

    /// How many members there are.
    pub(crate) fn len(&self) -> usize {
        self.seq.iter().filter(|&&s| s != ABSENT).count() + self.ext.len()
    }

    /// The members, in the order they were given.
    pub(crate) fn iter(&self) -> Iter<'_> {
        // The registered members present, by place (insertion sort: at most six).
        let mut reg = [(ABSENT, Reg::Kind); 6];
        let mut n = 0;
        for r in ALL {
            let seq = self.seq[r as usize];
            if seq == ABSENT {
                continue;
            }
            let mut i = n;
            while i > 0 && reg[i - 1].0 > seq {
                reg[i] = reg[i - 1];
                i -= 1;
            }
            reg[i] = (seq, r);
            n += 1;
        }
        Iter {
            built: self,
            reg,
            at: 0,
            ext: self.ext.iter().peekable(),
        }
    }

    /// A registered member's typed value, if it has one.
    fn typed(&self, reg: Reg) -> Option<MemberRef<'_>> {
        if self.seq[reg as usize] == ABSENT {
            return None;
        }
        Some(match reg {
            Reg::Kind => MemberRef::Str(&self.kind),
            Reg::Name => MemberRef::Str(&self.name),
            Reg::Sha256 => MemberRef::Str(hex_str(&self.sha256)),
            Reg::Id => MemberRef::Int(self.id),
            Reg::BodyLen => MemberRef::Int(self.body_len),
            Reg::V => MemberRef::Int(self.v),
        })
    }

    #[inline]
    fn has(&self, reg: Reg) -> bool {
        self.seq[reg as usize] != ABSENT
    }

    /// `kind`, when it is a string.
    pub(crate) fn kind(&self) -> Option<&str> {
        self.has(Reg::Kind).then_some(&*self.kind)
    }

    /// `name`, when it is a string.
    pub(crate) fn name(&self) -> Option<&str> {
        self.has(Reg::Name).then_some(&*self.name)
    }

    /// `sha256`, when it is a string (valid or not).
    pub(crate) fn sha256(&self) -> Option<&str> {
        match self.has(Reg::Sha256) {
            true => Some(hex_str(&self.sha256)),
            false => self.ext_get("sha256").and_then(Value::as_str),
        }
    }

    /// `id`, when it is a non-negative integer.
    pub(crate) fn id(&self) -> Option<u64> {
        self.has(Reg::Id).then_some(self.id)
    }

    /// `body_len`, when it is a non-negative integer.
    pub(crate) fn body_len(&self) -> Option<u64> {
        self.has(Reg::BodyLen).then_some(self.body_len)
    }

    /// `v`, when it is a non-negative integer.
    pub(crate) fn version(&self) -> Option<u64> {
        self.has(Reg::V).then_some(self.v)
    }

    /// A member kept as a JSON value (an extension, or a registered member of another type).
    pub(crate) fn ext_get(&self, name: &str) -> Option<&Value> {
        self.ext.iter().find(|e| e.name == name).map(|e| &e.value)
    }

    /// The extensions (members not registered in `lhp1`), in order.
    pub(crate) fn extensions(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.ext
            .iter()
            .filter(|e| Reg::from_name(&e.name).is_none())
            .map(|e| (&*e.name, &e.value))
    }

    /// True when some registered member holds a value of another type.
    pub(crate) fn has_mistyped(&self) -> bool {
        self.ext.iter().any(|e| Reg::from_name(&e.name).is_some())
    }

    /// True when the typed integers are all acceptable as they are (§4.2, §4.4): `id` and
    /// `body_len` at most 2^53−1, `v` equal to 1.
    pub(crate) fn integers_valid(&self) -> bool {
        let safe = |r: Reg, n: u64| !self.has(r) || n <= crate::MAX_SAFE_INTEGER;
        safe(Reg::Id, self.id)
            && safe(Reg::BodyLen, self.body_len)
            && (!self.has(Reg::V) || self.v == 1)
    }

    /// The values of the extensions (and mistyped registered members), in order.
    pub(crate) fn ext_values(&self) -> impl Iterator<Item = &Value> {
        self.ext.iter().map(|e| &e.value)
    }

    /// Sets a string member (`kind` or `name`).
    #[inline]
    pub(crate) fn set_str(&mut self, reg: Reg, val: Cow<'static, str>) {
        self.seq[reg as usize] = self.take_seq(reg);
        match reg {
            Reg::Name => self.name = val,
            _ => self.kind = val,
        }
    }

    /// Sets an integer member (`id`, `body_len` or `v`).
    #[inline]
    pub(crate) fn set_int(&mut self, reg: Reg, val: u64) {
        self.seq[reg as usize] = self.take_seq(reg);
        match reg {
            Reg::Id => self.id = val,
            Reg::V => self.v = val,
            _ => self.body_len = val,
        }
    }

    /// Sets `sha256` to a digest's lowercase hex.
    pub(crate) fn set_sha256(&mut self, digest: &[u8; 32]) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for (pair, &b) in self.sha256.chunks_exact_mut(2).zip(digest) {
            if let [hi, lo] = pair {
                *hi = DIGITS[usize::from(b >> 4)];
                *lo = DIGITS[usize::from(b & 15)];
            }
        }
        self.seq[Reg::Sha256 as usize] = self.take_seq(Reg::Sha256);
    }

    /// True when the member is present, whatever its value.
    #[inline]
    pub(crate) fn contains(&self, name: &str) -> bool {
        match Reg::from_name(name) {
            Some(reg) if self.has(reg) => true,
            _ => self.ext.iter().any(|e| e.name == name),
        }
    }

    /// True when the registered member `reg` is present, whatever its value.
    #[inline]
    pub(crate) fn contains_reg(&self, reg: Reg) -> bool {
        self.has(reg) || (!self.ext.is_empty() && self.ext.iter().any(|e| e.name == reg.name()))
    }

    /// Inserts or replaces a member: typed when it is registered and of its registered type.
    pub(crate) fn insert(&mut self, name: Cow<'static, str>, value: Value) {
        match (Reg::from_name(&name), value) {
            (Some(reg @ (Reg::Kind | Reg::Name)), Value::String(s)) => {
                self.set_str(reg, Cow::Owned(s));
            }
            (Some(reg @ (Reg::Id | Reg::BodyLen | Reg::V)), Value::Number(n)) => {
                match n.as_u64().filter(|_| n.is_u64()) {
                    Some(n) => self.set_int(reg, n),
                    None => self.insert_ext(name, Value::Number(n)),
                }
            }
            (Some(Reg::Sha256), Value::String(s)) => {
                match crate::header::parse_hex::<32>(&s, false) {
                    Some(d) => self.set_sha256(&d),
                    None => self.insert_ext(name, Value::String(s)),
                }
            }
            (_, value) => self.insert_ext(name, value),
        }
    }

    /// Removes a member, returning its value.
    pub(crate) fn remove(&mut self, name: &str) -> Option<Value> {
        if let Some(reg) = Reg::from_name(name) {
            if let Some(v) = self.typed(reg) {
                let v = v.to_value();
                self.seq[reg as usize] = ABSENT;
                match reg {
                    Reg::Kind => self.kind = Cow::Borrowed(""),
                    Reg::Name => self.name = Cow::Borrowed(""),
                    _ => {}
                }
                return Some(v);
            }
        }
        let at = self.ext.iter().position(|e| e.name == name)?;
        Some(self.ext.remove(at).value)
    }

    /// Replaces the value of an extension that is present; false when it is not.
    pub(crate) fn replace_ext(&mut self, name: &str, value: Value) -> bool {
        match self.ext.iter_mut().find(|e| e.name == name) {
            Some(e) => {
                e.value = value;
                true
            }
            None => false,
        }
    }

    /// Appends the members as one JSON object (§9).
    pub(crate) fn write(&self, out: &mut BytesMut) -> serde_json::Result<()> {
        out.reserve(16 + self.kind.len() + self.name.len() + 16 * self.len());
        out.put_u8(b'{');
        let mut iter = self.iter();
        let mut first = true;
        while let Some(member) = iter.next_member() {
            match member {
                Ok(reg) => {
                    // A registered name needs no escaping: `,"kind":` as it is.
                    reg.quoted(first).put(out);
                    match reg {
                        Reg::Kind => {
                            json::write_str(&self.kind, out);
                        }
                        Reg::Name => {
                            json::write_str(&self.name, out);
                        }
                        Reg::Sha256 => {
                            out.put_u8(b'"');
                            out.extend_from_slice(&self.sha256);
                            out.put_u8(b'"');
                        }
                        Reg::Id => write_int(self.id, out),
                        Reg::BodyLen => write_int(self.body_len, out),
                        Reg::V => write_int(self.v, out),
                    }
                }
                Err(e) => {
                    if !first {
                        out.put_u8(b',');
                    }
                    json::write_str(&e.name, out);
                    out.put_u8(b':');
                    json::write_value(&e.value, out)?;
                }
            }
            first = false;
        }
        out.put_u8(b'}');
        Ok(())
    }

    /// Keeps `value` as a JSON value under `name`, in place of any member of that name.
    fn insert_ext(&mut self, name: Cow<'static, str>, value: Value) {
        if let Some(e) = self.ext.iter_mut().find(|e| e.name == name) {
            e.value = value;
            return;
        }
        let seq = match Reg::from_name(&name).filter(|&r| self.has(r)) {
            Some(reg) => std::mem::replace(&mut self.seq[reg as usize], ABSENT),
            None => self.fresh_seq(),
        };
        let at = self.ext.partition_point(|e| e.seq < seq);
        self.ext.insert(at, Ext { seq, name, value });
    }

    /// The place the registered member is about to take: the one it has now (removing it
    /// from the extensions if it is kept there), else the next.
    #[inline]
    fn take_seq(&mut self, reg: Reg) -> u32 {
        let seq = self.seq[reg as usize];
        if seq != ABSENT {
            return seq;
        }
        // New, with no extension that could hold it: the next number (kept inline, the rest
        // out of line).
        if self.ext.is_empty() && self.next < ABSENT - 1 {
            self.next += 1;
            return self.next - 1;
        }
        self.take_seq_slow(reg)
    }

    /// [`take_seq`](Self::take_seq) of a member that may be kept as an extension.
    #[cold]
    #[inline(never)]
    fn take_seq_slow(&mut self, reg: Reg) -> u32 {
        if let Some(at) = self.ext.iter().position(|e| e.name == reg.name()) {
            return self.ext.remove(at).seq;
        }
        self.fresh_seq()
    }

    fn fresh_seq(&mut self) -> u32 {
        if self.next >= ABSENT - 1 {
            self.renumber();
        }
        let seq = self.next;
        self.next += 1;
        seq
    }

    /// Numbers the members 0, 1, ... in their order (after 2^32 changes to one header).
    #[cold]
    #[inline(never)]
    fn renumber(&mut self) {
        let mut seqs: Vec<u32> = self.ext.iter().map(|e| e.seq).collect();
        seqs.extend(self.seq.iter().copied().filter(|&s| s != ABSENT));
        seqs.sort_unstable();
        // Sequence numbers are unique: each one's rank is its new number.
        let rank = |seq: &mut u32| {
            if *seq != ABSENT {
                *seq = seqs.binary_search(seq).map_or(0, |r| r as u32);
            }
        };
        self.ext.iter_mut().for_each(|e| rank(&mut e.seq));
        self.seq.iter_mut().for_each(rank);
        self.next = seqs.len() as u32;
    }
}

/// The members of a [`Built`] header in order: the typed fields merged with the extensions
/// by sequence number.
pub(crate) struct Iter<'a> {
    built: &'a Built,
    /// The registered members present, by place; `ABSENT` after the last.
    reg: [(u32, Reg); 6],
    at: usize,
    ext: Peekable<slice::Iter<'a, Ext>>,
}

impl<'a> Iter<'a> {
    /// The next member, as a registered one (`Ok`) or a JSON value (`Err`).
    fn next_member(&mut self) -> Option<Result<Reg, &'a Ext>> {
        let (seq, reg) = self
            .reg
            .get(self.at)
            .copied()
            .unwrap_or((ABSENT, Reg::Kind));
        match self.ext.peek() {
            Some(e) if e.seq < seq => self.ext.next().map(Err),
            _ if seq != ABSENT => {
                self.at += 1;
                Some(Ok(reg))
            }
            _ => None,
        }
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, MemberRef<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_member()? {
            Ok(reg) => Some((reg.name(), self.built.typed(reg)?)),
            Err(e) => Some((&*e.name, MemberRef::Value(&e.value))),
        }
    }
}

fn write_int(n: u64, out: &mut BytesMut) {
    json::write_int(out, false, n);
}

/// Our own hex digits as a `&str` (always ASCII).
fn hex_str(hex: &[u8; 64]) -> &str {
    std::str::from_utf8(hex).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(b: &Built) -> Vec<&str> {
        b.iter().map(|(n, _)| n).collect()
    }

    fn text(b: &Built) -> String {
        let mut out = BytesMut::new();
        b.write(&mut out).unwrap();
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn order_is_the_order_given() {
        let mut b = Built::default();
        b.insert("z".into(), Value::from(1));
        b.set_str(Reg::Kind, "k".into());
        b.insert("a".into(), Value::from("x"));
        b.set_int(Reg::Id, 3);
        assert_eq!(names(&b), ["z", "kind", "a", "id"]);
        // Replaced: same place, whichever way it is stored.
        b.insert("kind".into(), Value::from(5));
        b.insert("z".into(), Value::from(2));
        assert_eq!(names(&b), ["z", "kind", "a", "id"]);
        assert_eq!(text(&b), r#"{"z":2,"kind":5,"a":"x","id":3}"#);
        b.set_str(Reg::Kind, "back".into());
        assert_eq!(text(&b), r#"{"z":2,"kind":"back","a":"x","id":3}"#);
        // Removed and given again: last.
        assert_eq!(b.remove("z"), Some(Value::from(2)));
        b.insert("z".into(), Value::Null);
        assert_eq!(names(&b), ["kind", "a", "id", "z"]);
        assert_eq!(
            b.to_map().keys().collect::<Vec<_>>(),
            ["kind", "a", "id", "z"]
        );
    }

    #[test]
    fn as_serde_json_writes_it() {
        let mut b = Built::default();
        b.set_str(Reg::Name, "a\"b\\c\n\u{1}é".into());
        b.set_sha256(&[0xab; 32]);
        b.insert(
            "n".into(),
            serde_json::json!({"x": [1, -2, 0.5, null, true]}),
        );
        b.set_int(Reg::BodyLen, 7);
        let want = serde_json::to_string(&b.to_map()).unwrap();
        assert_eq!(text(&b), want);
        assert!(want.contains(&"ab".repeat(32)));
    }

    #[test]
    fn mistyped_registered_members_are_kept_as_given() {
        let mut b = Built::default();
        b.insert("sha256".into(), Value::from("AB"));
        b.insert("id".into(), Value::from(-1));
        b.insert("v".into(), Value::from(1.0));
        assert!(b.has_mistyped());
        assert_eq!(b.sha256(), Some("AB"));
        assert_eq!((b.id(), b.version()), (None, None));
        assert_eq!(text(&b), r#"{"sha256":"AB","id":-1,"v":1.0}"#);
        b.set_int(Reg::Id, 4);
        b.insert("v".into(), Value::from(1));
        b.remove("sha256");
        assert!(!b.has_mistyped());
        assert_eq!(text(&b), r#"{"id":4,"v":1}"#);
    }

    #[test]
    fn with_kind_is_an_empty_header_given_kind() {
        let mut b = Built::default();
        b.set_str(Reg::Kind, "k".into());
        let direct = Built::with_kind("k".into());
        assert_eq!(format!("{direct:?}"), format!("{b:?}"));
        // Members given afterwards follow it, as they would after `set_str`.
        let mut direct = direct;
        direct.insert("z".into(), Value::from(1));
        direct.set_int(Reg::Id, 2);
        assert_eq!(names(&direct), ["kind", "z", "id"]);
    }

    #[test]
    fn registered_names_are_recognised_exactly() {
        for reg in ALL {
            assert_eq!(Reg::from_name(reg.name()), Some(reg));
        }
        for other in [
            "", "k", "kinD", "kine", "nama", "i", "ix", "sha255", "body_lex", "V", "vv",
        ] {
            assert_eq!(Reg::from_name(other), None, "{other}");
        }
    }

    #[test]
    fn renumbering_keeps_the_order() {
        let mut b = Built::default();
        b.insert("a".into(), Value::from(1));
        b.set_str(Reg::Kind, "k".into());
        b.insert("id".into(), Value::from("x"));
        b.insert("b".into(), Value::from(2));
        b.set_int(Reg::V, 1);
        let before = text(&b);
        b.next = ABSENT - 1;
        b.insert("c".into(), Value::from(3));
        assert_eq!(names(&b), ["a", "kind", "id", "b", "v", "c"]);
        assert!(text(&b).starts_with(before.trim_end_matches('}')));
        // And the header goes on taking members, registered or not, in order.
        b.insert("d".into(), Value::from(4));
        b.set_int(Reg::BodyLen, 5);
        b.insert("e".into(), Value::from(6));
        b.set_str(Reg::Name, "n".into());
        assert_eq!(
            names(&b),
            ["a", "kind", "id", "b", "v", "c", "d", "body_len", "e", "name"]
        );
        assert!(b.next < 100, "numbered again from 0: {}", b.next);
    }
}
