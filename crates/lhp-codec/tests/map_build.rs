//! Building a header map-style (issue 13 item 1): `Header::insert`, the setters and `remove`,
//! in any order and with any value type, give the header that the same members given as a
//! `serde_json::Map` give — same members in the same order, same typed accessors, same body
//! length, and the same octets (or the same refusal) from the encoder.
//!
//! - `inserting_each_registered_name_with_each_value_type_matches_the_map`: every registered
//!   name with every JSON value type (integers in and out of range, negative, fractional,
//!   strings, digests, `null`, booleans, arrays, objects), one at a time, compared against
//!   `Header::from_members` of the one-member map.
//! - `map_style_building_matches_the_map` (proptest): arbitrary sequences of `insert`,
//!   `set_*` and `remove` against a `serde_json::Map` changed the same way.

use bytes::BytesMut;
use lhp_codec::{Encoder, Header, Map, Profile, Value};
use proptest::prelude::*;

/// The number of cases each property runs: `PROPTEST_CASES` when set, else `default`.
fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

const DIGEST_HEX: &str = "00ff11ee22dd33cc44bb55aa6699778800ff11ee22dd33cc44bb55aa66997788";

/// One change to a header.
#[derive(Clone, Debug)]
enum Op {
    Insert(String, Value),
    Remove(String),
    Kind(String),
    Id(u64),
    Name(String),
    BodyLen(u64),
    Version(u64),
    Sha256([u8; 32]),
}

/// Every JSON type, and the edge values of the registered members' types.
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (0u64..5).prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        Just(Value::from((1u64 << 53) - 1)),
        Just(Value::from(1u64 << 53)),
        (-5i64..0).prop_map(Value::from),
        prop_oneof![Just(0.5), Just(1.0), Just(-2.25)].prop_map(Value::from),
        "[a-z\"\\\\é]{0,6}".prop_map(Value::String),
        Just(Value::from(DIGEST_HEX)),
        Just(Value::from(DIGEST_HEX.to_uppercase())),
        Just(serde_json::json!([1, "a"])),
        Just(serde_json::json!({"x": 1})),
    ]
}

/// Registered names, names close to them, and extensions.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop_oneof![
            Just("kind"),
            Just("id"),
            Just("name"),
            Just("sha256"),
            Just("body_len"),
            Just("v"),
            Just("kinD"),
            Just("nama"),
            Just("i"),
            Just("body_lex"),
            Just("sha255"),
            Just("file_size"),
        ]
        .prop_map(str::to_owned),
        "[a-z]{1,3}",
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (name(), value()).prop_map(|(n, v)| Op::Insert(n, v)),
        1 => name().prop_map(Op::Remove),
        1 => "[a-z]{0,4}".prop_map(Op::Kind),
        1 => prop_oneof![0u64..3, Just(1 << 53)].prop_map(Op::Id),
        1 => "[a-z]{0,4}".prop_map(Op::Name),
        1 => prop_oneof![0u64..3, Just(1 << 53)].prop_map(Op::BodyLen),
        1 => (0u64..3).prop_map(Op::Version),
        1 => any::<[u8; 32]>().prop_map(Op::Sha256),
    ]
}

fn hex(d: &[u8; 32]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Applies `op` to the header, and to the map the way a `serde_json::Map` changes (a replaced
/// member keeps its place, a removed one goes); returns the body length the header should
/// now report.
fn apply(h: &mut Header, map: &mut Map<String, Value>, body_len: u64, op: &Op) -> u64 {
    match op.clone() {
        Op::Insert(n, v) => {
            let len = match (n.as_str(), v.as_u64()) {
                ("body_len", Some(len)) => len,
                _ => body_len,
            };
            map.insert(n.clone(), v.clone());
            h.insert(n, v);
            len
        }
        Op::Remove(n) => {
            let removed = map.shift_remove(&n);
            assert_eq!(h.remove(&n), removed, "remove {n}");
            match (n.as_str(), removed) {
                ("body_len", Some(_)) => 0,
                _ => body_len,
            }
        }
        Op::Kind(s) => {
            map.insert("kind".into(), Value::from(s.clone()));
            h.set_kind(s);
            body_len
        }
        Op::Id(i) => {
            map.insert("id".into(), Value::from(i));
            h.set_id(i);
            body_len
        }
        Op::Name(s) => {
            map.insert("name".into(), Value::from(s.clone()));
            h.set_name(s);
            body_len
        }
        Op::BodyLen(len) => {
            if len > 0 || map.contains_key("body_len") {
                map.insert("body_len".into(), Value::from(len));
            }
            h.set_body_len(len);
            len
        }
        Op::Version(v) => {
            map.insert("v".into(), Value::from(v));
            h.set_version(v);
            body_len
        }
        Op::Sha256(d) => {
            map.insert("sha256".into(), Value::from(hex(&d)));
            h.set_sha256(&d);
            body_len
        }
    }
}

/// The encoder's output for `h` (prefix and header), or its refusal as text.
fn encoded(h: &Header, body_len: u64) -> Result<Vec<u8>, String> {
    let mut out = BytesMut::new();
    Encoder::new()
        .encode_head(h, body_len, &mut out)
        .map(|()| out.to_vec())
        .map_err(|e| e.to_string())
}

/// Checks that `h` is the header `map` describes, `body_len` the length it reports.
fn same(h: &Header, map: &Map<String, Value>, body_len: u64) -> Result<(), TestCaseError> {
    let names = |m: &Map<String, Value>| m.keys().cloned().collect::<Vec<_>>();
    prop_assert_eq!(names(h.members()), names(map));
    prop_assert_eq!(h.members(), map);
    prop_assert_eq!(h.to_string(), serde_json::to_string(map).unwrap());
    prop_assert_eq!(h.body_len(), body_len);
    let str_of = |n: &str| map.get(n).and_then(Value::as_str);
    let int_of = |n: &str| map.get(n).and_then(Value::as_u64);
    prop_assert_eq!(h.kind(), str_of("kind"));
    prop_assert_eq!(h.name(), str_of("name"));
    prop_assert_eq!(h.sha256(), str_of("sha256"));
    prop_assert_eq!(h.id(), int_of("id"));
    prop_assert_eq!(h.version(), int_of("v"));
    for n in [
        "kind",
        "id",
        "name",
        "sha256",
        "body_len",
        "v",
        "x",
        "file_size",
    ] {
        prop_assert_eq!(h.contains(n), map.contains_key(n), "contains {}", n);
        prop_assert_eq!(h.get(n), map.get(n), "get {}", n);
    }
    // The encoder: the same octets as the validated map gives, or the same refusal.
    match Header::from_members(map.clone(), Profile::Lhp1) {
        Ok(from_map) => {
            prop_assert_eq!(from_map.body_len(), body_len);
            prop_assert!(&from_map == h);
            prop_assert_eq!(encoded(h, body_len), encoded(&from_map, body_len));
            prop_assert!(encoded(h, body_len).is_ok());
        }
        Err(e) => prop_assert_eq!(encoded(h, body_len), Err(e.to_string())),
    }
    Ok(())
}

#[test]
fn inserting_each_registered_name_with_each_value_type_matches_the_map() {
    let values = [
        Value::Null,
        Value::Bool(true),
        Value::from(0),
        Value::from(1),
        Value::from(7u64),
        Value::from((1u64 << 53) - 1),
        Value::from(1u64 << 53),
        Value::from(u64::MAX),
        Value::from(-1),
        Value::from(1.0),
        Value::from(0.5),
        Value::from(""),
        Value::from("upload"),
        Value::from(DIGEST_HEX),
        Value::from(DIGEST_HEX.to_uppercase()),
        serde_json::json!([1]),
        serde_json::json!({"a": "b"}),
    ];
    let mut checked = 0;
    for n in ["kind", "id", "name", "sha256", "body_len", "v"] {
        for v in &values {
            // Alone, after another member, and replacing a member of the right type.
            for before in [None, Some(("x", Value::from(1))), Some((n, Value::from(1)))] {
                let mut h = Header::new();
                let mut map = Map::new();
                let mut len = 0;
                if let Some((b, bv)) = before {
                    len = apply(&mut h, &mut map, len, &Op::Insert(b.into(), bv));
                }
                len = apply(&mut h, &mut map, len, &Op::Insert(n.into(), v.clone()));
                if let Err(e) = same(&h, &map, len) {
                    panic!("insert({n:?}, {v}): {e}");
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 6 * values.len() * 3);
    // `&'static str` and integer literals, as a user writes them.
    let mut h = Header::with_kind("upload");
    h.set_id(3).insert("v", 1).insert("name", "a.bin");
    h.insert("body_len", 100u64);
    assert_eq!(
        h.to_string(),
        r#"{"kind":"upload","id":3,"v":1,"name":"a.bin","body_len":100}"#
    );
    assert_eq!((h.body_len(), h.version()), (100, Some(1)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(proptest_cases(600)))]

    #[test]
    fn map_style_building_matches_the_map(ops in prop::collection::vec(op(), 0..12)) {
        let mut h = Header::new();
        let mut map = Map::new();
        let mut len = 0;
        for op in &ops {
            len = apply(&mut h, &mut map, len, op);
            same(&h, &map, len)?;
        }
    }
}
