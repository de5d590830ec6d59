//! [`Server`]: an LHP/1 server on tokio — a driver for the sans-IO
//! [`lhp_codec::conn::Connection`], which makes every protocol decision (error frames, echo,
//! deadlines, `busy`, half-close, shutdown). This file only moves octets and time between a
//! `TcpStream` and the machine, and runs the handler.
//!
//! ```text
//!   listen (backlog) ─► accept ─┬─ under max_connections ─► one task per connection:
//!                               │     socket ⇄ Connection (sans IO) ⇄ handler (Request, Replies)
//!                               └─ at the limit ──► `busy` error frame, close
//!   shutdown token cancelled ─► stop accepting; each connection closes at its next frame
//!                               boundary, or when `shutdown_grace` runs out.
//! ```

use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use lhp_codec::conn::{Connection, Ending, Event, Role, Stats};
use lhp_codec::{Frame, Header};
use sha2::{Digest, Sha256};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::codec::Error;

/// What a server accepts and how long it waits: the sans-IO layer's settings, the same type
/// in `lhp-blocking` (decisions E4: one meaning and one default everywhere).
pub use lhp_codec::conn::Config;

/// What a server does with each request other than `echo` (which the connection layer answers
/// itself, §8): the same shape as `lhp_blocking::Handler`, async.
///
/// A handler gets the request's head and its body (in memory, or still arriving) and replies
/// through [`Replies`]: any number of frames, then it returns. A request refused with
/// [`Replies::error`] leaves the connection open. Returning an error closes the connection.
///
/// A closure `Fn(Frame) -> impl Future<Output = Option<Frame>>` (or an `async fn`) is a
/// handler: it gets whole frames and its `Some` is the reply.
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
    /// Handles one request.
    fn handle(
        &self,
        request: Request<'_>,
        replies: &mut Replies<'_>,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The connection role: [`Role::AppServer`] (the default) or [`Role::EchoServer`].
    fn role(&self) -> Role {
        Role::AppServer
    }
}

impl<F, Fut> Handler for F
where
    F: Fn(Frame) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<Frame>> + Send,
{
    async fn handle(&self, request: Request<'_>, replies: &mut Replies<'_>) -> Result<(), Error> {
        let frame = request.into_frame().await?;
        if let Some(reply) = self(frame).await {
            replies.send(&reply).await?;
        }
        Ok(())
    }
}

/// The echo server (§8): the connection layer answers a frame of kind `echo` with its own
/// octets (E7) and refuses any other kind with `bad_request`, keeping the connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct EchoHandler;

impl EchoHandler {
    /// The echo handler.
    pub fn new() -> Self {
        EchoHandler
    }
}

impl Handler for EchoHandler {
    async fn handle(&self, request: Request<'_>, replies: &mut Replies<'_>) -> Result<(), Error> {
        // Not reached: an echo server's connection answers every frame itself.
        let _ = request;
        replies
            .error("internal", "echo server handler called")
            .await
    }

    fn role(&self) -> Role {
        Role::EchoServer
    }
}

/// One incoming request: its head, and its body (in memory, or still arriving).
#[derive(Debug)]
pub struct Request<'a> {
    head: Header,
    body: RequestBody<'a>,
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

    /// The body: `body_len` octets, read with [`RequestBody::chunk`].
    pub fn body(&mut self) -> &mut RequestBody<'a> {
        &mut self.body
    }

    /// The header and the body, read into memory.
    pub async fn into_frame(self) -> Result<Frame, Error> {
        self.body.into_frame(self.head).await
    }

    /// The header and the body reader.
    pub fn into_parts(self) -> (Header, RequestBody<'a>) {
        (self.head, self.body)
    }
}

/// A request's body. Bodies up to the connection's `deliver_whole` arrive whole; longer ones
/// are read from the connection as the handler asks. A read fails if the connection fails
/// (`unexpected_eof`, `digest_mismatch`, a deadline): the connection layer has then already
/// sent its error frame.
#[derive(Debug)]
pub struct RequestBody<'a> {
    whole: Bytes,
    stream: Option<&'a Mutex<Driver>>,
    done: bool,
}

impl RequestBody<'_> {
    /// The next chunk of the body as it arrived, without copying; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        if !self.whole.is_empty() {
            return Ok(Some(std::mem::take(&mut self.whole)));
        }
        let Some(driver) = self.stream.filter(|_| !self.done) else {
            return Ok(None);
        };
        let mut d = driver.lock().await;
        loop {
            match d.conn.poll_event() {
                Some(Event::Body(b)) => return Ok(Some(b)),
                Some(Event::End) => {
                    self.done = true;
                    d.body_done = true;
                    return Ok(None);
                }
                Some(_) => {}
                None => {
                    if d.conn.ending().is_some() {
                        self.done = true;
                        return Err(d.failure());
                    }
                    d.step(None).await?;
                }
            }
        }
    }

    /// The whole body in memory, with `header`.
    pub async fn into_frame(mut self, header: Header) -> Result<Frame, Error> {
        if self.stream.is_none() {
            let body = std::mem::take(&mut self.whole);
            return Ok(Frame { header, body });
        }
        let mut body = Vec::new();
        while let Some(c) = self.chunk().await? {
            body.extend_from_slice(&c);
        }
        Ok(Frame {
            header,
            body: body.into(),
        })
    }

    /// True once every octet has been read.
    pub fn is_done(&self) -> bool {
        self.whole.is_empty() && (self.done || self.stream.is_none())
    }
}

/// Sends replies to one request, through the connection layer.
#[derive(Debug)]
pub struct Replies<'a> {
    driver: &'a Mutex<Driver>,
    request: &'a Header,
}

impl Replies<'_> {
    /// Sends a whole frame.
    pub async fn send(&mut self, frame: &Frame) -> Result<(), Error> {
        let mut d = self.driver.lock().await;
        d.conn.send(frame, Instant::now())?;
        d.flush().await
    }

    /// Sends `header` and a body of `header.body_len()` octets read from `body`, as they are
    /// read. A `sha256` in `header` is verified on the way: if the octets do not match, or
    /// `body` ends early, the frame cannot be completed and the connection is closed (nothing
    /// is written after a partial frame, E3). Returns the octets sent.
    pub async fn send_stream<B: AsyncRead + Unpin + Send>(
        &mut self,
        header: &Header,
        mut body: B,
    ) -> Result<u64, Error> {
        let len = header.body_len();
        let expected = header.sha256().map(str::to_owned);
        let mut hasher = expected.as_ref().map(|_| Sha256::new());
        {
            // Flushed at once: the write deadline runs while octets wait to be written.
            let mut d = self.driver.lock().await;
            d.conn.send_head(header, len, Instant::now())?;
            d.flush().await?;
        }
        let mut left = len;
        let mut buf = vec![0u8; (64 << 10).min(len.max(1)) as usize];
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match body.read(&mut buf[..want]).await {
                Ok(0) => {
                    self.abort().await;
                    return Err(Error::Closed("the reply body ended early"));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.abort().await;
                    return Err(Error::Io(e));
                }
            };
            let chunk = &buf[..n];
            if let Some(h) = hasher.as_mut() {
                h.update(chunk);
            }
            left -= n as u64;
            if left == 0 {
                if let (Some(h), Some(want)) = (hasher.take(), expected.as_deref()) {
                    if lhp_codec::hex_lower(&h.finalize()) != want {
                        self.abort().await;
                        return Err(Error::Io(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "the reply body does not match its sha256: not sent",
                        )));
                    }
                }
            }
            let mut d = self.driver.lock().await;
            d.conn
                .send_body(Bytes::copy_from_slice(chunk), Instant::now());
            d.flush().await?;
        }
        Ok(len)
    }

    /// Refuses the request with a request error frame (E2): `{"kind":"error","id":I,"code":C,
    /// "message":M}`, `id` copied from the request if it had one, no `offset`. The connection
    /// stays open.
    pub async fn error(&mut self, code: &str, message: &str) -> Result<(), Error> {
        let mut d = self.driver.lock().await;
        d.conn.refuse(self.request, code, message, Instant::now());
        d.flush().await
    }

    async fn abort(&mut self) {
        self.driver.lock().await.conn.abort_reply(Instant::now());
    }
}

/// One connection: its socket and its sans-IO machine.
#[derive(Debug)]
pub struct Driver {
    stream: TcpStream,
    conn: Connection,
    /// The read buffer: `READ_BUF` octets while a frame is being received, `IDLE_BUF` between
    /// frames.
    buf: Vec<u8>,
    write_shut: bool,
    /// The shutdown token was seen cancelled (and handed to the machine once).
    shutdown_seen: bool,
    /// The streamed body of the request being handled reached its end (its `End` event was
    /// taken by the handler), so nothing is left to skip after the handler returns.
    body_done: bool,
    /// The deadline timer, re-armed only when it must fire sooner or has fired (moving a
    /// timer on every frame costs more than an early wake-up that finds nothing due).
    timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

/// Read buffer size during a frame.
const READ_BUF: usize = 64 << 10;

/// Read buffer size between frames.
const IDLE_BUF: usize = 4 << 10;

impl Driver {
    /// Writes everything queued, each write bounded by the machine's next deadline (E4).
    async fn flush(&mut self) -> Result<(), Error> {
        while self.conn.pending_len() > 0 && !self.conn.is_closed() {
            let mut slices = [io::IoSlice::new(&[]); 16];
            let mut k = 0;
            for (slot, chunk) in slices.iter_mut().zip(self.conn.pending()) {
                *slot = io::IoSlice::new(chunk);
                k += 1;
            }
            // A write the socket takes at once needs no deadline (nor a timer). One slice goes
            // with `send`: `writev` costs more per call.
            let tried = match k {
                1 => self.stream.try_write(&slices[0]),
                _ => self.stream.try_write_vectored(&slices[..k]),
            };
            match tried {
                Ok(0) => return Err(Error::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    self.conn.handle_sent(n, Instant::now());
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Io(e)),
            }
            let deadline = self.conn.poll_timeout().map(tokio::time::Instant::from_std);
            let write = self.stream.write_vectored(&slices[..k]);
            let r = match deadline {
                Some(d) => tokio::time::timeout_at(d, write).await,
                None => Ok(write.await),
            };
            match r {
                Ok(Ok(0)) => return Err(Error::Io(io::ErrorKind::WriteZero.into())),
                Ok(Ok(n)) => self.conn.handle_sent(n, Instant::now()),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(Error::Io(e)),
                Err(_) => self.conn.handle_timeout(Instant::now()),
            }
        }
        if self.conn.is_write_closed() && !self.write_shut {
            self.write_shut = true;
            let _ = self.stream.shutdown().await;
        }
        Ok(())
    }

    /// Flushes, then waits once for input, the machine's next deadline, or `shutdown`.
    async fn step(&mut self, shutdown: Option<&CancellationToken>) -> Result<(), Error> {
        self.flush().await?;
        if self.conn.is_closed() {
            return Ok(());
        }
        if let Some(d) = self.conn.poll_timeout().map(tokio::time::Instant::from_std) {
            match self.timer.as_mut() {
                Some(t) if !t.is_elapsed() && t.deadline() <= d => {}
                Some(t) => t.as_mut().reset(d),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(d))),
            }
        } else {
            self.timer = None;
        }
        let timer = &mut self.timer;
        let sleep = async move {
            match timer.as_mut() {
                Some(t) => t.as_mut().await,
                None => std::future::pending().await,
            }
        };
        let shutdown = shutdown.filter(|_| !self.shutdown_seen);
        let cancelled = async {
            match shutdown {
                Some(t) => t.cancelled().await,
                None => std::future::pending().await,
            }
        };
        let wants = self.conn.wants_input();
        let in_frame = self.conn.in_frame();
        if in_frame {
            if self.buf.len() < READ_BUF {
                self.buf.resize(READ_BUF, 0);
            }
        } else if self.buf.len() != IDLE_BUF {
            // Between frames a connection keeps only a small read buffer (an idle connection
            // costs IDLE_BUF octets), reused from read to read.
            self.buf = vec![0u8; IDLE_BUF];
        }
        let buf = &mut self.buf;
        // `read` rather than `readable` + `try_read`: tokio's `poll_read` forgets the socket's
        // readiness after a short read, so the next step waits in epoll instead of spending a
        // `recvfrom` on EAGAIN every round trip. `TcpStream::read` is cancel-safe.
        let stream = &mut self.stream;
        let read = async move {
            if wants {
                stream.read(buf).await.map(|n| (n, buf))
            } else {
                std::future::pending().await
            }
        };
        enum Woke<'b> {
            Shutdown,
            Deadline,
            Read(io::Result<(usize, &'b mut Vec<u8>)>),
        }
        let woke = tokio::select! {
            biased;
            () = cancelled => Woke::Shutdown,
            () = sleep => Woke::Deadline,
            r = read => Woke::Read(r),
        };
        match woke {
            Woke::Shutdown => {
                self.shutdown_seen = true;
                self.conn.begin_shutdown(Instant::now());
            }
            Woke::Deadline => self.conn.handle_timeout(Instant::now()),
            Woke::Read(Ok((0, _))) => self.conn.handle_eof(Instant::now()),
            Woke::Read(Ok((n, buf))) => self.conn.handle_input(&buf[..n], Instant::now()),
            Woke::Read(Err(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            // A reset is a transport error, never a clean end (E5).
            Woke::Read(Err(e)) => return Err(Error::Io(e)),
        }
        Ok(())
    }

    /// The error a handler sees when the connection failed under it.
    fn failure(&self) -> Error {
        match self.conn.ending() {
            Some(Ending::Decode(e)) => Error::Decode(e.clone()),
            Some(Ending::Timeout { .. }) | Some(Ending::WriteStalled) => {
                Error::Timeout("a connection deadline passed")
            }
            _ => Error::Closed("by the connection layer"),
        }
    }
}

/// Serves one connection until it ends, fails, or the server shuts down.
async fn serve<H: Handler>(
    stream: TcpStream,
    peer: SocketAddr,
    config: Config,
    handler: &H,
    shutdown: CancellationToken,
    stats: Arc<Stats>,
) {
    let _ = stream.set_nodelay(true);
    tracing::info!(%peer, "connection accepted");
    let conn = Connection::new(config, handler.role(), Instant::now());
    // Boxed: an idle connection's future stays small (see `connection_task_stays_small`).
    let mut driver = Box::new(Mutex::new(Driver {
        stream,
        conn,
        buf: Vec::new(),
        write_shut: false,
        shutdown_seen: false,
        body_done: false,
        timer: None,
    }));
    // Counted once boxed: the connection future stays small.
    driver.get_mut().conn.set_stats(stats);
    let driver = &*driver;
    loop {
        let event = {
            let mut d = driver.lock().await;
            if d.flush().await.is_err() || d.conn.is_closed() {
                break;
            }
            if shutdown.is_cancelled() {
                d.conn.begin_shutdown(Instant::now());
            }
            match d.conn.poll_event() {
                Some(event) => event,
                // Nothing for the handler: wait for input or time under the same lock.
                None => {
                    if d.step(Some(&shutdown)).await.is_err() {
                        break;
                    }
                    continue;
                }
            }
        };
        let (head, body) = match event {
            Event::Frame(frame) => (
                frame.header,
                RequestBody {
                    whole: frame.body,
                    stream: None,
                    done: true,
                },
            ),
            Event::Head(head) => (
                head,
                RequestBody {
                    whole: Bytes::new(),
                    stream: Some(driver),
                    done: false,
                },
            ),
            // Leftovers of a body the handler did not read are skipped.
            _ => continue,
        };
        let streamed = body.stream.is_some();
        driver.lock().await.body_done = false;
        let request = Request {
            head: head.clone(),
            body,
            peer,
        };
        let mut replies = Replies {
            driver,
            request: &head,
        };
        let result = Box::pin(handler.handle(request, &mut replies)).await;
        if streamed && Box::pin(skip_body(driver)).await.is_err() {
            break;
        }
        match result {
            // Decode errors and timeouts were answered by the connection layer: it is closing.
            Ok(()) | Err(Error::Decode(_)) | Err(Error::Timeout(_)) => {
                driver.lock().await.conn.finish_request(Instant::now());
            }
            Err(_) => break,
        }
    }
    log_end(peer, &driver.lock().await.conn);
}

/// Logs how a connection ended (`tracing`): errors and timeouts as warnings with the peer, the
/// code and the octets moved; clean ends at info.
fn log_end(peer: SocketAddr, conn: &Connection) {
    let (rx, tx) = (conn.received(), conn.sent());
    match conn.ending() {
        Some(Ending::Busy) => {
            tracing::warn!(%peer, code = "busy", "refused: at the connection limit")
        }
        Some(e @ (Ending::Decode(_) | Ending::Timeout { .. })) => tracing::warn!(
            %peer,
            code = e.code().unwrap_or_default(),
            octets_in = rx,
            octets_out = tx,
            "connection error: {e:?}"
        ),
        Some(Ending::WriteStalled) => tracing::warn!(
            %peer,
            octets_in = rx,
            octets_out = tx,
            "closed: the peer stopped reading (write_timeout)"
        ),
        Some(Ending::Shutdown { forced }) => {
            tracing::info!(%peer, forced, octets_in = rx, octets_out = tx, "closed by shutdown")
        }
        _ => tracing::info!(%peer, octets_in = rx, octets_out = tx, "connection closed"),
    }
}

/// Reads and drops what remains of a streamed request body.
async fn skip_body(driver: &Mutex<Driver>) -> Result<(), Error> {
    let mut d = driver.lock().await;
    if d.body_done {
        // The handler read the body to its end: the next event belongs to the next request,
        // which the machine holds back until this one is answered.
        return Ok(());
    }
    loop {
        match d.conn.poll_event() {
            Some(Event::End) => return Ok(()),
            Some(_) => {}
            None if d.conn.ending().is_some() => return Ok(()),
            None => d.step(None).await?,
        }
    }
}

/// Sends `busy` and closes (E4), lingering as after any connection error.
async fn reject_busy(stream: TcpStream, config: Config, stats: Arc<Stats>) {
    if let Ok(peer) = stream.peer_addr() {
        tracing::warn!(%peer, code = "busy", "refused: at the connection limit");
    }
    let mut conn = Connection::busy(config, Instant::now());
    conn.set_stats(stats);
    let mut d = Driver {
        stream,
        conn,
        buf: Vec::new(),
        write_shut: false,
        shutdown_seen: false,
        body_done: false,
        timer: None,
    };
    while !d.conn.is_closed() {
        if d.step(None).await.is_err() {
            break;
        }
    }
}

/// An LHP/1 server: a bound listener, a handler, its [`Config`], and a shutdown token.
///
/// ```
/// use lhp_codec::{Frame, Header};
/// use lhp_tokio::{Client, Config, EchoHandler, Server};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), lhp_tokio::Error> {
/// let server = Server::bind("127.0.0.1:0", Config::new(), EchoHandler::new())?;
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
    local_addr: SocketAddr,
    config: Config,
    open: Arc<AtomicUsize>,
    serve: Arc<ServeFn>,
    shutdown: CancellationToken,
    stats: Arc<Stats>,
}

type ServeFn = dyn Fn(
        TcpStream,
        SocketAddr,
        Config,
        CancellationToken,
        Arc<Stats>,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>
    + Send
    + Sync;

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds `addr` (the first address it resolves to) with `SO_REUSEADDR` and the configured
    /// listen backlog, to serve with `handler`. Needs no runtime; [`run`](Self::run) does.
    pub fn bind<A: ToSocketAddrs, H: Handler>(
        addr: A,
        config: Config,
        handler: H,
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
        socket.listen(config.backlog())?;
        let listener: std::net::TcpListener = socket.into();
        let local_addr = listener.local_addr()?;
        let handler = Arc::new(handler);
        let serve: Arc<ServeFn> = Arc::new(move |stream, peer, config, token, stats| {
            let handler = Arc::clone(&handler);
            // Every event of this connection, the handler's included, carries the peer.
            let span = tracing::info_span!("connection", %peer);
            Box::pin(
                async move { serve(stream, peer, config, &*handler, token, stats).await }
                    .instrument(span),
            )
        });
        Ok(Server {
            listener,
            local_addr,
            config,
            open: Arc::new(AtomicUsize::new(0)),
            serve,
            shutdown: CancellationToken::new(),
            stats: Arc::new(Stats::new()),
        })
    }

    /// The address the server listens on (with the port the system chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The token that shuts the server down: cancel it to stop accepting, let requests in
    /// progress finish (until `shutdown_grace`), and make [`run`](Self::run) return.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// A gauge of the connections being served, readable while the server runs.
    pub fn connections(&self) -> Connections {
        Connections {
            open: Arc::clone(&self.open),
            max: self.config.max_connections(),
        }
    }

    /// The server's counters (connections, frames, octets, errors by code), fed by its
    /// connections and readable while it runs; [`Stats::snapshot`] reads them. The same type
    /// and names in `lhp-blocking`.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Accepts and serves connections until the shutdown token is cancelled, then drains.
    pub async fn run(self) -> io::Result<()> {
        let listener = TcpListener::from_std(self.listener)?;
        let tracker = TaskTracker::new();
        let hard_stop = CancellationToken::new();
        loop {
            let accepted = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            if !self.config.admits(self.open.load(Ordering::SeqCst)) {
                tracker.spawn(reject_busy(stream, self.config, Arc::clone(&self.stats)));
                continue;
            }
            self.open.fetch_add(1, Ordering::SeqCst);
            let open = Arc::clone(&self.open);
            let serving = (self.serve)(
                stream,
                peer,
                self.config,
                self.shutdown.clone(),
                Arc::clone(&self.stats),
            );
            let hard_stop = hard_stop.clone();
            tracker.spawn(async move {
                // A handler stuck in its own code is dropped once the grace is over.
                tokio::select! {
                    () = serving => {}
                    () = hard_stop.cancelled() => {}
                }
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
        drop(listener);
        tracker.close();
        // Each connection closes itself at a frame boundary or when its grace runs out (E4);
        // a handler that does not return by then is dropped.
        let grace = self.config.shutdown_grace() + self.config.close_linger();
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            hard_stop.cancel();
            tracker.wait().await;
        }
        Ok(())
    }
}

/// The number of connections a [`Server`] is serving (see [`Server::connections`]).
#[derive(Clone, Debug)]
pub struct Connections {
    open: Arc<AtomicUsize>,
    max: usize,
}

impl Connections {
    /// Connections being served now (excess connections turned away with `busy` are not
    /// counted).
    pub fn active(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// The limit, `max_connections`.
    pub fn max(&self) -> usize {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every idle connection pays for its task's future: keep it small.
    #[tokio::test]
    async fn connection_task_stays_small() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stream = TcpStream::connect(addr).await.expect("connect");
        let serving = serve(
            stream,
            addr,
            Config::new(),
            &EchoHandler,
            CancellationToken::new(),
            Arc::new(Stats::new()),
        );
        let size = std::mem::size_of_val(&serving);
        assert!(size <= 2048, "the connection future is {size} octets");
    }
}
