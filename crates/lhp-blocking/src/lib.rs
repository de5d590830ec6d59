//! # lhp-blocking: LHP/1 over `std::net`
//!
//! A thin shell over [`lhp_codec`]: it moves bytes, owns buffers, timeouts and threads, and
//! makes no protocol decision of its own.
//!
//! - [`FrameReader`]: whole frames, or a head and then the body as a [`std::io::Read`] (a
//!   100 GiB upload passes through in constant memory).
//! - [`FrameWriter`]: prefix, header and body in one write (a vectored one for bodies over
//!   4 KiB, so the body is never copied; smaller ones are copied behind the head and sent
//!   with one plain write, which is cheaper on Linux); bodies streamed from any
//!   `Read`; `sha256` digests computed on the way or in two passes over a file.
//! - [`Server`]: `SO_REUSEADDR`, an explicit listen backlog, a thread per connection up to
//!   `max_connections` (one more gets `busy`), driving the sans-IO connection layer.
//! - [`Client`]: connect with a timeout, request/reply, streaming upload and download.
//! - [`udp`]: LHP/1 over UDP (`spec/lhp-udp.md`): [`udp::UdpServer`] and [`udp::UdpClient`],
//!   one frame per datagram, fixed memory, rate limits and the amplification bound.
//!
//! ## Your own struct as the header
//!
//! [`FrameWriter::write_typed`] serializes any `serde::Serialize` header straight into its
//! buffer (`body_len` filled in, checked as a receiver checks it);
//! [`FrameReader::read_frame_ref`] lends out each frame from the read buffer, validated but not
//! built, and `frame.header::<T>()` deserializes it borrowed. Nothing is allocated per frame in
//! steady state (`tests/typed.rs` counts).
//!
//! ```
//! use lhp_blocking::{FrameReader, FrameWriter};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Upload<'a> { kind: &'a str, id: u64, name: &'a str }
//!
//! let mut w = FrameWriter::new(Vec::new());
//! for id in 0..3 {
//!     w.write_typed(&Upload { kind: "put", id, name: "a.txt" }, b"data").unwrap();
//! }
//! let mut r = FrameReader::new(&w.get_ref()[..]);
//! while let Some(f) = r.read_frame_ref().unwrap() {
//!     let up: Upload<'_> = f.header().unwrap();
//!     assert_eq!((up.name, f.body()), ("a.txt", &b"data"[..]));
//! }
//! ```
//!
//! ## Replacing a `socketserver` program
//!
//! The Python tutorials this protocol fixes pair `socketserver.ThreadingTCPServer` with
//! hand-written `recv` loops that break when TCP splits or joins messages. The same server,
//! correct under any split, with limits and timeouts:
//!
//! ```
//! use lhp_blocking::{Client, Config, Server};
//! use lhp_codec::{Frame, Header};
//!
//! fn main() -> Result<(), lhp_blocking::Error> {
//!     // Upper-case every body; answer unknown kinds with an error frame.
//!     let handler = |frame: Frame| -> Option<Frame> {
//!         let mut reply = Header::with_kind("upper");
//!         if let Some(id) = frame.header.id() {
//!             reply.set_id(id);
//!         }
//!         Some(Frame::new(reply, frame.body.to_ascii_uppercase().into()))
//!     };
//!     let server = Server::bind("127.0.0.1:0", Config::new(), handler)?.spawn()?;
//!
//!     let mut client = Client::connect(server.local_addr())?;
//!     let mut ask = Header::with_kind("upper");
//!     ask.set_id(1);
//!     let reply = client.request(&Frame::new(ask, "hello, 粘包".into()))?;
//!     assert_eq!(reply.header.id(), Some(1));
//!     assert_eq!(&reply.body[..], "HELLO, 粘包".as_bytes());
//!     server.shutdown()
//! }
//! ```
//!
//! `examples/echo_server.rs` is the echo server of §8 as a program.
//!
//! ## Deadlines, error frames, echo: the connection layer
//!
//! Every connection rule (§7.2 error frames and close, §8 echo, §11.2 deadlines, `busy`,
//! half-close, graceful shutdown) is made by the sans-IO [`lhp_codec::conn::Connection`]; the
//! server here only moves octets and time between it and a `TcpStream`. The deadlines are
//! [`Config`]'s (decisions E4): `idle_timeout` between requests, `read_timeout` for a frame's
//! head and `read_timeout + body_len / min_body_rate` for its body, `write_timeout` without
//! progress; the same type, defaults and meanings as in `lhp-tokio`.
//!
//! ## The same API in both engines
//!
//! | | `lhp-blocking` | `lhp-tokio` |
//! |---|---|---|
//! | settings | [`Config`] (= `lhp_codec::conn::Config`) | `Config` (the same type) |
//! | server | `Server::bind(addr, Config, handler)`, `run()` / `spawn()` | `Server::bind(addr, Config, handler)`, `run().await` |
//! | handler | [`Handler::handle`]`(Request, &mut Replies) -> Result` | `Handler::handle(Request, &mut Replies)` async |
//! | whole-frame handler | `Fn(Frame) -> Option<Frame>` | `Fn(Frame) -> impl Future<Output = Option<Frame>>` |
//! | echo server | [`EchoHandler`] | `EchoHandler` |
//! | request | [`Request`]: `head()`, `peer_addr()`, `body()`, `into_frame()`, `into_parts()` | the same (`into_frame().await`) |
//! | request body | [`RequestBody`]: `chunk()`, `Read` | `RequestBody`: `chunk().await` |
//! | replies | [`Replies`]: `send`, `send_stream(header, body)` (digest verified), `error(code, message)` | the same, async |
//! | stop | [`ShutdownHandle::shutdown`] | `CancellationToken::cancel` |
//! | counters | [`Server::stats`], [`ServerThread::stats`]: `Arc<`[`Stats`](lhp_codec::conn::Stats)`>`, `.snapshot()` | `Server::stats()`: the same type |
//! | client | [`Client`]: `request`, `send`, `recv`, `recv_head`, `upload` (one request at a time) | `Client`: `request(frame).await` (pipelined, matched by `id`) |
//! | refusal received (error frame without `offset`) | [`Error::Refused`]`(Box<PeerError>)`: the connection goes on | `Error::Refused(Box<PeerError>)` |
//! | connection error received (with `offset`) | [`Error::Peer`]`(Box<PeerError>)`: this and every later call fails so | `Error::Peer(Box<PeerError>)` |
//!
//! [`Error::code`] gives an unregistered code as `internal` (decisions E2); the classification
//! is [`PeerError::from_header`](lhp_codec::conn::PeerError::from_header)'s, in the codec.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod error;
mod reader;
mod server;
pub mod udp;
mod writer;

pub use client::{Client, ClientConfig};
pub use error::Error;
pub use reader::{Body, FrameReader};
pub use server::{
    Config, EchoHandler, Handler, Replies, Request, RequestBody, Server, ServerThread,
    ShutdownHandle,
};
pub use writer::{sha256_of, FrameWriter};
