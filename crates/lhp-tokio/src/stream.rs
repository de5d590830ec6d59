//! Streaming frames: [`FrameReader`] yields a head and then the body as an [`AsyncRead`]
//! ([`Body`]) limited to `body_len`; [`FrameWriter`] sends a head and then a body from any
//! [`AsyncRead`]. Bodies larger than memory pass through a buffer of a few KiB.
//!
//! ```text
//!   FrameReader::read_head ─► Header ─► FrameReader::body ─► Body: AsyncRead (body_len octets,
//!                                                            EOF after the digest is verified)
//!   FrameWriter::write_frame_from(header, body_len, reader)
//!        └─ one vectored write: [prefix + header, first body octets], then the rest
//! ```
//!
//! ```
//! use lhp_codec::Header;
//! use lhp_tokio::{FrameReader, FrameWriter};
//! use tokio::io::AsyncReadExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), lhp_tokio::Error> {
//! let (a, b) = tokio::io::duplex(1024);
//! let sender = tokio::spawn(async move {
//!     let big = std::io::Cursor::new(vec![7u8; 100_000]); // any AsyncRead
//!     let mut w = FrameWriter::new(a);
//!     w.write_frame_from(&Header::with_kind("put"), 100_000, big).await
//! });
//! let mut r = FrameReader::new(b);
//! let head = r.read_head().await?.expect("a frame");
//! assert_eq!((head.kind(), head.body_len()), (Some("put"), 100_000));
//! let mut sum = 0u64;
//! let mut chunk = [0u8; 4096];
//! let mut body = r.body();
//! loop {
//!     let n = body.read(&mut chunk).await?;
//!     if n == 0 { break; }
//!     sum += chunk[..n].iter().map(|&b| u64::from(b)).sum::<u64>();
//! }
//! assert_eq!(sum, 700_000);
//! sender.await.unwrap()?;
//! # Ok(()) }
//! ```

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use lhp_codec::{Event, Frame, FrameRef, Header, Limits, Profile};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_util::io::poll_read_buf;

use crate::codec::{reserve_for, Error, READ_CHUNK};

/// Whole frames whose element (a body, mostly) still wants at least this many octets are read
/// into a buffer of their own, exactly up to the element's end, so that the element starts at
/// the front of that buffer's allocation and the allocation can be reclaimed for the next one.
const DIRECT: u64 = 256 << 10;

/// Reads frames from an [`AsyncRead`], whole ([`read_frame`](Self::read_frame)) or as a head
/// and a streamed body ([`read_head`](Self::read_head) then [`body`](Self::body)).
///
/// A large whole-frame body (256 KiB or more) is read from the socket straight into the
/// allocation its [`Bytes`] points into, the way `tokio_util::codec::Framed` does, but into a
/// buffer of its own and exactly up to the body's end. The reader keeps an empty handle to
/// that allocation: once the caller has dropped the frame, `BytesMut::reserve` reclaims it for
/// the next large body, so a steady stream of large frames allocates and page-faults nothing
/// after the first. A frame the caller still holds is never written to. Buffers still grow
/// with the octets that arrived, never with a declared length;
/// [`release_buffer`](Self::release_buffer) gives the retained allocation back. Until then (or
/// until the next large frame is read) the body is shared with the reader, so
/// `Bytes::try_into_mut` on it fails and `Vec::from` copies it.
#[derive(Debug)]
pub struct FrameReader<R> {
    io: R,
    decoder: lhp_codec::Decoder,
    /// The octets read and not yet decoded: the read buffer, or while a large element is read,
    /// that element's own buffer.
    buf: BytesMut,
    /// Always empty. While a large element is read: the read buffer, set aside. Otherwise: a
    /// handle to the last large element's allocation, kept so that it can be reclaimed.
    parked: BytesMut,
    /// `buf` is a large element's own buffer.
    in_element: bool,
    /// Inside a body begun with `read_head`.
    in_body: bool,
    /// Body octets split off `buf` but not yet handed to the caller.
    pending: Bytes,
    /// Octets at the front of `buf` taken by the frame `read_frame_ref` last lent out.
    consumed: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader for the `lhp1` profile with default [`Limits`].
    pub fn new(io: R) -> Self {
        FrameReader::with(io, Profile::Lhp1, Limits::default())
    }

    /// A reader for `profile` under `limits`. For streamed bodies, raise `max_body_len` as far
    /// as the application can store (up to 2^53−1).
    pub fn with(io: R, profile: Profile, limits: Limits) -> Self {
        FrameReader::from_decoder(io, lhp_codec::Decoder::with(profile, limits))
    }

    /// A reader driving a configured sans-IO decoder.
    pub fn from_decoder(io: R, decoder: lhp_codec::Decoder) -> Self {
        FrameReader {
            io,
            decoder,
            buf: BytesMut::new(),
            parked: BytesMut::new(),
            in_element: false,
            in_body: false,
            pending: Bytes::new(),
            consumed: 0,
        }
    }

    /// The next whole frame, or `None` when the stream ended cleanly between frames. A stream
    /// cut inside a frame is `unexpected_eof`. If a streamed body was left unread, the rest of
    /// it is skipped first.
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, Error> {
        self.settle();
        self.skip_body().await?;
        self.end_element();
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buf)? {
                self.end_element();
                return Ok(Some(frame));
            }
            let wanted = self.decoder.wanted(self.buf.len());
            if wanted >= DIRECT {
                self.begin_element();
            }
            let more = if self.in_element {
                self.fill_element(wanted).await?
            } else {
                self.fill().await?
            };
            if !more {
                return Ok(self.decoder.decode_eof(&mut self.buf)?);
            }
        }
    }

    /// The next frame's header, or `None` at a clean end of stream. Read its body with
    /// [`body`](Self::body); a body left unread is skipped by the next `read_head` or
    /// `read_frame`.
    pub async fn read_head(&mut self) -> Result<Option<Header>, Error> {
        self.settle();
        self.skip_body().await?;
        self.end_element();
        loop {
            match self.decoder.decode_event(&mut self.buf)? {
                Some(Event::Head(header)) => {
                    self.in_body = true;
                    return Ok(Some(header));
                }
                // Not reachable between frames; tolerate it rather than trust it.
                Some(Event::Body(_)) | Some(Event::End) => continue,
                None => {
                    if !self.fill().await? {
                        self.decoder.finish(&self.buf)?;
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// The body of the frame whose head [`read_head`](Self::read_head) returned: an
    /// [`AsyncRead`] that ends after `body_len` octets, once the body's digest (if any) has
    /// been verified. A decode error is an `io::Error` of kind `InvalidData` wrapping the
    /// [`DecodeError`](lhp_codec::DecodeError).
    pub fn body(&mut self) -> Body<'_, R> {
        Body { reader: self }
    }

    /// The next whole frame if it is already buffered, without reading: lets a server answer
    /// every pipelined request that arrived in one read before it writes the replies.
    pub fn try_frame(&mut self) -> Result<Option<Frame>, Error> {
        self.settle();
        if self.in_body {
            return Ok(None);
        }
        Ok(self.decoder.decode(&mut self.buf)?)
    }

    /// True when the stream has octets buffered that the decoder has not consumed.
    pub fn has_buffered(&self) -> bool {
        self.buf.len() > self.consumed
    }

    /// True between frames with nothing buffered: the stream may idle, or end, here.
    pub fn is_idle(&self) -> bool {
        !self.has_buffered() && !self.in_body && self.decoder.is_between_frames()
    }

    /// Drops the octets of the frame last lent out by `read_frame_ref`.
    fn settle(&mut self) {
        if self.consumed > 0 {
            self.buf.advance(std::mem::take(&mut self.consumed));
        }
    }

    /// Frees the read buffer if it holds nothing, and the allocation kept for the next large
    /// body, so an idle connection costs no buffer.
    pub fn release_buffer(&mut self) {
        self.settle();
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
            self.parked = BytesMut::new();
            self.in_element = false;
        }
    }

    /// The decoder (its offset, limits, state).
    pub fn decoder(&self) -> &lhp_codec::Decoder {
        &self.decoder
    }

    /// The underlying reader.
    pub fn get_ref(&self) -> &R {
        &self.io
    }

    /// The underlying reader (reading from it directly desynchronises the stream).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.io
    }

    /// The underlying reader and any octets read but not decoded.
    pub fn into_parts(self) -> (R, BytesMut) {
        (self.io, self.buf)
    }

    /// Moves what is buffered into a buffer of its own for a large element: the last large
    /// element's allocation, reclaimed from its front if the caller has dropped everything
    /// split off it, else a new one that grows as octets arrive.
    fn begin_element(&mut self) {
        if self.in_element {
            return;
        }
        let mut element = std::mem::take(&mut self.parked);
        // `element` is empty and sits where the last element ended; asking for one octet more
        // than is left behind it reclaims the allocation from its front, and only if no one
        // else holds a part of it (`try_reclaim` never allocates).
        let behind = element.capacity();
        if !element.try_reclaim(behind.saturating_add(1)) {
            element = BytesMut::new();
        }
        reserve_for(&mut element, self.buf.len() as u64);
        element.extend_from_slice(&self.buf);
        self.buf.clear();
        self.parked = std::mem::replace(&mut self.buf, element);
        self.in_element = true;
    }

    /// Once a large element has been split off its buffer, goes back to the read buffer and
    /// keeps an empty handle to the element's allocation for the next one.
    fn end_element(&mut self) {
        if self.in_element && self.buf.is_empty() {
            std::mem::swap(&mut self.buf, &mut self.parked);
            self.in_element = false;
        }
    }

    /// Reads more of a large element into its buffer, never past the element's end (`wanted`
    /// octets away); false at end of stream. The buffer grows only once its room is nearly
    /// used up, and then by at most what is buffered, so it about doubles each time (never
    /// more) and a new body's memory is grown, and moved by `realloc`, as few times as that
    /// allows.
    async fn fill_element(&mut self, wanted: u64) -> Result<bool, Error> {
        let wanted = wanted.max(1);
        // Growing whenever the room is smaller than what is buffered would grow a buffer
        // that still has room, to four times what arrived; reading into the room first is
        // measurably faster on a new body.
        if self.buf.capacity() - self.buf.len() < READ_CHUNK {
            reserve_for(&mut self.buf, wanted);
        }
        let limit = usize::try_from(wanted).unwrap_or(usize::MAX);
        let mut dst = (&mut self.buf).limit(limit);
        Ok(self.io.read_buf(&mut dst).await? > 0)
    }

    async fn skip_body(&mut self) -> Result<(), Error> {
        self.pending.clear();
        while self.in_body {
            match poll_fn(|cx| self.poll_body_chunk(cx)).await? {
                Some(_) => {}
                None => break,
            }
        }
        Ok(())
    }

    /// Reads more octets into the buffer; false at end of stream.
    async fn fill(&mut self) -> Result<bool, Error> {
        // At least a chunk's room, so that one read takes a whole small frame (prefix, header
        // and body) and, reading short of the room, tells tokio the socket is drained.
        let wanted = self.decoder.wanted(self.buf.len()).max(READ_CHUNK as u64);
        reserve_for(&mut self.buf, wanted);
        Ok(self.io.read_buf(&mut self.buf).await? > 0)
    }

    /// The next chunk of the current body; `None` once it is complete (and verified).
    fn poll_body_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Error>> {
        loop {
            if !self.in_body {
                return Poll::Ready(Ok(None));
            }
            if !self.pending.is_empty() {
                return Poll::Ready(Ok(Some(std::mem::take(&mut self.pending))));
            }
            match self.decoder.decode_event(&mut self.buf)? {
                Some(Event::Body(chunk)) => return Poll::Ready(Ok(Some(chunk))),
                Some(Event::End) => {
                    self.in_body = false;
                    return Poll::Ready(Ok(None));
                }
                Some(Event::Head(_)) => {
                    self.in_body = false;
                    return Poll::Ready(Ok(None));
                }
                None => {
                    // Body octets stream through: read at most a chunk's worth at a time.
                    let want = self
                        .decoder
                        .wanted(self.buf.len())
                        .clamp(1, 8 * READ_CHUNK as u64);
                    reserve_for(&mut self.buf, want);
                    let n = ready!(poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf))?;
                    if n == 0 {
                        self.decoder.finish(&self.buf)?;
                        self.in_body = false;
                        return Poll::Ready(Ok(None));
                    }
                }
            }
        }
    }
}

/// The body of a frame being read with [`FrameReader::read_head`]: `body_len` octets, then
/// end of file.
#[derive(Debug)]
pub struct Body<'a, R> {
    reader: &'a mut FrameReader<R>,
}

impl<R: AsyncRead + Unpin> Body<'_, R> {
    /// The next chunk of the body as it arrived, without copying; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        poll_fn(|cx| self.reader.poll_body_chunk(cx)).await
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Body<'_, R> {
    /// Reads body octets: first those already buffered; then, when the reader's buffer holds
    /// no more body octets and `out` has at least 8 KiB of room, straight from the transport
    /// into `out` (no second copy), never past the body's end, so the next frame's octets stay
    /// in the reader.
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let reader = &mut *self.get_mut().reader;
        if out.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let left = reader.decoder.wanted(0);
        if reader.in_body
            && reader.pending.is_empty()
            && reader.buf.is_empty()
            && left > 0
            && out.remaining() >= READ_CHUNK
        {
            return reader.poll_body_direct(cx, out, left);
        }
        let Some(mut chunk) = ready!(reader.poll_body_chunk(cx)).map_err(io::Error::from)? else {
            return Poll::Ready(Ok(()));
        };
        let n = chunk.len().min(out.remaining());
        out.put_slice(chunk.get(..n).unwrap_or_default());
        chunk.advance(n);
        reader.pending = chunk;
        Poll::Ready(Ok(()))
    }
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// One read of body octets from the transport straight into `out`, at most the `left`
    /// octets the body still has; the decoder accounts for them (digest, offset).
    fn poll_body_direct(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
        left: u64,
    ) -> Poll<io::Result<()>> {
        let want = usize::try_from(left).map_or(out.remaining(), |l| l.min(out.remaining()));
        let dst = out.initialize_unfilled_to(want);
        let mut part = ReadBuf::new(dst);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut part))?;
        let got = part.filled().len();
        if got == 0 {
            // The stream ended inside the body: the codec's `unexpected_eof`.
            self.in_body = false;
            self.decoder.finish(&self.buf).map_err(Error::from)?;
            return Poll::Ready(Ok(()));
        }
        self.decoder.feed_body(part.filled());
        if self.decoder.wanted(0) == 0 {
            // Complete: verify the digest now, so that a mismatch is this read's error (and
            // the octets are not handed out: an error fills nothing).
            match self.decoder.decode_event(&mut self.buf) {
                Ok(Some(Event::End) | None) => self.in_body = false,
                Ok(Some(_)) => {}
                Err(e) => {
                    self.in_body = false;
                    return Poll::Ready(Err(Error::from(e).into()));
                }
            }
        }
        out.advance(got);
        Poll::Ready(Ok(()))
    }

    /// The next whole frame, lent out in place: its header text (validated, §4, but not built
    /// into a [`Header`]) and its body, borrowed from the reader's buffer until the next call.
    /// Deserialize the header into your own type with
    /// [`FrameRef::header`](lhp_codec::FrameRef::header). `None`: a clean end of stream.
    ///
    /// ```
    /// use lhp_tokio::{FrameReader, FrameWriter};
    ///
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Msg<'a> { kind: &'a str, id: u64 }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), lhp_tokio::Error> {
    /// let mut w = FrameWriter::new(Vec::new());
    /// w.write_typed(&Msg { kind: "tick", id: 7 }, b"body").await?;
    /// let wire = w.into_inner();
    /// let mut r = FrameReader::new(&wire[..]);
    /// let f = r.read_frame_ref().await?.unwrap();
    /// let m: Msg<'_> = f.header()?;
    /// assert_eq!((m.kind, m.id, f.body()), ("tick", 7, &b"body"[..]));
    /// # Ok(()) }
    /// ```
    pub async fn read_frame_ref(&mut self) -> Result<Option<FrameRef<'_>>, Error> {
        self.skip_body().await?;
        self.end_element();
        if self.consumed > 0 {
            self.buf.advance(std::mem::take(&mut self.consumed));
        }
        let span = loop {
            if let Some(span) = self.decoder.decode_span(&self.buf)? {
                break span;
            }
            if !self.fill().await? {
                self.decoder.finish(&self.buf)?;
                return Ok(None);
            }
        };
        self.consumed = span.body.end;
        Ok(self.decoder.frame_ref(&span, &self.buf))
    }
}

/// Writes frames to an [`AsyncWrite`]: each frame's prefix, header and body leave in one
/// vectored write (§9), with no copy of the body.
#[derive(Debug)]
pub struct FrameWriter<W> {
    io: W,
    encoder: lhp_codec::Encoder,
    head: BytesMut,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// A writer for the `lhp1` profile.
    pub fn new(io: W) -> Self {
        FrameWriter::with_encoder(io, lhp_codec::Encoder::new())
    }

    /// A writer using a configured sans-IO encoder.
    pub fn with_encoder(io: W, encoder: lhp_codec::Encoder) -> Self {
        FrameWriter {
            io,
            encoder,
            head: BytesMut::new(),
        }
    }

    /// Writes a whole frame: `[prefix + header, body]` as one vectored write (repeated only if
    /// the transport takes part of it).
    pub async fn write_frame(&mut self, frame: &Frame) -> Result<(), Error> {
        self.head.clear();
        self.encoder
            .encode_head(&frame.header, frame.body.len() as u64, &mut self.head)?;
        write_all_vectored(&mut self.io, &mut [&self.head[..], &frame.body[..]]).await?;
        Ok(())
    }

    /// Writes a whole frame whose header is the caller's own type (see
    /// [`Encoder::encode_typed`](lhp_codec::Encoder::encode_typed)): serialized straight into
    /// the head buffer with `body_len` filled in and the receiver's rules applied, then sent
    /// with the body in one vectored write. Nothing is written if the header is refused.
    pub async fn write_typed<T: serde::Serialize + ?Sized>(
        &mut self,
        header: &T,
        body: &[u8],
    ) -> Result<(), Error> {
        self.head.clear();
        self.encoder
            .encode_typed_head(header, body.len() as u64, &mut self.head)?;
        if body.len() <= 4096 {
            self.head.extend_from_slice(body);
            self.io.write_all(&self.head).await?;
        } else {
            write_all_vectored(&mut self.io, &mut [&self.head[..], body]).await?;
        }
        Ok(())
    }

    /// Writes a frame whose `body_len` octets come from `body`: the head and the first body
    /// octets in one vectored write, then the rest as it is read. Fails with
    /// `UnexpectedEof` (and a truncated frame on the wire) if `body` ends early; octets past
    /// `body_len` are not read.
    pub async fn write_frame_from<B: AsyncRead + Unpin>(
        &mut self,
        header: &Header,
        body_len: u64,
        body: B,
    ) -> Result<(), Error> {
        let mut header = header.clone();
        header.set_body_len(body_len);
        self.head.clear();
        self.encoder
            .encode_head(&header, body_len, &mut self.head)?;
        let mut body = body.take(body_len);
        let cap = usize::try_from(body_len).map_or(64 << 10, |n| n.min(64 << 10));
        let mut chunk = BytesMut::with_capacity(cap);
        let mut first = true;
        let mut sent = 0u64;
        loop {
            chunk.clear();
            let n = if sent < body_len {
                body.read_buf(&mut chunk).await?
            } else {
                0
            };
            if first {
                write_all_vectored(&mut self.io, &mut [&self.head[..], &chunk[..]]).await?;
                first = false;
            } else if n > 0 {
                self.io.write_all(&chunk).await?;
            }
            sent += n as u64;
            if sent == body_len {
                return Ok(());
            }
            if n == 0 {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the body reader ended after {sent} of {body_len} octets"),
                )));
            }
        }
    }

    /// Flushes the transport.
    pub async fn flush(&mut self) -> Result<(), Error> {
        Ok(self.io.flush().await?)
    }

    /// The underlying writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.io
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.io
    }
}

/// Writes every octet of `parts` with vectored writes, advancing past what each write took.
pub async fn write_all_vectored<W: AsyncWrite + Unpin + ?Sized>(
    io: &mut W,
    parts: &mut [&[u8]],
) -> io::Result<()> {
    let mut first = 0;
    loop {
        while parts.get(first).is_some_and(|p| p.is_empty()) {
            first += 1;
        }
        let Some(rest) = parts.get(first..).filter(|r| !r.is_empty()) else {
            return Ok(());
        };
        let slices: Vec<IoSlice<'_>> = rest.iter().take(64).map(|p| IoSlice::new(p)).collect();
        let mut n = poll_fn(|cx| Pin::new(&mut *io).poll_write_vectored(cx, &slices)).await?;
        drop(slices);
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        for part in parts.iter_mut().skip(first) {
            let take = n.min(part.len());
            *part = part.get(take..).unwrap_or_default();
            n -= take;
            if n == 0 {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use lhp_codec::Encoder;

    use super::*;

    #[tokio::test]
    async fn a_new_large_body_grows_with_what_arrived_not_what_was_declared() {
        let arrived = 300 << 10;
        let mut h = Header::with_kind("put");
        h.set_body_len(1 << 30);
        let mut wire = BytesMut::new();
        Encoder::new().encode_head(&h, 1 << 30, &mut wire).unwrap();
        wire.extend_from_slice(&vec![7u8; arrived]);
        let (mut a, b) = tokio::io::duplex(64 << 10);
        // The peer sends 300 KiB of the declared 1 GiB, then closes.
        let peer = tokio::spawn(async move { a.write_all(&wire).await });
        let limits = Limits::new().with_max_body_len(1 << 40);
        let mut r = FrameReader::with(b, Profile::Lhp1, limits);
        match r.read_frame().await {
            Err(Error::Decode(e)) => {
                assert_eq!(e.missing(), Some((1 << 30) - arrived as u64));
            }
            other => panic!("expected unexpected_eof, got {other:?}"),
        }
        peer.await.unwrap().unwrap();
        let held = r.buf.capacity() + r.parked.capacity();
        assert!(
            held <= 2 * arrived + 4 * READ_CHUNK,
            "{held} held for {arrived} arrived"
        );
    }
}
