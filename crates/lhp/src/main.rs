//! The `lhp` command: see `lhp --help`.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::time::Duration;

use lhp::client::{self, ClientError};
use lhp::decode::{decode_stream, error_json, DecodeOptions};
use lhp::encode::{parse_header, write_frame, EncodeOptions};
use lhp::files::{Retention, ServeOptions};
use lhp::log::{self, LogFormat};
use lhp_codec::{Limits, Profile, MAX_SAFE_INTEGER};
use sha2::{Digest, Sha256};

/// LHP/1, the Length-Header Protocol: decode and encode frames, serve and transfer files.
///
/// A frame is a 4-octet header length, a JSON header, and a body of `body_len` octets.
/// The specification is spec/lhp-1.md.
#[derive(Parser, Debug)]
#[command(name = "lhp", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log events are written to stderr (filtered by RUST_LOG, default info).
    #[arg(long, value_enum, global = true, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Decode a recorded stream: one JSON line per frame on stdout.
    ///
    /// Each line is {"offset":N,"header":{...},"body_len":N,"body_sha256":"..."}, where offset is
    /// the absolute stream offset of the frame's first octet. Bodies are hashed as they stream
    /// past, so any size decodes in constant memory. On a protocol error the frames before it
    /// are printed, then the error as one JSON object on stderr
    /// ({"error":CODE,"offset":N,"section":S,"missing":N,"message":TEXT}), and the exit status
    /// is 1. A stream that ends inside a frame is an error (unexpected_eof). Exit 0: a clean
    /// end between frames. Exit 2: usage or IO error.
    Decode(DecodeArgs),
    /// Encode one frame to stdout from a JSON header and an optional body.
    ///
    /// The header is checked as a receiver would check it; its body length member (body_len,
    /// or in seed-compat file_size/total_size if present) is set to the body's length.
    Encode(EncodeArgs),
    /// Serve files under --root (put, get, stat, list, allowed exec), or without --root a pure
    /// echo server.
    ///
    /// The first line on stdout is exactly "listening on HOST:PORT". Stops cleanly on SIGINT or
    /// SIGTERM; SIGUSR1 logs the server's counters (see --stats-interval). Names from the network never leave --root: "..", absolute names, NUL, empty
    /// components and symlinks out of the root are refused with bad_name. Uploads land in a
    /// hidden partial file, are checked against their sha256, synced and renamed into place.
    Serve(ServeArgs),
    /// Upload FILE (sha256 checked by the server before the file appears).
    Put(PutArgs),
    /// Download NAME (sha256 checked before the file appears at its path).
    Get(GetArgs),
    /// List the files the server holds.
    Ls(RemoteArgs),
    /// Run an allowed program on the server (no shell): its stdout and stderr come back
    /// separately, and lhp exits with its exit code.
    Exec(ExecArgs),
    /// Start a server in-process, push 64 MiB through tiny and coalesced writes, download and
    /// verify it, run a command with over 1 MiB of output, try a path traversal; exit 0 only
    /// if every step checked out.
    Demo,
    /// LHP over UDP (spec/lhp-udp.md): `lhp udp serve` answers echo, upper and time; `lhp udp
    /// send` is its client.
    Udp(lhp::udp::UdpArgs),
    /// Two-party chat over LHP/UDP: run it in two terminals with each other's address.
    Chat(lhp::udp::ChatArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum EngineArg {
    /// tokio (lhp-tokio), the default: serves files, exec and echo.
    Tokio,
    /// std::net threads (lhp-blocking): serves files, exec and echo.
    Blocking,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// The directory to serve. Without it: a pure echo server.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Address to listen on (port 0: an ephemeral port, printed on the first line).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:7000")]
    addr: String,
    /// Which engine serves connections.
    #[arg(long, value_enum, default_value_t = EngineArg::Tokio)]
    engine: EngineArg,
    /// Wire dialect; seed-compat also accepts the seeds' upload ({"file_name","file_size"}).
    #[arg(long, value_enum, default_value_t = ProfileArg::Lhp1)]
    profile: ProfileArg,
    /// Allow exec of this program (argv[0] must match exactly; repeatable). Exec is off
    /// without it. Programs run without a shell, in --root.
    #[arg(long, value_name = "PROGRAM")]
    allow_exec: Vec<String>,
    /// Time limit of one exec, in seconds; the program's process group is killed after it.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    exec_timeout: u64,
    /// Delete partial uploads (kept for put --resume) not written for this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = Retention::DEFAULT_MAX_AGE.as_secs())]
    partial_max_age: u64,
    /// Delete the oldest partial uploads while all of them together hold more octets.
    #[arg(long, value_name = "OCTETS", default_value_t = Retention::DEFAULT_MAX_TOTAL)]
    partial_max_total: u64,
    /// Log the server's counters (connections, frames, octets, errors by code; target
    /// lhp::stats) every SECS seconds; 0: never. They are also logged on SIGUSR1 and once at
    /// shutdown.
    #[arg(long, value_name = "SECS", default_value_t = lhp::serve::DEFAULT_STATS_INTERVAL.as_secs())]
    stats_interval: u64,
    #[command(flatten)]
    limits: lhp::serve::LimitFlags,
}

#[derive(Args, Debug)]
struct RemoteArgs {
    /// The server.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:7000")]
    addr: String,
    /// Wire dialect (must match the server's).
    #[arg(long, value_enum, default_value_t = ProfileArg::Lhp1)]
    profile: ProfileArg,
}

#[derive(Args, Debug)]
struct PutArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    /// The local file.
    file: PathBuf,
    /// The name to store it under (default: FILE's file name).
    #[arg(long = "as", value_name = "NAME")]
    name: Option<String>,
    /// Continue an interrupted upload from what the server already holds (still verified
    /// against the whole file's sha256).
    #[arg(long)]
    resume: bool,
    /// Replace the name if it exists (atomically); without it, an existing name is refused.
    #[arg(long)]
    replace: bool,
}

#[derive(Args, Debug)]
struct GetArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    /// The name on the server.
    name: String,
    /// Where to write it (default: the name's last component, in the current directory).
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    output: Option<PathBuf>,
    /// Continue an interrupted download from the hidden partial file next to PATH.
    #[arg(long)]
    resume: bool,
}

#[derive(Args, Debug)]
struct ExecArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    /// The program and its arguments, after "--": passed as an argv array, never to a shell.
    #[arg(required = true, last = true, value_name = "PROGRAM ARGS")]
    argv: Vec<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, Default)]
enum ProfileArg {
    /// LHP/1: unsigned big-endian prefix, body_len, sha256.
    #[default]
    Lhp1,
    /// The seeds' Python format: struct.pack('i') prefix, file_size/total_size, md5.
    SeedCompat,
}

impl From<ProfileArg> for Profile {
    fn from(p: ProfileArg) -> Profile {
        match p {
            ProfileArg::Lhp1 => Profile::Lhp1,
            ProfileArg::SeedCompat => Profile::SeedCompat,
        }
    }
}

#[derive(Args, Debug)]
struct DecodeArgs {
    /// Wire dialect.
    #[arg(long, value_enum, default_value_t = ProfileArg::Lhp1)]
    profile: ProfileArg,
    /// Consume this many octets before the first frame (offsets still count them). The seeds'
    /// FTP download starts with a bare 4-octet file size: use --skip-bytes 4.
    #[arg(long, value_name = "N", default_value_t = 0)]
    skip_bytes: u64,
    /// Largest header accepted, in octets.
    #[arg(long, value_name = "N", default_value_t = Limits::DEFAULT_MAX_HEADER_LEN)]
    max_header: u32,
    /// Largest body accepted, in octets (bodies are streamed, so the default is the largest
    /// body_len the protocol allows, 2^53-1).
    #[arg(long, value_name = "N", default_value_t = MAX_SAFE_INTEGER)]
    max_body: u64,
    /// The stream to decode; "-" or nothing reads stdin.
    #[arg(value_name = "FILE")]
    input: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct EncodeArgs {
    /// The header: a JSON object, e.g. '{"kind":"echo"}'.
    #[arg(long, value_name = "JSON")]
    header: String,
    /// The body: a file, or "-" for stdin. No body: an empty one.
    #[arg(long, value_name = "FILE")]
    body: Option<PathBuf>,
    /// Also set the header's sha256 member to the body's digest.
    #[arg(long)]
    sha256: bool,
    /// Wire dialect.
    #[arg(long, value_enum, default_value_t = ProfileArg::Lhp1)]
    profile: ProfileArg,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = log::init(cli.log_format) {
        eprintln!("lhp: {e}");
    }
    let result = match cli.command {
        Command::Decode(a) => decode(a),
        Command::Encode(a) => encode(a),
        Command::Serve(a) => serve(a),
        Command::Put(a) => remote(|| put(a)),
        Command::Get(a) => remote(|| get(a)),
        Command::Ls(a) => remote(|| ls(a)),
        Command::Exec(a) => remote(|| exec(a)),
        Command::Demo => demo(),
        Command::Udp(a) => lhp::udp::run_udp(a),
        Command::Chat(a) => lhp::udp::run_chat(a),
    };
    match result {
        Ok(code) => code,
        // `lhp decode big | head`: the reader left; that is not our failure.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lhp: {e}");
            ExitCode::from(2)
        }
    }
}

fn is_stdin(p: &Option<PathBuf>) -> bool {
    p.as_ref().is_none_or(|p| p.as_os_str() == "-")
}

fn open_input(p: &Option<PathBuf>) -> io::Result<Box<dyn Read>> {
    match p {
        Some(path) if !is_stdin(p) => File::open(path)
            .map(|f| Box::new(f) as Box<dyn Read>)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        _ => Ok(Box::new(io::stdin().lock())),
    }
}

fn decode(a: DecodeArgs) -> io::Result<ExitCode> {
    let opts = DecodeOptions {
        profile: a.profile.into(),
        limits: Limits::new()
            .with_max_header_len(a.max_header)
            .with_max_body_len(a.max_body),
        skip_bytes: a.skip_bytes,
    };
    let input = open_input(&a.input)?;
    let mut out = BufWriter::new(io::stdout().lock());
    let summary = decode_stream(input, &opts, &mut out)?;
    out.flush()?;
    match summary.error {
        None => Ok(ExitCode::SUCCESS),
        Some(e) => {
            eprintln!("{}", error_json(&e));
            Ok(ExitCode::from(1))
        }
    }
}

fn encode(a: EncodeArgs) -> io::Result<ExitCode> {
    let profile: Profile = a.profile.into();
    let header = match parse_header(&a.header, profile) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("lhp encode: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    // The body's length must be known before its first octet is written: a file is measured
    // (and hashed, for --sha256) first, then streamed; stdin is read into memory.
    let (body, len, digest): (Box<dyn Read>, u64, Option<[u8; 32]>) = match &a.body {
        None => (
            Box::new(io::empty()),
            0,
            a.sha256.then(|| Sha256::digest(b"").into()),
        ),
        Some(_) if is_stdin(&a.body) => {
            let mut data = Vec::new();
            io::stdin().lock().read_to_end(&mut data)?;
            let digest = a.sha256.then(|| Sha256::digest(&data).into());
            let len = data.len() as u64;
            (Box::new(io::Cursor::new(data)), len, digest)
        }
        Some(_) => {
            let mut f = open_input(&a.body)?;
            let digest = if a.sha256 {
                let mut h = Sha256::new();
                io::copy(&mut f, &mut h)?;
                Some(h.finalize().into())
            } else {
                None
            };
            let f = open_input(&a.body)?;
            let len = match &a.body {
                Some(p) => std::fs::metadata(p)?.len(),
                None => 0,
            };
            (f, len, digest)
        }
    };
    let opts = EncodeOptions {
        profile,
        sha256: digest,
    };
    let mut out = BufWriter::new(io::stdout().lock());
    match write_frame(header, body, len, &opts, &mut out) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(lhp::encode::EncodeFrameError::Io(e)) => Err(e),
        Err(e) => {
            eprintln!("lhp encode: {e}");
            Ok(ExitCode::from(2))
        }
    }
}

fn serve(a: ServeArgs) -> io::Result<ExitCode> {
    let opts = ServeOptions {
        root: a.root,
        allow_exec: a.allow_exec,
        exec_timeout: Duration::from_secs(a.exec_timeout),
        profile: a.profile.into(),
        retention: Retention {
            max_age: Duration::from_secs(a.partial_max_age),
            max_total: a.partial_max_total,
        },
    };
    let engine = match a.engine {
        EngineArg::Tokio => lhp::serve::Engine::Tokio,
        EngineArg::Blocking => lhp::serve::Engine::Blocking,
    };
    let config = a.limits.apply(lhp::serve::default_config(&opts));
    let stats_interval = Duration::from_secs(a.stats_interval);
    lhp::serve::run_on(engine, &a.addr, &opts, config, stats_interval)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs a client command: its errors are printed as `lhp: ...` with exit status 1.
fn remote(f: impl FnOnce() -> Result<ExitCode, ClientError>) -> io::Result<ExitCode> {
    match f() {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("lhp: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn put(a: PutArgs) -> Result<ExitCode, ClientError> {
    let name = match a.name {
        Some(n) => n,
        None => a
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| {
                ClientError::Unexpected(format!("{} has no file name; use --as", a.file.display()))
            })?,
    };
    let mut c = client::connect(&a.remote.addr, a.remote.profile.into())?;
    let t = client::timer();
    let bar = client::progress(0, &name, true);
    let r = client::put(&mut c, &a.file, &name, a.resume, a.replace, &bar)?;
    // The seeds' upload has no reply: nothing on their side confirms the digest.
    let check = match Profile::from(a.remote.profile) {
        Profile::SeedCompat => "computed locally; the seed protocol has no acknowledgement",
        _ => "verified by the server",
    };
    println!(
        "put {}: {} octets ({} sent, resumed from {}), sha256 {} {check}, {}",
        r.name,
        r.size,
        r.sent,
        r.resumed_from,
        r.sha256,
        client::rate(r.sent, t.elapsed())
    );
    log::transfer(log::Side::Client, "put", &r.name, r.sent, t.elapsed());
    Ok(ExitCode::SUCCESS)
}

fn get(a: GetArgs) -> Result<ExitCode, ClientError> {
    let out = match a.output {
        Some(p) => p,
        None => client::default_output(&a.name)?,
    };
    let mut c = client::connect(&a.remote.addr, a.remote.profile.into())?;
    let t = client::timer();
    let bar = client::progress(0, &a.name, true);
    let r = client::get(&mut c, &a.name, &out, a.resume, &bar)?;
    let check = match Profile::from(a.remote.profile) {
        Profile::SeedCompat => "(per-line md5 verified; sha256 computed locally)",
        _ => "verified",
    };
    println!(
        "get {} -> {}: {} octets ({} received, resumed from {}), sha256 {} {check}, {}",
        a.name,
        r.path.display(),
        r.size,
        r.received,
        r.resumed_from,
        r.sha256,
        client::rate(r.received, t.elapsed())
    );
    log::transfer(log::Side::Client, "get", &a.name, r.received, t.elapsed());
    Ok(ExitCode::SUCCESS)
}

fn ls(a: RemoteArgs) -> Result<ExitCode, ClientError> {
    let mut c = client::connect(&a.addr, a.profile.into())?;
    let mut out = io::stdout().lock();
    for (name, size) in client::list(&mut c)? {
        writeln!(out, "{size:>14}  {name}")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn exec(a: ExecArgs) -> Result<ExitCode, ClientError> {
    let mut c = client::connect(&a.remote.addr, a.remote.profile.into())?;
    let r = client::exec(
        &mut c,
        &a.argv,
        &mut io::stdout().lock(),
        &mut io::stderr().lock(),
    )?;
    if r.timed_out {
        eprintln!("lhp exec: the server's time limit killed the program");
    }
    Ok(match (r.code, r.signal) {
        (Some(code), _) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        (None, Some(sig)) => ExitCode::from(u8::try_from(128 + sig).unwrap_or(1)),
        _ => ExitCode::from(1),
    })
}

fn demo() -> io::Result<ExitCode> {
    let ok = lhp::demo::run(&mut io::stdout().lock())?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
