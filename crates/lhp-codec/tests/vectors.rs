//! The vector table of `spec/vectors/`, under every split strategy (spec §12).

mod common;

use common::{run_events, run_frames, run_in_place, stream};
use lhp_vectors::{check, Expect, Vector, Verdict};

fn vectors() -> Vec<Vector> {
    let v = lhp_vectors::load_default().expect("spec/vectors loads");
    assert!(v.len() >= 60, "only {} vectors", v.len());
    v
}

fn judge(v: &Vector, what: &str, cuts: &[usize], outcome: lhp_vectors::Outcome) {
    if let Verdict::Fail(reason) = check(&v.expect, &outcome) {
        panic!(
            "{} ({}, §{}) failed {what} with cuts {:?}: {reason}\n{}",
            v.id,
            v.profile,
            v.spec,
            &cuts[..cuts.len().min(20)],
            v.description
        );
    }
}

#[test]
fn vectors_whole_stream() {
    for v in vectors() {
        let s = stream(&v);
        judge(&v, "whole/frames", &[], run_frames(&v, s, &[]));
        judge(&v, "whole/events", &[], run_events(&v, s, &[]));
        judge(&v, "whole/in place", &[], run_in_place(&v, s, &[]));
    }
}

/// How many single cuts a stream gets: `(every, edge, spread)` = streams up to `every` octets get
/// every cut; longer ones the first and last `edge` cuts plus `spread` evenly spaced ones.
/// By default (8 KiB, 100, 256). With `LHP_VECTORS_QUICK` set (`scripts/mutants.sh` sets it,
/// so that one mutant's run takes seconds, not minutes): (512, 16, 16).
fn cut_plan() -> (usize, usize, usize) {
    if std::env::var_os("LHP_VECTORS_QUICK").is_some() {
        (512, 16, 16)
    } else {
        (8_192, 100, 256)
    }
}

#[test]
fn vectors_every_single_split() {
    for v in vectors() {
        let s = stream(&v);
        // Each cut re-decodes the whole stream, so all L−1 cuts cost O(L²). Streams up to
        // 8 KiB (all but the long multi-frame and large-body vectors) get every cut; longer
        // ones every cut in the first and last 100 octets plus 256 evenly spaced ones
        // (`cut_plan`). The conformance harness (`lhp-conformance --impl codec`) adds cuts at
        // every frame boundary ±2 for those.
        let (every, edge, spread) = cut_plan();
        let cuts: Vec<usize> = if s.len() <= every {
            (1..s.len()).collect()
        } else {
            let mut c: Vec<usize> = (1..edge).chain(s.len() - edge..s.len()).collect();
            c.extend((1..s.len()).step_by(s.len() / spread));
            c
        };
        for cut in cuts {
            judge(&v, "single cut/frames", &[cut], run_frames(&v, s, &[cut]));
            judge(&v, "single cut/events", &[cut], run_events(&v, s, &[cut]));
            judge(
                &v,
                "single cut/in place",
                &[cut],
                run_in_place(&v, s, &[cut]),
            );
        }
    }
}

#[test]
fn vectors_one_byte_at_a_time() {
    for v in vectors() {
        let s = stream(&v);
        if s.len() > 256 << 10 {
            continue; // the 1 and 16 MiB bodies: covered by the split test's body cuts.
        }
        let cuts: Vec<usize> = (1..s.len()).collect();
        judge(&v, "bytewise/frames", &cuts, run_frames(&v, s, &cuts));
        judge(&v, "bytewise/events", &cuts, run_events(&v, s, &cuts));
        judge(&v, "bytewise/in place", &cuts, run_in_place(&v, s, &cuts));
    }
}

#[test]
fn vectors_every_pair_of_splits_small() {
    for v in vectors() {
        let s = stream(&v);
        if s.len() > 64 {
            continue;
        }
        for a in 1..s.len() {
            for b in a + 1..s.len() {
                judge(&v, "pair/frames", &[a, b], run_frames(&v, s, &[a, b]));
                judge(&v, "pair/in place", &[a, b], run_in_place(&v, s, &[a, b]));
            }
        }
    }
}

#[test]
fn vectors_all_valid_coalesced() {
    // Every valid lhp1 vector with default limits, back to back in one stream.
    let vs: Vec<Vector> = vectors()
        .into_iter()
        .filter(|v| {
            v.expect.is_valid() && v.profile == "lhp1" && v.limits.is_none() && v.skip_bytes == 0
        })
        .collect();
    assert!(vs.len() > 20);
    let mut all = Vec::new();
    let mut frames = Vec::new();
    for v in &vs {
        all.extend_from_slice(&v.input);
        frames.extend(v.expect.frames().iter().cloned());
    }
    let combined = Vector {
        id: "coalesced".into(),
        expect: Expect::Valid { frames },
        input: all.clone(),
        ..vs[0].clone()
    };
    judge(
        &combined,
        "coalesced/frames",
        &[],
        run_frames(&combined, &all, &[]),
    );
    let cuts: Vec<usize> = (1..all.len()).step_by(7).collect();
    judge(
        &combined,
        "coalesced/events",
        &cuts,
        run_events(&combined, &all, &cuts),
    );
    judge(
        &combined,
        "coalesced/in place",
        &cuts,
        run_in_place(&combined, &all, &cuts),
    );
}

#[test]
fn every_error_code_has_a_vector() {
    let vs = vectors();
    for code in [
        "header_len_too_small",
        "header_len_too_large",
        "unexpected_eof",
        "header_not_utf8",
        "header_not_json",
        "header_not_object",
        "duplicate_member",
        "number_out_of_range",
        "invalid_body_len",
        "invalid_member",
        "unsupported_version",
        "body_too_large",
        "digest_mismatch",
    ] {
        assert!(
            vs.iter()
                .any(|v| matches!(&v.expect, Expect::Invalid { error, .. } if error.code == code)),
            "no vector for {code}"
        );
    }
}
