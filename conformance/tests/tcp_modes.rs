//! The TCP modes (`spec/conformance.md` §4, §5, §10): `--server` against the in-repo echo
//! servers and the seeds' negative control, `--client` against the Python client, and the
//! `record` proxy.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lhp_conformance::case::Case;
use lhp_conformance::client::{run_client, ClientOptions};
use lhp_conformance::plan::Strategy;
use lhp_conformance::runner::{ImplReport, Status};
use lhp_conformance::server::{run_server, ServerOptions, ServerProcess};
use lhp_conformance::tcp::{Reply, ReplyReader};

fn python3() -> bool {
    Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cases(filters: &[&str]) -> Vec<Case> {
    let filters: Vec<String> = filters.iter().map(|s| (*s).to_owned()).collect();
    lhp_conformance::load_cases(&lhp_vectors::default_dir(), &filters).expect("vectors load")
}

fn summary(r: &ImplReport) -> String {
    let fails: Vec<String> = r
        .results
        .iter()
        .filter(|c| c.status.is_fail())
        .take(10)
        .map(|c| format!("{} {}: {}", c.status.name(), c.id, c.detail))
        .collect();
    format!(
        "{}: {} passed ({} non-strict), {} failed, {} skipped in {:.1} s\n{}",
        r.name,
        r.count(Status::is_pass),
        r.count(|s| s == Status::NonStrict),
        r.count(Status::is_fail),
        r.count(|s| s == Status::Skipped),
        r.elapsed.as_secs_f64(),
        fails.join("\n")
    )
}

/// A conforming server passes every selected case: all echo cases, and the bad-input cases
/// strictly (an error frame with the right code, then a close).
fn assert_conforming(r: &ImplReport) {
    eprintln!("{}", summary(r));
    assert_eq!(r.count(Status::is_fail), 0, "{}", summary(r));
    assert!(r.count(Status::is_pass) >= 120, "{}", summary(r));
    let strict_bad = r
        .results
        .iter()
        .filter(|c| c.id.starts_with("wrong-protocol/") && c.status == Status::Pass)
        .count();
    assert!(strict_bad >= 3, "{}", summary(r));
}

#[test]
fn server_mode_passes_lhp_python_echo_server() {
    if !python3() {
        println!("SKIP server_mode_passes_lhp_python_echo_server: python3 is not installed");
        return;
    }
    let script = dir().join("python/echo_server.py");
    let cmd = format!("python3 {} --addr 127.0.0.1:0", script.display());
    let server =
        ServerProcess::start(&cmd, &[], Duration::from_secs(10)).expect("the server starts");
    let r = run_server(
        server.addr,
        "python",
        &cases(&[]),
        &ServerOptions::default(),
    );
    drop(server);
    assert_conforming(&r);
}

#[test]
fn server_mode_passes_blocking_and_tokio() {
    let all = cases(&[]);
    let blocking = lhp_blocking::Server::bind(
        "127.0.0.1:0",
        lhp_blocking::Config::new(),
        lhp_blocking::EchoHandler::new(),
    )
    .and_then(|s| s.spawn())
    .expect("the blocking server starts");
    let r = run_server(
        blocking.local_addr(),
        "blocking",
        &all,
        &ServerOptions::default(),
    );
    let _ = blocking.shutdown();
    assert_conforming(&r);

    let server = lhp_tokio::Server::bind(
        "127.0.0.1:0",
        lhp_tokio::Config::new(),
        lhp_tokio::EchoHandler::new(),
    )
    .expect("the tokio server binds");
    let addr = server.local_addr();
    let token = server.shutdown_token();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let running = rt.spawn(server.run());
    let r = run_server(addr, "tokio", &all, &ServerOptions::default());
    token.cancel();
    let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), running).await });
    assert_conforming(&r);
}

#[test]
fn server_mode_fails_seed_server_control() {
    if !python3() {
        println!("SKIP server_mode_fails_seed_server_control: python3 is not installed");
        return;
    }
    let script = dir().join("controls/seed_server.py");
    let server = ServerProcess::start(
        &format!("python3 {}", script.display()),
        &[],
        Duration::from_secs(10),
    )
    .expect("the seed server starts");
    let opts = ServerOptions {
        hang: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
        ..ServerOptions::default()
    };
    let r = run_server(server.addr, "seed", &cases(&["framing/", "limits/"]), &opts);
    drop(server);
    eprintln!("{}", summary(&r));
    // It echoes whole streams correctly, but fails them split, because recv(n) is taken as
    // complete.
    let split_failures = r
        .results
        .iter()
        .filter(|c| {
            c.failure
                .as_ref()
                .is_some_and(|f| f.strategy != Strategy::Whole)
        })
        .count();
    assert!(
        split_failures >= 5,
        "only {split_failures} split failures\n{}",
        summary(&r)
    );
    let split = r
        .results
        .iter()
        .find(|c| c.id == "framing/h-2")
        .expect("framing/h-2 is an echo case");
    assert_eq!(split.status, Status::Fail, "{split:?}");
    let f = split.failure.as_ref().expect("a failing plan");
    assert_ne!(f.strategy, Strategy::Whole, "{f:?}");
    assert!(!f.cuts.is_empty(), "{f:?}");
    // And it fails the limit cases: it waits for a header or body it should refuse.
    for id in ["framing/h-max-plus-1", "limits/default-body-max-plus-1"] {
        let c = r.results.iter().find(|c| c.id == id).expect("a limit case");
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(c.detail.contains("hang"), "{c:?}");
    }
}

#[test]
fn client_mode_passes_python_client() {
    if !python3() {
        println!("SKIP client_mode_passes_python_client: python3 is not installed");
        return;
    }
    let script = dir().join("python/client.py");
    let cmd = format!("python3 {}", script.display());
    let selected = cases(&[
        "eof/prefix-",
        "framing/h-1-space",
        "framing/h-2-after",
        "seed-compat/upload-header",
        "streams/100-frames",
        "streams/eof-in-frame-100",
    ]);
    assert!(selected.len() >= 8, "only {} cases", selected.len());
    let r = run_client(&cmd, &selected, &ClientOptions::default());
    eprintln!("{}", summary(&r));
    assert_eq!(r.count(Status::is_fail), 0, "{}", summary(&r));
    assert_eq!(r.count(Status::is_pass), selected.len(), "{}", summary(&r));
    let plans: usize = r.results.iter().map(|c| c.plans).sum();
    assert!(
        plans >= 4 * selected.len(),
        "only {plans} plans\n{}",
        summary(&r)
    );

    // A client that ignores the stream and claims a clean end must fail: the harness can fail.
    let liar = "python3 -c 'print(\"{\\\"end\\\":\\\"clean\\\"}\")'";
    let r = run_client(liar, &cases(&["framing/h-2"]), &ClientOptions::default());
    assert!(r.count(Status::is_fail) >= 1, "{}", summary(&r));
}

#[test]
fn record_proxy_captures_both_directions() {
    let upstream = lhp_blocking::Server::bind(
        "127.0.0.1:0",
        lhp_blocking::Config::new(),
        lhp_blocking::EchoHandler::new(),
    )
    .and_then(|s| s.spawn())
    .expect("the echo server starts");
    let tmp = tempfile::tempdir().expect("a temp dir");
    let out = tmp.path().join("captured.json");
    let mut proxy = Command::new(env!("CARGO_BIN_EXE_lhp-conformance"))
        .args(["record", "--listen", "127.0.0.1:0", "--upstream"])
        .arg(upstream.local_addr().to_string())
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the proxy starts");
    let mut line = String::new();
    let stdout = proxy.stdout.take().expect("stdout");
    BufReader::new(stdout).read_line(&mut line).expect("a line");
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("not a listening line: {line:?}"));

    // Two echo frames, the first split inside its header, 20 ms apart.
    let frames = [
        lhp_testkit::echo_frame(1, &b"hello"[..]),
        lhp_testkit::echo_frame(2, &b"world, again"[..]),
    ];
    let wire: Vec<u8> = frames.iter().flat_map(lhp_testkit::encode).collect();
    let mut conn = TcpStream::connect(addr).expect("connect to the proxy");
    conn.set_nodelay(true).expect("nodelay");
    for part in [&wire[..7], &wire[7..]] {
        conn.write_all(part).expect("write");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut reader = ReplyReader::new(conn.try_clone().expect("clone"));
    for want in &frames {
        match reader.next(Instant::now() + Duration::from_secs(5)) {
            Reply::Frame(f) => lhp_testkit::assert_same_frame(&f, want, "through the proxy"),
            other => panic!("no echo through the proxy: {other:?}"),
        }
    }
    conn.shutdown(std::net::Shutdown::Write).expect("shutdown");
    assert!(matches!(
        reader.next(Instant::now() + Duration::from_secs(5)),
        Reply::Closed
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = proxy.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the proxy did not stop after 1 connection"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = upstream.shutdown();
    assert!(status.success(), "{status}");

    // The file is a vector file: lhp-vectors loads it.
    let vectors = lhp_vectors::load_dir(tmp.path()).expect("the recording loads as vectors");
    assert_eq!(vectors.len(), 2, "{vectors:?}");
    for v in &vectors {
        assert_eq!(
            v.input, wire,
            "{}: both directions carry the same echo octets",
            v.id
        );
        assert!(v.expect.is_valid(), "{}", v.id);
        assert_eq!(v.expect.frames().len(), 2, "{}", v.id);
        assert_eq!(
            v.expect.frames()[1].header.get("id"),
            Some(&serde_json::Value::from(2)),
            "{}",
            v.id
        );
    }
    // With the sizes of the reads as they arrived: the client's two writes came as two reads.
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("read")).expect("json");
    let reads: Vec<Vec<u64>> = raw["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .map(|v| {
            v["reads"]
                .as_array()
                .expect("reads")
                .iter()
                .filter_map(serde_json::Value::as_u64)
                .collect()
        })
        .collect();
    assert_eq!(reads.len(), 2);
    for r in &reads {
        assert_eq!(r.iter().sum::<u64>(), wire.len() as u64, "{reads:?}");
    }
    assert_eq!(
        reads[0],
        vec![7, wire.len() as u64 - 7],
        "client side: {reads:?}"
    );
    assert!(Path::new(&out).exists());
}
