//! Opt-in: a 4 GiB `put` and `get` through `lhp serve` in constant memory. Needs about
//! 12 GiB of free space in the temp directory (source, stored copy, download), so it is
//! ignored by default; run it with
//! `cargo test --release -p lhp --test big_transfer -- --ignored`.

mod common;

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

#[test]
#[ignore = "4 GiB through lhp serve, needs ~12 GiB free in the temp directory: \
            cargo test --release -p lhp --test big_transfer -- --ignored"]
fn four_gib_transfer_in_constant_memory() {
    const SIZE: u64 = 4 << 30;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    let src = dir.path().join("big.bin");
    {
        let mut f = std::io::BufWriter::new(File::create(&src).unwrap());
        let block: Vec<u8> = (0..1u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for i in 0..(SIZE >> 20) {
            f.write_all(&block).unwrap();
            f.write_all(&i.to_le_bytes()).unwrap();
        }
    }
    let mut server = common::lhp()
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--root",
            root.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid = server.id();
    // Kill the server even if an assertion fails.
    let _guard = KillOnDrop(server);
    let addr = line.trim().trim_start_matches("listening on ").to_owned();
    let put = common::lhp()
        .args(["put", "--addr", &addr, src.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let out = dir.path().join("back.bin");
    let get = common::lhp()
        .args([
            "get",
            "--addr",
            &addr,
            "big.bin",
            "-o",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        get.status.success(),
        "{}",
        String::from_utf8_lossy(&get.stderr)
    );
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    eprintln!(
        "put: {}get: {}server peak RSS {hwm_kib} KiB",
        String::from_utf8_lossy(&put.stdout),
        String::from_utf8_lossy(&get.stdout)
    );
    assert_eq!(fs::metadata(&out).unwrap().len(), SIZE + (SIZE >> 20) * 8);
    assert!(
        hwm_kib < 64 * 1024,
        "server peak RSS {hwm_kib} KiB for a 4 GiB transfer"
    );
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
