//! The sans-IO connection layer: every connection rule of §7.2 (error frames and close), §8
//! (echo), §11.2 (deadlines, `busy`, shutdown) and §3.4 (half-close), written once.
//!
//! A [`Connection`] is fed what the socket delivered and the current time as a value; it hands
//! decoded requests to the application ([`poll_event`](Connection::poll_event)), queues the
//! octets to send ([`pending`](Connection::pending) / [`handle_sent`](Connection::handle_sent)),
//! says when it next needs the clock ([`poll_timeout`](Connection::poll_timeout) /
//! [`handle_timeout`](Connection::handle_timeout)) and when to shut down the sending direction
//! and close. It never reads a clock or touches a socket, in the manner of `quinn-proto`: the
//! engines only move octets and time.
//!
//! ```text
//!   driver                         Connection                         application
//!   read() ─ handle_input(b, now) ─▶ decoder ─▶ echo? ──────────────▶ (answered here)
//!   EOF    ─ handle_eof(now) ──────▶           └─ poll_event() ──────▶ Request / Head,Body,End
//!   timer  ─ handle_timeout(now) ──▶ deadlines (E4)      send/refuse ◀─ replies
//!   write() ◀ pending() / handle_sent(n, now) ◀── out queue ◀─ error frames (E2, E3)
//!   shutdown(Write) when is_write_closed(), close when is_closed()
//! ```
//!
//! A whole conversation runs without sockets or sleeping:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use lhp_codec::conn::{Config, Connection, Ending};
//!
//! let t0 = Instant::now();
//! let mut config = Config::new();
//! config.set_idle_timeout(Duration::from_millis(300));
//! let mut conn = Connection::echo_server(config, t0);
//! conn.handle_input(b"\x00\x00\x00\x0f{\"kind\":\"echo\"}", t0);
//! assert_eq!(conn.take_pending(t0), b"\x00\x00\x00\x0f{\"kind\":\"echo\"}");
//! // Nothing more arrives: at the idle deadline the connection sends `timeout` and closes.
//! let deadline = conn.poll_timeout().unwrap();
//! assert_eq!(deadline, t0 + Duration::from_millis(300));
//! conn.handle_timeout(deadline);
//! let out = conn.take_pending(deadline);
//! assert!(out.ends_with(b"\"code\":\"timeout\",\"message\":\"idle: no request for 300 ms\",\"offset\":19}"));
//! assert!(conn.is_write_closed());
//! conn.handle_eof(deadline);
//! assert!(conn.is_closed());
//! assert!(matches!(conn.ending(), Some(Ending::Timeout { offset: 19 })));
//! ```

mod config;
mod error;
mod stats;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use serde_json::Value;

pub use self::config::Config;
pub use self::error::{
    class_of, encode_connection_error, encode_decode_error, encode_request_error, ErrorClass,
    PeerError, CONNECTION_CODES, REQUEST_CODES,
};
pub use self::stats::{Stats, StatsSnapshot, OTHER_CODE};
use crate::{DecodeError, Decoder, EncodeError, Encoder, Frame, Header, Profile, PREFIX_LEN};

/// Output queued beyond this many octets makes [`Connection::wants_input`] false, so a peer
/// that sends but does not read is not echoed into unbounded memory.
pub const OUTPUT_HIGH_WATER: usize = 1 << 20;

/// Input buffered for a request not yet begun, while the application handles an earlier one,
/// beyond which [`Connection::wants_input`] is false.
pub const PIPELINE_HIGH_WATER: usize = 64 << 10;

/// Who the connection's peer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// An echo server (§8): `echo` frames come back verbatim (E7); any other kind is refused
    /// with `bad_request`. Nothing reaches the application.
    EchoServer,
    /// An application server: `echo` frames are answered here, every other request is an
    /// [`Event`] the application answers with [`Connection::send`] or
    /// [`Connection::refuse`], in order.
    AppServer,
    /// A client: every received frame is an [`Event`]; an error frame without `offset` is
    /// [`Event::Refused`], one with `offset` ends the connection ([`Ending::Peer`]).
    Client,
}

/// What the connection hands to the application.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A whole frame (a request to a server, a reply to a client), its body at most
    /// [`Config::deliver_whole`] octets.
    Frame(Frame),
    /// The head of a frame whose body is longer than the threshold: [`Event::Body`] chunks and
    /// [`Event::End`] follow.
    Head(Header),
    /// The next octets of a streamed body.
    Body(Bytes),
    /// The streamed body is complete (digest verified).
    End,
    /// Client role: the server refused the request (an error frame without `offset`, E2).
    Refused(PeerError),
}

/// Why a connection ended.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Ending {
    /// The peer half-closed at a frame boundary and everything was answered (E5).
    Clean,
    /// Graceful shutdown (E4 `shutdown_grace`); `forced` if the grace ran out mid-request.
    Shutdown {
        /// The grace ran out before the connection reached a frame boundary.
        forced: bool,
    },
    /// The peer broke the protocol (§7.1).
    Decode(DecodeError),
    /// A read or idle deadline passed (E4) after `offset` octets had been received.
    Timeout {
        /// Octets received when the deadline passed.
        offset: u64,
    },
    /// The connection limit was reached (E4 `max_connections`).
    Busy,
    /// A write made no progress for `write_timeout` (E4); nothing more could be sent.
    WriteStalled,
    /// Client role: the server sent a connection error.
    Peer(PeerError),
}

impl Ending {
    /// The error code sent or received, if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            Ending::Clean | Ending::Shutdown { .. } | Ending::WriteStalled => None,
            Ending::Decode(e) => Some(e.code()),
            Ending::Timeout { .. } => Some("timeout"),
            Ending::Busy => Some("busy"),
            Ending::Peer(p) => Some(&p.code),
        }
    }
}

/// Where the receiving side is in the current frame.
#[derive(Debug)]
enum Rx {
    /// Between frames.
    Boundary,
    /// The prefix is read; the header (`h` octets) is not complete.
    Header { h: usize },
    /// The header is complete; the body is arriving.
    Body {
        deadline: Instant,
        streamed: bool,
        answer: Answer,
        /// The header text, for a whole-frame echo (E7).
        raw: Option<Bytes>,
        /// The header, for a refusal once the body is read (echo server).
        refused: Option<Box<Header>>,
    },
}

/// Who answers the frame being received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    /// The connection echoes it (§8).
    Echo,
    /// The connection refuses it with `bad_request` once its body is read (echo server).
    NotEcho,
    /// The application.
    App,
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    Open,
    /// No more input is processed; after the queued output: shut down the sending direction,
    /// then discard input until `linger` (or EOF), then close. `linger: None` closes at once.
    Closing {
        linger: Option<Instant>,
    },
    /// The driver must drop the socket.
    Closed,
}

/// Octets waiting to be written: small pieces gathered in `tail`, large bodies kept as their
/// own `Bytes` so they are never copied.
#[derive(Debug, Default)]
struct Outgoing {
    queue: VecDeque<Bytes>,
    tail: BytesMut,
    len: usize,
    /// When the oldest pending octet was queued or the last write made progress.
    progress_at: Option<Instant>,
    sent: u64,
}

impl Outgoing {
    fn push_slice(&mut self, b: &[u8], now: Instant) {
        self.mark(now);
        self.tail.extend_from_slice(b);
        self.len += b.len();
    }

    fn push_bytes(&mut self, b: Bytes, now: Instant) {
        if b.len() < 4096 {
            return self.push_slice(&b, now);
        }
        self.mark(now);
        self.seal();
        self.len += b.len();
        self.queue.push_back(b);
    }

    fn mark(&mut self, now: Instant) {
        if self.len == 0 {
            self.progress_at = Some(now);
        }
    }

    fn seal(&mut self) {
        if !self.tail.is_empty() {
            self.queue.push_back(self.tail.split().freeze());
        }
    }

    fn advance(&mut self, mut n: usize) {
        n = n.min(self.len);
        self.len -= n;
        self.sent += n as u64;
        while n > 0 {
            let Some(front) = self.queue.front_mut() else {
                self.tail.advance(n);
                return;
            };
            if front.len() > n {
                front.advance(n);
                return;
            }
            n -= front.len();
            self.queue.pop_front();
        }
    }
}

/// One LHP connection, sans IO (see the [module docs](self)).
#[derive(Debug)]
pub struct Connection {
    config: Config,
    role: Role,
    decoder: Decoder,
    encoder: Encoder,
    inbuf: BytesMut,
    rx: Rx,
    events: VecDeque<Event>,
    event_octets: usize,
    out: Outgoing,
    state: State,
    ending: Option<Ending>,
    /// Octets received (the `offset` of a `timeout`, E2).
    received: u64,
    /// When the frame being received got its first octet (read deadline, E4).
    frame_started: Option<Instant>,
    /// Since when the connection has been idle (idle deadline, E4).
    idle_since: Instant,
    /// Requests handed to the application and not yet answered.
    outstanding: usize,
    /// Octets still owed by a reply whose head is queued (E3's partial frame).
    reply_remaining: Option<u64>,
    /// The peer ended its sending direction.
    peer_eof: bool,
    /// `shutdown_grace` deadline once a graceful shutdown began.
    grace_until: Option<Instant>,
    write_closed: bool,
    /// Inside `process` (answers given while decoding do not recurse into it).
    processing: bool,
    /// The server's counters, if it keeps them ([`set_stats`](Connection::set_stats)).
    stats: Option<Arc<Stats>>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(stats) = &self.stats {
            if self.ending != Some(Ending::Busy) {
                stats.closed();
            }
        }
    }
}

impl Connection {
    /// A server connection answering every frame itself (§8).
    pub fn echo_server(config: Config, now: Instant) -> Self {
        Connection::new(config, Role::EchoServer, now)
    }

    /// A server connection handing requests other than `echo` to the application.
    pub fn app_server(config: Config, now: Instant) -> Self {
        Connection::new(config, Role::AppServer, now)
    }

    /// A client connection.
    pub fn client(config: Config, now: Instant) -> Self {
        Connection::new(config, Role::Client, now)
    }

    /// A connection over the limit (E4 `max_connections`): it sends `busy` with offset 0 before
    /// reading anything, then closes as after any connection error.
    pub fn busy(config: Config, now: Instant) -> Self {
        let mut conn = Connection::new(config, Role::EchoServer, now);
        let message = format!(
            "the server is at its connection limit ({})",
            config.max_connections()
        );
        conn.fail_with(
            Ending::Busy,
            |p, out| encode_connection_error(p, "busy", &message, 0, None, out),
            now,
        );
        conn
    }

    /// A connection in `role`.
    pub fn new(config: Config, role: Role, now: Instant) -> Self {
        Connection {
            config,
            role,
            decoder: Decoder::with(config.profile(), config.limits()),
            encoder: Encoder::with_profile(config.profile()),
            inbuf: BytesMut::new(),
            rx: Rx::Boundary,
            events: VecDeque::new(),
            event_octets: 0,
            out: Outgoing::default(),
            state: State::Open,
            ending: None,
            received: 0,
            frame_started: None,
            idle_since: now,
            outstanding: 0,
            reply_remaining: None,
            peer_eof: false,
            grace_until: None,
            write_closed: false,
            processing: false,
            stats: None,
        }
    }

    /// Counts this connection and everything it does from now on in `stats`, the server's
    /// shared counters (call it once, right after construction): an open connection (until it
    /// is dropped), or, for a [`busy`](Self::busy) one, a connection turned away.
    pub fn set_stats(&mut self, stats: Arc<Stats>) {
        if self.stats.is_some() {
            return;
        }
        if self.ending == Some(Ending::Busy) {
            // Its error frame was queued at construction.
            stats.busy();
            stats.connection_error("busy");
            stats.frame_out();
        } else {
            stats.opened();
        }
        self.stats = Some(stats);
    }

    /// The counters this connection feeds, if any.
    pub fn stats(&self) -> Option<&Arc<Stats>> {
        self.stats.as_ref()
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Octets received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Octets the driver reported sent so far.
    pub fn sent(&self) -> u64 {
        self.out.sent
    }

    /// Octets the driver received from the peer. `now` is when they arrived.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        if data.is_empty() {
            return;
        }
        self.received += data.len() as u64;
        if let Some(s) = &self.stats {
            s.octets_in(data.len() as u64);
        }
        if self.state != State::Open || self.peer_eof {
            // Closing: input is read and discarded (E3).
            return;
        }
        if matches!(self.rx, Rx::Boundary) && self.inbuf.is_empty() {
            self.frame_started = Some(now);
        }
        self.inbuf.extend_from_slice(data);
        self.process(now);
    }

    /// The peer ended its sending direction (a read returned 0).
    pub fn handle_eof(&mut self, now: Instant) {
        match self.state {
            State::Closing { .. } => {
                // The queued error frame still goes out: the peer may still read (E5).
                self.peer_eof = true;
                self.after_flush();
            }
            State::Closed => {}
            State::Open => {
                self.peer_eof = true;
                self.process(now);
            }
        }
    }

    /// The next thing for the application, in order.
    pub fn poll_event(&mut self) -> Option<Event> {
        let e = self.events.pop_front()?;
        if let Event::Body(b) = &e {
            self.event_octets -= b.len();
        }
        Some(e)
    }

    /// Whether the driver should read more input now: false once closed, while the peer is
    /// not reading what is queued for it ([`OUTPUT_HIGH_WATER`]), while the application has
    /// not taken the body octets already delivered, or while a pipelined request waits for an
    /// earlier one's answer ([`PIPELINE_HIGH_WATER`]).
    pub fn wants_input(&self) -> bool {
        match self.state {
            State::Closed => false,
            State::Closing { .. } => !self.peer_eof,
            State::Open => {
                !self.peer_eof
                    && self.out.len < OUTPUT_HIGH_WATER
                    && self.event_octets < OUTPUT_HIGH_WATER
                    && self.inbuf.len() < PIPELINE_HIGH_WATER.max(self.wanted_now())
            }
        }
    }

    /// How many octets the current element still needs (a read size hint, never more than the
    /// limits allow).
    pub fn read_hint(&self) -> usize {
        usize::try_from(self.decoder.wanted(self.inbuf.len()))
            .unwrap_or(usize::MAX)
            .clamp(PREFIX_LEN, 1 << 20)
    }

    fn wanted_now(&self) -> usize {
        if self.paused() {
            0
        } else {
            usize::try_from(self.decoder.wanted(0)).unwrap_or(usize::MAX)
        }
    }

    /// Octets queued for sending.
    pub fn pending_len(&self) -> usize {
        self.out.len
    }

    /// The queued octets, in order, as slices for one vectored write. Write any prefix of them
    /// and report it with [`handle_sent`](Self::handle_sent).
    pub fn pending(&self) -> impl Iterator<Item = &[u8]> {
        // The gathered small pieces follow every queued `Bytes` (see `Outgoing::push_bytes`).
        let tail = Some(&self.out.tail[..]).filter(|t| !t.is_empty());
        self.out.queue.iter().map(|b| &b[..]).chain(tail)
    }

    /// `n` octets from the front of [`pending`](Self::pending) were written at `now`.
    pub fn handle_sent(&mut self, n: usize, now: Instant) {
        if n > 0 {
            self.out.progress_at = Some(now);
        }
        if let Some(s) = &self.stats {
            s.octets_out(n.min(self.out.len) as u64);
        }
        self.out.advance(n);
        if self.out.len == 0 {
            self.after_flush();
        }
    }

    /// Takes every queued octet (for drivers and tests without partial writes).
    pub fn take_pending(&mut self, now: Instant) -> Vec<u8> {
        let mut all = Vec::with_capacity(self.out.len);
        for chunk in self.pending() {
            all.extend_from_slice(chunk);
        }
        let n = all.len();
        self.handle_sent(n, now);
        all
    }

    /// True once the driver should shut down its sending direction (after writing everything
    /// [`pending`](Self::pending) holds), and keep reading until [`is_closed`](Self::is_closed).
    pub fn is_write_closed(&self) -> bool {
        self.write_closed
    }

    /// True once the driver must close the socket (and drop the connection).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Why the connection ended (or is ending).
    pub fn ending(&self) -> Option<&Ending> {
        self.ending.as_ref()
    }

    /// The next instant at which [`handle_timeout`](Self::handle_timeout) must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut at = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if self.out.len > 0 {
            if let Some(p) = self.out.progress_at {
                at(p + self.config.write_timeout());
            }
        }
        match self.state {
            State::Closed => return None,
            State::Closing { linger } => {
                if let Some(l) = linger {
                    at(l);
                }
                return next;
            }
            State::Open => {}
        }
        if let Some(g) = self.grace_until {
            at(g);
        }
        if let Some(d) = self.read_deadline() {
            at(d);
        } else if self.is_idle() && self.role != Role::Client {
            at(self.idle_since + self.config.idle_timeout());
        }
        next
    }

    /// Time passed: applies every deadline due at `now` (E4).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.out.len > 0 {
            if let Some(p) = self.out.progress_at {
                if now >= p + self.config.write_timeout() {
                    // E4: the peer is not reading; nothing more can be written.
                    if self.ending.is_none() {
                        self.count(Stats::write_stall);
                    }
                    self.ending.get_or_insert(Ending::WriteStalled);
                    self.state = State::Closed;
                    return;
                }
            }
        }
        match self.state {
            State::Closed => return,
            State::Closing { linger } => {
                if linger.is_some_and(|l| now >= l) {
                    self.state = State::Closed;
                }
                return;
            }
            State::Open => {}
        }
        if self.grace_until.is_some_and(|g| now >= g) {
            // E4: after the grace, close everything, without an error frame.
            self.ending = Some(Ending::Shutdown { forced: true });
            self.state = State::Closed;
            return;
        }
        if self.read_deadline().is_some_and(|d| now >= d) {
            let what = if matches!(self.rx, Rx::Body { .. }) {
                "body"
            } else {
                "head"
            };
            let message = format!("read deadline passed inside a frame ({what} incomplete)");
            self.timeout(&message, now);
        } else if self.role != Role::Client
            && self.is_idle()
            && now >= self.idle_since + self.config.idle_timeout()
        {
            let message = format!(
                "idle: no request for {} ms",
                self.config.idle_timeout().as_millis()
            );
            self.timeout(&message, now);
        }
    }

    /// Begins a graceful shutdown (E4): a connection at a frame boundary with nothing in
    /// progress closes now, without an error frame; one with a request in progress closes at
    /// the next boundary once it is answered, or when `shutdown_grace` runs out.
    pub fn begin_shutdown(&mut self, now: Instant) {
        if self.state != State::Open || self.grace_until.is_some() {
            return;
        }
        self.grace_until = Some(now + self.config.shutdown_grace());
        self.settle();
    }

    /// Queues a whole reply (server) or request (client) frame, encoded in the connection's
    /// profile. A server then calls [`finish_request`](Self::finish_request).
    pub fn send(&mut self, frame: &Frame, now: Instant) -> Result<(), EncodeError> {
        if !self.can_send() {
            return Ok(());
        }
        let mut head = BytesMut::new();
        self.encoder
            .encode_head(&frame.header, frame.body.len() as u64, &mut head)?;
        self.count(Stats::frame_out);
        self.out.push_slice(&head, now);
        self.out.push_bytes(frame.body.clone(), now);
        Ok(())
    }

    /// Queues the head of a frame whose `body_len` octets follow with
    /// [`send_body`](Self::send_body). Until they are all queued, a connection error closes the
    /// connection without an error frame (E3: never after a partial frame).
    pub fn send_head(
        &mut self,
        header: &Header,
        body_len: u64,
        now: Instant,
    ) -> Result<(), EncodeError> {
        if !self.can_send() {
            return Ok(());
        }
        let mut head = BytesMut::new();
        self.encoder.encode_head(header, body_len, &mut head)?;
        self.count(Stats::frame_out);
        self.out.push_slice(&head, now);
        self.reply_remaining = (body_len > 0).then_some(body_len);
        Ok(())
    }

    /// Queues the next body octets of the frame begun with [`send_head`](Self::send_head)
    /// (octets beyond its `body_len` are dropped).
    pub fn send_body(&mut self, chunk: Bytes, now: Instant) {
        let Some(rem) = self.reply_remaining else {
            return;
        };
        let n = usize::try_from(rem).map_or(chunk.len(), |r| r.min(chunk.len()));
        if self.can_send() {
            self.out.push_bytes(chunk.slice(..n), now);
        }
        let rem = rem - n as u64;
        self.reply_remaining = (rem > 0).then_some(rem);
    }

    /// True while a frame begun with [`send_head`](Self::send_head) is incomplete.
    pub fn is_sending_body(&self) -> bool {
        self.reply_remaining.is_some()
    }

    /// Queues a request error frame refusing `request` (E2): `id` copied from the request if
    /// it carried one, no `offset`. The connection goes on.
    pub fn refuse(&mut self, request: &Header, code: &str, message: &str, now: Instant) {
        if self.can_send() {
            let mut frame = BytesMut::new();
            encode_request_error(self.profile(), request.get("id"), code, message, &mut frame);
            if let Some(s) = &self.stats {
                s.refusal(code);
                s.frame_out();
            }
            self.out.push_slice(&frame, now);
        }
    }

    /// The application is done with the oldest unanswered request (everything it sends for it
    /// is queued). The next request is decoded only then, so replies stay in order (E5).
    /// Finishing with a streamed reply incomplete aborts it (see
    /// [`abort_reply`](Self::abort_reply)).
    pub fn finish_request(&mut self, now: Instant) {
        if self.reply_remaining.is_some() {
            return self.abort_reply(now);
        }
        self.answered(now);
    }

    /// The application failed while sending a streamed reply (its source broke): the frame can
    /// not be completed, so the connection closes without another octet (E3).
    pub fn abort_reply(&mut self, now: Instant) {
        let _ = now;
        self.reply_remaining = None;
        self.ending.get_or_insert(Ending::Shutdown { forced: true });
        self.state = State::Closing { linger: None };
        self.after_flush();
    }

    fn profile(&self) -> Profile {
        self.config.profile()
    }

    /// Applies `f` to the counters, if there are any.
    fn count(&self, f: impl FnOnce(&Stats)) {
        if let Some(s) = &self.stats {
            f(s);
        }
    }

    fn can_send(&self) -> bool {
        self.state == State::Open
    }

    /// A server answered a request.
    fn answered(&mut self, now: Instant) {
        if self.role == Role::Client {
            return;
        }
        self.outstanding = self.outstanding.saturating_sub(1);
        if self.outstanding == 0 {
            self.idle_since = now;
            if !self.inbuf.is_empty() && matches!(self.rx, Rx::Boundary) {
                // A pipelined request waited: its read deadline starts now.
                self.frame_started = Some(now);
            }
        }
        if self.state == State::Open && !self.processing {
            self.process(now);
        }
    }

    /// Waiting for the application to answer before the next frame is begun (E5: in order).
    fn paused(&self) -> bool {
        self.outstanding > 0 && matches!(self.rx, Rx::Boundary)
    }

    fn is_idle(&self) -> bool {
        matches!(self.rx, Rx::Boundary)
            && self.out.len == 0
            && self.inbuf.is_empty()
            && self.outstanding == 0
            && self.reply_remaining.is_none()
    }

    fn read_deadline(&self) -> Option<Instant> {
        if self.peer_eof {
            return None;
        }
        match &self.rx {
            Rx::Body { deadline, .. } => Some(*deadline),
            _ if self.paused() || self.inbuf.is_empty() && matches!(self.rx, Rx::Boundary) => None,
            _ => self.frame_started.map(|t| t + self.config.read_timeout()),
        }
    }

    fn timeout(&mut self, message: &str, now: Instant) {
        let offset = self.received;
        self.fail_with(
            Ending::Timeout { offset },
            |p, out| encode_connection_error(p, "timeout", message, offset, None, out),
            now,
        );
    }

    fn fail(&mut self, e: DecodeError, now: Instant) {
        self.fail_with(
            Ending::Decode(e.clone()),
            |p, out| encode_decode_error(p, &e, out),
            now,
        );
    }

    /// E3: a connection error. Sends the error frame unless part of a frame has been sent,
    /// then shuts down the sending direction, discards input for `close_linger`, closes.
    fn fail_with(
        &mut self,
        ending: Ending,
        frame: impl FnOnce(Profile, &mut BytesMut),
        now: Instant,
    ) {
        if self.state != State::Open {
            return;
        }
        if let Some(s) = &self.stats {
            s.connection_error(ending.code().unwrap_or_default());
        }
        self.ending = Some(ending);
        self.inbuf = BytesMut::new();
        if self.reply_remaining.is_none() {
            let mut out = BytesMut::new();
            frame(self.profile(), &mut out);
            self.count(Stats::frame_out);
            self.out.push_slice(&out, now);
            self.state = State::Closing {
                linger: Some(now + self.config.close_linger()),
            };
        } else {
            // Octets after a partial frame would land inside its declared body.
            self.state = State::Closing { linger: None };
        }
        self.after_flush();
    }

    /// A clean end: no error frame, close once the queued output is written.
    fn finish_clean(&mut self, ending: Ending) {
        self.ending.get_or_insert(ending);
        self.state = State::Closing { linger: None };
        self.after_flush();
    }

    fn after_flush(&mut self) {
        if self.out.len > 0 {
            return;
        }
        if let State::Closing { linger } = self.state {
            self.write_closed = true;
            if linger.is_none() || self.peer_eof {
                self.state = State::Closed;
            }
        }
    }

    /// Closes at a frame boundary when the peer half-closed or a shutdown began (E4, E5).
    /// A frame boundary is zero octets of a next frame received (§3): a frame whose first
    /// prefix octet has arrived is in progress.
    fn settle(&mut self) {
        if self.state != State::Open || self.in_frame() {
            return;
        }
        if self.outstanding > 0 || self.reply_remaining.is_some() {
            return;
        }
        if self.grace_until.is_some() {
            self.finish_clean(Ending::Shutdown { forced: false });
        } else if self.peer_eof {
            self.finish_clean(Ending::Clean);
        }
    }

    fn process(&mut self, now: Instant) {
        self.processing = true;
        while self.state == State::Open {
            if !self.step(now) {
                break;
            }
        }
        self.processing = false;
        if self.state == State::Open && self.peer_eof && !self.paused() {
            if let Err(e) = self.decoder.finish(&self.inbuf) {
                return self.fail(e, now);
            }
        }
        self.settle();
    }

    /// One decoding step; false when it needs more input (or an answer).
    fn step(&mut self, now: Instant) -> bool {
        if self.inbuf.is_empty() && matches!(self.rx, Rx::Boundary) {
            return false;
        }
        if self.role == Role::EchoServer
            && matches!(self.rx, Rx::Boundary)
            && !self.paused()
            && self.grace_until.is_none()
        {
            if let Some(more) = self.whole_frame(now) {
                return more;
            }
        }
        match &self.rx {
            Rx::Boundary | Rx::Header { .. } => {
                // During a shutdown grace a frame whose first octet has arrived is in
                // progress (E4), so it is decoded like any other.
                if self.paused() {
                    return false;
                }
                let raw = self.capture_header();
                let h = self.prefix_len();
                match self.decoder.decode_event(&mut self.inbuf) {
                    Ok(None) => {
                        if matches!(self.rx, Rx::Boundary) && !self.decoder.is_between_frames() {
                            self.rx = Rx::Header { h: h.unwrap_or(0) };
                        }
                        false
                    }
                    Ok(Some(crate::Event::Head(header))) => {
                        self.begin_body(header, raw, now);
                        true
                    }
                    Ok(Some(_)) => true,
                    Err(e) => {
                        self.fail(e, now);
                        false
                    }
                }
            }
            Rx::Body {
                streamed: false, ..
            } => match self.decoder.decode(&mut self.inbuf) {
                Ok(Some(frame)) => {
                    self.end_frame(Some(frame), now);
                    true
                }
                Ok(None) => false,
                Err(e) => {
                    self.fail(e, now);
                    false
                }
            },
            Rx::Body { answer, .. } => {
                let answer = *answer;
                match self.decoder.decode_event(&mut self.inbuf) {
                    Ok(Some(crate::Event::Body(chunk))) => {
                        match answer {
                            Answer::Echo => self.send_body(chunk, now),
                            Answer::NotEcho => {}
                            Answer::App => {
                                self.event_octets += chunk.len();
                                self.events.push_back(Event::Body(chunk));
                            }
                        }
                        true
                    }
                    Ok(Some(_)) => {
                        self.end_frame(None, now);
                        true
                    }
                    Ok(None) => false,
                    Err(e) => {
                        self.fail(e, now);
                        false
                    }
                }
            }
        }
    }

    /// Echo server, between frames: a frame whose octets are all buffered is decoded in place
    /// (validated, digest checked, no `Header` built, nothing copied) and answered at once. An
    /// echo is its own octets (E7: the profile's prefix for the same length is the same four
    /// octets, then the header text and the body as they arrived). `None`: the frame is not
    /// all here; the event path takes it (and validates its header again, once per such frame).
    fn whole_frame(&mut self, now: Instant) -> Option<bool> {
        let span = match self.decoder.decode_span(&self.inbuf) {
            Ok(Some(span)) => span,
            Ok(None) => return None,
            Err(e) => {
                self.fail(e, now);
                return Some(false);
            }
        };
        let len = span.body.end;
        let refused = match self.decoder.frame_ref(&span, &self.inbuf) {
            Some(frame) if is_echo(&frame) => None,
            Some(frame) => Some(frame.to_header()),
            // Unreachable: the span was cut from this buffer.
            None => Some(Header::default()),
        };
        self.count(Stats::frame_in);
        match refused {
            None => {
                self.count(Stats::frame_out);
                let frame = self.inbuf.get(..len).unwrap_or_default();
                self.out.push_slice(frame, now);
            }
            Some(header) => self.refuse_not_echo(&header, now),
        }
        self.inbuf.advance(len);
        self.idle_since = now;
        self.frame_started = (!self.inbuf.is_empty()).then_some(now);
        Some(true)
    }

    /// An echo server has no handler for a frame of another kind: `bad_request` (§8).
    fn refuse_not_echo(&mut self, header: &Header, now: Instant) {
        let what = header
            .kind()
            .map_or_else(|| "no kind".to_owned(), |k| format!("kind {k:?}"));
        let message = format!("this is an echo server; a frame with {what} has no handler");
        self.refuse(header, "bad_request", &message, now);
    }

    /// The header length the buffered prefix declares, if the prefix is there.
    fn prefix_len(&self) -> Option<usize> {
        let p = *self.inbuf.first_chunk::<PREFIX_LEN>()?;
        let h = match self.profile() {
            Profile::Lhp1 => i64::from(u32::from_be_bytes(p)),
            Profile::SeedCompat => i64::from(i32::from_le_bytes(p)),
        };
        usize::try_from(h)
            .ok()
            .filter(|&h| h <= self.config.limits().max_header_len() as usize)
    }

    /// E7: the header text exactly as received, kept for an echo (servers only).
    fn capture_header(&self) -> Option<Bytes> {
        if self.role == Role::Client {
            return None;
        }
        let text = match self.rx {
            Rx::Boundary => {
                let h = self.prefix_len()?;
                self.inbuf.get(PREFIX_LEN..PREFIX_LEN + h)?
            }
            Rx::Header { h } => self.inbuf.get(..h)?,
            Rx::Body { .. } => return None,
        };
        Some(Bytes::copy_from_slice(text))
    }

    /// The header is complete: choose who answers, whether the body streams (one rule:
    /// longer than `stream_threshold`), and start the body deadline (E4).
    fn begin_body(&mut self, header: Header, raw: Option<Bytes>, now: Instant) {
        let body_len = header.body_len();
        let deadline = now + self.config.body_allowance(body_len);
        let answer = match (self.role, header.kind()) {
            (Role::Client, _) => Answer::App,
            (_, Some("echo")) => Answer::Echo,
            (Role::EchoServer, _) => Answer::NotEcho,
            (_, _) => Answer::App,
        };
        let streamed = match answer {
            Answer::Echo => body_len > self.config.stream_threshold(),
            Answer::App => body_len > self.config.deliver_whole(),
            // A refused body is skipped as it arrives.
            Answer::NotEcho => true,
        };
        if self.role != Role::Client {
            self.outstanding += 1;
        }
        if streamed {
            match answer {
                Answer::Echo => self.echo_head(raw.as_ref(), &header, now),
                Answer::App => self.events.push_back(Event::Head(header.clone())),
                Answer::NotEcho => {}
            }
        }
        self.rx = Rx::Body {
            deadline,
            streamed,
            answer,
            raw: raw.filter(|_| !streamed && answer == Answer::Echo),
            refused: (answer == Answer::NotEcho).then(|| Box::new(header)),
        };
    }

    /// E7: the echo's head is the request's prefix and header text, octet for octet.
    fn echo_head(&mut self, raw: Option<&Bytes>, header: &Header, now: Instant) {
        let body_len = header.body_len();
        match raw {
            Some(text) => {
                self.count(Stats::frame_out);
                let mut prefix = [0u8; PREFIX_LEN];
                error::put_prefix(self.profile(), text.len() as u32, &mut prefix);
                self.out.push_slice(&prefix, now);
                self.out.push_slice(text, now);
                self.reply_remaining = (body_len > 0).then_some(body_len);
            }
            None => {
                // Unreachable: a server keeps the text of every header it decodes.
                let _ = self.send_head(header, body_len, now);
            }
        }
    }

    /// The current frame is complete (`frame` is `Some` for a whole one).
    fn end_frame(&mut self, frame: Option<Frame>, now: Instant) {
        self.count(Stats::frame_in);
        let rx = std::mem::replace(&mut self.rx, Rx::Boundary);
        self.frame_started = (!self.inbuf.is_empty()).then_some(now);
        let Rx::Body {
            answer,
            raw,
            refused,
            ..
        } = rx
        else {
            return;
        };
        match (frame, answer) {
            (Some(frame), Answer::Echo) => {
                self.echo_head(raw.as_ref(), &frame.header, now);
                self.send_body(frame.body, now);
                self.answered(now);
            }
            (None, Answer::Echo) => self.answered(now),
            (_, Answer::NotEcho) => {
                let header = refused.map(|h| *h).unwrap_or_default();
                self.refuse_not_echo(&header, now);
                self.answered(now);
            }
            (Some(frame), Answer::App) => {
                if self.role == Role::Client {
                    if let Err(p) = self.handle_reply(&frame.header) {
                        if p.class == ErrorClass::Request {
                            self.events.push_back(Event::Refused(*p));
                        }
                        return;
                    }
                }
                self.events.push_back(Event::Frame(frame));
            }
            (None, Answer::App) => self.events.push_back(Event::End),
        }
    }

    /// Client role: applies E2 to the header of a received frame. `Ok(())`: an ordinary
    /// reply. `Err` with [`ErrorClass::Request`]: the server refused one request and the
    /// connection goes on. `Err` with [`ErrorClass::Connection`]: the server is closing, so the
    /// connection ends here too, without another octet ([`Ending::Peer`];
    /// [`is_closed`](Self::is_closed) is then true once nothing is queued).
    ///
    /// The machine calls it for every frame it decodes in the client role; a client that
    /// decodes replies with its own reader calls it for each header it reads, so that the
    /// rule stays in this one place.
    ///
    /// ```
    /// use std::time::Instant;
    /// use lhp_codec::conn::{Config, Connection, Ending, ErrorClass};
    /// use lhp_codec::Header;
    ///
    /// let now = Instant::now();
    /// let mut client = Connection::client(Config::new(), now);
    /// assert!(client.handle_reply(&Header::with_kind("echo")).is_ok());
    /// let mut refusal = Header::with_kind("error");
    /// refusal.insert("id", 1).insert("code", "not_found").insert("message", "no");
    /// assert_eq!(client.handle_reply(&refusal).unwrap_err().class, ErrorClass::Request);
    /// assert!(client.ending().is_none());
    /// let mut fatal = Header::with_kind("error");
    /// fatal.insert("code", "timeout").insert("message", "idle").insert("offset", 9);
    /// assert_eq!(client.handle_reply(&fatal).unwrap_err().class, ErrorClass::Connection);
    /// assert!(matches!(client.ending(), Some(Ending::Peer(p)) if p.code == "timeout"));
    /// assert!(client.is_closed());
    /// ```
    pub fn handle_reply(&mut self, header: &Header) -> Result<(), Box<PeerError>> {
        let Some(p) = PeerError::from_header(header) else {
            return Ok(());
        };
        if p.class == ErrorClass::Connection && self.state == State::Open {
            // The server closes after a connection error: so do we, without a reply.
            self.ending = Some(Ending::Peer(p.clone()));
            self.inbuf = BytesMut::new();
            self.state = State::Closing { linger: None };
            self.after_flush();
        }
        Err(Box::new(p))
    }

    /// Whether a frame is being received (its first octet has arrived).
    pub fn in_frame(&self) -> bool {
        !matches!(self.rx, Rx::Boundary) || !self.inbuf.is_empty()
    }

    /// Requests handed to the application and not yet answered.
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// The value of `id` a request error copies (E2), for drivers that build their own.
    pub fn request_id(request: &Header) -> Option<&Value> {
        request.get("id")
    }
}

/// Whether a frame decoded in place is an `echo` (§8), read from the decoder's member table
/// without building its header.
fn is_echo(frame: &crate::FrameRef<'_>) -> bool {
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(borrow)]
        kind: Option<std::borrow::Cow<'a, str>>,
    }
    // §4.4 has checked that `kind`, if present, is a string: this can not fail.
    frame
        .header::<Kind<'_>>()
        .is_ok_and(|k| k.kind.as_deref() == Some("echo"))
}

#[cfg(test)]
mod tests;
