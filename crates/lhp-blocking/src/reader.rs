//! [`FrameReader`]: whole frames or streamed bodies from any [`Read`].

use std::io::{self, Read};

use bytes::{Buf, Bytes, BytesMut};
use lhp_codec::{Decoder, Event, Frame, FrameRef, Header, Limits, Profile};

use crate::Error;

/// The smallest read: small frames that arrive together are read together.
const MIN_READ: usize = 8 << 10;
/// The largest single read.
const MAX_READ: usize = 1 << 20;
/// The smallest read region allocated (zeroed once, then read into piece by piece).
const REGION: usize = 64 << 10;
/// Whole frames whose element (header or body) still wants at least this many octets are read
/// straight into the buffer that will hold the element.
const DIRECT: usize = 256 << 10;
/// Spare read space kept between frames, at most.
const KEEP_CAPACITY: usize = 1 << 20;

/// Reads LHP/1 frames from a byte stream.
///
/// Two modes, which may be mixed frame by frame:
/// - [`read_frame`](Self::read_frame): one whole [`Frame`], its body in memory (at most the
///   limits' `max_body_len`).
/// - [`read_head`](Self::read_head) then [`body`](Self::body): the header, then the body as a
///   [`Read`] limited to `body_len`, so a body of any size passes through in constant memory.
///
/// Buffers grow with the octets that arrived (each read at most doubles what is buffered),
/// never with the length a peer declares: a peer that declares a 1 GiB body and sends nothing
/// costs one small buffer.
///
/// A large whole-frame body (256 KiB or more) is read straight into the allocation that the
/// returned [`Frame`]'s body points into. The reader keeps a handle to it: once the caller has
/// dropped the frame, the next large body is read into the same memory, so a steady stream of
/// large frames allocates, zero-fills and page-faults nothing after the first. A frame the
/// caller still holds is never written to. The retained allocation is at most one body that
/// actually arrived; [`release_buffers`](Self::release_buffers), or a read that times out
/// between frames, gives it back. Until then (or
/// until the next large frame is read) the body is shared with the reader, so
/// `Bytes::try_into_mut` on it fails and `Vec::from` copies it.
///
/// ```
/// use std::io::Cursor;
/// use lhp_blocking::{FrameReader, FrameWriter};
/// use lhp_codec::{Frame, Header};
///
/// let mut wire = Vec::new();
/// let mut w = FrameWriter::new(&mut wire);
/// w.write_frame(&Frame::new(Header::with_kind("echo"), "hello".into())).unwrap();
/// w.write_frame(&Frame::new(Header::with_kind("put"), vec![9u8; 100_000].into())).unwrap();
///
/// let mut r = FrameReader::new(Cursor::new(wire));
/// let first = r.read_frame().unwrap().unwrap();
/// assert_eq!(&first.body[..], b"hello");
/// let head = r.read_head().unwrap().unwrap(); // stream the second body instead
/// assert_eq!(head.body_len(), 100_000);
/// let copied = std::io::copy(&mut r.body(), &mut std::io::sink()).unwrap();
/// assert_eq!(copied, 100_000);
/// assert!(r.read_frame().unwrap().is_none()); // clean end between frames
/// ```
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    decoder: Decoder,
    /// Octets read and not yet decoded.
    buf: BytesMut,
    /// Initialized octets directly after `buf`'s, in the same allocation: reads land here and
    /// join `buf` without a copy, so read space is zeroed once per allocation, not per read.
    spare: BytesMut,
    /// Octets the last read returned: the next read may be twice as large.
    last_read: usize,
    /// The last large whole-frame body handed out. Once the caller drops their copy this
    /// handle is the allocation's only owner, and the next large element reuses it in place:
    /// every octet of it is initialized, so it needs no zero-filling either.
    reuse: Bytes,
    /// Body octets the decoder handed out that the caller has not read yet.
    pending: Bytes,
    /// Between `Event::Head` and `Event::End` of a streamed frame.
    in_body: bool,
    /// Absolute stream offset of the current (or next) frame's first octet.
    frame_start: u64,
    /// Octets at the front of `buf` taken by the frame [`read_frame_ref`] last returned,
    /// dropped before anything else is read.
    ///
    /// [`read_frame_ref`]: FrameReader::read_frame_ref
    consumed: usize,
    /// The octets of frames lent out by [`read_frame_ref`] and since dropped, directly in
    /// front of `buf` in the same allocation (or empty): initialized memory that
    /// [`regrow`](Self::regrow) uses again without zero-filling it.
    ///
    /// [`read_frame_ref`]: FrameReader::read_frame_ref
    dead: BytesMut,
}

impl<R: Read> FrameReader<R> {
    /// A reader for the `lhp1` profile with default [`Limits`].
    pub fn new(inner: R) -> Self {
        FrameReader::with(inner, Profile::Lhp1, Limits::default())
    }

    /// A reader for `profile` under `limits`.
    pub fn with(inner: R, profile: Profile, limits: Limits) -> Self {
        FrameReader::with_decoder(inner, Decoder::with(profile, limits))
    }

    /// A reader around a decoder configured by the caller (digest verification, stream offset).
    pub fn with_decoder(inner: R, decoder: Decoder) -> Self {
        let frame_start = decoder.offset();
        FrameReader {
            inner,
            decoder,
            buf: BytesMut::new(),
            spare: BytesMut::new(),
            last_read: 0,
            reuse: Bytes::new(),
            pending: Bytes::new(),
            in_body: false,
            frame_start,
            consumed: 0,
            dead: BytesMut::new(),
        }
    }

    /// Reads one whole frame. `Ok(None)`: the stream ended cleanly between frames. A stream
    /// that ends inside a frame gives the codec's `unexpected_eof` with the missing count.
    ///
    /// If a streamed body was not read to its end, its rest is read and discarded first.
    pub fn read_frame(&mut self) -> Result<Option<Frame>, Error> {
        if self.in_body || !self.pending.is_empty() {
            self.finish_body()?;
        }
        self.settle();
        self.frame_start = self.decoder.offset();
        loop {
            // Kept whole and converted once on return: with `if let Some(frame) = …? {
            // return Ok(Some(frame)) }` the ≈250-octet `Frame` was copied twice on the way out
            // (typed-blocking-map 3,755 -> 3,697 instructions per frame, callgrind).
            let got = self.decoder.decode(&mut self.buf);
            match &got {
                Ok(Some(frame)) => {
                    if frame.body.len() >= DIRECT {
                        // Keep a handle, so that the allocation comes back once the caller
                        // is done.
                        self.reuse = frame.body.clone();
                    }
                    self.release_if_idle();
                    return got.map_err(Error::from);
                }
                Ok(None) => {}
                Err(_) => return got.map_err(Error::from),
            }
            let got = if self.wanted() >= DIRECT {
                self.fill_element()?
            } else {
                self.fill(Fill::Greedy)?
            };
            if got == 0 {
                self.decoder.finish(&self.buf)?;
                return Ok(None);
            }
        }
    }

    /// Reads one whole frame and lends it out in place: its header text (validated, §4, but
    /// not built into a [`Header`]) and its body, borrowed from the reader's buffer until the
    /// next call. Deserialize the header into your own type with
    /// [`FrameRef::header`](lhp_codec::FrameRef::header). In steady state nothing is
    /// allocated per frame: the read buffer is reused once every frame in it has been read.
    /// `Ok(None)`: the stream ended cleanly between frames.
    ///
    /// ```
    /// use lhp_blocking::{FrameReader, FrameWriter};
    ///
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Msg<'a> { kind: &'a str, id: u64 }
    ///
    /// let mut w = FrameWriter::new(Vec::new());
    /// for id in 0..3 {
    ///     w.write_typed(&Msg { kind: "tick", id }, b"").unwrap();
    /// }
    /// let mut r = FrameReader::new(&w.get_ref()[..]);
    /// let mut ids = Vec::new();
    /// while let Some(f) = r.read_frame_ref().unwrap() {
    ///     let m: Msg<'_> = f.header().unwrap();
    ///     ids.push(m.id);
    /// }
    /// assert_eq!(ids, [0, 1, 2]);
    /// ```
    pub fn read_frame_ref(&mut self) -> Result<Option<FrameRef<'_>>, Error> {
        if self.in_body || !self.pending.is_empty() {
            self.finish_body()?;
        }
        // The frames lent out before stay in front of `buf` (past `consumed`) until a read
        // needs the room: the next frame is decoded where it lies, with no per-frame split.
        self.frame_start = self.decoder.offset();
        let span = loop {
            let unread = self.buf.get(self.consumed..).unwrap_or_default();
            if let Some(span) = self.decoder.decode_span(unread)? {
                break span;
            }
            if self.fill(Fill::Greedy)? == 0 {
                self.settle();
                self.decoder.finish(&self.buf)?;
                return Ok(None);
            }
        };
        let start = self.consumed;
        self.consumed = start + span.body.end;
        let lent = self.buf.get(start..).unwrap_or_default();
        Ok(self.decoder.frame_ref(&span, lent))
    }

    /// Reads the next frame's header; its body follows through [`body`](Self::body).
    /// `Ok(None)`: the stream ended cleanly between frames.
    ///
    /// If a streamed body was not read to its end, its rest is read and discarded first.
    pub fn read_head(&mut self) -> Result<Option<Header>, Error> {
        if self.in_body || !self.pending.is_empty() {
            self.finish_body()?;
        }
        self.settle();
        self.frame_start = self.decoder.offset();
        loop {
            match self.decoder.decode_event(&mut self.buf)? {
                Some(Event::Head(header)) => {
                    self.in_body = true;
                    return Ok(Some(header));
                }
                // Body and End only follow a Head, which this loop returns: never reached.
                Some(Event::Body(_) | Event::End) => continue,
                None => {
                    if self.fill(Fill::Sized)? == 0 {
                        self.decoder.finish(&self.buf)?;
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// The body of the frame whose head [`read_head`](Self::read_head) returned, as a [`Read`]
    /// that ends after `body_len` octets (and, if the header has a digest, after verifying
    /// it). Its errors wrap the codec's [`DecodeError`](lhp_codec::DecodeError), which
    /// `Error::from(io_error)` recovers.
    pub fn body(&mut self) -> Body<'_, R> {
        Body { reader: self }
    }

    /// Reads and discards the rest of a streamed body, verifying its digest.
    pub fn finish_body(&mut self) -> Result<(), Error> {
        self.settle();
        self.pending = Bytes::new();
        while self.in_body {
            self.next_chunk()?;
            self.pending = Bytes::new();
        }
        Ok(())
    }

    /// Gives back the memory kept for reuse: the allocation of the last large body (once the
    /// caller has dropped it, the reader is all that keeps it alive) and, if nothing is
    /// buffered, the read region. A read that times out between frames does this too.
    pub fn release_buffers(&mut self) {
        self.settle();
        self.dead = BytesMut::new();
        self.reuse = Bytes::new();
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
            self.spare = BytesMut::new();
        }
    }

    /// Absolute stream offset of the first octet of the current frame (or of the next one,
    /// between frames).
    pub fn frame_start(&self) -> u64 {
        self.frame_start
    }

    /// Absolute stream offset of the first octet read from the source but not yet decoded.
    pub fn offset(&self) -> u64 {
        self.decoder.offset()
    }

    /// Octets read from the source but not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.consumed
    }

    /// True between frames with nothing of the next frame buffered.
    pub fn is_idle(&self) -> bool {
        !self.in_body && self.decoder.is_between_frames() && self.buffered() == 0
    }

    /// Drops the octets of the frames lent out by [`read_frame_ref`](Self::read_frame_ref).
    fn settle(&mut self) {
        let n = std::mem::take(&mut self.consumed);
        if n > 0 {
            let gone = self.buf.split_to(n);
            if contiguous(&self.dead, &gone) {
                self.dead.unsplit(gone);
            } else {
                self.dead = gone;
            }
        }
    }

    /// The decoder (profile, limits, offset).
    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// The underlying reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The underlying reader. Reading from it directly desynchronizes the stream.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The underlying reader; octets buffered but not decoded are lost.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Decodes the next body chunk into `pending`, reading as needed. Sets `in_body` false at
    /// the end of the body.
    fn next_chunk(&mut self) -> Result<(), Error> {
        loop {
            match self.decoder.decode_event(&mut self.buf)? {
                Some(Event::Body(chunk)) => {
                    self.pending = chunk;
                    return Ok(());
                }
                Some(Event::End) => {
                    self.in_body = false;
                    self.frame_start = self.decoder.offset();
                    self.release_if_idle();
                    return Ok(());
                }
                Some(Event::Head(_)) => {
                    // Only reachable if called between frames; there is no body to read.
                    self.in_body = false;
                    return Ok(());
                }
                None => {
                    if self.fill(Fill::Sized)? == 0 {
                        self.decoder.finish(&self.buf)?;
                        self.in_body = false;
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Octets the decoder still wants for the element being decoded.
    fn wanted(&self) -> usize {
        usize::try_from(self.decoder.wanted(self.buffered())).unwrap_or(usize::MAX)
    }

    /// One read from the source into the buffer. Returns the octets read (0 at end of stream).
    ///
    /// When the read space runs short, a new region is made for a read sized by what the
    /// decoder still wants, at least `MIN_READ` (to pick up coalesced small frames), at most
    /// `MAX_READ`, and at most twice what is buffered or what the last read returned (so read
    /// space grows geometrically with arrived octets, never by a declared length). The read
    /// lands in `spare`, which is zeroed once when allocated. How much it asks for, `how`
    /// says: that size, or all the read space there already is.
    fn fill(&mut self, how: Fill) -> Result<usize, Error> {
        let cap = self
            .buffered()
            .max(self.last_read.saturating_mul(2))
            .clamp(MIN_READ, MAX_READ);
        let n = self.wanted().clamp(MIN_READ, cap);
        if self.spare.len() < MIN_READ {
            self.settle();
            self.regrow(n);
        }
        let len = match how {
            Fill::Sized => n,
            Fill::Greedy => MAX_READ,
        }
        .min(self.spare.len());
        let result = loop {
            let Some(dst) = self.spare.get_mut(..len) else {
                break Ok(0);
            };
            match self.inner.read(dst) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        if let Err(e) = &result {
            let timed_out = matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            );
            if timed_out && self.is_idle() {
                // The peer went quiet between frames: hold no buffers while it stays so.
                self.release_buffers();
            }
        }
        let got = result?.min(len);
        if got > 0 {
            let piece = self.spare.split_to(got);
            // Contiguous with `buf` (or `buf` is empty): no copy.
            self.buf.unsplit(piece);
        }
        self.last_read = got;
        Ok(got)
    }

    /// A new read region: what is buffered, copied to its front, and room for a read of `n`.
    /// When the octets of the frames lent out by [`read_frame_ref`](Self::read_frame_ref)
    /// (since dropped) lie in front of the buffered ones, that stretch of the region is used
    /// again as it is: nothing is allocated or zeroed. Otherwise, when the reader is the only
    /// owner of the current region (no frame handed out still points into it), that
    /// allocation is reused: nothing is allocated, only the read space is zeroed again.
    fn regrow(&mut self, n: usize) {
        let keep = self.buf.len();
        let want = keep + n.max(REGION);
        let buffered = std::mem::take(&mut self.buf);
        let spare = std::mem::take(&mut self.spare);
        let dead = std::mem::take(&mut self.dead);
        let mut region = if contiguous(&dead, &buffered) && contiguous(&buffered, &spare) {
            // The octets of frames already consumed, the buffered ones and the read space are
            // one initialized stretch of memory, all ours: if it is large enough, the buffered
            // octets move to its front and the rest is read space, with nothing zeroed.
            let front = dead.len();
            let mut whole = dead;
            whole.unsplit(buffered);
            whole.unsplit(spare);
            if whole.len() >= want {
                whole.copy_within(front..front + keep, 0);
                self.buf = whole.split_to(keep);
                self.spare = whole;
                return;
            }
            // The consumed front is let go, so that `reserve` below can find the region unique.
            let rest = whole.split_off(front);
            drop(whole);
            rest
        } else {
            drop(dead);
            let mut region = buffered;
            if region.is_empty() || region.as_ptr_range().end == spare.as_ptr() {
                // Contiguous (or nothing kept): one region again, without a copy.
                region.unsplit(spare);
            }
            region
        };
        region.truncate(keep);
        // Reclaims the allocation from its start if unique, else allocates and copies `keep`.
        region.reserve(want - keep);
        region.resize(want, 0);
        self.buf = region.split_to(keep);
        self.spare = region;
    }

    /// Reads the rest of a large element of a whole frame (its body, mostly) straight into
    /// the buffer that will hold it, which then becomes the frame's body without a copy.
    ///
    /// The buffer is the last large body's allocation if the caller has dropped that body
    /// (already initialized, so nothing is allocated or zeroed), otherwise a new one (see
    /// [`fill_new_element`](Self::fill_new_element)). It grows by at most what has arrived each
    /// time (so a declared length alone allocates nothing), and is cut exactly at the element's
    /// end. If a read fails or the stream ends first, the initialized rest stays behind the
    /// buffered octets as read space. Reads at most double what has arrived, up to `MAX_READ`.
    /// Returns the octets read (0 at end of stream).
    fn fill_element(&mut self) -> Result<usize, Error> {
        // The element's allocation is reclaimed whole only if nothing else holds a part of it.
        self.dead = BytesMut::new();
        let have = self.buf.len();
        let target = have.saturating_add(self.wanted());
        let Some(mut element) = self.reclaimed(target) else {
            return self.fill_new_element(have, target);
        };
        let mut filled = have;
        let result = loop {
            if filled >= target {
                break Ok(());
            }
            if filled == element.len() {
                // A body larger than the last one: the reclaimed allocation grows, zeroing only
                // the new part.
                let grow = filled.max(MIN_READ).min(target - filled);
                element.resize(filled + grow, 0);
            }
            // Reads grow with what arrived, as the buffer did before it was reused: asking for
            // everything at once drains the socket and wakes the sender more often.
            let end = element.len().min(filled + filled.clamp(MIN_READ, MAX_READ));
            let Some(dst) = element.get_mut(filled..end) else {
                break Ok(());
            };
            let len = dst.len();
            match self.inner.read(dst) {
                Ok(0) => break Ok(()),
                Ok(got) => filled += got.min(len),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        let rest = element.split_off(filled);
        if !rest.is_empty() {
            self.spare = rest;
        }
        self.buf = element;
        self.last_read = filled - have;
        result?;
        Ok(filled - have)
    }

    /// [`fill_element`](Self::fill_element) without a reclaimed allocation: the element is
    /// read into a `Vec` that holds what is buffered (with the read space directly behind it,
    /// if any, as room) and grows with `reserve_exact` by at most what has arrived, never past
    /// the element's end. `Read::read_to_end` (through `take`, so never past the element's end
    /// nor more than `MAX_READ` per call) reads into the `Vec`'s spare capacity: a reader that
    /// implements `read_buf` (a `TcpStream` does) writes fresh pages once, with no zero-filling
    /// pass before, and a larger allocation moves with `realloc` rather than a copy where the
    /// allocator can. Octets read before a failed read stay in the `Vec` (`read_to_end` keeps
    /// them), so nothing is lost. The `Vec` becomes the buffer without a copy.
    fn fill_new_element(&mut self, have: usize, target: usize) -> Result<usize, Error> {
        let mut element = std::mem::take(&mut self.buf);
        if element.as_ptr_range().end == self.spare.as_ptr() {
            // Read space directly behind: its allocation becomes the element's, no copy.
            element.unsplit(std::mem::take(&mut self.spare));
            element.truncate(have);
        }
        // Without a copy if no one else holds a part of the allocation.
        let mut element = Vec::from(element);
        let result = loop {
            let filled = element.len();
            if filled >= target {
                break Ok(());
            }
            if filled == element.capacity() {
                element.reserve_exact(filled.max(MIN_READ).min(target - filled));
            }
            let room = element.capacity() - filled;
            let chunk = room
                .min(filled.clamp(MIN_READ, MAX_READ))
                .min(target - filled);
            let limit = u64::try_from(chunk).unwrap_or(u64::MAX);
            match (&mut self.inner).take(limit).read_to_end(&mut element) {
                Ok(0) => break Ok(()),
                Ok(_) => {}
                // `read_to_end` retries `Interrupted` itself.
                Err(e) => break Err(e),
            }
        };
        let got = element.len().saturating_sub(have);
        // Both conversions keep the allocation (the element is its only owner).
        self.buf = BytesMut::from(Bytes::from(element));
        self.last_read = got;
        result?;
        Ok(got)
    }

    /// The last large body's allocation for a large element of `target` octets, holding what
    /// is buffered at its front (cut to at most `target`), if the caller has dropped that body
    /// and what is buffered is little to copy (more means an element already under way: it
    /// continues where it is). `None` otherwise; dropping our handle leaves the caller's
    /// untouched.
    fn reclaimed(&mut self, target: usize) -> Option<BytesMut> {
        let have = self.buf.len();
        let mut region = std::mem::take(&mut self.reuse).try_into_mut().ok()?;
        if have > MAX_READ || region.is_empty() {
            return None;
        }
        region.truncate(target);
        if region.len() < have {
            region.resize(have, 0);
        }
        if let Some(front) = region.get_mut(..have) {
            front.copy_from_slice(&self.buf);
        }
        // The read region stays for the heads of the frames that follow.
        self.buf.clear();
        Some(region)
    }

    /// Between frames, gives back a large spare read region, and lets go of an emptied
    /// element buffer (so that the body split off it is the allocation's only other owner).
    fn release_if_idle(&mut self) {
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
            if self.spare.len() > KEEP_CAPACITY {
                self.spare = BytesMut::new();
            }
        }
    }
}

/// The body of a streamed frame: a [`Read`] that ends after `body_len` octets.
///
/// Dropping it early is fine: the rest of the body is discarded before the next frame.
#[derive(Debug)]
pub struct Body<'a, R> {
    reader: &'a mut FrameReader<R>,
}

impl<R: Read> Body<'_, R> {
    /// Reads the rest of the body into memory and returns it with `header` as a whole frame.
    /// The buffer grows as octets arrive (the body is at most the limits' `max_body_len`).
    pub fn into_frame(self, header: Header) -> Result<Frame, Error> {
        let mut body = BytesMut::new();
        // A body that arrives in one piece is kept as it is, without copying.
        let mut single: Option<Bytes> = None;
        loop {
            if self.reader.pending.is_empty() {
                if !self.reader.in_body {
                    break;
                }
                self.reader.next_chunk()?;
                continue;
            }
            let chunk = std::mem::take(&mut self.reader.pending);
            if body.is_empty() && single.is_none() {
                single = Some(chunk);
                continue;
            }
            if let Some(first) = single.take() {
                body.extend_from_slice(&first);
            }
            body.extend_from_slice(&chunk);
        }
        let body = single.unwrap_or_else(|| body.freeze());
        Ok(Frame { header, body })
    }

    /// True once every body octet has been read and the digest (if any) verified.
    pub fn is_done(&self) -> bool {
        !self.reader.in_body && self.reader.pending.is_empty()
    }
}

impl<R: Read> Read for Body<'_, R> {
    /// Reads body octets: first those already buffered; then, when the reader's buffer holds
    /// no more body octets and `out` is at least 8 KiB, straight from the source into `out`
    /// (no second copy), never past the body's end, so the next frame's octets stay in the
    /// reader.
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let reader = &mut *self.reader;
        loop {
            if !reader.pending.is_empty() {
                break;
            }
            if !reader.in_body {
                return Ok(0);
            }
            let left = reader.wanted();
            if reader.buf.is_empty() && left > 0 && out.len() >= MIN_READ {
                return reader.read_body_direct(out, left);
            }
            reader.next_chunk().map_err(Error::into_io)?;
        }
        let n = out.len().min(reader.pending.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), reader.pending.get(..n)) {
            dst.copy_from_slice(src);
        }
        reader.pending.advance(n);
        if reader.pending.is_empty() {
            // Drop our reference so the read buffer can be reused in place.
            reader.pending = Bytes::new();
        }
        Ok(n)
    }
}

impl<R: Read> FrameReader<R> {
    /// One read of body octets from the source straight into `out`, at most the `left` octets
    /// the body still has; the decoder accounts for them (digest, offset).
    fn read_body_direct(&mut self, out: &mut [u8], left: usize) -> io::Result<usize> {
        let want = out.len().min(left);
        let dst = out.get_mut(..want).unwrap_or_default();
        let got = loop {
            match self.inner.read(dst) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if got == 0 {
            // The stream ended inside the body: the codec's `unexpected_eof`.
            self.in_body = false;
            return match self.decoder.finish(&self.buf) {
                Err(e) => Err(Error::from(e).into_io()),
                Ok(()) => Ok(0),
            };
        }
        let got = got.min(want);
        self.decoder.feed_body(dst.get(..got).unwrap_or_default());
        if self.wanted() == 0 {
            // The body is complete: verify its digest and return between frames now, so
            // that a digest mismatch is reported on this read, not after the caller's copy.
            self.next_chunk().map_err(Error::into_io)?;
        }
        Ok(got)
    }
}

/// How much one [`FrameReader::fill`] asks the source for.
#[derive(Clone, Copy, Debug)]
enum Fill {
    /// What the decoder still wants, at least `MIN_READ`, growing with what arrived: for a
    /// header whose body may follow as a stream, so that the body's octets are read straight
    /// into the caller's buffer rather than copied out of this one.
    Sized,
    /// All the read space already allocated (up to `MAX_READ`): whole frames are decoded from
    /// the buffer anyway, and one read then picks up as many small frames as have arrived
    /// (what a 64 KiB `BufReader` does), rather than one read per 8 KiB.
    Greedy,
}

/// `b` begins where `a` ends, in the same allocation (so `a.unsplit(b)` copies nothing), or `a`
/// is empty.
fn contiguous(a: &BytesMut, b: &BytesMut) -> bool {
    a.is_empty() || a.as_ptr_range().end == b.as_ptr()
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use lhp_codec::Encoder;

    use super::*;

    fn wire(frames: &[Frame]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for f in frames {
            Encoder::new().encode(f, &mut out).unwrap();
        }
        out.to_vec()
    }

    /// A reader that returns at most `step` octets per read.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        step: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len() - self.pos);
            out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn frames() -> Vec<Frame> {
        let mut h = Header::with_kind("echo");
        h.set_id(3).insert("x", "y");
        vec![
            Frame::new(h, "hello".into()),
            Frame::new(Header::new(), Bytes::new()),
            Frame::new(Header::with_kind("big"), vec![5u8; 300_000].into()),
        ]
    }

    #[test]
    fn whole_frames_through_any_read_size() {
        let want = frames();
        for step in [1, 3, 7, 4096, 1 << 20] {
            let mut r = FrameReader::new(Trickle {
                data: wire(&want),
                pos: 0,
                step,
            });
            for f in &want {
                assert_eq!(r.read_frame().unwrap().as_ref(), Some(f), "step {step}");
            }
            assert!(r.read_frame().unwrap().is_none());
        }
    }

    /// Thousands of small frames lent out by `read_frame_ref` fill the read region many times
    /// over, so it is used again (its consumed front, without zeroing) with a partial frame
    /// kept at every possible position; `read_frame`, `read_head` and a large frame in between
    /// break the chain, and every frame still arrives intact.
    #[test]
    fn lent_frames_reuse_the_region_whatever_the_mix() {
        let mut want = Vec::new();
        for i in 0..6000usize {
            let mut h = Header::with_kind("k");
            h.set_id(i as u64).insert("pad", "x".repeat(i % 37));
            let body = vec![(i % 251) as u8; (i * 7) % 300];
            want.push(Frame::new(h, body.into()));
            if i % 1500 == 700 {
                want.push(big(70_000 + i));
            }
        }
        for step in [8 << 10, 997, 65_536 + 13] {
            let mut r = FrameReader::new(Trickle {
                data: wire(&want),
                pos: 0,
                step,
            });
            for (i, f) in want.iter().enumerate() {
                match i % 500 {
                    7 => assert_eq!(r.read_frame().unwrap().as_ref(), Some(f), "{i}"),
                    9 => {
                        assert_eq!(r.read_head().unwrap().as_ref(), Some(&f.header), "{i}");
                        let mut body = Vec::new();
                        r.body().read_to_end(&mut body).unwrap();
                        assert_eq!(body, f.body, "{i}");
                    }
                    _ => {
                        let got = r.read_frame_ref().unwrap().unwrap();
                        assert_eq!(got.to_frame(), *f, "frame {i}, step {step}");
                    }
                }
            }
            assert!(r.read_frame_ref().unwrap().is_none());
        }
    }

    #[test]
    fn streamed_bodies_and_skipped_bodies() {
        let want = frames();
        for step in [1, 5, 70_000] {
            let mut r = FrameReader::new(Trickle {
                data: wire(&want),
                pos: 0,
                step,
            });
            let h = r.read_head().unwrap().unwrap();
            assert_eq!(h, want[0].header);
            let mut body = Vec::new();
            r.body().read_to_end(&mut body).unwrap();
            assert_eq!(body, b"hello");
            // Skip the empty body, and most of the big one.
            assert_eq!(r.read_head().unwrap().unwrap(), want[1].header);
            assert_eq!(r.read_head().unwrap().unwrap(), want[2].header);
            let mut first = [0u8; 10];
            r.body().read_exact(&mut first).unwrap();
            assert_eq!(first, [5u8; 10]);
            assert!(r.read_head().unwrap().is_none());
        }
    }

    #[test]
    fn into_frame_collects_the_rest() {
        let want = frames();
        let mut r = FrameReader::new(Trickle {
            data: wire(&want),
            pos: 0,
            step: 1000,
        });
        for f in &want {
            let h = r.read_head().unwrap().unwrap();
            assert_eq!(&r.body().into_frame(h).unwrap(), f);
        }
    }

    #[test]
    fn eof_inside_a_frame_reports_missing_octets() {
        let w = wire(&frames()[..1]);
        let cut = w.len() - 2;
        let mut r = FrameReader::new(Cursor::new(w[..cut].to_vec()));
        match r.read_frame() {
            Err(Error::Decode(e)) => {
                assert_eq!(
                    (e.code(), e.offset(), e.missing()),
                    ("unexpected_eof", cut as u64, Some(2))
                );
            }
            other => panic!("expected unexpected_eof, got {other:?}"),
        }
        let mut r = FrameReader::new(Cursor::new(w[..cut].to_vec()));
        r.read_head().unwrap().unwrap();
        let err = r.body().read_to_end(&mut Vec::new()).unwrap_err();
        assert!(matches!(Error::from(err), Error::Decode(e) if e.missing() == Some(2)));
    }

    #[test]
    fn a_huge_declared_body_allocates_nothing_in_advance() {
        let mut h = Header::with_kind("put");
        h.set_body_len(1 << 40);
        let mut head = BytesMut::new();
        Encoder::new().encode_head(&h, 1 << 40, &mut head).unwrap();
        head.extend_from_slice(&[1u8; 100]);
        let limits = Limits::new().with_max_body_len(1 << 50);
        let mut r = FrameReader::with(Cursor::new(head.to_vec()), Profile::Lhp1, limits);
        assert_eq!(r.read_head().unwrap().unwrap().body_len(), 1 << 40);
        let mut sink = Vec::new();
        assert!(r.body().read_to_end(&mut sink).is_err());
        assert_eq!(sink.len(), 100);
        let held = r.buf.capacity() + r.spare.len();
        assert!(held <= 2 * REGION, "{held}");
    }

    /// A reader that records the largest read it was offered and fails once, with a timeout,
    /// after `fail_at` octets.
    struct Probe {
        data: Vec<u8>,
        pos: usize,
        largest: usize,
        fail_at: Option<usize>,
    }

    impl Read for Probe {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.largest = self.largest.max(out.len());
            if self.fail_at.is_some_and(|at| self.pos >= at) {
                self.fail_at = None;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let end = self
                .data
                .len()
                .min(self.pos + out.len())
                .min(self.fail_at.unwrap_or(usize::MAX).max(self.pos + 1));
            let n = end - self.pos;
            out[..n].copy_from_slice(&self.data[self.pos..end]);
            self.pos = end;
            Ok(n)
        }
    }

    fn probe(frames: &[Frame], fail_at: Option<usize>) -> FrameReader<Probe> {
        FrameReader::new(Probe {
            data: wire(frames),
            pos: 0,
            largest: 0,
            fail_at,
        })
    }

    fn big(len: usize) -> Frame {
        let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        Frame::new(Header::with_kind("big"), body.into())
    }

    #[test]
    fn large_bodies_are_read_in_reads_larger_than_64_kib() {
        let want = [big(4 << 20), big(3 << 20)];
        let mut r = probe(&want, None);
        for f in &want {
            assert_eq!(r.read_frame().unwrap().as_ref(), Some(f));
        }
        assert!(r.read_frame().unwrap().is_none());
        assert!(r.get_ref().largest > 64 << 10, "{}", r.get_ref().largest);
        assert!(r.get_ref().largest <= MAX_READ, "{}", r.get_ref().largest);

        // Streamed, the read size grows with what the reads returned.
        let mut r = probe(&want, None);
        for f in &want {
            let h = r.read_head().unwrap().unwrap();
            let mut body = Vec::new();
            r.body().read_to_end(&mut body).unwrap();
            assert_eq!((h, &body[..]), (f.header.clone(), &f.body[..]));
        }
        assert!(r.get_ref().largest > 64 << 10, "{}", r.get_ref().largest);
    }

    #[test]
    fn a_failed_read_inside_a_large_body_loses_nothing() {
        let want = [big(2 << 20), big(10), big(1 << 20)];
        for fail_at in [5, 100_000, 1 << 20, (2 << 20) + 100] {
            let mut r = probe(&want, Some(fail_at));
            let mut got = Vec::new();
            while got.len() < want.len() {
                match r.read_frame() {
                    Ok(Some(f)) => got.push(f),
                    Ok(None) => panic!("early end"),
                    // A socket timeout is `Error::Timeout`, and the stream goes on.
                    Err(Error::Timeout(_)) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(got, want, "fail at {fail_at}");
        }
    }

    #[test]
    fn a_new_large_body_grows_with_what_arrived_not_what_was_declared() {
        let arrived = 300 << 10;
        let mut h = Header::with_kind("put");
        h.set_body_len(1 << 30);
        let mut w = BytesMut::new();
        Encoder::new().encode_head(&h, 1 << 30, &mut w).unwrap();
        w.extend_from_slice(&vec![7u8; arrived]);
        let fail_at = Some(w.len());
        let limits = Limits::new().with_max_body_len(1 << 40);
        let data = w.to_vec();
        let source = Probe {
            data,
            pos: 0,
            largest: 0,
            fail_at,
        };
        let mut r = FrameReader::with(source, Profile::Lhp1, limits);
        // Everything sent has arrived, then the peer goes quiet.
        assert!(matches!(r.read_frame(), Err(Error::Timeout(_))));
        assert_eq!(r.buf.len(), arrived);
        assert!(r.buf.iter().all(|&b| b == 7));
        let held = r.buf.capacity() + r.spare.len();
        assert!(
            held <= 2 * arrived + REGION,
            "{held} held for {arrived} arrived"
        );
        // The stream then ends: every octet that arrived was kept.
        match r.read_frame() {
            Err(Error::Decode(e)) => assert_eq!(e.missing(), Some((1 << 30) - arrived as u64)),
            other => panic!("expected unexpected_eof, got {other:?}"),
        }
    }

    #[test]
    fn eof_inside_a_large_body_reports_missing_octets() {
        let w = wire(&[big(1 << 20)]);
        let cut = w.len() - 1000;
        let mut r = FrameReader::new(Cursor::new(w[..cut].to_vec()));
        match r.read_frame() {
            Err(Error::Decode(e)) => {
                assert_eq!((e.code(), e.missing()), ("unexpected_eof", Some(1000)));
            }
            other => panic!("expected unexpected_eof, got {other:?}"),
        }
    }

    /// A reader that records the size of every read it is asked for and returns at most
    /// `step` octets per read (what a socket does when the sender is ahead).
    struct Asks {
        data: Vec<u8>,
        pos: usize,
        step: usize,
        asked: Vec<usize>,
    }

    impl Read for Asks {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.asked.push(out.len());
            let n = self.step.min(out.len()).min(self.data.len() - self.pos);
            out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn small_frames(count: usize) -> Vec<Frame> {
        (0..count)
            .map(|i| {
                let mut h = Header::with_kind("upload");
                h.set_id(i as u64).set_name("sensor-42/temperature.bin");
                Frame::new(h, vec![(i % 251) as u8; 100].into())
            })
            .collect()
    }

    /// Whole small frames (`read_frame_ref`, `read_frame`) are read with all the read space the
    /// reader has, as a 64 KiB `BufReader` would: one read picks up every frame that arrived,
    /// not 8 KiB of them. A read that asks for less than half a region is one made right
    /// before the read space runs out (then a new region is made, of at least 64 KiB).
    #[test]
    fn whole_small_frames_are_read_with_all_the_room_there_is() {
        let want = small_frames(5_000);
        let total = wire(&want).len();
        for lent in [true, false] {
            let mut r = FrameReader::new(Asks {
                data: wire(&want),
                pos: 0,
                step: usize::MAX,
                asked: Vec::new(),
            });
            for (i, f) in want.iter().enumerate() {
                if lent {
                    let got = r.read_frame_ref().unwrap().unwrap();
                    assert_eq!(got.to_frame(), *f, "frame {i}");
                } else {
                    assert_eq!(r.read_frame().unwrap().as_ref(), Some(f), "frame {i}");
                }
            }
            assert!(r.read_frame_ref().unwrap().is_none());
            let asked = &r.get_ref().asked;
            let small = asked.iter().filter(|&&a| a < REGION / 2).count();
            assert!(
                asked.iter().all(|&a| a >= MIN_READ - 1024) && small * 4 <= asked.len(),
                "lent {lent}: {asked:?}"
            );
            // About one read per 64 KiB region, not one per 8 KiB.
            assert!(
                asked.len() <= 2 * total / REGION + 2,
                "lent {lent}: {asked:?}"
            );
        }
    }

    /// Reads that return little at a time (the peer is slow) still deliver every frame, and
    /// each one asks for all the read space there is.
    #[test]
    fn whole_small_frames_through_short_reads() {
        let want = small_frames(3_000);
        for step in [1, 150, 9_000] {
            let mut r = FrameReader::new(Asks {
                data: wire(&want),
                pos: 0,
                step,
                asked: Vec::new(),
            });
            for (i, f) in want.iter().enumerate() {
                let got = r.read_frame_ref().unwrap().unwrap();
                assert_eq!(got.to_frame(), *f, "frame {i}, step {step}");
            }
            assert!(r.read_frame_ref().unwrap().is_none());
            let asked = &r.get_ref().asked;
            assert!(asked.iter().all(|&a| a >= MIN_READ), "step {step}");
            let big = asked.iter().filter(|&&a| a >= REGION / 2).count();
            assert!(
                big * 2 >= asked.len(),
                "step {step}: {big} of {}",
                asked.len()
            );
        }
    }

    /// A header whose body may be streamed is read with a read sized for it (at most 8 KiB
    /// here), so that the body's octets are left in the source for `Body::read` to read
    /// straight into the caller's buffer.
    #[test]
    fn a_head_is_read_with_a_sized_read() {
        let want = [big(1 << 20)];
        let head = wire(&want).len() - (1 << 20);
        let mut r = FrameReader::new(Asks {
            data: wire(&want),
            pos: 0,
            step: usize::MAX,
            asked: Vec::new(),
        });
        assert_eq!(r.read_head().unwrap().unwrap(), want[0].header);
        assert_eq!(r.get_ref().asked, [MIN_READ]);
        let mut body = vec![0u8; 1 << 20];
        r.body().read_exact(&mut body).unwrap();
        assert_eq!(body, want[0].body);
        // After the first 8 KiB, the rest went straight into `body`: reads the size of what
        // was left of it.
        let asked = &r.get_ref().asked;
        assert_eq!(
            asked.get(1),
            Some(&((1 << 20) - (MIN_READ - head))),
            "{asked:?}"
        );
    }

    #[test]
    fn small_frames_follow_a_large_one() {
        let mut want = vec![big(2 << 20)];
        want.extend(
            (0..2000).map(|i| Frame::new(Header::with_kind("s"), vec![i as u8; 50].into())),
        );
        let mut r = probe(&want, None);
        for f in &want {
            assert_eq!(r.read_frame().unwrap().as_ref(), Some(f));
        }
        assert!(r.read_frame().unwrap().is_none());
    }
}
