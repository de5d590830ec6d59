//! The digest trailer of `spec/lhp-app.md` §10.3/§10.5 on the wire, against `lhp serve` on
//! both engines: `put` and `get` with `"trailer":"file_sha256"` carry the whole file's sha256
//! as the body's last 32 octets; a wrong trailer stores nothing and keeps the connection.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{on_both_engines, serve_cmd, sha256_hex, Serve};
use sha2::{Digest, Sha256};

fn serve(engine: &str, root: &std::path::Path) -> Serve {
    let mut cmd = serve_cmd(engine);
    cmd.arg("--root").arg(root);
    Serve::start(cmd)
}

fn connect(s: &Serve) -> TcpStream {
    let tcp = TcpStream::connect(&s.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp
}

fn send(tcp: &mut TcpStream, header: &str, body: &[u8]) {
    let mut v = (header.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(body);
    tcp.write_all(&v).unwrap();
}

fn recv(tcp: &mut TcpStream) -> (serde_json::Value, Vec<u8>) {
    let mut len = [0u8; 4];
    tcp.read_exact(&mut len).unwrap();
    let mut h = vec![0u8; u32::from_be_bytes(len) as usize];
    tcp.read_exact(&mut h).unwrap();
    let h: serde_json::Value = serde_json::from_slice(&h).unwrap();
    let mut body = vec![0u8; h["body_len"].as_u64().unwrap_or(0) as usize];
    tcp.read_exact(&mut body).unwrap();
    (h, body)
}

fn with_trailer(file: &[u8], digest_of: &[u8]) -> Vec<u8> {
    let mut v = file.to_vec();
    v.extend_from_slice(&Sha256::digest(digest_of));
    v
}

on_both_engines!(
    put_with_a_wrong_trailer_stores_nothing,
    get_with_a_trailer_sends_the_digest_after_the_file,
    malformed_trailer_requests_are_bad_request,
);

fn put_with_a_wrong_trailer_stores_nothing(engine: &str) {
    put_with_a_trailer_stores_only_a_verified_file(engine, false);
}

/// A refused trailer upload, then (on the same connection) a broken one, then a resumed one.
/// Also proves that a connection goes on after a streamed request is refused (the drivers
/// once waited for a body end the handler had already taken).
#[test]
fn resumed_put_with_a_trailer_on_tokio() {
    put_with_a_trailer_stores_only_a_verified_file("tokio", true);
}

/// See [`resumed_put_with_a_trailer_on_tokio`].
#[test]
fn resumed_put_with_a_trailer_on_blocking() {
    put_with_a_trailer_stores_only_a_verified_file("blocking", true);
}

fn put_with_a_trailer_stores_only_a_verified_file(engine: &str, resume: bool) {
    let root = tempfile::tempdir().unwrap();
    let s = serve(engine, root.path());
    let file: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let mut tcp = connect(&s);

    // A wrong trailer: refused, nothing stored, no partial kept, the connection goes on.
    let body = with_trailer(&file, b"something else");
    send(
        &mut tcp,
        &format!(
            r#"{{"kind":"put","id":1,"name":"t.bin","trailer":"file_sha256","body_len":{}}}"#,
            body.len()
        ),
        &body,
    );
    let (h, _) = recv(&mut tcp);
    assert_eq!(h["code"], "file_digest_mismatch", "{h}");
    assert_eq!(h["id"], 1, "{h}");
    assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0);

    if !resume {
        return;
    }
    // A resumed upload with a trailer: the server holds 40,000 octets from a broken attempt.
    let half = 40_000;
    let body = with_trailer(&file[..half], &file);
    send(
        &mut tcp,
        &format!(
            r#"{{"kind":"put","id":2,"name":"t.bin","trailer":"file_sha256","body_len":{}}}"#,
            file.len() + 32
        ),
        &body[..half],
    );
    drop(tcp);
    let mut tcp = connect(&s);
    let mut held = 0;
    for _ in 0..100 {
        send(&mut tcp, r#"{"kind":"stat","name":"t.bin"}"#, &[]);
        held = recv(&mut tcp).0["partial"].as_u64().unwrap();
        if held == half as u64 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(held, half as u64, "the broken upload's octets are held");
    let body = with_trailer(&file[half..], &file);
    let mut resumed = None;
    for _ in 0..50 {
        send(
            &mut tcp,
            &format!(
                r#"{{"kind":"put","id":3,"name":"t.bin","offset":{half},"trailer":"file_sha256","body_len":{}}}"#,
                body.len()
            ),
            &body,
        );
        let (h, _) = recv(&mut tcp);
        // The broken connection's handler may hold the name for a moment.
        if h["code"] != "in_use" {
            resumed = Some(h);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let h = resumed.expect("the name stayed in use");
    assert_eq!(h["kind"], "ok", "{h}");
    assert_eq!(h["size"], file.len(), "{h}");
    assert_eq!(h["file_sha256"], sha256_hex(&file), "{h}");
    assert_eq!(fs::read(root.path().join("t.bin")).unwrap(), file);
    assert_eq!(fs::read_dir(root.path()).unwrap().count(), 1);
}

fn get_with_a_trailer_sends_the_digest_after_the_file(engine: &str) {
    let root = tempfile::tempdir().unwrap();
    let file: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
    fs::write(root.path().join("g.bin"), &file).unwrap();
    let s = serve(engine, root.path());
    let mut tcp = connect(&s);

    send(
        &mut tcp,
        r#"{"kind":"get","id":7,"name":"g.bin","trailer":"file_sha256"}"#,
        &[],
    );
    let (h, body) = recv(&mut tcp);
    assert_eq!(h["kind"], "file", "{h}");
    assert_eq!(h["id"], 7, "{h}");
    assert_eq!(h["trailer"], "file_sha256", "{h}");
    assert_eq!(h["size"], file.len(), "{h}");
    assert!(
        h.get("file_sha256").is_none() && h.get("sha256").is_none(),
        "{h}"
    );
    assert_eq!(body, with_trailer(&file, &file));

    send(
        &mut tcp,
        r#"{"kind":"get","name":"g.bin","offset":69990,"trailer":"file_sha256"}"#,
        &[],
    );
    let (h, body) = recv(&mut tcp);
    assert_eq!(h["offset"], 69_990, "{h}");
    assert_eq!(body, with_trailer(&file[69_990..], &file));

    // Without the member: the digests in the header, as before.
    send(&mut tcp, r#"{"kind":"get","name":"g.bin"}"#, &[]);
    let (h, body) = recv(&mut tcp);
    assert_eq!(h["file_sha256"], sha256_hex(&file), "{h}");
    assert_eq!(h["sha256"], sha256_hex(&file), "{h}");
    assert_eq!(body, file);
}

fn malformed_trailer_requests_are_bad_request(engine: &str) {
    let root = tempfile::tempdir().unwrap();
    fs::write(root.path().join("g.bin"), b"abc").unwrap();
    let s = serve(engine, root.path());
    let mut tcp = connect(&s);
    let d = sha256_hex(b"abc");
    for (header, body) in [
        (
            r#"{"kind":"put","name":"a","trailer":"file_sha256","body_len":31}"#.to_owned(),
            vec![0u8; 31],
        ),
        (
            format!(
                r#"{{"kind":"put","name":"a","trailer":"file_sha256","file_sha256":"{d}","body_len":35}}"#
            ),
            with_trailer(b"abc", b"abc"),
        ),
        (
            r#"{"kind":"put","name":"a","trailer":"md5","body_len":35}"#.to_owned(),
            with_trailer(b"abc", b"abc"),
        ),
        (
            r#"{"kind":"get","name":"g.bin","trailer":true}"#.to_owned(),
            Vec::new(),
        ),
    ] {
        send(&mut tcp, &header, &body);
        let (h, _) = recv(&mut tcp);
        assert_eq!(h["code"], "bad_request", "{header}: {h}");
    }
    assert_eq!(fs::read_dir(root.path()).unwrap().count(), 1);
}
