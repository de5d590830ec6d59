//! `--server HOST:PORT`: an echo server under test, driven over real TCP
//! (`spec/conformance.md` §4).
//!
//! Echo cases send valid `lhp1` vectors, re-encoded as `echo` frames, under a few split plans
//! (one fresh connection per plan, `TCP_NODELAY`, one write per chunk with a pause) and check
//! every reply member for member and octet for octet. Bad-input cases send a selection of
//! invalid vectors and judge how the connection ends, then check that the server still serves
//! a fresh connection.

use std::io::Write;
use std::net::{Shutdown, SocketAddr};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use lhp_codec::{Decoder, Encoder, Frame, Header, Limits, Profile};
use lhp_vectors::Expect;
use serde_json::Value;

use crate::case::Case;
use crate::plan::{Plan, Strategy};
use crate::runner::{CaseResult, Failure, ImplReport, Options, Status};
use crate::tcp::{connect, same_frame, tcp_plans, write_plan, Reply, ReplyReader};

/// How the server mode runs.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// The run options (seed, skips, verbosity).
    pub run: Options,
    /// How long to wait for any expected reply.
    pub timeout: Duration,
    /// How long after the last octet a bad-input connection may stay open ("hang").
    pub hang: Duration,
    /// The pause between chunks.
    pub pause: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            run: Options::default(),
            timeout: Duration::from_secs(5),
            hang: Duration::from_secs(2),
            pause: crate::tcp::DEFAULT_PAUSE,
        }
    }
}

/// Cut points per echo case.
const CUTS: usize = 4;
/// `bytes` plans for echo streams up to this length.
const BYTES_UP_TO: usize = 96;
/// Random partitions per echo case.
const RANDOMS: usize = 2;

/// What the server mode does with one case.
#[derive(Clone, Debug)]
pub enum ServerCase {
    /// A valid stream re-encoded as echo frames.
    Echo {
        /// The octets to send.
        wire: Vec<u8>,
        /// The replies expected, in order (the frames sent).
        expected: Vec<Frame>,
        /// Frame boundaries in `wire`.
        boundaries: Vec<usize>,
    },
    /// An invalid stream: echoes of the frames before the error, then an error frame.
    Bad {
        /// The octets to send (frames before the error re-encoded as echo frames).
        wire: Vec<u8>,
        /// The echoes expected before the error.
        before: Vec<Frame>,
        /// The expected error code.
        code: String,
        /// The expected error offset in `wire`.
        offset: u64,
        /// Whether the harness half-closes after sending (truncation cases).
        half_close: bool,
    },
}

/// The cases the server mode runs, by index into `cases` (§4): every valid `lhp1` vector with
/// default limits and no skipped octets as an echo case, and a selection of invalid ones:
/// each error code once, up to 6 `wrong-protocol/` vectors, up to 4 each of
/// `header_len_too_large` and `body_too_large` (the limit cases) and 3 truncations.
pub fn selection(cases: &[Case]) -> Vec<(usize, ServerCase)> {
    let mut out = Vec::new();
    let mut per_code: Vec<(String, usize)> = Vec::new();
    let mut wrong_protocol = 0;
    for (i, c) in cases.iter().enumerate() {
        let v = &c.vector;
        if c.profile != Profile::Lhp1 || v.limits.is_some() || v.skip_bytes != 0 {
            continue;
        }
        if c.id().starts_with("coalesced/") {
            continue;
        }
        match &v.expect {
            Expect::Valid { .. } => {
                if let Some(e) = echo_case(c) {
                    out.push((i, e));
                }
            }
            Expect::Invalid { error, .. } if v.tier == "required" => {
                let seen = per_code
                    .iter()
                    .find(|(code, _)| *code == error.code)
                    .map_or(0, |(_, n)| *n);
                let cap = match error.code.as_str() {
                    "header_len_too_large" | "body_too_large" => 4,
                    "unexpected_eof" => 3,
                    _ => 1,
                };
                let wp = c.id().starts_with("wrong-protocol/") && wrong_protocol < 6;
                if seen >= cap && !wp {
                    continue;
                }
                let Some(b) = bad_case(c) else { continue };
                if wp {
                    wrong_protocol += 1;
                }
                match per_code.iter_mut().find(|(code, _)| *code == error.code) {
                    Some((_, n)) => *n += 1,
                    None => per_code.push((error.code.clone(), 1)),
                }
                out.push((i, b));
            }
            _ => {}
        }
    }
    out
}

/// Decodes `stream` (`lhp1`, default limits) and re-encodes every frame as an echo frame.
fn as_echoes(stream: &[u8]) -> Option<(Vec<u8>, Vec<Frame>, Vec<usize>)> {
    let mut dec = Decoder::with(Profile::Lhp1, Limits::new());
    let mut buf = BytesMut::from(stream);
    let mut wire = BytesMut::new();
    let mut boundaries = vec![0];
    while let Some(f) = dec.decode_eof(&mut buf).ok()? {
        let members: Vec<(&str, Value)> = f
            .header
            .members()
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let echo = echo_frame_with(&members, f.body.clone());
        Encoder::new().encode(&echo, &mut wire).ok()?;
        boundaries.push(wire.len());
    }
    // What the server must send back is what it receives: decode our own wire form.
    let mut dec = Decoder::with(Profile::Lhp1, Limits::new());
    let mut again = wire.clone();
    let mut frames = Vec::new();
    while let Some(f) = dec.decode_eof(&mut again).ok()? {
        frames.push(f);
    }
    Some((wire.to_vec(), frames, boundaries))
}

fn echo_case(c: &Case) -> Option<ServerCase> {
    let (wire, expected, boundaries) = as_echoes(c.stream())?;
    if expected.is_empty() {
        return None;
    }
    Some(ServerCase::Echo {
        wire,
        expected,
        boundaries,
    })
}

fn bad_case(c: &Case) -> Option<ServerCase> {
    let Expect::Invalid { frames, error } = &c.vector.expect else {
        return None;
    };
    let start = match &c.layout {
        Some(l) => usize::try_from(*l.bounds.get(frames.len())?).ok()?,
        None if frames.is_empty() => 0,
        None => return None,
    };
    let stream = c.stream();
    let (mut wire, before, _) = as_echoes(stream.get(..start)?)?;
    if before.len() != frames.len() {
        return None;
    }
    let new_start = wire.len() as u64;
    wire.extend_from_slice(stream.get(start..)?);
    let offset = error.offset.checked_sub(start as u64)? + new_start;
    Some(ServerCase::Bad {
        wire,
        before,
        half_close: error.code == "unexpected_eof",
        code: error.code.clone(),
        offset,
    })
}

/// Runs the server mode against the echo server at `addr`. Every case gets a result (cases
/// outside the selection are `skipped`), so the report lines up with `cases`.
pub fn run_server(
    addr: SocketAddr,
    name: &str,
    cases: &[Case],
    opts: &ServerOptions,
) -> ImplReport {
    let start = Instant::now();
    let chosen = selection(cases);
    let mut results: Vec<CaseResult> = cases
        .iter()
        .map(|c| {
            let mut r = blank(c, Status::Skipped);
            r.detail = "not in the --server selection (spec/conformance.md §4)".into();
            r
        })
        .collect();
    for (i, sc) in &chosen {
        let Some(case) = cases.get(*i) else { continue };
        let skip = opts.run.skips.iter().find(|s| s.matches(name, case.id()));
        let r = match skip {
            Some(s) => {
                let mut r = blank(case, Status::Skipped);
                r.detail = format!("skips.toml: {}", s.reason);
                r
            }
            None => match sc {
                ServerCase::Echo {
                    wire,
                    expected,
                    boundaries,
                } => run_echo(addr, case, wire, expected, boundaries, opts),
                ServerCase::Bad { .. } => run_bad(addr, case, sc, opts),
            },
        };
        if opts.run.verbose && r.status.is_fail() {
            eprintln!("{name}: {} {}: {}", r.status.name(), r.id, r.detail);
        }
        if let Some(slot) = results.get_mut(*i) {
            *slot = r;
        }
    }
    let echoes = chosen
        .iter()
        .filter(|(_, c)| matches!(c, ServerCase::Echo { .. }))
        .count();
    ImplReport {
        name: name.to_owned(),
        about: format!(
            "echo server over TCP: {echoes} echo cases (whole, {CUTS} cuts, bytes ≤{BYTES_UP_TO} octets, \
             {RANDOMS} random; {} ms pause), {} bad-input cases with a connection-end verdict",
            opts.pause.as_millis(),
            chosen.len() - echoes
        ),
        results,
        groups: Vec::new(),
        elapsed: start.elapsed(),
    }
}

fn blank(case: &Case, status: Status) -> CaseResult {
    CaseResult {
        id: case.id().to_owned(),
        tier: case.vector.tier.clone(),
        status,
        detail: String::new(),
        failure: None,
        plans: 0,
        sampled: false,
        underived: 0,
    }
}

fn failed(
    mut r: CaseResult,
    status: Status,
    strategy: Strategy,
    plan: &Plan,
    expected: String,
    got: String,
    reason: String,
) -> CaseResult {
    let cuts = plan.cuts();
    r.status = status;
    r.detail = format!(
        "{strategy} plan{}: {reason}",
        if cuts.is_empty() {
            " (one chunk)".to_owned()
        } else {
            format!(" cut at {cuts:?}")
        }
    );
    r.failure = Some(Failure {
        strategy,
        cuts,
        truncate: None,
        shrunk: false,
        expected,
        got,
        reason,
    });
    r
}

/// Sends `wire` under `plan` on a new connection from a writer thread (the server may echo
/// while we write), optionally half-closing after the last chunk. Returns the reader and a
/// receiver that reports when (and whether) the writer finished.
fn send(
    addr: SocketAddr,
    wire: &[u8],
    plan: &Plan,
    half_close: bool,
    opts: &ServerOptions,
) -> Result<(ReplyReader, mpsc::Receiver<Result<(), String>>), String> {
    let stream =
        connect(addr, opts.timeout).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let mut w = stream
        .try_clone()
        .map_err(|e| format!("cannot clone the socket: {e}"))?;
    let (tx, rx) = mpsc::channel();
    let wire = wire.to_vec();
    let plan = plan.clone();
    let pause = opts.pause;
    thread::spawn(move || {
        let mut r =
            write_plan(&mut w, &wire, &plan, pause).map_err(|e| format!("write failed: {e}"));
        if half_close && r.is_ok() {
            r = w
                .shutdown(Shutdown::Write)
                .map_err(|e| format!("shutdown failed: {e}"));
        }
        let _ = tx.send(r);
    });
    Ok((ReplyReader::new(stream), rx))
}

fn run_echo(
    addr: SocketAddr,
    case: &Case,
    wire: &[u8],
    expected: &[Frame],
    boundaries: &[usize],
    opts: &ServerOptions,
) -> CaseResult {
    let mut r = blank(case, Status::Pass);
    let want = format!(
        "{} echo reply(s), then a close after our end of stream",
        expected.len()
    );
    let seed = opts.run.seed ^ crate::runner::hash(case.id());
    for (strategy, plan) in tcp_plans(wire.len(), boundaries, CUTS, BYTES_UP_TO, RANDOMS, seed) {
        r.plans += 1;
        let fail = |r: CaseResult, status, got: String, why: String| {
            failed(r, status, strategy, &plan, want.clone(), got, why)
        };
        let (mut reader, done) = match send(addr, wire, &plan, true, opts) {
            Ok(x) => x,
            Err(e) => return fail(r, Status::Crash, String::new(), e),
        };
        let deadline = Instant::now() + opts.timeout + opts.pause * plan.len() as u32;
        for (i, w) in expected.iter().enumerate() {
            let got = format!("{i} echo reply(s)");
            match reader.next(deadline) {
                Reply::Frame(f) => {
                    if let Err(e) = same_frame(&f, w) {
                        return fail(r, Status::Fail, got, format!("reply {i}: {e}"));
                    }
                }
                Reply::Timeout => {
                    return fail(r, Status::Timeout, got, format!("no reply {i} in time"))
                }
                Reply::Closed => {
                    return fail(r, Status::Fail, got, format!("closed before reply {i}"))
                }
                Reply::Reset(e) => {
                    return fail(r, Status::Fail, got, format!("reset before reply {i}: {e}"))
                }
                Reply::Garbage(e) => return fail(r, Status::Fail, got, e),
            }
        }
        let _ = done.recv_timeout(opts.timeout);
        match reader.next(Instant::now() + opts.hang) {
            Reply::Closed | Reply::Reset(_) => {}
            Reply::Frame(f) => {
                return fail(
                    r,
                    Status::Fail,
                    "an extra frame".into(),
                    format!("an extra frame after the echoes: {}", f.header),
                )
            }
            Reply::Timeout => {
                return fail(
                    r,
                    Status::Fail,
                    "the connection stayed open".into(),
                    format!("hang: not closed {:?} after our end of stream", opts.hang),
                )
            }
            Reply::Garbage(e) => return fail(r, Status::Fail, String::new(), e),
        }
    }
    r
}

fn run_bad(addr: SocketAddr, case: &Case, sc: &ServerCase, opts: &ServerOptions) -> CaseResult {
    let ServerCase::Bad {
        wire,
        before,
        code,
        offset,
        half_close,
    } = sc
    else {
        return blank(case, Status::Skipped);
    };
    let mut r = blank(case, Status::Pass);
    r.plans = 1;
    let plan = Plan::whole(wire.len());
    let strategy = if *half_close {
        Strategy::Truncate
    } else {
        Strategy::Whole
    };
    let want = format!(
        "{} echo reply(s), then an error frame {code} at {offset}, then a close",
        before.len()
    );
    let fail = |r: CaseResult, got: String, why: String| {
        failed(r, Status::Fail, strategy, &plan, want.clone(), got, why)
    };
    let (mut reader, done) = match send(addr, wire, &plan, *half_close, opts) {
        Ok(x) => x,
        Err(e) => return failed(r, Status::Crash, strategy, &plan, want, String::new(), e),
    };
    let deadline = Instant::now() + opts.timeout;
    for (i, w) in before.iter().enumerate() {
        match reader.next(deadline) {
            Reply::Frame(f) => {
                if let Err(e) = same_frame(&f, w) {
                    return fail(r, format!("{i} echoes"), format!("reply {i}: {e}"));
                }
            }
            other => {
                return fail(r, format!("{i} echoes"), format!("reply {i}: {other:?}"));
            }
        }
    }
    let _ = done.recv_timeout(opts.timeout);
    let hang = Instant::now() + opts.hang;
    let mut non_strict = None;
    match reader.next(hang) {
        Reply::Frame(f) => {
            let h = f.header.members();
            let got_code = h.get("code").and_then(Value::as_str).unwrap_or_default();
            if f.header.kind() != Some("error") || got_code != code {
                return fail(
                    r,
                    format!("frame {}", f.header),
                    format!("expected an error frame with code {code}, got {}", f.header),
                );
            }
            if let Some(o) = h.get("offset") {
                if o.as_u64() != Some(*offset) {
                    return fail(
                        r,
                        format!("frame {}", f.header),
                        format!("the error frame's offset is {o}, not {offset}"),
                    );
                }
            }
            match reader.next(hang) {
                Reply::Closed | Reply::Reset(_) => {}
                Reply::Timeout => {
                    return fail(
                        r,
                        "error frame, then the connection stayed open".into(),
                        format!("hang: not closed {:?} after the error frame", opts.hang),
                    )
                }
                other => {
                    return fail(
                        r,
                        "error frame, then more".into(),
                        format!("after the error frame: {other:?}"),
                    )
                }
            }
        }
        Reply::Closed | Reply::Reset(_) => {
            non_strict = Some("closed without an error frame (the error frame is a SHOULD)");
        }
        Reply::Timeout => {
            return fail(
                r,
                "the connection stayed open".into(),
                format!(
                    "hang: neither an error frame nor a close {:?} after the last octet",
                    opts.hang
                ),
            )
        }
        Reply::Garbage(e) => return fail(r, String::new(), e),
    }
    drop(reader);
    if let Err(e) = ping(addr, opts) {
        return fail(
            r,
            "no echo on a fresh connection".into(),
            format!("server stopped serving: {e}"),
        );
    }
    if let Some(why) = non_strict {
        r.status = Status::NonStrict;
        r.detail = why.into();
    }
    r
}

/// One echo frame on a fresh connection: the server still serves.
fn ping(addr: SocketAddr, opts: &ServerOptions) -> Result<(), String> {
    let mut head = Header::with_kind("echo");
    head.set_id(424242);
    let frame = Frame::new(head, Bytes::from_static(b"still alive?"));
    let mut wire = BytesMut::new();
    Encoder::new()
        .encode(&frame, &mut wire)
        .map_err(|e| format!("cannot encode the ping: {e}"))?;
    let mut stream = connect(addr, opts.timeout).map_err(|e| format!("cannot connect: {e}"))?;
    stream
        .write_all(&wire)
        .map_err(|e| format!("write failed: {e}"))?;
    let mut reader = ReplyReader::new(stream);
    match reader.next(Instant::now() + opts.timeout) {
        Reply::Frame(f) => same_frame(&f, &frame),
        other => Err(format!("no echo: {other:?}")),
    }
}

pub use crate::process::ServerProcess;

/// An `echo` frame with `members` after `kind` (a `kind` or `body_len` among them is
/// replaced by the echo's own).
fn echo_frame_with(members: &[(&str, Value)], body: Bytes) -> Frame {
    let mut h = Header::with_kind("echo");
    for (name, value) in members {
        if *name != "kind" && *name != "body_len" {
            h.insert(name.to_string(), value.clone());
        }
    }
    Frame::new(h, body)
}
