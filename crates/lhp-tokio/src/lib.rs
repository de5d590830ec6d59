//! # lhp-tokio: LHP/1 on tokio
//!
//! LHP/1 frames are a 4-octet length prefix, a JSON header and a body (`spec/lhp-1.md`):
//!
//! ```text
//! +----------------+----------------------------+---------------------------+
//! | H (4 octets)   | header: H octets of JSON   | body: `body_len` octets   |
//! +----------------+----------------------------+---------------------------+
//! ```
//!
//! This crate moves those frames over tokio IO. Every protocol decision is made once, in the
//! sans-IO [`lhp_codec`]; here are only buffers, tasks and timeouts:
//!
//! - [`LhpCodec`]: a `tokio_util::codec` `Decoder` + `Encoder`, so
//!   `Framed::new(tcp, LhpCodec::new())` is a `Stream` and a `Sink` of [`Frame`]s.
//! - [`FrameReader`] / [`FrameWriter`]: bodies larger than memory, streamed as an `AsyncRead`
//!   in both directions; whole frames written as one vectored write with no copy of the body.
//! - [`Server`]: listen backlog, connection limit (`busy`), graceful shutdown by a
//!   `CancellationToken`, a [`Handler`] per request ([`Replies`] for any number of replies,
//!   whole or streamed), and the [`EchoHandler`] (§8) — driving the sans-IO connection layer.
//! - [`udp`]: LHP/1 over UDP (`spec/lhp-udp.md`): [`udp::UdpServer`] and [`udp::UdpClient`],
//!   one frame per datagram, fixed memory, rate limits and the amplification bound.
//! - [`Client`]: connect with a timeout, requests pipelined on one connection, replies
//!   matched by `id`.
//! - [`RawCodec`] / [`TypedCodec`]: your own `#[derive(Serialize, Deserialize)]` struct as
//!   the header. `Framed::new(tcp, RawCodec::new())` sends `(header, body)` pairs (serialized
//!   straight into the write buffer, `body_len` filled in, checked as a receiver checks it) and
//!   yields [`RawFrame`](lhp_codec::RawFrame)s, validated but not built, whose
//!   `header::<T>()` borrows from the frame; `TypedCodec<T>` yields `(T, Bytes)`.
//!   [`FrameReader::read_frame_ref`] and [`FrameWriter::write_typed`] do the same without
//!   `Framed`.
//!
//! ```
//! use futures::{SinkExt, StreamExt};
//! use lhp_tokio::RawCodec;
//! use serde::{Deserialize, Serialize};
//! use tokio_util::codec::Framed;
//!
//! #[derive(Serialize, Deserialize)]
//! struct Upload<'a> { kind: &'a str, id: u64, name: &'a str }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), lhp_tokio::Error> {
//! let (a, b) = tokio::io::duplex(1024);
//! let (mut tx, mut rx) = (Framed::new(a, RawCodec::new()), Framed::new(b, RawCodec::new()));
//! tx.send((Upload { kind: "put", id: 1, name: "a.txt" }, &b"hello"[..])).await?;
//! let frame = rx.next().await.expect("a frame")?;
//! let up: Upload<'_> = frame.header()?;
//! assert_eq!((up.id, up.name, &frame.body()[..]), (1, "a.txt", &b"hello"[..]));
//! # Ok(()) }
//! ```
//!
//! ```
//! use futures::{SinkExt, StreamExt};
//! use lhp_codec::{Frame, Header};
//! use lhp_tokio::{Config, EchoHandler, LhpCodec, Server};
//! use tokio_util::codec::Framed;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), lhp_tokio::Error> {
//! // An echo server on an ephemeral loopback port.
//! let server = Server::bind("127.0.0.1:0", Config::new(), EchoHandler::new())?;
//! let (addr, stop) = (server.local_addr(), server.shutdown_token());
//! let running = tokio::spawn(server.run());
//!
//! // A tokio-util `Framed` talking to it: encode, send, receive, decode.
//! let tcp = tokio::net::TcpStream::connect(addr).await?;
//! let mut framed = Framed::new(tcp, LhpCodec::new());
//! let mut header = Header::with_kind("echo");
//! header.set_id(7).insert("note", "你好");
//! framed.send(Frame::new(header.clone(), "hello".into())).await?;
//! let reply = framed.next().await.expect("a reply")?;
//! assert_eq!(reply.header.members(), Frame::new(header, "hello".into()).header.members());
//! assert_eq!(&reply.body[..], b"hello");
//!
//! stop.cancel();
//! running.await.expect("server task")?;
//! # Ok(()) }
//! ```
//!
//! # The connection layer, and the same API as `lhp-blocking`
//!
//! Every connection rule (§7.2, §8, §11.2, `busy`, half-close, shutdown) is made by the sans-IO
//! [`lhp_codec::conn::Connection`]; [`Server`] only moves octets and time between it and a
//! `TcpStream`. The names match `lhp-blocking` (the table is in its crate root):
//!
//! | | `lhp-tokio` | `lhp-blocking` |
//! |---|---|---|
//! | settings | [`Config`] (= `lhp_codec::conn::Config`) | `Config` (the same type) |
//! | server | `Server::bind(addr, Config, handler)`, `run().await` | `Server::bind(addr, Config, handler)`, `run()` / `spawn()` |
//! | handler | [`Handler::handle`]`(Request, &mut Replies)` async | `Handler::handle(Request, &mut Replies)` |
//! | echo server | [`EchoHandler`] | `EchoHandler` |
//! | request / body | [`Request`], [`RequestBody::chunk`] | `Request`, `RequestBody` (`chunk`, `Read`) |
//! | replies | [`Replies`]: `send`, `send_stream(header, body)` (digest verified), `error(code, message)` | the same, blocking |
//! | counters | [`Server::stats`]: `Arc<`[`Stats`](lhp_codec::conn::Stats)`>`, `.snapshot()` | `Server::stats()`, `ServerThread::stats()`: the same type |
//! | client | [`Client`]: `request(frame).await` (pipelined, matched by `id`) | `Client`: `request`, `send`, `recv`, `recv_head`, `upload` |
//! | refusal received (error frame without `offset`) | [`Error::Refused`]`(Box<PeerError>)`: the connection goes on | `Error::Refused(Box<PeerError>)` |
//! | connection error received (with `offset`) | [`Error::Peer`]`(Box<PeerError>)`: every request in flight and every later one fails so | `Error::Peer(Box<PeerError>)` |
//!
//! [`Error::code`] gives an unregistered code as `internal` (decisions E2); the classification
//! is [`PeerError::from_header`](lhp_codec::conn::PeerError::from_header)'s, in the codec.
//!
//! Throughput figures live in `docs/performance.md` (measured side by side with `lhp-bench`).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod codec;
mod server;
mod stream;
pub mod udp;

pub use client::{Client, ClientConfig};
pub use codec::{Error, LhpCodec, RawCodec, TypedCodec};
pub use server::{
    Config, Connections, EchoHandler, Handler, Replies, Request, RequestBody, Server,
};
pub use stream::{write_all_vectored, Body, FrameReader, FrameWriter};

pub use lhp_codec::{self, Frame, Header, Limits, Profile};
pub use tokio_util::sync::CancellationToken;
