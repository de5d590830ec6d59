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
