//! Runs conversation vectors (`spec/vectors/conversations/*.json`, schema in
//! [`lhp_vectors::conversation`]) three ways: against the sans-IO connection machine in virtual
//! time ([`run_virtual`]: timeouts without sleeping) and against a server over loopback
//! ([`run_socket`]). Both return a [`Transcript`] — every octet each connection received and
//! whether it ended — so a test can assert that engines are byte-identical to the machine.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use lhp_codec::conn::{Config, Connection, Role};
use lhp_codec::{Limits, Profile};
use lhp_vectors::conversation::{
    load_conversations, split_frames, Conversation, FramePattern, PeerConfig, Step,
};

/// Default wait of `expect` / `expect_end` steps without `within_ms`.
const DEFAULT_WITHIN: Duration = Duration::from_millis(5000);

/// What each connection of a conversation received, in order, and whether it ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transcript {
    /// Per connection: (every octet received, ended).
    pub conns: Vec<(Vec<u8>, bool)>,
}

/// The connection settings a conversation asks for, on top of the defaults (E4).
pub fn config_for(conv: &Conversation) -> Config {
    let mut config = Config::new();
    let p: &PeerConfig = &conv.config;
    let ms = Duration::from_millis;
    if let Some(v) = p.idle_timeout_ms {
        config.set_idle_timeout(ms(v));
    }
    if let Some(v) = p.read_timeout_ms {
        config.set_read_timeout(ms(v));
    }
    if let Some(v) = p.write_timeout_ms {
        config.set_write_timeout(ms(v));
    }
    if let Some(v) = p.min_body_rate {
        config.set_min_body_rate(v);
    }
    if let Some(v) = p.max_connections {
        config.set_max_connections(usize::try_from(v).unwrap_or(usize::MAX));
    }
    let mut limits = Limits::new();
    if let Some(v) = p.max_header_len {
        limits = limits.with_max_header_len(v);
    }
    if let Some(v) = p.max_body_len {
        limits = limits.with_max_body_len(v);
    }
    config.set_limits(limits);
    config.set_profile(if conv.profile == "seed-compat" {
        Profile::SeedCompat
    } else {
        Profile::Lhp1
    });
    config
}

/// Loads one group file (`behaviour.json`, `app.json`) from `dir`; `None` if it is absent.
pub fn load_group(dir: &Path, file: &str) -> Option<Vec<Conversation>> {
    let path = dir.join(file);
    if !path.exists() {
        return None;
    }
    // The loader reads a directory: give it one holding just this file.
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = std::env::temp_dir().join(format!(
        "lhp-conv-{}-{n}-{}",
        std::process::id(),
        file.replace('.', "-")
    ));
    let _ = std::fs::create_dir_all(&tmp);
    std::fs::copy(&path, tmp.join(file)).ok()?;
    let loaded = load_conversations(&tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    match loaded {
        Ok(c) => Some(c),
        Err(e) => panic!("{e}"),
    }
}

fn hex(s: &str, id: &str) -> Result<Vec<u8>, String> {
    hex_decode(s).ok_or_else(|| format!("{id}: bad hex in vector"))
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Checks that `got[*consumed..]` holds the frames of `patterns`; advances `consumed`.
/// `Ok(false)` if not enough octets have arrived yet.
fn match_frames(
    conv: &Conversation,
    got: &[u8],
    consumed: &mut usize,
    patterns: &[FramePattern],
) -> Result<bool, String> {
    let seed = conv.profile == "seed-compat";
    let (frames, _) = split_frames(&got[*consumed..], seed)
        .map_err(|e| format!("{}: {e} in {:02x?}", conv.id, &got[*consumed..]))?;
    if frames.len() < patterns.len() {
        return Ok(false);
    }
    for (i, (p, f)) in patterns.iter().zip(&frames).enumerate() {
        p.check(f)
            .map_err(|e| format!("{}: frame {i}: {e}", conv.id))?;
        *consumed += f.raw.len();
    }
    Ok(true)
}

/// Runs `conv` against the sans-IO machine in `role`, in virtual time, checking every step.
pub fn run_virtual(conv: &Conversation, role: Role) -> Result<Transcript, String> {
    struct V {
        conn: Connection,
        got: Vec<u8>,
        consumed: usize,
        ended: bool,
        reading: bool,
    }
    let config = config_for(conv);
    let t0 = Instant::now();
    let mut now = t0;
    let mut conns: Vec<Option<V>> = Vec::new();
    let open = |conns: &mut Vec<Option<V>>, c: usize, now: Instant| {
        while conns.len() <= c {
            conns.push(None);
        }
        if conns[c].is_none() {
            let live = conns
                .iter()
                .flatten()
                .filter(|v| !v.conn.is_closed())
                .count();
            let conn = if config.admits(live) {
                Connection::new(config, role, now)
            } else {
                Connection::busy(config, now)
            };
            conns[c] = Some(V {
                conn,
                got: Vec::new(),
                consumed: 0,
                ended: false,
                reading: true,
            });
        }
    };
    fn pump(v: &mut V, now: Instant) {
        if v.reading {
            let out = v.conn.take_pending(now);
            v.got.extend_from_slice(&out);
            if v.conn.pending_len() == 0 && (v.conn.is_write_closed() || v.conn.is_closed()) {
                v.ended = true;
            }
        }
    }
    fn advance(conns: &mut [Option<V>], now: &mut Instant, to: Instant) {
        loop {
            let next = conns
                .iter()
                .flatten()
                .filter_map(|v| v.conn.poll_timeout())
                .min();
            match next {
                Some(t) if t <= to => {
                    *now = (*now).max(t);
                    for v in conns.iter_mut().flatten() {
                        if v.conn.poll_timeout().is_some_and(|d| d <= *now) {
                            v.conn.handle_timeout(*now);
                        }
                        pump(v, *now);
                    }
                }
                _ => break,
            }
        }
        *now = (*now).max(to);
    }
    for step in &conv.steps {
        match step {
            Step::Send { send, hex: h, .. } => {
                open(&mut conns, *send, now);
                let data = hex(h, &conv.id)?;
                if let Some(v) = conns[*send].as_mut() {
                    v.conn.handle_input(&data, now);
                    pump(v, now);
                }
            }
            Step::HalfClose { half_close } => {
                open(&mut conns, *half_close, now);
                if let Some(v) = conns[*half_close].as_mut() {
                    v.conn.handle_eof(now);
                    pump(v, now);
                }
            }
            Step::Expect {
                expect,
                frames,
                within_ms,
            } => {
                open(&mut conns, *expect, now);
                let deadline = now + within_ms.map_or(DEFAULT_WITHIN, Duration::from_millis);
                loop {
                    let done = {
                        let Some(v) = conns[*expect].as_mut() else {
                            return Err("no connection".into());
                        };
                        pump(v, now);
                        match_frames(conv, &v.got, &mut v.consumed, frames)?
                    };
                    if done {
                        break;
                    }
                    let next = conns
                        .iter()
                        .flatten()
                        .filter_map(|v| v.conn.poll_timeout())
                        .min();
                    match next {
                        Some(t) if t <= deadline => advance(&mut conns, &mut now, t),
                        _ => {
                            let v = conns[*expect].as_ref().map(|v| &v.got[v.consumed..]);
                            return Err(format!(
                                "{}: connection {expect}: expected {} frame(s), have {:02x?}",
                                conv.id,
                                frames.len(),
                                v
                            ));
                        }
                    }
                }
            }
            Step::ExpectEnd {
                expect_end,
                within_ms,
            } => {
                open(&mut conns, *expect_end, now);
                let deadline = now + within_ms.map_or(DEFAULT_WITHIN, Duration::from_millis);
                loop {
                    let Some(v) = conns[*expect_end].as_mut() else {
                        return Err("no connection".into());
                    };
                    pump(v, now);
                    if v.got.len() > v.consumed {
                        return Err(format!(
                            "{}: connection {expect_end}: octets before the end: {:02x?}",
                            conv.id,
                            &v.got[v.consumed..]
                        ));
                    }
                    if v.ended {
                        break;
                    }
                    match v.conn.poll_timeout() {
                        Some(t) if t <= deadline => advance(&mut conns, &mut now, t),
                        _ => {
                            return Err(format!("{}: connection {expect_end} did not end", conv.id))
                        }
                    }
                }
            }
            Step::ExpectSilence {
                expect_silence,
                for_ms,
            } => {
                open(&mut conns, *expect_silence, now);
                let before = conns[*expect_silence].as_ref().map_or(0, |v| v.got.len());
                let to = now + Duration::from_millis(*for_ms);
                advance(&mut conns, &mut now, to);
                if let Some(v) = conns[*expect_silence].as_mut() {
                    pump(v, now);
                    if v.got.len() != before || v.ended {
                        return Err(format!(
                            "{}: connection {expect_silence} was not silent",
                            conv.id
                        ));
                    }
                }
            }
            Step::Wait { wait_ms } => {
                let to = now + Duration::from_millis(*wait_ms);
                advance(&mut conns, &mut now, to);
            }
            Step::StopReading { stop_reading } => {
                open(&mut conns, *stop_reading, now);
                if let Some(v) = conns[*stop_reading].as_mut() {
                    v.reading = false;
                }
            }
        }
    }
    Ok(Transcript {
        conns: conns
            .into_iter()
            .map(|v| v.map_or((Vec::new(), false), |v| (v.got, v.ended)))
            .collect(),
    })
}

/// Runs `conv` against the server at `addr` over loopback, checking every step.
pub fn run_socket(conv: &Conversation, addr: SocketAddr) -> Result<Transcript, String> {
    struct S {
        stream: TcpStream,
        got: Vec<u8>,
        consumed: usize,
        ended: bool,
    }
    let mut conns: Vec<Option<S>> = Vec::new();
    let id = &conv.id;
    let open = |conns: &mut Vec<Option<S>>, c: usize| -> Result<(), String> {
        while conns.len() <= c {
            conns.push(None);
        }
        if conns[c].is_none() {
            let stream =
                TcpStream::connect(addr).map_err(|e| format!("{id}: connect {addr}: {e}"))?;
            let _ = stream.set_nodelay(true);
            conns[c] = Some(S {
                stream,
                got: Vec::new(),
                consumed: 0,
                ended: false,
            });
        }
        Ok(())
    };
    /// Reads once, waiting until `deadline`; false if nothing came.
    fn read_some(s: &mut S, deadline: Instant) -> bool {
        if s.ended {
            return false;
        }
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return false;
        };
        let _ = s
            .stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))));
        let mut buf = [0u8; 65536];
        match s.stream.read(&mut buf) {
            Ok(0) => {
                s.ended = true;
                true
            }
            Ok(n) => {
                s.got.extend_from_slice(&buf[..n]);
                true
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                false
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => true,
            Err(_) => {
                // A reset ends the connection too.
                s.ended = true;
                true
            }
        }
    }
    for step in &conv.steps {
        match step {
            Step::Send { send, hex: h, .. } => {
                open(&mut conns, *send)?;
                let data = hex(h, id)?;
                if let Some(s) = conns[*send].as_mut() {
                    // A server that already closed may refuse the octets: what it sent still
                    // decides the case.
                    let _ = s.stream.write_all(&data);
                }
            }
            Step::HalfClose { half_close } => {
                open(&mut conns, *half_close)?;
                if let Some(s) = conns[*half_close].as_mut() {
                    let _ = s.stream.shutdown(Shutdown::Write);
                }
            }
            Step::Expect {
                expect,
                frames,
                within_ms,
            } => {
                open(&mut conns, *expect)?;
                let deadline =
                    Instant::now() + within_ms.map_or(DEFAULT_WITHIN, Duration::from_millis);
                let Some(s) = conns[*expect].as_mut() else {
                    return Err("no connection".into());
                };
                loop {
                    if match_frames(conv, &s.got, &mut s.consumed, frames)? {
                        break;
                    }
                    if !read_some(s, deadline) {
                        return Err(format!(
                            "{id}: connection {expect}: expected {} frame(s), have {:02x?}",
                            frames.len(),
                            &s.got[s.consumed..]
                        ));
                    }
                }
            }
            Step::ExpectEnd {
                expect_end,
                within_ms,
            } => {
                open(&mut conns, *expect_end)?;
                let deadline =
                    Instant::now() + within_ms.map_or(DEFAULT_WITHIN, Duration::from_millis);
                let Some(s) = conns[*expect_end].as_mut() else {
                    return Err("no connection".into());
                };
                while !s.ended {
                    if !read_some(s, deadline) {
                        return Err(format!("{id}: connection {expect_end} did not end"));
                    }
                }
                if s.got.len() > s.consumed {
                    return Err(format!(
                        "{id}: connection {expect_end}: octets before the end: {:02x?}",
                        &s.got[s.consumed..]
                    ));
                }
            }
            Step::ExpectSilence {
                expect_silence,
                for_ms,
            } => {
                open(&mut conns, *expect_silence)?;
                let Some(s) = conns[*expect_silence].as_mut() else {
                    return Err("no connection".into());
                };
                let before = s.got.len();
                let deadline = Instant::now() + Duration::from_millis(*for_ms);
                while Instant::now() < deadline {
                    read_some(s, deadline);
                    if s.got.len() != before || s.ended {
                        return Err(format!("{id}: connection {expect_silence} was not silent"));
                    }
                }
            }
            Step::Wait { wait_ms } => std::thread::sleep(Duration::from_millis(*wait_ms)),
            Step::StopReading { stop_reading } => open(&mut conns, *stop_reading)?,
        }
    }
    Ok(Transcript {
        conns: conns
            .into_iter()
            .map(|s| s.map_or((Vec::new(), false), |s| (s.got, s.ended)))
            .collect(),
    })
}

/// The repository's `spec/vectors/conversations` directory.
pub fn conversation_dir() -> std::path::PathBuf {
    lhp_vectors::conversation::default_conversation_dir()
}

/// Runs every conversation of `behaviour.json` against the machine and against a server each
/// conversation gets from `start` (called with the conversation's [`Config`]; it returns the
/// address and a guard that stops the server when dropped), and asserts identical transcripts.
/// Returns how many conversations ran.
pub fn behaviour_table<G>(engine: &str, mut start: impl FnMut(Config) -> (SocketAddr, G)) -> usize {
    let dir = conversation_dir();
    let Some(convs) = load_group(&dir, "behaviour.json") else {
        panic!("{} is missing", dir.join("behaviour.json").display());
    };
    let mut failures = Vec::new();
    for conv in &convs {
        let want = match run_virtual(conv, Role::EchoServer) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("machine: {e}"));
                continue;
            }
        };
        eprintln!("{engine}: {}", conv.id);
        let (addr, guard) = start(config_for(conv));
        match run_socket(conv, addr) {
            Ok(got) if got == want => {}
            Ok(got) => failures.push(format!(
                "{engine}: {}: transcript differs from the machine's:\n  {engine}: {:02x?}\n  machine: {:02x?}",
                conv.id, got, want
            )),
            Err(e) => failures.push(format!("{engine}: {e}")),
        }
        drop(guard);
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    convs.len()
}
