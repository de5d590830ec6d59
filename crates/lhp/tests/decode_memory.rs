//! `lhp decode` streams: a 512 MiB body decodes with a resident set of a few MiB.
//! (Its own test binary, so no other child process pollutes the RUSAGE_CHILDREN maximum.)

mod common;

use std::io::Write;
use std::process::Stdio;

use sha2::{Digest, Sha256};

#[test]
fn huge_body_decodes_in_constant_memory() {
    const BODY: u64 = 512 << 20;
    let header = format!(r#"{{"kind":"put","body_len":{BODY}}}"#);
    let mut child = common::lhp()
        .arg("decode")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let mut hasher = Sha256::new();
        stdin
            .write_all(&(header.len() as u32).to_be_bytes())
            .unwrap();
        stdin.write_all(header.as_bytes()).unwrap();
        let block: Vec<u8> = (0..1u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        for _ in 0..(BODY >> 20) {
            stdin.write_all(&block).unwrap();
            hasher.update(&block);
        }
        hex::encode(hasher.finalize())
    });
    let out = child.wait_with_output().unwrap();
    let digest = writer.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["body_len"], BODY);
    assert_eq!(line["body_sha256"], digest.as_str());

    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a rusage into the pointer it is given.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    assert_eq!(rc, 0);
    // SAFETY: initialised by the successful call above.
    let max_rss_kib = unsafe { usage.assume_init() }.ru_maxrss;
    eprintln!(
        "lhp decode of a {} MiB body: max RSS {} KiB",
        BODY >> 20,
        max_rss_kib
    );
    assert!(
        max_rss_kib < 32 * 1024,
        "max RSS {max_rss_kib} KiB for a streamed body"
    );
}
