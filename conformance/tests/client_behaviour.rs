//! The client behaviour cases and the client resource cases (`spec/conformance.md` §7, §9):
//! the Python client passes them; a naive client that decodes only its first read and
//! allocates declared bodies fails the slow server and the memory case.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use lhp_conformance::client::{run_client_behaviour, run_client_resources, ClientOptions};
use lhp_conformance::runner::{CaseResult, Status};

fn python3() -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: python3 is not available; the client behaviour tests were not run");
    }
    ok
}

fn here() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(script: &str) -> Vec<CaseResult> {
    let cmd = format!("python3 {}", here().join(script).display());
    let opts = ClientOptions {
        timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    };
    let mut r = run_client_behaviour(&cmd, &opts);
    r.extend(run_client_resources(&cmd, &opts));
    r
}

fn status(r: &[CaseResult], id: &str) -> Status {
    r.iter()
        .find(|c| c.id == id)
        .map(|c| c.status)
        .unwrap_or_else(|| panic!("no result for {id}"))
}

#[test]
fn the_python_client_passes_the_behaviour_and_resource_cases() {
    if !python3() {
        return;
    }
    let r = run("python/client.py");
    assert_eq!(r.len(), 7);
    for c in &r {
        let ok = c.status == Status::Pass
            || (c.status == Status::Skipped && c.detail.contains("not measured"));
        assert!(ok, "{} {}: {}", c.status.name(), c.id, c.detail);
    }
}

#[test]
fn a_naive_client_fails_the_slow_server_and_the_memory_case() {
    if !python3() {
        return;
    }
    let r = run("tests/fixtures/naive_client.py");
    assert_eq!(status(&r, "client/slow-server"), Status::Fail);
    assert_eq!(status(&r, "client/busy"), Status::Pass);
    if cfg!(target_os = "linux") {
        for id in [
            "resources/decoder-body-1gib",
            "resources/decoder-body-2p53-1",
        ] {
            let m = r.iter().find(|c| c.id == id).unwrap();
            assert_eq!(m.status, Status::Fail, "{id}: {}", m.detail);
            assert!(
                m.detail.contains("allocates from declared lengths"),
                "{id}: {}",
                m.detail
            );
        }
    }
}
