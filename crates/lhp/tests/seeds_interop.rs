//! The seeds' own Python programs (conformance/seeds/seed_*.py: shared/seeds 000 and 002,
//! adapted only to loopback, argv instead of input(), bounded loops and an allow-list instead
//! of `shell=True`) against `lhp`, both directions:
//!
//! - seed 000's upload client → `lhp serve --profile seed-compat`;
//! - `lhp put --profile seed-compat` → seed 000's upload server;
//! - seed 002's remote-command server → `lhp exec --profile seed-compat` (and the library's
//!   `client::exec`, several commands on one connection);
//! - seed 002's FTP server → `lhp get --profile seed-compat`.
//!
//! Each test prints why and returns if `python3` (or, for exec, `seq`) is missing.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::lhp;
use lhp::client;
use lhp_codec::Profile;

/// The seed 000 file name, as in the tutorial.
const SEED_NAME: &str = "澳门最大线上赌场开业啦.mp4";

/// A child process killed (if still running) when dropped.
struct Proc {
    child: Child,
    addr: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Waits (at most 20 s) for the program to exit by itself.
    fn wait_exit(&mut self, what: &str) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "{what} did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conformance/seeds")
}

/// `python3` with the seeds' directory resolved, or `None` (and a loud skip) if it is missing.
fn python(test: &str) -> Option<Command> {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP {test}: python3 is not installed; the seeds' programs cannot run");
        return None;
    }
    let mut c = Command::new("python3");
    // The seeds print and open Chinese names: UTF-8 whatever the locale.
    c.env("PYTHONUTF8", "1").env("PYTHONIOENCODING", "utf-8");
    Some(c)
}

fn seed(py: &mut Command, script: &str) -> PathBuf {
    let path = seeds_dir().join(script);
    assert!(path.exists(), "{} is missing", path.display());
    py.arg(&path);
    path
}

/// Spawns a program that prints "listening on HOST:PORT" first.
fn listening(mut cmd: Command) -> Proc {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    // Keep draining what the seed prints, so it never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line {line:?}"))
        .to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    Proc { child, addr }
}

/// A multi-line file of a few hundred KiB: UTF-8 lines of 7 to ~370 octets, some longer than
/// one recv(1024), and a last line without a newline.
fn movie() -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..2000u32 {
        v.extend_from_slice(format!("{i:05} {}\n", "粘包".repeat((i % 61) as usize)).as_bytes());
        if i % 500 == 7 {
            v.extend_from_slice(&[b'x'; 3000]);
            v.push(b'\n');
        }
    }
    v.extend_from_slice(b"no newline at the end");
    v
}

fn lhp_client(sub: &str, addr: &str, rest: &[&str]) -> Output {
    lhp()
        .arg(sub)
        .args(["--profile", "seed-compat", "--addr", addr])
        .args(rest)
        .output()
        .unwrap()
}

fn visible(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

fn seq(from: u32, to: u32) -> Vec<u8> {
    (from..=to)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect()
}

fn have_seq(test: &str) -> bool {
    let ok = Command::new("seq")
        .arg("1")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP {test}: seq is not installed; the seed server's allow-list runs it");
    }
    ok
}

#[test]
fn seed_000_upload_client_to_lhp_serve() {
    let Some(mut py) = python("seed_000_upload_client_to_lhp_serve") else {
        return;
    };
    seed(&mut py, "seed_000_upload_client.py");
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("root");
    fs::create_dir(&root).unwrap();
    let body = movie();
    let src = outer.path().join("local.mp4");
    fs::write(&src, &body).unwrap();

    let mut serve = lhp();
    serve
        .arg("serve")
        .args([
            "--addr",
            "127.0.0.1:0",
            "--profile",
            "seed-compat",
            "--root",
        ])
        .arg(&root);
    let s = listening(serve);

    for name in [SEED_NAME, "../evil.mp4"] {
        let st = Command::new(py.get_program())
            .envs(py.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .args(py.get_args())
            .arg(&s.addr)
            .arg(&src)
            .arg(name)
            .status()
            .unwrap();
        assert!(st.success(), "seed client for {name}: {st:?}");
    }
    let stored = root.join(SEED_NAME);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stored.exists() {
        assert!(Instant::now() < deadline, "the seed upload was not stored");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(fs::read(&stored).unwrap(), body, "stored octets differ");
    // The traversal got an error frame (which the seed client never reads) and no file.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(visible(&root), vec![SEED_NAME.to_owned()]);
    assert_eq!(visible(outer.path()), vec!["local.mp4", "root"]);
    assert!(!outer.path().join("evil.mp4").exists());
}

#[test]
fn lhp_put_to_seed_000_upload_server() {
    let Some(mut py) = python("lhp_put_to_seed_000_upload_server") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let into = dir.path().join("server");
    fs::create_dir(&into).unwrap();
    let body = movie();
    let src = dir.path().join("local.mp4");
    fs::write(&src, &body).unwrap();
    seed(&mut py, "seed_000_upload_server.py");
    py.arg("127.0.0.1:0").arg(&into).arg("1");
    let mut s = listening(py);

    let out = lhp()
        .args([
            "put",
            "--profile",
            "seed-compat",
            "--addr",
            &s.addr,
            "--as",
            SEED_NAME,
        ])
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "lhp put: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = s.wait_exit("the seed upload server");
    assert!(st.success(), "seed server: {st:?}");
    assert_eq!(visible(&into), vec![SEED_NAME.to_owned()]);
    assert_eq!(fs::read(into.join(SEED_NAME)).unwrap(), body);
}

#[test]
fn lhp_exec_reads_seed_002_command_replies() {
    let test = "lhp_exec_reads_seed_002_command_replies";
    let Some(mut py) = python(test) else {
        return;
    };
    if !have_seq(test) {
        return;
    }
    // The seed's framed server answers one command per connection: three connections.
    seed(&mut py, "seed_002_cmd_server.py");
    py.arg("127.0.0.1:0").arg("3");
    let mut s = listening(py);
    let cases: [(&[&str], Vec<u8>); 3] = [
        (&["seq", "1", "2000"], seq(1, 2000)),
        (
            &["echo", "粘包", "sticky"],
            "粘包 sticky\n".as_bytes().to_vec(),
        ),
        (&["rm", "-rf", "/"], b"not allowed: 'rm -rf /'\n".to_vec()),
    ];
    for (argv, expected) in &cases {
        let mut args = vec!["--"];
        args.extend_from_slice(argv);
        let out = lhp_client("exec", &s.addr, &args);
        assert!(
            out.status.success(),
            "lhp exec {argv:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, *expected, "lhp exec {argv:?}: output differs");
    }
    assert!(seq(1, 2000).len() > 1024, "the seed's sticky-packet case");
    assert!(s.wait_exit("the seed command server").success());
}

#[test]
fn several_seed_002_replies_over_one_connection() {
    let test = "several_seed_002_replies_over_one_connection";
    let Some(mut py) = python(test) else {
        return;
    };
    if !have_seq(test) {
        return;
    }
    seed(&mut py, "seed_002_cmd_server.py");
    py.arg("127.0.0.1:0").arg("1").arg("--loop");
    let mut s = listening(py);
    let mut c = client::connect(&s.addr, Profile::SeedCompat).unwrap();
    // Each output exceeds one recv(1024); a reader that lost a frame boundary would show the
    // previous command's tail in the next output.
    for (from, to) in [(1, 2000), (7, 900), (1, 2000), (300, 1200)] {
        let argv: Vec<String> = ["seq".to_owned(), from.to_string(), to.to_string()].into();
        let mut out = Vec::new();
        let mut err = Vec::new();
        let r = client::exec(&mut c, &argv, &mut out, &mut err).unwrap();
        let expected = seq(from, to);
        assert!(expected.len() > 1024);
        assert_eq!(out, expected, "seq {from} {to}");
        assert!(err.is_empty());
        assert_eq!(r.received, (expected.len() as u64, 0));
        assert_eq!(r.code, Some(0));
    }
    drop(c);
    assert!(s.wait_exit("the seed command server").success());
}

#[test]
fn lhp_get_from_seed_002_ftp_server() {
    let Some(mut py) = python("lhp_get_from_seed_002_ftp_server") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("server");
    fs::create_dir(&served).unwrap();
    // The seed sleeps 10 ms per line: 150 lines, a few of them longer than recv(1024).
    let mut body = Vec::new();
    for i in 0..150u32 {
        let reps = if i % 40 == 3 { 400 } else { (i % 13) as usize };
        body.extend_from_slice(format!("第{i}行 ftp {}\n", "粘包".repeat(reps)).as_bytes());
    }
    fs::write(served.join("notes.txt"), &body).unwrap();
    let mut missing = Command::new(py.get_program());
    missing
        .envs(py.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .args(py.get_args());
    seed(&mut py, "seed_002_ftp_server.py");
    py.arg("127.0.0.1:0").arg(&served);
    let mut s = listening(py);

    let out_path = dir.path().join("copy.txt");
    let out = lhp_client(
        "get",
        &s.addr,
        &["notes.txt", "-o", out_path.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "lhp get: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(&out_path).unwrap(), body);
    assert_eq!(visible(dir.path()), vec!["copy.txt", "server"]);
    assert!(s.wait_exit("the seed FTP server").success());

    // A name the seed server does not have: it closes without a size; nothing is written.
    seed(&mut missing, "seed_002_ftp_server.py");
    missing.arg("127.0.0.1:0").arg(&served);
    let mut s = listening(missing);
    let absent = dir.path().join("absent.txt");
    let out = lhp_client(
        "get",
        &s.addr,
        &["nope.txt", "-o", absent.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "lhp get of a missing name");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(visible(dir.path()), vec!["copy.txt", "server"]);
    assert!(!dir.path().join(".absent.txt.lhp-partial").exists());
    assert!(s.wait_exit("the seed FTP server").success());
}
