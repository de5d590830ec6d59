//! `--client 'COMMAND'`: a client under test; the harness plays the server
//! (`spec/conformance.md` §5).
//!
//! For each vector and plan the harness listens on `127.0.0.1:0`, starts the command, accepts
//! its connection, writes the stream in the plan's chunks (`TCP_NODELAY`, one write per chunk,
//! a pause between chunks) and closes. The client prints what it decoded as JSON lines.

use std::io::{BufRead, BufReader, Read};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use lhp_vectors::{check, Outcome, Verdict};
use serde_json::Value;

use crate::case::{describe, Case};
use crate::plan::Plan;
use crate::process::{group_memory, Mem};
use crate::resources::{self, hold_and_sample};
use crate::runner::{
    describe_outcome, hash, CaseResult, Failure, GroupCase, ImplReport, Options, Status,
};
use crate::stdio::{parse_error, parse_frame};
use crate::tcp::{tcp_plans, write_plan};

/// Cut points per case.
const CUTS: usize = 4;
/// `bytes` plans for streams up to this length.
const BYTES_UP_TO: usize = 128;
/// Random partitions per case.
const RANDOMS: usize = 1;

/// How the client mode runs.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The run options (seed, skips, verbosity).
    pub run: Options,
    /// How long the client may take to connect, and to exit after the stream ends.
    pub timeout: Duration,
    /// The pause between chunks.
    pub pause: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            run: Options::default(),
            timeout: Duration::from_secs(10),
            pause: crate::tcp::DEFAULT_PAUSE,
        }
    }
}

/// What one run of the client produced.
enum ClientRun {
    Outcome(Outcome),
    Crash(String),
    Timeout(String),
}

/// Runs `command` as a client under test over every case.
pub fn run_client(command: &str, cases: &[Case], opts: &ClientOptions) -> ImplReport {
    let start = Instant::now();
    let name = format!("client:{command}");
    let mut results = Vec::with_capacity(cases.len());
    for case in cases {
        let r = match opts.run.skips.iter().find(|s| s.matches(&name, case.id())) {
            Some(s) => {
                let mut r = blank(case);
                r.status = Status::Skipped;
                r.detail = format!("skips.toml: {}", s.reason);
                r
            }
            None => run_case(command, case, opts),
        };
        if opts.run.verbose && r.status.is_fail() {
            eprintln!("{name}: {} {}: {}", r.status.name(), r.id, r.detail);
        }
        results.push(r);
    }
    ImplReport {
        name,
        about: format!(
            "client over TCP: whole, {CUTS} cuts, bytes ≤{BYTES_UP_TO} octets, {RANDOMS} random; \
             {} ms pause; one process per plan",
            opts.pause.as_millis()
        ),
        results,
        groups: Vec::new(),
        elapsed: start.elapsed(),
    }
}

fn blank(case: &Case) -> CaseResult {
    CaseResult {
        id: case.id().to_owned(),
        tier: case.vector.tier.clone(),
        status: Status::Pass,
        detail: String::new(),
        failure: None,
        plans: 0,
        sampled: false,
        underived: 0,
    }
}

fn run_case(command: &str, case: &Case, opts: &ClientOptions) -> CaseResult {
    let mut r = blank(case);
    let stream = case.stream();
    let bodies: Vec<&[u8]> = (0..case.vector.expect.frames().len())
        .map_while(|i| case.body_of(i))
        .collect();
    let seed = opts.run.seed ^ hash(case.id());
    let plans = tcp_plans(
        stream.len(),
        &case.stream_boundaries(),
        CUTS,
        BYTES_UP_TO,
        RANDOMS,
        seed,
    );
    let mut non_strict = None;
    for (strategy, plan) in plans {
        r.plans += 1;
        let (status, got, reason) = match run_once(command, case, &plan, &bodies, opts, None) {
            ClientRun::Outcome(o) => match crate::verdict::invalid_value(&o)
                .map_or_else(|| check(&case.vector.expect, &o), Verdict::Fail)
            {
                Verdict::Pass => continue,
                Verdict::NonStrict => {
                    non_strict.get_or_insert_with(|| describe_outcome(&o));
                    continue;
                }
                Verdict::Fail(why) => (Status::Fail, describe_outcome(&o), why),
            },
            ClientRun::Crash(why) => (Status::Crash, String::new(), why),
            ClientRun::Timeout(why) => (Status::Timeout, String::new(), why),
        };
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
            expected: describe(&case.vector.expect),
            got,
            reason,
        });
        return r;
    }
    if let Some(got) = non_strict {
        r.status = Status::NonStrict;
        r.detail = format!("acceptable alternative: {got}");
    }
    r
}

/// One plan: listen, start the client, serve the chunks, collect its lines.
fn run_once(
    command: &str,
    case: &Case,
    plan: &Plan,
    bodies: &[&[u8]],
    opts: &ClientOptions,
    watch: Option<&mut Watch>,
) -> ClientRun {
    let listener = match TcpListener::bind("127.0.0.1:0") {
        Ok(l) => l,
        Err(e) => return ClientRun::Crash(format!("harness: cannot listen: {e}")),
    };
    let addr = match listener.local_addr() {
        Ok(a) => a.to_string(),
        Err(e) => return ClientRun::Crash(format!("harness: {e}")),
    };
    let (h, b) = (case.limits.max_header_len(), case.limits.max_body_len());
    let child = crate::process::shell(&command.replace("{addr}", &addr), &[])
        .env("LHP_CONFORMANCE_ADDR", &addr)
        .env("LHP_ADDR", &addr)
        .env("LHP_PROFILE", case.profile.name())
        .env("LHP_MAX_HEADER_LEN", h.to_string())
        .env("LHP_MAX_BODY_LEN", b.to_string())
        .env("LHP_SKIP_BYTES", case.skip().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return ClientRun::Crash(format!("cannot start {command:?}: {e}")),
    };
    let (lines_tx, lines_rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        thread::spawn(move || {
            let lines: Vec<String> = BufReader::new(out).lines().map_while(Result::ok).collect();
            let _ = lines_tx.send(lines);
        });
    }
    let (err_tx, err_rx) = mpsc::channel();
    if let Some(mut err) = child.stderr.take() {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            let _ = err_tx.send(s);
        });
    }
    let served = serve(&listener, &mut child, case.stream(), plan, opts, watch);
    // Wait for the client to exit.
    let deadline = Instant::now() + opts.timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Ok(s),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(2)),
            Ok(None) => break Err("did not exit"),
            Err(_) => break Err("cannot wait for it"),
        }
    };
    if status.is_err() {
        crate::process::kill_group(&mut child);
    }
    let stderr = err_rx
        .recv_timeout(Duration::from_secs(1))
        .unwrap_or_default();
    let tail = || {
        let t: Vec<&str> = stderr.lines().rev().take(5).collect();
        if t.is_empty() {
            String::new()
        } else {
            format!(
                "; stderr: {}",
                t.into_iter().rev().collect::<Vec<_>>().join(" | ")
            )
        }
    };
    let status = match status {
        Ok(s) => s,
        Err(why) => {
            return ClientRun::Timeout(format!(
                "the client {why} within {:?}{}",
                opts.timeout,
                tail()
            ))
        }
    };
    let stream = match served {
        Ok(s) => s,
        Err(e) => return ClientRun::Crash(format!("{e}{}", tail())),
    };
    drop(stream);
    if !status.success() {
        return ClientRun::Crash(format!("the client exited with {status}{}", tail()));
    }
    let lines = lines_rx
        .recv_timeout(Duration::from_secs(1))
        .unwrap_or_default();
    match parse_lines(&lines, bodies) {
        Ok(o) => ClientRun::Outcome(o),
        Err(e) => ClientRun::Crash(format!("{e}{}", tail())),
    }
}

/// Accepts the client's connection and writes the stream; keeps the socket (write side
/// closed) so that nothing the client still sends makes the close a reset.
fn serve(
    listener: &TcpListener,
    child: &mut Child,
    stream: &[u8],
    plan: &Plan,
    opts: &ClientOptions,
    watch: Option<&mut Watch>,
) -> Result<TcpStream, String> {
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("harness: {e}"))?;
    let deadline = Instant::now() + opts.timeout;
    let mut conn = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    // It may have connected just before exiting: one more look.
                    match listener.accept() {
                        Ok((s, _)) => break s,
                        Err(_) => return Err("the client exited without connecting".into()),
                    }
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "the client did not connect within {:?}",
                        opts.timeout
                    ));
                }
                thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(format!("harness: accept failed: {e}")),
        }
    };
    conn.set_nonblocking(false)
        .and_then(|()| conn.set_nodelay(true))
        .and_then(|()| conn.set_write_timeout(Some(opts.timeout)))
        .map_err(|e| format!("harness: {e}"))?;
    // A client that stops reading after a decode error and closes is within its rights: a
    // failed write ends the sending, and its output is judged as usual.
    let pgid = child.id();
    let before = watch.as_ref().map(|_| group_memory(pgid));
    let _ = write_plan(&mut conn, stream, plan, opts.pause);
    if let (Some(w), Some(before)) = (watch, before) {
        w.before = before;
        w.peak = before.map(|b| hold_and_sample(pgid, b, w.hold));
    }
    let _ = conn.shutdown(Shutdown::Write);
    Ok(conn)
}

/// Memory sampled around one client run (the `resources` group).
#[derive(Debug)]
struct Watch {
    hold: Duration,
    before: Option<Mem>,
    peak: Option<Mem>,
}

/// Runs the `resources` decoder cases against a client: the harness declares a large length,
/// sends a little of it, holds the connection while sampling the client's memory, then ends
/// the stream. The outcome must be right and the growth within the bound.
pub fn run_client_resources(command: &str, opts: &ClientOptions) -> Vec<CaseResult> {
    let name = format!("client:{command}");
    let mut out = Vec::new();
    for case in resources::decoder_resource_cases() {
        let mut r = blank(&case);
        r.plans = 1;
        if let Some(s) = opts.run.skips.iter().find(|s| s.matches(&name, case.id())) {
            r.status = Status::Skipped;
            r.detail = format!("skips.toml: {}", s.reason);
            out.push(r);
            continue;
        }
        let mut w = Watch {
            hold: Duration::from_millis(400),
            before: None,
            peak: None,
        };
        let plan = Plan::whole(case.stream().len());
        match run_once(command, &case, &plan, &[], opts, Some(&mut w)) {
            ClientRun::Outcome(o) => {
                let verdict = crate::verdict::invalid_value(&o)
                    .map_or_else(|| check(&case.vector.expect, &o), Verdict::Fail);
                if let Verdict::Fail(why) = verdict {
                    r.status = Status::Fail;
                    r.detail = format!("wrong outcome: {why}");
                } else {
                    let (status, text) =
                        resources::judge_memory(w.before, w.peak, case.stream().len() as u64);
                    r.status = status;
                    r.detail = text;
                }
            }
            ClientRun::Crash(why) => {
                r.status = Status::Crash;
                r.detail = why;
            }
            ClientRun::Timeout(why) => {
                r.status = Status::Timeout;
                r.detail = why;
            }
        }
        if opts.run.verbose && r.status.is_fail() {
            eprintln!("{name}: {} {}: {}", r.status.name(), r.id, r.detail);
        }
        out.push(r);
    }
    out
}

/// The client behaviour cases (`spec/conformance.md` §9) that the §5 protocol can observe: how
/// a client takes `busy`, a connection error frame after a reply, a slow server and a server
/// that closes mid-reply. Each is a stream the harness sends as the server, with its plan, the
/// pause between chunks, and what the client must report.
pub fn behaviour_cases() -> Vec<(Case, Plan, Duration)> {
    let frame = |text: &str, body: &[u8]| {
        let mut v = (text.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(text.as_bytes());
        v.extend_from_slice(body);
        v
    };
    let busy = frame(
        r#"{"kind":"error","code":"busy","message":"at the connection limit","offset":0}"#,
        b"",
    );
    let mut reply_then_error = frame(r#"{"kind":"echo","id":1,"body_len":5}"#, b"hello");
    reply_then_error.extend(frame(
        r#"{"kind":"error","code":"timeout","message":"idle","offset":41}"#,
        b"",
    ));
    let slow = frame(r#"{"kind":"echo","id":2,"body_len":4}"#, b"slow");
    let mut cut = frame(r#"{"kind":"echo","id":3,"body_len":100}"#, &[0x61; 100]);
    cut.truncate(cut.len() - 60);
    let items: [(&str, &str, Vec<u8>, bool, u64); 4] = [
        (
            "client/busy",
            "The server sends busy (offset 0) and closes: the client reports the error frame              and the clean end, promptly (it does not hang or crash).",
            busy,
            false,
            1,
        ),
        (
            "client/error-frame-after-reply",
            "A reply, then a connection error frame (timeout), then the close: both frames are              reported in order, then the clean end.",
            reply_then_error,
            false,
            1,
        ),
        (
            "client/slow-server",
            "The reply arrives one octet every 25 ms: the client waits and decodes it whole.",
            slow,
            true,
            25,
        ),
        (
            "client/close-mid-reply",
            "The server closes 60 octets before the end of a reply's body: unexpected_eof at \
             the right offset with missing 60, not a short body delivered.",
            cut,
            false,
            1,
        ),
    ];
    items
        .into_iter()
        .filter_map(|(id, description, input, bytes, pause)| {
            let expect = crate::resources::codec_outcome(&input)?;
            let plan = if bytes {
                Plan::bytes(input.len())
            } else {
                Plan::whole(input.len())
            };
            let case = Case::new(lhp_vectors::Vector {
                id: id.into(),
                spec: "7, 11.2".into(),
                description: description.into(),
                profile: "lhp1".into(),
                tier: "required".into(),
                limits: None,
                skip_bytes: 0,
                input,
                expect,
            })?;
            Some((case, plan, Duration::from_millis(pause)))
        })
        .collect()
}

/// The report entries of the client behaviour cases.
pub fn behaviour_group_cases() -> Vec<GroupCase> {
    behaviour_cases()
        .iter()
        .map(|(c, _, _)| GroupCase {
            id: c.id().into(),
            spec: c.vector.spec.clone(),
            tier: c.vector.tier.clone(),
            flags: vec!["client".into()],
            description: c.vector.description.clone(),
        })
        .collect()
}

/// Runs the client behaviour cases against `command`.
pub fn run_client_behaviour(command: &str, opts: &ClientOptions) -> Vec<CaseResult> {
    let name = format!("client:{command}");
    let mut out = Vec::new();
    for (case, plan, pause) in behaviour_cases() {
        let mut r = blank(&case);
        r.plans = 1;
        if let Some(s) = opts.run.skips.iter().find(|s| s.matches(&name, case.id())) {
            r.status = Status::Skipped;
            r.detail = format!("skips.toml: {}", s.reason);
            out.push(r);
            continue;
        }
        let o = ClientOptions {
            pause,
            ..opts.clone()
        };
        let bodies: Vec<&[u8]> = (0..case.vector.expect.frames().len())
            .map_while(|i| case.body_of(i))
            .collect();
        match run_once(command, &case, &plan, &bodies, &o, None) {
            ClientRun::Outcome(got) => {
                match crate::verdict::invalid_value(&got)
                    .map_or_else(|| check(&case.vector.expect, &got), Verdict::Fail)
                {
                    Verdict::Fail(why) => {
                        r.status = Status::Fail;
                        r.detail = why;
                    }
                    Verdict::NonStrict => {
                        r.status = Status::NonStrict;
                        r.detail = describe_outcome(&got);
                    }
                    Verdict::Pass => {}
                }
            }
            ClientRun::Crash(why) => {
                r.status = Status::Crash;
                r.detail = why;
            }
            ClientRun::Timeout(why) => {
                r.status = Status::Timeout;
                r.detail = why;
            }
        }
        if opts.run.verbose && r.status.is_fail() {
            eprintln!("{name}: {} {}: {}", r.status.name(), r.id, r.detail);
        }
        out.push(r);
    }
    out
}

/// Parses the client's output (§5): one `{"header":..,"body_len":..,"body_sha256":..}` line
/// per frame, then `{"end":"clean"}` or `{"error":{..}}`. Empty lines are ignored.
pub fn parse_lines(lines: &[String], bodies: &[&[u8]]) -> Result<Outcome, String> {
    let mut out = Outcome::default();
    let mut ended = false;
    for line in lines.iter().filter(|l| !l.trim().is_empty()) {
        if ended {
            return Err(format!("a line after the last one: {line:?}"));
        }
        let v = Value::Object(
            crate::verdict::lenient_object(line.as_bytes())
                .map_err(|e| format!("the line is {e}: {line:?}"))?,
        );
        if let Some(end) = v.get("end") {
            if end.as_str() != Some("clean") {
                return Err(format!("unknown end: {line:?}"));
            }
            ended = true;
        } else if let Some(e) = v.get("error") {
            out.error = parse_error(Some(e))?;
            if out.error.is_none() {
                return Err(format!("error line without an error: {line:?}"));
            }
            ended = true;
        } else {
            let candidate = bodies.get(out.frames.len()).copied();
            out.frames.push(parse_frame(&v, candidate)?);
        }
    }
    if !ended {
        return Err(format!(
            "no final {{\"end\":\"clean\"}} or {{\"error\":..}} line after {} frame line(s)",
            out.frames.len()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_to_an_outcome() {
        let lines = vec![
            r#"{"header":{"kind":"echo"},"body_len":2,"body_sha256":"8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"}"#.to_owned(),
            r#"{"error":{"code":"unexpected_eof","offset":40,"missing":3}}"#.to_owned(),
        ];
        let o = parse_lines(&lines, &[b"hi"]).unwrap();
        assert_eq!(o.frames.len(), 1);
        assert_eq!(o.frames[0].1, b"hi");
        assert_eq!(o.error.unwrap().missing, Some(3));
        assert!(parse_lines(&lines[..1], &[]).is_err());
        assert!(parse_lines(&["nope".to_owned()], &[]).is_err());
    }
}
