//! The conversation runner: replays conversation vectors (`spec/vectors/conversations/*.json`,
//! loaded by [`lhp_vectors::conversation`]) against a server over real TCP
//! (`spec/conformance.md` §6).
//!
//! Each step runs in order. A connection is opened by the first step naming it (`TCP_NODELAY`;
//! a connection that the script later stops reading gets a small receive buffer so the
//! server's writes block soon). Sends go through one writer thread per connection, so a
//! server that stops reading never blocks the script. Every duration in a conversation is
//! multiplied by the time scale (`--time-scale`), and so are the timeouts the server is
//! started with.
//!
//! The end of a connection after a connection error frame (`kind` `error` with an `offset`) is
//! judged against a bound derived from the case's own configuration, so that a server that
//! keeps reading cannot pass by closing at its own timeout: the close must come before
//! `0.9 × min(idle_timeout, read_timeout)` after the last octet the harness sent (after the
//! error frame itself when its code is `timeout`), and within the step's `within_ms`.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use lhp_vectors::conversation::{
    split_frames, Conversation, FramePattern, PeerConfig, ReceivedFrame, Step,
};
use serde_json::Value;

use crate::process::ServerProcess;
use crate::runner::{CaseResult, GroupCase, Options, Status};

/// The defaults of spec/lhp-1.md §11.2 and §5, used for settings a conversation leaves out.
pub const DEFAULTS: PeerDefaults = PeerDefaults {
    idle_timeout_ms: 60_000,
    read_timeout_ms: 30_000,
    min_body_rate: 65_536,
    write_timeout_ms: 30_000,
    max_connections: 1024,
    max_header_len: 65_536,
    max_body_len: 64 << 20,
};

/// The values of every setting a server is started with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerDefaults {
    /// `idle_timeout`, ms.
    pub idle_timeout_ms: u64,
    /// `read_timeout`, ms.
    pub read_timeout_ms: u64,
    /// `min_body_rate`, octets/s.
    pub min_body_rate: u64,
    /// `write_timeout`, ms.
    pub write_timeout_ms: u64,
    /// `max_connections`.
    pub max_connections: u64,
    /// `max_header_len`.
    pub max_header_len: u64,
    /// `max_body_len`.
    pub max_body_len: u64,
}

/// Where the server under test is.
#[derive(Clone, Debug)]
pub enum Target {
    /// Already running at this address, configured by someone else: only conversations that
    /// need the defaults and no served-root setup can run.
    Addr(SocketAddr),
    /// Started by the harness for each conversation from this command template
    /// (placeholders: [`expand`]).
    Command(String),
}

/// How conversations run.
#[derive(Clone, Debug)]
pub struct ConvOptions {
    /// Run options (skips, verbosity).
    pub run: Options,
    /// Every duration of a conversation is multiplied by this (default 1).
    pub time_scale: f64,
    /// How long a started server may take to print `listening on`.
    pub start_timeout: Duration,
    /// How many conversations run at once against a server command ([`Target::Command`]):
    /// each has its own server process, port and served root, so they cannot see each other,
    /// and a conversation spends nearly all its time waiting on the deadlines it tests. At
    /// least 1; conversations against a running server ([`Target::Addr`]) run one at a time.
    pub jobs: usize,
}

impl Default for ConvOptions {
    fn default() -> Self {
        ConvOptions {
            run: Options::default(),
            time_scale: 1.0,
            start_timeout: Duration::from_secs(10),
            jobs: DEFAULT_JOBS,
        }
    }
}

/// [`ConvOptions::jobs`] by default: enough to overlap the waits, few enough that the servers'
/// start-up (a Python interpreter each, for the reference servers) does not crowd two cores
/// into missing a deadline of a few hundred milliseconds.
pub const DEFAULT_JOBS: usize = 4;

/// Loads the conversations in `dir` whose id contains one of `filters` (all when empty). A
/// missing directory holds none.
pub fn load(dir: &Path, filters: &[String]) -> Result<Vec<Conversation>, String> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let all = lhp_vectors::conversation::load_conversations(dir).map_err(|e| e.to_string())?;
    Ok(all
        .into_iter()
        .filter(|c| filters.is_empty() || filters.iter().any(|f| c.id.contains(f.as_str())))
        .collect())
}

/// The conversations a server mode runs: every `server`-role conversation, except those of
/// the `app` group unless `app` (the `--app-server` modes).
pub fn select(convs: &[Conversation], app: bool) -> Vec<&Conversation> {
    convs
        .iter()
        .filter(|c| c.role == "server" && (app || group_of(&c.id) != "app"))
        .collect()
}

fn group_of(id: &str) -> &str {
    id.split('/').next().unwrap_or_default()
}

/// The report entry of a conversation.
pub fn group_case(c: &Conversation) -> GroupCase {
    GroupCase {
        id: c.id.clone(),
        spec: c.spec.clone(),
        tier: c.tier.clone(),
        flags: c.flags.clone(),
        description: c.description.clone(),
    }
}

/// The settings `c` needs, defaults filled in, durations scaled by `scale` (and
/// `min_body_rate` divided by it).
pub fn settings(c: &PeerConfig, scale: f64) -> PeerDefaults {
    let ms = |v: Option<u64>, d: u64| scaled(v.unwrap_or(d), scale);
    PeerDefaults {
        idle_timeout_ms: ms(c.idle_timeout_ms, DEFAULTS.idle_timeout_ms),
        read_timeout_ms: ms(c.read_timeout_ms, DEFAULTS.read_timeout_ms),
        min_body_rate: ((c.min_body_rate.unwrap_or(DEFAULTS.min_body_rate) as f64 / scale) as u64)
            .max(1),
        write_timeout_ms: ms(c.write_timeout_ms, DEFAULTS.write_timeout_ms),
        max_connections: c.max_connections.unwrap_or(DEFAULTS.max_connections),
        max_header_len: c.max_header_len.map_or(DEFAULTS.max_header_len, u64::from),
        max_body_len: c.max_body_len.unwrap_or(DEFAULTS.max_body_len),
    }
}

fn scaled(ms: u64, scale: f64) -> u64 {
    (ms as f64 * scale).round() as u64
}

/// Expands a server command template for one conversation (`spec/conformance.md` §6.2):
/// `{root}`, `{profile}`, `{idle_timeout_ms}`, `{read_timeout_ms}`, `{min_body_rate}`,
/// `{write_timeout_ms}`, `{max_connections}`, `{max_header_len}`, `{max_body_len}` (always a
/// value: the conversation's, or the default), `{idle_timeout_s}`, `{read_timeout_s}`,
/// `{write_timeout_s}` (the same in decimal seconds), `{allow_exec}` (comma-separated, may be empty),
/// `{allow_exec_flags}` (`--allow-exec P` per program) and `{config_flags}` (a
/// `--idle-timeout-ms N`-style flag for each setting the conversation sets, nothing for the
/// others). Returns the command and the same values as `LHP_*` environment variables.
pub fn expand(
    template: &str,
    c: &Conversation,
    root: &Path,
    scale: f64,
) -> (String, Vec<(String, String)>) {
    let allow: Vec<String> = c
        .app
        .as_ref()
        .map(|a| a.allow_exec.clone())
        .unwrap_or_default();
    expand_with(template, &c.config, &c.profile, &allow, root, scale)
}

/// [`expand`] from the parts: settings, profile, exec allow-list.
pub fn expand_with(
    template: &str,
    cfg: &PeerConfig,
    profile: &str,
    allow: &[String],
    root: &Path,
    scale: f64,
) -> (String, Vec<(String, String)>) {
    let s = settings(cfg, scale);
    let mut flags = Vec::new();
    let set: [(&str, Option<u64>); 7] = [
        (
            "idle-timeout-ms",
            cfg.idle_timeout_ms.map(|_| s.idle_timeout_ms),
        ),
        (
            "read-timeout-ms",
            cfg.read_timeout_ms.map(|_| s.read_timeout_ms),
        ),
        ("min-body-rate", cfg.min_body_rate.map(|_| s.min_body_rate)),
        (
            "write-timeout-ms",
            cfg.write_timeout_ms.map(|_| s.write_timeout_ms),
        ),
        ("max-connections", cfg.max_connections),
        ("max-header-len", cfg.max_header_len.map(u64::from)),
        ("max-body-len", cfg.max_body_len),
    ];
    for (flag, v) in set {
        if let Some(v) = v {
            flags.push(format!("--{flag} {v}"));
        }
    }
    if profile != "lhp1" {
        flags.push(format!("--profile {profile}"));
    }
    let values: Vec<(&str, String)> = vec![
        ("root", root.display().to_string()),
        ("profile", profile.to_owned()),
        ("idle_timeout_ms", s.idle_timeout_ms.to_string()),
        ("read_timeout_ms", s.read_timeout_ms.to_string()),
        ("min_body_rate", s.min_body_rate.to_string()),
        ("write_timeout_ms", s.write_timeout_ms.to_string()),
        ("max_connections", s.max_connections.to_string()),
        ("max_header_len", s.max_header_len.to_string()),
        ("max_body_len", s.max_body_len.to_string()),
        ("idle_timeout_s", seconds(s.idle_timeout_ms)),
        ("read_timeout_s", seconds(s.read_timeout_ms)),
        ("write_timeout_s", seconds(s.write_timeout_ms)),
        ("allow_exec", allow.join(",")),
        (
            "allow_exec_flags",
            allow
                .iter()
                .map(|p| format!("--allow-exec {}", shell_quote(p)))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        ("config_flags", flags.join(" ")),
    ];
    let mut cmd = template.to_owned();
    let mut env = Vec::new();
    for (k, v) in &values {
        cmd = cmd.replace(&format!("{{{k}}}"), v);
        if *k != "config_flags" && *k != "allow_exec_flags" {
            env.push((format!("LHP_{}", k.to_ascii_uppercase()), v.clone()));
        }
    }
    (cmd, env)
}

/// Milliseconds as decimal seconds: `400` → `0.4`.
fn seconds(ms: u64) -> String {
    let s = format!("{}.{:03}", ms / 1000, ms % 1000);
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./=:,".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Runs `convs` against `target`; one result per conversation, in the order of `convs`.
/// Against a server command, [`ConvOptions::jobs`] conversations run at once.
pub fn run_conversations(
    target: &Target,
    name: &str,
    convs: &[&Conversation],
    opts: &ConvOptions,
) -> Vec<CaseResult> {
    let jobs = match target {
        Target::Command(_) => opts.jobs.clamp(1, convs.len().max(1)),
        Target::Addr(_) => 1,
    };
    if jobs == 1 {
        return convs
            .iter()
            .map(|c| run_case(target, name, c, opts))
            .collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut out: Vec<Option<CaseResult>> = vec![None; convs.len()];
    thread::scope(|s| {
        let workers: Vec<_> = (0..jobs)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(c) = convs.get(i) else { break };
                        done.push((i, run_case(target, name, c, opts)));
                    }
                    done
                })
            })
            .collect();
        for w in workers {
            // A worker only panics if a conversation's runner does; pass that on.
            let done = w.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            for (i, r) in done {
                if let Some(slot) = out.get_mut(i) {
                    *slot = Some(r);
                }
            }
        }
    });
    out.into_iter().flatten().collect()
}

/// Runs one conversation against `target`.
fn run_case(target: &Target, name: &str, c: &Conversation, opts: &ConvOptions) -> CaseResult {
    let mut r = CaseResult {
        id: c.id.clone(),
        tier: c.tier.clone(),
        status: Status::Pass,
        detail: String::new(),
        failure: None,
        plans: 1,
        sampled: false,
        underived: 0,
    };
    let verdict = match opts.run.skips.iter().find(|s| s.matches(name, &c.id)) {
        Some(s) => Err((Status::Skipped, format!("skips.toml: {}", s.reason))),
        None => match target {
            Target::Addr(addr) => match needs_own_server(c) {
                Some(why) => Err((
                    Status::Skipped,
                    format!("{why}: the harness must start the server (--server-cmd / --app-server-cmd)"),
                )),
                None => run_one(*addr, c, opts.time_scale).map_err(|e| (Status::Fail, e)),
            },
            Target::Command(template) => run_started(template, c, opts),
        },
    };
    if let Err((status, detail)) = verdict {
        r.status = status;
        r.plans = usize::from(status != Status::Skipped);
        r.detail = detail;
    }
    if opts.run.verbose && r.status.is_fail() {
        eprintln!("{name}: {} {}: {}", r.status.name(), r.id, r.detail);
    }
    r
}

/// Why a conversation cannot run against a server someone else started, if it cannot.
fn needs_own_server(c: &Conversation) -> Option<String> {
    if c.config != PeerConfig::default() {
        return Some(format!("needs the settings {:?}", c.config));
    }
    if c.profile != "lhp1" {
        return Some(format!("needs a server in the {} profile", c.profile));
    }
    if c.app.is_some() || c.after.is_some() {
        return Some("needs a served root set up for it".into());
    }
    None
}

fn run_started(
    template: &str,
    c: &Conversation,
    opts: &ConvOptions,
) -> Result<(), (Status, String)> {
    let root = TempRoot::new().map_err(|e| (Status::Crash, format!("cannot make a root: {e}")))?;
    if let Some(app) = &c.app {
        for d in &app.dirs {
            std::fs::create_dir_all(root.path.join(d))
                .map_err(|e| (Status::Crash, format!("cannot create {d}: {e}")))?;
        }
        for (name, hex) in &app.files {
            let data = hex::decode(hex).map_err(|e| {
                (
                    Status::Fail,
                    format!("bad hex for {name} in the vector: {e}"),
                )
            })?;
            let path = root.path.join(name);
            if let Some(parent) = path.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            std::fs::write(&path, data)
                .map_err(|e| (Status::Crash, format!("cannot write {name}: {e}")))?;
        }
    }
    let (cmd, env) = expand(template, c, &root.path, opts.time_scale);
    let mut server =
        ServerProcess::start(&cmd, &env, opts.start_timeout).map_err(|e| (Status::Crash, e))?;
    let result = run_one(server.addr, c, opts.time_scale);
    if let Err(e) = result {
        let exit = server
            .exit_text(Duration::ZERO)
            .map(|t| format!(" ({t})"))
            .unwrap_or_default();
        return Err((Status::Fail, format!("{e}{exit}")));
    }
    if let Some(after) = &c.after {
        for (name, hex) in &after.files {
            let want = hex::decode(hex).unwrap_or_default();
            match std::fs::read(root.path.join(name)) {
                Ok(have) if have == want => {}
                Ok(have) => {
                    return Err((
                        Status::Fail,
                        format!(
                            "afterwards {name} holds {} octets ({}), expected {} ({})",
                            have.len(),
                            preview(&have),
                            want.len(),
                            preview(&want)
                        ),
                    ))
                }
                Err(e) => {
                    return Err((Status::Fail, format!("afterwards {name} should exist: {e}")))
                }
            }
        }
        for name in &after.absent {
            if root.path.join(name).exists() {
                return Err((Status::Fail, format!("afterwards {name} should not exist")));
            }
        }
    }
    Ok(())
}

fn preview(b: &[u8]) -> String {
    let n = b.len().min(24);
    let mut s = hex::encode(b.get(..n).unwrap_or_default());
    if b.len() > n {
        s.push('…');
    }
    s
}

/// A fresh directory under the system's temporary directory, removed when dropped: the served
/// root of a server the harness starts.
#[derive(Debug)]
pub struct TempRoot {
    /// Its path.
    pub path: PathBuf,
}

impl TempRoot {
    /// Creates it.
    pub fn new() -> io::Result<TempRoot> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("lhp-conformance-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        Ok(TempRoot { path })
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Default wait of `expect`/`expect_end` (ms).
const DEFAULT_WITHIN_MS: u64 = 5000;

/// Runs one conversation against `addr`: `Err` names the failing step and what happened.
pub fn run_one(addr: SocketAddr, c: &Conversation, scale: f64) -> Result<(), String> {
    let seed = c.profile == "seed-compat";
    let s = settings(&c.config, scale);
    let guard = Duration::from_millis(s.idle_timeout_ms.min(s.read_timeout_ms) * 9 / 10);
    let small_buffer: Vec<usize> = c
        .steps
        .iter()
        .filter_map(|st| match st {
            Step::StopReading { stop_reading } => Some(*stop_reading),
            _ => None,
        })
        .collect();
    let mut conns: BTreeMap<usize, Conn> = BTreeMap::new();
    let ms = |v: u64| Duration::from_millis(scaled(v, scale));
    for (n, step) in c.steps.iter().enumerate() {
        let at = |e: String| format!("step {n} ({}): {e}", verb(step));
        let id = step_conn(step);
        if let Some(id) = id {
            if let std::collections::btree_map::Entry::Vacant(slot) = conns.entry(id) {
                let conn = Conn::open(addr, small_buffer.contains(&id))
                    .map_err(|e| at(format!("cannot connect to {addr}: {e}")))?;
                slot.insert(conn);
            }
        }
        let conn = id.and_then(|i| conns.get_mut(&i));
        match (step, conn) {
            (Step::Wait { wait_ms }, _) => thread::sleep(ms(*wait_ms)),
            (Step::Send { hex, .. }, Some(conn)) => {
                let data = hex::decode(hex).map_err(|e| at(format!("bad hex in vector: {e}")))?;
                conn.send(data);
            }
            (Step::HalfClose { .. }, Some(conn)) => conn.half_close(),
            (Step::StopReading { .. }, Some(conn)) => conn.stopped = true,
            (
                Step::Expect {
                    frames, within_ms, ..
                },
                Some(conn),
            ) => {
                let deadline = Instant::now() + ms(within_ms.unwrap_or(DEFAULT_WITHIN_MS));
                conn.expect(frames, deadline, seed).map_err(at)?;
            }
            (Step::ExpectEnd { within_ms, .. }, Some(conn)) => {
                let within = ms(within_ms.unwrap_or(DEFAULT_WITHIN_MS));
                conn.expect_end(within, guard, seed).map_err(at)?;
            }
            (Step::ExpectSilence { for_ms, .. }, Some(conn)) => {
                conn.expect_silence(ms(*for_ms), seed).map_err(at)?;
            }
            (_, None) => return Err(at("no connection".into())),
        }
    }
    Ok(())
}

fn step_conn(s: &Step) -> Option<usize> {
    match s {
        Step::Send { send, .. } => Some(*send),
        Step::Expect { expect, .. } => Some(*expect),
        Step::HalfClose { half_close } => Some(*half_close),
        Step::ExpectEnd { expect_end, .. } => Some(*expect_end),
        Step::ExpectSilence { expect_silence, .. } => Some(*expect_silence),
        Step::StopReading { stop_reading } => Some(*stop_reading),
        Step::Wait { .. } => None,
    }
}

fn verb(s: &Step) -> String {
    match s {
        Step::Send { send, note, .. } => match note {
            Some(n) => format!("send on {send}: {n}"),
            None => format!("send on {send}"),
        },
        Step::Expect { expect, frames, .. } => {
            format!("expect {} frame(s) on {expect}", frames.len())
        }
        Step::HalfClose { half_close } => format!("half-close {half_close}"),
        Step::ExpectEnd { expect_end, .. } => format!("expect the end of {expect_end}"),
        Step::ExpectSilence {
            expect_silence,
            for_ms,
        } => format!("expect {for_ms} ms of silence on {expect_silence}"),
        Step::Wait { wait_ms } => format!("wait {wait_ms} ms"),
        Step::StopReading { stop_reading } => format!("stop reading {stop_reading}"),
    }
}

enum ToWriter {
    Data(Vec<u8>),
    HalfClose,
}

#[derive(Debug)]
struct WriterState {
    last_sent: Instant,
    error: Option<String>,
}

/// One connection of a conversation.
struct Conn {
    stream: TcpStream,
    writer: Sender<ToWriter>,
    state: Arc<Mutex<WriterState>>,
    buf: Vec<u8>,
    ended: Option<String>,
    stopped: bool,
    /// Set when the last expected frame was a connection error: when a keep-reading server's
    /// own timeout could start at the earliest.
    error_base: Option<Instant>,
    scratch: Vec<u8>,
}

/// The most the harness keeps of what a peer sent and the script has not consumed.
const MAX_BUFFERED: usize = 256 << 20;

impl Conn {
    fn open(addr: SocketAddr, small_buffer: bool) -> io::Result<Conn> {
        let domain = socket2::Domain::for_address(addr);
        let sock = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
        if small_buffer {
            sock.set_recv_buffer_size(4096)?;
        }
        sock.connect_timeout(&addr.into(), Duration::from_secs(5))?;
        let stream: TcpStream = sock.into();
        stream.set_nodelay(true)?;
        let mut w = stream.try_clone()?;
        w.set_write_timeout(Some(Duration::from_secs(30)))?;
        let state = Arc::new(Mutex::new(WriterState {
            last_sent: Instant::now(),
            error: None,
        }));
        let st = Arc::clone(&state);
        let (writer, rx) = mpsc::channel::<ToWriter>();
        thread::spawn(move || {
            for msg in rx {
                let r = match msg {
                    ToWriter::Data(d) => w.write_all(&d).and_then(|()| w.flush()),
                    ToWriter::HalfClose => w.shutdown(Shutdown::Write),
                };
                if let Ok(mut s) = st.lock() {
                    s.last_sent = Instant::now();
                    if let Err(e) = r {
                        s.error.get_or_insert(e.to_string());
                    }
                }
            }
        });
        Ok(Conn {
            stream,
            writer,
            state,
            buf: Vec::new(),
            ended: None,
            stopped: false,
            error_base: None,
            scratch: vec![0u8; 64 << 10],
        })
    }

    fn send(&mut self, data: Vec<u8>) {
        if let Ok(mut s) = self.state.lock() {
            s.last_sent = Instant::now();
        }
        let _ = self.writer.send(ToWriter::Data(data));
    }

    fn half_close(&mut self) {
        let _ = self.writer.send(ToWriter::HalfClose);
    }

    fn last_sent(&self) -> Instant {
        self.state
            .lock()
            .map(|s| s.last_sent)
            .unwrap_or_else(|_| Instant::now())
    }

    fn write_error(&self) -> String {
        match self.state.lock().ok().and_then(|s| s.error.clone()) {
            Some(e) => format!(" (our write failed: {e})"),
            None => String::new(),
        }
    }

    /// Reads once, until `deadline` at most: `true` if octets arrived.
    fn read_more(&mut self, deadline: Instant) -> bool {
        if self.ended.is_some() {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        if self.stream.set_read_timeout(Some(left)).is_err() {
            return false;
        }
        match self.stream.read(&mut self.scratch) {
            Ok(0) => {
                self.ended = Some("the server closed the connection".into());
                false
            }
            Ok(n) => {
                if self.buf.len() < MAX_BUFFERED {
                    self.buf
                        .extend_from_slice(self.scratch.get(..n).unwrap_or_default());
                }
                true
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => false,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                false
            }
            Err(e) => {
                self.ended = Some(format!("the connection was reset ({e})"));
                false
            }
        }
    }

    fn expect(
        &mut self,
        patterns: &[FramePattern],
        deadline: Instant,
        seed: bool,
    ) -> Result<(), String> {
        let want = patterns.len();
        loop {
            let (frames, _) = split_frames(&self.buf, seed)
                .map_err(|e| format!("the server sent octets that are not frames: {e}"))?;
            if frames.len() >= want {
                let mut used = 0;
                for (i, (p, f)) in patterns.iter().zip(&frames).enumerate() {
                    p.check(f).map_err(|e| format!("frame {i}: {e}"))?;
                    used += f.raw.len();
                }
                self.buf.drain(..used.min(self.buf.len()));
                self.error_base = frames.get(want.wrapping_sub(1)).and_then(|f| {
                    let h = &f.header;
                    let fatal = h.get("kind").and_then(Value::as_str) == Some("error")
                        && h.contains_key("offset");
                    fatal.then(|| {
                        if h.get("code").and_then(Value::as_str) == Some("timeout") {
                            Instant::now()
                        } else {
                            self.last_sent()
                        }
                    })
                });
                return Ok(());
            }
            if let Some(how) = &self.ended {
                return Err(format!(
                    "{how} after {} of {want} expected frame(s){}{}",
                    frames.len(),
                    describe(&frames, self.buf.len()),
                    self.write_error()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} of {want} expected frame(s) arrived in time{}",
                    frames.len(),
                    describe(&frames, self.buf.len())
                ));
            }
            self.read_more(deadline);
        }
    }

    fn expect_end(&mut self, within: Duration, guard: Duration, seed: bool) -> Result<(), String> {
        let now = Instant::now();
        let mut deadline = now + within;
        let mut capped = false;
        if let Some(base) = self.error_base {
            let limit = base + guard;
            if limit < deadline {
                deadline = limit.max(now);
                capped = true;
            }
        }
        loop {
            if self.stopped {
                self.buf.clear();
            } else if !self.buf.is_empty() {
                let frames = split_frames(&self.buf, seed)
                    .map(|(f, _)| f)
                    .unwrap_or_default();
                return Err(format!(
                    "the server sent more instead of ending the connection{}",
                    describe(&frames, self.buf.len())
                ));
            }
            if self.ended.is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(if capped {
                    format!(
                        "the connection was still open {} ms after the error frame's cause; the \
                         bound is 0.9 × min(idle_timeout, read_timeout) = {} ms after the last \
                         octet sent, so that a server that keeps reading cannot pass by closing \
                         at its own timeout",
                        deadline
                            .saturating_duration_since(self.error_base.unwrap_or(now))
                            .as_millis(),
                        guard.as_millis()
                    )
                } else {
                    format!(
                        "the connection was still open after {} ms",
                        within.as_millis()
                    )
                });
            }
            self.read_more(deadline);
        }
    }

    fn expect_silence(&mut self, dur: Duration, seed: bool) -> Result<(), String> {
        let deadline = Instant::now() + dur;
        loop {
            if !self.buf.is_empty() && !self.stopped {
                let frames = split_frames(&self.buf, seed)
                    .map(|(f, _)| f)
                    .unwrap_or_default();
                return Err(format!(
                    "the server sent octets during {} ms of expected silence{}",
                    dur.as_millis(),
                    describe(&frames, self.buf.len())
                ));
            }
            if let Some(how) = &self.ended {
                return Err(format!(
                    "{how} during {} ms of expected silence",
                    dur.as_millis()
                ));
            }
            if Instant::now() >= deadline {
                return Ok(());
            }
            self.read_more(deadline);
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// `: got [header, header] and 3 more octets`.
fn describe(frames: &[ReceivedFrame], buffered: usize) -> String {
    if frames.is_empty() && buffered == 0 {
        return String::new();
    }
    let used: usize = frames.iter().map(|f| f.raw.len()).sum();
    let mut s = String::from(": got ");
    let heads: Vec<String> = frames
        .iter()
        .take(4)
        .map(|f| {
            let full = Value::Object(f.header.clone()).to_string();
            let mut h: String = full.chars().take(200).collect();
            if h.len() < full.len() {
                h.push('…');
            }
            if f.body.is_empty() {
                h
            } else {
                format!("{h}+{} octets", f.body.len())
            }
        })
        .collect();
    s.push_str(&heads.join(", "));
    if frames.len() > 4 {
        s.push_str(&format!(" and {} more frames", frames.len() - 4));
    }
    if buffered > used {
        s.push_str(&format!(
            " and {} octets of an incomplete frame",
            buffered - used
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(json: &str) -> Conversation {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn placeholders_expand_with_defaults_and_scaling() {
        let c = conv(
            r#"{"id":"behaviour/x","spec":"11.2","description":"d",
                "config":{"read_timeout_ms":400,"max_connections":1},
                "app":{"allow_exec":["echo","my prog"]},"steps":[]}"#,
        );
        let (cmd, env) = expand(
            "srv --root {root} --idle {idle_timeout_ms} --read {read_timeout_ms} {config_flags} {allow_exec_flags} [{allow_exec}]",
            &c,
            Path::new("/tmp/r"),
            2.0,
        );
        assert_eq!(
            cmd,
            "srv --root /tmp/r --idle 120000 --read 800 --read-timeout-ms 800 --max-connections 1 \
             --allow-exec echo --allow-exec 'my prog' [echo,my prog]"
        );
        assert!(env.contains(&("LHP_READ_TIMEOUT_MS".into(), "800".into())));
        assert!(env.contains(&("LHP_MIN_BODY_RATE".into(), "32768".into())));
        assert!(env.contains(&("LHP_READ_TIMEOUT_S".into(), "0.8".into())));
        assert_eq!(seconds(60_000), "60");
        assert_eq!(seconds(1_250), "1.25");
    }

    #[test]
    fn a_configured_conversation_is_skipped_against_a_running_server() {
        let c = conv(
            r#"{"id":"behaviour/x","spec":"11.2","description":"d",
                "config":{"read_timeout_ms":400},"steps":[]}"#,
        );
        let r = run_conversations(
            &Target::Addr(SocketAddr::from(([127, 0, 0, 1], 9))),
            "server:x",
            &[&c],
            &ConvOptions::default(),
        );
        assert_eq!(r[0].status, Status::Skipped);
        assert!(
            r[0].detail.contains("must start the server"),
            "{}",
            r[0].detail
        );
    }
}
