//! Recorded streams decode as they were recorded: fed whole, and fed in the read sizes the
//! kernel actually delivered. Two sources: the seeds' own Python programs
//! (conformance/seeds/record_seeds.py, seed-compat) and real `lhp` put/ls/get/exec
//! conversations through the harness's recording proxy (conformance/recorded/record_lhp.sh,
//! lhp1, both directions).

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

fn raw_vectors(dir: &Path) -> Vec<serde_json::Value> {
    ["seeds.json", "lhp.json"]
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(dir.join(f)).expect("recording present");
            let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
            doc["vectors"].as_array().cloned().unwrap_or_default()
        })
        .collect()
}

#[test]
fn recorded_streams_decode_as_recorded() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("recorded");
    let vectors = lhp_vectors::load_dir(&dir).expect("recorded vectors load");
    let seeds = vectors
        .iter()
        .filter(|v| v.profile == "seed-compat")
        .count();
    let lhp = vectors.iter().filter(|v| v.profile == "lhp1").count();
    assert!(
        seeds >= 3 && lhp >= 8,
        "recordings missing in {}",
        dir.display()
    );
    let raw = raw_vectors(&dir);
    for v in &vectors {
        let profile: Profile = v.profile.parse().expect("profile");
        let reads: Vec<usize> = raw
            .iter()
            .find(|x| x["id"] == v.id.as_str())
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
        assert!(!plan.is_empty(), "{}: no read sizes recorded", v.id);
        for (how, plan) in [("whole", vec![]), ("as recorded", plan)] {
            let outcome = decode(profile, v.skip_bytes, &v.input, &plan);
            assert_eq!(
                check(&v.expect, &outcome),
                Verdict::Pass,
                "{} fed {how}: {:?}",
                v.id,
                outcome.error
            );
        }
        // Under lhp1 the seeds' octets are refused at once (little-endian prefix).
        if profile == Profile::SeedCompat {
            let lhp1 = decode(Profile::Lhp1, v.skip_bytes, &v.input, &[]);
            assert_eq!(
                lhp1.error.map(|e| e.code),
                Some("header_len_too_large".to_string()),
                "{}",
                v.id
            );
        }
    }
}
