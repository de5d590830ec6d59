//! Property tests: arbitrary frames round-trip, and arbitrary chunkings of arbitrary streams
//! (valid or not) give identical results (spec §3, the sticky-packet property).

use bytes::{Bytes, BytesMut};
use lhp_codec::{Decoder, Encoder, Event, Frame, Header, Limits, Map, Profile, Value};
use proptest::prelude::*;

/// The number of cases each property runs: `PROPTEST_CASES` when set (the mutation run of
/// `scripts/mutants.sh` lowers it), else `default`. `ProptestConfig::with_cases` alone would
/// override the variable.
fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-(1i64 << 53) + 1..(1i64 << 53)).prop_map(Value::from),
        "[a-z0-9 \\\\\"\u{4e00}-\u{4e10}\u{1f600}]{0,12}".prop_map(Value::String),
        (-1e15f64..1e15).prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z]{1,6}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn header() -> impl Strategy<Value = Header> {
    (
        prop::option::of("[a-z]{1,8}"),
        prop::option::of(0u64..(1 << 53)),
        prop::option::of("[^\u{0}]{0,10}"),
        prop::collection::vec(("x_[a-z]{1,6}", json_value()), 0..4),
        any::<bool>(),
    )
        .prop_map(|(kind, id, name, ext, v)| {
            let mut h = Header::new();
            if let Some(k) = kind {
                h.set_kind(k);
            }
            if let Some(i) = id {
                h.set_id(i);
            }
            if let Some(n) = name {
                h.set_name(n);
            }
            for (k, val) in ext {
                h.insert(k, val);
            }
            if v {
                h.insert("v", 1);
            }
            h
        })
}

fn frame() -> impl Strategy<Value = (Frame, bool)> {
    (
        header(),
        prop::collection::vec(any::<u8>(), 0..300),
        any::<bool>(),
    )
        .prop_map(|(mut h, body, digest)| {
            if digest {
                use sha2::Digest;
                let d: [u8; 32] = sha2::Sha256::digest(&body).into();
                h.set_sha256(&d);
            }
            (Frame::new(h, Bytes::from(body)), digest)
        })
}

/// What a decode produced: frames (header members, body) and the error's code and offset.
type Decoded = (Vec<(Map<String, Value>, Vec<u8>)>, Option<(String, u64)>);

/// Decodes `data` fed in pieces at `cuts`: frames (header members, body) and the error code
/// and offset, via the whole-frame API, the streaming API and the in-place API (`decode_ref`).
fn decode_both(profile: Profile, limits: Limits, data: &[u8], cuts: &[usize]) -> [Decoded; 3] {
    let mut results = [(Vec::new(), None), (Vec::new(), None), (Vec::new(), None)];
    for (mode, out) in results.iter_mut().enumerate() {
        let mut dec = Decoder::with(profile, limits);
        let mut buf = BytesMut::new();
        let mut open: Option<(Map<String, Value>, Vec<u8>)> = None;
        let mut start = 0;
        let mut failed = false;
        for end in cuts.iter().copied().chain([data.len()]) {
            buf.extend_from_slice(&data[start..end]);
            start = end;
            loop {
                let step = if mode == 0 {
                    dec.decode(&mut buf)
                        .map(|f| f.map(|f| out.0.push((f.header.into_members(), f.body.to_vec()))))
                } else if mode == 2 {
                    dec.decode_ref(&buf)
                        .map(|f| {
                            f.map(|f| {
                                out.0
                                    .push((f.to_header().into_members(), f.body().to_vec()));
                                f.len()
                            })
                        })
                        .map(|n| {
                            n.map(|n| {
                                let _ = buf.split_to(n);
                            })
                        })
                } else {
                    dec.decode_event(&mut buf).map(|e| {
                        e.map(|e| match e {
                            Event::Head(h) => open = Some((h.into_members(), Vec::new())),
                            Event::Body(b) => {
                                if let Some(o) = open.as_mut() {
                                    o.1.extend_from_slice(&b)
                                }
                            }
                            Event::End => out.0.extend(open.take()),
                        })
                    })
                };
                match step {
                    Ok(Some(())) => continue,
                    Ok(None) => break,
                    Err(e) => {
                        out.1 = Some((e.code().to_owned(), e.offset()));
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                break;
            }
        }
        if !failed {
            if let Err(e) = dec.finish(&buf) {
                out.1 = Some((e.code().to_owned(), e.offset()));
            }
        }
    }
    results
}

fn cuts_for(len: usize, raw: Vec<usize>) -> Vec<usize> {
    let mut c: Vec<usize> = raw.into_iter().map(|x| x % (len + 1)).collect();
    c.sort_unstable();
    c
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(proptest_cases(400)))]

    #[test]
    fn roundtrip_arbitrary_frames(frames in prop::collection::vec(frame(), 1..5),
                                  raw_cuts in prop::collection::vec(any::<usize>(), 0..8)) {
        let mut wire = BytesMut::new();
        for (f, _) in &frames {
            Encoder::new().encode(f, &mut wire).expect("encodes");
        }
        let cuts = cuts_for(wire.len(), raw_cuts);
        for (got, err) in decode_both(Profile::Lhp1, Limits::default(), &wire, &cuts) {
            prop_assert_eq!(err, None);
            prop_assert_eq!(got.len(), frames.len());
            for ((h, b), (f, _)) in got.iter().zip(&frames) {
                prop_assert_eq!(h, f.header.members());
                prop_assert_eq!(&b[..], &f.body[..]);
            }
        }
        // Canonical: decoding then re-encoding gives the same octets.
        let mut dec = Decoder::new();
        let mut buf = wire.clone();
        let mut again = BytesMut::new();
        while let Some(f) = dec.decode(&mut buf).expect("decodes") {
            Encoder::new().encode(&f, &mut again).expect("re-encodes");
        }
        prop_assert_eq!(&again[..], &wire[..]);
    }

    #[test]
    fn arbitrary_chunking_is_invariant(
        frames in prop::collection::vec(frame(), 0..4),
        noise in prop::collection::vec(any::<u8>(), 0..40),
        flip in any::<Option<(usize, u8)>>(),
        raw_cuts in prop::collection::vec(any::<usize>(), 0..12),
        seed_compat in any::<bool>(),
        max_header in 2u32..200,
        max_body in 0u64..400,
    ) {
        // A valid stream, then corrupted: a flipped octet and trailing noise.
        let profile = if seed_compat { Profile::SeedCompat } else { Profile::Lhp1 };
        let mut wire = BytesMut::new();
        for (f, _) in &frames {
            Encoder::with_profile(profile).encode(f, &mut wire).expect("encodes");
        }
        let mut data = wire.to_vec();
        if let Some((at, x)) = flip {
            if !data.is_empty() {
                let i = at % data.len();
                data[i] ^= x;
            }
        }
        data.extend_from_slice(&noise);
        let limits = Limits::new().with_max_header_len(max_header).with_max_body_len(max_body);
        for limits in [Limits::default(), limits] {
            let whole = decode_both(profile, limits, &data, &[]);
            prop_assert_eq!(&whole[0], &whole[1]);
            prop_assert_eq!(&whole[0], &whole[2]);
            let cuts = cuts_for(data.len(), raw_cuts.clone());
            let split = decode_both(profile, limits, &data, &cuts);
            prop_assert_eq!(&split, &whole);
            let bytewise: Vec<usize> = (1..data.len()).collect();
            prop_assert_eq!(&decode_both(profile, limits, &data, &bytewise), &whole);
        }
    }
}
