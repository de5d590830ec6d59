//! Streams recorded from the seeds' own Python programs (conformance/seeds/record_seeds.py)
//! decode under the seed-compat profile: fed whole, and fed in the read sizes the kernel
//! actually delivered when they were recorded.

use std::path::Path;

use bytes::BytesMut;
use lhp_codec::{Decoder, Limits, Profile};
use lhp_vectors::{check, Outcome, OutcomeError, Verdict};

fn decode(profile: Profile, skip: u64, data: &[u8], reads: &[usize]) -> Outcome {
    let mut dec = Decoder::with(profile, Limits::default());
    dec.set_stream_offset(skip);
    let mut buf = BytesMut::new();
    let mut out = Outcome::default();
    let mut rest = data.get(skip as usize..).unwrap_or_default();
    let mut sizes = reads.iter().copied().chain(std::iter::repeat(usize::MAX));
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(usize::MAX).min(rest.len());
        let (now, later) = rest.split_at(n);
        buf.extend_from_slice(now);
        rest = later;
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(f)) => out.frames.push((f.header.into_members(), f.body.to_vec())),
                Ok(None) => break,
                Err(e) => {
                    out.error = Some(OutcomeError {
                        code: e.code().into(),
                        offset: e.offset(),
                        missing: e.missing(),
                    });
                    return out;
                }
            }
        }
    }
    if let Err(e) = dec.finish(&buf) {
        out.error = Some(OutcomeError {
            code: e.code().into(),
            offset: e.offset(),
            missing: e.missing(),
        });
    }
    out
}

#[test]
fn seeds_recorded_streams_decode_with_seed_compat() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("recorded");
    let vectors = lhp_vectors::load_dir(&dir).expect("recorded vectors load");
    assert!(
        vectors.len() >= 3,
        "recordings missing in {}",
        dir.display()
    );
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("seeds.json")).expect("seeds.json"))
            .expect("json");
    for v in &vectors {
        assert_eq!(v.profile, "seed-compat");
        let reads: Vec<usize> = raw["vectors"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["id"] == v.id.as_str()))
            .and_then(|x| x["reads"].as_array())
            .map(|r| {
                r.iter()
                    .filter_map(|n| n.as_u64())
                    .map(|n| n as usize)
                    .collect()
            })
            .unwrap_or_default();
        // The recorded reads cover the whole input, skipped octets included: drop those.
        let mut plan = Vec::new();
        let mut skip = v.skip_bytes as usize;
        for r in reads {
            let taken = r.min(skip);
            skip -= taken;
            if r > taken {
                plan.push(r - taken);
            }
        }
        let expected_frames = v.expect.frames().len();
        assert!(expected_frames >= 1, "{}", v.id);
        for (how, plan) in [("whole", vec![]), ("as recorded", plan)] {
            let outcome = decode(Profile::SeedCompat, v.skip_bytes, &v.input, &plan);
            assert_eq!(
                check(&v.expect, &outcome),
                Verdict::Pass,
                "{} fed {how}: {:?}",
                v.id,
                outcome.error
            );
        }
        // Under lhp1 the same octets are refused at once (little-endian prefix).
        let lhp1 = decode(Profile::Lhp1, v.skip_bytes, &v.input, &[]);
        assert_eq!(
            lhp1.error.map(|e| e.code),
            Some("header_len_too_large".to_string()),
            "{}",
            v.id
        );
    }
}
