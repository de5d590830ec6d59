//! Scale benchmark for the tokio server (not a test): idle connections and their memory, and
//! echo throughput at 1, 10, 100 and 1,000 concurrent connections.
//!
//! ```text
//! cargo run --release -p lhp-tokio --example scale            # everything, defaults below
//! cargo run --release -p lhp-tokio --example scale -- 10000 3 # idle conns, seconds per load
//! ```
//!
//! The server runs in this process; the clients run in a child process (this same binary,
//! started with `idle` or `load`), so the server's resident memory is its own. Both raise
//! `RLIMIT_NOFILE` to 20,000.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use lhp_codec::{Frame, Header};
use lhp_tokio::{Config, FrameReader, FrameWriter, Server};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    raise_nofile(20_000);
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("idle") => idle_client(args[2].parse()?, args[3].parse()?),
        Some("load") => load_client(args[2].parse()?, args[3].parse()?, args[4].parse()?),
        _ => {
            let idle: usize = args.get(1).map_or(Ok(10_000), |a| a.parse())?;
            let secs: u64 = args.get(2).map_or(Ok(3), |a| a.parse())?;
            orchestrate(idle, secs)
        }
    }
}

fn orchestrate(idle: usize, secs: u64) -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut config = Config::new();
    config.set_max_connections(15_000);
    config.set_idle_timeout(Duration::from_secs(600));
    let server = Server::bind("127.0.0.1:0", config, lhp_tokio::EchoHandler::new())?;
    let addr = server.local_addr();
    let gauge = server.connections();
    let stop = server.shutdown_token();
    let running = rt.spawn(server.run());
    let exe = std::env::current_exe()?;

    // Warm up the runtime and allocator with one short load so the baseline is fair.
    run_child(&exe, &["load", &addr.to_string(), "10", "1"])?;
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_bytes();
    let mut child = Command::new(&exe)
        .args(["idle", &addr.to_string(), &idle.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let started = Instant::now();
    let mut line = String::new();
    BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
    let connected = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(60);
    while gauge.active() < idle && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let held = gauge.active();
    let after = rss_bytes();
    let per = after.saturating_sub(before) as f64 / held.max(1) as f64;
    println!(
        "idle: {held} connections held (client: {}), opened in {:.2?}; server RSS {:.1} MiB -> {:.1} MiB: {:.0} bytes per idle connection",
        line.trim(),
        connected,
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        per
    );
    drop(child.stdin.take());
    child.wait()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while gauge.active() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }

    for conns in [1usize, 10, 100, 1000] {
        let out = run_child(
            &exe,
            &[
                "load",
                &addr.to_string(),
                &conns.to_string(),
                &secs.to_string(),
            ],
        )?;
        println!(
            "echo 100-byte bodies, {conns:>4} connections: {}",
            out.trim()
        );
    }
    stop.cancel();
    rt.block_on(running)??;
    Ok(())
}

fn run_child(exe: &std::path::Path, args: &[&str]) -> Result<String, Box<dyn std::error::Error>> {
    let out = Command::new(exe)
        .args(args)
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(format!("child {args:?} failed: {}", out.status).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Opens `n` plain connections, says so, and holds them until stdin closes.
fn idle_client(addr: SocketAddr, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(std::net::TcpStream::connect(addr)?);
    }
    println!("{} open", held.len());
    std::io::stdout().flush()?;
    let mut sink = String::new();
    let _ = std::io::stdin().read_line(&mut sink);
    Ok(())
}

/// `conns` connections, each sending an echo frame with a 100-byte body and waiting for the
/// reply, for `secs` seconds; prints frames per second.
fn load_client(
    addr: SocketAddr,
    conns: usize,
    secs: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let count = Arc::new(AtomicU64::new(0));
        let mut streams = Vec::with_capacity(conns);
        for _ in 0..conns {
            let s = tokio::net::TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            streams.push(s);
        }
        let start = Instant::now();
        let end = start + Duration::from_secs(secs);
        let mut tasks = Vec::new();
        for s in streams {
            let count = Arc::clone(&count);
            tasks.push(tokio::spawn(async move {
                let (rd, wr) = s.into_split();
                let (mut rd, mut wr) = (FrameReader::new(rd), FrameWriter::new(wr));
                let frame = Frame::new(Header::with_kind("echo"), Bytes::from(vec![b'x'; 100]));
                while Instant::now() < end {
                    wr.write_frame(&frame).await?;
                    let reply = rd.read_frame().await?.ok_or("closed")?;
                    if reply.body.len() != 100 {
                        return Err("wrong reply".into());
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            }));
        }
        for t in tasks {
            t.await?.map_err(|e| e.to_string())?;
        }
        let took = start.elapsed().as_secs_f64();
        let n = count.load(Ordering::Relaxed);
        println!(
            "{:.0} frames/s ({n} round trips in {took:.2} s)",
            n as f64 / took
        );
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let page = page_size();
    pages * page
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(p).unwrap_or(4096)
}

fn raise_nofile(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = want.min(lim.rlim_max);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                eprintln!("setrlimit(RLIMIT_NOFILE, {want}) failed");
            }
        }
    }
}
