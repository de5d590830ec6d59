//! [`Server`]: accept loop, one thread per connection (bounded), deadlines, graceful shutdown.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use lhp_codec::{Frame, Header, Limits, Map, Profile, Value};
use socket2::{Domain, Protocol, Socket, Type};

use crate::reader::{Body, FrameReader};
use crate::writer::FrameWriter;
use crate::Error;

/// Octets a peer must move per `read_timeout` (or `write_timeout`) once a frame has begun:
/// the frame deadline is extended by one timeout for every window of octets.
pub const PROGRESS_WINDOW: u64 = 64 << 10;

/// How long a closing connection keeps reading (and discarding) so that the error frame it
/// just sent is not destroyed by a TCP reset.
const LINGER: Duration = Duration::from_millis(200);

/// What a server accepts and how long it waits. Setters take `&mut self` and chain.
///
/// ```
/// use std::time::Duration;
/// use lhp_blocking::Config;
/// use lhp_codec::Limits;
///
/// let mut config = Config::new();
/// config
///     .max_connections(100)
///     .read_timeout(Duration::from_secs(5))
///     .limits(Limits::new().with_max_body_len(1 << 30));
/// assert_eq!(config.get_max_connections(), 100);
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    profile: Profile,
    limits: Limits,
    max_connections: usize,
    backlog: i32,
    idle_timeout: Duration,
    read_timeout: Duration,
    write_timeout: Duration,
    shutdown_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}

impl Config {
    /// The defaults: `lhp1`, default [`Limits`], 1024 connections, backlog 1024, idle 60 s,
    /// read and write 30 s, shutdown grace 5 s.
    pub fn new() -> Self {
        Config {
            profile: Profile::Lhp1,
            limits: Limits::default(),
            max_connections: 1024,
            backlog: 1024,
            idle_timeout: Duration::from_secs(60),
            read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
        }
    }

    /// The wire profile.
    pub fn profile(&mut self, profile: Profile) -> &mut Self {
        self.profile = profile;
        self
    }

    /// Header and body limits (§5). `max_body_len` bounds streamed bodies too; whole-frame
    /// handlers buffer up to it.
    pub fn limits(&mut self, limits: Limits) -> &mut Self {
        self.limits = limits;
        self
    }

    /// Connections served at once (each holds a thread). Excess connections get an `error`
    /// frame with code `busy` and are closed.
    pub fn max_connections(&mut self, max: usize) -> &mut Self {
        self.max_connections = max.max(1);
        self
    }

    /// The listen backlog (at least 1024 is recommended; the OS may cap it at
    /// `net.core.somaxconn`).
    pub fn backlog(&mut self, backlog: i32) -> &mut Self {
        self.backlog = backlog;
        self
    }

    /// How long a connection may sit between frames before it is closed (quietly).
    pub fn idle_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.idle_timeout = timeout;
        self
    }

    /// The frame deadline: once the first octet of a frame arrives, its head must be complete
    /// within this time, and its body must keep arriving at [`PROGRESS_WINDOW`] octets per
    /// this time. A peer trickling one octet per second is cut off with an `error` frame
    /// `timeout`, however often it sends.
    pub fn read_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.read_timeout = timeout;
        self
    }

    /// The reply deadline, computed like the read deadline: a peer that stops reading cannot
    /// hold a thread for longer than this per [`PROGRESS_WINDOW`] of reply.
    ///
    /// The clock runs only while a reply is being written and the socket does not take it: a
    /// handler may take as long as it likes before it replies, and a streamed reply may wait
    /// on its source (say, the request body it echoes) without that time counting against the
    /// peer.
    pub fn write_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.write_timeout = timeout;
        self
    }

    /// How long a graceful shutdown lets in-flight frames finish before closing connections.
    pub fn shutdown_grace(&mut self, grace: Duration) -> &mut Self {
        self.shutdown_grace = grace;
        self
    }

    /// The configured maximum number of connections.
    pub fn get_max_connections(&self) -> usize {
        self.max_connections
    }

    /// The configured limits.
    pub fn get_limits(&self) -> Limits {
        self.limits
    }
}

/// What a server does with each frame.
///
/// A handler is called once per frame, on the connection's thread, with the frame's head and
/// its body still to be read, and replies through [`Replies`]. Returning an error closes the
/// connection (after a best-effort `error` frame, see [`Error::code`]); other connections are
/// not affected.
///
/// A closure `Fn(Frame) -> Option<Frame>` is a handler: it gets whole frames (bodies up to the
/// limits' `max_body_len` in memory) and its `Some` is the reply.
pub trait Handler: Send + Sync + 'static {
    /// Handles one frame.
    fn handle(&self, request: Request<'_>, replies: &mut Replies<'_>) -> Result<(), Error>;
}

impl<F> Handler for F
where
    F: Fn(Frame) -> Option<Frame> + Send + Sync + 'static,
{
    fn handle(&self, request: Request<'_>, replies: &mut Replies<'_>) -> Result<(), Error> {
        if let Some(reply) = self(request.into_frame()?) {
            replies.send(&reply)?;
        }
        Ok(())
    }
}

/// One incoming frame: its head, and its body still on the wire.
#[derive(Debug)]
pub struct Request<'a> {
    head: Header,
    body: Body<'a, ConnReader>,
    peer: SocketAddr,
}

impl<'a> Request<'a> {
    /// The header.
    pub fn head(&self) -> &Header {
        &self.head
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The body as a [`Read`] of `body_len` octets (digest verified at its end). The part a
    /// handler does not read is discarded after it returns.
    pub fn body(&mut self) -> &mut Body<'a, ConnReader> {
        &mut self.body
    }

    /// The header and the body, read into memory.
    pub fn into_frame(self) -> Result<Frame, Error> {
        self.body.into_frame(self.head)
    }

    /// The header and the body reader.
    pub fn into_parts(self) -> (Header, Body<'a, ConnReader>) {
        (self.head, self.body)
    }
}

/// Sends replies on a connection.
#[derive(Debug)]
pub struct Replies<'a> {
    writer: &'a mut FrameWriter<ConnWriter>,
    frame_start: u64,
}

impl Replies<'_> {
    /// Sends a whole frame (one write call). Its write deadline starts now.
    pub fn send(&mut self, frame: &Frame) -> Result<(), Error> {
        self.writer.get_mut().start_reply();
        self.writer.write_frame(frame)
    }

    /// Sends `header` and a body of `header.body_len()` octets from `body`. Its write
    /// deadline starts now and grows with the octets sent; time spent waiting on `body` does
    /// not count.
    pub fn send_stream<B: Read>(&mut self, header: &Header, body: B) -> Result<u64, Error> {
        self.writer.get_mut().start_reply();
        self.writer.write_stream(header, body)
    }

    /// Sends an application `error` frame (`bad_request`, `not_found`, ...) whose `offset` is
    /// the first octet of the frame being handled, and keeps the connection.
    pub fn error(&mut self, code: &str, message: &str) -> Result<(), Error> {
        self.writer.get_mut().start_reply();
        self.writer
            .write_frame(&error_frame(code, message, self.frame_start))
    }

    /// Absolute stream offset of the first octet of the frame being handled.
    pub fn frame_start(&self) -> u64 {
        self.frame_start
    }
}

/// The `error` frame of §7: `{"kind":"error","code":..,"message":..,"offset":..}`, empty body.
pub fn error_frame(code: &str, message: &str, offset: u64) -> Frame {
    let mut members = Map::new();
    members.insert("kind".into(), Value::from("error"));
    members.insert("code".into(), Value::from(code));
    members.insert("message".into(), Value::from(message));
    members.insert("offset".into(), Value::from(offset));
    Frame::new(
        Header::from_members(members, Profile::Lhp1).unwrap_or_else(|_| Header::with_kind("error")),
        bytes::Bytes::new(),
    )
}

/// The echo handler (§8): a frame of kind `echo` comes back with the same members, in the
/// same order, and the same body. Other kinds get an `error` frame `bad_request` and the
/// connection stays open.
///
/// Bodies up to [`buffer_limit`](Self::buffer_limit) (default 64 MiB) are read whole, so a
/// digest mismatch is reported before anything is echoed. Larger bodies are echoed as they
/// arrive, in constant memory: such a client must read while it sends.
#[derive(Clone, Copy, Debug)]
pub struct EchoHandler {
    buffer_limit: u64,
}

impl Default for EchoHandler {
    fn default() -> Self {
        EchoHandler::new()
    }
}

impl EchoHandler {
    /// An echo handler buffering bodies up to 64 MiB.
    pub fn new() -> Self {
        EchoHandler {
            buffer_limit: Limits::DEFAULT_MAX_BODY_LEN,
        }
    }

    /// Bodies larger than this are streamed back as they arrive.
    pub fn buffer_limit(mut self, limit: u64) -> Self {
        self.buffer_limit = limit;
        self
    }
}

impl Handler for EchoHandler {
    fn handle(&self, request: Request<'_>, replies: &mut Replies<'_>) -> Result<(), Error> {
        if request.head().kind() != Some("echo") {
            let what = request
                .head()
                .kind()
                .map_or_else(|| "no kind".to_owned(), |k| format!("kind {k:?}"));
            let (_, mut body) = request.into_parts();
            io::copy(&mut body, &mut io::sink())?;
            return replies.error(
                "bad_request",
                &format!("this is an echo server; a frame with {what} has no handler"),
            );
        }
        if request.head().body_len() <= self.buffer_limit {
            // The echo reply is the frame itself (`Frame::echo_reply` is a clone of it): send
            // it as it is rather than copy its header.
            let frame = request.into_frame()?;
            return replies.send(&frame);
        }
        let (head, mut body) = request.into_parts();
        replies.send_stream(&head, &mut body)?;
        Ok(())
    }
}

/// A listening server. [`bind`](Self::bind), then [`run`](Self::run) on this thread or
/// [`spawn`](Self::spawn) a thread for it.
///
/// ```
/// use lhp_blocking::{Client, Config, EchoHandler, Server};
/// use lhp_codec::{Frame, Header};
///
/// let server = Server::bind("127.0.0.1:0", Config::new(), EchoHandler::new()).unwrap().spawn().unwrap();
/// let mut client = Client::connect(server.local_addr()).unwrap();
/// let sent = Frame::new(Header::with_kind("echo"), "ping".into());
/// assert_eq!(client.request(&sent).unwrap(), sent);
/// server.shutdown().unwrap();
/// ```
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    handler: Arc<dyn Handler>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds `addr` with `SO_REUSEADDR` and the configured listen backlog.
    pub fn bind<A: ToSocketAddrs, H: Handler>(
        addr: A,
        config: Config,
        handler: H,
    ) -> Result<Server, Error> {
        let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to bind");
        for a in addr.to_socket_addrs()? {
            match listen(a, config.backlog) {
                Ok(listener) => {
                    let local_addr = listener.local_addr()?;
                    return Ok(Server {
                        listener,
                        local_addr,
                        shared: Arc::new(Shared::new(config, local_addr)),
                        handler: Arc::new(handler),
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(Error::Io(last))
    }

    /// The bound address (with the actual port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that stops this server from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shared: self.shared.clone(),
        }
    }

    /// Accepts and serves connections until a [`ShutdownHandle`] stops the server; then lets
    /// in-flight frames finish (for up to the shutdown grace), closes what is left, and
    /// returns once every connection thread has finished.
    pub fn run(self) -> Result<(), Error> {
        loop {
            let (stream, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(_) if self.shared.stopping() => break,
                Err(e) if is_transient(&e) => {
                    // Out of file descriptors or a connection reset before accept: back off.
                    thread::sleep(Duration::from_millis(10));
                    continue;
                }
                Err(e) => return Err(Error::Io(e)),
            };
            if self.shared.stopping() {
                break;
            }
            self.admit(stream, peer);
        }
        drop(self.listener);
        self.shared.drain();
        Ok(())
    }

    /// Runs the server on a new thread.
    pub fn spawn(self) -> Result<ServerThread, Error> {
        let handle = self.shutdown_handle();
        let local_addr = self.local_addr;
        let join = thread::Builder::new()
            .name(format!("lhp-accept-{}", local_addr.port()))
            .spawn(move || self.run())?;
        Ok(ServerThread {
            handle,
            local_addr,
            join: Some(join),
        })
    }

    /// Starts a connection's thread, or rejects the connection with `busy`.
    fn admit(&self, stream: TcpStream, peer: SocketAddr) {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let busy = Arc::new(AtomicBool::new(false));
        {
            let mut conns = self.shared.lock();
            if conns.len() >= self.shared.config.max_connections {
                drop(conns);
                reject_busy(stream);
                return;
            }
            let Ok(clone) = stream.try_clone() else {
                return;
            };
            conns.insert(
                id,
                Registered {
                    stream: clone,
                    busy: busy.clone(),
                },
            );
        }
        let shared = self.shared.clone();
        let handler = self.handler.clone();
        let spawned = thread::Builder::new()
            .name(format!("lhp-conn-{id}"))
            .spawn(move || {
                // Removes the registration even if the handler panics.
                let _registration = Registration {
                    shared: &shared,
                    id,
                };
                serve(stream, peer, &shared, &*handler, busy);
            });
        if spawned.is_err() {
            // The registry's clone of the stream is the last one: removing it closes the socket.
            self.shared.remove(id);
        }
    }
}

/// A server running on its own thread (from [`Server::spawn`]). Dropping it shuts the server
/// down and waits for it.
#[derive(Debug)]
pub struct ServerThread {
    handle: ShutdownHandle,
    local_addr: SocketAddr,
    join: Option<JoinHandle<Result<(), Error>>>,
}

impl ServerThread {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that stops the server.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// Connections currently being served.
    pub fn connections(&self) -> usize {
        self.handle.connections()
    }

    /// Stops the server gracefully and waits for it.
    pub fn shutdown(mut self) -> Result<(), Error> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), Error> {
        self.handle.shutdown();
        match self.join.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(Error::Io(io::Error::other("the accept thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Stops a server: it stops accepting, lets in-flight frames finish (up to the configured
/// grace), then closes the remaining connections.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
}

impl ShutdownHandle {
    /// Starts a graceful shutdown; returns at once. [`Server::run`] returns when it is done.
    pub fn shutdown(&self) {
        if self.shared.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wake the accept call with a connection of our own.
        let mut wake = self.shared.local_addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
    }

    /// Connections currently being served.
    pub fn connections(&self) -> usize {
        self.shared.lock().len()
    }
}

/// The reading side of a server connection: a `TcpStream` whose reads enforce the server's
/// idle and frame deadlines. Handlers see it only inside a [`Body`].
#[derive(Debug)]
pub struct ConnReader {
    stream: TcpStream,
    idle: Duration,
    per_window: Duration,
    phase: Phase,
    busy: Arc<AtomicBool>,
    /// The `SO_RCVTIMEO` last set, so that it is set again only when it must change.
    timeout: SocketTimeout,
}

/// The writing side of a server connection: a `TcpStream` whose writes enforce the reply
/// deadline. Handlers see it only inside [`Replies`].
#[derive(Debug)]
pub struct ConnWriter {
    stream: TcpStream,
    per_window: Duration,
    /// Time the current reply has spent inside write calls (blocked on the peer).
    spent: Duration,
    /// Octets of the current reply written.
    moved: u64,
    /// The `SO_SNDTIMEO` last set.
    timeout: SocketTimeout,
}

/// Where the reading side is, which decides its deadline.
///
/// The clock is read once per read call: a phase begins with its instant unset, and the next
/// read sets it. A frame whose octets all arrive in the read that began it never reads the
/// clock again; one that needs more reads starts its deadline at the second read, a few
/// microseconds after its first octet (or, if a handler reads its body later, when the server
/// starts waiting on the peer for it).
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Between frames: the next octet is due by `until` (the idle timeout).
    Idle { until: Option<Instant> },
    /// Inside a frame begun at `start`, `moved` octets read since then.
    Frame { start: Option<Instant>, moved: u64 },
}

/// One `per_window` for every [`PROGRESS_WINDOW`] octets moved, plus one.
fn progress_budget(moved: u64, per_window: Duration) -> Duration {
    let windows = u32::try_from(1 + moved / PROGRESS_WINDOW).unwrap_or(u32::MAX);
    per_window.saturating_mul(windows)
}

/// `start` plus the [`progress_budget`] of `moved` octets.
fn progress_deadline(start: Instant, moved: u64, per_window: Duration) -> Instant {
    start
        .checked_add(progress_budget(moved, per_window))
        .unwrap_or_else(|| start + Duration::from_secs(1 << 40))
}

/// A socket timeout (`SO_RCVTIMEO` or `SO_SNDTIMEO`) set coarsely: a system call only when
/// the wanted value moved by more than a tenth (at least 50 ms) from the one in force.
///
/// The timeout in force bounds one blocking call, not the deadline: a call that times out
/// while the deadline is still ahead is simply made again, so a timeout shorter than the time
/// left only costs a wake-up, and a longer one overshoots the deadline by at most the slack.
#[derive(Debug, Default)]
struct SocketTimeout {
    set: Option<Duration>,
    /// System calls made (for tests).
    applied: u64,
}

/// The least change of a socket timeout worth a system call.
const TIMEOUT_SLACK: Duration = Duration::from_millis(50);

impl SocketTimeout {
    /// Makes the timeout in force close to `want`; `apply` is the system call.
    fn ensure(
        &mut self,
        want: Duration,
        apply: impl FnOnce(Option<Duration>) -> io::Result<()>,
    ) -> io::Result<()> {
        let slack = (want / 10).max(TIMEOUT_SLACK);
        // (`Duration::abs_diff` is newer than the workspace's rust-version.)
        let close = |set: Duration| set.max(want) - set.min(want) <= slack;
        if self.set.is_some_and(close) {
            return Ok(());
        }
        // Forget the old value first: if the call fails, the next one tries again.
        self.set = None;
        self.applied += 1;
        apply(Some(want))?;
        self.set = Some(want);
        Ok(())
    }

    /// The timeout in force is not to be trusted (after a timed-out call, set it exactly).
    fn forget(&mut self) {
        self.set = None;
    }
}

fn time_left(deadline: Instant, what: &str) -> io::Result<Duration> {
    time_left_at(deadline, Instant::now(), what)
}

fn time_left_at(deadline: Instant, now: Instant, what: &str) -> io::Result<Duration> {
    deadline
        .checked_duration_since(now)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, what.to_owned()))
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl ConnReader {
    /// Between frames: the idle deadline starts at the next read.
    fn set_idle(&mut self) {
        self.busy.store(false, Ordering::SeqCst);
        self.phase = Phase::Idle { until: None };
    }

    /// A frame begins now (its first octets are already buffered).
    fn start_frame(&mut self) {
        self.busy.store(true, Ordering::SeqCst);
        self.phase = Phase::Frame {
            start: None,
            moved: 0,
        };
    }

    /// Sets the phase's instant if it is still open, from `now`.
    fn anchor(&mut self, now: Instant) {
        match &mut self.phase {
            Phase::Idle {
                until: until @ None,
            } => *until = Some(now + self.idle),
            Phase::Frame {
                start: start @ None,
                ..
            } => *start = Some(now),
            _ => {}
        }
    }

    /// The longest one read may block: the time left, at most one timeout of the phase.
    fn read_timeout(&self, now: Instant) -> io::Result<Duration> {
        let cap = match self.phase {
            Phase::Idle { .. } => self.idle,
            Phase::Frame { .. } => self.per_window,
        };
        Ok(self.left(now)?.min(cap))
    }

    fn left(&self, now: Instant) -> io::Result<Duration> {
        match self.phase {
            Phase::Idle { until } => time_left_at(
                until.unwrap_or(now + self.idle),
                now,
                "idle deadline passed between frames",
            ),
            Phase::Frame { start, moved } => time_left_at(
                progress_deadline(start.unwrap_or(now), moved, self.per_window),
                now,
                "read deadline passed inside a frame: the peer is sending too slowly",
            ),
        }
    }
}

impl Read for ConnReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let now = Instant::now();
            self.anchor(now);
            let want = self.read_timeout(now)?;
            let stream = &self.stream;
            self.timeout.ensure(want, |t| stream.set_read_timeout(t))?;
            match self.stream.read(out) {
                Ok(n) => {
                    match &mut self.phase {
                        Phase::Idle { .. } if n > 0 => {
                            self.busy.store(true, Ordering::SeqCst);
                            self.phase = Phase::Frame {
                                start: None,
                                moved: n as u64,
                            };
                        }
                        Phase::Frame { moved, .. } => *moved += n as u64,
                        Phase::Idle { .. } => {}
                    }
                    return Ok(n);
                }
                // The timeout in force ran out, the deadline perhaps not: look again.
                Err(e) if is_timeout(&e) => {
                    self.timeout.forget();
                    self.left(Instant::now())?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl ConnWriter {
    /// A reply begins: its budget is one `write_timeout`, plus one for every
    /// [`PROGRESS_WINDOW`] octets the peer takes, spent only while writes block.
    fn start_reply(&mut self) {
        self.spent = Duration::ZERO;
        self.moved = 0;
    }

    fn left(&self) -> io::Result<Duration> {
        progress_budget(self.moved, self.per_window)
            .checked_sub(self.spent)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    "write deadline passed: the peer is not reading",
                )
            })
    }

    /// One write call under the reply deadline, made again while a timeout of the socket
    /// runs out before the deadline does.
    fn timed(
        &mut self,
        mut call: impl FnMut(&mut TcpStream) -> io::Result<usize>,
    ) -> io::Result<usize> {
        loop {
            let want = self.left()?.min(self.per_window);
            let stream = &self.stream;
            self.timeout.ensure(want, |t| stream.set_write_timeout(t))?;
            let began = Instant::now();
            let result = call(&mut self.stream);
            self.spent += began.elapsed();
            match result {
                Ok(n) => {
                    self.moved += n as u64;
                    return Ok(n);
                }
                Err(e) if is_timeout(&e) => {
                    self.timeout.forget();
                    self.left()?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Write for ConnWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.timed(|s| s.write(buf))
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.timed(|s| s.write_vectored(bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Serves one connection until it ends, fails, or the server shuts down.
fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    handler: &dyn Handler,
    busy: Arc<AtomicBool>,
) {
    let config = &shared.config;
    let _ = stream.set_nodelay(true);
    let Ok(read_side) = stream.try_clone() else {
        return;
    };
    let conn_reader = ConnReader {
        stream: read_side,
        idle: config.idle_timeout,
        per_window: config.read_timeout,
        phase: Phase::Frame {
            start: None,
            moved: 0,
        },
        busy,
        timeout: SocketTimeout::default(),
    };
    let conn_writer = ConnWriter {
        stream,
        per_window: config.write_timeout,
        spent: Duration::ZERO,
        moved: 0,
        timeout: SocketTimeout::default(),
    };
    let mut reader = FrameReader::with(conn_reader, config.profile, config.limits);
    let mut writer = FrameWriter::with_profile(conn_writer, config.profile);
    let failure = loop {
        if reader.buffered() == 0 {
            reader.get_mut().set_idle();
        } else {
            reader.get_mut().start_frame();
        }
        // A shutdown that saw this connection busy is seen here (both sides use SeqCst).
        if shared.stopping() {
            break None;
        }
        let head = match reader.read_head() {
            Ok(Some(head)) => head,
            Ok(None) => break None,
            // Idle too long between frames: close quietly, like an HTTP keep-alive timeout.
            Err(Error::Timeout(_)) if reader.is_idle() => break None,
            Err(e) => break Some(e),
        };
        let mut replies = Replies {
            frame_start: reader.frame_start(),
            writer: &mut writer,
        };
        let request = Request {
            head,
            body: reader.body(),
            peer,
        };
        if let Err(e) = handler
            .handle(request, &mut replies)
            .and_then(|()| reader.finish_body())
        {
            break Some(e);
        }
    };
    if let Some(e) = failure {
        // An IO error means the peer is gone or broken: nobody to tell.
        if !matches!(e, Error::Io(_)) {
            let offset = match &e {
                Error::Decode(d) => d.offset(),
                _ => reader.offset() + reader.buffered() as u64,
            };
            let message = match &e {
                Error::Decode(d) => d.to_string(),
                other => other.to_string(),
            };
            writer.get_mut().start_reply();
            let _ = writer.write_frame(&error_frame(e.code(), &message, offset));
        }
    }
    linger_close(&writer.get_ref().stream);
}

/// Closes after sending: shuts down our direction, then reads and discards what the peer still
/// sends for a moment, so that closing with unread data does not reset the connection and
/// destroy the reply (an `error` frame) still in flight.
fn linger_close(stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + LINGER;
    let mut scratch = [0u8; 4096];
    let mut budget: usize = 1 << 20;
    while budget > 0 {
        let Ok(left) = time_left(deadline, "") else {
            break;
        };
        if stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match (&*stream).read(&mut scratch) {
            Ok(0) | Err(_) => break,
            Ok(n) => budget = budget.saturating_sub(n),
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// Sends `busy` and closes, without blocking the accept loop.
fn reject_busy(stream: TcpStream) {
    let frame = error_frame(
        "busy",
        "the server is at its connection limit; try again later",
        0,
    );
    let _ = stream.set_nonblocking(true);
    let _ = FrameWriter::new(&stream).write_frame(&frame);
    let _ = stream.shutdown(Shutdown::Write);
    // Read what already arrived so that closing does not reset the connection.
    let mut scratch = [0u8; 4096];
    while let Ok(n) = (&stream).read(&mut scratch) {
        if n == 0 {
            break;
        }
    }
}

fn listen(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// Accept errors that concern one connection or a passing shortage, not the listener.
fn is_transient(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock | OutOfMemory
    ) || e
        .raw_os_error()
        .is_some_and(|c| c == 23 || c == 24 || c == 105 || c == 12)
}

/// Unregisters a connection when its thread ends, however it ends.
struct Registration<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.shared.remove(self.id);
    }
}

/// State shared by the accept loop, the connections and the shutdown handles.
#[derive(Debug)]
struct Shared {
    config: Config,
    local_addr: SocketAddr,
    stopping: AtomicBool,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Registered>>,
    gone: Condvar,
}

/// A connection as the registry sees it: a handle to close it and whether it is mid-frame.
#[derive(Debug)]
struct Registered {
    stream: TcpStream,
    busy: Arc<AtomicBool>,
}

impl Shared {
    fn new(config: Config, local_addr: SocketAddr) -> Self {
        Shared {
            config,
            local_addr,
            stopping: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
            gone: Condvar::new(),
        }
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Registered>> {
        self.conns
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
        self.gone.notify_all();
    }

    /// Graceful shutdown after the listener is closed: idle connections are closed now, busy
    /// ones when their frame is done or the grace period ends.
    fn drain(&self) {
        let grace_end = Instant::now() + self.config.shutdown_grace;
        let mut conns = self.lock();
        loop {
            for c in conns.values() {
                if !c.busy.load(Ordering::SeqCst) {
                    // Its read returns end-of-stream: the connection ends cleanly.
                    let _ = c.stream.shutdown(Shutdown::Read);
                }
            }
            if conns.is_empty() {
                return;
            }
            let Some(left) = grace_end.checked_duration_since(Instant::now()) else {
                break;
            };
            // Re-check every 50 ms: a busy connection may have become idle.
            let wait = left.min(Duration::from_millis(50));
            conns = self
                .gone
                .wait_timeout(conns, wait)
                .map_or_else(|p| p.into_inner().0, |(g, _)| g);
        }
        for c in conns.values() {
            let _ = c.stream.shutdown(Shutdown::Both);
        }
        // Threads whose socket was shut down end promptly unless a handler is stuck in its
        // own code; wait a little for them, then leave them behind.
        let end = Instant::now() + Duration::from_secs(2);
        while !conns.is_empty() {
            let Some(left) = end.checked_duration_since(Instant::now()) else {
                return;
            };
            conns = self
                .gone
                .wait_timeout(conns, left)
                .map_or_else(|p| p.into_inner().0, |(g, _)| g);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    /// A connected loopback pair: (our side, the peer's side).
    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (theirs, _) = listener.accept().unwrap();
        (ours, theirs)
    }

    fn conn_reader(stream: TcpStream, timeout: Duration) -> ConnReader {
        ConnReader {
            stream,
            idle: timeout,
            per_window: timeout,
            phase: Phase::Frame {
                start: None,
                moved: 0,
            },
            busy: Arc::new(AtomicBool::new(false)),
            timeout: SocketTimeout::default(),
        }
    }

    #[test]
    fn socket_timeouts_are_set_only_when_they_change_much() {
        let mut t = SocketTimeout::default();
        let mut calls = Vec::new();
        for want in [1000, 990, 950, 920, 1080, 800, 790, 30, 29, 100] {
            t.ensure(Duration::from_millis(want), |d| {
                calls.push(d);
                Ok(())
            })
            .unwrap();
        }
        let ms = |v: u64| Some(Duration::from_millis(v));
        assert_eq!(calls, [ms(1000), ms(800), ms(30), ms(100)]);
    }

    /// Many small reads inside one frame set `SO_RCVTIMEO` once, not once per read.
    #[test]
    fn reads_do_not_set_the_socket_timeout_every_time() {
        let (ours, mut theirs) = pair();
        let mut reader = conn_reader(ours, Duration::from_secs(30));
        let mut got = 0;
        let mut octet = [0u8; 1];
        for i in 0..500u32 {
            theirs.write_all(&i.to_le_bytes()[..1]).unwrap();
            got += reader.read(&mut octet).unwrap();
        }
        assert_eq!(got, 500);
        assert!(
            reader.timeout.applied <= 2,
            "SO_RCVTIMEO set {} times for 500 reads",
            reader.timeout.applied
        );
    }

    /// Writes of one reply set `SO_SNDTIMEO` once, not once per write.
    #[test]
    fn writes_do_not_set_the_socket_timeout_every_time() {
        let (ours, theirs) = pair();
        let mut writer = ConnWriter {
            stream: ours,
            per_window: Duration::from_secs(30),
            spent: Duration::ZERO,
            moved: 0,
            timeout: SocketTimeout::default(),
        };
        writer.start_reply();
        for _ in 0..500 {
            writer.write_all(b"x").unwrap();
        }
        assert!(writer.timeout.applied <= 2, "{}", writer.timeout.applied);
        drop(writer);
        let mut all = Vec::new();
        (&theirs).read_to_end(&mut all).unwrap();
        assert_eq!(all.len(), 500);
    }

    /// After three windows moved, a pause longer than one read timeout (the longest one read
    /// blocks) but well inside the frame's budget (four timeouts) is not a timeout: the read
    /// that times out early is made again.
    #[test]
    fn a_socket_timeout_shorter_than_the_deadline_is_retried() {
        let (ours, mut theirs) = pair();
        let mut reader = conn_reader(ours, Duration::from_millis(200));
        let first = vec![1u8; 3 * PROGRESS_WINDOW as usize];
        let sender = thread::spawn(move || {
            theirs.write_all(&first).unwrap();
            thread::sleep(Duration::from_millis(250));
            theirs.write_all(b"late").unwrap();
        });
        let mut all = Vec::new();
        let mut buf = vec![0u8; 64 << 10];
        while all.len() < 3 * PROGRESS_WINDOW as usize + 4 {
            let n = reader.read(&mut buf).unwrap();
            assert!(n > 0, "early end");
            all.extend_from_slice(&buf[..n]);
        }
        assert!(all.ends_with(b"late"));
        sender.join().unwrap();
    }

    /// The deadline still holds when the socket timeout is coarse.
    #[test]
    fn a_silent_peer_still_times_out() {
        let (ours, _theirs) = pair();
        let mut reader = conn_reader(ours, Duration::from_millis(100));
        let err = reader.read(&mut [0u8; 16]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    }
}
