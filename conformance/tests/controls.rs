//! Negative controls: the harness must fail the seeds' receiver on split plans
//! (`spec/conformance.md` §8). A harness that cannot fail proves nothing.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lhp_conformance::plan::Strategy;
use lhp_conformance::runner::{self, Options, Status};
use lhp_conformance::stdio::StdioTestee;

fn python3() -> bool {
    Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn the_seed_testee_fails_split_cases() {
    if !python3() {
        println!("SKIP the_seed_testee_fails_split_cases: python3 is not installed");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("controls/seed_testee.py");
    let cmd = format!("python3 {}", script.display());
    let cases =
        lhp_conformance::load_cases(&lhp_vectors::default_dir(), &["seed-compat/".into()]).unwrap();
    assert!(cases.len() > 10);
    let mut testee = StdioTestee::new(&cmd, Duration::from_secs(10));
    let report = runner::run_all(&mut testee, &cases, &Options::default());
    assert!(
        !report.about.starts_with("did not start"),
        "{}",
        report.about
    );
    // It decodes whole streams of ordinary uploads correctly...
    let upload = report
        .results
        .iter()
        .find(|r| r.id == "seed-compat/upload-header")
        .expect("the upload vector exists");
    assert_eq!(upload.status, Status::Fail, "{upload:?}");
    // ...but not when the stream is split: the failure is a split, shrunk to one cut point.
    let f = upload.failure.as_ref().expect("a failing plan");
    assert!(
        matches!(
            f.strategy,
            Strategy::Cut | Strategy::Pairs | Strategy::Bytes | Strategy::Random
        ),
        "expected a split failure, got {f:?}"
    );
    assert_eq!(f.cuts.len(), 1, "not shrunk to one cut: {f:?}");
    let split_failures = report
        .results
        .iter()
        .filter(|r| {
            r.failure
                .as_ref()
                .is_some_and(|f| f.strategy != Strategy::Whole)
        })
        .count();
    assert!(split_failures >= 5, "only {split_failures} split failures");
    eprintln!(
        "seed testee: {} failed ({split_failures} on splits), {} passed in {:.1} s",
        report.count(Status::is_fail),
        report.count(Status::is_pass),
        report.elapsed.as_secs_f64()
    );
}
