//! Counters a server owner reads without a debugger (issue 16): connections, frames, octets and
//! error codes, shared by every [`Connection`](super::Connection) of one server and fed by the
//! connection layer itself, so both engines count the same things under the same names.
//!
//! Plain atomics: no IO, no clock, no lock.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::{CONNECTION_CODES, REQUEST_CODES};

/// Every registered error code, connection codes first (the order of [`StatsSnapshot::errors`]).
const CODES: [&str; CONNECTION_CODES.len() + REQUEST_CODES.len()] = {
    let mut all = [""; CONNECTION_CODES.len() + REQUEST_CODES.len()];
    let mut i = 0;
    while i < CONNECTION_CODES.len() {
        all[i] = CONNECTION_CODES[i];
        i += 1;
    }
    let mut j = 0;
    while j < REQUEST_CODES.len() {
        all[i + j] = REQUEST_CODES[j];
        j += 1;
    }
    all
};

/// The name under which an error code this implementation does not register is counted.
pub const OTHER_CODE: &str = "other";

/// A server's counters, updated by its connections. A server makes one `Stats`, hands an
/// `Arc<Stats>` to each connection ([`Connection::set_stats`](super::Connection::set_stats)),
/// and reads a [`StatsSnapshot`] whenever it likes.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Instant;
/// use lhp_codec::conn::{Config, Connection, Stats};
///
/// let stats = Arc::new(Stats::new());
/// let now = Instant::now();
/// let mut conn = Connection::echo_server(Config::new(), now);
/// conn.set_stats(Arc::clone(&stats));
/// conn.handle_input(b"\x00\x00\x00\x0f{\"kind\":\"echo\"}", now);
/// let _ = conn.take_pending(now);
/// let s = stats.snapshot();
/// assert_eq!((s.connections_open, s.frames_in, s.frames_out), (1, 1, 1));
/// assert_eq!((s.octets_in, s.octets_out), (19, 19));
/// drop(conn);
/// assert_eq!(stats.snapshot().connections_open, 0);
/// ```
#[derive(Default)]
pub struct Stats {
    connections_open: AtomicU64,
    connections_total: AtomicU64,
    busy: AtomicU64,
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    octets_in: AtomicU64,
    octets_out: AtomicU64,
    connection_errors: AtomicU64,
    refusals: AtomicU64,
    write_stalls: AtomicU64,
    by_code: [AtomicU64; CODES.len()],
    other: AtomicU64,
}

impl fmt::Debug for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.snapshot(), f)
    }
}

/// The counters at one moment ([`Stats::snapshot`]). Each counts since the server started,
/// except `connections_open`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Connections being served now.
    pub connections_open: u64,
    /// Connections served (accepted under the limit).
    pub connections_total: u64,
    /// Connections turned away at `max_connections` with `busy` (not in the totals above).
    pub busy: u64,
    /// Frames received completely (requests, echo frames, refused frames).
    pub frames_in: u64,
    /// Frames queued for sending: replies, echoes and error frames.
    pub frames_out: u64,
    /// Octets received.
    pub octets_in: u64,
    /// Octets written to the peer.
    pub octets_out: u64,
    /// Connection errors (E1's connection class: decode errors, `timeout`, `busy`) that ended
    /// a connection; the error frame was sent unless a reply was under way (E3).
    pub connection_errors: u64,
    /// Request error frames sent (refusals of one request; the connection went on).
    pub refusals: u64,
    /// Connections closed because the peer stopped reading (`write_timeout`, no error frame).
    pub write_stalls: u64,
    /// Errors by code (connection errors and refusals), registered codes in the order of
    /// [`CONNECTION_CODES`] then [`REQUEST_CODES`], codes never seen left out; an
    /// unregistered code counts as [`OTHER_CODE`], last.
    pub errors: Vec<(&'static str, u64)>,
}

impl StatsSnapshot {
    /// How often `code` was sent (0 if never).
    pub fn errors_of(&self, code: &str) -> u64 {
        self.errors
            .iter()
            .find(|(c, _)| *c == code)
            .map_or(0, |(_, n)| *n)
    }

    /// `timeout` errors sent (read and idle deadlines, E4).
    pub fn timeouts(&self) -> u64 {
        self.errors_of("timeout")
    }

    /// The errors as one JSON object text, `{"not_found":2,"timeout":1}` (for a log field).
    pub fn errors_json(&self) -> String {
        let mut s = String::from("{");
        for (i, (code, n)) in self.errors.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&format!("\"{code}\":{n}"));
        }
        s.push('}');
        s
    }
}

impl Stats {
    /// All counters at zero.
    pub fn new() -> Self {
        Stats::default()
    }

    /// The counters now. Each is read on its own (relaxed), so a snapshot taken while
    /// connections run may be a few events apart between counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut errors: Vec<(&'static str, u64)> = CODES
            .iter()
            .zip(&self.by_code)
            .map(|(c, n)| (*c, get(n)))
            .filter(|(_, n)| *n > 0)
            .collect();
        let other = get(&self.other);
        if other > 0 {
            errors.push((OTHER_CODE, other));
        }
        StatsSnapshot {
            connections_open: get(&self.connections_open),
            connections_total: get(&self.connections_total),
            busy: get(&self.busy),
            frames_in: get(&self.frames_in),
            frames_out: get(&self.frames_out),
            octets_in: get(&self.octets_in),
            octets_out: get(&self.octets_out),
            connection_errors: get(&self.connection_errors),
            refusals: get(&self.refusals),
            write_stalls: get(&self.write_stalls),
            errors,
        }
    }

    pub(crate) fn opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn busy(&self) {
        self.busy.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn frame_in(&self) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn frame_out(&self) {
        self.frames_out.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn octets_in(&self, n: u64) {
        self.octets_in.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn octets_out(&self, n: u64) {
        self.octets_out.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn connection_error(&self, code: &str) {
        self.connection_errors.fetch_add(1, Ordering::Relaxed);
        self.code(code);
    }

    pub(crate) fn refusal(&self, code: &str) {
        self.refusals.fetch_add(1, Ordering::Relaxed);
        self.code(code);
    }

    pub(crate) fn write_stall(&self) {
        self.write_stalls.fetch_add(1, Ordering::Relaxed);
    }

    fn code(&self, code: &str) {
        let slot = CODES
            .iter()
            .position(|c| *c == code)
            .and_then(|i| self.by_code.get(i))
            .unwrap_or(&self.other);
        slot.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_counted_by_name_and_unknown_as_other() {
        let s = Stats::new();
        s.refusal("not_found");
        s.refusal("not_found");
        s.connection_error("timeout");
        s.refusal("teapot");
        let snap = s.snapshot();
        assert_eq!(
            snap.errors,
            vec![("timeout", 1), ("not_found", 2), (OTHER_CODE, 1)]
        );
        assert_eq!((snap.refusals, snap.connection_errors), (3, 1));
        assert_eq!(snap.timeouts(), 1);
        assert_eq!(snap.errors_of("busy"), 0);
        assert_eq!(
            snap.errors_json(),
            r#"{"timeout":1,"not_found":2,"other":1}"#
        );
    }

    #[test]
    fn every_registered_code_has_its_own_slot() {
        let s = Stats::new();
        for c in CODES {
            s.refusal(c);
        }
        let snap = s.snapshot();
        assert_eq!(snap.errors.len(), CODES.len());
        assert!(snap.errors.iter().all(|(_, n)| *n == 1));
    }

    #[test]
    fn a_fresh_server_has_counted_nothing() {
        let snap = Stats::new().snapshot();
        assert_eq!(snap, StatsSnapshot::default());
        assert_eq!((snap.timeouts(), snap.errors_json().as_str()), (0, "{}"));
    }

    /// `{:?}` of the shared counters shows the counters, as a snapshot does.
    #[test]
    fn debug_shows_the_counters() {
        let s = Stats::new();
        s.frame_in();
        s.refusal("timeout");
        s.refusal("timeout");
        let text = format!("{s:?}");
        assert_eq!(text, format!("{:?}", s.snapshot()));
        assert!(
            text.contains("frames_in: 1") && text.contains("(\"timeout\", 2)"),
            "{text}"
        );
        assert_eq!(s.snapshot().timeouts(), 2);
    }
}
