//! # lhp-testkit: the loopback battery every LHP engine must pass
//!
//! Each battery function drives an LHP/1 **echo server** (spec §8: a frame of kind `echo`
//! comes back with the same members in the same order and the same body; other kinds get an
//! `error` frame `bad_request` and the connection stays open) over real TCP on loopback, with
//! plain `std::net` clients and the reference codec, so it judges any engine the same way. A
//! failure panics with a message naming the case, the connection and what differed.
//!
//! | function | what it proves |
//! |---|---|
//! | [`vectors_at_split_points`] | every valid `lhp1` vector, split inside prefix, header and body |
//! | [`all_vectors_coalesced`] | all of them in one write, replies in order |
//! | [`concurrent_random_frames`] | many clients, random sizes and chunking, nothing lost or duplicated |
//! | [`hostile_peers`] | bad prefixes, bad JSON, truncation, slow peers, HTTP, TLS: error frame and close |
//! | [`idle_large_declarations`] | connections declaring 1 GiB bodies and going quiet are held cheaply |
//!
//! What the server under test must be configured with is stated on each function. Servers
//! run in the test's own process, so memory is measured with [`rss_bytes`].
//!
//! ```
//! /// Called by an engine's test with the address of its echo server.
//! fn check_my_engine(addr: std::net::SocketAddr) {
//!     lhp_testkit::vectors_at_split_points(addr);
//!     lhp_testkit::concurrent_random_frames(addr, 200, 500, 7);
//! }
//! ```
//!
//! The helpers ([`echo_frame`], [`encode`], [`TestConn`], [`ping`]) are public so engine tests
//! can build their own cases the same way.

#![warn(missing_docs)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use lhp_codec::{Decoder, Encoder, Event, Frame, Header, Limits, Map, Profile, Value};

pub mod alloc;
pub mod conversations;
mod hostile;
mod load;
pub mod scripted;
mod vectors;

pub use hostile::{hostile_peers, idle_large_declarations, HeldConnections};
pub use load::concurrent_random_frames;
pub use vectors::{all_vectors_coalesced, echo_streams, vectors_at_split_points, EchoStream};

/// How long a battery client waits for any single reply before failing the test.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// An `echo` frame with `id` and `body`: `{"kind":"echo","id":ID,"body_len":N}`.
pub fn echo_frame(id: u64, body: impl Into<Bytes>) -> Frame {
    let mut h = Header::with_kind("echo");
    h.set_id(id);
    Frame::new(h, body.into())
}

/// An `echo` frame with the given members after `kind` (any member named `kind` or
/// `body_len` among them is overridden).
pub fn echo_frame_with(members: &[(&str, Value)], body: impl Into<Bytes>) -> Frame {
    let mut h = Header::with_kind("echo");
    for (name, value) in members {
        if *name != "kind" && *name != "body_len" {
            h.insert(name.to_string(), value.clone());
        }
    }
    Frame::new(h, body.into())
}

/// The `lhp1` wire form of `frame`. Panics if the codec refuses it (a bug in the test).
pub fn encode(frame: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    if let Err(e) = Encoder::new().encode(frame, &mut out) {
        panic!("testkit bug: cannot encode {}: {e}", frame.header);
    }
    out.to_vec()
}

/// The `lhp1` wire form of `frames`, back to back.
pub fn encode_all(frames: &[Frame]) -> Vec<u8> {
    frames.iter().flat_map(encode).collect()
}

/// A `put` frame with `id` = `seed` whose body is `len` octets of a pattern that differs with
/// `seed`, so that a body read into the wrong place, or overwritten, is noticed.
pub fn patterned_frame(len: usize, seed: u8) -> Frame {
    let body: Vec<u8> = (0..len)
        .map(|i| (i % 251) as u8 ^ seed.wrapping_mul(37))
        .collect();
    let mut h = Header::with_kind("put");
    h.set_id(u64::from(seed));
    Frame::new(h, body.into())
}

/// Panics unless `got` has the same members as `want`, in the same order, with equal values
/// (numbers compared by value), and the same body.
pub fn assert_same_frame(got: &Frame, want: &Frame, context: &str) {
    let (g, w) = (got.header.members(), want.header.members());
    let names_g: Vec<&String> = g.keys().collect();
    let names_w: Vec<&String> = w.keys().collect();
    assert!(
        names_g == names_w && lhp_vectors::objects_equal(g, w),
        "{context}: reply header differs\n  got:  {}\n  want: {}",
        got.header,
        want.header
    );
    if got.body != want.body {
        let first = got
            .body
            .iter()
            .zip(want.body.iter())
            .position(|(a, b)| a != b);
        panic!(
            "{context}: reply body differs: got {} octets, want {}; first difference at {:?}",
            got.body.len(),
            want.body.len(),
            first
        );
    }
}

/// Sends one echo frame on a new connection and checks the reply: proves the server still
/// serves new clients.
pub fn ping(addr: SocketAddr, context: &str) {
    let mut conn = TestConn::connect(addr, context);
    let frame = echo_frame(424242, &b"still alive?"[..]);
    conn.send(&encode(&frame));
    let reply = conn.expect_frame(context);
    assert_same_frame(&reply, &frame, &format!("{context}: ping after the case"));
}

/// A test client connection: a `TcpStream` with `TCP_NODELAY`, timeouts, and a reference
/// decoder for the replies (limits: 64 KiB headers, bodies up to 2^53−1 octets, since the
/// battery's replies are bounded by what it sends).
#[derive(Debug)]
pub struct TestConn {
    stream: TcpStream,
    decoder: Decoder,
    buf: BytesMut,
    context: String,
}

impl TestConn {
    /// Connects (5 s timeout) or panics naming `context`.
    pub fn connect(addr: SocketAddr, context: &str) -> TestConn {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{context}: cannot connect to {addr}: {e}"));
        TestConn::from_stream(stream, context)
    }

    /// Wraps a connected stream.
    pub fn from_stream(stream: TcpStream, context: &str) -> TestConn {
        let setup = stream
            .set_nodelay(true)
            .and_then(|()| stream.set_read_timeout(Some(REPLY_TIMEOUT)))
            .and_then(|()| stream.set_write_timeout(Some(REPLY_TIMEOUT)));
        if let Err(e) = setup {
            panic!("{context}: cannot configure the socket: {e}");
        }
        let limits = Limits::new().with_max_body_len(lhp_codec::MAX_SAFE_INTEGER);
        TestConn {
            stream,
            decoder: Decoder::with(Profile::Lhp1, limits),
            buf: BytesMut::new(),
            context: context.to_owned(),
        }
    }

    /// The socket.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Writes all of `bytes` with one `write_all` (or panics).
    pub fn send(&mut self, bytes: &[u8]) {
        if let Err(e) = self.stream.write_all(bytes) {
            panic!(
                "{}: write of {} octets failed: {e}",
                self.context,
                bytes.len()
            );
        }
    }

    /// Writes `chunks` with one write call sequence per chunk, pausing `pause` between them
    /// so that each chunk reaches the server as its own segment.
    pub fn send_chunks(&mut self, chunks: &[&[u8]], pause: Duration) {
        for (i, c) in chunks.iter().enumerate() {
            if i > 0 && !pause.is_zero() {
                std::thread::sleep(pause);
            }
            self.send(c);
        }
    }

    /// Reads the next reply frame: `Ok(None)` on a clean close between frames, `Err` with a
    /// description on a reset, a timeout or a reply that is not LHP/1.
    pub fn recv(&mut self) -> Result<Option<Frame>, String> {
        let mut scratch = vec![0u8; 64 << 10];
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(f)) => return Ok(Some(f)),
                Ok(None) => {}
                Err(e) => return Err(format!("the server's reply is not valid LHP/1: {e}")),
            }
            match self.stream.read(&mut scratch) {
                Ok(0) => {
                    return self
                        .decoder
                        .finish(&self.buf)
                        .map(|()| None)
                        .map_err(|e| format!("the server closed inside a reply: {e}"))
                }
                Ok(n) => self
                    .buf
                    .extend_from_slice(scratch.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(format!("no reply within {REPLY_TIMEOUT:?}: {e}"))
                }
                Err(e) => return Err(format!("read failed: {e}")),
            }
        }
    }

    /// The next reply frame, or panic.
    pub fn expect_frame(&mut self, what: &str) -> Frame {
        match self.recv() {
            Ok(Some(f)) => f,
            Ok(None) => panic!(
                "{} ({what}): the server closed the connection instead of replying",
                self.context
            ),
            Err(e) => panic!("{} ({what}): {e}", self.context),
        }
    }

    /// The next reply must be an `error` frame with `code` (and `offset`, if given). Returns it.
    pub fn expect_error(&mut self, code: &str, offset: Option<u64>, what: &str) -> Frame {
        let f = self.expect_frame(what);
        let h = &f.header;
        assert_eq!(
            h.kind(),
            Some("error"),
            "{} ({what}): expected an error frame, got {h}",
            self.context
        );
        assert_eq!(
            h.get("code").and_then(Value::as_str),
            Some(code),
            "{} ({what}): wrong error code in {h}",
            self.context
        );
        assert!(
            h.get("message").is_some_and(Value::is_string),
            "{} ({what}): error frame without a string `message`: {h}",
            self.context
        );
        if let Some(off) = offset {
            assert_eq!(
                h.get("offset").and_then(Value::as_u64),
                Some(off),
                "{} ({what}): wrong error offset in {h}",
                self.context
            );
        }
        f
    }

    /// The server must close the connection (end of stream or reset) without sending another
    /// frame, within `within`.
    pub fn expect_close(&mut self, within: Duration, what: &str) {
        if let Err(e) = self.stream.set_read_timeout(Some(within)) {
            panic!("{} ({what}): {e}", self.context);
        }
        match self.recv() {
            Ok(None) => {}
            Ok(Some(f)) => panic!(
                "{} ({what}): expected a close, got another frame {}",
                self.context, f.header
            ),
            Err(e) if e.starts_with("read failed") => {} // a reset is a close too
            Err(e) => panic!(
                "{} ({what}): expected the server to close the connection: {e}",
                self.context
            ),
        }
    }

    /// Closes our sending direction (the server sees end of stream).
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

/// The resident memory of this process (`VmRSS` in `/proc/self/status`), in octets. `None`
/// where `/proc` is not available.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Decodes the head of whatever arrived so far on a non-blocking socket: `Some(header)` if a
/// whole head arrived, `None` if nothing did. Panics on end of stream or garbage.
fn peek_head(stream: &TcpStream, context: &str) -> Option<Header> {
    let mut buf = BytesMut::new();
    let mut scratch = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_millis(500);
    let _ = stream.set_nonblocking(true);
    let mut dec = Decoder::with(
        Profile::Lhp1,
        Limits::new().with_max_body_len(lhp_codec::MAX_SAFE_INTEGER),
    );
    let result = loop {
        match (&*stream).read(&mut scratch) {
            Ok(0) => panic!("{context}: the server closed the connection"),
            Ok(n) => buf.extend_from_slice(scratch.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if buf.is_empty() {
                    break None;
                }
                if Instant::now() > deadline {
                    panic!("{context}: a partial reply head arrived and stalled");
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("{context}: read failed: {e}"),
        }
        match dec.decode_event(&mut buf) {
            Ok(Some(Event::Head(h))) => break Some(h),
            Ok(_) => {}
            Err(e) => panic!("{context}: the server's reply is not valid LHP/1: {e}"),
        }
    };
    let _ = stream.set_nonblocking(false);
    result
}

/// The members of `header` as a map (for building expected replies).
pub fn members(header: &Header) -> Map<String, Value> {
    header.members().clone()
}
