//! Runs the independent Python implementation's own test suite (conformance/python), which
//! checks it against every vector in spec/vectors. It was written from spec/lhp-1.md alone:
//! this test is the standing proof that the spec is enough to implement LHP/1.

use std::path::Path;
use std::process::Command;

#[test]
fn python_implementation_passes_every_vector() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let Ok(out) = Command::new("python3").arg("--version").output() else {
        eprintln!("SKIP python_implementation_passes_every_vector: python3 is not installed");
        return;
    };
    assert!(out.status.success(), "python3 --version failed");
    let out = Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "conformance/python"])
        .current_dir(&root)
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the Python implementation's tests failed:\n{stderr}"
    );
    // unittest prints "Ran N tests" and "OK": make sure it really ran the vector suite.
    let ran: usize = stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("Ran ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .expect("unittest reports how many tests ran");
    assert!(ran >= 100, "only {ran} Python tests ran:\n{stderr}");
}
