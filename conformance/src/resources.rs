//! The `resources` group (spec/lhp-1.md §5 and §11.1; `spec/conformance.md` §7): a peer that
//! *declares* large lengths without sending them must not make the implementation allocate
//! them.
//!
//! The harness knows the process of a `--server-cmd`/`--app-server-cmd` server, a `--stdio`
//! testee and a `--client`, and samples its memory ([`crate::process::group_memory`]: the sum
//! of `VmRSS`/`VmHWM` over its process group, Linux only; elsewhere every case is `skipped`
//! with "memory not measured") while it feeds streams that declare large lengths. The growth
//! — the larger of the rise in resident memory and the rise in peak resident memory over the
//! case — must stay within
//!
//! ```text
//! bound = 16 MiB + 256 KiB × connections + 4 × octets sent
//! ```
//!
//! A decoder that reserves *and touches* what a header declares (zeroing a buffer, a
//! `resize`) is caught; one that only reserves address space it never touches is not visible
//! in resident memory, and is not judged.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use lhp_vectors::{Expect, ExpectedError, Vector, Verdict};

use crate::case::Case;
use crate::plan::Plan;
use crate::process::{group_memory, Mem, ServerProcess};
use crate::runner::{CaseResult, GroupCase, Options, Status};
use crate::tcp::connect;
use crate::testee::{Job, Run, Testee};

/// The fixed part of the bound, KiB.
pub const SLACK_KIB: u64 = 16 << 10;
/// The allowance per connection, KiB.
pub const PER_CONNECTION_KIB: u64 = 256;
/// The allowance per octet sent.
pub const PER_OCTET: u64 = 4;

/// The bound on growth, KiB, for `octets` sent over `connections`.
pub fn bound_kib(octets: u64, connections: u64) -> u64 {
    SLACK_KIB + PER_CONNECTION_KIB * connections + PER_OCTET * octets / 1024
}

/// How long a server case holds its connections open while sampling.
const HOLD: Duration = Duration::from_millis(400);
/// How often memory is sampled while holding.
const EVERY: Duration = Duration::from_millis(20);

/// One server case: `connections` connections, each sending `octets`.
struct ServerResourceCase {
    id: &'static str,
    description: &'static str,
    connections: usize,
    octets: fn() -> Vec<u8>,
}

fn frame_head(header: &str) -> Vec<u8> {
    let mut v = (header.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v
}

const SERVER_CASES: [ServerResourceCase; 4] = [
    ServerResourceCase {
        id: "resources/server-header-near-limit",
        description: "16 connections each send a prefix declaring a 65 536-octet header (the \
                      default max_header_len) and 14 octets of it, then wait.",
        connections: 16,
        octets: || {
            let mut v = 65_536u32.to_be_bytes().to_vec();
            v.extend_from_slice(br#"{"kind":"echo","#);
            v
        },
    },
    ServerResourceCase {
        id: "resources/server-body-1gib",
        description: "4 connections each send a header declaring body_len 2^30 (over the \
                      default max_body_len) and no body.",
        connections: 4,
        octets: || frame_head(r#"{"kind":"echo","body_len":1073741824}"#),
    },
    ServerResourceCase {
        id: "resources/server-body-2p53-1",
        description: "4 connections each send a header declaring body_len 2^53−1 and no body.",
        connections: 4,
        octets: || frame_head(r#"{"kind":"echo","body_len":9007199254740991}"#),
    },
    ServerResourceCase {
        id: "resources/server-many-large-bodies",
        description: "16 connections each send a header declaring body_len 2^26 (exactly the \
                      default max_body_len, so it is accepted) and 4 KiB of the body, then \
                      wait: the server must hold what arrived, not what was declared.",
        connections: 16,
        octets: || {
            let mut v = frame_head(r#"{"kind":"echo","body_len":67108864}"#);
            v.extend(std::iter::repeat_n(0x5a, 4096));
            v
        },
    },
];

/// The decoder cases (`--stdio`, `--client`): one stream each, decoded with raised limits so
/// that the declared length is accepted, ending long before it is complete.
fn decoder_cases() -> Vec<Case> {
    let max = lhp_codec::MAX_SAFE_INTEGER;
    let mut near = (16u32 << 20).to_be_bytes().to_vec();
    near.extend_from_slice(br#"{"kind":"echo""#);
    let body = |n: u64| {
        let mut v = frame_head(&format!(r#"{{"kind":"echo","body_len":{n}}}"#));
        v.extend(std::iter::repeat_n(0x5a, 16));
        v
    };
    let items = [
        (
            "resources/decoder-header-near-limit",
            "A prefix declaring a 16 MiB header (max_header_len 16 MiB), 14 octets of it, \
             then the end of the stream: unexpected_eof, without a 16 MiB buffer.",
            (Some(16u32 << 20), None),
            near,
        ),
        (
            "resources/decoder-body-1gib",
            "A header declaring body_len 2^30 (max_body_len 2^53−1), 16 octets of body, then \
             the end: unexpected_eof, without a 1 GiB buffer.",
            (None, Some(max)),
            body(1 << 30),
        ),
        (
            "resources/decoder-body-2p53-1",
            "A header declaring body_len 2^53−1 (max_body_len 2^53−1), 16 octets of body, \
             then the end: unexpected_eof, without allocating by the declared length.",
            (None, Some(max)),
            body(max),
        ),
    ];
    items
        .into_iter()
        .filter_map(|(id, description, limits, input)| {
            let expect = codec_expectation(&input, limits)?;
            Case::new(Vector {
                id: id.into(),
                spec: "5, 11.1".into(),
                description: description.into(),
                profile: "lhp1".into(),
                tier: "required".into(),
                limits: Some(limits),
                skip_bytes: 0,
                input,
                expect,
            })
        })
        .collect()
}

/// What the reference codec makes of `input` with default limits, as an expectation (frames,
/// then a clean end or the error).
pub fn codec_outcome(input: &[u8]) -> Option<Expect> {
    let mut d = lhp_codec::Decoder::with(lhp_codec::Profile::Lhp1, lhp_codec::Limits::default());
    let mut buf = bytes::BytesMut::from(input);
    let mut frames = Vec::new();
    loop {
        match d.decode_eof(&mut buf) {
            Ok(Some(f)) => frames.push(lhp_vectors::ExpectedFrame {
                header: f.header.into_members(),
                body_len: f.body.len() as u64,
                body: lhp_vectors::ExpectedBody::Bytes(f.body.to_vec()),
            }),
            Ok(None) => return Some(Expect::Valid { frames }),
            Err(e) => {
                return Some(Expect::Invalid {
                    frames,
                    error: ExpectedError {
                        code: e.code().to_owned(),
                        offset: e.offset(),
                        missing: e.missing(),
                    },
                })
            }
        }
    }
}

/// What the reference codec makes of `input`: these cases always end in an error.
fn codec_expectation(input: &[u8], limits: (Option<u32>, Option<u64>)) -> Option<Expect> {
    let mut l = lhp_codec::Limits::default();
    if let Some(h) = limits.0 {
        l = l.with_max_header_len(h);
    }
    if let Some(b) = limits.1 {
        l = l.with_max_body_len(b);
    }
    let mut d = lhp_codec::Decoder::with(lhp_codec::Profile::Lhp1, l);
    let mut buf = bytes::BytesMut::from(input);
    loop {
        match d.decode_eof(&mut buf) {
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(e) => {
                return Some(Expect::Invalid {
                    frames: Vec::new(),
                    error: ExpectedError {
                        code: e.code().to_owned(),
                        offset: e.offset(),
                        missing: e.missing(),
                    },
                })
            }
        }
    }
}

/// The report entries of the group.
pub fn group_cases() -> Vec<GroupCase> {
    let flags = vec!["memory".to_owned()];
    SERVER_CASES
        .iter()
        .map(|c| GroupCase {
            id: c.id.into(),
            spec: "5, 11.1".into(),
            tier: "required".into(),
            flags: flags.clone(),
            description: c.description.into(),
        })
        .chain(decoder_cases().iter().map(|c| GroupCase {
            id: c.id().into(),
            spec: c.vector.spec.clone(),
            tier: c.vector.tier.clone(),
            flags: flags.clone(),
            description: c.vector.description.clone(),
        }))
        .collect()
}

fn result(id: &str, status: Status, detail: String) -> CaseResult {
    CaseResult {
        id: id.into(),
        tier: "required".into(),
        status,
        detail,
        failure: None,
        plans: usize::from(status != Status::Skipped),
        sampled: false,
        underived: 0,
    }
}

/// Growth in KiB from `before` to `peak`: the larger rise of resident and of peak resident.
fn growth(before: &Mem, peak: &Mem) -> u64 {
    peak.rss_kib
        .saturating_sub(before.rss_kib)
        .max(peak.hwm_kib.saturating_sub(before.hwm_kib))
}

/// Runs the server cases against a server the harness started. Returns the results and a
/// line for the report.
pub fn run_server_resources(
    server: &ServerProcess,
    name: &str,
    run: &Options,
) -> (Vec<CaseResult>, String) {
    let mut out = Vec::new();
    for c in &SERVER_CASES {
        let r = match run.skips.iter().find(|s| s.matches(name, c.id)) {
            Some(s) => result(c.id, Status::Skipped, format!("skips.toml: {}", s.reason)),
            None => server_case(server, c),
        };
        if run.verbose && r.status.is_fail() {
            eprintln!("{name}: {} {}: {}", r.status.name(), r.id, r.detail);
        }
        out.push(r);
    }
    let about = format!(
        "resources: memory of process group {} sampled from /proc",
        server.pgid()
    );
    (out, about)
}

fn server_case(server: &ServerProcess, c: &ServerResourceCase) -> CaseResult {
    let Some(before) = warm_up(server) else {
        return result(
            c.id,
            Status::Skipped,
            "memory not measured (no /proc/PID/status for the server's process group)".into(),
        );
    };
    let octets = (c.octets)();
    let sent = (octets.len() * c.connections) as u64;
    let bound = bound_kib(sent, c.connections as u64);
    let mut peak = before;
    let mut conns: Vec<TcpStream> = Vec::new();
    let mut over = None;
    for i in 0..c.connections {
        match connect(server.addr, Duration::from_secs(5)) {
            Ok(mut s) => {
                let _ = s.write_all(&octets);
                conns.push(s);
            }
            Err(e) => {
                return result(
                    c.id,
                    Status::Fail,
                    format!("connection {i} could not be opened: {e}"),
                )
            }
        }
        thread::sleep(EVERY);
        if let Some(m) = server.memory() {
            peak = max_mem(&peak, &m);
        }
        if growth(&before, &peak) > bound {
            over = Some(i + 1);
            break;
        }
    }
    if over.is_none() {
        let until = Instant::now() + HOLD;
        while Instant::now() < until {
            thread::sleep(EVERY);
            if let Some(m) = server.memory() {
                peak = max_mem(&peak, &m);
            }
        }
    }
    for s in &conns {
        let _ = s.shutdown(Shutdown::Both);
    }
    drop(conns);
    // Let the server release what it held before the next case takes its baseline.
    thread::sleep(Duration::from_millis(100));
    let g = growth(&before, &peak);
    let text = format!(
        "memory grew {g} KiB (resident {} → {} KiB, peak {} → {} KiB) for {sent} octets on {} \
         connection(s); bound {bound} KiB = 16 MiB + 256 KiB × connections + 4 × octets",
        before.rss_kib,
        peak.rss_kib,
        before.hwm_kib,
        peak.hwm_kib,
        over.unwrap_or(c.connections)
    );
    if g > bound {
        result(
            c.id,
            Status::Fail,
            format!("allocates from declared lengths (spec §5, §11.1): {text}"),
        )
    } else {
        result(c.id, Status::Pass, text)
    }
}

/// One echo on a fresh connection (so that lazily created pools exist), then a baseline.
fn warm_up(server: &ServerProcess) -> Option<Mem> {
    if let Ok(mut s) = connect(server.addr, Duration::from_secs(5)) {
        let _ = s.write_all(&frame_head(r#"{"kind":"echo"}"#));
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut b = [0u8; 64];
        let _ = std::io::Read::read(&mut s, &mut b);
    }
    thread::sleep(Duration::from_millis(50));
    server.memory()
}

fn max_mem(a: &Mem, b: &Mem) -> Mem {
    Mem {
        rss_kib: a.rss_kib.max(b.rss_kib),
        hwm_kib: a.hwm_kib.max(b.hwm_kib),
        processes: a.processes.max(b.processes),
    }
}

/// The memory a `--stdio` testee or `--client` used over one decode: growth and text.
pub fn judge_memory(before: Option<Mem>, after: Option<Mem>, octets: u64) -> (Status, String) {
    match (before, after) {
        (Some(b), Some(a)) => {
            let g = growth(&b, &a);
            let bound = bound_kib(octets, 1);
            let text = format!(
                "memory grew {g} KiB (resident {} → {} KiB, peak {} → {} KiB) for a {octets}-octet \
                 stream; bound {bound} KiB = 16 MiB + 256 KiB + 4 × octets",
                b.rss_kib, a.rss_kib, b.hwm_kib, a.hwm_kib
            );
            if g > bound {
                (
                    Status::Fail,
                    format!("allocates from declared lengths (spec §5, §11.1): {text}"),
                )
            } else {
                (Status::Pass, text)
            }
        }
        _ => (
            Status::Skipped,
            "memory not measured (no /proc/PID/status for the testee)".into(),
        ),
    }
}

/// The decoder cases, for `--stdio` and `--client`.
pub fn decoder_resource_cases() -> Vec<Case> {
    decoder_cases()
}

/// Runs the decoder cases against a testee whose process the harness can measure; an
/// in-process implementation gets `skipped` results.
pub fn run_testee_resources(t: &mut dyn Testee, run: &Options) -> Vec<CaseResult> {
    let name = t.name();
    let mut out = Vec::new();
    for case in decoder_cases() {
        let id = case.id().to_owned();
        let r = if let Some(s) = run.skips.iter().find(|s| s.matches(&name, &id)) {
            result(&id, Status::Skipped, format!("skips.toml: {}", s.reason))
        } else if !t.supports(case.profile) {
            result(
                &id,
                Status::Skipped,
                format!("profile {} not offered by the testee", case.profile),
            )
        } else if !measurable(t) {
            result(
                &id,
                Status::Skipped,
                "memory not measured (an in-process implementation, or no /proc)".into(),
            )
        } else {
            testee_case(t, &case)
        };
        if run.verbose && r.status.is_fail() {
            eprintln!("{name}: {} {}: {}", r.status.name(), r.id, r.detail);
        }
        out.push(r);
    }
    out
}

/// Whether the testee's memory can be sampled; a stdio testee that crashed earlier is
/// restarted by one empty decode first.
fn measurable(t: &mut dyn Testee) -> bool {
    if t.memory().is_none() {
        let _ = t.run(&probe_job());
    }
    t.memory().is_some()
}

fn probe_job() -> Job<'static> {
    static PLAN: std::sync::OnceLock<Plan> = std::sync::OnceLock::new();
    Job {
        stream: &[],
        plan: PLAN.get_or_init(|| Plan::whole(0)),
        profile: lhp_codec::Profile::Lhp1,
        limits: lhp_codec::Limits::default(),
        skip: 0,
        bodies: &[],
    }
}

fn testee_case(t: &mut dyn Testee, case: &Case) -> CaseResult {
    let id = case.id();
    let plan = Plan::whole(case.stream().len());
    let job = Job {
        stream: case.stream(),
        plan: &plan,
        profile: case.profile,
        limits: case.limits,
        skip: 0,
        bodies: &[],
    };
    let before = t.memory();
    let run = t.run(&job);
    let after = t.memory();
    match run {
        Run::Outcome(o) => {
            let verdict = crate::verdict::invalid_value(&o).map_or_else(
                || lhp_vectors::check(&case.vector.expect, &o),
                Verdict::Fail,
            );
            if let Verdict::Fail(why) = verdict {
                return result(id, Status::Fail, format!("wrong outcome: {why}"));
            }
            let (status, text) = judge_memory(before, after, case.stream().len() as u64);
            result(id, status, text)
        }
        Run::Crash(why) => result(id, Status::Crash, why),
        Run::Timeout => result(id, Status::Timeout, "no reply in time".into()),
    }
}

/// Samples a process group for `hold`, keeping the peak: used while a client holds a
/// connection that declared a large length.
pub fn hold_and_sample(pgid: u32, start: Mem, hold: Duration) -> Mem {
    let mut peak = start;
    let until = Instant::now() + hold;
    while Instant::now() < until {
        thread::sleep(EVERY);
        if let Some(m) = group_memory(pgid) {
            peak = max_mem(&peak, &m);
        }
    }
    peak
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoder_cases_end_in_unexpected_eof() {
        let cases = decoder_cases();
        assert_eq!(cases.len(), 3);
        for c in &cases {
            match &c.vector.expect {
                Expect::Invalid { error, .. } => {
                    assert_eq!(error.code, "unexpected_eof", "{}", c.id())
                }
                other => panic!("{}: {other:?}", c.id()),
            }
        }
        assert_eq!(group_cases().len(), 7);
        assert!(group_cases().iter().all(|g| g.group() == "resources"));
    }

    #[test]
    fn the_bound_grows_with_what_arrived_not_with_what_was_declared() {
        assert_eq!(bound_kib(0, 0), 16 << 10);
        assert_eq!(bound_kib(1 << 20, 4), (16 << 10) + 1024 + 4096);
        let b = Mem {
            rss_kib: 1000,
            hwm_kib: 5000,
            processes: 1,
        };
        let a = Mem {
            rss_kib: 1100,
            hwm_kib: 70_000,
            processes: 1,
        };
        assert_eq!(growth(&b, &a), 65_000);
        assert_eq!(judge_memory(Some(b), Some(a), 100).0, Status::Fail);
        assert_eq!(judge_memory(Some(b), Some(b), 100).0, Status::Pass);
        assert_eq!(judge_memory(None, Some(b), 100).0, Status::Skipped);
    }
}
