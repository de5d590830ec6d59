//! `lhp-bench --transfer`: `lhp put` / `lhp get` of one large file to `lhp serve`, side by
//! side with the Python seed-style pair with sha256 (`bench/transfer_baseline.py`) and a raw
//! copy with no hashing (the ceiling), in interleaved rounds.
//!
//! Every subject does the same durable work: read the source from the page cache, move it
//! over loopback TCP, write it to a hidden file, `fsync` it, and put it in place. The
//! clients are separate processes, timed from spawn to exit (what a user waits for); the raw
//! ceiling runs in-process (a sender thread and a receiver thread: read, send, receive,
//! write, `fsync`, no digest, no framing).
//!
//! ```text
//!   round r:  python put | lhp put (tokio) | lhp put (blocking) | raw copy
//!             python get | lhp get (tokio) | lhp get (blocking)
//!             (round r starts at the r-th subject and wraps around; `sync` before each)
//! ```
//!
//! The `lhp` binary is found next to this one (`cargo build --release -p lhp -p lhp-bench`)
//! or through `LHP_BIN`. With `LHP_OLD_BIN` set to another build of `lhp` (say, before a
//! change), its `put` and `get` against its own `lhp serve` join the rounds as two more rows.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Instant;

use crate::stats::Stat;

/// The subjects, in table order (the last two only with `LHP_OLD_BIN`).
const SUBJECTS: [&str; 9] = [
    "python put (seed style, sha256)",
    "lhp put -> lhp serve (tokio)",
    "lhp put -> lhp serve --engine blocking",
    "raw copy, no hashing (ceiling)",
    "python get (seed style, sha256)",
    "lhp get <- lhp serve (tokio)",
    "lhp get <- lhp serve --engine blocking",
    "LHP_OLD_BIN put -> its serve (tokio)",
    "LHP_OLD_BIN get <- its serve (tokio)",
];

/// Runs the transfer benchmark: `runs` interleaved rounds with a file of `size` octets.
pub fn run(runs: usize, size: u64) -> Result<(), String> {
    let lhp = lhp_binary()?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/transfer_baseline.py");
    let work = std::env::temp_dir().join(format!("lhp-bench-transfer-{}", std::process::id()));
    let result = run_in(&work, &lhp, &script, runs, size);
    let _ = fs::remove_dir_all(&work);
    result
}

fn run_in(work: &Path, lhp: &Path, script: &Path, runs: usize, size: u64) -> Result<(), String> {
    let err = |what: &str| {
        let what = what.to_owned();
        move |e: io::Error| format!("{what}: {e}")
    };
    for d in ["src", "lhp-root", "blk-root", "py-root", "old-root", "out"] {
        fs::create_dir_all(work.join(d)).map_err(err(d))?;
    }
    let source = work.join("src/file.bin");
    write_source(&source, size).map_err(err("writing the source file"))?;
    // The file every `get` downloads: the same octets, linked into each root.
    for root in ["lhp-root", "blk-root", "py-root", "old-root"] {
        fs::hard_link(&source, work.join(root).join("g.bin")).map_err(err("linking g.bin"))?;
    }
    let tokio_srv = Server::start(
        Command::new(lhp)
            .args(["serve", "--addr", "127.0.0.1:0", "--root"])
            .arg(work.join("lhp-root")),
        |line| line.strip_prefix("listening on ").map(str::to_owned),
    )?;
    let blocking_srv = Server::start(
        Command::new(lhp)
            .args([
                "serve",
                "--engine",
                "blocking",
                "--addr",
                "127.0.0.1:0",
                "--root",
            ])
            .arg(work.join("blk-root")),
        |line| line.strip_prefix("listening on ").map(str::to_owned),
    )?;
    let py_srv = Server::start(
        Command::new("python3")
            .arg(script)
            .args(["serve", "--root"])
            .arg(work.join("py-root")),
        |line| Some(line.trim().to_owned()),
    )?;
    let old = match std::env::var_os("LHP_OLD_BIN") {
        Some(bin) => {
            let srv = Server::start(
                Command::new(&bin)
                    .args(["serve", "--addr", "127.0.0.1:0", "--root"])
                    .arg(work.join("old-root")),
                |line| line.strip_prefix("listening on ").map(str::to_owned),
            )?;
            Some((PathBuf::from(bin), srv))
        }
        None => None,
    };
    let source_s = source.to_string_lossy().into_owned();
    let out = work.join("out");
    let mut secs: Vec<Vec<f64>> = vec![Vec::new(); SUBJECTS.len()];
    println!(
        "transfer: {} MiB, {runs} interleaved rounds; client processes timed spawn to exit",
        size >> 20
    );
    for round in 0..runs {
        let name = format!("p{round}.bin");
        let jobs = if old.is_some() { 9 } else { 7 };
        let mut timed: Vec<Result<f64, String>> = vec![Ok(f64::NAN); jobs];
        // Each round starts at a different subject, so no subject always follows the same
        // neighbour; each starts with the page cache's dirty data written back (`sync`).
        for k in 0..jobs {
            let i = (k + round) % jobs;
            let _ = Command::new("sync").status();
            let t = match i {
                0 => time_cmd(Command::new("python3").arg(script).args([
                    "put",
                    "--port",
                    &py_srv.addr,
                    "--file",
                    &source_s,
                    "--name",
                    &name,
                ])),
                1 => time_cmd(Command::new(lhp).args([
                    "put",
                    "--addr",
                    &tokio_srv.addr,
                    &source_s,
                    "--as",
                    &name,
                ])),
                2 => time_cmd(Command::new(lhp).args([
                    "put",
                    "--addr",
                    &blocking_srv.addr,
                    &source_s,
                    "--as",
                    &name,
                ])),
                3 => raw_copy(&source, &out.join("raw.bin")),
                4 => time_cmd(
                    Command::new("python3")
                        .arg(script)
                        .args(["get", "--port", &py_srv.addr, "--name", "g.bin", "--out"])
                        .arg(out.join("py.bin")),
                ),
                5 => time_cmd(
                    Command::new(lhp)
                        .args(["get", "--addr", &tokio_srv.addr, "g.bin", "-o"])
                        .arg(out.join("lhp.bin")),
                ),
                6 => time_cmd(
                    Command::new(lhp)
                        .args(["get", "--addr", &blocking_srv.addr, "g.bin", "-o"])
                        .arg(out.join("blk.bin")),
                ),
                _ => match (&old, i) {
                    (Some((bin, srv)), 7) => time_cmd(
                        Command::new(bin)
                            .args(["put", "--addr", &srv.addr, &source_s, "--as", &name]),
                    ),
                    (Some((bin, srv)), _) => time_cmd(
                        Command::new(bin)
                            .args(["get", "--addr", &srv.addr, "g.bin", "-o"])
                            .arg(out.join("old.bin")),
                    ),
                    (None, _) => Ok(f64::NAN),
                },
            };
            if let Some(slot) = timed.get_mut(i) {
                *slot = t;
            }
        }
        let mut arrived = vec![
            ("py-root", name.as_str()),
            ("lhp-root", name.as_str()),
            ("blk-root", name.as_str()),
            ("out", "raw.bin"),
            ("out", "py.bin"),
            ("out", "lhp.bin"),
            ("out", "blk.bin"),
        ];
        if old.is_some() {
            arrived.push(("old-root", name.as_str()));
            arrived.push(("out", "old.bin"));
        }
        let mut line = format!("  round {round}:");
        for (i, t) in timed.into_iter().enumerate() {
            let t = t?;
            line.push_str(&format!(" {:.0}", size as f64 / t / 1e6));
            if let Some(v) = secs.get_mut(i) {
                v.push(t);
            }
        }
        println!("{line}  (MB/s, in table order)");
        // Check what arrived, then make room for the next round.
        for (dir, file) in arrived {
            let p = work.join(dir).join(file);
            let len = fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            if len != size {
                return Err(format!(
                    "round {round}: {} has {len} octets, not {size}",
                    p.display()
                ));
            }
            fs::remove_file(&p).map_err(err("cleaning up"))?;
        }
    }
    drop((tokio_srv, blocking_srv, py_srv, old));
    report(size, &secs);
    Ok(())
}

/// Prints the table: MB/s median [min..max], seconds, ratios to Python and to the ceiling.
fn report(size: u64, secs: &[Vec<f64>]) {
    let rate =
        |v: &Vec<f64>| Stat::of(&v.iter().map(|s| size as f64 / s / 1e6).collect::<Vec<_>>());
    let stats: Vec<Stat> = secs.iter().map(rate).collect();
    let med = |i: usize| stats.get(i).map_or(f64::NAN, |s| s.median);
    println!();
    println!("| subject | MB/s median [min..max] | seconds (median) | vs Python | vs raw copy |");
    println!("|---|---|---|---|---|");
    for (i, subject) in SUBJECTS.iter().enumerate() {
        let Some(s) = stats.get(i).filter(|s| s.median.is_finite()) else {
            continue;
        };
        let python = if i < 4 || i == 7 { med(0) } else { med(4) };
        println!(
            "| {subject} | {:.0} [{:.0}..{:.0}] | {:.2} | {:.2}× | {:.2}× |",
            s.median,
            s.min,
            s.max,
            size as f64 / s.median / 1e6,
            s.median / python,
            s.median / med(3),
        );
    }
}

/// A server process, killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    /// Spawns `cmd` and reads its first stdout line; `parse` turns it into the address/port.
    fn start(cmd: &mut Command, parse: impl Fn(&str) -> Option<String>) -> Result<Server, String> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {cmd:?}: {e}"))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        match parse(line.trim()) {
            Some(addr) if !addr.is_empty() => Ok(Server { child, addr }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("{cmd:?} printed {line:?}"))
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` to completion; its wall time in seconds, or why it failed.
fn time_cmd(cmd: &mut Command) -> Result<f64, String> {
    let t = Instant::now();
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(secs)
}

/// The ceiling: `src` over loopback into `dst` with 1 MiB buffers, then `fsync`; no digest.
fn raw_copy(src: &Path, dst: &Path) -> Result<f64, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let dst = dst.to_owned();
    let t = Instant::now();
    let receiver = thread::spawn(move || -> io::Result<u64> {
        let (mut conn, _) = listener.accept()?;
        let mut out = File::create(&dst)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = conn.read(&mut buf)?;
            if n == 0 {
                break;
            }
            out.write_all(buf.get(..n).unwrap_or_default())?;
            total += n as u64;
        }
        out.sync_all()?;
        conn.write_all(b"k")?;
        Ok(total)
    });
    let send = || -> io::Result<()> {
        let mut conn = TcpStream::connect(addr)?;
        let mut file = File::open(src)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            conn.write_all(buf.get(..n).unwrap_or_default())?;
        }
        conn.shutdown(std::net::Shutdown::Write)?;
        let mut ack = [0u8; 1];
        conn.read_exact(&mut ack)
    };
    send().map_err(|e| format!("raw copy: {e}"))?;
    receiver
        .join()
        .map_err(|_| "raw copy: the receiver panicked".to_owned())?
        .map_err(|e| format!("raw copy: {e}"))?;
    Ok(t.elapsed().as_secs_f64())
}

/// Writes `size` pseudo-random octets (xorshift; incompressible enough, fast to make).
fn write_source(path: &Path, size: u64) -> io::Result<()> {
    let mut f = io::BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut left = size;
    let mut block = vec![0u8; 1 << 20];
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bytes = x.to_le_bytes();
            let n = chunk.len();
            chunk.copy_from_slice(bytes.get(..n).unwrap_or_default());
        }
        let n = usize::try_from(left.min(block.len() as u64)).unwrap_or(block.len());
        f.write_all(block.get(..n).unwrap_or_default())?;
        left -= n as u64;
    }
    f.flush()?;
    f.get_ref().sync_all()
}

/// The `lhp` binary: `LHP_BIN`, or next to this executable.
fn lhp_binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("LHP_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let p = exe.with_file_name("lhp");
    if p.exists() {
        Ok(p)
    } else {
        Err(format!(
            "no lhp binary at {} (cargo build --release -p lhp, or set LHP_BIN)",
            p.display()
        ))
    }
}
