//! The typed sender against the map-style one (§9): for random derived structs, the octets
//! `Encoder::encode_typed` writes equal those `Encoder::encode` writes for a `Header` built
//! with the same members in the same order, and a header one refuses the other refuses with
//! the same error code. The canonical text is defined once (§9); this proves the one-pass
//! typed encoder and the map-style encoder agree on it, refusals included.

use bytes::BytesMut;
use lhp_codec::{hex_lower, EncodeError, Encoder, Frame, Header, Profile, Value};
use proptest::prelude::*;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

/// `PROPTEST_CASES` when set, else `default` (see `tests/props.rs`).
fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Extensions in the order given, serialized as map entries (flattened into the struct).
#[derive(Debug, Clone)]
struct Ext(Vec<(String, Value)>);

impl Serialize for Ext {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// A user's header type: the registered members typed, optional, then extensions.
#[derive(Serialize, Debug, Clone)]
struct Random {
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    v: Option<u64>,
    #[serde(flatten)]
    ext: Ext,
}

/// The same members, built the map-style way in the same order.
fn map_style(r: &Random, body_len: u64) -> Header {
    let mut h = Header::new();
    if let Some(k) = &r.kind {
        h.set_kind(k.clone());
    }
    if let Some(id) = r.id {
        h.set_id(id);
    }
    if let Some(n) = &r.name {
        h.set_name(n.clone());
    }
    if let Some(d) = &r.sha256 {
        h.insert("sha256", d.clone());
    }
    if let Some(v) = r.v {
        h.set_version(v);
    }
    for (k, v) in &r.ext.0 {
        h.insert(k.clone(), v.clone());
    }
    h.set_body_len(body_len);
    h
}

/// What an encoder made of a frame: its octets, or the error's code.
fn outcome(r: Result<(), EncodeError>, out: BytesMut) -> Result<Vec<u8>, String> {
    match r {
        Ok(()) => Ok(out.to_vec()),
        Err(EncodeError::InvalidHeader(d)) => Err(d.code().to_owned()),
        Err(e) => Err(format!("{e:?}")),
    }
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9/._-]{0,30}",
        1 => "\\PC{0,8}",
        1 => "[\\x00-\\x7f]{0,8}",
    ]
}

fn integer() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..1_000_000,
        1 => Just(9_007_199_254_740_991),
        1 => Just(9_007_199_254_740_992),
        1 => any::<u64>(),
    ]
}

fn digest() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<[u8; 32]>().prop_map(|d| hex_lower(&d)),
        1 => any::<[u8; 32]>().prop_map(|d| hex_lower(&d).to_uppercase()),
        1 => "[0-9a-g]{0,66}",
    ]
}

fn ext_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => text().prop_map(Value::from),
        3 => integer().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
        1 => Just(Value::from(1.5)),
    ]
}

fn ext() -> impl Strategy<Value = Ext> {
    let name = prop::sample::select(vec![
        "trace",
        "a",
        "b",
        "md5",
        "file_size",
        "é",
        "x y",
        "q\"",
        "tab\t",
        "",
    ]);
    prop::collection::vec((name, ext_value()), 0..6).prop_map(|pairs| {
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for (k, v) in pairs {
            if !seen.contains(&k) {
                seen.push(k);
                out.push((k.to_owned(), v));
            }
        }
        Ext(out)
    })
}

fn random() -> impl Strategy<Value = Random> {
    (
        prop::option::of(text()),
        prop::option::of(integer()),
        prop::option::of(text()),
        prop::option::weighted(0.3, digest()),
        prop::option::weighted(0.3, prop_oneof![4 => Just(1u64), 1 => 0u64..4]),
        ext(),
    )
        .prop_map(|(kind, id, name, sha256, v, ext)| Random {
            kind,
            id,
            name,
            sha256,
            v,
            ext,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(proptest_cases(2000)))]

    #[test]
    fn typed_encoding_equals_the_map_style_encoding(
        r in random(),
        body in prop_oneof![Just(Vec::new()), Just(b"abc".to_vec()), prop::collection::vec(any::<u8>(), 0..40)],
    ) {
        let enc = Encoder::new();
        let mut typed = BytesMut::from(&b"before"[..]);
        let t = enc.encode_typed(&r, &body, &mut typed);
        let mut map = BytesMut::from(&b"before"[..]);
        let m = enc.encode(&Frame::new(map_style(&r, body.len() as u64), body.clone().into()), &mut map);
        prop_assert_eq!(&typed[..6], b"before");
        prop_assert_eq!(&map[..6], b"before");
        let (typed, map) = (typed.split_off(6), map.split_off(6));
        prop_assert_eq!(outcome(t, typed), outcome(m, map), "{:?}", r);
    }
}

/// A struct that only the one pass writes (no fallback) agrees too, in both profiles' terms
/// of `body_len`: the text is exactly the map-style one.
#[test]
fn the_everyday_header_is_octet_for_octet_the_map_style_one() {
    let r = Random {
        kind: Some("upload".into()),
        id: Some(7),
        name: Some("sensor-42/temperature.bin".into()),
        sha256: Some(hex_lower(&[0xab; 32])),
        v: Some(1),
        ext: Ext(vec![("trace".into(), Value::from("t-1"))]),
    };
    for profile in [Profile::Lhp1, Profile::SeedCompat] {
        let enc = Encoder::with_profile(profile);
        let mut typed = BytesMut::new();
        enc.encode_typed(&r, b"0123456789", &mut typed).unwrap();
        let mut map = BytesMut::new();
        enc.encode(
            &Frame::with_profile(profile, map_style(&r, 10), "0123456789".into()),
            &mut map,
        )
        .unwrap();
        assert_eq!(typed, map, "{profile}");
        let text = std::str::from_utf8(&typed[4..typed.len() - 10]).unwrap();
        assert!(text.ends_with(r#""trace":"t-1","body_len":10}"#), "{text}");
    }
}

/// The disagreement the property found: `v` other than 1 with another member out of range.
/// A receiver ranks `unsupported_version` (§4.5 rank 5) before `number_out_of_range` (rank 6),
/// so both encoders refuse with the former.
#[test]
fn both_encoders_rank_the_version_before_the_number_range() {
    let r = Random {
        kind: None,
        id: Some(9_007_199_254_740_992),
        name: None,
        sha256: None,
        v: Some(2),
        ext: Ext(vec![]),
    };
    let enc = Encoder::new();
    let mut out = BytesMut::new();
    let typed = outcome(enc.encode_typed(&r, b"", &mut out), BytesMut::new());
    let map = outcome(
        enc.encode(&Frame::new(map_style(&r, 0), Default::default()), &mut out),
        BytesMut::new(),
    );
    assert_eq!(typed, Err("unsupported_version".to_owned()));
    assert_eq!(map, typed);
    assert!(out.is_empty(), "nothing written");
}

/// A header type whose `Serialize` fails gives `EncodeError::Serialize`, which names its
/// cause as the error's source, and leaves the output as it was.
#[test]
fn a_failing_serialize_is_the_errors_source() {
    struct Broken;
    impl Serialize for Broken {
        fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("the clock is broken"))
        }
    }
    let mut out = BytesMut::from(&b"kept"[..]);
    let e = Encoder::new()
        .encode_typed(&Broken, b"", &mut out)
        .unwrap_err();
    assert!(matches!(e, EncodeError::Serialize(_)), "{e:?}");
    let source = std::error::Error::source(&e).expect("the serde error");
    assert!(
        source.to_string().contains("the clock is broken"),
        "{source}"
    );
    assert_eq!(&out[..], b"kept");
}

/// Names that share a registered member's length (and, for `kind`, first octet) are
/// extensions like any other, and each registered member keeps its rule: for every such name
/// and every kind of value, in both profiles, the typed encoder writes exactly what the
/// map-style one writes, or refuses with the same code. (`body_len` is left out: both
/// encoders fill it in from the body. `seed-compat`'s other length members, `file_size` and
/// `total_size`, the map-style encoder sets to the body's length; a typed header's must
/// already agree, or it is `invalid_body_len`.)
#[test]
fn names_beside_the_registered_ones_keep_their_own_rules() {
    let names = [
        "v",
        "w",
        "id",
        "ie",
        "md5",
        "md4",
        "kind",
        "kine",
        "name",
        "nome",
        "sha256",
        "sha255",
        "body_lex",
        "file_size",
        "file_sizx",
        "total_size",
        "total_sizx",
    ];
    let values = [
        Value::from("x"),
        Value::from(1u64),
        Value::from(0u64),
        Value::from(hex_lower(&[0xcd; 32])),
        Value::from(hex_lower(&[0xcd; 32]).to_uppercase()),
        Value::from(hex_lower(&[0xcd; 32]).replace('c', "g")),
        Value::from(hex_lower(&[0xcd; 16])),
        Value::from("a\"b"),
        Value::from(-1i64),
        Value::Bool(true),
        Value::Null,
    ];
    for profile in [Profile::Lhp1, Profile::SeedCompat] {
        let enc = Encoder::with_profile(profile);
        for name in names {
            for value in &values {
                for body in [&b""[..], &b"x"[..]] {
                    let r = Random {
                        kind: None,
                        id: None,
                        name: None,
                        sha256: None,
                        v: None,
                        ext: Ext(vec![
                            ("t".to_owned(), Value::from("first")),
                            (name.to_owned(), value.clone()),
                        ]),
                    };
                    let mut out = BytesMut::new();
                    let typed = outcome(enc.encode_typed(&r, body, &mut out), out);
                    let mut out = BytesMut::new();
                    let frame = Frame::with_profile(
                        profile,
                        map_style(&r, body.len() as u64),
                        bytes::Bytes::copy_from_slice(body),
                    );
                    let map = outcome(enc.encode(&frame, &mut out), out);
                    let what = format!("{profile} {name}: {value} with {} octets", body.len());
                    let length_member = profile == Profile::SeedCompat
                        && matches!(name, "file_size" | "total_size");
                    if length_member {
                        // The map-style encoder sets a frame's length members to its body's
                        // length (and adds `body_len`); a typed header's own must be a length
                        // (`invalid_body_len`) that agrees with it (issue 13), and then it is
                        // the header's length member.
                        let len = body.len() as u64;
                        match value.as_u64() {
                            Some(n) if n == len => {
                                let octets = typed.expect(&what);
                                let text =
                                    std::str::from_utf8(&octets[4..octets.len() - body.len()]);
                                let tail = format!(r#""t":"first","{name}":{len}}}"#);
                                assert!(text.unwrap().ends_with(&tail), "{what}");
                            }
                            Some(n) => assert_eq!(
                                typed,
                                Err(format!(
                                    "BodyLenMismatch {{ declared: {n}, actual: {len} }}"
                                )),
                                "{what}"
                            ),
                            None => assert_eq!(typed, Err("invalid_body_len".to_owned()), "{what}"),
                        }
                    } else {
                        assert_eq!(typed, map, "{what}");
                    }
                }
            }
        }
    }
}

/// A header type that writes one name twice (a hand-written `Serialize`; a derived struct
/// cannot) never reaches the wire: a receiver would refuse it (§4.3), so the encoder refuses
/// it with `duplicate_member`, whether the name is registered or not, first or later, and
/// leaves the output as it was.
#[test]
fn a_name_written_twice_is_refused() {
    let twice = |pairs: &[(&str, Value)]| {
        Ext(pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect())
    };
    let cases = [
        twice(&[("kind", "a".into()), ("kind", "b".into())]),
        twice(&[
            ("id", 1u64.into()),
            ("kind", "a".into()),
            ("id", 1u64.into()),
        ]),
        twice(&[("a", 1u64.into()), ("a", 1u64.into())]),
        twice(&[
            ("trace", "t".into()),
            ("b", 2u64.into()),
            ("trace", "t".into()),
        ]),
        twice(&[
            ("kind", "k".into()),
            ("x", 1u64.into()),
            ("y", 1u64.into()),
            ("x", 2u64.into()),
        ]),
    ];
    for profile in [Profile::Lhp1, Profile::SeedCompat] {
        for ext in &cases {
            let mut out = BytesMut::from(&b"kept"[..]);
            let r = Encoder::with_profile(profile).encode_typed(ext, b"", &mut out);
            match r {
                Err(EncodeError::InvalidHeader(d)) => {
                    assert_eq!(d.code(), "duplicate_member", "{profile} {ext:?}")
                }
                other => panic!("{profile} {ext:?}: {other:?}"),
            }
            assert_eq!(&out[..], b"kept", "{profile} {ext:?}");
        }
    }
}
