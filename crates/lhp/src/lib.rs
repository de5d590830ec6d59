//! # lhp: the command-line program for LHP/1
//!
//! The `lhp` binary is a thin front end over this library:
//!
//! * [`decode::decode_stream`] (`lhp decode`) prints one JSON line per frame of a recorded stream,
//!   in constant memory however large the bodies are, and reports the first protocol error
//!   with its code and absolute offset.
//! * [`encode::write_frame`] (`lhp encode`) writes one frame from a JSON header and an optional body.
//! * [`serve`] (`lhp serve`) serves the application messages of `spec/lhp-app.md` (`put`,
//!   `get`, `stat`, `list`, allowed `exec`, `echo`) from a directory, on the tokio engine
//!   ([`tokio_serve`]) or the blocking one ([`files`]); names from the network are confined to
//!   the root by [`names`].
//! * [`client`] (`lhp put`, `get`, `ls`, `exec`) is the client side, with digests checked end
//!   to end and resumable transfers.
//! * [`demo`] (`lhp demo`) runs a server and a client in one process and checks every step.
//! * [`log`] sets up the program's logging (`RUST_LOG`, `--log-format text|json`, on stderr).
//! * [`udp`] (`lhp udp serve`, `lhp udp send`, `lhp chat`): the seeds' UDP programs over
//!   LHP/UDP (`spec/lhp-udp.md`), one frame per datagram.
//!
//! ```
//! use lhp::decode::{decode_stream, DecodeOptions};
//! use lhp::encode::encode_frame;
//!
//! // Encode a frame, then decode it again: one JSON line with its offset and body digest.
//! let mut wire = Vec::new();
//! encode_frame(r#"{"kind":"echo"}"#, &b"hello"[..], 5, &Default::default(), &mut wire).unwrap();
//! let mut out = Vec::new();
//! let end = decode_stream(&wire[..], &DecodeOptions::default(), &mut out).unwrap();
//! assert!(end.error.is_none());
//! let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
//! assert_eq!(line["offset"], 0);
//! assert_eq!(line["header"]["kind"], "echo");
//! assert_eq!(line["body_len"], 5);
//! assert_eq!(
//!     line["body_sha256"],
//!     "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
//! );
//! ```

#![warn(missing_docs)]

pub mod app;
pub mod client;
pub mod decode;
pub mod demo;
pub mod encode;
pub mod exec;
pub mod files;
pub mod log;
pub mod names;
pub mod serve;
pub mod tokio_serve;
pub mod transfer;
pub mod udp;
