//! Helpers shared by the integration tests: run the built `lhp` binary, build seed streams.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

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
