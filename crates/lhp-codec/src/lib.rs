//! # lhp-codec: the sans-IO reference codec for LHP/1
//!
//! LHP/1, the Length-Header Protocol, frames messages over a byte stream such as TCP, which
//! has no message boundaries of its own (the "sticky packet" problem). Each frame is:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |            H: header length (unsigned, big-endian)            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |        header: H octets of UTF-8 JSON object (I-JSON) ...     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |        body: `body_len` octets (from the header) ...          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The normative definition is `spec/lhp-1.md`; section numbers in these docs refer to it.
//!
//! This crate does no IO: no sockets, threads, clocks or runtimes. You feed the [`Decoder`]
//! the bytes you read, however they were split, and it hands back [`Frame`]s (or, for bodies
//! larger than memory, a stream of [`Event`]s). The [`Encoder`] writes the prefix and header
//! into a buffer and leaves the body as its own `Bytes` for one vectored write. The blocking
//! and tokio crates are thin shells over these two types.
//!
//! ```
//! use bytes::BytesMut;
//! use lhp_codec::{Decoder, Encoder, Frame, Header};
//!
//! // Encode two frames back to back: what a peer's two quick writes become on the wire.
//! let mut wire = BytesMut::new();
//! let enc = Encoder::new();
//! let mut first = Header::with_kind("echo");
//! first.set_id(1).insert("note", "你好");
//! enc.encode(&Frame::new(first, "hello".into()), &mut wire).unwrap();
//! enc.encode(&Frame::new(Header::with_kind("echo"), "world".into()), &mut wire).unwrap();
//!
//! // The receiver gets them in arbitrary pieces: here 3 bytes, then everything else.
//! let mut dec = Decoder::new();
//! let mut buf = wire.split_to(3);
//! assert_eq!(dec.decode(&mut buf).unwrap(), None); // incomplete is never an error
//! buf.unsplit(wire);
//! let a = dec.decode(&mut buf).unwrap().unwrap();
//! let b = dec.decode(&mut buf).unwrap().unwrap();
//! assert_eq!((a.header.id(), &a.body[..]), (Some(1), &b"hello"[..]));
//! assert_eq!(a.header.get("note").and_then(|v| v.as_str()), Some("你好"));
//! assert_eq!(&b.body[..], b"world");
//! assert_eq!(dec.decode(&mut buf).unwrap(), None);
//! dec.finish(&buf).unwrap(); // the stream may end here: between frames
//! ```
//!
//! Your own `serde` type can be the header: [`Encoder::encode_typed`] serializes it straight
//! into the output buffer (no `serde_json::Value` in between), fills in `body_len` and applies
//! every rule a receiver checks; [`Decoder::decode_ref`] (borrowing the caller's buffer) and
//! [`Decoder::decode_raw`] (splitting a [`RawFrame`] off a `BytesMut`) validate the header
//! without building a [`Header`], and [`FrameRef::header`] / [`RawFrame::header`] deserialize
//! it borrowed from the header octets:
//!
//! ```
//! use bytes::BytesMut;
//! use lhp_codec::{Decoder, Encoder};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Upload<'a> {
//!     kind: &'a str,
//!     id: u64,
//!     name: &'a str,
//! }
//!
//! let mut wire = BytesMut::new();
//! let up = Upload { kind: "put", id: 1, name: "a.txt" };
//! Encoder::new().encode_typed(&up, b"hello", &mut wire).unwrap();
//!
//! let mut dec = Decoder::new();
//! let frame = dec.decode_ref(&wire).unwrap().unwrap(); // validated (§4), borrowed
//! assert_eq!(frame.header::<Upload<'_>>().unwrap(), up); // `&str` fields borrow the header
//! assert_eq!(frame.body(), b"hello");
//!
//! // A header that does not fit the type is a typed error naming the member.
//! #[derive(Deserialize, Debug)]
//! struct Wrong { id: String }
//! let err = frame.header::<Wrong>().unwrap_err();
//! assert_eq!(err.member(), Some("id"));
//! ```
//!
//! Every header is checked completely (§4: UTF-8, JSON syntax, no duplicate names at any
//! depth, integers within ±(2^53−1), the registered members' types) before its frame is
//! delivered. Headers as peers send them (a flat object of strings, integers, booleans and
//! `null`) are checked in one pass over the text without building a map; the members are
//! parsed only if asked for, and an unchanged received header is sent on as it arrived.
//! Anything else, and every error, goes through the general parser, so errors are the same
//! either way.
//!
//! Errors name the rule, the spec section and the absolute byte offset:
//!
//! ```
//! use bytes::BytesMut;
//! use lhp_codec::Decoder;
//!
//! let mut buf = BytesMut::from(&b"\x00\x00\x00\x0d{\"a\":1,\"a\":2}"[..]);
//! let err = Decoder::new().decode(&mut buf).unwrap_err();
//! assert_eq!((err.code(), err.offset()), ("duplicate_member", 4));
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

mod canon;
mod caps;
pub mod conn;
pub mod datagram;
mod decoder;
mod encoder;
mod error;
mod fast;
mod header;
mod json;
mod members;
mod typed;

/// Test support shared by the unit tests of every module.
#[cfg(test)]
mod test_support {
    /// The number of cases a property test runs: `PROPTEST_CASES` when set (the mutation run of
    /// `scripts/mutants.sh` lowers it), else the test's own `default`.
    pub(crate) fn proptest_cases(default: u32) -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    }
}

pub use caps::{MAX_DEPTH, MAX_MEMBERS, MAX_NUMBER_LEN};
pub use decoder::{Decoder, Event, MIN_HEADER_LEN, PREFIX_LEN};
pub use encoder::Encoder;
pub use error::{DecodeError, DecodeErrorKind, EncodeError, Part};
pub use header::{hex_lower, Header, MAX_SAFE_INTEGER, REGISTERED};
pub use typed::{FrameRef, FrameSpan, RawFrame, TypedError};

/// Re-exported so users can build header members without naming `serde_json` themselves.
pub use serde_json::{Map, Value};

/// A whole frame: its header and its body.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    /// The header.
    pub header: Header,
    /// The body, `header.body_len()` octets.
    pub body: Bytes,
}

impl Frame {
    /// A frame with `body`, its header's body length set to match (§4.4).
    pub fn new(mut header: Header, body: Bytes) -> Self {
        header.set_body_len(body.len() as u64);
        Frame { header, body }
    }

    /// A frame with `body` for `profile`, its header's body length members set to match
    /// (see [`Header::set_body_len_for`]).
    pub fn with_profile(profile: Profile, mut header: Header, body: Bytes) -> Self {
        header.set_body_len_for(profile, body.len() as u64);
        Frame { header, body }
    }

    /// The reply an `echo` server sends (§8): the same members and the same body.
    pub fn echo_reply(&self) -> Frame {
        self.clone()
    }
}

/// The wire dialect (§3.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Profile {
    /// LHP/1 proper: unsigned big-endian prefix, `body_len`, `sha256`.
    #[default]
    Lhp1,
    /// The format of the seeds' Python programs: `struct.pack('i', n)` (signed little-endian)
    /// prefix, body length in `file_size` or `total_size`, `md5` digests.
    SeedCompat,
}

impl Profile {
    /// The profile's name as the spec and the command line write it.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Lhp1 => "lhp1",
            Profile::SeedCompat => "seed-compat",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown profile name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownProfile(pub String);

impl fmt::Display for UnknownProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown profile {:?} (expected lhp1 or seed-compat)",
            self.0
        )
    }
}

impl std::error::Error for UnknownProfile {}

impl FromStr for Profile {
    type Err = UnknownProfile;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "lhp1" => Ok(Profile::Lhp1),
            "seed-compat" => Ok(Profile::SeedCompat),
            other => Err(UnknownProfile(other.to_owned())),
        }
    }
}

/// What a receiver accepts (§5). Checked before any buffer is sized from a peer's claim.
///
/// ```
/// use lhp_codec::Limits;
///
/// let limits = Limits::new().with_max_header_len(1024).with_max_body_len(1 << 40);
/// assert_eq!(limits.max_header_len(), 1024);
/// assert_eq!(Limits::default().max_body_len(), 64 << 20);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Limits {
    max_header_len: u32,
    max_body_len: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new()
    }
}

impl Limits {
    /// The default `max_header_len`: 64 KiB.
    pub const DEFAULT_MAX_HEADER_LEN: u32 = 64 << 10;
    /// The default `max_body_len`: 64 MiB.
    pub const DEFAULT_MAX_BODY_LEN: u64 = 64 << 20;

    /// The defaults: 64 KiB headers, 64 MiB bodies.
    pub const fn new() -> Self {
        Limits {
            max_header_len: Self::DEFAULT_MAX_HEADER_LEN,
            max_body_len: Self::DEFAULT_MAX_BODY_LEN,
        }
    }

    /// Sets the largest header accepted, in octets.
    pub const fn with_max_header_len(mut self, max: u32) -> Self {
        self.max_header_len = max;
        self
    }

    /// Sets the largest body accepted, in octets (capped at 2^53−1, the largest `body_len`).
    pub const fn with_max_body_len(mut self, max: u64) -> Self {
        self.max_body_len = if max > MAX_SAFE_INTEGER {
            MAX_SAFE_INTEGER
        } else {
            max
        };
        self
    }

    /// The largest header accepted.
    pub const fn max_header_len(&self) -> u32 {
        self.max_header_len
    }

    /// The largest body accepted.
    pub const fn max_body_len(&self) -> u64 {
        self.max_body_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// §3.3: the profiles are named `lhp1` and `seed-compat` on the command line and in vectors;
    /// a name parses back to its profile, and an unknown name says what was expected.
    #[test]
    fn profile_names_round_trip() {
        for (p, name) in [
            (Profile::Lhp1, "lhp1"),
            (Profile::SeedCompat, "seed-compat"),
        ] {
            assert_eq!(p.name(), name);
            assert_eq!(p.to_string(), name);
            assert_eq!(name.parse::<Profile>(), Ok(p));
        }
        let e = "lhp2".parse::<Profile>().unwrap_err();
        assert_eq!(e, UnknownProfile("lhp2".into()));
        assert_eq!(
            e.to_string(),
            "unknown profile \"lhp2\" (expected lhp1 or seed-compat)"
        );
    }

    /// §4.4, §3.3: a frame built for a profile carries its body and that profile's body
    /// length members; an echo reply (§8) is the request's members and body.
    #[test]
    fn frames_carry_their_body_length_and_echo_replies_are_the_request() {
        for profile in [Profile::Lhp1, Profile::SeedCompat] {
            let mut h = Header::with_kind("echo");
            h.insert("x", 1);
            let f = Frame::with_profile(profile, h, Bytes::from_static(b"abc"));
            assert_eq!(f.header.body_len(), 3);
            assert_eq!(f.header.get("x"), Some(&Value::from(1)));
            assert_eq!(&f.body[..], b"abc");
            let reply = f.echo_reply();
            assert_eq!(reply, f);
            assert_eq!(&reply.body[..], b"abc");
        }
    }

    /// §5: a body limit above 2^53−1 (the largest `body_len`) is capped there; others are kept.
    #[test]
    fn body_limit_is_capped_at_the_largest_body_len() {
        assert_eq!(
            Limits::new().with_max_body_len(u64::MAX).max_body_len(),
            MAX_SAFE_INTEGER
        );
        assert_eq!(
            Limits::new()
                .with_max_body_len(MAX_SAFE_INTEGER + 1)
                .max_body_len(),
            MAX_SAFE_INTEGER
        );
        assert_eq!(Limits::new().with_max_body_len(7).max_body_len(), 7);
        assert_eq!(Limits::new().with_max_header_len(9).max_header_len(), 9);
        assert_eq!(Limits::default().max_header_len(), 64 << 10);
        assert_eq!(Limits::default().max_body_len(), 64 << 20);
    }
}
