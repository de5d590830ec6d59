//! Two helpers that both engines' tests share, so the engines are held to one script:
//!
//! - [`stats_conversation`]: a scripted conversation with an echo server, returning the exact
//!   counters (`lhp_codec::conn::StatsSnapshot`) the server must report afterwards.
//! - [`ScriptedServer`]: a fake server that answers each request with a scripted frame (an echo,
//!   or any octets, such as an error frame with an unknown code), to test how clients classify
//!   error frames (spec §7, decisions E2).
//! - [`echo`], [`request_error`], [`connection_error`]: the frames those scripts send.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use lhp_codec::conn::{encode_connection_error, encode_request_error, StatsSnapshot};
use lhp_codec::{Decoder, Frame, Header, Profile};

/// An `echo` request carrying `body`.
pub fn echo(body: &str) -> Frame {
    Frame::new(Header::with_kind("echo"), body.to_owned().into())
}

/// The octets of a request error frame (§7.2): `code`, the message `no`, and `id` if given.
pub fn request_error(code: &str, id: Option<u64>) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_request_error(
        Profile::Lhp1,
        id.map(Into::into).as_ref(),
        code,
        "no",
        &mut out,
    );
    out.to_vec()
}

/// The octets of a connection error frame (§7.2): `code`, the message `bye`, and `offset`.
pub fn connection_error(code: &str, offset: u64) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_connection_error(Profile::Lhp1, code, "bye", offset, None, &mut out);
    out.to_vec()
}

/// The counters a conversation's server must end with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    /// `connections_total`.
    pub connections_total: u64,
    /// `busy`.
    pub busy: u64,
    /// `frames_in`.
    pub frames_in: u64,
    /// `frames_out`.
    pub frames_out: u64,
    /// `octets_in`: every octet the script sent.
    pub octets_in: u64,
    /// `octets_out`: every octet the script received.
    pub octets_out: u64,
    /// `connection_errors`.
    pub connection_errors: u64,
    /// `refusals`.
    pub refusals: u64,
    /// `errors`, by code.
    pub errors: Vec<(&'static str, u64)>,
}

impl Expected {
    /// Panics, naming the counter, unless `got` (with no connection open) is what is expected.
    pub fn check(&self, engine: &str, got: &StatsSnapshot) {
        let have = Expected {
            connections_total: got.connections_total,
            busy: got.busy,
            frames_in: got.frames_in,
            frames_out: got.frames_out,
            octets_in: got.octets_in,
            octets_out: got.octets_out,
            connection_errors: got.connection_errors,
            refusals: got.refusals,
            errors: got.errors.clone(),
        };
        assert_eq!(&have, self, "{engine}: counters after the script");
        assert_eq!(got.connections_open, 0, "{engine}: connections still open");
        assert_eq!(got.write_stalls, 0, "{engine}: write stalls");
    }
}

const WAIT: Duration = Duration::from_secs(5);

/// Runs the script against the echo server at `addr`, configured with `max_connections` 1;
/// `idle()` must say whether the server has no connection left (it is polled between
/// connections, since the limit is 1). Returns the counters the server must then report.
///
/// 1. Connection A: an `echo` frame (echoed), a `put` (refused: `bad_request`), held open.
/// 2. Connection B while A is open: `busy`, and the close.
/// 3. A half-closes: the server closes it cleanly.
/// 4. Connection C: the prefix `00 00 00 01` (`header_len_too_small`): the error frame, close.
pub fn stats_conversation(addr: SocketAddr, idle: impl Fn() -> bool) -> Expected {
    let echo = frame(br#"{"kind":"echo","body_len":4}"#, b"ping");
    let put = frame(br#"{"kind":"put","id":7,"body_len":0}"#, b"");
    let mut e = Expected::default();

    let mut a = connect(addr);
    a.write_all(&echo).expect("write echo");
    let got = read_frames(&mut a, 1);
    assert_eq!(got, echo, "the echo");
    a.write_all(&put).expect("write put");
    let refusal = read_frames(&mut a, 1);
    e.octets_out += (got.len() + refusal.len()) as u64;
    e.octets_in += (echo.len() + put.len()) as u64;

    let mut b = connect(addr);
    let busy = read_to_end(&mut b);
    assert!(
        String::from_utf8_lossy(&busy).contains(r#""code":"busy""#),
        "busy: {busy:02x?}"
    );
    e.octets_out += busy.len() as u64;

    a.shutdown(Shutdown::Write).expect("half-close");
    assert!(read_to_end(&mut a).is_empty(), "a clean close");
    wait_until(&idle);

    let mut c = connect(addr);
    c.write_all(&[0, 0, 0, 1]).expect("write prefix");
    let error = read_to_end(&mut c);
    assert!(
        String::from_utf8_lossy(&error).contains(r#""code":"header_len_too_small""#),
        "{error:02x?}"
    );
    e.octets_in += 4;
    e.octets_out += error.len() as u64;
    wait_until(&idle);

    e.connections_total = 2;
    e.busy = 1;
    e.frames_in = 2;
    e.frames_out = 4;
    e.connection_errors = 2;
    e.refusals = 1;
    e.errors = vec![("header_len_too_small", 1), ("busy", 1), ("bad_request", 1)];
    e
}

/// A fake server's answer to one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// The request's own octets.
    Echo,
    /// These octets.
    Send(Vec<u8>),
}

/// A fake server for one connection: for each scripted [`Reply`] it reads one whole request
/// and answers; then it reads until the client closes. [`join`](Self::join) tells how many
/// requests it received in all.
#[derive(Debug)]
pub struct ScriptedServer {
    /// Where it listens.
    pub addr: SocketAddr,
    thread: JoinHandle<usize>,
}

impl ScriptedServer {
    /// Starts it on an ephemeral loopback port.
    pub fn start(replies: Vec<Reply>) -> ScriptedServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let thread = thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let _ = s.set_read_timeout(Some(WAIT));
            let mut decoder = Decoder::new();
            let mut buf = BytesMut::new();
            let mut requests = 0;
            let mut replies = replies.into_iter();
            loop {
                let before = buf.clone();
                match decoder.decode(&mut buf) {
                    Ok(Some(_)) => {
                        requests += 1;
                        let used = before.len() - buf.len();
                        let out = match replies.next() {
                            Some(Reply::Echo) => before.get(..used).unwrap_or_default().to_vec(),
                            Some(Reply::Send(b)) => b,
                            None => Vec::new(),
                        };
                        if s.write_all(&out).is_err() {
                            break;
                        }
                        continue;
                    }
                    Ok(None) => {}
                    Err(_) => break,
                }
                let mut chunk = [0u8; 4096];
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                }
            }
            requests
        });
        ScriptedServer { addr, thread }
    }

    /// Waits for the client to close; the number of requests received.
    pub fn join(self) -> usize {
        self.thread.join().expect("the scripted server")
    }
}

fn frame(header: &[u8], body: &[u8]) -> Vec<u8> {
    let mut f = (header.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(header);
    f.extend_from_slice(body);
    f
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    let _ = s.set_read_timeout(Some(WAIT));
    s
}

/// Reads exactly `n` whole frames; their octets.
fn read_frames(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::new();
    let mut all = Vec::new();
    let mut got = 0;
    while got < n {
        if decoder.decode(&mut buf).expect("a valid reply").is_some() {
            got += 1;
            continue;
        }
        let mut chunk = [0u8; 4096];
        let k = s.read(&mut chunk).expect("read a reply");
        assert!(k > 0, "closed before {n} frame(s)");
        all.extend_from_slice(&chunk[..k]);
        buf.extend_from_slice(&chunk[..k]);
    }
    assert!(buf.is_empty(), "octets after {n} frame(s)");
    all
}

fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    match s.read_to_end(&mut all) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("reading to the end: {e}"),
    }
    all
}

fn wait_until(idle: &impl Fn() -> bool) {
    let end = Instant::now() + WAIT;
    while !idle() {
        assert!(Instant::now() < end, "the server kept a connection open");
        thread::sleep(Duration::from_millis(5));
    }
}
