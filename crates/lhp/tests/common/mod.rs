//! Helpers shared by the integration tests: run the built `lhp` binary, build seed streams.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Output, Stdio};

use sha2::{Digest, Sha256};

/// The built `lhp` binary.
pub fn lhp() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lhp"))
}

/// Runs `lhp ARGS` with `stdin` as its input; returns its output.
pub fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = lhp()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lhp");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // The child may stop reading at an error: a broken pipe here is expected.
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait lhp");
    writer.join().expect("writer thread");
    out
}

/// stdout split into JSON lines.
pub fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(out.stdout.clone())
        .expect("utf-8 stdout")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Hex sha256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A JSON value as Python's `json.dumps` writes it by default: `", "` and `": "`
/// separators, non-ASCII as lowercase `\uXXXX` escapes (surrogate pairs beyond the BMP).
pub enum Py<'a> {
    /// A string.
    Str(&'a str),
    /// An integer.
    Int(i64),
    /// `None`.
    Null,
}

/// `json.dumps(dict(pairs))`.
pub fn py_dumps(pairs: &[(&str, Py<'_>)]) -> String {
    let items: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Py::Str(s) => py_str(s),
                Py::Int(n) => n.to_string(),
                Py::Null => "null".into(),
            };
            format!("{}: {v}", py_str(k))
        })
        .collect();
    format!("{{{}}}", items.join(", "))
}

fn py_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{:04x}", u));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One seed-format frame: `struct.pack('i', len(header))` (little-endian), header, body.
pub fn seed_frame(header: &str, body: &[u8]) -> Vec<u8> {
    let mut v = (header.len() as i32).to_le_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(body);
    v
}

/// A running `lhp serve`; killed when dropped.
pub struct Serve {
    pub child: Child,
    /// The address from its `listening on ADDR` line.
    pub addr: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// Starts `cmd` (an `lhp serve ... --addr 127.0.0.1:0`, possibly behind a wrapper; its
    /// stderr is discarded unless the caller set it) and reads its address from stdout.
    pub fn start(mut cmd: Command) -> Serve {
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn lhp serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the first line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line {line:?}"))
            .to_owned();
        Serve { child, addr }
    }

    /// Stops the server (SIGKILL: its events were written as they happened) and returns its
    /// stderr, which the caller's command must have piped.
    #[allow(dead_code)]
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut err = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            stderr
                .read_to_string(&mut err)
                .expect("the server's stderr");
        }
        err
    }
}

/// `lhp serve --engine ENGINE --addr 127.0.0.1:0`, stderr discarded: add flags and
/// [`Serve::start`] it.
pub fn serve_cmd(engine: &str) -> Command {
    let mut cmd = lhp();
    cmd.args(["serve", "--engine", engine, "--addr", "127.0.0.1:0"])
        .stderr(Stdio::null());
    cmd
}

/// Runs each scenario `fn NAME(engine: &str)` against both engines, as the tests
/// `tokio_engine::NAME` and `blocking_engine::NAME`.
#[allow(unused_macros)]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod tokio_engine {
            $(#[test]
            fn $name() {
                super::$name("tokio")
            })*
        }
        mod blocking_engine {
            $(#[test]
            fn $name() {
                super::$name("blocking")
            })*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_engines;
