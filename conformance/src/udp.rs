//! `--udp-server HOST:PORT`: checks a UDP echo server against the datagram binding
//! (`spec/lhp-udp.md`, vectors in `spec/vectors/datagram.json`).
//!
//! The server under test answers every valid frame with the same datagram (the echo of
//! LHP/1 §8) and every bad datagram with the error frame of §5.3 when the smallest such frame
//! fits three times the datagram (§6), and with nothing otherwise. Cases:
//!
//! - every datagram vector whose receiver settings are the server's (profile `lhp1`, default
//!   limits, `max_datagram_len` as given by `--udp-max-datagram`): hand-written ones (empty,
//!   every truncation of a frame, two frames in one datagram, huge claims, oversized) and one
//!   per stream vector (its whole input as one datagram);
//! - every frame of every valid stream vector as its own datagram (`frame/...`): echoed;
//! - an oversized datagram of `max + 1` octets, when the server's maximum is below what an
//!   IPv4 datagram can carry.
//!
//! Each case is sent from its own socket (so the server's per-source rate limit never
//! applies), in batches, and judged on what comes back within the timeout. A reply must also
//! never exceed three times its datagram.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use lhp_codec::datagram::{
    error_code, DatagramConfig, DatagramError, AMPLIFICATION_FACTOR, MAX_DATAGRAM_LEN,
};
use lhp_codec::{Decoder, Encoder, Frame, Value};
use lhp_vectors::{datagram, Expect};

/// Settings of a `--udp-server` run.
#[derive(Clone, Debug)]
pub struct UdpOptions {
    /// The server's `max_datagram_len`.
    pub max_datagram_len: usize,
    /// How long to wait for replies to a batch.
    pub timeout: Duration,
    /// Cases sent at once.
    pub batch: usize,
    /// Only cases whose id contains one of these (all if empty).
    pub filter: Vec<String>,
    /// Print each failure as it happens.
    pub verbose: bool,
}

impl Default for UdpOptions {
    fn default() -> Self {
        UdpOptions {
            max_datagram_len: MAX_DATAGRAM_LEN,
            timeout: Duration::from_millis(300),
            batch: 32,
            filter: Vec::new(),
            verbose: false,
        }
    }
}

/// What a case expects back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UdpExpect {
    /// The same octets (echo).
    Echo,
    /// An error frame with this code and offset (and `missing`, if given).
    Error {
        /// The code.
        code: String,
        /// The offset.
        offset: u64,
        /// For `unexpected_eof`.
        missing: Option<u64>,
    },
    /// Nothing: even the smallest error frame exceeds the budget (§6).
    Silence,
}

/// One datagram to send and its expectation.
#[derive(Clone, Debug)]
pub struct UdpCase {
    /// The case id (`datagram/...`, `frame/...`, `generated/...`).
    pub id: String,
    /// The datagram.
    pub datagram: Vec<u8>,
    /// The expectation.
    pub expect: UdpExpect,
}

/// The cases to run, and the vectors left out with why.
#[derive(Clone, Debug, Default)]
pub struct UdpPlan {
    /// The cases.
    pub cases: Vec<UdpCase>,
    /// Vectors for other receiver settings (or not sendable), with why.
    pub skipped: Vec<(String, String)>,
}

/// The result of a run.
#[derive(Debug, Default)]
pub struct UdpReport {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed, with why.
    pub failed: Vec<(String, String)>,
    /// Vectors not run, with why (settings other than the server's).
    pub skipped: Vec<(String, String)>,
}

impl UdpReport {
    /// A summary, one line per failure.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "udp: {} passed, {} failed, {} skipped (other receiver settings)\n",
            self.passed,
            self.failed.len(),
            self.skipped.len()
        );
        for (id, why) in &self.failed {
            s.push_str(&format!("FAIL {id}: {why}\n"));
        }
        s
    }
}

/// The expectation for a datagram whose decoding fails with `err` (§5.3, §6).
pub fn expect_for_error(len: usize, max: usize, err: &DatagramError) -> UdpExpect {
    let budget = len.min(max + 1) * AMPLIFICATION_FACTOR;
    let smallest = smallest_error_frame(err);
    if smallest <= budget {
        UdpExpect::Error {
            code: err.code().to_owned(),
            offset: err.offset(),
            missing: err.missing(),
        }
    } else {
        UdpExpect::Silence
    }
}

fn smallest_error_frame(err: &DatagramError) -> usize {
    let mut out = BytesMut::new();
    let frame = Frame::new(err.error_header(""), Bytes::new());
    match Encoder::new().encode(&frame, &mut out) {
        Ok(()) => out.len(),
        Err(_) => usize::MAX,
    }
}

/// Builds the cases from the datagram vectors at `path` and the stream vectors in `dir`.
pub fn build_cases(path: &Path, dir: &Path, opts: &UdpOptions) -> Result<UdpPlan, String> {
    let mut cases = Vec::new();
    let mut skipped = Vec::new();
    let max = opts.max_datagram_len;
    for dv in datagram::load(path).map_err(|e| e.to_string())? {
        let v = &dv.vector;
        if v.profile != "lhp1" || v.limits.is_some() || dv.max_datagram_len != max {
            skipped.push((
                v.id.clone(),
                format!(
                    "needs profile {}, limits {:?}, max_datagram_len {}",
                    v.profile, v.limits, dv.max_datagram_len
                ),
            ));
            continue;
        }
        if v.input.len() > MAX_DATAGRAM_LEN {
            skipped.push((
                v.id.clone(),
                "longer than an IPv4 datagram can be: not sendable".into(),
            ));
            continue;
        }
        let expect = match &v.expect {
            Expect::Valid { .. } => UdpExpect::Echo,
            Expect::Invalid { error, .. } => {
                // The expectation's error, judged against the budget as the server must.
                let err = DatagramConfig::new()
                    .with_max_datagram_len(max)
                    .codec()
                    .decode(&v.input[..v.input.len().min(max + 1)])
                    .err();
                match err {
                    Some(e) if e.code() == error.code && e.offset() == error.offset => {
                        expect_for_error(v.input.len(), max, &e)
                    }
                    other => {
                        return Err(format!(
                            "{}: the vector says {} at {}, the reference codec {:?}",
                            v.id, error.code, error.offset, other
                        ))
                    }
                }
            }
            Expect::Acceptable(_) => {
                skipped.push((v.id.clone(), "alternative outcomes".into()));
                continue;
            }
        };
        cases.push(UdpCase {
            id: v.id.clone(),
            datagram: v.input.clone(),
            expect,
        });
    }
    // Each frame of each valid stream vector as its own datagram.
    for v in lhp_vectors::load_dir(dir).map_err(|e| e.to_string())? {
        if v.profile != "lhp1" || v.limits.is_some() || v.skip_bytes != 0 || !v.expect.is_valid() {
            continue;
        }
        let mut buf = BytesMut::from(&v.input[..]);
        let mut dec = Decoder::new();
        let mut start = 0usize;
        let mut i = 0;
        while let Ok(Some(_)) = dec.decode(&mut buf) {
            let end = usize::try_from(dec.offset()).unwrap_or(usize::MAX);
            if let Some(bytes) = v.input.get(start..end) {
                if bytes.len() <= max.min(4096) {
                    cases.push(UdpCase {
                        id: format!("frame/{}#{i}", v.id),
                        datagram: bytes.to_vec(),
                        expect: UdpExpect::Echo,
                    });
                }
            }
            start = end;
            i += 1;
        }
    }
    if max < MAX_DATAGRAM_LEN {
        let body = vec![b'x'; max];
        let mut d = BytesMut::new();
        if Encoder::new()
            .encode(
                &Frame::new(lhp_codec::Header::with_kind("echo"), body.into()),
                &mut d,
            )
            .is_ok()
        {
            let err = DatagramError::TooLarge { max };
            cases.push(UdpCase {
                id: "generated/oversized".into(),
                expect: expect_for_error(d.len(), max, &err),
                datagram: d.to_vec(),
            });
        }
    }
    if !opts.filter.is_empty() {
        cases.retain(|c| opts.filter.iter().any(|f| c.id.contains(f.as_str())));
    }
    Ok(UdpPlan { cases, skipped })
}

/// Runs `cases` against the server at `addr`. A case that expected a reply and got none is
/// sent once more with five times the timeout (UDP may lose a datagram, and a loaded machine
/// may be slow); a second silence is a failure.
pub fn run_cases(addr: SocketAddr, cases: &[UdpCase], opts: &UdpOptions) -> UdpReport {
    let mut report = run_once(addr, cases, opts);
    let silent: Vec<UdpCase> = report
        .failed
        .iter()
        .filter(|(_, why)| why.ends_with("got nothing"))
        .filter_map(|(id, _)| cases.iter().find(|c| &c.id == id).cloned())
        .collect();
    if silent.is_empty() {
        return report;
    }
    report
        .failed
        .retain(|(_, why)| !why.ends_with("got nothing"));
    let slow = UdpOptions {
        timeout: opts.timeout * 5,
        ..opts.clone()
    };
    let again = run_once(addr, &silent, &slow);
    report.passed += again.passed;
    report.failed.extend(again.failed);
    report
}

fn run_once(addr: SocketAddr, cases: &[UdpCase], opts: &UdpOptions) -> UdpReport {
    let mut report = UdpReport::default();
    for batch in cases.chunks(opts.batch.max(1)) {
        let mut sockets = Vec::new();
        for c in batch {
            let s = match bind_for(addr).and_then(|s| s.send_to(&c.datagram, addr).map(|_| s)) {
                Ok(s) => s,
                Err(e) => {
                    report.failed.push((c.id.clone(), format!("send: {e}")));
                    continue;
                }
            };
            sockets.push((c, s));
        }
        let deadline = Instant::now() + opts.timeout;
        for (c, s) in sockets {
            let reply = receive(&s, deadline);
            match judge(c, reply.as_deref()) {
                Ok(()) => report.passed += 1,
                Err(why) => {
                    if opts.verbose {
                        eprintln!("FAIL {}: {why}", c.id);
                    }
                    report.failed.push((c.id.clone(), why));
                }
            }
        }
    }
    report
}

fn bind_for(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    if addr.is_ipv4() {
        UdpSocket::bind("127.0.0.1:0")
    } else {
        UdpSocket::bind("[::1]:0")
    }
}

fn receive(s: &UdpSocket, deadline: Instant) -> Option<Vec<u8>> {
    let left = deadline.saturating_duration_since(Instant::now());
    s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
        .ok()?;
    let mut buf = vec![0u8; MAX_DATAGRAM_LEN + 1];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// Judges one reply (`None`: nothing came).
pub fn judge(case: &UdpCase, reply: Option<&[u8]>) -> Result<(), String> {
    if let Some(r) = reply {
        let budget = case.datagram.len() * AMPLIFICATION_FACTOR;
        if r.len() > budget {
            return Err(format!(
                "a {}-octet reply to {} octets: over the amplification bound (§6)",
                r.len(),
                case.datagram.len()
            ));
        }
    }
    match (&case.expect, reply) {
        (UdpExpect::Echo, Some(r)) if r == case.datagram.as_slice() => Ok(()),
        (UdpExpect::Echo, Some(r)) => Err(format!(
            "expected the datagram back ({} octets), got {} octets: {}",
            case.datagram.len(),
            r.len(),
            describe(r)
        )),
        (UdpExpect::Echo, None) => Err("expected the echo, got nothing".into()),
        (UdpExpect::Silence, None) => Ok(()),
        (UdpExpect::Silence, Some(r)) => Err(format!(
            "expected no reply (no error frame fits 3× the datagram), got {}",
            describe(r)
        )),
        (UdpExpect::Error { .. }, None) => Err(format!(
            "expected an error frame {:?}, got nothing",
            case.expect
        )),
        (
            UdpExpect::Error {
                code,
                offset,
                missing,
            },
            Some(r),
        ) => {
            let f = DatagramConfig::new()
                .codec()
                .decode(r)
                .map_err(|e| format!("the reply is not one valid frame: {e}"))?;
            let got_code = error_code(&f.header);
            let got_offset = f.header.get("offset").and_then(Value::as_u64);
            let got_missing = f.header.get("missing").and_then(Value::as_u64);
            if got_code != Some(code.as_str()) || got_offset != Some(*offset) {
                return Err(format!(
                    "expected {code} at {offset}, got {got_code:?} at {got_offset:?}"
                ));
            }
            if f.header.id().is_some() {
                return Err("a datagram error frame must not carry id (§5.3)".into());
            }
            if missing.is_some() && got_missing != *missing {
                return Err(format!("expected missing {missing:?}, got {got_missing:?}"));
            }
            Ok(())
        }
    }
}

fn describe(r: &[u8]) -> String {
    match DatagramConfig::new().codec().decode(r) {
        Ok(f) => format!("{}", Value::Object(f.header.members().clone())),
        Err(e) => format!("{} undecodable octets ({e})", r.len()),
    }
}

/// The `--udp-server` mode: builds the cases, runs them against each address, prints the
/// summary; true if nothing failed.
pub fn run_udp_servers(
    addrs: &[SocketAddr],
    vectors_dir: &Path,
    opts: &UdpOptions,
) -> Result<bool, String> {
    let UdpPlan { cases, skipped } =
        build_cases(&vectors_dir.join("datagram.json"), vectors_dir, opts)?;
    eprintln!(
        "{} udp cases ({} vectors for other receiver settings skipped)",
        cases.len(),
        skipped.len()
    );
    let mut ok = true;
    for addr in addrs {
        let mut report = run_cases(*addr, &cases, opts);
        report.skipped = skipped.clone();
        print!("udp-server:{addr}: {}", report.summary());
        ok &= report.failed.is_empty();
    }
    Ok(ok)
}

/// The hook `main.rs` calls for `--udp-server`: exit 0 if every case passed, 1 otherwise.
pub fn run_cli(
    servers: &[String],
    max_datagram_len: usize,
    vectors_dir: &Path,
    filter: &[String],
    verbose: bool,
) -> Result<std::process::ExitCode, String> {
    let mut addrs = Vec::new();
    for s in servers {
        let a = std::net::ToSocketAddrs::to_socket_addrs(s.as_str())
            .map_err(|e| format!("{s}: {e}"))?
            .next()
            .ok_or_else(|| format!("{s}: no address"))?;
        addrs.push(a);
    }
    let opts = UdpOptions {
        max_datagram_len,
        filter: filter.to_vec(),
        verbose,
        ..UdpOptions::default()
    };
    Ok(if run_udp_servers(&addrs, vectors_dir, &opts)? {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}
