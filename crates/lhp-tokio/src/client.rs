//! [`Client`]: requests and replies correlated by `id`, pipelined on one connection.
//!
//! ```text
//!   request(frame) ──► id = next id ──► pending[id] = oneshot ──► one vectored write
//!                                                                        │
//!   reader task: read frame ──► pending.remove(reply.id) ──► oneshot ──► request returns
//! ```
//!
//! Any number of requests may be in flight at once (clone the client, or join the futures);
//! the server may answer them in any order.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lhp_codec::conn::{self, Connection, Ending, PeerError};
use lhp_codec::{Frame, Limits, Profile};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::oneshot;
use tokio::task::AbortHandle;
use tokio::time::timeout;

use crate::codec::Error;
use crate::stream::{FrameReader, FrameWriter};

/// How a [`Client`] connects and waits.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The wire profile. Default `lhp1`.
    pub profile: Profile,
    /// Limits on replies. Default 64 KiB headers, 64 MiB bodies.
    pub limits: Limits,
    /// How long connecting may take. Default 10 s.
    pub connect_timeout: Duration,
    /// How long a request may wait for its reply (`None`: forever). Default 60 s.
    pub request_timeout: Option<Duration>,
    /// How long writing one request may take. Default 30 s.
    pub write_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            profile: Profile::Lhp1,
            limits: Limits::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Some(Duration::from_secs(60)),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// A pipelining LHP/1 client. Cheap to clone; clones share the connection, which closes when
/// the last clone is dropped.
///
/// ```no_run
/// use lhp_codec::{Frame, Header};
/// use lhp_tokio::Client;
/// use std::time::Duration;
///
/// # async fn demo() -> Result<(), lhp_tokio::Error> {
/// let client = Client::connect("127.0.0.1:9000", Duration::from_secs(5)).await?;
/// // 100 requests in flight at once on one connection; replies matched by `id`.
/// let replies = futures::future::join_all((0..100).map(|i| {
///     client.request(Frame::new(Header::with_kind("echo"), format!("#{i}").into()))
/// }))
/// .await;
/// assert!(replies.iter().all(|r| r.is_ok()));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ClientConfig,
    writer: tokio::sync::Mutex<FrameWriter<OwnedWriteHalf>>,
    shared: Arc<Mutex<Pending>>,
    next_id: AtomicU64,
    local_addr: SocketAddr,
    peer_addr: SocketAddr,
    reader_task: AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.reader_task.abort();
    }
}

/// Requests waiting for replies, and why the connection ended (once it has).
#[derive(Debug, Default)]
struct Pending {
    waiting: HashMap<u64, oneshot::Sender<Result<Frame, Error>>>,
    ended: Option<Ended>,
}

/// A connection-level failure, kept to answer every later request.
#[derive(Clone, Debug)]
enum Ended {
    Decode(lhp_codec::DecodeError),
    Io(io::ErrorKind, String),
    Peer(Box<PeerError>),
    Closed(&'static str),
}

impl Ended {
    fn to_error(&self) -> Error {
        match self {
            Ended::Decode(e) => Error::Decode(e.clone()),
            Ended::Io(kind, msg) => Error::Io(io::Error::new(*kind, msg.clone())),
            Ended::Peer(p) => Error::Peer(p.clone()),
            Ended::Closed(why) => Error::Closed(why),
        }
    }
}

impl Client {
    /// Connects to `addr` within `connect_timeout`, with default settings otherwise.
    pub async fn connect<A: ToSocketAddrs>(
        addr: A,
        connect_timeout: Duration,
    ) -> Result<Client, Error> {
        let config = ClientConfig {
            connect_timeout,
            ..ClientConfig::default()
        };
        Client::connect_with(addr, config).await
    }

    /// Connects to `addr` with `config`. Must be called inside a tokio runtime.
    pub async fn connect_with<A: ToSocketAddrs>(
        addr: A,
        config: ClientConfig,
    ) -> Result<Client, Error> {
        let stream = match timeout(config.connect_timeout, TcpStream::connect(addr)).await {
            Ok(stream) => stream?,
            Err(_) => return Err(Error::Timeout("connecting")),
        };
        Ok(Client::from_stream(stream, config)?)
    }

    /// Wraps a connected stream.
    pub fn from_stream(stream: TcpStream, config: ClientConfig) -> io::Result<Client> {
        stream.set_nodelay(true)?;
        let local_addr = stream.local_addr()?;
        let peer_addr = stream.peer_addr()?;
        let (rd, wr) = stream.into_split();
        let mut encoder = lhp_codec::Encoder::with_profile(config.profile);
        encoder.set_max_header_len(config.limits.max_header_len());
        let shared = Arc::new(Mutex::new(Pending::default()));
        let reader = FrameReader::with(rd, config.profile, config.limits);
        let mut rules = conn::Config::new();
        rules.set_profile(config.profile).set_limits(config.limits);
        let rules = Connection::client(rules, Instant::now());
        let task = tokio::spawn(read_replies(reader, rules, Arc::clone(&shared)));
        Ok(Client {
            inner: Arc::new(Inner {
                writer: tokio::sync::Mutex::new(FrameWriter::with_encoder(wr, encoder)),
                shared,
                next_id: AtomicU64::new(1),
                local_addr,
                peer_addr,
                reader_task: task.abort_handle(),
                config,
            }),
        })
    }

    /// Sends `request` and waits for the reply with the same `id`. The client sets `id`
    /// (replacing any the frame had). Error frames are classified as decisions E2 says (spec
    /// §7), by the sans-IO connection's client role ([`Connection::handle_reply`]): one without `offset` refuses its request, [`Error::Refused`], and the connection
    /// goes on; one with `offset` is a connection error, [`Error::Peer`], for every request in
    /// flight and every later one. An unregistered code is handled as `internal` of the class
    /// `offset` gives ([`Error::code`]).
    pub async fn request(&self, mut request: Frame) -> Result<Frame, Error> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        request.header.set_id(id);
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = lock(&self.inner.shared);
            if let Some(ended) = &pending.ended {
                return Err(ended.to_error());
            }
            pending.waiting.insert(id, tx);
        }
        let mut guard = Forget {
            shared: &self.inner.shared,
            id,
            poison: false,
        };
        {
            let mut writer = self.inner.writer.lock().await;
            // A write cut short leaves half a frame on the wire: the connection is unusable.
            guard.poison = true;
            match timeout(
                self.inner.config.write_timeout,
                writer.write_frame(&request),
            )
            .await
            {
                Ok(Ok(())) => guard.poison = false,
                Ok(Err(Error::Encode(e))) => {
                    guard.poison = false;
                    return Err(Error::Encode(e));
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(Error::Timeout("writing a request")),
            }
        }
        let reply = match self.inner.config.request_timeout {
            Some(limit) => match timeout(limit, rx).await {
                Ok(reply) => reply,
                Err(_) => return Err(Error::Timeout("waiting for a reply")),
            },
            None => rx.await,
        };
        match reply {
            Ok(reply) => reply,
            Err(_) => Err(Error::Closed("before the reply arrived")),
        }
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        lock(&self.inner.shared).waiting.len()
    }

    /// This end's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The server's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.inner.peer_addr
    }
}

/// Removes a request's entry if its future is dropped before the reply; marks the
/// connection broken if that happened in the middle of its write.
struct Forget<'a> {
    shared: &'a Mutex<Pending>,
    id: u64,
    poison: bool,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        let mut pending = lock(self.shared);
        pending.waiting.remove(&self.id);
        if self.poison && pending.ended.is_none() {
            pending.ended = Some(Ended::Closed("after a request write was interrupted"));
        }
    }
}

fn lock(m: &Mutex<Pending>) -> MutexGuard<'_, Pending> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The background task that owns the read half and routes replies by `id`; `rules` (the
/// connection's client role) classifies each reply.
async fn read_replies(
    mut reader: FrameReader<OwnedReadHalf>,
    mut rules: Connection,
    shared: Arc<Mutex<Pending>>,
) {
    let ended = loop {
        match reader.read_frame().await {
            Ok(Some(frame)) => {
                let id = frame.header.id();
                let reply = match rules.handle_reply(&frame.header) {
                    Ok(()) => Ok(frame),
                    Err(p) => match rules.ending() {
                        Some(Ending::Peer(_)) => break Ended::Peer(p),
                        _ => Err(Error::Refused(p)),
                    },
                };
                let tx = {
                    let mut pending = lock(&shared);
                    match (id, &reply) {
                        (Some(id), _) => pending.waiting.remove(&id),
                        // A refusal without `id` answers a request the server could not read
                        // it from: replies come in order (E5), so the oldest one waiting.
                        (None, Err(_)) => {
                            let oldest = pending.waiting.keys().min().copied();
                            oldest.and_then(|k| pending.waiting.remove(&k))
                        }
                        (None, Ok(_)) => None,
                    }
                };
                match tx {
                    Some(tx) => {
                        let _ = tx.send(reply);
                    }
                    None => tracing::debug!("a reply ({id:?}) answers no request in flight"),
                }
            }
            Ok(None) => break Ended::Closed("by the server"),
            Err(Error::Decode(e)) => break Ended::Decode(e),
            Err(Error::Io(e)) => break Ended::Io(e.kind(), e.to_string()),
            Err(_) => break Ended::Closed("after an error"),
        }
    };
    let waiting = {
        let mut pending = lock(&shared);
        pending.ended.get_or_insert(ended);
        std::mem::take(&mut pending.waiting)
    };
    let ended = lock(&shared).ended.clone();
    for (_, tx) in waiting {
        let e = ended
            .as_ref()
            .map_or(Error::Closed("by the server"), Ended::to_error);
        let _ = tx.send(Err(e));
    }
}
