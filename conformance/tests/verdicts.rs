//! A testee that reports a decoded value no valid header can hold gets `fail` naming the
//! value, not `crash` (spec/conformance.md §3.3).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use lhp_conformance::runner::{self, Options, Status};
use lhp_conformance::stdio::StdioTestee;

fn python3() -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: python3 is not available; the verdict tests were not run");
    }
    ok
}

fn run(mode: &str) -> Vec<(Status, String)> {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wrong_value_testee.py");
    let mut t = StdioTestee::new(
        &format!("python3 {} {mode}", script.display()),
        Duration::from_secs(5),
    );
    let cases =
        lhp_conformance::load_cases(&lhp_vectors::default_dir(), &["framing/".into()]).unwrap();
    let cases: Vec<_> = cases.into_iter().take(6).collect();
    let r = runner::run_all(&mut t, &cases, &Options::default());
    r.results
        .iter()
        .map(|c| (c.status, c.detail.clone()))
        .collect()
}

#[test]
fn a_number_beyond_2_53_is_a_fail_that_names_it() {
    if !python3() {
        return;
    }
    for (status, detail) in run("big") {
        assert_eq!(status, Status::Fail, "{detail}");
        assert!(detail.contains("9007199254740992"), "{detail}");
        assert!(detail.contains("\"n\""), "{detail}");
    }
}

#[test]
fn nan_is_a_fail_that_names_it() {
    if !python3() {
        return;
    }
    for (status, detail) in run("nan") {
        assert_eq!(status, Status::Fail, "{detail}");
        assert!(detail.contains("NaN"), "{detail}");
    }
}

/// The `resources` group catches a stdio decoder that allocates declared bodies (and passes
/// the outcome check, so memory is what fails it).
#[test]
fn a_preallocating_stdio_decoder_fails_the_memory_cases() {
    if !python3() || !cfg!(target_os = "linux") {
        return;
    }
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wrong_value_testee.py");
    let mut t = StdioTestee::new(
        &format!("python3 {} prealloc", script.display()),
        Duration::from_secs(20),
    );
    let r = lhp_conformance::resources::run_testee_resources(&mut t, &Options::default());
    let by = |id: &str| r.iter().find(|c| c.id == id).unwrap();
    assert_eq!(
        by("resources/decoder-header-near-limit").status,
        Status::Pass,
        "{}",
        by("resources/decoder-header-near-limit").detail
    );
    for id in [
        "resources/decoder-body-1gib",
        "resources/decoder-body-2p53-1",
    ] {
        let c = by(id);
        assert_eq!(c.status, Status::Fail, "{id}: {}", c.detail);
        assert!(
            c.detail.contains("allocates from declared lengths"),
            "{}",
            c.detail
        );
    }
}
