//! [`Server`]: an LHP/1 server on tokio.
//!
//! ```text
//!   listen (backlog ≥ 1024) ─► accept ─┬─ permit free ─► one task per connection:
//!                                      │                   idle wait ─► read frame (deadline)
//!                                      │                   ─► handler ─► write reply (timeout)
//!                                      │                 (a StreamHandler: head, body as an
//!                                      │                  AsyncRead, and `Replies` for any
//!                                      │                  number of whole or streamed replies)
//!                                      └─ at the limit ──► `busy` error frame, close
//!   shutdown token cancelled ─► stop accepting; idle connections close; frames in flight
//!                               finish until the grace deadline, then everything stops.
//! ```
//!
//! A connection whose peer breaks LHP/1 gets a best-effort error frame
//! `{"kind":"error","code":CODE,"message":TEXT,"offset":N}` (§7) and is closed; no other
//! connection notices.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use lhp_codec::{Frame, Header, Limits, Profile};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::codec::{error_frame, Error};
use crate::stream::{write_all_vectored, Body, FrameReader, FrameWriter};

/// A whole-frame request handler: `async fn(Frame) -> Option<Frame>`. `None` sends no reply.
///
/// Any `Fn(Frame) -> impl Future<Output = Option<Frame>>` closure or `async fn` is one:
///
/// ```
/// use lhp_codec::Frame;
///
/// async fn upper(frame: Frame) -> Option<Frame> {
///     let body = frame.body.to_ascii_uppercase();
///     Some(Frame::new(frame.header, body.into()))
/// }
/// fn is_handler<H: lhp_tokio::Handler>(_: H) {}
/// is_handler(upper);
/// is_handler(|f: Frame| async move { Some(f) });
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Answers one request. Replies are written in request order.
    fn call(&self, frame: Frame) -> impl Future<Output = Option<Frame>> + Send;
}

impl<F, Fut> Handler for F
where
    F: Fn(Frame) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<Frame>> + Send,
{
    fn call(&self, frame: Frame) -> impl Future<Output = Option<Frame>> + Send {
        self(frame)
    }
}

/// A streaming request handler, for bodies larger than memory: it gets the header, the body
/// as an [`AsyncRead`](tokio::io::AsyncRead) of `body_len` octets, and a [`Replies`] sink
/// through which it sends any number of reply frames, whole or streamed from an `AsyncRead`.
///
/// A body the handler leaves unread is skipped. A decode error while reading the body
/// (`digest_mismatch`, `unexpected_eof`) ends the connection with an error frame, whatever
/// the handler returns. An `Err` from the handler ends the connection too (with an error
/// frame for a decode error or a timeout): answer request-level failures with
/// [`Replies::error`] and return `Ok(())` instead.
///
/// Deadlines: the head must arrive within `read_timeout`; the body's octets must keep
/// arriving until `read_timeout + body_len / min_body_rate` after the head began (the clock
/// only matters while the server waits for the peer, not while the handler works); each
/// reply gets `write_timeout` (plus `body_len / min_body_rate` for a streamed one).
///
/// ```
/// use lhp_codec::{Frame, Header};
/// use lhp_tokio::{Body, ConnRead, Error, Replies, StreamHandler};
///
/// /// Counts the body's octets without holding it, then answers with two frames.
/// struct Count;
/// impl StreamHandler for Count {
///     async fn call(
///         &self,
///         head: Header,
///         mut body: Body<'_, ConnRead>,
///         replies: &mut Replies<'_>,
///     ) -> Result<(), Error> {
///         let mut n = 0u64;
///         while let Some(chunk) = body.chunk().await? {
///             n += chunk.len() as u64;
///         }
///         let mut reply = Header::with_kind("count");
///         reply.insert("octets", n);
///         if let Some(id) = head.id() { reply.set_id(id); }
///         replies.send(&Frame::new(reply.clone(), Default::default())).await?;
///         // A streamed reply: any AsyncRead, `body_len` octets of it.
///         let text = format!("{n} octets");
///         replies.send_stream(&reply, text.len() as u64, text.as_bytes()).await
///     }
/// }
/// ```
pub trait StreamHandler: Send + Sync + 'static {
    /// Answers one request whose body is read from `body`, replying through `replies`.
    fn call(
        &self,
        head: Header,
        body: Body<'_, ConnRead>,
        replies: &mut Replies<'_>,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// The read half of a connection served by a [`StreamHandler`]: the socket's read half under
/// the current frame's read deadline. Reading fails with `TimedOut` only when the peer has
/// not sent the next octets by the deadline.
#[derive(Debug)]
pub struct ConnRead {
    io: OwnedReadHalf,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl ConnRead {
    fn set_deadline(&mut self, at: Option<Instant>) {
        match (at, self.deadline.as_mut()) {
            (Some(at), Some(sleep)) => sleep.as_mut().reset(at),
            (Some(at), None) => self.deadline = Some(Box::pin(tokio::time::sleep_until(at))),
            (None, _) => self.deadline = None,
        }
    }
}

impl tokio::io::AsyncRead for ConnRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let this = self.get_mut();
        if let std::task::Poll::Ready(r) = Pin::new(&mut this.io).poll_read(cx, buf) {
            return std::task::Poll::Ready(r);
        }
        if let Some(sleep) = this.deadline.as_mut() {
            if sleep.as_mut().poll(cx).is_ready() {
                return std::task::Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the peer missed the frame's read deadline",
                )));
            }
        }
        std::task::Poll::Pending
    }
}

/// Where a [`StreamHandler`] sends its replies to one request: any number of frames, in
/// order, each written before the call returns (no reply is held back).
#[derive(Debug)]
pub struct Replies<'a> {
    writer: &'a mut FrameWriter<OwnedWriteHalf>,
    config: &'a ServerConfig,
    request_id: Option<u64>,
    frame_start: u64,
    sent: u64,
}

impl Replies<'_> {
    /// Sends a whole frame, within `write_timeout`.
    pub async fn send(&mut self, frame: &Frame) -> Result<(), Error> {
        match timeout(self.config.write_timeout, self.writer.write_frame(frame)).await {
            Ok(r) => r?,
            Err(_) => return Err(Error::Timeout("writing a reply")),
        }
        self.sent += 1;
        Ok(())
    }

    /// Sends a frame whose `body_len` octets are read from `body` as they are written (the
    /// header's `body_len` is set to `body_len`), within `write_timeout` plus
    /// `body_len / min_body_rate`. If `body` ends early the connection is unusable (a
    /// truncated frame is on the wire): return the error.
    pub async fn send_stream<B: tokio::io::AsyncRead + Unpin + Send>(
        &mut self,
        header: &Header,
        body_len: u64,
        body: B,
    ) -> Result<(), Error> {
        let within = self.config.write_timeout
            + Duration::from_secs(body_len / self.config.min_body_rate.max(1));
        match timeout(within, self.writer.write_frame_from(header, body_len, body)).await {
            Ok(r) => r?,
            Err(_) => return Err(Error::Timeout("writing a streamed reply")),
        }
        self.sent += 1;
        Ok(())
    }

    /// Sends the §7 `error` frame `{"kind":"error","code":..,"message":..,"offset":..}` about
    /// this request: `offset` is where the request began, and the request's `id`, if any, is
    /// copied. The connection stays open.
    pub async fn error(
        &mut self,
        code: &str,
        message: impl std::fmt::Display,
    ) -> Result<(), Error> {
        let mut frame = error_frame(code, message, Some(self.frame_start));
        if let Some(id) = self.request_id {
            frame.header.set_id(id);
        }
        self.send(&frame).await
    }

    /// The absolute stream offset at which the request began.
    pub fn frame_start(&self) -> u64 {
        self.frame_start
    }

    /// How many frames have been sent for this request so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }
}

/// The `echo` handler (§8): a frame of kind `echo` comes back with the same members in the
/// same order and the same body; any other kind gets a `bad_request` error frame (with the
/// request's `id`, if any) and the connection stays open.
pub async fn echo(frame: Frame) -> Option<Frame> {
    if frame.header.kind() == Some("echo") {
        // The echo reply is the frame itself (`Frame::echo_reply` is a clone of it): return
        // it as it is rather than copy its header.
        return Some(frame);
    }
    let what = match frame.header.kind() {
        Some(kind) => format!("kind {kind:?}"),
        None => "a frame without `kind`".to_owned(),
    };
    let mut reply = error_frame(
        "bad_request",
        format!("this echo server answers only kind \"echo\", not {what}"),
        None,
    );
    if let Some(id) = frame.header.id() {
        reply.header.set_id(id);
    }
    Some(reply)
}

/// How a [`Server`] listens, limits and times out. Start from `ServerConfig::default()` and set
/// the fields you need.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The wire profile (§3.3). Default `lhp1`.
    pub profile: Profile,
    /// Header and body limits (§5). Default 64 KiB headers, 64 MiB bodies.
    pub limits: Limits,
    /// The listen backlog. Default 1024 (tokio's `bind` asks for 128, and 10,000 quick
    /// connects then stall on SYN retries).
    pub backlog: u32,
    /// Connections served at once; the next ones get a `busy` error frame. Default 16,384.
    pub max_connections: usize,
    /// How long a connection may sit between frames. Default 60 s.
    pub idle_timeout: Duration,
    /// Per-frame deadline, from a frame's first octet to its last (a peer trickling one
    /// octet per second cannot hold a connection). Default 30 s. For a streaming handler it
    /// covers the head, and the body gets `body_len / min_body_rate` more.
    pub read_timeout: Duration,
    /// The slowest body a streaming handler accepts, in octets per second. Default 1 MiB/s.
    pub min_body_rate: u64,
    /// How long writing one reply may take. Default 30 s.
    pub write_timeout: Duration,
    /// After shutdown is requested, how long frames in flight may take to finish. Default 5 s.
    pub shutdown_grace: Duration,
    /// Set `TCP_NODELAY` on accepted connections. Default true.
    pub nodelay: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            profile: Profile::Lhp1,
            limits: Limits::default(),
            backlog: 1024,
            max_connections: 16_384,
            idle_timeout: Duration::from_secs(60),
            read_timeout: Duration::from_secs(30),
            min_body_rate: 1 << 20,
            write_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
            nodelay: true,
        }
    }
}

type Driver = dyn Fn(TcpStream, Conn) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync;

/// An LHP/1 server: a bound listener, a handler, limits, and a shutdown token.
///
/// ```
/// use lhp_codec::{Frame, Header};
/// use lhp_tokio::{Client, Server, ServerConfig};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), lhp_tokio::Error> {
/// let server = Server::bind("127.0.0.1:0", ServerConfig::default(), lhp_tokio::echo)?;
/// let (addr, stop) = (server.local_addr(), server.shutdown_token());
/// let running = tokio::spawn(server.run());
///
/// let client = Client::connect(addr, Duration::from_secs(5)).await?;
/// let reply = client.request(Frame::new(Header::with_kind("echo"), "ping".into())).await?;
/// assert_eq!(&reply.body[..], b"ping");
///
/// stop.cancel(); // stop accepting, drain, return
/// running.await.unwrap()?;
/// # Ok(()) }
/// ```
pub struct Server {
    listener: std::net::TcpListener,
    limit: Arc<Semaphore>,
    local_addr: SocketAddr,
    config: Arc<ServerConfig>,
    driver: Arc<Driver>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds `addr` (the first address it resolves to) with `config.backlog` and serves whole
    /// frames with `handler`. Needs no runtime; [`run`](Self::run) does.
    pub fn bind<A: ToSocketAddrs, H: Handler>(
        addr: A,
        config: ServerConfig,
        handler: H,
    ) -> io::Result<Server> {
        let handler = Arc::new(handler);
        let driver: Arc<Driver> = Arc::new(move |stream, conn| {
            let handler = Arc::clone(&handler);
            Box::pin(async move { serve_frames(stream, conn, &*handler).await })
        });
        Server::bind_driver(addr, config, driver)
    }

    /// Binds like [`bind`](Self::bind), and serves each request with a streaming `handler`.
    pub fn bind_streaming<A: ToSocketAddrs, S: StreamHandler>(
        addr: A,
        config: ServerConfig,
        handler: S,
    ) -> io::Result<Server> {
        let handler = Arc::new(handler);
        let driver: Arc<Driver> = Arc::new(move |stream, conn| {
            let handler = Arc::clone(&handler);
            Box::pin(async move { serve_streams(stream, conn, &*handler).await })
        });
        Server::bind_driver(addr, config, driver)
    }

    fn bind_driver<A: ToSocketAddrs>(
        addr: A,
        config: ServerConfig,
        driver: Arc<Driver>,
    ) -> io::Result<Server> {
        let addr = addr.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the address resolves to nothing",
            )
        })?;
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(i32::try_from(config.backlog).unwrap_or(i32::MAX))?;
        let listener: std::net::TcpListener = socket.into();
        let local_addr = listener.local_addr()?;
        Ok(Server {
            limit: Arc::new(Semaphore::new(
                config.max_connections.min(Semaphore::MAX_PERMITS),
            )),
            listener,
            local_addr,
            config: Arc::new(config),
            driver,
            shutdown: CancellationToken::new(),
        })
    }

    /// The address the server listens on (with the port the system chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The token that shuts the server down: cancel it to stop accepting, let frames in
    /// flight finish (until `shutdown_grace`), and make [`run`](Self::run) return.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// A gauge of the connections being served, readable while the server runs.
    pub fn connections(&self) -> Connections {
        Connections {
            limit: Arc::clone(&self.limit),
            max: self.config.max_connections.min(Semaphore::MAX_PERMITS),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Accepts and serves connections until the shutdown token is cancelled, then drains.
    pub async fn run(self) -> io::Result<()> {
        let listener = TcpListener::from_std(self.listener)?;
        let limit = self.limit;
        let tracker = TaskTracker::new();
        let hard_stop = CancellationToken::new();
        loop {
            let accepted = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            if self.config.nodelay {
                let _ = stream.set_nodelay(true);
            }
            let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
                let max = self.config.max_connections;
                let profile = self.config.profile;
                tracker.spawn(async move {
                    let frame = error_frame(
                        "busy",
                        format!("the server is at its limit of {max} connections"),
                        None,
                    );
                    send_and_close(stream, &frame, profile, Duration::from_secs(1)).await;
                });
                continue;
            };
            let conn = Conn {
                config: Arc::clone(&self.config),
                shutdown: self.shutdown.clone(),
            };
            let serve = (self.driver)(stream, conn);
            let hard_stop = hard_stop.clone();
            tracker.spawn(async move {
                tokio::select! {
                    () = serve => {}
                    () = hard_stop.cancelled() => {}
                }
                drop(permit);
            });
        }
        drop(listener);
        tracker.close();
        if timeout(self.config.shutdown_grace, tracker.wait())
            .await
            .is_err()
        {
            hard_stop.cancel();
            tracker.wait().await;
        }
        Ok(())
    }
}

/// The number of connections a [`Server`] is serving (see [`Server::connections`]).
#[derive(Clone, Debug)]
pub struct Connections {
    limit: Arc<Semaphore>,
    max: usize,
}

impl Connections {
    /// Connections being served now (excess connections turned away with `busy` are not
    /// counted).
    pub fn active(&self) -> usize {
        self.max.saturating_sub(self.limit.available_permits())
    }

    /// The limit, `max_connections`.
    pub fn max(&self) -> usize {
        self.max
    }
}

/// What a connection task needs from its server.
struct Conn {
    config: Arc<ServerConfig>,
    shutdown: CancellationToken,
}

/// A socket that can look at its next octet without consuming it.
trait Peek: tokio::io::AsyncRead + Unpin {
    fn peek_octet<'a>(
        &'a mut self,
        octet: &'a mut [u8; 1],
    ) -> impl Future<Output = io::Result<usize>> + Send + 'a;
}

impl Peek for TcpStream {
    fn peek_octet<'a>(
        &'a mut self,
        octet: &'a mut [u8; 1],
    ) -> impl Future<Output = io::Result<usize>> + Send + 'a {
        self.peek(octet)
    }
}

impl Peek for ConnRead {
    fn peek_octet<'a>(
        &'a mut self,
        octet: &'a mut [u8; 1],
    ) -> impl Future<Output = io::Result<usize>> + Send + 'a {
        self.io.peek(octet)
    }
}

/// Why a connection's wait for its next frame ended.
enum Wake {
    Readable,
    Closed,
    Idle,
    Shutdown,
}

impl Conn {
    /// Waits, holding no read buffer, until the peer sends the first octet of a frame.
    async fn idle_wait<R: Peek>(&self, reader: &mut FrameReader<R>) -> Wake {
        if self.shutdown.is_cancelled() {
            return Wake::Shutdown;
        }
        reader.release_buffer();
        let mut octet = [0u8; 1];
        tokio::select! {
            biased;
            () = self.shutdown.cancelled() => Wake::Shutdown,
            // `peek` into one octet on the stack: readiness alone can be spurious.
            r = timeout(self.config.idle_timeout, reader.get_mut().peek_octet(&mut octet)) => match r {
                Ok(Ok(0)) | Ok(Err(_)) => Wake::Closed,
                Ok(Ok(_)) => Wake::Readable,
                Err(_) => Wake::Idle,
            },
        }
    }

    fn reader<R: tokio::io::AsyncRead + Unpin>(&self, stream: R) -> FrameReader<R> {
        FrameReader::with(stream, self.config.profile, self.config.limits)
    }

    fn encoder(&self) -> lhp_codec::Encoder {
        let mut enc = lhp_codec::Encoder::with_profile(self.config.profile);
        enc.set_max_header_len(self.config.limits.max_header_len());
        enc
    }
}

/// Replies waiting to be written: small ones copied into one buffer, large bodies kept as
/// their own `Bytes`, all sent with one vectored write.
struct Batch {
    encoder: lhp_codec::Encoder,
    scratch: BytesMut,
    parts: Vec<Bytes>,
    frames: usize,
}

impl Batch {
    const COPY_BELOW: usize = 4 << 10;
    const MAX_FRAMES: usize = 64;

    fn new(encoder: lhp_codec::Encoder) -> Self {
        Batch {
            encoder,
            scratch: BytesMut::new(),
            parts: Vec::new(),
            frames: 0,
        }
    }

    fn push(&mut self, frame: &Frame) {
        let start = self.scratch.len();
        if let Err(e) =
            self.encoder
                .encode_head(&frame.header, frame.body.len() as u64, &mut self.scratch)
        {
            self.scratch.truncate(start);
            let mut err = error_frame("internal", format!("the handler's reply: {e}"), None);
            if let Some(id) = frame.header.id() {
                err.header.set_id(id);
            }
            if self.encoder.encode(&err, &mut self.scratch).is_err() {
                self.scratch.truncate(start);
            }
        } else if frame.body.len() < Self::COPY_BELOW {
            self.scratch.extend_from_slice(&frame.body);
        } else {
            self.parts.push(self.scratch.split().freeze());
            self.parts.push(frame.body.clone());
        }
        self.frames += 1;
    }

    fn is_full(&self) -> bool {
        self.frames >= Self::MAX_FRAMES
    }

    /// Writes every reply waiting. The first attempt is a plain non-blocking write (`send`,
    /// or `writev` when large bodies ride along) with no timer armed: a socket with room takes
    /// the whole batch at once, which is the common case. Only what it does not take is
    /// written under the `within` deadline.
    async fn flush(&mut self, stream: &mut TcpStream, within: Duration) -> Result<(), Error> {
        if self.frames == 0 {
            return Ok(());
        }
        if !self.scratch.is_empty() {
            self.parts.push(self.scratch.split().freeze());
        }
        let mut slices: Vec<&[u8]> = self.parts.iter().map(|b| &b[..]).collect();
        let first = match &slices[..] {
            [one] => stream.try_write(one),
            many => {
                let io: Vec<io::IoSlice<'_>> =
                    many.iter().take(64).map(|p| io::IoSlice::new(p)).collect();
                stream.try_write_vectored(&io)
            }
        };
        let result = match first {
            Ok(mut n) => {
                for part in slices.iter_mut() {
                    let take = n.min(part.len());
                    *part = part.get(take..).unwrap_or_default();
                    n -= take;
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(Error::Io(e)),
        };
        let result = match result {
            Ok(()) if slices.iter().all(|p| p.is_empty()) => Ok(()),
            Ok(()) => match timeout(within, write_all_vectored(stream, &mut slices)).await {
                Ok(r) => r.map_err(Error::Io),
                Err(_) => Err(Error::Timeout("writing a reply")),
            },
            Err(e) => Err(e),
        };
        drop(slices);
        self.parts.clear();
        self.frames = 0;
        result
    }
}

/// One connection served with a whole-frame [`Handler`].
///
/// A request that arrives whole costs one readiness wait, one read and one write: between
/// frames the task waits for the socket to become readable (no system call: the readiness
/// comes from the runtime's `epoll`, and the idle timer and the shutdown token are armed once
/// per connection, not per frame), then reads once with no deadline armed. Only a frame
/// still incomplete after that read gets the frame deadline, counted from then. Readiness can
/// be stale: if that read finds nothing, the connection goes back to waiting, idle deadline
/// unchanged.
async fn serve_frames<H: Handler>(stream: TcpStream, conn: Conn, handler: &H) {
    let mut reader = conn.reader(stream);
    let mut batch = Batch::new(conn.encoder());
    let cfg = &conn.config;
    let mut idle = IdleWait::new(&conn);
    let mut idle_until = None;
    loop {
        let frame = match reader.try_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                // About to wait for the peer: send what is ready first.
                if let Err(e) = batch.flush(reader.get_mut(), cfg.write_timeout).await {
                    return fail_boxed(reader, e, cfg).await;
                }
                let mut first = None;
                if reader.is_idle() {
                    let until =
                        *idle_until.get_or_insert_with(|| Instant::now() + cfg.idle_timeout);
                    reader.release_buffer();
                    match idle.wait(reader.get_mut(), until).await {
                        Wake::Readable => {}
                        Wake::Shutdown | Wake::Closed => {
                            return Box::pin(close(reader.into_parts().0)).await
                        }
                        Wake::Idle => return fail_boxed(reader, Error::Timeout("idle"), cfg).await,
                    }
                    first = poll_once(reader.read_frame()).await;
                }
                let read = match first {
                    Some(read) => read,
                    // Stale readiness: nothing arrived after all.
                    None if reader.is_idle() => continue,
                    None => {
                        let deadline = Instant::now() + cfg.read_timeout;
                        match timeout_at(deadline, reader.read_frame()).await {
                            Ok(read) => read,
                            Err(_) => {
                                let e = Error::Timeout("reading a frame");
                                return fail_boxed(reader, e, cfg).await;
                            }
                        }
                    }
                };
                idle_until = None;
                match read {
                    Ok(Some(frame)) => frame,
                    Ok(None) => return Box::pin(close(reader.into_parts().0)).await,
                    Err(e) => return fail_boxed(reader, e, cfg).await,
                }
            }
            Err(e) => {
                let _ = Box::pin(batch.flush(reader.get_mut(), cfg.write_timeout)).await;
                return fail_boxed(reader, e, cfg).await;
            }
        };
        if let Some(reply) = handler.call(frame).await {
            batch.push(&reply);
            if batch.is_full() {
                if let Err(e) = batch.flush(reader.get_mut(), cfg.write_timeout).await {
                    return fail_boxed(reader, e, cfg).await;
                }
            }
        }
    }
}

/// Polls `future` once: its output if it is ready at once, `None` if it would wait (it is
/// then dropped, so it must be cancel-safe at that point, as a frame read that has not
/// completed is: what it read stays buffered in the reader).
async fn poll_once<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
        std::task::Poll::Ready(out) => std::task::Poll::Ready(Some(out)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await
}

/// The wait between frames of a whole-frame connection, armed once per connection: the
/// shutdown token's wait and the idle timer live as long as the connection, so a frame costs
/// no timer registration and no waiter list operation. The timer is not moved forward on
/// every frame: when it fires early (the connection was busy since it was set), it is set
/// again to the current idle deadline.
struct IdleWait {
    shutdown: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl IdleWait {
    fn new(conn: &Conn) -> Self {
        IdleWait {
            shutdown: Box::pin(conn.shutdown.clone().cancelled_owned()),
            timer: Box::pin(tokio::time::sleep(conn.config.idle_timeout)),
        }
    }

    /// Waits until `stream` is readable (or closed), `until` passes, or the server shuts
    /// down. A shutdown wins over a readable socket, as in [`Conn::idle_wait`].
    async fn wait(&mut self, stream: &TcpStream, until: Instant) -> Wake {
        std::future::poll_fn(|cx| {
            use std::task::Poll;
            if self.shutdown.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Wake::Shutdown);
            }
            match stream.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => return Poll::Ready(Wake::Readable),
                Poll::Ready(Err(_)) => return Poll::Ready(Wake::Closed),
                Poll::Pending => {}
            }
            while self.timer.as_mut().poll(cx).is_ready() {
                if Instant::now() >= until {
                    return Poll::Ready(Wake::Idle);
                }
                self.timer.as_mut().reset(until);
            }
            Poll::Pending
        })
        .await
    }
}

/// One connection served with a [`StreamHandler`]: the socket split in two, the read half
/// under the frame's deadline, the write half behind [`Replies`].
async fn serve_streams<S: StreamHandler>(stream: TcpStream, conn: Conn, handler: &S) {
    let (rd, wr) = stream.into_split();
    let read = ConnRead {
        io: rd,
        deadline: None,
    };
    let mut reader = conn.reader(read);
    let mut writer = FrameWriter::with_encoder(wr, conn.encoder());
    let cfg = &conn.config;
    let ended = loop {
        if reader.is_idle() {
            match conn.idle_wait(&mut reader).await {
                Wake::Readable => {}
                Wake::Shutdown | Wake::Closed => break None,
                Wake::Idle => break Some(Error::Timeout("idle")),
            }
        }
        let frame_start = reader.decoder().offset();
        let deadline = Instant::now() + cfg.read_timeout;
        let head = match timeout_at(deadline, reader.read_head()).await {
            Ok(Ok(Some(head))) => head,
            Ok(Ok(None)) => break None,
            Ok(Err(e)) => break Some(e),
            Err(_) => break Some(Error::Timeout("reading a frame head")),
        };
        let body_time = Duration::from_secs(head.body_len() / cfg.min_body_rate.max(1));
        reader.get_mut().set_deadline(Some(deadline + body_time));
        let mut replies = Replies {
            writer: &mut writer,
            config: cfg,
            request_id: head.id(),
            frame_start,
            sent: 0,
        };
        let handled = handler.call(head, reader.body(), &mut replies).await;
        // Skip what the handler left unread; a decode error in it wins.
        let skipped = async {
            while reader.body().chunk().await?.is_some() {}
            Ok::<(), Error>(())
        }
        .await;
        reader.get_mut().set_deadline(None);
        if let Err(e) = skipped.and(handled) {
            break Some(match e {
                Error::Io(e) if e.kind() == io::ErrorKind::TimedOut => {
                    Error::Timeout("reading a frame body")
                }
                other => other,
            });
        }
    };
    let (read, _) = reader.into_parts();
    let Ok(stream) = read.io.reunite(writer.into_inner()) else {
        return;
    };
    match ended {
        None => Box::pin(close(stream)).await,
        Some(e) => Box::pin(fail_stream(stream, e, cfg)).await,
    }
}

/// [`fail`], boxed: the error path's futures stay out of the connection task's own size,
/// which every idle connection pays for.
async fn fail_boxed(reader: FrameReader<TcpStream>, e: Error, cfg: &ServerConfig) {
    Box::pin(fail(reader, e, cfg)).await
}

/// Ends a connection after `e`: a best-effort error frame (§7), then close. IO errors close
/// without one (the transport is gone).
async fn fail(reader: FrameReader<TcpStream>, e: Error, cfg: &ServerConfig) {
    let (stream, _) = reader.into_parts();
    fail_stream(stream, e, cfg).await
}

async fn fail_stream(stream: TcpStream, e: Error, cfg: &ServerConfig) {
    let frame = match &e {
        Error::Decode(d) => error_frame(d.code(), d, Some(d.offset())),
        Error::Timeout(what) => error_frame("timeout", format!("timed out {what}"), None),
        Error::Io(_) | Error::Closed(_) => return Box::pin(close(stream)).await,
        other => error_frame("internal", other, None),
    };
    tracing::debug!("closing a connection: {e}");
    let within = cfg.write_timeout.min(Duration::from_secs(2));
    send_and_close(stream, &frame, cfg.profile, within).await;
}

async fn close(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
}

/// Writes `frame`, shuts down the write side, and discards what the peer still sends for a
/// moment, so the close does not reset the connection before the peer reads the frame.
async fn send_and_close(mut stream: TcpStream, frame: &Frame, profile: Profile, within: Duration) {
    let mut wire = BytesMut::new();
    if lhp_codec::Encoder::with_profile(profile)
        .encode(frame, &mut wire)
        .is_err()
    {
        return;
    }
    let _ = timeout(within, async {
        stream.write_all(&wire).await?;
        stream.shutdown().await
    })
    .await;
    let mut sink = vec![0u8; 4096];
    let mut drained = 0usize;
    let _ = timeout(Duration::from_millis(500), async {
        while drained < 1 << 20 {
            match tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use futures::{SinkExt, StreamExt};
    use tokio_util::codec::Framed;

    use super::*;
    use crate::LhpCodec;

    /// The idle timer is armed once per connection and not moved on every frame: when it
    /// fires while the connection has been busy, it is set again to the real idle deadline
    /// instead of closing a connection that is not idle. Frames every 500 ms keep a
    /// connection with a 1.2 s idle timeout open past its first timer; then, left idle, it
    /// gets the `timeout` error frame.
    #[tokio::test]
    async fn the_idle_timer_counts_from_the_last_frame() {
        let config = ServerConfig {
            idle_timeout: Duration::from_millis(1200),
            ..ServerConfig::default()
        };
        let server = Server::bind("127.0.0.1:0", config, echo).expect("bind");
        let (addr, stop) = (server.local_addr(), server.shutdown_token());
        let running = tokio::spawn(server.run());
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut framed = Framed::new(stream, LhpCodec::new());
        for i in 0..5u64 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut h = Header::with_kind("echo");
            h.set_id(i);
            framed
                .send(Frame::new(h, Bytes::from_static(b"ping")))
                .await
                .expect("send");
            let reply = framed.next().await.expect("a reply").expect("decodes");
            assert_eq!(reply.header.kind(), Some("echo"), "frame {i}: {reply:?}");
            assert_eq!(reply.header.id(), Some(i));
        }
        let last = framed.next().await.expect("a frame").expect("decodes");
        assert_eq!(
            last.header.get("code").and_then(|v| v.as_str()),
            Some("timeout")
        );
        stop.cancel();
        running.await.expect("join").expect("run");
    }

    /// Every idle connection pays for its task's future: keep cold paths (error frames,
    /// closing) boxed so it stays small. A 4 KiB stack buffer in `send_and_close` once made it
    /// 6 KiB.
    #[tokio::test]
    async fn connection_task_stays_small() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stream = TcpStream::connect(addr).await.expect("connect");
        let conn = Conn {
            config: Arc::new(ServerConfig::default()),
            shutdown: CancellationToken::new(),
        };
        let serve = serve_frames(stream, conn, &echo);
        let size = std::mem::size_of_val(&serve);
        assert!(size <= 2048, "the connection future is {size} octets");
    }
}
