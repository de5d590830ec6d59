//! # lhp-bench: LHP/1 side by side with the machine's limits and the baselines
//!
//! `cargo run --release -p lhp-bench [-- --quick] [--json FILE] [--svg DIR] [--runs N] [--echo-only]`
//!
//! Runs, in one process and over loopback, the ceilings (memcpy, raw TCP bulk, raw TCP
//! ping-pong), the baselines a user would pick instead (tokio-util `LengthDelimitedCodec` +
//! serde_json, and the seeds' Python approach in `bench/seed_baseline.py`) and LHP
//! (`lhp-codec` alone, `lhp-blocking`, `lhp-tokio`), repeats each measurement (5 runs by
//! default) and prints the median with min/max, the ratios, and each target of issue 8 with
//! met / not met. `docs/performance.md` holds a run and explains the gaps.

#![deny(unsafe_code)] // allowed only in `work::affinity` (sched_setaffinity)
#![warn(missing_docs)]

mod chart;
mod stats;
mod transfer;
mod typed;
mod work;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

use stats::{percentile, repeat, Row, Stat};
use work::{RawReceive, TokioEcho};

/// Sizes of each workload; `--quick` shrinks them.
struct Plan {
    runs: usize,
    codec_frames: usize,
    small_frames: usize,
    python_frames: usize,
    mib1_count: usize,
    mib64_count: usize,
    echo_rounds: usize,
    sweep_budget: usize,
    conc_duration: Duration,
    mem_len: u64,
}

#[derive(Default)]
struct Args {
    quick: bool,
    json: Option<PathBuf>,
    svg: Option<PathBuf>,
    runs: Option<usize>,
    mem_child: Option<u64>,
    profile: Option<String>,
    echo_only: bool,
    transfer: bool,
    typed_only: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--echo-only" => a.echo_only = true,
            "--transfer" => a.transfer = true,
            "--typed-only" => a.typed_only = true,
            "--json" => a.json = Some(it.next().ok_or("--json needs a file")?.into()),
            "--svg" => a.svg = Some(it.next().ok_or("--svg needs a directory")?.into()),
            "--runs" => {
                let n: usize = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--runs needs a number")?;
                a.runs = Some(n.max(1));
            }
            "--mem-child" => {
                a.mem_child = Some(
                    it.next()
                        .and_then(|v| v.parse().ok())
                        .ok_or("--mem-child needs octets")?,
                )
            }
            "--profile" => a.profile = Some(it.next().ok_or("--profile needs a case")?),
            "-h" | "--help" => {
                println!(
                    "usage: lhp-bench [--quick] [--runs N] [--json FILE] [--svg DIR] [--echo-only] [--typed-only] [--transfer]\n\
                     Runs every measurement N times (default 5) and prints median [min..max].\n\
                     --echo-only: only the echo round trips (pinned and unpinned), no files.\n\
                     --typed-only: only issue 13's rows (typed and map-style headers built per\n\
                     frame vs hand-written loops; codec in memory; 1 MiB streamed bodies).\n\
                     --transfer: lhp put/get of 512 MiB vs bench/transfer_baseline.py and a raw copy."
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(a)
}

/// Everything a run produced, for `--json`.
#[derive(Serialize)]
struct Report {
    command: String,
    quick: bool,
    runs: usize,
    machine: Machine,
    rows: Vec<Row>,
    sweep: Vec<SweepPoint>,
    concurrency: Vec<ConcPoint>,
    targets: Vec<Target>,
}

#[derive(Serialize)]
struct Machine {
    nproc: usize,
    cpu: String,
    kernel: String,
}

#[derive(Serialize, Clone)]
struct SweepPoint {
    subject: String,
    body: usize,
    frame_octets: usize,
    frames_per_s: Stat,
    gbps: Stat,
}

#[derive(Serialize, Clone)]
struct ConcPoint {
    subject: String,
    connections: usize,
    frames_per_s: Stat,
    median_us: Stat,
    p99_us: Stat,
}

#[derive(Serialize)]
struct Target {
    name: String,
    want: String,
    got: Option<f64>,
    met: Option<bool>,
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("lhp-bench: {e}");
            std::process::exit(2);
        }
    };
    if let Some(len) = args.mem_child {
        match work::stream_peak_rss(len) {
            Ok((rss, t)) => println!("{{\"peak_rss\":{rss},\"seconds\":{}}}", t.as_secs_f64()),
            Err(e) => {
                eprintln!("lhp-bench --mem-child: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    if let Some(case) = &args.profile {
        if let Err(e) = profile(case) {
            eprintln!("lhp-bench --profile: {e}");
            std::process::exit(2);
        }
        return;
    }
    if args.transfer {
        // `lhp put`/`lhp get` of 512 MiB (64 MiB with --quick): see `transfer`.
        let size = if args.quick { 64 << 20 } else { 512 << 20 };
        if let Err(e) = transfer::run(args.runs.unwrap_or(5), size) {
            eprintln!("lhp-bench --transfer: {e}");
            std::process::exit(1);
        }
        return;
    }
    check_nofile();
    let plan = if args.quick {
        Plan {
            runs: args.runs.unwrap_or(5),
            codec_frames: 20_000,
            small_frames: 20_000,
            python_frames: 5_000,
            mib1_count: 16,
            mib64_count: 1,
            echo_rounds: 2_000,
            sweep_budget: 16 << 20,
            conc_duration: Duration::from_millis(120),
            mem_len: 1 << 30,
        }
    } else {
        Plan {
            runs: args.runs.unwrap_or(5),
            codec_frames: 100_000,
            small_frames: 100_000,
            python_frames: 30_000,
            mib1_count: 128,
            mib64_count: 4,
            echo_rounds: 10_000,
            sweep_budget: 96 << 20,
            conc_duration: Duration::from_millis(400),
            mem_len: 4 << 30,
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut b = Bench {
        rows: Vec::new(),
        runs: plan.runs,
    };
    let machine = machine();
    eprintln!(
        "lhp-bench: {} runs each{}; {} cores, {}",
        plan.runs,
        if args.quick { " (--quick)" } else { "" },
        machine.nproc,
        machine.cpu
    );

    if args.echo_only {
        eprintln!("echo round trips...");
        echo(&mut b, plan.echo_rounds, true);
        echo(&mut b, plan.echo_rounds, false);
        let mem = Err("not run (--echo-only)".to_string());
        let targets = targets(&b.rows, &mem, plan.mem_len);
        print_report(&b.rows, &[], &[], &targets, &mem, plan.mem_len);
        return;
    }

    if args.typed_only {
        // Issue 13's tokio rows also run on a `current_thread` runtime: sender and receiver
        // tasks on one thread, so that the rows measure the codecs and not how often two
        // workers and the `block_on` thread park and wake each other.
        let rt1 = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        typed_rows(&mut b, &plan, &rt, &rt1);
        let mem = Err("not run (--typed-only)".to_string());
        let targets = typed_targets(&b.rows);
        print_report(&b.rows, &[], &[], &targets, &mem, plan.mem_len);
        if let Some(path) = &args.json {
            let report = Report {
                command: std::env::args().collect::<Vec<_>>().join(" "),
                quick: args.quick,
                runs: plan.runs,
                machine,
                rows: b.rows,
                sweep: Vec::new(),
                concurrency: Vec::new(),
                targets,
            };
            if let Err(e) = serde_json::to_string_pretty(&report)
                .map_err(|e| e.to_string())
                .and_then(|s| std::fs::write(path, s).map_err(|e| e.to_string()))
            {
                eprintln!("lhp-bench: writing {}: {e}", path.display());
            }
        }
        return;
    }

    // Ceilings.
    eprintln!("ceilings...");
    b.measure(
        "memcpy",
        "memcpy (64 MiB)",
        "GB/s",
        true,
        None,
        work::memcpy_gbps,
    );

    // Codec only.
    eprintln!("codec only...");
    let n = plan.codec_frames;
    let lw = work::lhp_wire(n, 100);
    let bw = work::ldc_wire(n, 100);
    let w = "small frames, codec only (in memory)";
    let (lw, bw) = (&lw, &bw);
    b.interleaved(
        w,
        "frames/s",
        vec![
            (
                "tokio-util LDC + serde_json Map",
                None,
                Box::new(move || work::codec_ldc(bw, n, false)),
            ),
            (
                "tokio-util LDC + serde_json struct",
                None,
                Box::new(move || work::codec_ldc(bw, n, true)),
            ),
            (
                "lhp-codec Decoder",
                Some("tokio-util LDC + serde_json Map"),
                Box::new(move || work::codec_lhp(lw, n)),
            ),
        ],
    );

    // Small frames over loopback.
    eprintln!("small frames over loopback...");
    let n = plan.small_frames;
    let w = "small frames, loopback";
    match python(plan.python_frames, plan.runs) {
        Ok(values) => b.push(
            w,
            "Python seeds (struct+json)",
            "frames/s",
            true,
            values,
            None,
        ),
        Err(why) => b.missing(w, "Python seeds (struct+json)", "frames/s", why),
    }
    b.interleaved(
        w,
        "frames/s",
        vec![
            (
                "tokio-util LDC + serde_json",
                Some("Python seeds (struct+json)"),
                Box::new(|| n as f64 / work::ldc_tokio_stream(&rt, 100, n).as_secs_f64()),
            ),
            (
                "lhp-blocking",
                Some("Python seeds (struct+json)"),
                Box::new(|| n as f64 / work::lhp_blocking_stream(100, n).as_secs_f64()),
            ),
            (
                "lhp-tokio (Framed)",
                Some("Python seeds (struct+json)"),
                Box::new(|| n as f64 / work::lhp_tokio_stream(&rt, 100, n).as_secs_f64()),
            ),
        ],
    );

    // Bulk: the subjects take turns, run by run, so a burst of load elsewhere on the machine
    // hits them all rather than one.
    eprintln!("bulk bodies...");
    for (label, size, count) in [
        ("1 MiB bodies, loopback", 1usize << 20, plan.mib1_count),
        ("64 MiB bodies, loopback", 64 << 20, plan.mib64_count),
    ] {
        let total = size * count;
        let rt = &rt;
        let rb = Some("raw TCP (blocking)");
        let rtk = Some("raw TCP (tokio)");
        b.interleaved(
            label,
            "GB/s",
            vec![
                (
                    "raw TCP (blocking)",
                    None,
                    Box::new(move || work::raw_bulk_blocking(size, count, RawReceive::Reused)),
                ),
                (
                    "raw TCP (blocking), each body in a new buffer",
                    rb,
                    Box::new(move || work::raw_bulk_blocking(size, count, RawReceive::Owned)),
                ),
                (
                    "lhp-blocking, whole frames",
                    rb,
                    Box::new(move || work::gbps(total, work::lhp_blocking_stream(size, count))),
                ),
                (
                    "lhp-blocking, body streamed",
                    rb,
                    Box::new(move || work::gbps(total, work::lhp_blocking_streamed(size, count))),
                ),
                (
                    "raw TCP (tokio)",
                    None,
                    Box::new(move || work::raw_bulk_tokio(rt, size, count, RawReceive::Reused)),
                ),
                (
                    "raw TCP (tokio), each body in a new buffer",
                    rtk,
                    Box::new(move || work::raw_bulk_tokio(rt, size, count, RawReceive::Owned)),
                ),
                (
                    "tokio-util LDC + serde_json",
                    rtk,
                    Box::new(move || work::gbps(total, work::ldc_tokio_stream(rt, size, count))),
                ),
                (
                    "lhp-tokio, whole frames",
                    rtk,
                    Box::new(move || work::gbps(total, work::lhp_tokio_stream(rt, size, count))),
                ),
                (
                    "lhp-tokio, body streamed",
                    rtk,
                    Box::new(move || work::gbps(total, work::lhp_tokio_streamed(rt, size, count))),
                ),
            ],
        );
    }

    // Echo round trips: every subject with both ends pinned to one CPU (the figure the target
    // is judged on), then the same unpinned, for reference.
    eprintln!("echo round trips...");
    echo(&mut b, plan.echo_rounds, true);
    echo(&mut b, plan.echo_rounds, false);

    // Size sweep.
    eprintln!("size sweep...");
    let mut sweep = Vec::new();
    let head = work::lhp_wire(1, 0).len();
    for body in [0usize, 1 << 10, 64 << 10, 1 << 20, 16 << 20] {
        let count = (plan.sweep_budget / (body + head)).clamp(4, plan.small_frames);
        let frame = body + head;
        let mut point = |subject: &str, f: &mut dyn FnMut() -> Duration| {
            let (fps, _) = repeat(plan.runs, || count as f64 / f().as_secs_f64());
            let scale = |v: f64| v * frame as f64 / 1e9;
            sweep.push(SweepPoint {
                subject: subject.to_string(),
                body,
                frame_octets: frame,
                frames_per_s: fps,
                gbps: Stat {
                    median: scale(fps.median),
                    min: scale(fps.min),
                    max: scale(fps.max),
                },
            });
        };
        point("lhp-blocking", &mut || {
            work::lhp_blocking_stream(body, count)
        });
        point("lhp-tokio", &mut || {
            work::lhp_tokio_stream(&rt, body, count)
        });
        point("tokio-util LDC + serde_json", &mut || {
            work::ldc_tokio_stream(&rt, body, count)
        });
        if body > 0 {
            point("raw TCP (blocking), same octets", &mut || {
                let gb = work::raw_bulk_blocking(frame, count, RawReceive::Reused);
                Duration::from_secs_f64(frame as f64 * count as f64 / (gb * 1e9))
            });
        }
    }

    // Concurrency.
    eprintln!("concurrent connections...");
    let mut conc = Vec::new();
    for which in [TokioEcho::Lhp, TokioEcho::Ldc] {
        for conns in [1usize, 10, 100, 1000] {
            let mut fps = Vec::new();
            let mut med = Vec::new();
            let mut p99 = Vec::new();
            for _ in 0..plan.runs {
                let (f, mut lat) = work::echo_tokio(&rt, which, conns, plan.conc_duration, None);
                lat.sort_unstable();
                fps.push(f);
                med.push(percentile(&lat, 50.0));
                p99.push(percentile(&lat, 99.0));
            }
            conc.push(ConcPoint {
                subject: match which {
                    TokioEcho::Lhp => "lhp-tokio".into(),
                    TokioEcho::Ldc => "tokio-util LDC + serde_json".into(),
                },
                connections: conns,
                frames_per_s: Stat::of(&fps),
                median_us: Stat::of(&med),
                p99_us: Stat::of(&p99),
            });
        }
    }

    for conns in [1usize, 10, 100, 1000] {
        let mut fps = Vec::new();
        let mut med = Vec::new();
        let mut p99 = Vec::new();
        for _ in 0..plan.runs {
            let (f, mut lat) = work::echo_blocking_conc(conns, plan.conc_duration);
            lat.sort_unstable();
            fps.push(f);
            med.push(percentile(&lat, 50.0));
            p99.push(percentile(&lat, 99.0));
        }
        conc.push(ConcPoint {
            subject: "lhp-blocking".into(),
            connections: conns,
            frames_per_s: Stat::of(&fps),
            median_us: Stat::of(&med),
            p99_us: Stat::of(&p99),
        });
    }

    // Memory.
    eprintln!("memory while streaming {} GiB...", plan.mem_len >> 30);
    let mem = mem_child(plan.mem_len);

    let targets = targets(&b.rows, &mem, plan.mem_len);
    print_report(&b.rows, &sweep, &conc, &targets, &mem, plan.mem_len);

    let report = Report {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        quick: args.quick,
        runs: plan.runs,
        machine,
        rows: b.rows,
        sweep,
        concurrency: conc,
        targets,
    };
    if let Some(path) = &args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    let _ = std::fs::create_dir_all(dir);
                }
                if let Err(e) = std::fs::write(path, s) {
                    eprintln!("lhp-bench: writing {}: {e}", path.display());
                }
            }
            Err(e) => eprintln!("lhp-bench: {e}"),
        }
    }
    if let Some(dir) = &args.svg {
        if let Err(e) = charts(dir, &report) {
            eprintln!("lhp-bench: charts: {e}");
        }
    }
}

/// Runs one case for about ten seconds (`LHP_PROFILE_SECS` to change), for
/// `perf record -g -- lhp-bench --profile CASE` or `strace -f -c`.
fn profile(case: &str) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let rt1 = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // Only the codec cases need the wires (building them faults in pages the other cases'
    // profiles would show).
    let codec = case.starts_with("codec");
    let wire = work::lhp_wire(if codec { 100_000 } else { 0 }, 100);
    let base = work::ldc_wire(if codec { 100_000 } else { 0 }, 100);
    let typed_codec = case.starts_with("typed-codec");
    let typed_wire = typed::lhp_wire(if typed_codec { 100_000 } else { 0 });
    let typed_base = typed::ldc_wire(if typed_codec { 100_000 } else { 0 });
    let secs = std::env::var("LHP_PROFILE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let until = std::time::Instant::now() + Duration::from_secs(secs);
    let mut iterations = 0u64;
    while std::time::Instant::now() < until {
        iterations += 1;
        match case {
            "codec" => drop(work::codec_lhp(&wire, 100_000)),
            "codec-baseline" => drop(work::codec_ldc(&base, 100_000, false)),
            "typed-codec" => drop(typed::codec(&typed_wire, 100_000, typed::InMemory::Raw)),
            "typed-codec-ref" => drop(typed::codec(&typed_wire, 100_000, typed::InMemory::InPlace)),
            "typed-codec-baseline" => drop(typed::codec(&typed_base, 100_000, typed::InMemory::Ldc)),
            "typed-blocking" => drop(typed::blocking(typed::Style::Typed, 100_000)),
            "typed-blocking-map" => drop(typed::blocking(typed::Style::Map, 100_000)),
            "typed-blocking-baseline" => drop(typed::blocking(typed::Style::HandWritten, 100_000)),
            "typed-tokio" => drop(typed::tokio(&rt, typed::Style::Typed, 100_000)),
            "typed-tokio-map" => drop(typed::tokio(&rt, typed::Style::Map, 100_000)),
            "typed-tokio-baseline" => drop(typed::tokio(&rt, typed::Style::HandWritten, 100_000)),
            "typed-tokio-ct" => drop(typed::tokio(&rt1, typed::Style::Typed, 100_000)),
            "typed-tokio-map-ct" => drop(typed::tokio(&rt1, typed::Style::Map, 100_000)),
            "typed-tokio-baseline-ct" => {
                let _ = typed::tokio(&rt1, typed::Style::HandWritten, 100_000);
            }
            "small-blocking" => drop(work::lhp_blocking_stream(100, 100_000)),
            "small-tokio" => drop(work::lhp_tokio_stream(&rt, 100, 100_000)),
            "bulk-blocking" => drop(work::lhp_blocking_stream(64 << 20, 4)),
            "bulk-blocking-streamed" => drop(work::lhp_blocking_streamed(64 << 20, 4)),
            "bulk-tokio" => drop(work::lhp_tokio_stream(&rt, 64 << 20, 4)),
            "bulk-tokio-streamed" => drop(work::lhp_tokio_streamed(&rt, 64 << 20, 4)),
            "mib1-blocking-streamed" => drop(work::lhp_blocking_streamed(1 << 20, 256)),
            "mib1-raw-blocking" => drop(work::raw_bulk_blocking(1 << 20, 256, RawReceive::Reused)),
            "echo-blocking" => drop(work::echo_lhp_blocking(10_000)),
            "echo-raw-blocking" => drop(work::raw_pingpong_blocking(10_000)),
            "echo-tokio" => drop(work::echo_tokio(
                &rt,
                TokioEcho::Lhp,
                1,
                Duration::ZERO,
                Some(10_000),
            )),
            "echo-ldc" => drop(work::echo_tokio(
                &rt,
                TokioEcho::Ldc,
                1,
                Duration::ZERO,
                Some(10_000),
            )),
            "echo-raw-tokio" => drop(work::raw_pingpong_tokio(&rt, 10_000)),
            "raw-bulk" => drop(work::raw_bulk_blocking(64 << 20, 4, RawReceive::Reused)),
            other => {
                return Err(format!(
                    "unknown case {other:?}: codec, codec-baseline, typed-codec, typed-codec-ref, \
                     typed-codec-baseline, typed-blocking, typed-blocking-map, typed-blocking-baseline, \
                     typed-tokio, typed-tokio-map, typed-tokio-baseline, small-blocking, small-tokio, bulk-blocking, \
                     bulk-blocking-streamed, bulk-tokio, bulk-tokio-streamed, mib1-blocking-streamed, mib1-raw-blocking, echo-blocking, echo-raw-blocking, \
                     echo-tokio, echo-ldc, echo-raw-tokio, raw-bulk, typed-tokio-ct, \
                     typed-tokio-map-ct, typed-tokio-baseline-ct"
                ))
            }
        }
    }
    eprintln!("{case}: {iterations} iterations in {secs} s (echo cases: 10,000 round trips each)");
    Ok(())
}

/// The workload name of the echo rows the targets use (both ends on one CPU).
const ECHO: &str = "echo 64 B, 1 connection";
/// The same subjects, left to the scheduler.
const ECHO_FREE: &str = "echo 64 B, 1 connection, ends on any CPU";

/// Echo round trips of 64-byte bodies, one connection, one request at a time.
///
/// `pin`: the calling thread is pinned to its CPU first, so that every thread each subject
/// starts (the servers' threads, the tokio workers of a runtime built here) shares that one
/// CPU: each round trip then costs the same-CPU wake-ups whatever the scheduler would have
/// done. Each subject runs on its own fresh tokio runtime of the main one's layout (two
/// workers; server and client each in a spawned task). The subjects take turns, run by run.
fn echo(b: &mut Bench, rounds: usize, pin: bool) {
    // Pinned, two workers on one CPU would run client and server on the same worker in one
    // run and on two (a thread switch each way) in the next: one worker is the layout one CPU
    // has. Unpinned, the main runtime's two workers.
    let workers = if pin { 1 } else { 2 };
    let run = |b: &mut Bench| {
        let rt = || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
                .expect("tokio runtime")
        };
        let (rt1, rt2, rt3) = (rt(), rt(), rt());
        let workload = if pin { ECHO } else { ECHO_FREE };
        let rb = Some("raw TCP ping-pong (blocking)");
        let rtk = Some("raw TCP ping-pong (tokio)");
        b.latency_interleaved(
            workload,
            vec![
                (
                    "raw TCP ping-pong (blocking)",
                    None,
                    Box::new(|| work::raw_pingpong_blocking(rounds)),
                ),
                (
                    "lhp-blocking Client/Server",
                    rb,
                    Box::new(|| work::echo_lhp_blocking(rounds)),
                ),
                (
                    "raw TCP ping-pong (tokio)",
                    None,
                    Box::new(|| work::raw_pingpong_tokio(&rt1, rounds)),
                ),
                (
                    "tokio-util LDC + serde_json",
                    rtk,
                    Box::new(|| {
                        work::echo_tokio(&rt2, TokioEcho::Ldc, 1, Duration::ZERO, Some(rounds)).1
                    }),
                ),
                (
                    "lhp-tokio Server/Framed",
                    rtk,
                    Box::new(|| {
                        work::echo_tokio(&rt3, TokioEcho::Lhp, 1, Duration::ZERO, Some(rounds)).1
                    }),
                ),
            ],
        );
    };
    if pin {
        work::affinity::pinned(|cpu| {
            match cpu {
                Some(c) => eprintln!("  both ends of every subject pinned to CPU {c}"),
                None => eprintln!("  could not pin to one CPU: these rows are unpinned"),
            }
            run(b)
        });
    } else {
        run(b);
    }
}

/// One subject of [`Bench::interleaved_workloads`]: workload, subject, the subject it is
/// compared with (in the same workload), and one run.
type Case<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    Box<dyn FnMut() -> f64 + 'a>,
);

struct Bench {
    rows: Vec<Row>,
    runs: usize,
}

impl Bench {
    fn measure(
        &mut self,
        workload: &str,
        subject: &str,
        unit: &'static str,
        higher: bool,
        against: Option<&str>,
        f: impl FnMut() -> f64,
    ) {
        let (_, values) = repeat(self.runs, f);
        self.push(workload, subject, unit, higher, values, against);
    }

    /// Measures several subjects of one workload taking turns: run 1 of each, then run 2 of
    /// each, and so on. Rows come out in the order given; references must come first.
    #[allow(clippy::type_complexity)]
    fn interleaved<'a>(
        &mut self,
        workload: &str,
        unit: &'static str,
        cases: Vec<(&str, Option<&str>, Box<dyn FnMut() -> f64 + 'a>)>,
    ) {
        let cases = cases
            .into_iter()
            .map(|(subject, against, f)| (workload, subject, against, f))
            .collect();
        self.interleaved_workloads(unit, cases);
    }

    /// As [`interleaved`](Self::interleaved), for subjects of several workloads taking turns
    /// in one run: `(workload, subject, reference, f)`. A reference is looked up in its own
    /// workload and must come before the rows that refer to it.
    fn interleaved_workloads(&mut self, unit: &'static str, mut cases: Vec<Case<'_>>) {
        let mut values = vec![Vec::new(); cases.len()];
        for _ in 0..self.runs {
            for (i, (_, _, _, f)) in cases.iter_mut().enumerate() {
                values[i].push(f());
            }
        }
        for ((workload, subject, against, _), v) in cases.into_iter().zip(values) {
            self.push(workload, subject, unit, true, v, against);
        }
    }

    /// Latency rows: median and p99 of each run's round trips, in µs, for several subjects
    /// taking turns run by run (as [`interleaved`](Self::interleaved)).
    #[allow(clippy::type_complexity)]
    fn latency_interleaved<'a>(
        &mut self,
        workload: &str,
        mut cases: Vec<(&str, Option<&str>, Box<dyn FnMut() -> Vec<Duration> + 'a>)>,
    ) {
        let mut med = vec![Vec::new(); cases.len()];
        let mut p99 = vec![Vec::new(); cases.len()];
        for _ in 0..self.runs {
            for (i, (_, _, f)) in cases.iter_mut().enumerate() {
                let mut lat = f();
                lat.sort_unstable();
                med[i].push(percentile(&lat, 50.0));
                p99[i].push(percentile(&lat, 99.0));
            }
        }
        for (((subject, against, _), med), p99) in cases.into_iter().zip(med).zip(p99) {
            let p99_against = against.map(|a| format!("{a} p99"));
            self.push(workload, subject, "µs median", false, med, against);
            self.push(
                workload,
                &format!("{subject} p99"),
                "µs p99",
                false,
                p99,
                p99_against.as_deref(),
            );
        }
    }

    fn push(
        &mut self,
        workload: &str,
        subject: &str,
        unit: &'static str,
        higher: bool,
        values: Vec<f64>,
        against: Option<&str>,
    ) {
        let stat = Stat::of(&values);
        let ratio = against.and_then(|a| {
            let other = self
                .rows
                .iter()
                .find(|r| r.workload == workload && r.subject == a && r.not_measured.is_none())?;
            Some((a.to_string(), stat.median / other.stat.median))
        });
        self.rows.push(Row {
            workload: workload.into(),
            subject: subject.into(),
            unit,
            higher_is_better: higher,
            stat,
            runs: values,
            ratio,
            not_measured: None,
        });
    }

    fn missing(&mut self, workload: &str, subject: &str, unit: &'static str, why: String) {
        eprintln!("  {subject}: not measured: {why}");
        self.rows.push(Row {
            workload: workload.into(),
            subject: subject.into(),
            unit,
            higher_is_better: true,
            stat: Stat::of(&[]),
            runs: Vec::new(),
            ratio: None,
            not_measured: Some(why),
        });
    }
}

/// Issue 13's rows: small frames with a header built per frame (typed and map-style) against
/// the hand-written loops, blocking and tokio; the codec in memory; 1 MiB streamed bodies.
///
/// `rt` is the multi-thread runtime a `#[tokio::main]` user gets (two workers here), `rt1` a
/// `current_thread` one; the tokio subjects run on both, all six taking turns in one run.
fn typed_rows(
    b: &mut Bench,
    plan: &Plan,
    rt: &tokio::runtime::Runtime,
    rt1: &tokio::runtime::Runtime,
) {
    use typed::{InMemory, Style};
    let n = plan.small_frames * 2;
    eprintln!("typed: small frames over loopback, blocking...");
    b.interleaved(
        TYPED_BLOCKING,
        "frames/s",
        vec![
            (
                HAND_BLOCKING,
                None,
                Box::new(move || typed::blocking(Style::HandWritten, n)),
            ),
            (
                "lhp-blocking typed (write_typed / read_frame_ref)",
                Some(HAND_BLOCKING),
                Box::new(move || typed::blocking(Style::Typed, n)),
            ),
            (
                "lhp-blocking map-style (Header setters / read_frame)",
                Some(HAND_BLOCKING),
                Box::new(move || typed::blocking(Style::Map, n)),
            ),
        ],
    );
    eprintln!("typed: small frames over loopback, tokio (multi_thread and current_thread)...");
    let mut cases: Vec<Case<'_>> = Vec::new();
    for (w, rt) in [(TYPED_TOKIO, rt), (TYPED_TOKIO_CT, rt1)] {
        cases.push((
            w,
            HAND_TOKIO,
            None,
            Box::new(move || typed::tokio(rt, Style::HandWritten, n)),
        ));
        cases.push((
            w,
            "lhp-tokio typed (Framed + RawCodec)",
            Some(HAND_TOKIO),
            Box::new(move || typed::tokio(rt, Style::Typed, n)),
        ));
        cases.push((
            w,
            "lhp-tokio map-style (Framed + LhpCodec)",
            Some(HAND_TOKIO),
            Box::new(move || typed::tokio(rt, Style::Map, n)),
        ));
    }
    b.interleaved_workloads("frames/s", cases);
    eprintln!("typed: codec in memory...");
    let n = plan.codec_frames * 2;
    let (lw, bw) = (typed::lhp_wire(n), typed::ldc_wire(n));
    let (lw, bw) = (&lw, &bw);
    b.interleaved(
        TYPED_CODEC,
        "frames/s",
        vec![
            (
                LDC_STRUCT,
                None,
                Box::new(move || typed::codec(bw, n, InMemory::Ldc)),
            ),
            (
                "lhp-codec decode_raw + typed header (validated)",
                Some(LDC_STRUCT),
                Box::new(move || typed::codec(lw, n, InMemory::Raw)),
            ),
            (
                "lhp-codec decode_ref + typed header (validated)",
                Some(LDC_STRUCT),
                Box::new(move || typed::codec(lw, n, InMemory::InPlace)),
            ),
        ],
    );
    eprintln!("typed: 1 MiB bodies streamed...");
    // 1 GiB a sample (1,024 bodies; 128 with --quick): at 256 MiB a sample (~60 ms) two runs
    // of the same raw loop differed by up to 15 %, as much as the target's margin. The A/A rows
    // run each raw loop a second time, after the LHP subject, and give the noise floor of the
    // ratios in this run.
    let (size, count) = (1 << 20, plan.mib1_count * 8);
    let gb = move |t: Duration| work::gbps(size * count, t);
    b.interleaved(
        TYPED_STREAM,
        "GB/s",
        vec![
            (
                RAW_BLOCKING,
                None,
                Box::new(move || work::raw_bulk_blocking(size, count, RawReceive::Reused)),
            ),
            (
                "lhp-blocking read_head + body() into a reused buffer",
                Some(RAW_BLOCKING),
                Box::new(move || gb(work::lhp_blocking_streamed(size, count))),
            ),
            (
                "raw read_exact, blocking, again (A/A control: the noise floor)",
                Some(RAW_BLOCKING),
                Box::new(move || work::raw_bulk_blocking(size, count, RawReceive::Reused)),
            ),
            (
                RAW_TOKIO,
                None,
                Box::new(move || work::raw_bulk_tokio(rt, size, count, RawReceive::Reused)),
            ),
            (
                "lhp-tokio read_head + body() into a reused buffer",
                Some(RAW_TOKIO),
                Box::new(move || gb(work::lhp_tokio_streamed(rt, size, count))),
            ),
            (
                "raw read_exact, tokio, again (A/A control: the noise floor)",
                Some(RAW_TOKIO),
                Box::new(move || work::raw_bulk_tokio(rt, size, count, RawReceive::Reused)),
            ),
        ],
    );
}

const TYPED_BLOCKING: &str = "issue 13: small frames, header built per frame, blocking loopback";
const TYPED_TOKIO: &str = "issue 13: small frames, header built per frame, tokio loopback";
const TYPED_TOKIO_CT: &str =
    "issue 13: small frames, header built per frame, tokio current_thread loopback";
const TYPED_CODEC: &str = "issue 13: codec in memory, typed borrowed header";
const TYPED_STREAM: &str = "issue 13: 1 MiB bodies streamed";
const HAND_BLOCKING: &str = "hand-written BufWriter/BufReader + serde_json struct";
const HAND_TOKIO: &str = "Framed + LengthDelimitedCodec + serde_json struct";
const LDC_STRUCT: &str = "LengthDelimitedCodec + serde_json borrowed struct (no validation)";
const RAW_BLOCKING: &str = "raw read_exact, blocking";
const RAW_TOKIO: &str = "raw read_exact, tokio";

/// Issue 13's targets, from its rows.
fn typed_targets(rows: &[Row]) -> Vec<Target> {
    let ratio = |w: &str, s: &str| {
        rows.iter()
            .find(|r| r.workload == w && r.subject.starts_with(s))
            .and_then(|r| r.ratio.as_ref().map(|(_, x)| *x))
    };
    let t = |name: &str, want: f64, got: Option<f64>| Target {
        name: name.into(),
        want: format!(">= {want}x"),
        got,
        met: got.map(|g| g >= want),
    };
    vec![
        t(
            "blocking typed vs hand-written",
            1.0,
            ratio(TYPED_BLOCKING, "lhp-blocking typed"),
        ),
        t(
            "blocking map-style vs hand-written",
            1.0,
            ratio(TYPED_BLOCKING, "lhp-blocking map"),
        ),
        t(
            "tokio typed vs Framed+LDC+serde_json",
            1.0,
            ratio(TYPED_TOKIO, "lhp-tokio typed"),
        ),
        t(
            "tokio map-style vs Framed+LDC+serde_json",
            1.0,
            ratio(TYPED_TOKIO, "lhp-tokio map"),
        ),
        t(
            "tokio current_thread typed vs Framed+LDC+serde_json",
            1.0,
            ratio(TYPED_TOKIO_CT, "lhp-tokio typed"),
        ),
        t(
            "tokio current_thread map-style vs Framed+LDC+serde_json",
            1.0,
            ratio(TYPED_TOKIO_CT, "lhp-tokio map"),
        ),
        t(
            "codec typed borrowed vs LDC+serde_json",
            1.2,
            ratio(TYPED_CODEC, "lhp-codec decode_raw"),
        ),
        t(
            "1 MiB streamed, blocking vs raw read_exact",
            0.95,
            ratio(TYPED_STREAM, "lhp-blocking"),
        ),
        t(
            "1 MiB streamed, tokio vs raw read_exact",
            0.95,
            ratio(TYPED_STREAM, "lhp-tokio"),
        ),
    ]
}

/// Runs `bench/seed_baseline.py` and returns its frames/s per run.
fn python(frames: usize, runs: usize) -> Result<Vec<f64>, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/seed_baseline.py");
    let out = Command::new("python3")
        .arg(script)
        .args(["--frames", &frames.to_string(), "--runs", &runs.to_string()])
        .output()
        .map_err(|e| format!("python3 could not be started: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "python3 {script} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("python output {line:?}: {e}"))?;
    v.get("frames_per_s")
        .and_then(|a| a.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
        .ok_or_else(|| format!("python output without frames_per_s: {line}"))
}

/// Runs this program again as `--mem-child LEN` so the peak RSS is that of streaming only.
fn mem_child(len: u64) -> Result<(u64, f64), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .args(["--mem-child", &len.to_string()])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let rss = v
        .get("peak_rss")
        .and_then(|x| x.as_u64())
        .ok_or("no peak_rss")?;
    let secs = v
        .get("seconds")
        .and_then(|x| x.as_f64())
        .ok_or("no seconds")?;
    Ok((rss, secs))
}

fn targets(rows: &[Row], mem: &Result<(u64, f64), String>, mem_len: u64) -> Vec<Target> {
    let ratio = |w: &str, s: &str| {
        rows.iter()
            .find(|r| r.workload == w && r.subject == s)
            .and_then(|r| r.ratio.as_ref().map(|x| x.1))
    };
    let mut t = Vec::new();
    let mut add = |name: String, want: &str, got: Option<f64>, ok: &dyn Fn(f64) -> bool| {
        t.push(Target {
            name,
            want: want.into(),
            got,
            met: got.map(ok),
        });
    };
    add(
        "codec, small frames: lhp-codec / tokio-util LDC + serde_json Map".into(),
        ">= 1.0x (aim 1.5x)",
        ratio("small frames, codec only (in memory)", "lhp-codec Decoder"),
        &|r| r >= 1.0,
    );
    for w in ["1 MiB bodies, loopback", "64 MiB bodies, loopback"] {
        add(
            format!("{w}: lhp-blocking (whole frames) / raw TCP blocking"),
            ">= 0.9x",
            ratio(w, "lhp-blocking, whole frames"),
            &|r| r >= 0.9,
        );
        add(
            format!("{w}: lhp-blocking (body streamed) / raw TCP blocking"),
            ">= 0.9x",
            ratio(w, "lhp-blocking, body streamed"),
            &|r| r >= 0.9,
        );
        add(
            format!("{w}: lhp-tokio (body streamed) / raw TCP tokio"),
            ">= 0.9x",
            ratio(w, "lhp-tokio, body streamed"),
            &|r| r >= 0.9,
        );
        add(
            format!("{w}: lhp-tokio (whole frames) / raw TCP tokio"),
            ">= 0.9x",
            ratio(w, "lhp-tokio, whole frames"),
            &|r| r >= 0.9,
        );
    }
    let e = ECHO;
    add(
        "echo median: lhp-blocking / raw ping-pong blocking".into(),
        "<= 1.1x",
        ratio(e, "lhp-blocking Client/Server"),
        &|r| r <= 1.1,
    );
    add(
        "echo median: lhp-tokio / raw ping-pong tokio".into(),
        "<= 1.1x",
        ratio(e, "lhp-tokio Server/Framed"),
        &|r| r <= 1.1,
    );
    let s = "small frames, loopback";
    add(
        "small frames over loopback: lhp-blocking / Python".into(),
        ">= 30x",
        ratio(s, "lhp-blocking"),
        &|r| r >= 30.0,
    );
    add(
        "small frames over loopback: lhp-tokio / Python".into(),
        ">= 30x",
        ratio(s, "lhp-tokio (Framed)"),
        &|r| r >= 30.0,
    );
    add(
        format!("peak RSS streaming a {} GiB body (MiB)", mem_len >> 30),
        "< 32 MiB",
        mem.as_ref()
            .ok()
            .map(|(rss, _)| *rss as f64 / (1 << 20) as f64),
        &|m| m < 32.0,
    );
    t
}

fn fmt(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn print_report(
    rows: &[Row],
    sweep: &[SweepPoint],
    conc: &[ConcPoint],
    targets: &[Target],
    mem: &Result<(u64, f64), String>,
    mem_len: u64,
) {
    let mut last = "";
    println!("| workload | subject | median | min | max | unit | ratio (median / reference) |");
    println!("|---|---|---:|---:|---:|---|---|");
    for r in rows {
        let w = if r.workload == last { "" } else { &r.workload };
        last = &r.workload;
        if let Some(why) = &r.not_measured {
            println!(
                "| {w} | {} | not measured: {why} | | | {} | |",
                r.subject, r.unit
            );
            continue;
        }
        let ratio = r
            .ratio
            .as_ref()
            .map(|(a, x)| format!("{x:.2}x {a}"))
            .unwrap_or_default();
        println!(
            "| {w} | {} | {} | {} | {} | {} | {ratio} |",
            r.subject,
            fmt(r.stat.median),
            fmt(r.stat.min),
            fmt(r.stat.max),
            r.unit
        );
    }
    println!();
    println!("Size sweep, one connection, one-way stream (median [min..max]):");
    println!();
    println!("| body | frame octets | subject | frames/s | GB/s |");
    println!("|---:|---:|---|---:|---:|");
    for p in sweep {
        println!(
            "| {} | {} | {} | {} [{}..{}] | {} [{}..{}] |",
            p.body,
            p.frame_octets,
            p.subject,
            fmt(p.frames_per_s.median),
            fmt(p.frames_per_s.min),
            fmt(p.frames_per_s.max),
            fmt(p.gbps.median),
            fmt(p.gbps.min),
            fmt(p.gbps.max)
        );
    }
    println!();
    println!(
        "Concurrent connections, echo of 64-byte bodies, one request at a time each \
         (tokio: server and clients in one 2-worker runtime; lhp-blocking: a thread per \
         connection on both sides):"
    );
    println!();
    println!("| subject | connections | frames/s | median µs | p99 µs |");
    println!("|---|---:|---:|---:|---:|");
    for p in conc {
        println!(
            "| {} | {} | {} [{}..{}] | {} [{}..{}] | {} [{}..{}] |",
            p.subject,
            p.connections,
            fmt(p.frames_per_s.median),
            fmt(p.frames_per_s.min),
            fmt(p.frames_per_s.max),
            fmt(p.median_us.median),
            fmt(p.median_us.min),
            fmt(p.median_us.max),
            fmt(p.p99_us.median),
            fmt(p.p99_us.min),
            fmt(p.p99_us.max)
        );
    }
    println!();
    match mem {
        Ok((rss, secs)) => println!(
            "Memory: streaming a {} GiB body through lhp-blocking (child process): peak RSS {:.1} MiB, {:.2} GB/s",
            mem_len >> 30,
            *rss as f64 / (1 << 20) as f64,
            mem_len as f64 / secs / 1e9
        ),
        Err(e) => println!("Memory: not measured: {e}"),
    }
    println!();
    println!("Targets:");
    println!();
    println!("| target | wanted | got | |");
    println!("|---|---|---:|---|");
    for t in targets {
        let (got, met) = match (t.got, t.met) {
            (Some(g), Some(m)) => (format!("{g:.2}"), if m { "met" } else { "NOT met" }),
            _ => ("-".into(), "not measured"),
        };
        println!("| {} | {} | {got} | {met} |", t.name, t.want);
    }
}

fn charts(dir: &std::path::Path, r: &Report) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let subjects: Vec<&String> = {
        let mut v: Vec<&String> = Vec::new();
        for p in &r.sweep {
            if !v.contains(&&p.subject) {
                v.push(&p.subject);
            }
        }
        v
    };
    let series = |pick: &dyn Fn(&SweepPoint) -> f64| -> Vec<chart::Series> {
        subjects
            .iter()
            .map(|s| chart::Series {
                name: (*s).clone(),
                points: r
                    .sweep
                    .iter()
                    .filter(|p| &p.subject == *s)
                    .map(|p| (p.frame_octets as f64, pick(p)))
                    .collect(),
            })
            .collect()
    };
    chart::log_log(
        &dir.join("frames-per-second.svg"),
        "frames/s against frame size (loopback, 1 connection, median)",
        "frame size, octets (prefix + header + body)",
        "frames/s",
        &series(&|p| p.frames_per_s.median),
    )?;
    chart::log_log(
        &dir.join("throughput.svg"),
        "GB/s against frame size (loopback, 1 connection, median)",
        "frame size, octets (prefix + header + body)",
        "GB/s",
        &series(&|p| p.gbps.median),
    )?;
    let mut lat = Vec::new();
    for s in ["lhp-tokio", "tokio-util LDC + serde_json", "lhp-blocking"] {
        for (q, pick) in [
            (
                "median",
                (|p: &ConcPoint| p.median_us.median) as fn(&ConcPoint) -> f64,
            ),
            ("p99", |p: &ConcPoint| p.p99_us.median),
        ] {
            lat.push(chart::Series {
                name: format!("{s} {q}"),
                points: r
                    .concurrency
                    .iter()
                    .filter(|p| p.subject == s)
                    .map(|p| (p.connections as f64, pick(p)))
                    .collect(),
            });
        }
    }
    chart::log_log(
        &dir.join("latency-vs-connections.svg"),
        "echo round trip against concurrent connections (median of runs)",
        "connections",
        "latency, µs",
        &lat,
    )?;
    Ok(())
}

fn machine() -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    Machine {
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu,
        kernel,
    }
}

/// 1,000 connections with both ends in this process need about 2,000 files: say so early if
/// the soft `RLIMIT_NOFILE` is lower (raise it with `ulimit -n 4096`).
fn check_nofile() {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(3)
                        .and_then(|v| v.parse::<u64>().ok())
                })
        });
    if let Some(n) = soft.filter(|n| *n < 2_100) {
        eprintln!(
            "lhp-bench: the open-file limit is {n}; 1,000 connections need about 2,100 \
             (run `ulimit -n 4096` first)"
        );
    }
}
