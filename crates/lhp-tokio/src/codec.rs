//! [`LhpCodec`]: LHP/1 as a `tokio_util::codec` [`Decoder`] and [`Encoder`], for
//! [`Framed`](tokio_util::codec::Framed), [`FramedRead`](tokio_util::codec::FramedRead) and
//! [`FramedWrite`](tokio_util::codec::FramedWrite).
//!
//! Every protocol decision is the sans-IO codec's ([`lhp_codec::Decoder`],
//! [`lhp_codec::Encoder`]); this adapter only sizes the read buffer and maps errors.
//!
//! # Buffer growth
//!
//! `LengthDelimitedCodec` reserves the whole declared length as soon as it has read a prefix
//! (tokio issue #333), so a peer that sends a few prefixes pins memory it never fills. This
//! codec reserves only `min(wanted, max(8 KiB, buffered))`: each reservation is at most what
//! has already arrived, so the buffer grows with the octets received (within the small
//! factor of `Vec`'s amortised growth), never with the octets declared.
//!
//! ```text
//!   declared: 64 MiB body      reserved after each read (buffered octets → capacity)
//!   prefix + header (40 B)  →  8 KiB
//!   8 KiB of body           →  16 KiB
//!   16 KiB of body          →  32 KiB     ... in step with what arrived
//! ```

use std::io;

use bytes::BytesMut;
use lhp_codec::conn::{ErrorClass, PeerError};
use lhp_codec::{DecodeError, EncodeError, Frame, Limits, Profile, RawFrame, TypedError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_util::codec::{Decoder, Encoder};

/// The smallest read-buffer reservation, and the unit a buffer grows from.
pub(crate) const READ_CHUNK: usize = 8 << 10;

/// An error from a tokio LHP stream: an IO error, a decode error (the peer broke LHP/1; the
/// stream is over), an encode error (the caller asked for a frame LHP/1 cannot carry), a
/// timeout, or a closed connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed.
    #[error("io error: {0}")]
    Io(#[from] io::Error),
    /// The peer broke a rule of LHP/1 (§7); the stream is over.
    #[error("{0}")]
    Decode(#[from] DecodeError),
    /// The frame cannot be encoded; nothing was written.
    #[error("cannot encode frame: {0}")]
    Encode(#[from] EncodeError),
    /// An operation did not finish in time.
    #[error("timed out {0}")]
    Timeout(&'static str),
    /// The connection closed before the operation finished.
    #[error("connection closed {0}")]
    Closed(&'static str),
    /// A received header does not fit the caller's type (the member is named).
    #[error("{0}")]
    Header(#[from] TypedError),
    /// The server refused this one request: an error frame without `offset` (§7, decisions
    /// E2). The connection goes on.
    #[error("the server refused the request: {0}")]
    Refused(Box<PeerError>),
    /// The server sent a connection error: an error frame with `offset` (`busy`, `timeout`, a
    /// decode error it found in what this side sent). It closes the connection; every request
    /// in flight and every later one on this client fails with the same error.
    #[error("the server closed the connection: {0}")]
    Peer(Box<PeerError>),
}

impl Error {
    /// The snake_case code of this error: the decode error's code, `timeout`, the code the
    /// server sent for [`Refused`](Error::Refused) and [`Peer`](Error::Peer) (an unregistered
    /// one as `internal`, E2), or `internal`.
    pub fn code(&self) -> &str {
        match self {
            Error::Decode(e) => e.code(),
            Error::Timeout(_) => "timeout",
            Error::Refused(p) | Error::Peer(p) => p.known_code(),
            _ => "internal",
        }
    }

    /// The error a received error frame means (E2): [`Refused`](Error::Refused) without
    /// `offset`, [`Peer`](Error::Peer) with it.
    pub fn from_peer(p: PeerError) -> Error {
        match p.class {
            ErrorClass::Connection => Error::Peer(Box::new(p)),
            _ => Error::Refused(Box::new(p)),
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e {
            Error::Io(e) => e,
            Error::Decode(e) => io::Error::new(io::ErrorKind::InvalidData, e),
            Error::Encode(e) => io::Error::new(io::ErrorKind::InvalidInput, e),
            Error::Timeout(_) => io::Error::new(io::ErrorKind::TimedOut, e),
            Error::Closed(_) => io::Error::new(io::ErrorKind::UnexpectedEof, e),
            Error::Header(e) => io::Error::new(io::ErrorKind::InvalidData, e),
            Error::Refused(p) => io::Error::other(*p),
            Error::Peer(p) => io::Error::new(io::ErrorKind::ConnectionAborted, *p),
        }
    }
}

/// LHP/1 for `tokio_util::codec`: decodes [`Frame`]s, encodes [`Frame`]s.
///
/// ```
/// use futures::{SinkExt, StreamExt};
/// use lhp_codec::{Frame, Header};
/// use lhp_tokio::LhpCodec;
/// use tokio_util::codec::Framed;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), lhp_tokio::Error> {
/// let (a, b) = tokio::io::duplex(64);
/// let (mut left, mut right) = (Framed::new(a, LhpCodec::new()), Framed::new(b, LhpCodec::new()));
/// left.send(Frame::new(Header::with_kind("echo"), "hi".into())).await?;
/// let got = right.next().await.unwrap()?;
/// assert_eq!((got.header.kind(), &got.body[..]), (Some("echo"), &b"hi"[..]));
///
/// // A frame cut short: the codec's typed error, with how many octets were missing.
/// drop(left);
/// let (c, d) = tokio::io::duplex(64);
/// tokio::io::AsyncWriteExt::write_all(&mut { c }, b"\0\0\0\x10{\"kind\"").await?;
/// let err = Framed::new(d, LhpCodec::new()).next().await.unwrap().unwrap_err();
/// match err {
///     lhp_tokio::Error::Decode(e) => assert_eq!((e.code(), e.missing()), ("unexpected_eof", Some(9))),
///     other => panic!("{other}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct LhpCodec {
    decoder: lhp_codec::Decoder,
    encoder: lhp_codec::Encoder,
}

impl LhpCodec {
    /// A codec for the `lhp1` profile with default [`Limits`].
    pub fn new() -> Self {
        LhpCodec::default()
    }

    /// A codec for `profile`, decoding under `limits`. The encoder writes headers up to the
    /// same `max_header_len`.
    pub fn with(profile: Profile, limits: Limits) -> Self {
        let mut encoder = lhp_codec::Encoder::with_profile(profile);
        encoder.set_max_header_len(limits.max_header_len());
        LhpCodec {
            decoder: lhp_codec::Decoder::with(profile, limits),
            encoder,
        }
    }

    /// The sans-IO decoder (for example to call `set_verify_digests`).
    pub fn decoder_mut(&mut self) -> &mut lhp_codec::Decoder {
        &mut self.decoder
    }

    /// The sans-IO encoder.
    pub fn encoder_mut(&mut self) -> &mut lhp_codec::Encoder {
        &mut self.encoder
    }
}

impl Decoder for LhpCodec {
    type Item = Frame;
    type Error = Error;

    // Inlined into `Framed`'s `poll_next`, as `RawCodec::decode`, so that the ≈250-octet
    // `Frame` is not copied once more through this function's `Result`/`Option`:
    // typed-tokio-map 3,932 -> 3,878 instructions per frame (callgrind, whole program).
    #[inline]
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, Error> {
        let frame = self.decoder.decode(src)?;
        if frame.is_none() {
            reserve_for(src, self.decoder.wanted(src.len()));
        }
        Ok(frame)
    }

    /// At the end of the stream: a frame cut short is the codec's `unexpected_eof` (with the
    /// number of missing octets), not tokio-util's "bytes remaining on stream".
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, Error> {
        Ok(self.decoder.decode_eof(src)?)
    }
}

impl Encoder<Frame> for LhpCodec {
    type Error = Error;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), Error> {
        Ok(self.encoder.encode(&frame, dst)?)
    }
}

impl Encoder<&Frame> for LhpCodec {
    type Error = Error;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), Error> {
        Ok(self.encoder.encode(frame, dst)?)
    }
}

/// LHP/1 for `tokio_util::codec` with the caller's own header types: decodes [`RawFrame`]s
/// (header validated, §4, but not built; deserialize it borrowed with
/// [`RawFrame::header`]), encodes `(header, body)` pairs where the header is any
/// `T: Serialize` (serialized straight into the write buffer, `body_len` filled in, checked as
/// a receiver checks it).
///
/// ```
/// use futures::{SinkExt, StreamExt};
/// use lhp_tokio::RawCodec;
/// use tokio_util::codec::Framed;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Msg<'a> { kind: &'a str, id: u64 }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), lhp_tokio::Error> {
/// let (a, b) = tokio::io::duplex(64);
/// let (mut left, mut right) = (Framed::new(a, RawCodec::new()), Framed::new(b, RawCodec::new()));
/// left.send((Msg { kind: "echo", id: 1 }, &b"hi"[..])).await?;
/// let frame = right.next().await.unwrap()?;
/// let msg: Msg<'_> = frame.header()?; // borrowed from the frame
/// assert_eq!((msg.kind, msg.id, &frame.body()[..]), ("echo", 1, &b"hi"[..]));
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct RawCodec {
    decoder: lhp_codec::Decoder,
    encoder: lhp_codec::Encoder,
}

impl RawCodec {
    /// A codec for the `lhp1` profile with default [`Limits`].
    pub fn new() -> Self {
        RawCodec::default()
    }

    /// A codec for `profile`, decoding under `limits`; the encoder writes headers up to the
    /// same `max_header_len`.
    pub fn with(profile: Profile, limits: Limits) -> Self {
        let mut encoder = lhp_codec::Encoder::with_profile(profile);
        encoder.set_max_header_len(limits.max_header_len());
        RawCodec {
            decoder: lhp_codec::Decoder::with(profile, limits),
            encoder,
        }
    }

    /// The sans-IO decoder (for example to call `set_verify_digests`).
    pub fn decoder_mut(&mut self) -> &mut lhp_codec::Decoder {
        &mut self.decoder
    }
}

impl Decoder for RawCodec {
    type Item = RawFrame;
    type Error = Error;

    // Inlined into `Framed`'s `poll_next` (with `Decoder::decode_raw`), so that the frame
    // (≈220 octets with its member table) is built where `Framed` keeps it instead of being
    // copied through each `Result`/`Option` on the way: typed-tokio 4,286 -> 3,984
    // instructions per frame (callgrind, whole program).
    #[inline]
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<RawFrame>, Error> {
        let frame = self.decoder.decode_raw(src)?;
        if frame.is_none() {
            reserve_for(src, self.decoder.wanted(src.len()));
        }
        Ok(frame)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<RawFrame>, Error> {
        match self.decoder.decode_raw(src)? {
            Some(frame) => Ok(Some(frame)),
            None => Ok(self.decoder.finish(src).map(|()| None)?),
        }
    }
}

impl<H: Serialize, B: AsRef<[u8]>> Encoder<(H, B)> for RawCodec {
    type Error = Error;

    fn encode(&mut self, (header, body): (H, B), dst: &mut BytesMut) -> Result<(), Error> {
        Ok(self.encoder.encode_typed(&header, body.as_ref(), dst)?)
    }
}

/// [`RawCodec`] that also deserializes each header into an owned `T`: yields
/// `(T, Bytes)` pairs (the body shared with the read buffer, not copied). For borrowed
/// headers, use [`RawCodec`] and [`RawFrame::header`].
#[derive(Debug)]
pub struct TypedCodec<T> {
    raw: RawCodec,
    _header: std::marker::PhantomData<fn() -> T>,
}

impl<T> Default for TypedCodec<T> {
    fn default() -> Self {
        TypedCodec::from_raw(RawCodec::new())
    }
}

impl<T> TypedCodec<T> {
    /// A codec for the `lhp1` profile with default [`Limits`].
    pub fn new() -> Self {
        TypedCodec::default()
    }

    /// A typed codec around a configured [`RawCodec`].
    pub fn from_raw(raw: RawCodec) -> Self {
        TypedCodec {
            raw,
            _header: std::marker::PhantomData,
        }
    }
}

impl<T: DeserializeOwned> Decoder for TypedCodec<T> {
    type Item = (T, bytes::Bytes);
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Error> {
        match self.raw.decode(src)? {
            Some(f) => Ok(Some((f.header::<T>()?, f.into_body()))),
            None => Ok(None),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Error> {
        match self.raw.decode_eof(src)? {
            Some(f) => Ok(Some((f.header::<T>()?, f.into_body()))),
            None => Ok(None),
        }
    }
}

impl<T, H: Serialize, B: AsRef<[u8]>> Encoder<(H, B)> for TypedCodec<T> {
    type Error = Error;

    fn encode(&mut self, item: (H, B), dst: &mut BytesMut) -> Result<(), Error> {
        self.raw.encode(item, dst)
    }
}

/// Makes room for the next read: at most `wanted` more octets, at least [`READ_CHUNK`], never
/// more than the octets already buffered (so the buffer grows with arrivals, whatever a peer
/// declares).
pub(crate) fn reserve_for(buf: &mut BytesMut, wanted: u64) {
    let spare = buf.capacity() - buf.len();
    let step = buf.len().max(READ_CHUNK) as u64;
    let want = usize::try_from(wanted.min(step)).unwrap_or(READ_CHUNK);
    if want > spare {
        buf.reserve(want);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservation_grows_with_arrivals_not_declarations() {
        let mut buf = BytesMut::new();
        reserve_for(&mut buf, 1 << 30);
        assert!(buf.capacity() >= READ_CHUNK && buf.capacity() < 2 * READ_CHUNK);
        buf.extend_from_slice(&vec![0u8; buf.capacity()]);
        let len = buf.len();
        reserve_for(&mut buf, 1 << 30);
        assert!(buf.capacity() <= 4 * len, "{} for {len}", buf.capacity());
        let mut small = BytesMut::new();
        reserve_for(&mut small, 3);
        assert!(small.capacity() >= 3);
    }

    #[test]
    fn errors_map_to_io_kinds() {
        let e: io::Error = Error::Timeout("reading").into();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(Error::Timeout("x").code(), "timeout");
    }
}
