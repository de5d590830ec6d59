//! [`Server`]: accept loop, one thread per connection (bounded), graceful shutdown — a driver
//! for the sans-IO [`lhp_codec::conn::Connection`], which makes every protocol decision (error
//! frames, echo, deadlines, `busy`, half-close, shutdown). This file only moves octets and time
//! between a `TcpStream` and the machine, and runs the handler.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lhp_codec::conn::{Connection, Ending, Event, Role, Stats};
use lhp_codec::{Frame, Header};
use sha2::{Digest, Sha256};
use socket2::{Domain, Protocol, Socket, Type};

use crate::Error;

/// What a server accepts and how long it waits: the sans-IO layer's settings, the same type
/// in `lhp-tokio` (decisions E4: one meaning and one default everywhere).
pub use lhp_codec::conn::Config;

/// What a server does with each request other than `echo` (which the connection layer answers
/// itself, §8).
///
/// A handler is called once per request, on the connection's thread, with the request's head
/// and its body still to be read, and replies through [`Replies`]: any number of frames, then it
/// returns. A request refused with [`Replies::error`] leaves the connection open. Returning an
/// error closes the connection (a decode error or timeout has already been answered with its
/// error frame by the connection layer); other connections are not affected.
///
/// A closure `Fn(Frame) -> Option<Frame>` is a handler: it gets whole frames (bodies up to the
/// limits' `max_body_len` in memory) and its `Some` is the reply.
pub trait Handler: Send + Sync + 'static {
    /// Handles one request.
    fn handle(&self, request: Request<'_>, replies: &mut Replies<'_>) -> Result<(), Error>;

    /// The connection role: [`Role::AppServer`] (the default) or [`Role::EchoServer`].
    fn role(&self) -> Role {
        Role::AppServer
    }
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

    /// The body as a [`Read`] of `body_len` octets (digest verified at its end). The part a
    /// handler does not read is discarded after it returns.
    pub fn body(&mut self) -> &mut RequestBody<'a> {
        &mut self.body
    }

    /// The header and the body, read into memory.
    pub fn into_frame(self) -> Result<Frame, Error> {
        self.body.into_frame(self.head)
    }

    /// The header and the body reader.
    pub fn into_parts(self) -> (Header, RequestBody<'a>) {
        (self.head, self.body)
    }
}

/// A request's body: a [`Read`] of its `body_len` octets. Bodies up to the connection's
/// `stream_threshold` arrive whole; longer ones are read from the connection as the handler
/// reads. A read fails if the connection fails (`unexpected_eof`, `digest_mismatch`, a
/// deadline): the connection layer has then already sent its error frame.
#[derive(Debug)]
pub struct RequestBody<'a> {
    whole: Bytes,
    stream: Option<&'a RefCell<Driver>>,
    done: bool,
}

impl RequestBody<'_> {
    /// The whole body in memory, with `header`.
    pub fn into_frame(mut self, header: Header) -> Result<Frame, Error> {
        if self.stream.is_none() {
            return Ok(Frame {
                header,
                body: std::mem::take(&mut self.whole),
            });
        }
        let mut body = Vec::new();
        self.read_to_end(&mut body)?;
        Ok(Frame {
            header,
            body: body.into(),
        })
    }

    /// True once every octet has been read.
    pub fn is_done(&self) -> bool {
        self.done || (self.stream.is_none() && self.whole.is_empty())
    }

    /// The next chunk of the body as it arrived, without copying; `None` at its end.
    pub fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        if self.stream.is_none() || self.done {
            if self.whole.is_empty() {
                return Ok(None);
            }
            return Ok(Some(std::mem::take(&mut self.whole)));
        }
        if !self.whole.is_empty() {
            return Ok(Some(std::mem::take(&mut self.whole)));
        }
        let Some(driver) = self.stream else {
            return Ok(None);
        };
        loop {
            let mut d = driver.borrow_mut();
            match d.conn.poll_event() {
                Some(Event::Body(b)) => return Ok(Some(b)),
                Some(Event::End) => {
                    self.done = true;
                    d.body_done = true;
                    return Ok(None);
                }
                Some(_) => {}
                None => {
                    if d.conn.is_closed() || d.conn.ending().is_some() {
                        self.done = true;
                        return Err(d.failure());
                    }
                    d.step()?;
                }
            }
        }
    }
}

impl Read for RequestBody<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.whole.is_empty() {
            match self.chunk() {
                Ok(Some(b)) => self.whole = b,
                Ok(None) => return Ok(0),
                Err(e) => return Err(e.into_io()),
            }
        }
        let n = out.len().min(self.whole.len());
        out[..n].copy_from_slice(&self.whole[..n]);
        bytes::Buf::advance(&mut self.whole, n);
        Ok(n)
    }
}

/// Sends replies to one request, through the connection layer.
#[derive(Debug)]
pub struct Replies<'a> {
    driver: &'a RefCell<Driver>,
    request: &'a Header,
}

impl Replies<'_> {
    /// Sends a whole frame.
    pub fn send(&mut self, frame: &Frame) -> Result<(), Error> {
        let mut d = self.driver.borrow_mut();
        d.conn.send(frame, Instant::now())?;
        d.flush()
    }

    /// Sends `header` and a body of `header.body_len()` octets read from `body`, as they are
    /// read. A `sha256` in `header` is verified on the way: if the octets do not match, or
    /// `body` ends early, the frame cannot be completed and the connection is closed (nothing
    /// is written after a partial frame, E3). Returns the octets sent.
    pub fn send_stream<B: Read>(&mut self, header: &Header, mut body: B) -> Result<u64, Error> {
        let len = header.body_len();
        let expected = header.sha256().map(str::to_owned);
        let mut hasher = expected.as_ref().map(|_| Sha256::new());
        {
            // Flushed at once: the write deadline runs while octets wait to be written.
            let mut d = self.driver.borrow_mut();
            d.conn.send_head(header, len, Instant::now())?;
            d.flush()?;
        }
        let mut left = len;
        let mut buf = vec![0u8; (64 << 10).min(len.max(1)) as usize];
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match body.read(&mut buf[..want]) {
                Ok(0) => {
                    self.abort();
                    return Err(Error::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the reply body ended {left} octets early"),
                    )));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.abort();
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
                        self.abort();
                        return Err(Error::Io(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "the reply body does not match its sha256: not sent",
                        )));
                    }
                }
            }
            let mut d = self.driver.borrow_mut();
            d.conn
                .send_body(Bytes::copy_from_slice(chunk), Instant::now());
            d.flush()?;
        }
        Ok(len)
    }

    /// Refuses the request with a request error frame (E2): `{"kind":"error","id":I,"code":C,
    /// "message":M}`, `id` copied from the request if it had one, no `offset`. The connection
    /// stays open.
    pub fn error(&mut self, code: &str, message: &str) -> Result<(), Error> {
        let mut d = self.driver.borrow_mut();
        d.conn.refuse(self.request, code, message, Instant::now());
        d.flush()
    }

    fn abort(&mut self) {
        self.driver.borrow_mut().conn.abort_reply(Instant::now());
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
    fn handle(&self, request: Request<'_>, replies: &mut Replies<'_>) -> Result<(), Error> {
        // Not reached: an echo server's connection answers every frame itself.
        let _ = request;
        replies.error("internal", "echo server handler called")
    }

    fn role(&self) -> Role {
        Role::EchoServer
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
            match listen(a, config.backlog()) {
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

    /// The server's counters (connections, frames, octets, errors by code), fed by its
    /// connections; [`Stats::snapshot`] reads them. The same type and names in `lhp-tokio`.
    pub fn stats(&self) -> Arc<Stats> {
        self.shared.stats.clone()
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
            if !self.shared.config.admits(conns.len()) {
                drop(conns);
                reject_busy(stream, &self.shared.config, &self.shared.stats);
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

    /// The server's counters (see [`Server::stats`]).
    pub fn stats(&self) -> Arc<Stats> {
        self.handle.stats()
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

    /// The server's counters (see [`Server::stats`]).
    pub fn stats(&self) -> Arc<Stats> {
        self.shared.stats.clone()
    }
}

/// One connection: its socket and its sans-IO machine. The driver only moves octets and
/// time; the [`Connection`] decides.
#[derive(Debug)]
pub struct Driver {
    stream: TcpStream,
    conn: Connection,
    /// The read buffer: `READ_BUF` octets while a frame is being received, `IDLE_BUF`
    /// between frames.
    buf: Vec<u8>,
    rcv: SocketTimeout,
    snd: SocketTimeout,
    write_shut: bool,
    /// The streamed body of the request being handled reached its end (its `End` event was
    /// taken by the handler), so nothing is left to skip after the handler returns.
    body_done: bool,
}

/// Read buffer size during a frame.
const READ_BUF: usize = 64 << 10;

/// Read buffer size between frames.
const IDLE_BUF: usize = 4 << 10;

impl Driver {
    fn new(stream: TcpStream, conn: Connection) -> Self {
        Driver {
            stream,
            conn,
            buf: Vec::new(),
            rcv: SocketTimeout::default(),
            snd: SocketTimeout::default(),
            write_shut: false,
            body_done: false,
        }
    }

    /// Writes everything the machine has queued, each write bounded by the machine's next
    /// deadline (E4 `write_timeout`: no progress for that long closes the connection).
    fn flush(&mut self) -> Result<(), Error> {
        while self.conn.pending_len() > 0 && !self.conn.is_closed() {
            let now = Instant::now();
            if let Some(d) = self.conn.poll_timeout() {
                let Some(left) = d.checked_duration_since(now).filter(|l| !l.is_zero()) else {
                    self.conn.handle_timeout(now);
                    continue;
                };
                let stream = &self.stream;
                self.snd.ensure(left, |t| stream.set_write_timeout(t))?;
            }
            let mut slices = [IoSlice::new(&[]); 16];
            let mut k = 0;
            for (slot, chunk) in slices.iter_mut().zip(self.conn.pending()) {
                *slot = IoSlice::new(chunk);
                k += 1;
            }
            // One slice goes with `send`: `writev` costs more per call.
            let written = match k {
                1 => (&self.stream).write(&slices[0]),
                _ => (&self.stream).write_vectored(&slices[..k]),
            };
            match written {
                Ok(0) => return Err(Error::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.conn.handle_sent(n, Instant::now()),
                Err(e) if is_timeout(&e) => self.conn.handle_timeout(Instant::now()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::Io(e)),
            }
        }
        if self.conn.is_write_closed() && !self.write_shut {
            self.write_shut = true;
            let _ = self.stream.shutdown(Shutdown::Write);
        }
        Ok(())
    }

    /// Flushes, then waits for input (or the machine's next deadline) once.
    fn step(&mut self) -> Result<(), Error> {
        self.flush()?;
        if self.conn.is_closed() {
            return Ok(());
        }
        let now = Instant::now();
        let deadline = self.conn.poll_timeout();
        if let Some(d) = deadline {
            let Some(left) = d.checked_duration_since(now).filter(|l| !l.is_zero()) else {
                self.conn.handle_timeout(now);
                return Ok(());
            };
            let stream = &self.stream;
            self.rcv.ensure(left, |t| stream.set_read_timeout(t))?;
        }
        if !self.conn.wants_input() {
            // Waiting for the peer to close while lingering, or for an answer: only time.
            thread::sleep(
                deadline
                    .and_then(|d| d.checked_duration_since(now))
                    .unwrap_or(Duration::from_millis(10))
                    .min(Duration::from_millis(10)),
            );
            self.conn.handle_timeout(Instant::now());
            return Ok(());
        }
        if self.conn.in_frame() {
            if self.buf.len() < READ_BUF {
                self.buf.resize(READ_BUF, 0);
            }
        } else if self.buf.len() != IDLE_BUF {
            // Between frames a connection keeps only a small read buffer, reused from read
            // to read (zeroing a buffer per read costs more than the read).
            self.buf = vec![0u8; IDLE_BUF];
        }
        let buf = &mut self.buf[..];
        match (&self.stream).read(buf) {
            Ok(0) => self.conn.handle_eof(Instant::now()),
            Ok(n) => self.conn.handle_input(&buf[..n], Instant::now()),
            Err(e) if is_timeout(&e) => self.conn.handle_timeout(Instant::now()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A reset is a transport error, never a clean end (E5).
            Err(e) => return Err(Error::Io(e)),
        }
        Ok(())
    }

    /// The error a handler sees when the connection failed under it.
    fn failure(&self) -> Error {
        match self.conn.ending() {
            Some(Ending::Decode(e)) => Error::Decode(e.clone()),
            Some(Ending::Timeout { .. }) | Some(Ending::WriteStalled) => Error::Timeout(
                io::Error::new(io::ErrorKind::TimedOut, "a connection deadline passed"),
            ),
            _ => Error::Closed,
        }
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
    let _ = stream.set_nodelay(true);
    // Every event of this connection, the handler's included, carries the peer.
    let span = tracing::info_span!("connection", %peer);
    let _entered = span.enter();
    tracing::info!(%peer, "connection accepted");
    let mut conn = Connection::new(shared.config, handler.role(), Instant::now());
    conn.set_stats(shared.stats.clone());
    let driver = RefCell::new(Driver::new(stream, conn));
    serve_loop(&driver, peer, shared, handler, &busy);
    log_end(peer, &driver.borrow().conn);
}

fn serve_loop(
    driver: &RefCell<Driver>,
    peer: SocketAddr,
    shared: &Shared,
    handler: &dyn Handler,
    busy: &AtomicBool,
) {
    loop {
        let event = {
            let mut d = driver.borrow_mut();
            if d.flush().is_err() || d.conn.is_closed() {
                break;
            }
            // A shutdown that saw this connection busy is seen here (both sides use SeqCst).
            if shared.stopping() {
                d.conn.begin_shutdown(Instant::now());
            }
            busy.store(
                d.conn.in_frame() || d.conn.outstanding() > 0,
                Ordering::SeqCst,
            );
            d.conn.poll_event()
        };
        let (head, body) = match event {
            None => {
                if driver.borrow_mut().step().is_err() {
                    break;
                }
                continue;
            }
            Some(Event::Frame(frame)) => (
                frame.header,
                RequestBody {
                    whole: frame.body,
                    stream: None,
                    done: true,
                },
            ),
            Some(Event::Head(head)) => (
                head,
                RequestBody {
                    whole: Bytes::new(),
                    stream: Some(driver),
                    done: false,
                },
            ),
            // Leftovers of a body the handler did not read are skipped.
            Some(_) => continue,
        };
        let streamed = body.stream.is_some();
        driver.borrow_mut().body_done = false;
        let request = Request {
            head: head.clone(),
            body,
            peer,
        };
        let mut replies = Replies {
            driver,
            request: &head,
        };
        let result = handler.handle(request, &mut replies);
        if streamed && skip_body(driver).is_err() {
            break;
        }
        match result {
            // Decode errors and timeouts were answered by the connection layer: it is closing.
            Ok(()) | Err(Error::Decode(_)) | Err(Error::Timeout(_)) => {
                driver.borrow_mut().conn.finish_request(Instant::now());
            }
            Err(_) => break,
        }
    }
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
fn skip_body(driver: &RefCell<Driver>) -> Result<(), Error> {
    loop {
        let mut d = driver.borrow_mut();
        if d.body_done {
            // The handler read the body to its end: the next event belongs to the next
            // request, which the machine holds back until this one is answered.
            return Ok(());
        }
        match d.conn.poll_event() {
            Some(Event::End) => return Ok(()),
            Some(_) => {}
            None if d.conn.ending().is_some() => return Ok(()),
            None => d.step()?,
        }
    }
}

/// Sends `busy` and closes, without blocking the accept loop (the linger is what the socket
/// already holds: the accept thread never waits).
fn reject_busy(stream: TcpStream, config: &Config, stats: &Arc<Stats>) {
    let now = Instant::now();
    if let Ok(peer) = stream.peer_addr() {
        tracing::warn!(%peer, code = "busy", "refused: at the connection limit");
    }
    let mut conn = Connection::busy(*config, now);
    conn.set_stats(stats.clone());
    let out: Vec<u8> = conn.pending().flat_map(|c| c.iter().copied()).collect();
    let _ = stream.set_nonblocking(true);
    if let Ok(n) = (&stream).write(&out) {
        conn.handle_sent(n, now);
    }
    let _ = stream.shutdown(Shutdown::Write);
    // Read what already arrived so that closing does not reset the connection.
    let mut scratch = [0u8; 4096];
    while let Ok(n) = (&stream).read(&mut scratch) {
        if n == 0 {
            break;
        }
    }
}

/// The `SO_RCVTIMEO` / `SO_SNDTIMEO` last set, so that it is set again only when it must
/// change (one system call saved per read on a busy connection).
#[derive(Debug, Default)]
struct SocketTimeout {
    set: Option<Duration>,
}

/// How far a socket timeout may be from the wanted one and still be kept.
const TIMEOUT_SLACK: Duration = Duration::from_millis(20);

impl SocketTimeout {
    fn ensure(
        &mut self,
        want: Duration,
        apply: impl FnOnce(Option<Duration>) -> io::Result<()>,
    ) -> io::Result<()> {
        let want = want.max(Duration::from_millis(1));
        // Keep the old value if it is at most the slack longer, or not much shorter (an early
        // wake-up only costs a loop).
        let keep = |set: Duration| set <= want + TIMEOUT_SLACK && set >= want / 2;
        if self.set.is_some_and(keep) {
            return Ok(());
        }
        self.set = None;
        apply(Some(want))?;
        self.set = Some(want);
        Ok(())
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
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
    stats: Arc<Stats>,
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
            stats: Arc::new(Stats::new()),
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
        let grace_end = Instant::now() + self.config.shutdown_grace();
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
    use super::*;

    #[test]
    fn socket_timeouts_are_set_only_when_they_change_much() {
        let mut t = SocketTimeout::default();
        let applied = std::cell::Cell::new(0);
        let apply = |_: Option<Duration>| {
            applied.set(applied.get() + 1);
            Ok(())
        };
        t.ensure(Duration::from_secs(60), apply).unwrap();
        t.ensure(Duration::from_millis(59_990), apply).unwrap();
        t.ensure(Duration::from_secs(100), apply).unwrap();
        assert_eq!(applied.get(), 1, "within the slack, or waking early: kept");
        t.ensure(Duration::from_secs(10), apply).unwrap();
        assert_eq!(applied.get(), 2, "a shorter wait must not be overshot");
        t.ensure(Duration::from_secs(11), apply).unwrap();
        assert_eq!(applied.get(), 2);
        t.ensure(Duration::from_secs(30), apply).unwrap();
        assert_eq!(applied.get(), 3, "waking far too early: set again");
    }
}
