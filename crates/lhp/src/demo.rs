//! `lhp demo`: the whole story in one command, on loopback, with a temporary root.
//!
//! 1. A server starts in-process on `127.0.0.1:0` (blocking engine) with `seq` allowed.
//! 2. A 64 MiB file is uploaded over a raw socket with `TCP_NODELAY`: a `stat` and a `list`
//!    frame coalesced into one write, then the `put` head and the first 64 KiB of the body in
//!    writes of 1 to 7 octets, then the rest in 1 MiB writes.
//! 3. It is downloaded with `get` and its sha256 compared with the original.
//! 4. `seq 1 300000` runs remotely: about 2 MB of output, streamed back in `output` frames.
//! 5. `../../etc/passwd` is asked for, and written to: both refused with `bad_name`.

use std::fs;
use std::io::{self, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use lhp_blocking::FrameReader;
use lhp_codec::{hex_lower, Encoder, Frame, Header, Limits, Profile};
use sha2::{Digest, Sha256};

use crate::app;
use crate::client::{self, ClientError};
use crate::files::ServeOptions;
use crate::serve;

/// Size of the generated file.
pub const FILE_SIZE: usize = 64 << 20;

/// Octets of the body sent in tiny writes.
pub const TINY_PREFIX: usize = 64 << 10;

/// Runs the demo, printing its account to `out`. `Ok(true)` if every step checked out.
pub fn run<W: Write>(out: &mut W) -> io::Result<bool> {
    let started = Instant::now();
    let work = tempfile::tempdir()?;
    let root = work.path().join("root");
    fs::create_dir(&root)?;
    let seq = find_program("seq");
    let opts = ServeOptions {
        root: Some(root.clone()),
        allow_exec: seq.iter().map(|_| "seq".to_owned()).collect(),
        exec_timeout: Duration::from_secs(30),
        profile: Profile::Lhp1,
        ..ServeOptions::default()
    };
    let server = serve::bind("127.0.0.1:0", &opts, serve::default_config(&opts))?
        .spawn()
        .map_err(lhp_blocking::Error::into_io)?;
    let addr = server.local_addr().to_string();
    writeln!(
        out,
        "lhp demo: server on {addr} (blocking engine), root {}",
        root.display()
    )?;

    let mut ok = true;
    let data = generate(FILE_SIZE);
    let digest = hex_lower(&Sha256::digest(&data));
    let source = work.path().join("source.bin");
    fs::write(&source, &data)?;

    // 2. Upload through tiny and coalesced writes.
    let t = Instant::now();
    match upload_raw(&addr, &data, &digest) {
        Ok(writes) => ok &= step(out, true, &format!(
            "put demo.bin: {} MiB in {writes} writes (stat+list coalesced into one write; the first {} KiB in 1..7-octet writes), {}",
            FILE_SIZE >> 20, TINY_PREFIX >> 10, client::rate(FILE_SIZE as u64, t.elapsed())
        ))?,
        Err(e) => ok &= step(out, false, &format!("put demo.bin failed: {e}"))?,
    }
    let stored = fs::read(root.join("demo.bin")).map(|d| hex_lower(&Sha256::digest(&d)));
    ok &= step(
        out,
        stored.as_deref().ok() == Some(digest.as_str()),
        &format!(
            "stored file has the original sha256 {}…",
            digest.get(..16).unwrap_or_default()
        ),
    )?;

    // 3. Download and verify.
    let t = Instant::now();
    let copy = work.path().join("copy.bin");
    let got = client::connect(&addr, Profile::Lhp1).and_then(|mut c| {
        client::get(
            &mut c,
            "demo.bin",
            &copy,
            false,
            &indicatif::ProgressBar::hidden(),
        )
    });
    match got {
        Ok(r) => {
            ok &= step(
                out,
                r.sha256 == digest && r.size == FILE_SIZE as u64,
                &format!(
                    "get demo.bin: {} MiB, sha256 verified end to end, {}",
                    r.size >> 20,
                    client::rate(r.size, t.elapsed())
                ),
            )?
        }
        Err(e) => ok &= step(out, false, &format!("get demo.bin failed: {e}"))?,
    }

    // 4. Remote command with > 1 MiB of output.
    match seq {
        Some(_) => {
            let t = Instant::now();
            let expected: String = (1..=300_000).map(|i| format!("{i}\n")).collect();
            let mut stdout = Vec::new();
            let mut stderr = Vec::new();
            let argv = ["seq".to_owned(), "1".to_owned(), "300000".to_owned()];
            let res = client::connect(&addr, Profile::Lhp1)
                .and_then(|mut c| client::exec(&mut c, &argv, &mut stdout, &mut stderr));
            match res {
                Ok(r) => ok &= step(out, r.code == Some(0) && stdout == expected.as_bytes() && stderr.is_empty(), &format!(
                    "exec seq 1 300000: {} octets of stdout streamed back intact, exit code {:?}, {}",
                    stdout.len(), r.code, client::rate(stdout.len() as u64, t.elapsed())
                ))?,
                Err(e) => ok &= step(out, false, &format!("exec seq failed: {e}"))?,
            }
        }
        None => ok &= step(out, false, "exec: no `seq` program on PATH to run")?,
    }

    // 5. Path traversal.
    for (what, header) in [
        ("get ../../etc/passwd", app::get("../../etc/passwd", None)),
        (
            "put ../../etc/passwd",
            app::put(
                "../../etc/passwd",
                0,
                &hex_lower(&Sha256::digest(b"")),
                None,
            ),
        ),
    ] {
        let res =
            client::connect(&addr, Profile::Lhp1).and_then(|mut c| client::request(&mut c, header));
        match res {
            Err(ClientError::Server { code, message }) if code == "bad_name" => {
                step(
                    out,
                    true,
                    &format!("{what}: refused with bad_name ({message})"),
                )?;
            }
            other => {
                ok &= step(
                    out,
                    false,
                    &format!("{what}: expected bad_name, got {other:?}"),
                )?
            }
        }
    }
    let outside = entries(work.path())? == ["copy.bin", "root", "source.bin"];
    let inside = entries(&root)? == ["demo.bin"];
    ok &= step(
        out,
        outside && inside,
        "nothing but demo.bin was written, and nothing outside the root",
    )?;

    server.shutdown().map_err(lhp_blocking::Error::into_io)?;
    writeln!(
        out,
        "lhp demo: {} in {:.2} s",
        if ok {
            "every step checked out"
        } else {
            "FAILED"
        },
        started.elapsed().as_secs_f64()
    )?;
    Ok(ok)
}

fn entries(dir: &Path) -> io::Result<Vec<String>> {
    let mut v: Vec<String> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<io::Result<_>>()?;
    v.sort();
    Ok(v)
}

fn step<W: Write>(out: &mut W, ok: bool, text: &str) -> io::Result<bool> {
    writeln!(out, "  [{}] {text}", if ok { " ok " } else { "FAIL" })?;
    Ok(ok)
}

/// Deterministic pseudo-random octets (xorshift64*).
pub fn generate(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        let take = (len - v.len()).min(8);
        v.extend_from_slice(r.get(..take).unwrap_or_default());
    }
    v
}

/// Finds `name` on `PATH`.
pub fn find_program(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| is_executable(p))
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The raw upload: returns how many writes it took.
fn upload_raw(addr: &str, data: &[u8], digest: &str) -> Result<u64, ClientError> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut w = stream.try_clone()?;
    let mut reader = FrameReader::with(stream, Profile::Lhp1, Limits::default());
    let enc = Encoder::new();
    let mut writes = 0u64;

    // Two requests in one write: the server must find both frames in one read.
    let mut coalesced = BytesMut::new();
    enc.encode(
        &Frame::new(app::stat("demo.bin"), Default::default()),
        &mut coalesced,
    )
    .map_err(lhp_blocking::Error::from)?;
    enc.encode(&Frame::new(app::list(), Default::default()), &mut coalesced)
        .map_err(lhp_blocking::Error::from)?;
    w.write_all(&coalesced)?;
    writes += 1;

    // The put head and the first 64 KiB of body in writes of 1..7 octets, then 1 MiB writes.
    let header: Header = app::put("demo.bin", data.len() as u64, digest, None);
    let mut head = BytesMut::new();
    enc.encode_head(&header, data.len() as u64, &mut head)
        .map_err(lhp_blocking::Error::from)?;
    let mut wire = head.to_vec();
    let tiny_end = TINY_PREFIX.min(data.len());
    wire.extend_from_slice(data.get(..tiny_end).unwrap_or_default());
    let mut pos = 0;
    let mut size = 1;
    while pos < wire.len() {
        let end = (pos + size).min(wire.len());
        w.write_all(wire.get(pos..end).unwrap_or_default())?;
        writes += 1;
        pos = end;
        size = size % 7 + 1;
    }
    for chunk in data.get(tiny_end..).unwrap_or_default().chunks(1 << 20) {
        w.write_all(chunk)?;
        writes += 1;
    }

    let stat = reader.read_frame()?.ok_or(lhp_blocking::Error::Closed)?;
    let listing = reader.read_frame()?.ok_or(lhp_blocking::Error::Closed)?;
    let put = reader.read_frame()?.ok_or(lhp_blocking::Error::Closed)?;
    for (want, f) in [(app::OK, &stat), (app::LISTING, &listing), (app::OK, &put)] {
        if f.header.kind() != Some(want) {
            return Err(if f.header.kind() == Some(app::ERROR) {
                client::server_error(&f.header)
            } else {
                ClientError::Unexpected(f.header.to_string())
            });
        }
    }
    if app::str_member(&put.header, "file_sha256") != Some(digest) {
        return Err(ClientError::Unexpected(format!("put reply {}", put.header)));
    }
    Ok(writes)
}
