//! [`Client`]: connect with a timeout, request/reply, streaming upload and download.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use lhp_codec::conn::{self, Connection, Ending, PeerError};
use lhp_codec::{Frame, Header, Limits, Profile};

use crate::reader::{Body, FrameReader};
use crate::writer::FrameWriter;
use crate::Error;

/// How a client connects and how long it waits.
///
/// ```
/// use std::time::Duration;
/// use lhp_blocking::ClientConfig;
///
/// let mut config = ClientConfig::new();
/// config.connect_timeout(Duration::from_secs(2)).read_timeout(Some(Duration::from_secs(10)));
/// ```
#[derive(Clone, Debug)]
pub struct ClientConfig {
    profile: Profile,
    limits: Limits,
    connect_timeout: Duration,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig::new()
    }
}

impl ClientConfig {
    /// `lhp1`, default limits, 10 s to connect, 60 s per read and per write.
    pub fn new() -> Self {
        ClientConfig {
            profile: Profile::Lhp1,
            limits: Limits::default(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Some(Duration::from_secs(60)),
            write_timeout: Some(Duration::from_secs(60)),
        }
    }

    /// The wire profile.
    pub fn profile(&mut self, profile: Profile) -> &mut Self {
        self.profile = profile;
        self
    }

    /// Limits on the replies this client accepts.
    pub fn limits(&mut self, limits: Limits) -> &mut Self {
        self.limits = limits;
        self
    }

    /// How long to wait for the connection to be established (per address tried).
    pub fn connect_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one read may wait (`None`: forever).
    pub fn read_timeout(&mut self, timeout: Option<Duration>) -> &mut Self {
        self.read_timeout = timeout;
        self
    }

    /// How long one write may wait (`None`: forever).
    pub fn write_timeout(&mut self, timeout: Option<Duration>) -> &mut Self {
        self.write_timeout = timeout;
        self
    }
}

/// A connection to an LHP/1 server.
///
/// Error frames are classified as decisions E2 says (spec §7), by the sans-IO connection's
/// client role ([`Connection::handle_reply`]): one without `offset` refuses one request,
/// [`Error::Refused`], and the connection goes on; one with `offset` is a connection error,
/// [`Error::Peer`]: the server closes, and every later call fails with the same error. An
/// unregistered code is handled as `internal` of the class `offset` gives ([`Error::code`]).
/// [`reader`](Self::reader) and [`writer`](Self::writer) bypass this.
///
/// ```no_run
/// use lhp_blocking::Client;
/// use lhp_codec::{Frame, Header};
///
/// let mut client = Client::connect("127.0.0.1:7000")?;
/// let reply = client.request(&Frame::new(Header::with_kind("echo"), "hi".into()))?;
/// assert_eq!(&reply.body[..], b"hi");
///
/// // Upload a file of any size (hashed first, then streamed), then stream a reply to disk.
/// let mut file = std::fs::File::open("big.iso")?;
/// client.upload_file(Header::with_kind("put"), &mut file)?;
/// if let Some(head) = client.recv_head()? {
///     let mut out = std::fs::File::create("copy.iso")?;
///     std::io::copy(&mut client.body(), &mut out)?;
///     println!("got {} octets", head.body_len());
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Client {
    reader: FrameReader<TcpStream>,
    writer: FrameWriter<TcpStream>,
    peer: SocketAddr,
    /// The connection's rules (client role): it classifies error frames and ends the
    /// connection after a connection error.
    conn: Connection,
}

impl Client {
    /// Connects with the default [`ClientConfig`].
    pub fn connect<A: ToSocketAddrs>(addr: A) -> Result<Client, Error> {
        Client::connect_with(addr, &ClientConfig::new())
    }

    /// Connects with `config`, trying each address `addr` resolves to.
    pub fn connect_with<A: ToSocketAddrs>(addr: A, config: &ClientConfig) -> Result<Client, Error> {
        let mut last = None;
        for a in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&a, config.connect_timeout) {
                Ok(stream) => return Client::from_stream(stream, config),
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or(Error::Closed, Error::from))
    }

    /// Wraps a connected stream (sets `TCP_NODELAY` and the configured timeouts).
    pub fn from_stream(stream: TcpStream, config: &ClientConfig) -> Result<Client, Error> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(config.read_timeout)?;
        stream.set_write_timeout(config.write_timeout)?;
        let peer = stream.peer_addr()?;
        let read_half = stream.try_clone()?;
        let mut rules = conn::Config::new();
        rules.set_profile(config.profile).set_limits(config.limits);
        Ok(Client {
            reader: FrameReader::with(read_half, config.profile, config.limits),
            writer: FrameWriter::with_profile(stream, config.profile),
            peer,
            conn: Connection::client(rules, Instant::now()),
        })
    }

    /// The server's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Sends a frame (one write call).
    pub fn send(&mut self, frame: &Frame) -> Result<(), Error> {
        self.open()?;
        self.writer.write_frame(frame)
    }

    /// Receives a whole frame; `Ok(None)` if the server closed the connection between frames.
    /// An error frame is [`Error::Refused`] or [`Error::Peer`] (see [`Client`]).
    pub fn recv(&mut self) -> Result<Option<Frame>, Error> {
        self.open()?;
        match self.reader.read_frame()? {
            Some(frame) => {
                self.classify(&frame.header)?;
                Ok(Some(frame))
            }
            None => Ok(None),
        }
    }

    /// Sends a frame and receives the next one. A refusal is [`Error::Refused`] (the client
    /// stays usable); a connection error [`Error::Peer`]; a server that closes instead of
    /// replying gives [`Error::Closed`].
    pub fn request(&mut self, frame: &Frame) -> Result<Frame, Error> {
        self.send(frame)?;
        self.recv()?.ok_or(Error::Closed)
    }

    /// The connection error the server sent, if it sent one (the client is then done).
    pub fn ended(&self) -> Option<&PeerError> {
        match self.conn.ending() {
            Some(Ending::Peer(p)) => Some(p),
            _ => None,
        }
    }

    /// Streams an upload: `header` (which declares the body length) and that many octets
    /// from `body`. Returns the octets sent.
    pub fn upload<B: Read>(&mut self, header: &Header, body: B) -> Result<u64, Error> {
        self.open()?;
        self.writer.write_stream(header, body)
    }

    /// Fails the same way as the connection error the server sent, once it sent one.
    fn open(&self) -> Result<(), Error> {
        match self.ended() {
            Some(p) => Err(Error::Peer(Box::new(p.clone()))),
            None => Ok(()),
        }
    }

    /// E2, applied by the connection's client role: an error frame refuses a request or ends
    /// the connection; any other frame passes.
    fn classify(&mut self, header: &Header) -> Result<(), Error> {
        self.conn
            .handle_reply(header)
            .map_err(|p| Error::from_peer(*p))
    }

    /// Uploads a file in two passes: hash it, then stream it with `body_len` and `sha256`
    /// set. Returns the header as sent.
    pub fn upload_file<F: Read + std::io::Seek>(
        &mut self,
        header: Header,
        file: &mut F,
    ) -> Result<Header, Error> {
        self.open()?;
        self.writer.write_file(header, file)
    }

    /// Receives the next frame's head; its body follows through [`body`](Self::body). An error
    /// frame is [`Error::Refused`] or [`Error::Peer`] (its body, empty by E2, is skipped).
    pub fn recv_head(&mut self) -> Result<Option<Header>, Error> {
        self.open()?;
        let Some(head) = self.reader.read_head()? else {
            return Ok(None);
        };
        if let Err(e) = self.classify(&head) {
            // The body of an error frame is empty (E2); whatever it has is skipped.
            io::copy(&mut self.reader.body(), &mut io::sink())?;
            return Err(e);
        }
        Ok(Some(head))
    }

    /// The body of the frame whose head [`recv_head`](Self::recv_head) returned.
    pub fn body(&mut self) -> Body<'_, TcpStream> {
        self.reader.body()
    }

    /// Receives the next frame, streaming its body into `out`; returns its header.
    pub fn download<W: Write>(&mut self, out: &mut W) -> Result<Option<Header>, Error> {
        let Some(head) = self.reader.read_head()? else {
            return Ok(None);
        };
        std::io::copy(&mut self.reader.body(), out)?;
        Ok(Some(head))
    }

    /// The frame reader (for pipelining: send many, then read many).
    pub fn reader(&mut self) -> &mut FrameReader<TcpStream> {
        &mut self.reader
    }

    /// The frame writer.
    pub fn writer(&mut self) -> &mut FrameWriter<TcpStream> {
        &mut self.writer
    }
}
