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
//! - [`Server`]: `SO_REUSEADDR`, an explicit listen backlog (1024), a thread per connection up
//!   to a maximum (excess connections get an `error` frame `busy`), idle, frame and reply
//!   deadlines, graceful shutdown. A peer that breaks the protocol gets the best-effort `error`
//!   frame of §7 and is disconnected; the others are not affected.
//! - [`Client`]: connect with a timeout, request/reply, streaming upload and download.
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
//! ## Deadlines
//!
//! A per-read timeout alone lets a peer that sends one octet every few seconds hold a thread
//! forever. The server instead gives each frame a deadline: once its first octet arrives, the
//! head must be complete within `read_timeout`, and the body must keep up a pace of
//! [`PROGRESS_WINDOW`] octets per `read_timeout` (64 KiB per 30 s by default). Replies have the
//! same rule with `write_timeout`. Between frames, `idle_timeout` applies and the connection is
//! closed quietly.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod error;
mod reader;
mod server;
mod writer;

pub use client::{Client, ClientConfig};
pub use error::Error;
pub use reader::{Body, FrameReader};
pub use server::{
    Config, EchoHandler, Handler, Replies, Request, RequestBody, Server, ServerThread,
    ShutdownHandle,
};
pub use writer::{sha256_of, FrameWriter};
