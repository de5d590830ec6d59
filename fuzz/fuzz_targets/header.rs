//! `header`: arbitrary octets as a header. The codec's verdict must agree with an independent
//! oracle: `std::str::from_utf8`, `serde_json` for syntax, and this file's own walk for the
//! I-JSON rules (duplicate names at any depth, numbers within ±(2^53−1), an object at the top)
//! and the registered-member rules, in the precedence order of spec/lhp-1.md §4.5.
//!
//! Input: one flags octet (bit 0: seed-compat), one body-limit selector, then the header.
//! The frame is the 4-octet prefix (BE, or signed LE in seed-compat) and the header, no body.
#![no_main]

use std::collections::HashSet;
use std::fmt;

use bytes::BytesMut;
use lhp_codec::{Decoder, Encoder, Event, Limits, Map, Profile, Value};
use lhp_fuzz::MAX_SAFE;
use libfuzzer_sys::fuzz_target;
use serde::de::{self, Deserializer as _, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

/// The parsed text with every member kept, duplicates included.
enum Tree {
    Object(Vec<(String, Tree)>),
    Array(Vec<Tree>),
    Number(Number),
    Other,
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Tree, E> {
        Ok(Tree::Other)
    }
    fn visit_i64<E>(self, n: i64) -> Result<Tree, E> {
        Ok(Tree::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Tree, E> {
        Ok(Tree::Number(n.into()))
    }
    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Tree, E> {
        Number::from_f64(f)
            .map(Tree::Number)
            .ok_or_else(|| E::custom("not finite"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Tree, E> {
        Ok(Tree::Other)
    }
    fn visit_unit<E>(self) -> Result<Tree, E> {
        Ok(Tree::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut items = Vec::new();
        while let Some(t) = seq.next_element_seed(Seed)? {
            items.push(t);
        }
        Ok(Tree::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut members = Vec::new();
        while let Some(k) = map.next_key::<String>()? {
            members.push((k, map.next_value_seed(Seed)?));
        }
        Ok(Tree::Object(members))
    }
}

struct Seed;

impl<'de> de::DeserializeSeed<'de> for Seed {
    type Value = Tree;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Tree, D::Error> {
        d.deserialize_any(TreeVisitor)
    }
}

fn has_duplicate(t: &Tree) -> bool {
    match t {
        Tree::Object(members) => {
            let mut seen = HashSet::new();
            members.iter().any(|(k, _)| !seen.insert(k.as_str()))
                || members.iter().any(|(_, v)| has_duplicate(v))
        }
        Tree::Array(items) => items.iter().any(has_duplicate),
        _ => false,
    }
}

fn out_of_range(t: &Tree) -> bool {
    match t {
        Tree::Number(n) => {
            if let Some(u) = n.as_u64() {
                u > MAX_SAFE
            } else if let Some(i) = n.as_i64() {
                i < -(MAX_SAFE as i64)
            } else {
                !n.as_f64()
                    .is_some_and(|f| (-(MAX_SAFE as f64)..=MAX_SAFE as f64).contains(&f))
            }
        }
        Tree::Object(members) => members.iter().any(|(_, v)| out_of_range(v)),
        Tree::Array(items) => items.iter().any(out_of_range),
        Tree::Other => false,
    }
}

/// Nesting depth: objects and arrays count, scalars add nothing (§4.2).
fn depth(t: &Tree) -> usize {
    match t {
        Tree::Object(members) => 1 + members.iter().map(|(_, v)| depth(v)).max().unwrap_or(0),
        Tree::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The most members any one object has.
fn most_members(t: &Tree) -> usize {
    match t {
        Tree::Object(members) => members
            .iter()
            .map(|(_, v)| most_members(v))
            .max()
            .unwrap_or(0)
            .max(members.len()),
        Tree::Array(items) => items.iter().map(most_members).max().unwrap_or(0),
        _ => 0,
    }
}

/// The longest number token of a text `serde_json` accepted: outside strings, a number is a
/// maximal run of `-+.0-9eE` (nothing else in valid JSON uses those characters outside
/// strings).
fn longest_number(text: &str) -> usize {
    let (mut longest, mut run, mut in_string, mut escaped) = (0, 0, false, false);
    for c in text.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if matches!(c, '-' | '+' | '.' | '0'..='9' | 'e' | 'E') {
            run += 1;
            longest = longest.max(run);
            continue;
        }
        run = 0;
    }
    longest
}

/// The spelling of the top-level `v` member's value (§4.5 rank 5 judges the literal).
fn v_token(text: &str) -> Option<String> {
    let members: std::collections::BTreeMap<String, Box<serde_json::value::RawValue>> =
        serde_json::from_str(text).ok()?;
    members.get("v").map(|raw| raw.get().to_owned())
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The oracle: `Ok((members, body_len))` or `Err(code)`.
fn oracle(
    raw: &[u8],
    profile: Profile,
    max_body: u64,
) -> Result<(Map<String, Value>, u64), &'static str> {
    if raw.len() < 2 {
        return Err("header_len_too_small");
    }
    let Ok(text) = std::str::from_utf8(raw) else {
        return Err("header_not_utf8");
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let tree = de
        .deserialize_any(TreeVisitor)
        .and_then(|t| de.end().map(|()| t));
    let Ok(tree) = tree else {
        return Err("header_not_json");
    };
    // §4.2 caps: depth 64, 1024 members per object, 64-octet number tokens.
    if depth(&tree) > 64 || most_members(&tree) > 1024 || longest_number(text) > 64 {
        return Err("header_not_json");
    }
    if !matches!(tree, Tree::Object(_)) {
        return Err("header_not_object");
    }
    if has_duplicate(&tree) {
        return Err("duplicate_member");
    }
    // §4.5 rank 5: a top-level `v` that is an integer literal other than `1`, whatever its
    // sign or size.
    if let Some(t) = v_token(text) {
        let number = t.starts_with(|c: char| c == '-' || c.is_ascii_digit());
        if number && !t.contains(['.', 'e', 'E']) && t != "1" {
            return Err("unsupported_version");
        }
    }
    if out_of_range(&tree) {
        return Err("number_out_of_range");
    }
    let Ok(Value::Object(members)) = serde_json::from_str::<Value>(text) else {
        panic!("serde_json disagrees with itself on {text:?}");
    };
    let int = |v: &Value| v.as_u64().filter(|&n| n <= MAX_SAFE);
    let length_members: &[&str] = match profile {
        Profile::SeedCompat => &["body_len", "file_size", "total_size"],
        _ => &["body_len"],
    };
    let mut lengths = Vec::new();
    for m in length_members {
        if let Some(v) = members.get(*m) {
            lengths.push(int(v).ok_or("invalid_body_len")?);
        }
    }
    if lengths.windows(2).any(|w| w[0] != w[1]) {
        return Err("invalid_body_len");
    }
    let body_len = lengths.first().copied().unwrap_or(0);
    let get = |k: &str| members.get(k);
    if get("kind").is_some_and(|v| !v.is_string()) {
        return Err("invalid_member");
    }
    if get("id").is_some_and(|v| int(v).is_none()) {
        return Err("invalid_member");
    }
    if get("name").is_some_and(|v| !v.is_string()) {
        return Err("invalid_member");
    }
    if get("sha256").is_some_and(|v| !v.as_str().is_some_and(|s| is_hex(s, 64))) {
        return Err("invalid_member");
    }
    match get("v").map(int) {
        Some(None) => return Err("invalid_member"),
        Some(Some(v)) if v != 1 => return Err("unsupported_version"),
        _ => {}
    }
    if body_len > max_body {
        return Err("body_too_large");
    }
    Ok((members, body_len))
}

fuzz_target!(|data: &[u8]| {
    let (flags, rest) = data.split_first().unwrap_or((&0, &[]));
    let (sel, raw) = rest.split_first().unwrap_or((&0, &[]));
    let profile = if flags & 1 == 1 {
        Profile::SeedCompat
    } else {
        Profile::Lhp1
    };
    let max_body = [MAX_SAFE, 0, 1, 100, 65536][usize::from(*sel) % 5];
    let Ok(len) = u32::try_from(raw.len()) else {
        return;
    };
    let mut frame = BytesMut::new();
    match profile {
        Profile::SeedCompat => frame.extend_from_slice(&len.to_le_bytes()),
        _ => frame.extend_from_slice(&len.to_be_bytes()),
    }
    frame.extend_from_slice(raw);
    let limits = Limits::new()
        .with_max_header_len(u32::MAX)
        .with_max_body_len(max_body);
    let mut dec = Decoder::with(profile, limits);
    dec.set_verify_digests(false);
    let mut events = Decoder::with(profile, limits);
    events.set_verify_digests(false);
    let mut ebuf = frame.clone();
    let got = dec.decode(&mut frame);
    let got_event = events.decode_event(&mut ebuf);
    let text = String::from_utf8_lossy(raw);
    match oracle(raw, profile, max_body) {
        Err(code) => {
            let e = got.expect_err("codec accepted a header the oracle rejects");
            assert_eq!(e.code(), code, "header {text:?}: {e}");
            let expected_offset = if code == "header_len_too_small" { 0 } else { 4 };
            assert_eq!(e.offset(), expected_offset);
            assert_eq!(got_event.err(), Some(e));
        }
        Ok((members, body_len)) => {
            let header = match (&got, body_len) {
                (Ok(Some(f)), 0) => f.header.clone(),
                (Ok(None), n) if n > 0 => {
                    assert_eq!(dec.wanted(frame.len()), n);
                    match &got_event {
                        Ok(Some(Event::Head(h))) => h.clone(),
                        other => panic!("decode_event: {other:?}"),
                    }
                }
                (other, _) => panic!(
                    "header {text:?}: oracle accepts (body_len {body_len}), codec says {other:?}"
                ),
            };
            assert_eq!(header.body_len(), body_len);
            // The typed accessors read a received header's text directly (the fast path):
            // they must say what the members say.
            let text_of = |name: &str| members.get(name).and_then(Value::as_str);
            let int_of = |name: &str| members.get(name).and_then(Value::as_u64);
            assert_eq!(header.kind(), text_of("kind"));
            assert_eq!(header.name(), text_of("name"));
            assert_eq!(header.sha256(), text_of("sha256"));
            assert_eq!(header.id(), int_of("id"));
            assert_eq!(header.version(), int_of("v"));
            // Sent on unchanged, it is written canonically (§9), whichever way it is stored.
            let canonical = serde_json::to_string(&members).unwrap_or_default();
            assert_eq!(header.to_string(), canonical);
            let mut out = BytesMut::new();
            if Encoder::with_profile(profile)
                .encode_head(&header, body_len, &mut out)
                .is_ok()
            {
                assert_eq!(out.get(4..), Some(canonical.as_bytes()));
            }
            assert_eq!(header.members(), &members);
            let order = |m: &Map<String, Value>| serde_json::to_string(m).unwrap_or_default();
            assert_eq!(
                order(header.members()),
                order(&members),
                "member order differs"
            );
        }
    }
});
