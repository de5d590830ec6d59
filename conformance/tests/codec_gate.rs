//! The CI gate: `lhp-codec` and the engines' readers pass every required vector under every split
//! strategy (the plain decoder under the quick budget: its full run is `lhp-codec/tests/vectors.rs`).

use lhp_conformance::engines::{Blocking, Tokio};
use lhp_conformance::runner::{self, Options, Status};
use lhp_conformance::testee::{CodecDecode, CodecEvents, Testee};

fn gate(testee: &mut dyn Testee) {
    gate_with(testee, &Options::default());
}

fn gate_with(testee: &mut dyn Testee, opts: &Options) {
    let cases = lhp_conformance::load_cases(&lhp_vectors::default_dir(), &[]).unwrap();
    assert!(cases.len() >= 200, "only {} cases", cases.len());
    assert!(cases.iter().any(|c| c.id() == "coalesced/lhp1"));
    let report = runner::run_all(testee, &cases, opts);
    let bad: Vec<String> = report
        .results
        .iter()
        .filter(|r| {
            r.tier == "required" && r.status != Status::Pass && r.status != Status::NonStrict
        })
        .map(|r| format!("{} {}: {}", r.status.name(), r.id, r.detail))
        .collect();
    assert!(
        bad.is_empty(),
        "{} required case(s) failed:\n{}",
        bad.len(),
        bad.join("\n")
    );
    // Every case really ran plans (a harness that runs nothing passes everything).
    let plans: usize = report.results.iter().map(|r| r.plans).sum();
    let least = if opts.quick { 10_000 } else { 100_000 };
    assert!(plans > least, "only {plans} plans ran");
    eprintln!(
        "{}: {} cases, {plans} plans in {:.1} s",
        report.name,
        report.results.len(),
        report.elapsed.as_secs_f64()
    );
}

/// The quick budget: `Decoder::decode` is the same code `lhp-codec/tests/vectors.rs` runs under
/// every single split, every pair of splits of short streams and one octet at a time; here it
/// proves the harness's adapter, and the full budget would repeat that work (a quarter of this
/// binary's time in CI).
#[test]
fn codec_decode_passes_every_required_case_under_the_quick_splits() {
    gate_with(
        &mut CodecDecode,
        &Options {
            quick: true,
            ..Options::default()
        },
    );
}

#[test]
fn codec_events_passes_every_required_case_under_every_split() {
    gate(&mut CodecEvents);
}

#[test]
fn blocking_reader_passes_every_required_case_under_every_split() {
    gate(&mut Blocking);
}

#[test]
fn tokio_reader_passes_every_required_case_under_every_split() {
    gate(&mut Tokio::new());
}
