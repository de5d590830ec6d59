//! `lhp udp serve`, `lhp udp send` and `lhp chat` over loopback (`spec/lhp-udp.md`): the `lhp`
//! equivalents of the seeds' UDP programs (upper-casing server and client, time server, QQ
//! chat), on both engines.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::lhp;

/// A child process killed (if still running) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `lhp udp serve` on an ephemeral port; returns it and its address.
fn serve(engine: &str, extra: &[&str]) -> (Proc, String) {
    let mut child = lhp()
        .args(["udp", "serve", "--addr", "127.0.0.1:0", "--engine", engine])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line {line:?}"))
        .to_owned();
    (Proc(child), addr)
}

fn send(addr: &str, kind: &str, text: &str, extra: &[&str]) -> std::process::Output {
    lhp()
        .args(["udp", "send", "--addr", addr, "--kind", kind])
        .args(extra)
        .arg("--")
        .arg(text)
        .output()
        .unwrap()
}

#[test]
fn udp_serve_answers_echo_upper_and_time_on_both_engines() {
    for engine in ["blocking", "tokio"] {
        let (_server, addr) = serve(engine, &[]);
        let out = send(&addr, "upper", "hello server baby! 你好", &[]);
        assert!(out.status.success(), "{engine}: {out:?}");
        assert_eq!(
            out.stdout,
            "HELLO SERVER BABY! 你好\n".as_bytes(),
            "{engine}"
        );
        let out = send(&addr, "echo", "hello", &[]);
        assert_eq!(out.stdout, b"hello\n", "{engine}");
        // The seed's time server: the client's format, and the seed's default when empty.
        let out = send(&addr, "time", "%Y|%m|%d", &[]);
        let text = String::from_utf8(out.stdout).unwrap();
        let parts: Vec<&str> = text.trim().split('|').collect();
        assert_eq!(parts.len(), 3, "{engine}: {text}");
        assert!(parts[0].parse::<u32>().unwrap() >= 2024, "{text}");
        let out = send(&addr, "time", "", &[]);
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.trim().len(), "2026-12-01 22:32:18".len(), "{text}");
        // A conversion the safe formatter does not know: refused, exit 1.
        let out = send(&addr, "time", "%n", &[]);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("bad_request"));
        // A 2,000-octet message is delivered whole (the seeds cut it to 1024).
        let long = "a".repeat(2000);
        let out = send(&addr, "upper", &long, &[]);
        assert_eq!(out.stdout, format!("{}\n", "A".repeat(2000)).as_bytes());
        // A format that expands past 3× the request: refused, not amplified (§6).
        // (%s: 10 digits for 2 octets; 128 of them is the longest format accepted.)
        let out = send(&addr, "time", &"%s".repeat(128), &[]);
        assert_eq!(out.status.code(), Some(1), "{engine}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("reply_too_large"));
    }
}

#[test]
fn udp_send_reports_nobody_listening() {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap().to_string();
    drop(sock);
    let out = send(&addr, "echo", "x", &["--timeout", "100", "--tries", "2"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nothing is listening") || err.contains("no reply after 2"),
        "{err}"
    );
}

/// Starts `lhp chat`; its stdout lines arrive on the returned channel.
fn chat(listen: &str, peer: &str, name: &str) -> (Proc, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lhp"))
        .args(["chat", "--listen", listen, "--peer", peer, "--name", name])
        .args(["--timeout", "200"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out: ChildStdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (Proc(child), rx)
}

fn free_port() -> String {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().to_string()
}

#[test]
fn chat_between_two_terminals() {
    let (a, b) = (free_port(), free_port());
    let (mut alice, alice_out) = chat(&a, &b, "alice");
    let (mut bob, bob_out) = chat(&b, &a, "bob");
    std::thread::sleep(Duration::from_millis(300));
    let say = |p: &mut Proc, line: &str| {
        let stdin = p.0.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    };
    say(&mut alice, "来自客户端1的消息: hello bob");
    let got = bob_out.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(got, "[alice] 来自客户端1的消息: hello bob");
    say(&mut bob, "hi alice");
    let got = alice_out.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(got, "[bob] hi alice");
    // End of input: both exit 0 (every message was acknowledged).
    for p in [&mut alice, &mut bob] {
        drop(p.0.stdin.take());
        let status = p.0.wait().unwrap();
        assert!(status.success(), "{status:?}");
    }
}

#[test]
fn chat_says_when_the_peer_is_not_there() {
    let (a, nobody) = (free_port(), free_port());
    let mut child = lhp()
        .args(["chat", "--listen", &a, "--peer", &nobody, "--name", "alice"])
        .args(["--timeout", "100"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"anyone?\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("the peer {nobody} is not there")),
        "{err}"
    );
}
