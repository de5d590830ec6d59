//! What the TCP modes (`--server`, `--client`, `record`) share: the split plans they send, a
//! chunked writer with pauses, and a reply reader that never panics.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use lhp_codec::{Decoder, Frame, Limits, Profile};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value};

use crate::plan::{points, Budget, Plan, Strategy};
use crate::testee::chunks;

/// The pause between two chunks of a split plan, so that each chunk leaves as its own segment.
pub const DEFAULT_PAUSE: Duration = Duration::from_millis(1);

/// The plans a TCP mode sends for a stream of `len` octets with frame `boundaries`: `whole`,
/// up to `cuts` sampled single cut points (always one inside the first prefix), `bytes` for
/// streams of at most `bytes_up_to` octets, and `randoms` seeded random partitions of at most
/// 8 cut points each (so a plan costs at most 8 pauses).
///
/// ```
/// use lhp_conformance::plan::Strategy;
/// use lhp_conformance::tcp::tcp_plans;
///
/// let plans = tcp_plans(40, &[0, 20, 40], 4, 64, 2, 7);
/// assert_eq!(plans[0].0, Strategy::Whole);
/// assert_eq!(plans.iter().filter(|p| p.0 == Strategy::Cut).count(), 4);
/// assert!(plans.iter().all(|(_, p)| p.total() == 40));
/// ```
pub fn tcp_plans(
    len: usize,
    boundaries: &[usize],
    cuts: usize,
    bytes_up_to: usize,
    randoms: usize,
    seed: u64,
) -> Vec<(Strategy, Plan)> {
    let mut out = vec![(Strategy::Whole, Plan::whole(len))];
    if len < 2 {
        return out;
    }
    let budget = Budget {
        exhaustive_up_to: 0,
        sample: 32,
        sample_octets: usize::MAX,
        pairs_up_to: 0,
        bytes_up_to: 0,
        random: 0,
    };
    let all = points(len, boundaries, &budget);
    let mut picked = vec![2.min(len - 1)];
    if cuts > 1 && !all.is_empty() {
        for i in 1..cuts {
            let at = (i * all.len()) / cuts;
            if let Some(&p) = all.get(at) {
                picked.push(p);
            }
        }
    }
    picked.sort_unstable();
    picked.dedup();
    picked.truncate(cuts);
    for p in picked {
        out.push((Strategy::Cut, Plan::from_cuts(len, &[p])));
    }
    if len <= bytes_up_to {
        out.push((Strategy::Bytes, Plan::bytes(len)));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..randoms {
        let n = rng.gen_range(1..=8usize.min(len - 1));
        let mut cuts: Vec<usize> = (0..n).map(|_| rng.gen_range(1..len)).collect();
        cuts.sort_unstable();
        cuts.dedup();
        out.push((Strategy::Random, Plan::from_cuts(len, &cuts)));
    }
    out
}

/// Writes `stream` in `plan`'s chunks, one `write_all` per chunk, pausing `pause` between
/// chunks.
pub fn write_plan(
    w: &mut impl Write,
    stream: &[u8],
    plan: &Plan,
    pause: Duration,
) -> io::Result<()> {
    for (i, c) in chunks(stream, plan).enumerate() {
        if i > 0 && !pause.is_zero() {
            std::thread::sleep(pause);
        }
        w.write_all(c)?;
        w.flush()?;
    }
    Ok(())
}

/// Connects with `TCP_NODELAY`.
pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_nodelay(true)?;
    s.set_write_timeout(Some(timeout.max(Duration::from_secs(5))))?;
    Ok(s)
}

/// What the peer did next.
#[derive(Debug)]
pub enum Reply {
    /// A whole frame.
    Frame(Box<Frame>),
    /// A clean end of stream between frames.
    Closed,
    /// A reset (or another read error).
    Reset(String),
    /// Nothing (more) before the deadline.
    Timeout,
    /// Octets that are not LHP/1, or an end inside a frame.
    Garbage(String),
}

/// Reads reply frames from a peer with the reference decoder (`lhp1`, 1 MiB headers, bodies up
/// to 2^53−1 octets, grown only as octets arrive).
#[derive(Debug)]
pub struct ReplyReader {
    stream: TcpStream,
    decoder: Decoder,
    buf: BytesMut,
    scratch: Vec<u8>,
}

impl ReplyReader {
    /// Wraps a connected stream.
    pub fn new(stream: TcpStream) -> ReplyReader {
        let limits = Limits::new()
            .with_max_header_len(1 << 20)
            .with_max_body_len(lhp_codec::MAX_SAFE_INTEGER);
        ReplyReader {
            stream,
            decoder: Decoder::with(Profile::Lhp1, limits),
            buf: BytesMut::new(),
            scratch: vec![0u8; 64 << 10],
        }
    }

    /// The next reply, waiting until `deadline` at most.
    pub fn next(&mut self, deadline: Instant) -> Reply {
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(f)) => return Reply::Frame(Box::new(f)),
                Ok(None) => {}
                Err(e) => return Reply::Garbage(format!("the reply is not valid LHP/1: {e}")),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Reply::Timeout;
            }
            if let Err(e) = self.stream.set_read_timeout(Some(left)) {
                return Reply::Reset(e.to_string());
            }
            match self.stream.read(&mut self.scratch) {
                Ok(0) => {
                    return match self.decoder.finish(&self.buf) {
                        Ok(()) => Reply::Closed,
                        Err(e) => Reply::Garbage(format!("closed inside a reply frame: {e}")),
                    }
                }
                Ok(n) => self
                    .buf
                    .extend_from_slice(self.scratch.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Reply::Timeout
                }
                Err(e) => return Reply::Reset(e.to_string()),
            }
        }
    }
}

/// Whether two frames have the same members in the same order (numbers by value) and the
/// same body; `Err` says what differs.
pub fn same_frame(got: &Frame, want: &Frame) -> Result<(), String> {
    let (g, w): (&Map<String, Value>, &Map<String, Value>) =
        (got.header.members(), want.header.members());
    if !g.keys().eq(w.keys()) || !lhp_vectors::objects_equal(g, w) {
        return Err(format!(
            "reply header differs: got {}, want {}",
            got.header, want.header
        ));
    }
    if got.body != want.body {
        let first = got
            .body
            .iter()
            .zip(want.body.iter())
            .position(|(a, b)| a != b);
        return Err(format!(
            "reply body differs: got {} octets, want {}, first difference at {first:?}",
            got.body.len(),
            want.body.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_cover_the_stream_and_split_the_prefix() {
        for len in [2usize, 3, 10, 100, 5000] {
            let plans = tcp_plans(len, &[0, len], 4, 64, 2, 1);
            for (s, p) in &plans {
                assert_eq!(p.total(), len, "{s} {p:?}");
                assert!(p.len() <= 9 || *s == Strategy::Bytes, "{s} {p:?}");
            }
            assert!(plans
                .iter()
                .any(|(s, p)| *s == Strategy::Cut && p.cuts() == vec![2.min(len - 1)]));
            assert_eq!(plans.iter().any(|(s, _)| *s == Strategy::Bytes), len <= 64);
        }
    }
}
