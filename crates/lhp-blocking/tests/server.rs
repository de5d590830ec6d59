//! Server behaviour beyond echo: connection limit, graceful shutdown, streamed bodies,
//! timeouts, closure handlers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use lhp_blocking::{
    Client, ClientConfig, Config, EchoHandler, Error, Handler, Replies, Request, Server,
};
use lhp_codec::{Frame, Header, Limits, Value};
use lhp_testkit::{echo_frame, encode, TestConn};

/// A request for the custom handlers below: kind `work` (an `echo` is answered by the
/// connection layer itself, E7, and never reaches a handler).
fn work_frame(id: u64, body: impl Into<bytes::Bytes>) -> Frame {
    let mut h = Header::with_kind("work");
    h.set_id(id);
    Frame::new(h, body.into())
}

fn spawn<H: Handler>(config: &Config, handler: H) -> lhp_blocking::ServerThread {
    Server::bind("127.0.0.1:0", *config, handler)
        .and_then(Server::spawn)
        .unwrap()
}

#[test]
fn excess_connections_get_busy_and_others_keep_working() {
    let mut config = Config::new();
    config.set_max_connections(2);
    let server = spawn(&config, EchoHandler::new());
    let addr = server.local_addr();
    let mut a = Client::connect(addr).unwrap();
    let mut b = Client::connect(addr).unwrap();
    let f = echo_frame(1, &b"x"[..]);
    assert_eq!(a.request(&f).unwrap(), f);
    assert_eq!(b.request(&f).unwrap(), f); // both are being served now
    let mut c = TestConn::connect(addr, "third connection");
    c.send(&encode(&f));
    c.expect_error("busy", None, "over the limit");
    c.expect_close(Duration::from_secs(5), "after busy");
    assert_eq!(a.request(&f).unwrap(), f);
    drop(a);
    // The freed slot is reusable.
    let end = Instant::now() + Duration::from_secs(5);
    while server.connections() > 1 && Instant::now() < end {
        thread::sleep(Duration::from_millis(10));
    }
    let mut d = Client::connect(addr).unwrap();
    assert_eq!(d.request(&f).unwrap(), f);
}

/// Holds each frame for `delay` before echoing it.
struct Slow {
    delay: Duration,
    started: Arc<AtomicUsize>,
}

impl Handler for Slow {
    fn handle(&self, request: Request<'_>, replies: &mut Replies<'_>) -> Result<(), Error> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let frame = request.into_frame()?;
        thread::sleep(self.delay);
        replies.send(&frame)
    }
}

#[test]
fn graceful_shutdown_finishes_in_flight_frames_and_closes_idle_ones() {
    let started = Arc::new(AtomicUsize::new(0));
    let mut config = Config::new();
    config.set_shutdown_grace(Duration::from_secs(5));
    let server = spawn(
        &config,
        Slow {
            delay: Duration::from_millis(300),
            started: started.clone(),
        },
    );
    let addr = server.local_addr();
    let mut idle = TestConn::connect(addr, "idle connection");
    let mut busy = Client::connect(addr).unwrap();
    let f = work_frame(5, &b"in flight"[..]);
    busy.send(&f).unwrap();
    while started.load(Ordering::SeqCst) == 0 {
        thread::sleep(Duration::from_millis(5));
    }
    let t = Instant::now();
    server.shutdown().unwrap();
    let took = t.elapsed();
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    // The in-flight frame was answered, then the connection closed.
    assert_eq!(busy.recv().unwrap(), Some(f));
    assert!(matches!(busy.recv(), Ok(None) | Err(Error::Io(_))));
    idle.expect_close(Duration::from_secs(2), "idle connection at shutdown");
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
        "still accepting"
    );
}

#[test]
fn grace_period_bounds_shutdown() {
    let started = Arc::new(AtomicUsize::new(0));
    let mut config = Config::new();
    config.set_shutdown_grace(Duration::from_millis(200));
    let server = spawn(
        &config,
        Slow {
            delay: Duration::from_secs(1),
            started: started.clone(),
        },
    );
    let mut busy = Client::connect(server.local_addr()).unwrap();
    busy.send(&work_frame(1, &b"slow"[..])).unwrap();
    while started.load(Ordering::SeqCst) == 0 {
        thread::sleep(Duration::from_millis(5));
    }
    let t = Instant::now();
    server.shutdown().unwrap();
    // Grace 200 ms, then sockets are shut down; the handler's sleep ends after 1 s.
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "shutdown took {:?}",
        t.elapsed()
    );
}

#[test]
fn idle_connections_get_timeout_then_close() {
    let mut config = Config::new();
    config.set_idle_timeout(Duration::from_millis(200));
    let server = spawn(&config, EchoHandler::new());
    let mut c = TestConn::connect(server.local_addr(), "idle");
    let f = echo_frame(1, &b"one"[..]);
    c.send(&encode(&f));
    c.expect_frame("echo");
    // E3: an idle close sends `timeout`, offset = the octets received (was a silent close).
    c.expect_error("timeout", Some(encode(&f).len() as u64), "idle timeout");
    c.expect_close(Duration::from_secs(3), "idle timeout");
}

#[test]
fn large_bodies_stream_through_the_echo_in_constant_memory() {
    const LEN: u64 = 256 << 20;
    let mut config = Config::new();
    config.set_limits(Limits::new().with_max_body_len(1 << 40));
    // Stream everything over 1 MiB.
    let server = spawn(&config, EchoHandler::new());
    let mut cc = ClientConfig::new();
    cc.limits(Limits::new().with_max_body_len(1 << 40));
    let mut client = Client::connect_with(server.local_addr(), &cc).unwrap();
    let mut upload = client.writer().get_ref().try_clone().unwrap();
    let before = lhp_testkit::rss_bytes();
    let sender = thread::spawn(move || {
        let mut h = Header::with_kind("echo");
        h.set_body_len(LEN);
        let mut w = lhp_blocking::FrameWriter::new(&mut upload);
        w.write_stream(&h, Pattern { left: LEN, at: 0 }).unwrap();
        upload.flush().unwrap();
    });
    let head = client.recv_head().unwrap().unwrap();
    assert_eq!(head.body_len(), LEN);
    let mut check = Checker { at: 0 };
    let copied = std::io::copy(&mut client.body(), &mut check).unwrap();
    sender.join().unwrap();
    assert_eq!(copied, LEN);
    if let (Some(b), Some(a)) = (before, lhp_testkit::rss_bytes()) {
        eprintln!(
            "streamed {} MiB echo: RSS {} KiB -> {} KiB",
            LEN >> 20,
            b >> 10,
            a >> 10
        );
        assert!(
            a.saturating_sub(b) < 64 << 20,
            "RSS grew {} KiB streaming",
            (a - b) >> 10
        );
    }
}

/// `left` octets of a position-dependent pattern.
struct Pattern {
    left: u64,
    at: u64,
}

impl Read for Pattern {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = out
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        for b in &mut out[..n] {
            *b = (self.at % 251) as u8;
            self.at += 1;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Checks the pattern as it arrives.
struct Checker {
    at: u64,
}

impl Write for Checker {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &b in buf {
            assert_eq!(b, (self.at % 251) as u8, "body octet {} differs", self.at);
            self.at += 1;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn closure_handlers_and_errors_close_only_their_connection() {
    let server = spawn(&Config::new(), |f: Frame| {
        let mut h = Header::with_kind("len");
        h.insert("n", f.body.len() as u64);
        Some(Frame::new(h, bytes::Bytes::new()))
    });
    let addr = server.local_addr();
    let mut good = Client::connect(addr).unwrap();
    let mut bad = TestConn::connect(addr, "bad peer");
    bad.send(b"\x00\x00\x00\x05{\"a\":");
    bad.expect_error("header_not_json", Some(4), "bad JSON");
    bad.expect_close(Duration::from_secs(2), "after the error");
    let reply = good.request(&work_frame(1, vec![0u8; 1234])).unwrap();
    assert_eq!(reply.header.get("n").and_then(Value::as_u64), Some(1234));
}

#[test]
fn client_reports_a_frame_cut_short() {
    // A "server" that sends half a frame and closes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let t = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let wire = encode(&echo_frame(1, vec![1u8; 100]));
        s.write_all(&wire[..wire.len() - 40]).unwrap();
    });
    let mut c = Client::connect(addr).unwrap();
    t.join().unwrap();
    match c.recv() {
        Err(Error::Decode(e)) => assert_eq!((e.code(), e.missing()), ("unexpected_eof", Some(40))),
        other => panic!("expected unexpected_eof, got {other:?}"),
    }
}

#[test]
fn a_panicking_handler_loses_only_its_connection() {
    let server = spawn(&Config::new(), |f: Frame| {
        assert!(f.header.kind() != Some("boom"), "handler panics on purpose");
        Some(f)
    });
    let addr = server.local_addr();
    let mut c = TestConn::connect(addr, "panicking handler");
    c.send(&encode(&Frame::new(
        Header::with_kind("boom"),
        bytes::Bytes::new(),
    )));
    c.expect_close(Duration::from_secs(5), "after the panic");
    let end = Instant::now() + Duration::from_secs(5);
    while server.connections() > 0 && Instant::now() < end {
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        server.connections(),
        0,
        "the panicked connection is still registered"
    );
    let f = work_frame(2, &b"fine"[..]);
    assert_eq!(Client::connect(addr).unwrap().request(&f).unwrap(), f);
}

/// The write deadline starts when the reply starts, not when the request arrived: a handler
/// that works for longer than `write_timeout` before replying still gets its reply out.
#[test]
fn a_slow_handler_still_replies_after_the_write_timeout() {
    let mut config = Config::new();
    config.set_write_timeout(Duration::from_millis(100));
    let server = spawn(
        &config,
        Slow {
            delay: Duration::from_millis(400),
            started: Arc::new(AtomicUsize::new(0)),
        },
    );
    let mut client = Client::connect(server.local_addr()).unwrap();
    for id in 1..=2 {
        let f = work_frame(id, &b"worth the wait"[..]);
        assert_eq!(client.request(&f).unwrap(), f, "request {id}");
    }
}

/// A source that yields `chunk` octets per read after waiting `delay` each time.
struct Dawdle {
    left: u64,
    chunk: usize,
    delay: Duration,
}

impl Read for Dawdle {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        thread::sleep(self.delay);
        let n = out.len().min(self.chunk).min(self.left as usize);
        out[..n].fill(b'd');
        self.left -= n as u64;
        Ok(n)
    }
}

/// Replies to any frame with a streamed body of `len` octets from a slow source.
struct SlowStream {
    len: u64,
}

impl Handler for SlowStream {
    fn handle(&self, request: Request<'_>, replies: &mut Replies<'_>) -> Result<(), Error> {
        let mut head = request.head().clone();
        head.set_body_len(self.len);
        replies.send_stream(
            &head,
            Dawdle {
                left: self.len,
                chunk: 64 << 10,
                delay: Duration::from_millis(150),
            },
        )?;
        Ok(())
    }
}

/// A streamed reply that waits on its source for longer than the write deadline allows per
/// window: only time the peer spends not reading counts, so the reply completes.
#[test]
fn a_streamed_reply_may_wait_on_its_source() {
    const LEN: u64 = 4 * (64 << 10);
    let mut config = Config::new();
    config.set_write_timeout(Duration::from_millis(100));
    let server = spawn(&config, SlowStream { len: LEN });
    let mut client = Client::connect(server.local_addr()).unwrap();
    let reply = client.request(&work_frame(1, &b""[..])).unwrap();
    assert_eq!(reply.body.len() as u64, LEN);
    assert!(reply.body.iter().all(|&b| b == b'd'));
}
