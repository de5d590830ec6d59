//! `lhp --log-format json`: one JSON object per stderr line, with the fields `lhp::log`
//! documents, for the client commands and for `lhp serve`'s file handlers; stdout keeps only
//! data. Runs the built binary over loopback.

mod common;

use std::fs;
use std::process::{Output, Stdio};

use common::{lhp, Serve};
use serde_json::Value;

/// `lhp --log-format json serve` on `engine` over `root`, at level `info`, stderr kept.
fn serve_json(engine: &str, root: &std::path::Path) -> Serve {
    let mut cmd = lhp();
    cmd.args(["--log-format", "json", "serve", "--engine", engine])
        .args(["--addr", "127.0.0.1:0", "--root"])
        .arg(root)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped());
    Serve::start(cmd)
}

/// Every stderr line of a JSON-logging run, parsed; fails on a line that is not one JSON
/// object with the subscriber's top-level members.
fn events(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        // `lhp serve` announces a signal on stderr in plain words; a SIGKILL has none, and the
        // client's one-line `lhp: ...` error comes after its event.
        .filter(|l| !l.starts_with("lhp"))
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}"));
            assert!(v.is_object(), "not an object: {l}");
            for member in ["timestamp", "level", "target", "fields"] {
                assert!(v.get(member).is_some(), "no {member:?} in {l}");
            }
            v
        })
        .collect()
}

fn find<'a>(events: &'a [Value], target: &str, message: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["target"] == target && e["fields"]["message"] == message)
        .unwrap_or_else(|| panic!("no {target} {message:?} event in {events:#?}"))
}

fn client(addr: &str, dir: &std::path::Path, args: &[&str]) -> Output {
    lhp()
        .args(["--log-format", "json"])
        .args(args)
        .args(["--addr", addr])
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

fn check_engine(engine: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let (root, work) = (tmp.path().join("srv"), tmp.path().join("work"));
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&work).unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(work.join("data.bin"), &data).unwrap();
    let server = serve_json(engine, &root);

    let put = client(&server.addr, &work, &["put", "data.bin"]);
    assert!(put.status.success(), "{put:?}");
    let stdout = String::from_utf8(put.stdout).unwrap();
    assert!(
        stdout.starts_with("put data.bin: 300000 octets"),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().count(),
        1,
        "stdout holds data only: {stdout}"
    );
    let ev = events(&String::from_utf8(put.stderr).unwrap());
    let done = find(&ev, "lhp::client", "transfer finished");
    assert_eq!(done["level"], "INFO");
    assert_eq!(done["fields"]["side"], "client");
    assert_eq!(done["fields"]["op"], "put");
    assert_eq!(done["fields"]["name"], "data.bin");
    assert_eq!(done["fields"]["octets"], 300_000);
    assert!(done["fields"]["duration_ms"].is_u64(), "{done}");
    assert!(done["fields"]["rate_mbps"].is_number(), "{done}");

    let get = client(&server.addr, &work, &["get", "data.bin", "-o", "copy.bin"]);
    assert!(get.status.success(), "{get:?}");
    assert_eq!(fs::read(work.join("copy.bin")).unwrap(), data);
    let ev = events(&String::from_utf8(get.stderr).unwrap());
    let done = find(&ev, "lhp::client", "transfer finished");
    assert_eq!(done["fields"]["op"], "get");
    assert_eq!(done["fields"]["octets"], 300_000);

    let missing = client(&server.addr, &work, &["get", "missing.txt"]);
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
    let stderr = String::from_utf8(missing.stderr).unwrap();
    let ev = events(&stderr);
    let refusal = find(&ev, "lhp::client", "request refused by the server");
    assert_eq!(refusal["level"], "WARN");
    assert_eq!(refusal["fields"]["code"], "not_found");
    assert!(refusal["fields"]["reason"].is_string(), "{refusal}");

    let ev = events(&server.stop());
    let put = ev
        .iter()
        .find(|e| e["fields"]["message"] == "transfer finished" && e["fields"]["op"] == "put")
        .unwrap_or_else(|| panic!("no server put event in {ev:#?}"));
    assert_eq!(put["target"], "lhp::serve");
    assert_eq!(put["fields"]["side"], "server");
    assert_eq!(put["fields"]["name"], "data.bin");
    assert_eq!(put["fields"]["octets"], 300_000);
    let get = ev
        .iter()
        .find(|e| e["fields"]["message"] == "transfer finished" && e["fields"]["op"] == "get")
        .unwrap_or_else(|| panic!("no server get event in {ev:#?}"));
    assert_eq!(get["fields"]["octets"], 300_000);
    let refused = find(&ev, "lhp::serve", "request refused");
    assert_eq!(refused["fields"]["op"], "get");
    assert_eq!(refused["fields"]["name"], "missing.txt");
    assert_eq!(refused["fields"]["code"], "not_found");
    // Issue 16: every refusal says who asked, from the connection's span.
    let peer = refused["span"]["peer"]
        .as_str()
        .unwrap_or_else(|| panic!("no span.peer in {refused}"));
    assert!(
        peer.parse::<std::net::SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback()),
        "{refused}"
    );
    assert_eq!(refused["span"]["name"], "connection", "{refused}");
}

#[test]
fn json_log_lines_tokio_engine() {
    check_engine("tokio");
}

#[test]
fn json_log_lines_blocking_engine() {
    check_engine("blocking");
}

/// Text is the default format, at level `info` without `RUST_LOG`; `RUST_LOG=error` leaves
/// only the command's own one-line error.
#[test]
fn text_format_and_rust_log_filter() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve_json("tokio", tmp.path());
    let refused = |rust_log: Option<&str>| {
        let mut cmd = lhp();
        cmd.args(["get", "missing.txt", "-o"])
            .arg(tmp.path().join("out.txt"))
            .args(["--addr", &server.addr])
            .env_remove("RUST_LOG");
        if let Some(level) = rust_log {
            cmd.env("RUST_LOG", level);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        String::from_utf8(out.stderr).unwrap()
    };
    let default = refused(None);
    let event = default
        .lines()
        .find(|l| l.contains("request refused by the server"))
        .unwrap_or_else(|| panic!("no refusal event: {default}"));
    assert!(event.contains("WARN"), "{event}");
    assert!(event.contains("code=\"not_found\""), "{event}");
    assert!(
        serde_json::from_str::<Value>(event).is_err(),
        "text, not JSON: {event}"
    );
    let quiet = refused(Some("error"));
    assert_eq!(quiet.lines().count(), 1, "{quiet}");
    assert!(
        quiet.starts_with("lhp: server refused: not_found"),
        "{quiet}"
    );

    let bad = lhp()
        .args(["--log-format", "yaml", "decode"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("json"),
        "{bad:?}"
    );
}
