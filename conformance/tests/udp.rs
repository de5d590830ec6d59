//! The harness's UDP mode (`conformance/src/udp.rs`, `spec/lhp-udp.md`) against both engines'
//! datagram servers, the Python implementation (`python/src/lhp/udp.py`), and a
//! deliberately broken server it must catch.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use lhp_codec::datagram::DatagramConfig;
use lhp_codec::Frame;
use lhp_conformance::udp::{build_cases, run_cases, UdpExpect, UdpOptions};

fn vectors() -> PathBuf {
    lhp_vectors::default_dir()
}

struct Blocking {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Blocking {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn blocking_server<F>(config: DatagramConfig, handler: F) -> Blocking
where
    F: FnMut(Frame, SocketAddr) -> Option<Frame> + Send + 'static,
{
    let mut server = lhp_blocking::udp::UdpServer::bind("127.0.0.1:0", config).unwrap();
    let addr = server.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::spawn(move || server.serve_until(&s, handler).unwrap());
    Blocking {
        addr,
        stop,
        thread: Some(thread),
    }
}

fn check(addr: SocketAddr, max: usize) -> lhp_conformance::udp::UdpReport {
    let opts = UdpOptions {
        max_datagram_len: max,
        ..UdpOptions::default()
    };
    let cases = build_cases(&vectors().join("datagram.json"), &vectors(), &opts)
        .unwrap()
        .cases;
    assert!(cases.len() > 300, "{}", cases.len());
    let kinds: &[UdpExpect] = if max == 65_507 {
        &[UdpExpect::Echo, UdpExpect::Silence]
    } else {
        &[]
    };
    for kind in kinds.iter().cloned() {
        assert!(cases.iter().any(|c| c.expect == kind), "no {kind:?} case");
    }
    let codes: &[&str] = if max == 65_507 {
        &["trailing_octets", "unexpected_eof"]
    } else {
        &["datagram_too_large"]
    };
    for &code in codes {
        assert!(
            cases
                .iter()
                .any(|c| matches!(&c.expect, UdpExpect::Error { code: c2, .. } if c2 == code)),
            "no {code} case"
        );
    }
    run_cases(addr, &cases, &opts)
}

#[test]
fn blocking_engine_passes_the_datagram_cases() {
    for max in [65_507, 1024] {
        let s = blocking_server(DatagramConfig::new().with_max_datagram_len(max), |f, _| {
            Some(f)
        });
        let r = check(s.addr, max);
        assert!(r.failed.is_empty(), "max {max}: {}", r.summary());
    }
}

#[test]
fn tokio_engine_passes_the_datagram_cases() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for max in [65_507, 1024] {
        let (addr, token) = rt.block_on(async {
            let mut server = lhp_tokio::udp::UdpServer::bind(
                "127.0.0.1:0",
                DatagramConfig::new().with_max_datagram_len(max),
            )
            .await
            .unwrap();
            let addr = server.local_addr().unwrap();
            let token = lhp_tokio::CancellationToken::new();
            let t = token.clone();
            tokio::spawn(async move { server.serve_until(t, |f, _| Some(f)).await });
            (addr, token)
        });
        let r = check(addr, max);
        token.cancel();
        assert!(r.failed.is_empty(), "max {max}: {}", r.summary());
    }
}

#[test]
fn the_harness_catches_a_server_that_answers_bad_datagrams() {
    // A "seed-style" server: decodes nothing, echoes every datagram whatever it holds.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_millis(50)))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let t = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while !s.load(Ordering::Relaxed) {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                let _ = sock.send_to(&buf[..n], from);
            }
        }
    });
    let r = check(addr, 65_507);
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
    assert!(r.failed.len() > 100, "{}", r.summary());
    assert!(r.failed.iter().any(|(id, _)| id.contains("two-frames")));
    assert!(r.passed > 0);
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn python_implementation_passes_the_datagram_cases() {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP python_implementation_passes_the_datagram_cases: python3 is not installed");
        return;
    }
    // The Python implementation is the package in python/src (pip-installable).
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("../python/src");
    for max in [65_507usize, 1024] {
        let mut child = Command::new("python3")
            .args(["-m", "lhp.udp", "serve", "127.0.0.1:0", "--max-datagram"])
            .arg(max.to_string())
            .current_dir(&py)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let _proc = Proc(child);
        let addr: SocketAddr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{line:?}"))
            .parse()
            .unwrap();
        let r = check(addr, max);
        assert!(r.failed.is_empty(), "python, max {max}: {}", r.summary());
    }
}

#[test]
fn the_cli_mode_runs_and_reports() {
    let s = blocking_server(DatagramConfig::new(), |f, _| Some(f));
    let out = Command::new(env!("CARGO_BIN_EXE_lhp-conformance"))
        .args(["--udp-server", &s.addr.to_string(), "--filter", "datagram/"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" 0 failed"), "{stdout}");
}
