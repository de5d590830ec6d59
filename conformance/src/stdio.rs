//! `--stdio 'COMMAND'`: a long-lived testee process speaking the request/reply protocol of
//! `spec/conformance.md` §3 on its stdin/stdout, restarted after a crash or a timeout.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use lhp_codec::Profile;
use lhp_vectors::{Outcome, OutcomeError};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::plan::{Budget, Plan};
use crate::testee::{Job, Run, Testee};
use crate::verdict::lenient_object;

/// A testee process.
pub struct StdioTestee {
    command: String,
    timeout: Duration,
    proc: Option<Proc>,
    next_id: u64,
    profiles: Vec<String>,
    features: Vec<String>,
    label: String,
    /// Why the last start failed, if it did.
    start_error: Option<String>,
}

struct Proc {
    child: Child,
    to_child: Sender<Vec<u8>>,
    replies: Receiver<Result<Map<String, Value>, String>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl StdioTestee {
    /// Starts `command` (with `sh -c`) and probes it.
    pub fn new(command: &str, timeout: Duration) -> StdioTestee {
        let mut t = StdioTestee {
            command: command.to_owned(),
            timeout,
            proc: None,
            next_id: 1,
            profiles: Vec::new(),
            features: Vec::new(),
            label: String::new(),
            start_error: None,
        };
        if let Err(e) = t.start() {
            t.start_error = Some(e);
        }
        t
    }

    fn start(&mut self) -> Result<(), String> {
        let mut child = crate::process::shell(&self.command, &[])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", self.command))?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err("no pipes".into());
        };
        let (to_child, writes) = mpsc::channel::<Vec<u8>>();
        thread::spawn(move || writer(&mut stdin, writes));
        let (tx, replies) = mpsc::channel();
        thread::spawn(move || reader(stdout, tx));
        let lines = Arc::new(Mutex::new(VecDeque::new()));
        let keep = Arc::clone(&lines);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut l) = keep.lock() {
                    if l.len() == 20 {
                        l.pop_front();
                    }
                    l.push_back(line);
                }
            }
        });
        self.proc = Some(Proc {
            child,
            to_child,
            replies,
            stderr: lines,
        });
        let h = self.exchange(&json!({"kind": "probe"}), &[])?;
        if h.get("kind").and_then(Value::as_str) != Some("capabilities") {
            return Err(format!(
                "probe reply is not capabilities: {}",
                Value::Object(h.clone())
            ));
        }
        let strings = |k: &str| -> Vec<String> {
            h.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        self.profiles = strings("profiles");
        self.features = strings("features");
        self.label = h
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Ok(())
    }

    /// Sends one request and waits for one reply.
    fn exchange(&mut self, header: &Value, body: &[u8]) -> Result<Map<String, Value>, String> {
        let Some(p) = self.proc.as_mut() else {
            return Err("not running".into());
        };
        let h = serde_json::to_vec(header).map_err(|e| e.to_string())?;
        let len = u32::try_from(h.len()).map_err(|_| "request header too long")?;
        let mut msg = Vec::with_capacity(4 + h.len() + body.len());
        msg.extend_from_slice(&len.to_be_bytes());
        msg.extend_from_slice(&h);
        msg.extend_from_slice(body);
        if p.to_child.send(msg).is_err() {
            return Err(self.crash_text("the testee closed its stdin"));
        }
        match p.replies.recv_timeout(self.timeout) {
            Ok(Ok(f)) => Ok(f),
            Ok(Err(e)) => Err(self.crash_text(&e)),
            Err(RecvTimeoutError::Timeout) => Err(TIMEOUT.into()),
            Err(RecvTimeoutError::Disconnected) => Err(self.crash_text("stdout closed")),
        }
    }

    fn crash_text(&mut self, what: &str) -> String {
        let mut s = what.to_owned();
        if let Some(p) = self.proc.as_mut() {
            // Give a dying process a moment to report its exit status and last words.
            thread::sleep(Duration::from_millis(20));
            if let Ok(Some(status)) = p.child.try_wait() {
                s.push_str(&format!(" ({status})"));
            }
            if let Ok(l) = p.stderr.lock() {
                if !l.is_empty() {
                    s.push_str("; stderr: ");
                    s.push_str(&l.iter().cloned().collect::<Vec<_>>().join(" | "));
                }
            }
        }
        s
    }

    fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            crate::process::kill_group(&mut p.child);
        }
    }
}

const TIMEOUT: &str = "\u{0}timeout";

impl Drop for StdioTestee {
    fn drop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            drop(p.to_child);
            // Closing stdin asks it to exit; give it a moment, then make sure.
            for _ in 0..50 {
                if matches!(p.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                thread::sleep(Duration::from_millis(10));
            }
            crate::process::kill_group(&mut p.child);
        }
    }
}

fn writer(stdin: &mut ChildStdin, writes: Receiver<Vec<u8>>) {
    for msg in writes {
        if stdin.write_all(&msg).and_then(|()| stdin.flush()).is_err() {
            return;
        }
    }
}

/// Reads reply frames: a 4-octet big-endian length, that many octets of header (at most
/// 64 MiB), read leniently ([`lenient_object`]) so that a wrong value the testee reports is
/// judged, not taken for a broken channel; a `body_len` body is read and dropped.
fn reader(mut stdout: impl Read, tx: Sender<Result<Map<String, Value>, String>>) {
    // Grows as octets arrive, never by the declared length.
    fn read_exact(r: &mut impl Read, n: usize) -> Option<Vec<u8>> {
        let mut v = Vec::new();
        let got = r.take(n as u64).read_to_end(&mut v).ok()?;
        (got == n).then_some(v)
    }
    loop {
        let Some(prefix) = read_exact(&mut stdout, 4) else {
            let _ = tx.send(Err("the testee exited".into()));
            return;
        };
        let Ok(p) = <[u8; 4]>::try_from(prefix.as_slice()) else {
            return;
        };
        let h = u32::from_be_bytes(p) as usize;
        if h > 64 << 20 {
            let _ = tx.send(Err(format!(
                "reply is not an LHP/1 frame: its prefix {} declares a {h}-octet header",
                hex::encode(&prefix)
            )));
            return;
        }
        let Some(text) = read_exact(&mut stdout, h) else {
            let _ = tx.send(Err("the testee exited inside a reply".into()));
            return;
        };
        let header = match lenient_object(&text) {
            Ok(m) => m,
            Err(e) => {
                let _ = tx.send(Err(format!("reply header is {e}")));
                return;
            }
        };
        let body = header.get("body_len").and_then(Value::as_u64).unwrap_or(0);
        if body > 0 {
            let mut sink = std::io::sink();
            let copied = std::io::copy(&mut (&mut stdout).take(body), &mut sink);
            if copied.ok() != Some(body) {
                let _ = tx.send(Err("the testee exited inside a reply body".into()));
                return;
            }
        }
        if tx.send(Ok(header)).is_err() {
            return;
        }
    }
}

/// The `chunks` member of a decode request.
pub fn chunks_json(plan: &Plan) -> Value {
    Value::Array(
        plan.runs()
            .iter()
            .map(|&(n, c)| if c == 1 { json!(n) } else { json!([n, c]) })
            .collect(),
    )
}

impl Testee for StdioTestee {
    fn name(&self) -> String {
        format!("stdio:{}", self.command)
    }

    fn supports(&self, profile: Profile) -> bool {
        // A testee that did not start gets every case, and crashes on each.
        self.start_error.is_some() || self.profiles.iter().any(|p| p == profile.name())
    }

    fn budget(&self) -> Budget {
        Budget::STDIO
    }

    fn memory(&self) -> Option<crate::process::Mem> {
        self.proc
            .as_ref()
            .and_then(|p| crate::process::group_memory(p.child.id()))
    }

    fn about(&self) -> String {
        match &self.start_error {
            Some(e) => format!("did not start: {e}"),
            None => format!(
                "{} profiles {:?}, features {:?}; cut/truncate sampled (≤64 points), pairs ≤24 octets",
                self.label, self.profiles, self.features
            ),
        }
    }

    fn run(&mut self, job: &Job<'_>) -> Run {
        if self.proc.is_none() {
            if let Err(e) = self.start() {
                self.kill();
                return Run::Crash(format!("restart failed: {e}"));
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let req = json!({
            "kind": "decode", "id": id, "profile": job.profile.name(),
            "limits": {"max_header_len": job.limits.max_header_len(),
                       "max_body_len": job.limits.max_body_len()},
            "skip_bytes": job.skip, "chunks": chunks_json(job.plan),
            "body_len": job.stream.len(),
        });
        match self.exchange(&req, job.stream) {
            Ok(reply) => match parse_result(&reply, id, job) {
                Ok(o) => Run::Outcome(o),
                Err(e) => {
                    let e = self.crash_text(&e);
                    self.kill();
                    Run::Crash(e)
                }
            },
            Err(e) if e == TIMEOUT => {
                self.kill();
                Run::Timeout
            }
            Err(e) => {
                self.kill();
                Run::Crash(e)
            }
        }
    }
}

/// Turns a `result` reply (or a client's JSON lines, §5) into an [`Outcome`]. Bodies are
/// reported as length and SHA-256; a body whose digest matches the candidate octets of the
/// same frame in `job.bodies` is taken to be those octets, any other gets stand-in octets that
/// cannot match.
pub fn parse_result(h: &Map<String, Value>, id: u64, job: &Job<'_>) -> Result<Outcome, String> {
    if h.get("kind").and_then(Value::as_str) != Some("result") {
        return Err(format!(
            "reply kind is not result: {}",
            Value::Object(h.clone())
        ));
    }
    if h.get("id").and_then(Value::as_u64) != Some(id) {
        return Err(format!("reply id is not {id}: {:?}", h.get("id")));
    }
    let frames = h
        .get("frames")
        .and_then(Value::as_array)
        .ok_or("reply has no frames array")?;
    let mut out = Outcome::default();
    for (i, f) in frames.iter().enumerate() {
        out.frames.push(parse_frame(f, job.bodies.get(i).copied())?);
    }
    out.error = parse_error(h.get("error"))?;
    Ok(out)
}

/// One reported frame: `{"header":{..},"body_len":n,"body_sha256":"hex"}`.
pub fn parse_frame(
    f: &Value,
    candidate: Option<&[u8]>,
) -> Result<(Map<String, Value>, Vec<u8>), String> {
    let header = f
        .get("header")
        .and_then(Value::as_object)
        .ok_or("frame without header object")?
        .clone();
    let len = f
        .get("body_len")
        .and_then(Value::as_u64)
        .ok_or("frame without body_len")?;
    let sha = f
        .get("body_sha256")
        .and_then(Value::as_str)
        .ok_or("frame without body_sha256")?
        .to_ascii_lowercase();
    let body = match candidate {
        Some(c) if c.len() as u64 == len && hex::encode(Sha256::digest(c)) == sha => c.to_vec(),
        Some(c) if c.len() as u64 == len && !c.is_empty() => {
            let mut b = c.to_vec();
            if let Some(x) = b.first_mut() {
                *x ^= 0xff;
            }
            b
        }
        _ if len == 0 && sha == hex::encode(Sha256::digest([])) => Vec::new(),
        _ => vec![0u8; usize::try_from(len.min(1 << 26)).unwrap_or(0).max(1)],
    };
    Ok((header, body))
}

/// `null`/absent, or `{"code":..,"offset":..,"missing":..}`.
pub fn parse_error(e: Option<&Value>) -> Result<Option<OutcomeError>, String> {
    match e {
        None | Some(Value::Null) => Ok(None),
        Some(e) => Ok(Some(OutcomeError {
            code: e
                .get("code")
                .and_then(Value::as_str)
                .ok_or("error without code")?
                .to_owned(),
            offset: e
                .get("offset")
                .and_then(Value::as_u64)
                .ok_or("error without offset")?,
            missing: e.get("missing").and_then(Value::as_u64),
        })),
    }
}
