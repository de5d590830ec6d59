//! `roundtrip`: an arbitrary valid header (registered members with their registered types,
//! unknown members with arbitrary in-range JSON values, in arbitrary order) and an arbitrary
//! body encode, then decode to an equal frame, members in the same order, through the
//! whole-frame API and the streaming API under an arbitrary chunking.
#![no_main]

use arbitrary::{Result, Unstructured};
use bytes::{Bytes, BytesMut};
use lhp_codec::{Frame, Header, Limits, Map, Profile, Value};
use lhp_fuzz::{
    chunks, decode_chunked, decode_one, encoder, events_chunked, Config, End, MAX_SAFE,
};
use libfuzzer_sys::fuzz_target;
use md5::Md5;
use serde_json::Number;
use sha2::{Digest, Sha256};

/// Names a fuzzer would take long to spell on its own.
const NAMES: &[&str] = &[
    "body_len",
    "kind",
    "id",
    "name",
    "sha256",
    "v",
    "file_size",
    "total_size",
    "md5",
    "file_name",
    "",
    "a",
    "A",
    "\u{0}",
    "é",
    "你好",
    "\"",
    "\\",
];

fn profile_registered(profile: Profile, name: &str) -> bool {
    let lhp1 = ["body_len", "kind", "id", "name", "sha256", "v"];
    match profile {
        Profile::SeedCompat => {
            lhp1.contains(&name) || ["file_size", "total_size", "md5"].contains(&name)
        }
        _ => lhp1.contains(&name),
    }
}

fn name(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(1, 2)? {
        Ok((*u.choose(NAMES)?).to_owned())
    } else {
        u.arbitrary()
    }
}

fn number(u: &mut Unstructured<'_>) -> Result<Number> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 => Number::from(u.int_in_range(0..=MAX_SAFE)?),
        1 => Number::from(u.int_in_range(-(MAX_SAFE as i64)..=MAX_SAFE as i64)?),
        2 => Number::from(u.int_in_range(0..=3u64)?),
        _ => {
            let f: f64 = u.arbitrary()?;
            let f = if f.is_finite() && f.abs() <= MAX_SAFE as f64 {
                f
            } else {
                0.5
            };
            Number::from_f64(f).unwrap_or_else(|| Number::from(0))
        }
    })
}

fn value(u: &mut Unstructured<'_>, depth: u32) -> Result<Value> {
    let top = if depth == 0 { 3 } else { 5 };
    Ok(match u.int_in_range(0..=top)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::Number(number(u)?),
        3 => Value::String(u.arbitrary()?),
        4 => {
            let n = u.int_in_range(0..=4)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(value(u, depth - 1)?);
            }
            Value::Array(items)
        }
        _ => {
            let n = u.int_in_range(0..=4)?;
            let mut m = Map::new();
            for _ in 0..n {
                let k = name(u)?;
                let v = value(u, depth - 1)?;
                m.entry(k).or_insert(v);
            }
            Value::Object(m)
        }
    })
}

struct Case {
    profile: Profile,
    header: Header,
    body: Bytes,
    sizes: Vec<u8>,
}

fn case(u: &mut Unstructured<'_>) -> Result<Case> {
    let profile = if u.arbitrary()? {
        Profile::SeedCompat
    } else {
        Profile::Lhp1
    };
    let body: Vec<u8> = u.arbitrary()?;
    let len = body.len() as u64;
    let mut entries: Vec<(String, Value)> = Vec::new();
    let mut put = |u: &mut Unstructured<'_>, k: &str, v: Value| -> Result<()> {
        if entries.iter().all(|(n, _)| n != k) {
            let at = u.int_in_range(0..=entries.len())?;
            entries.insert(at, (k.to_owned(), v));
        }
        Ok(())
    };
    // Body length members: required when the body is not empty.
    let length_members: &[&str] = match profile {
        Profile::SeedCompat => &["body_len", "file_size", "total_size"],
        _ => &["body_len"],
    };
    let mut any = false;
    for m in length_members {
        if u.arbitrary()? {
            put(u, m, Value::from(len))?;
            any = true;
        }
    }
    if !any && len > 0 {
        let m = *u.choose(length_members)?;
        put(u, m, Value::from(len))?;
    }
    if u.arbitrary()? {
        let s: String = u.arbitrary()?;
        put(u, "kind", Value::String(s))?;
    }
    if u.arbitrary()? {
        let n = u.int_in_range(0..=MAX_SAFE)?;
        put(u, "id", Value::from(n))?;
    }
    if u.arbitrary()? {
        let s: String = u.arbitrary()?;
        put(u, "name", Value::String(s))?;
    }
    if u.arbitrary()? {
        put(
            u,
            "sha256",
            Value::String(lhp_codec::hex_lower(&Sha256::digest(&body))),
        )?;
    }
    if u.arbitrary()? {
        put(u, "v", Value::from(1))?;
    }
    if profile == Profile::SeedCompat {
        match u.int_in_range(0..=3u8)? {
            0 => {}
            1 => put(
                u,
                "md5",
                Value::String(lhp_codec::hex_lower(&Md5::digest(&body))),
            )?,
            2 => put(
                u,
                "md5",
                Value::String(lhp_codec::hex_lower(&Md5::digest(&body)).to_uppercase()),
            )?,
            _ => put(u, "md5", Value::String("hih1jk5jk151jk51".into()))?,
        }
    }
    let n = u.int_in_range(0..=8)?;
    for _ in 0..n {
        let k = name(u)?;
        if !profile_registered(profile, &k) {
            let v = value(u, 3)?;
            put(u, &k, v)?;
        }
    }
    let members: Map<String, Value> = entries.into_iter().collect();
    let header = match Header::from_members(members.clone(), profile) {
        Ok(h) => h,
        Err(e) => panic!(
            "a valid header was refused: {e}\n{}",
            Value::Object(members)
        ),
    };
    assert_eq!(
        header.body_len(),
        len,
        "header body length disagrees with its members"
    );
    let sizes: Vec<u8> = u.arbitrary()?;
    Ok(Case {
        profile,
        header,
        body: Bytes::from(body),
        sizes,
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(Case {
        profile,
        header,
        body,
        sizes,
    }) = case(&mut u)
    else {
        return;
    };
    let frame = Frame { header, body };
    let mut wire = BytesMut::new();
    if let Err(e) = encoder(profile).encode(&frame, &mut wire) {
        panic!("a valid frame does not encode: {e}\n{frame:?}");
    }
    let text = |f: &Frame| serde_json::to_string(f.header.members()).unwrap_or_default();

    // Whole-frame API.
    let whole = decode_one(profile, true, &wire);
    assert_eq!(whole, frame);
    assert_eq!(text(&whole), text(&frame), "member order or values changed");

    // Streaming API (and the whole-frame API) under an arbitrary chunking.
    let cfg = Config {
        profile,
        limits: Limits::new()
            .with_max_header_len(u32::MAX)
            .with_max_body_len(MAX_SAFE),
        verify_digests: true,
    };
    let pieces = chunks(&wire, &sizes);
    for run in [events_chunked(&cfg, &pieces), decode_chunked(&cfg, &pieces)] {
        assert_eq!(run.end, End::Clean);
        assert_eq!(run.frames.len(), 1);
        let (got, range) = &run.frames[0];
        assert_eq!(range.clone(), 0..wire.len());
        assert_eq!(got, &frame);
        assert_eq!(text(got), text(&frame));
    }
});
