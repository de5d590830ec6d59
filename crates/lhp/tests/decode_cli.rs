//! `lhp decode` and `lhp encode`, run as the built binary.

mod common;

use common::{json_lines, lhp, py_dumps, run, seed_frame, sha256_hex, Py};
use md5::{Digest, Md5};

#[test]
fn encode_then_decode_round_trips_with_digest() {
    let dir = tempfile::tempdir().unwrap();
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let path = dir.path().join("body.bin");
    std::fs::write(&path, &body).unwrap();
    let out = lhp()
        .args([
            "encode",
            "--header",
            r#"{"kind":"put","name":"\u6fb3.bin"}"#,
            "--sha256",
            "--body",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut wire = out.stdout;
    // A second frame with no body, encoded from stdin's empty body.
    let second = run(
        &["encode", "--header", r#"{"kind":"list"}"#, "--body", "-"],
        b"",
    );
    assert!(second.status.success());
    let second_offset = wire.len();
    wire.extend_from_slice(&second.stdout);

    let out = run(&["decode"], &wire);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["offset"], 0);
    assert_eq!(lines[0]["header"]["name"], "澳.bin");
    assert_eq!(lines[0]["header"]["sha256"], sha256_hex(&body));
    assert_eq!(lines[0]["body_len"], body.len());
    assert_eq!(lines[0]["body_sha256"], sha256_hex(&body));
    assert_eq!(lines[1]["offset"], second_offset);
    assert_eq!(lines[1]["header"], serde_json::json!({"kind": "list"}));
    assert_eq!(lines[1]["body_sha256"], sha256_hex(b""));
}

#[test]
fn decodes_the_seed_upload_client_stream() {
    // Seed 000: json.dumps({'file_name': ..., 'file_size': n}), struct.pack('i'), then the file.
    let body = b"line one\nline two\n\xff\x00binary".repeat(1000);
    let header = py_dumps(&[
        ("file_name", Py::Str("澳门最大线上赌场开业啦.mp4")),
        ("file_size", Py::Int(body.len() as i64)),
    ]);
    assert!(header.contains("\\u6fb3"), "{header}");
    let wire = seed_frame(&header, &body);
    let out = run(&["decode", "--profile", "seed-compat"], &wire);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(
        lines[0]["header"]["file_name"],
        "澳门最大线上赌场开业啦.mp4"
    );
    assert_eq!(lines[0]["body_len"], body.len());
    assert_eq!(lines[0]["body_sha256"], sha256_hex(&body));
    // The same stream is not LHP/1: its little-endian prefix is a huge big-endian length.
    let out = run(&["decode"], &wire);
    assert_eq!(out.status.code(), Some(1));
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["error"], "header_len_too_large");
    assert_eq!(err["offset"], 0);
}

#[test]
fn decodes_the_seed_remote_command_reply() {
    // Seed 002: {"file_name": "a.txt", "total_size": n, "md5": "hih1jk5jk151jk51"}, then
    // stdout and stderr bytes back to back.
    let output = "total 0\n文件\n".repeat(500);
    let header = py_dumps(&[
        ("file_name", Py::Str("a.txt")),
        ("total_size", Py::Int(output.len() as i64)),
        ("md5", Py::Str("hih1jk5jk151jk51")),
    ]);
    let out = run(
        &["decode", "--profile", "seed-compat"],
        &seed_frame(&header, output.as_bytes()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines[0]["header"]["md5"], "hih1jk5jk151jk51");
    assert_eq!(lines[0]["body_sha256"], sha256_hex(output.as_bytes()));
}

#[test]
fn decodes_the_seed_ftp_download_with_skip_bytes() {
    // Seed 002's FTP get: a bare struct.pack('i', file size), then one frame per line, each
    // with its own md5. A wrong md5 on the last line must be caught.
    let lines_in: Vec<Vec<u8>> = (0..50)
        .map(|i| format!("line {i} 澳门\n").into_bytes())
        .collect();
    let total: usize = lines_in.iter().map(Vec::len).sum();
    let mut wire = (total as i32).to_le_bytes().to_vec();
    let mut offsets = Vec::new();
    for line in &lines_in {
        offsets.push(wire.len());
        let md5 = hex::encode(Md5::digest(line));
        let header = py_dumps(&[
            ("file_name", Py::Str("澳门.txt")),
            ("file_size", Py::Int(line.len() as i64)),
            ("md5", Py::Str(&md5)),
        ]);
        wire.extend_from_slice(&seed_frame(&header, line));
    }
    let out = run(
        &["decode", "--profile", "seed-compat", "--skip-bytes", "4"],
        &wire,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = json_lines(&out);
    assert_eq!(got.len(), 50);
    for ((g, line), off) in got.iter().zip(&lines_in).zip(&offsets) {
        assert_eq!(g["offset"], *off);
        assert_eq!(g["body_sha256"], sha256_hex(line));
        assert_eq!(g["header"]["file_name"], "澳门.txt");
    }
    // Corrupt the last line's body: digest_mismatch at its first body octet, 49 frames before.
    let last = wire.len() - 1;
    wire[last] ^= 1;
    let out = run(
        &["decode", "--profile", "seed-compat", "--skip-bytes", "4"],
        &wire,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_lines(&out).len(), 49);
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["error"], "digest_mismatch");
    let body_start = wire.len() - lines_in[49].len();
    assert_eq!(err["offset"], body_start);
}

#[test]
fn truncated_stream_prints_frames_then_unexpected_eof() {
    let a = run(
        &["encode", "--header", r#"{"kind":"a"}"#, "--body", "-"],
        b"0123456789",
    );
    let b = run(
        &["encode", "--header", r#"{"kind":"b"}"#, "--body", "-"],
        b"abcdef",
    );
    let mut wire = a.stdout.clone();
    wire.extend_from_slice(&b.stdout);
    let cut = wire.len() - 4;
    let out = run(&["decode", "-"], &wire[..cut]);
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["header"]["kind"], "a");
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["error"], "unexpected_eof");
    assert_eq!(err["offset"], cut);
    assert_eq!(err["missing"], 4);
    // Cut inside the second prefix: still an error, 2 octets missing.
    let out = run(&["decode"], &wire[..a.stdout.len() + 2]);
    assert_eq!(out.status.code(), Some(1));
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(
        (err["error"].as_str(), err["missing"].as_u64()),
        (Some("unexpected_eof"), Some(2))
    );
    // Empty input is a clean (empty) stream.
    let out = run(&["decode"], b"");
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
}

#[test]
fn http_and_limits_errors_name_what_they_saw() {
    let out = run(&["decode"], b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(out.status.code(), Some(1));
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["error"], "header_len_too_large");
    assert!(err["message"].as_str().unwrap().contains("HTTP"), "{err}");

    let frame = run(&["encode", "--header", "{}", "--body", "-"], &[7u8; 100]).stdout;
    let out = run(&["decode", "--max-body", "99"], &frame);
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(
        (err["error"].as_str(), err["offset"].as_u64()),
        (Some("body_too_large"), Some(4))
    );
    let out = run(&["decode", "--max-header", "10"], &frame);
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["error"], "header_len_too_large");
}

#[test]
fn usage_errors_exit_2() {
    let out = run(&["encode", "--header", r#"{"a":1,"a":2}"#], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("duplicate_member"));
    let out = run(&["decode", "/nonexistent/lhp-input"], b"");
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["decode", "--skip-bytes", "10"], b"abc");
    assert_eq!(out.status.code(), Some(2));
    let help = lhp().args(["decode", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("--skip-bytes"));
}
