//! The seeds' UDP programs (conformance/seeds/seed_00*_udp_*.py: shared/seeds 000, 001 and 002,
//! adapted only to loopback, a bounded loop and fixed input) against their `lhp` equivalents
//! (`spec/lhp-udp.md`):
//!
//! - the upper-casing server and client on `recvfrom(1024)`: a 2,000-octet message comes back
//!   as 1,024 octets, and nothing says so; over LHP/UDP it comes back whole, or, from a server
//!   whose maximum is 1,024, is rejected with `datagram_too_large`;
//! - the time server: a 2,000-octet format is cut to 1,024 before `strftime`; `lhp` refuses a
//!   format over 256 octets with `bad_request`;
//! - seed 000's `ThreadingUDPServer`, whose handler loops: one datagram gets reply after reply;
//!   `lhp udp serve` sends exactly one.
//!
//! Each test prints SKIP and returns if `python3` is missing.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::lhp;

const MESSAGE_LEN: usize = 2000;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python(test: &str) -> Option<Command> {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP {test}: python3 is not installed; the seeds' UDP programs cannot run");
        return None;
    }
    let mut c = Command::new("python3");
    c.env("PYTHONUTF8", "1").env("PYTHONIOENCODING", "utf-8");
    Some(c)
}

fn seed(script: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../conformance/seeds")
        .join(script);
    assert!(p.exists(), "{} is missing", p.display());
    p
}

/// Spawns a program whose first stdout line is "listening on HOST:PORT".
fn listening(mut cmd: Command) -> (Proc, String) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line {line:?}"))
        .to_owned();
    (Proc(child), addr)
}

fn lhp_serve(extra: &[&str]) -> (Proc, String) {
    let mut c = lhp();
    c.args(["udp", "serve", "--addr", "127.0.0.1:0"])
        .args(extra);
    listening(c)
}

fn lhp_send(addr: &str, kind: &str, text: &str) -> std::process::Output {
    lhp()
        .args(["udp", "send", "--addr", addr, "--kind", kind, "--"])
        .arg(text)
        .output()
        .unwrap()
}

#[test]
fn upper_server_truncates_at_1024_and_lhp_does_not() {
    let Some(mut py) = python("upper_server_truncates_at_1024_and_lhp_does_not") else {
        return;
    };
    let message = "a".repeat(MESSAGE_LEN);
    // The seeds: server and client, the message typed at the client's prompt.
    py.arg(seed("seed_001_udp_upper_server.py"))
        .args(["127.0.0.1:0", "1"]);
    let (_server, addr) = listening(py);
    let mut client = python("")
        .unwrap()
        .arg(seed("seed_001_udp_upper_client.py"))
        .arg(&addr)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    writeln!(stdin, "{message}").unwrap();
    drop(stdin);
    let mut printed = String::new();
    client
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut printed)
        .unwrap();
    assert!(client.wait().unwrap().success());
    // The client prints the reply as bytes: b'AAAA...'. 1,024 of the 2,000 survive, silently.
    let upper = printed.matches('A').count();
    assert_eq!(upper, 1024, "the seed client printed {printed:?}");
    assert!(!printed.contains('a'));

    // LHP/UDP: the same message, whole.
    let (_lhp, addr) = lhp_serve(&[]);
    let out = lhp_send(&addr, "upper", &message);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim_end(),
        "A".repeat(MESSAGE_LEN)
    );
    // A server whose maximum is the seeds' 1024: rejected with its error, not cut.
    let (_small, addr) = lhp_serve(&["--max-datagram", "1024"]);
    let out = lhp_send(&addr, "upper", &message);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("datagram_too_large at offset 1024"),
        "stderr: {err}"
    );
}

#[test]
fn time_server_truncates_the_format_and_lhp_refuses_it() {
    let Some(mut py) = python("time_server_truncates_the_format_and_lhp_refuses_it") else {
        return;
    };
    py.arg(seed("seed_002_udp_time_server.py"))
        .args(["127.0.0.1:0", "2"]);
    let (_server, addr) = listening(py);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; 65_536];
    // A short format works: the seed's job.
    sock.send_to(b"%Y", &addr).unwrap();
    let n = sock.recv(&mut buf).unwrap();
    let year = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(year.parse::<u32>().unwrap() >= 2024, "{year}");
    // A 2,000-octet format: the server formats only the first 1,024 octets of it.
    let format = format!("%Y{}", "x".repeat(MESSAGE_LEN - 2));
    sock.send_to(format.as_bytes(), &addr).unwrap();
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(n, 1024 - 2 + year.len(), "the reply should show the cut");

    // LHP/UDP: delivered whole, then refused by the application with its error.
    let (_lhp, addr) = lhp_serve(&[]);
    let out = lhp_send(&addr, "time", &format);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad_request") && err.contains("2000 octets"),
        "{err}"
    );
    let out = lhp_send(&addr, "time", "%Y");
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), year);
}

#[test]
fn threading_udp_server_answers_one_datagram_forever_and_lhp_once() {
    let Some(mut py) = python("threading_udp_server_answers_one_datagram_forever_and_lhp_once")
    else {
        return;
    };
    py.arg(seed("seed_000_udp_threading_server.py"))
        .arg("127.0.0.1:0");
    let (mut seed_server, seed_addr) = listening(py);
    let (_lhp, lhp_addr) = lhp_serve(&[]);

    let count_replies = |addr: &str, datagram: &[u8]| {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        sock.send_to(datagram, addr).unwrap();
        let deadline = Instant::now() + Duration::from_millis(500);
        let mut n = 0;
        let mut buf = vec![0u8; 65_536];
        while Instant::now() < deadline {
            if sock.recv(&mut buf).is_ok() {
                n += 1;
            }
        }
        n
    };
    let seed_replies = count_replies(&seed_addr, b"hello");
    // Stop the flood before anything else.
    let _ = seed_server.0.kill();
    assert!(
        seed_replies >= 2,
        "the seed's handler loops: expected a stream of replies, got {seed_replies}"
    );
    let mut frame = Vec::new();
    let header = br#"{"kind":"upper","id":1,"body_len":5}"#;
    frame.extend_from_slice(&(header.len() as u32).to_be_bytes());
    frame.extend_from_slice(header);
    frame.extend_from_slice(b"hello");
    assert_eq!(count_replies(&lhp_addr, &frame), 1);
}
