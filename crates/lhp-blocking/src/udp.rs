//! LHP/1 over UDP with `std::net::UdpSocket` (`spec/lhp-udp.md`): a datagram server and client.
//!
//! All protocol decisions (one frame per datagram, truncation, the amplification bound, the
//! per-source rate limit) are made by [`lhp_codec::datagram`]; this module only moves
//! datagrams. Memory is fixed: one receive buffer of `max_datagram_len + 1` octets, one reply
//! buffer, and the rate-limit table of [`DatagramConfig::rate_slots`] buckets.
//!
//! ```
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use std::sync::Arc;
//! use lhp_blocking::udp::{UdpClient, UdpServer};
//! use lhp_codec::datagram::{DatagramConfig, Retry};
//! use lhp_codec::{Frame, Header};
//!
//! let mut server = UdpServer::bind("127.0.0.1:0", DatagramConfig::new()).unwrap();
//! let addr = server.local_addr().unwrap();
//! let stop = Arc::new(AtomicBool::new(false));
//! let s = stop.clone();
//! let t = std::thread::spawn(move || {
//!     // The seeds' upper-casing server, one frame per datagram.
//!     server.serve_until(&s, |f: Frame, _from| {
//!         let mut h = Header::with_kind("upper");
//!         if let Some(id) = f.header.id() {
//!             h.set_id(id);
//!         }
//!         Some(Frame::new(h, f.body.to_ascii_uppercase().into()))
//!     })
//! });
//! let client = UdpClient::connect(addr, DatagramConfig::new()).unwrap();
//! let reply = client.request(Header::with_kind("upper"), "hello".into(), Retry::default()).unwrap();
//! assert_eq!(&reply.body[..], b"HELLO");
//! stop.store(true, Ordering::Relaxed);
//! t.join().unwrap().unwrap();
//! ```

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use lhp_codec::datagram::{
    error_code, is_datagram_error, is_idempotent, matches_request, DatagramConfig,
    DatagramEncodeError, DatagramError, DatagramServer, DatagramStats, Disposition, Retry,
};
use lhp_codec::{Frame, Header, Value};

/// How often [`UdpServer::serve_until`] looks at its stop flag.
pub const STOP_POLL: Duration = Duration::from_millis(50);

/// What can go wrong on the client side of the binding.
#[derive(Debug)]
#[non_exhaustive]
pub enum UdpError {
    /// The socket failed.
    Io(io::Error),
    /// The frame to send cannot be one datagram (`spec/lhp-udp.md` §3.1).
    Encode(DatagramEncodeError),
    /// A datagram arrived that is not exactly one valid frame (§4); it was discarded.
    Datagram(DatagramError),
    /// No reply after `tries` sends, `timeout` each (§5.2).
    Timeout {
        /// How many times the request was sent.
        tries: u32,
        /// How long each wait was.
        timeout: Duration,
    },
    /// The system reported that nothing listens at the peer's address (ICMP port unreachable).
    PeerUnreachable(SocketAddr),
    /// The peer said our datagram was bad (§5.3): its error frame's code, message and offset.
    Rejected {
        /// The error code.
        code: String,
        /// The message.
        message: String,
        /// The offset in our datagram.
        offset: u64,
    },
}

impl fmt::Display for UdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UdpError::Io(e) => write!(f, "{e}"),
            UdpError::Encode(e) => write!(f, "{e}"),
            UdpError::Datagram(e) => write!(f, "received a bad datagram: {e}"),
            UdpError::Timeout { tries, timeout } => write!(
                f,
                "no reply after {tries} datagram(s), {} ms each",
                timeout.as_millis()
            ),
            UdpError::PeerUnreachable(a) => write!(f, "nothing is listening at {a}"),
            UdpError::Rejected {
                code,
                message,
                offset,
            } => write!(
                f,
                "the peer rejected the datagram: {code} at offset {offset}: {message}"
            ),
        }
    }
}

impl std::error::Error for UdpError {}

impl From<io::Error> for UdpError {
    fn from(e: io::Error) -> Self {
        UdpError::Io(e)
    }
}

impl From<DatagramEncodeError> for UdpError {
    fn from(e: DatagramEncodeError) -> Self {
        UdpError::Encode(e)
    }
}

/// A datagram server: receives one datagram at a time, hands its frame to a handler, sends the
/// handler's reply within the amplification budget (§6), under per-source rate limits (§7).
#[derive(Debug)]
pub struct UdpServer {
    socket: UdpSocket,
    core: DatagramServer,
    buf: Vec<u8>,
    out: BytesMut,
}

impl UdpServer {
    /// Binds `addr` with `config`.
    pub fn bind(addr: impl ToSocketAddrs, config: DatagramConfig) -> io::Result<Self> {
        let socket = UdpSocket::bind(addr)?;
        Ok(UdpServer {
            socket,
            core: DatagramServer::new(config),
            // §3.2: one octet more than the largest datagram, to see truncation.
            buf: vec![0; config.recv_buffer_len()],
            out: BytesMut::new(),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The counters.
    pub fn stats(&self) -> DatagramStats {
        self.core.stats()
    }

    /// The socket (to set options).
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// Waits for one datagram (up to the socket's read timeout) and handles it. `Ok(None)`:
    /// the wait timed out, or the system reported an ICMP error for an earlier reply.
    pub fn serve_one<F>(&mut self, handler: &mut F) -> io::Result<Option<Disposition>>
    where
        F: FnMut(Frame, SocketAddr) -> Option<Frame>,
    {
        let (n, from) = match self.socket.recv_from(&mut self.buf) {
            Ok(r) => r,
            Err(e) if is_transient(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let datagram = self.buf.get(..n).unwrap_or(&[]);
        let d = self
            .core
            .handle(datagram, &from, Instant::now(), &mut self.out, |f| {
                handler(f, from)
            });
        if matches!(d, Disposition::Replied | Disposition::Refused(_)) {
            match self.socket.send_to(&self.out, from) {
                Ok(_) => {}
                Err(e) if is_transient(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Some(d))
    }

    /// Serves until `stop` is set (checked every [`STOP_POLL`]).
    pub fn serve_until<F>(&mut self, stop: &AtomicBool, mut handler: F) -> io::Result<()>
    where
        F: FnMut(Frame, SocketAddr) -> Option<Frame>,
    {
        self.socket.set_read_timeout(Some(STOP_POLL))?;
        while !stop.load(Ordering::Relaxed) {
            self.serve_one(&mut handler)?;
        }
        Ok(())
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
            | io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
    )
}

/// A datagram client bound to one peer: requests with `id` matching and retries (§5), or plain
/// sends and receives (the chat).
#[derive(Debug)]
pub struct UdpClient {
    socket: UdpSocket,
    config: DatagramConfig,
    peer: SocketAddr,
    next_id: AtomicU64,
}

impl UdpClient {
    /// A client on an ephemeral port of the peer's address family, connected to `peer`.
    pub fn connect(peer: impl ToSocketAddrs, config: DatagramConfig) -> io::Result<Self> {
        let peer = first_addr(peer)?;
        let local: SocketAddr = if peer.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        UdpClient::bind_connect(local, peer, config)
    }

    /// A client bound to `local`, connected to `peer` (the chat binds a known port).
    pub fn bind_connect(
        local: impl ToSocketAddrs,
        peer: impl ToSocketAddrs,
        config: DatagramConfig,
    ) -> io::Result<Self> {
        let peer = first_addr(peer)?;
        let socket = UdpSocket::bind(local)?;
        socket.connect(peer)?;
        Ok(UdpClient {
            socket,
            config,
            peer,
            next_id: AtomicU64::new(1),
        })
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The peer.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// A fresh `id` for a request (§5.1).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends `frame` as one datagram.
    pub fn send(&self, frame: &Frame) -> Result<(), UdpError> {
        let mut out = BytesMut::new();
        self.config.codec().encode(frame, &mut out)?;
        self.send_raw(&out)
    }

    /// Sends `datagram` as it is (tests use it to send bad datagrams).
    pub fn send_raw(&self, datagram: &[u8]) -> Result<(), UdpError> {
        match self.socket.send(datagram) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                Err(UdpError::PeerUnreachable(self.peer))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Waits up to `timeout` for one datagram from the peer and decodes it. A bad datagram is
    /// [`UdpError::Datagram`] (and must not be answered, §5.3).
    pub fn recv(&self, timeout: Duration) -> Result<Frame, UdpError> {
        self.socket
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let mut buf = vec![0u8; self.config.recv_buffer_len()];
        let n = match self.socket.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(UdpError::Timeout { tries: 1, timeout })
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return Err(UdpError::PeerUnreachable(self.peer))
            }
            Err(e) => return Err(e.into()),
        };
        self.config
            .codec()
            .decode(buf.get(..n).unwrap_or(&[]))
            .map_err(UdpError::Datagram)
    }

    /// Sends a request and waits for its reply (§5): sets a fresh `id` if `header` has none,
    /// discards datagrams that are not the reply, and sends again after `retry.timeout` up to
    /// `retry.tries` times, but only for idempotent kinds (§5.2; others are sent once).
    pub fn request(
        &self,
        mut header: Header,
        body: Bytes,
        retry: Retry,
    ) -> Result<Frame, UdpError> {
        let id = match header.id() {
            Some(id) => id,
            None => {
                let id = self.next_id();
                header.set_id(id);
                id
            }
        };
        let tries = if is_idempotent(header.kind()) {
            retry.tries.max(1)
        } else {
            1
        };
        let request = Frame::with_profile(self.config.profile(), header, body);
        let mut out = BytesMut::new();
        self.config.codec().encode(&request, &mut out)?;
        for _ in 0..tries {
            self.send_raw(&out)?;
            let deadline = Instant::now() + retry.timeout;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match self.recv(left) {
                    Ok(f) if matches_request(&f.header, id) => return reply_or_rejection(f),
                    // §5.1: a late reply to an earlier request, or a duplicate.
                    Ok(_) | Err(UdpError::Datagram(_)) => continue,
                    Err(UdpError::Timeout { .. }) => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Err(UdpError::Timeout {
            tries,
            timeout: retry.timeout,
        })
    }
}

/// A datagram error frame (§5.3) is a rejection; anything else is the reply.
pub(crate) fn reply_or_rejection(f: Frame) -> Result<Frame, UdpError> {
    if !is_datagram_error(&f.header) {
        return Ok(f);
    }
    Err(UdpError::Rejected {
        code: error_code(&f.header).unwrap_or("internal").to_owned(),
        message: f
            .header
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        offset: f.header.get("offset").and_then(Value::as_u64).unwrap_or(0),
    })
}

fn first_addr(a: impl ToSocketAddrs) -> io::Result<SocketAddr> {
    a.to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolved to nothing",
        )
    })
}
