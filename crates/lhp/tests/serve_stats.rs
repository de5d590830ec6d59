//! `lhp serve`'s counters (issue 16): one `lhp::stats` event with the same fields on both
//! engines, logged on SIGUSR1, every `--stats-interval` seconds and once at shutdown. Runs the
//! built binary and signals it with `kill` (SKIP, loudly, where there is no `kill`).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::lhp;
use serde_json::Value;

fn kill(signal: &str, pid: u32) -> bool {
    Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// The next `lhp::stats` event with `trigger` among the server's stderr lines.
fn next_stats(lines: &mpsc::Receiver<String>, trigger: &str) -> Value {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let left = end
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("no {trigger:?} stats event within 10 s"));
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no {trigger:?} stats event: {e}"));
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if v["target"] == "lhp::stats" && v["fields"]["trigger"] == trigger {
            return v;
        }
    }
}

fn check_engine(engine: &str) {
    if Command::new("kill").arg("-l").output().is_err() {
        eprintln!("SKIP serve_stats ({engine}): no `kill` program to send SIGUSR1 with");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let mut child = lhp()
        .args(["--log-format", "json", "serve", "--engine", engine])
        .args(["--addr", "127.0.0.1:0", "--stats-interval", "1", "--root"])
        .arg(root.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    let (tx, lines) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    // One refused request: one connection, one frame each way, one `not_found`.
    let out = lhp()
        .args(["get", "missing.txt", "-o"])
        .arg(root.path().join("out"))
        .args(["--addr", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    // The client has gone; wait for the server to see the close before asking.
    let end = Instant::now() + Duration::from_secs(5);
    let signalled = loop {
        assert!(kill("-USR1", child.id()), "kill -USR1 failed");
        let s = next_stats(&lines, "signal");
        if s["fields"]["connections_open"] == 0 || Instant::now() > end {
            break s;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let f = &signalled["fields"];
    assert_eq!(signalled["level"], "INFO", "{signalled}");
    assert_eq!(f["connections_open"], 0, "{signalled}");
    assert_eq!(f["connections_total"], 1, "{signalled}");
    assert_eq!(f["frames_in"], 1, "{signalled}");
    assert_eq!(f["frames_out"], 1, "{signalled}");
    assert_eq!(f["refusals"], 1, "{signalled}");
    assert_eq!(f["connection_errors"], 0, "{signalled}");
    assert_eq!(f["timeouts"], 0, "{signalled}");
    assert_eq!(f["busy"], 0, "{signalled}");
    assert!(
        f["octets_in"].as_u64().is_some_and(|n| n > 4),
        "{signalled}"
    );
    assert!(
        f["octets_out"].as_u64().is_some_and(|n| n > 4),
        "{signalled}"
    );
    let errors: Value = serde_json::from_str(f["errors"].as_str().unwrap()).unwrap();
    assert_eq!(errors, serde_json::json!({"not_found": 1}), "{signalled}");

    let tick = next_stats(&lines, "interval");
    assert_eq!(tick["fields"]["connections_total"], 1, "{tick}");

    assert!(kill("-TERM", child.id()), "kill -TERM failed");
    let last = next_stats(&lines, "shutdown");
    assert_eq!(last["fields"]["refusals"], 1, "{last}");
    assert!(child.wait().unwrap().success());
    drop(lines);
    reader.join().unwrap();
}

#[test]
fn stats_on_sigusr1_interval_and_shutdown_tokio() {
    check_engine("tokio");
}

#[test]
fn stats_on_sigusr1_interval_and_shutdown_blocking() {
    check_engine("blocking");
}
