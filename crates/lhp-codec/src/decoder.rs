//! The decoder (§3–§7): a state machine fed bytes by the caller, sans IO.
//!
//! ```text
//!   +----------+   4 octets    +----------+   H octets   +----------+  B octets
//!   |  Prefix  | ------------> |  Header  | -----------> |   Body   | ---------> back to Prefix
//!   +----------+  check H      +----------+  check JSON  +----------+  check digest
//!                 (§3.2)                     (§4), B (§5)
//! ```
//!
//! Every check happens as soon as the octets it needs have arrived, and depends only on those
//! octets, so any chunking of a stream gives the same frames and the same error at the same
//! offset as the whole stream at once.

use bytes::{Buf, Bytes, BytesMut};
use md5::Md5;
use sha2::{Digest as _, Sha256};

use crate::error::{DecodeError, DecodeErrorKind, Part};
use crate::fast::Table;
use crate::header::{self, hex_lower, Checked, ExpectedDigest, Pending};
use crate::typed::{FrameRef, FrameSpan, RawFrame};
use crate::{Frame, Header, Limits, Profile};

/// Octets in the header length prefix (§3.1).
pub const PREFIX_LEN: usize = 4;

/// The smallest header length: `{}` (§3.2).
pub const MIN_HEADER_LEN: u32 = 2;

/// One step of a frame delivered as a stream (see [`Decoder::decode_event`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The header is complete and valid; `header.body_len()` body octets follow.
    Head(Header),
    /// The next octets of the body, split off the input buffer without copying.
    Body(Bytes),
    /// The body is complete (and its digest, if any, verified).
    End,
}

/// An incremental LHP/1 decoder.
///
/// Feed it a [`BytesMut`] holding what has arrived so far; it splits off what it decodes and
/// leaves the rest. `Ok(None)` means "read more": incomplete input is never an error.
///
/// ```
/// use bytes::BytesMut;
/// use lhp_codec::{Decoder, Encoder, Frame, Header};
///
/// let mut wire = BytesMut::new();
/// let frame = Frame::new(Header::with_kind("echo"), "hi".into());
/// Encoder::new().encode(&frame, &mut wire).unwrap();
///
/// let mut dec = Decoder::new();
/// let mut buf = BytesMut::new();
/// for byte in wire.iter() {
///     // One octet at a time: the frame appears exactly once, at the end.
///     assert_eq!(dec.decode(&mut buf).unwrap(), None);
///     buf.extend_from_slice(&[*byte]);
/// }
/// assert_eq!(dec.decode(&mut buf).unwrap(), Some(frame));
/// assert!(dec.finish(&buf).is_ok()); // a clean end between frames
/// ```
#[derive(Debug)]
pub struct Decoder {
    profile: Profile,
    limits: Limits,
    verify_digests: bool,
    state: State,
    /// Absolute stream offset of the first octet of the caller's buffer.
    offset: u64,
    /// Absolute stream offset of the current frame's first prefix octet.
    frame_start: u64,
    /// In-place decoding ([`decode_span`](Decoder::decode_span)): the validated head of a
    /// frame whose body has not all arrived yet, so that it is not validated again.
    in_place: Option<InPlace>,
    /// The members of the last header decoded in place, when the fast path read them. Boxed
    /// (once, on the first in-place decode) so that a decoder stays small inside the futures
    /// of idle connections.
    table: Option<Box<Table>>,
}

/// A frame decoded in place whose head is complete and valid.
#[derive(Debug)]
struct InPlace {
    /// Octets of prefix and header.
    head: usize,
    /// The body length.
    body_len: u64,
    digests: Vec<ExpectedDigest>,
    /// The fast path read the header: its members are in the decoder's `table`.
    fast: bool,
}

#[derive(Debug)]
enum State {
    Prefix,
    Header {
        len: usize,
    },
    Body {
        header: Header,
        remaining: u64,
        /// Digests to verify (§6); empty for most frames.
        digests: Vec<Running>,
    },
    Failed(DecodeError),
}

#[derive(Debug)]
struct Running {
    expected: ExpectedDigest,
    hasher: Hasher,
}

#[derive(Debug)]
enum Hasher {
    Sha256(Sha256),
    Md5(Md5),
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder for the `lhp1` profile with default [`Limits`].
    pub fn new() -> Self {
        Decoder::with(Profile::Lhp1, Limits::default())
    }

    /// A decoder for `profile` under `limits`.
    pub fn with(profile: Profile, limits: Limits) -> Self {
        Decoder {
            profile,
            limits,
            verify_digests: true,
            state: State::Prefix,
            offset: 0,
            frame_start: 0,
            in_place: None,
            table: None,
        }
    }

    /// Whether `sha256` (and in `seed-compat`, `md5`) digests are verified (§6). Default: yes.
    pub fn set_verify_digests(&mut self, verify: bool) -> &mut Self {
        self.verify_digests = verify;
        self
    }

    /// Declares that `skipped` octets of the stream were consumed before the decoder saw it, so
    /// error offsets count from the true start of the stream.
    pub fn set_stream_offset(&mut self, skipped: u64) -> &mut Self {
        self.offset = skipped;
        self.frame_start = skipped;
        self
    }

    /// The profile.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Absolute stream offset of the first octet not yet consumed.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// True when the decoder is between frames (a clean place for the stream to end).
    pub fn is_between_frames(&self) -> bool {
        matches!(self.state, State::Prefix)
    }

    /// How many more octets, beyond the `buffered` ones, complete the element being decoded (the
    /// prefix, the header, or the body). A shell uses it to size reads; it is bounded by the
    /// limits, and never more than what was checked against them.
    pub fn wanted(&self, buffered: usize) -> u64 {
        let need = match &self.state {
            State::Prefix => match &self.in_place {
                Some(p) => p.head as u64 + p.body_len,
                None => PREFIX_LEN as u64,
            },
            State::Header { len } => *len as u64,
            State::Body { remaining, .. } => *remaining,
            State::Failed(_) => 0,
        };
        need.saturating_sub(buffered as u64)
    }

    /// Decodes one whole frame, its body split off `buf` without copying once all of it has
    /// arrived. `Ok(None)`: more input is needed.
    ///
    /// If the current frame was begun with [`decode_event`](Self::decode_event), this returns
    /// the frame's header with the *rest* of its body.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        loop {
            match &mut self.state {
                State::Failed(e) => return Err(e.clone()),
                State::Prefix => {
                    if !self.read_prefix(buf)? {
                        return Ok(None);
                    }
                }
                State::Header { len } => {
                    let len = *len;
                    // A tail call, so that the frame is written once, in the caller's slot
                    // (kept in a local first, it cost one more copy of the ≈250-octet
                    // `Frame` per frame).
                    return self.read_whole(buf, len);
                }
                State::Body { remaining, .. } => {
                    let Ok(need) = usize::try_from(*remaining) else {
                        return Ok(None);
                    };
                    if buf.len() < need {
                        return Ok(None);
                    }
                    let body = buf.split_to(need).freeze();
                    self.take_body(&body);
                    let header = self.finish_body()?;
                    return Ok(Some(Frame { header, body }));
                }
            }
        }
    }

    /// Decodes the next [`Event`] of a frame delivered as a stream: [`Event::Head`], then
    /// [`Event::Body`] chunks of whatever has arrived, then [`Event::End`]. Bodies of any length
    /// up to `max_body_len` pass through without being buffered. `Ok(None)`: more input is
    /// needed.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use lhp_codec::{Decoder, Encoder, Event, Frame, Header, Limits, Profile};
    ///
    /// let mut wire = BytesMut::new();
    /// Encoder::new().encode(&Frame::new(Header::with_kind("put"), vec![7u8; 10].into()), &mut wire).unwrap();
    /// let mut dec = Decoder::with(Profile::Lhp1, Limits::default());
    /// let mut buf = wire.split_to(34); // the 32-octet head and 2 body octets arrive first
    /// assert!(matches!(dec.decode_event(&mut buf).unwrap(), Some(Event::Head(h)) if h.body_len() == 10));
    /// assert_eq!(dec.decode_event(&mut buf).unwrap(), Some(Event::Body(vec![7u8; 2].into())));
    /// assert_eq!(dec.decode_event(&mut buf).unwrap(), None);
    /// buf.unsplit(wire);
    /// assert_eq!(dec.decode_event(&mut buf).unwrap(), Some(Event::Body(vec![7u8; 8].into())));
    /// assert_eq!(dec.decode_event(&mut buf).unwrap(), Some(Event::End));
    /// ```
    pub fn decode_event(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, DecodeError> {
        loop {
            match &mut self.state {
                State::Failed(e) => return Err(e.clone()),
                State::Prefix => {
                    if !self.read_prefix(buf)? {
                        return Ok(None);
                    }
                }
                State::Header { len } => {
                    let len = *len;
                    if !self.read_header(buf, len)? {
                        return Ok(None);
                    }
                    if let State::Body { header, .. } = &self.state {
                        return Ok(Some(Event::Head(header.clone())));
                    }
                }
                State::Body { remaining: 0, .. } => {
                    self.finish_body()?;
                    return Ok(Some(Event::End));
                }
                State::Body { remaining, .. } => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = usize::try_from(*remaining).map_or(buf.len(), |r| r.min(buf.len()));
                    let chunk = buf.split_to(n).freeze();
                    self.take_body(&chunk);
                    return Ok(Some(Event::Body(chunk)));
                }
            }
        }
    }

    /// Decodes one whole frame in place: `buf` holds the octets not yet consumed, starting at
    /// a frame boundary; the frame is returned borrowed from it, its header validated (§4) but
    /// not built. The caller then drops the frame's [`len`](FrameRef::len) octets from the
    /// front of its buffer. `Ok(None)`: more input is needed (the head, once valid, is not
    /// validated again while the body arrives). Errors, offsets and the sticky failure are
    /// those of [`decode`](Self::decode). Nothing is allocated (unless the header needs the
    /// general parser, or declares a digest).
    ///
    /// The frame borrows the decoder too, until it (and a typed header deserialized from it)
    /// is dropped: the members the validation pass read stay in the decoder, where
    /// [`FrameRef::header`] reads them, instead of being copied into every frame. To keep
    /// borrows of `buf` across decodes, use [`decode_span`](Self::decode_span), which returns
    /// where the frame lies and borrows nothing.
    ///
    /// Use it between frames only: during a frame begun with
    /// [`decode_event`](Self::decode_event) it returns `Ok(None)`.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use lhp_codec::{Decoder, Encoder, Frame, Header};
    ///
    /// let mut wire = BytesMut::new();
    /// Encoder::new().encode(&Frame::new(Header::with_kind("echo"), "hi".into()), &mut wire).unwrap();
    /// let mut dec = Decoder::new();
    /// assert_eq!(dec.decode_ref(&wire[..7]).unwrap(), None);
    /// let f = dec.decode_ref(&wire).unwrap().unwrap();
    /// assert_eq!((f.header_text(), f.body(), f.len()), (r#"{"kind":"echo","body_len":2}"#, &b"hi"[..], wire.len()));
    /// ```
    pub fn decode_ref<'b>(
        &'b mut self,
        buf: &'b [u8],
    ) -> Result<Option<FrameRef<'b>>, DecodeError> {
        Ok(self
            .decode_span(buf)?
            .and_then(|span| self.frame_ref(&span, buf)))
    }

    /// The frame [`decode_span`](Self::decode_span) just returned `span` for, in `buf` (the
    /// same buffer). `None` for any other buffer that does not hold a valid header there.
    /// Like [`decode_ref`](Self::decode_ref)'s, the frame borrows the decoder's member table.
    pub fn frame_ref<'b>(&'b self, span: &FrameSpan, buf: &'b [u8]) -> Option<FrameRef<'b>> {
        let table = self
            .table
            .as_deref()
            .filter(|t| span.fast && t.is_complete());
        FrameRef::new(buf, span, self.profile, table)
    }

    /// [`decode_ref`](Self::decode_ref), returning where the frame lies in `buf` instead of
    /// borrowing it (for a caller that must touch its buffer before looking at the frame).
    pub fn decode_span(&mut self, buf: &[u8]) -> Result<Option<FrameSpan>, DecodeError> {
        match &self.state {
            State::Failed(e) => return Err(e.clone()),
            State::Prefix => {}
            State::Header { .. } | State::Body { .. } => return Ok(None),
        }
        let Some(&prefix) = buf.first_chunk::<PREFIX_LEN>() else {
            return Ok(None);
        };
        let head = match self.in_place.take() {
            Some(p) => p,
            None => {
                let len = self.check_prefix(prefix)?;
                let Some(raw) = buf.get(PREFIX_LEN..PREFIX_LEN + len) else {
                    return Ok(None);
                };
                let header_start = self.offset + PREFIX_LEN as u64;
                let table = self.table.get_or_insert_with(Box::default);
                let (checked, fast) = match header::validate(raw, self.profile, Some(table)) {
                    Ok(c) => c,
                    Err(kind) => return Err(self.fail(DecodeError::new(header_start, kind))),
                };
                if checked.body_len > self.limits.max_body_len() {
                    return Err(self.fail(DecodeError::new(
                        header_start,
                        DecodeErrorKind::BodyTooLarge {
                            len: checked.body_len,
                            max: self.limits.max_body_len(),
                        },
                    )));
                }
                InPlace {
                    head: PREFIX_LEN + len,
                    body_len: checked.body_len,
                    digests: if self.verify_digests {
                        checked.digests
                    } else {
                        Vec::new()
                    },
                    fast,
                }
            }
        };
        let end = usize::try_from(head.body_len)
            .ok()
            .and_then(|b| b.checked_add(head.head));
        let Some(body) = end.and_then(|end| buf.get(head.head..end)) else {
            self.in_place = Some(head);
            return Ok(None);
        };
        let body_start = self.offset + head.head as u64;
        for expected in &head.digests {
            if let Some(kind) = mismatch(expected, body) {
                return Err(self.fail(DecodeError::new(body_start, kind)));
            }
        }
        let span = FrameSpan {
            header: PREFIX_LEN..head.head,
            body: head.head..head.head + body.len(),
            fast: head.fast,
        };
        self.offset += span.body.end as u64;
        self.frame_start = self.offset;
        Ok(Some(span))
    }

    /// [`decode_ref`](Self::decode_ref) on a [`BytesMut`]: the frame is split off `buf` as a
    /// [`RawFrame`] (header text and body, without a copy). What a `tokio_util` codec wants.
    #[inline]
    pub fn decode_raw(&mut self, buf: &mut BytesMut) -> Result<Option<RawFrame>, DecodeError> {
        let Some(span) = self.decode_span(buf)? else {
            return Ok(None);
        };
        // One split per frame: the header text and the body stay one `Bytes` (one reference
        // count to take and to drop, as for a `LengthDelimitedCodec` frame).
        let mut octets = buf.split_to(span.body.end).freeze();
        octets.advance(PREFIX_LEN);
        let table = self
            .table
            .as_deref()
            .filter(|t| span.fast && t.is_complete());
        Ok(Some(RawFrame::new(
            octets,
            span.header.len(),
            self.profile,
            table,
        )))
    }

    /// For [`finish`](Self::finish) between frames: what is missing from a frame being decoded
    /// in place (only a prefix can be partial otherwise).
    fn in_place_missing(&mut self, buf: &BytesMut) -> (u64, Part) {
        if let Some(p) = &self.in_place {
            return (p.head as u64 + p.body_len, Part::Body);
        }
        match buf.first_chunk::<PREFIX_LEN>() {
            Some(&prefix) => match self.check_prefix(prefix) {
                Ok(len) => ((PREFIX_LEN + len) as u64, Part::Header),
                Err(_) => (PREFIX_LEN as u64, Part::Prefix),
            },
            None => (PREFIX_LEN as u64, Part::Prefix),
        }
    }

    /// Accounts for body octets of a streamed frame (after [`Event::Head`]) that the caller
    /// read from the transport straight into its own buffer, because its input buffer held no
    /// body octets: they are hashed for the digest check (§6) and counted, exactly as if they
    /// had come through [`decode_event`](Self::decode_event) as an [`Event::Body`]. Read at most
    /// [`wanted(0)`](Self::wanted) octets, so that the next frame's octets stay in the input
    /// buffer. Returns how many of `octets` were taken: all of them, or, outside a body, or past
    /// its end, fewer (the caller's mistake; the rest is not part of the body).
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use lhp_codec::{Decoder, Encoder, Event, Frame, Header};
    ///
    /// let mut wire = BytesMut::new();
    /// Encoder::new().encode(&Frame::new(Header::with_kind("put"), "0123456789".into()), &mut wire).unwrap();
    /// let mut dec = Decoder::new();
    /// let mut head = wire.split_to(wire.len() - 10);
    /// assert!(matches!(dec.decode_event(&mut head).unwrap(), Some(Event::Head(_))));
    /// assert_eq!(dec.wanted(0), 10);
    /// assert_eq!(dec.feed_body(&wire[..10]), 10); // read by the caller into its own buffer
    /// assert_eq!(dec.decode_event(&mut head).unwrap(), Some(Event::End));
    /// ```
    pub fn feed_body(&mut self, octets: &[u8]) -> usize {
        let State::Body { remaining, .. } = &self.state else {
            return 0;
        };
        let n = usize::try_from(*remaining).map_or(octets.len(), |r| r.min(octets.len()));
        self.take_body(octets.get(..n).unwrap_or_default());
        n
    }

    /// Call when the stream has ended, after `decode`/`decode_event` returned `Ok(None)`.
    /// `Ok(())` if it ended cleanly between frames; otherwise `unexpected_eof` with the number
    /// of missing octets (§3.4).
    pub fn finish(&mut self, buf: &BytesMut) -> Result<(), DecodeError> {
        let (missing, part) = match &self.state {
            State::Failed(e) => return Err(e.clone()),
            State::Prefix if buf.is_empty() => return Ok(()),
            State::Prefix => self.in_place_missing(buf),
            State::Header { len } => (*len as u64, Part::Header),
            State::Body { remaining, .. } => (*remaining, Part::Body),
        };
        let missing = missing.saturating_sub(buf.len() as u64);
        let end = self.offset + buf.len() as u64;
        Err(self.fail(DecodeError::new(
            end,
            DecodeErrorKind::UnexpectedEof { missing, part },
        )))
    }

    /// [`decode`](Self::decode) at the end of the stream: a frame if one is complete, `None`
    /// on a clean end, `unexpected_eof` otherwise.
    pub fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        match self.decode(buf)? {
            Some(frame) => Ok(Some(frame)),
            None => self.finish(buf).map(|()| None),
        }
    }

    fn fail(&mut self, e: DecodeError) -> DecodeError {
        self.state = State::Failed(e.clone());
        e
    }

    /// §3.2. Returns false if the prefix is incomplete.
    fn read_prefix(&mut self, buf: &mut BytesMut) -> Result<bool, DecodeError> {
        let Some(&prefix) = buf.first_chunk::<PREFIX_LEN>() else {
            return Ok(false);
        };
        self.in_place = None;
        let len = self.check_prefix(prefix)?;
        buf.advance(PREFIX_LEN);
        self.offset += PREFIX_LEN as u64;
        self.state = State::Header { len };
        Ok(true)
    }

    /// §3.2: the header length a prefix declares, if the receiver accepts it.
    fn check_prefix(&mut self, prefix: [u8; PREFIX_LEN]) -> Result<usize, DecodeError> {
        self.frame_start = self.offset;
        let declared: i64 = match self.profile {
            Profile::Lhp1 => i64::from(u32::from_be_bytes(prefix)),
            Profile::SeedCompat => i64::from(i32::from_le_bytes(prefix)),
        };
        if declared < i64::from(MIN_HEADER_LEN) {
            return Err(self.fail(DecodeError::new(
                self.frame_start,
                DecodeErrorKind::HeaderLenTooSmall { len: declared },
            )));
        }
        let max = self.limits.max_header_len();
        if declared > i64::from(max) {
            return Err(self.fail(DecodeError::new(
                self.frame_start,
                DecodeErrorKind::HeaderLenTooLarge {
                    len: declared.unsigned_abs(),
                    max,
                    first_octets: prefix,
                },
            )));
        }
        // `declared` is in MIN_HEADER_LEN..=max, a u32.
        Ok(declared.unsigned_abs() as usize)
    }

    /// §4, §5. Returns false if the header is incomplete.
    fn read_header(&mut self, buf: &mut BytesMut, len: usize) -> Result<bool, DecodeError> {
        let Some((pending, checked)) = self.check_head(buf, len)? else {
            return Ok(false);
        };
        let whole =
            usize::try_from(checked.body_len).is_ok_and(|b| buf.len().saturating_sub(len) >= b);
        let header = self.take_head(pending, buf, len, whole);
        self.enter_body(header, checked);
        Ok(true)
    }

    /// §4, §5: validates the complete header of `len` octets at the front of `buf` and checks
    /// its body length against the limits. `Ok(None)`: the header is not complete.
    fn check_head(
        &mut self,
        buf: &BytesMut,
        len: usize,
    ) -> Result<Option<(Pending, Checked)>, DecodeError> {
        let Some(raw) = buf.get(..len) else {
            return Ok(None);
        };
        let header_start = self.offset;
        let (pending, checked) = match header::check_header(raw, self.profile) {
            Ok(parsed) => parsed,
            Err(kind) => return Err(self.fail(DecodeError::new(header_start, kind))),
        };
        if checked.body_len > self.limits.max_body_len() {
            return Err(self.fail(DecodeError::new(
                header_start,
                DecodeErrorKind::BodyTooLarge {
                    len: checked.body_len,
                    max: self.limits.max_body_len(),
                },
            )));
        }
        Ok(Some((pending, checked)))
    }

    /// Takes the checked header's `len` octets off the front of `buf` and makes the
    /// [`Header`]. It keeps its text (when it came through the fast path): as a slice of the
    /// input buffer when the whole frame is there (`whole`), since its body will be a slice of
    /// the same buffer; else as a copy, so that it does not pin a buffer the body's octets
    /// must be read past.
    fn take_head(
        &mut self,
        pending: Pending,
        buf: &mut BytesMut,
        len: usize,
        whole: bool,
    ) -> Header {
        let text = if !pending.keeps_text() {
            buf.advance(len);
            Bytes::new()
        } else if whole {
            buf.split_to(len).freeze()
        } else {
            let text = Bytes::copy_from_slice(buf.get(..len).unwrap_or_default());
            buf.advance(len);
            text
        };
        self.offset += len as u64;
        pending.into_header(|| text)
    }

    /// Enters the `Body` state for `header`, with the digests to verify (§6).
    fn enter_body(&mut self, header: Header, checked: Checked) {
        let digests = if self.verify_digests {
            checked
                .digests
                .into_iter()
                .map(|expected| {
                    let hasher = match expected {
                        ExpectedDigest::Sha256(_) => Hasher::Sha256(Sha256::new()),
                        ExpectedDigest::Md5(_) => Hasher::Md5(Md5::new()),
                    };
                    Running { expected, hasher }
                })
                .collect()
        } else {
            Vec::new()
        };
        self.state = State::Body {
            header,
            remaining: checked.body_len,
            digests,
        };
    }

    /// [`read_header`](Self::read_header) for a whole frame: when the body is already in
    /// `buf` and has no digest to verify, the frame is made and returned at once, its header
    /// built straight into it (a `Header` is some 200 octets: it is not moved into the `Body`
    /// state and out again). A body with a digest to verify (§6) that is already in `buf` goes
    /// through the `Body` state and is returned with its header. `Ok(None)`: no frame yet,
    /// and the decoder is still in the `Header` state (the header is not complete) or now in
    /// the `Body` state (the body is not complete).
    fn read_whole(&mut self, buf: &mut BytesMut, len: usize) -> Result<Option<Frame>, DecodeError> {
        let Some((pending, checked)) = self.check_head(buf, len)? else {
            return Ok(None);
        };
        let verify = self.verify_digests && !checked.digests.is_empty();
        let need = usize::try_from(checked.body_len)
            .ok()
            .filter(|&b| buf.len().saturating_sub(len) >= b);
        let Some(need) = need.filter(|_| !verify) else {
            let header = self.take_head(pending, buf, len, need.is_some());
            self.enter_body(header, checked);
            let Some(need) = need else {
                return Ok(None);
            };
            // What `decode`'s `Body` state does, here so that `decode` can return this
            // function's result as it is.
            let body = buf.split_to(need).freeze();
            self.take_body(&body);
            let header = self.finish_body()?;
            return Ok(Some(Frame { header, body }));
        };
        self.state = State::Prefix;
        let header = self.take_head(pending, buf, len, true);
        let body = buf.split_to(need).freeze();
        self.offset += need as u64;
        self.frame_start = self.offset;
        Ok(Some(Frame { header, body }))
    }

    /// Accounts for body octets handed to the caller.
    fn take_body(&mut self, chunk: &[u8]) {
        if let State::Body {
            remaining, digests, ..
        } = &mut self.state
        {
            *remaining -= chunk.len() as u64;
            for d in digests {
                match &mut d.hasher {
                    Hasher::Sha256(h) => h.update(chunk),
                    Hasher::Md5(h) => h.update(chunk),
                }
            }
        }
        self.offset += chunk.len() as u64;
    }

    /// §6: verifies the digest of a complete body and returns to `Prefix`.
    fn finish_body(&mut self) -> Result<Header, DecodeError> {
        let state = std::mem::replace(&mut self.state, State::Prefix);
        let State::Body {
            header, digests, ..
        } = state
        else {
            return Ok(Header::new());
        };
        for d in digests {
            let (algorithm, expected, actual) = match (d.expected, d.hasher) {
                (ExpectedDigest::Sha256(e), Hasher::Sha256(h)) => {
                    ("sha256", e.to_vec(), h.finalize().to_vec())
                }
                (ExpectedDigest::Md5(e), Hasher::Md5(h)) => {
                    ("md5", e.to_vec(), h.finalize().to_vec())
                }
                (ExpectedDigest::Sha256(e), _) => ("sha256", e.to_vec(), Vec::new()),
                (ExpectedDigest::Md5(e), _) => ("md5", e.to_vec(), Vec::new()),
            };
            if expected != actual {
                let body_len = header.body_len();
                return Err(self.fail(DecodeError::new(
                    self.offset - body_len,
                    DecodeErrorKind::DigestMismatch {
                        algorithm,
                        expected: hex_lower(&expected),
                        actual: hex_lower(&actual),
                    },
                )));
            }
        }
        self.frame_start = self.offset;
        Ok(header)
    }
}

/// §6: the error for a body that does not match `expected`, if it does not.
fn mismatch(expected: &ExpectedDigest, body: &[u8]) -> Option<DecodeErrorKind> {
    let (algorithm, expected, actual) = match expected {
        ExpectedDigest::Sha256(e) => ("sha256", &e[..], Sha256::digest(body).to_vec()),
        ExpectedDigest::Md5(e) => ("md5", &e[..], Md5::digest(body).to_vec()),
    };
    (expected != actual.as_slice()).then(|| DecodeErrorKind::DigestMismatch {
        algorithm,
        expected: hex_lower(expected),
        actual: hex_lower(&actual),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Encoder;

    fn frame(kind: &'static str, body: &'static [u8]) -> BytesMut {
        let mut out = BytesMut::new();
        Encoder::new()
            .encode(
                &Frame::new(Header::with_kind(kind), Bytes::from_static(body)),
                &mut out,
            )
            .unwrap();
        out
    }

    #[test]
    fn errors_are_sticky() {
        let mut dec = Decoder::new();
        let mut buf = BytesMut::from(&[0u8, 0, 0, 1][..]);
        let e = dec.decode(&mut buf).unwrap_err();
        assert_eq!(e.code(), "header_len_too_small");
        buf.extend_from_slice(&frame("x", b""));
        assert_eq!(dec.decode(&mut buf).unwrap_err(), e);
        assert_eq!(dec.decode_event(&mut buf).unwrap_err(), e);
        assert_eq!(dec.finish(&buf).unwrap_err(), e);
    }

    #[test]
    fn eof_reports_missing_octets() {
        let whole = frame("x", b"hello");
        for cut in 1..whole.len() {
            let mut dec = Decoder::new();
            let mut buf = BytesMut::from(&whole[..cut]);
            assert_eq!(dec.decode(&mut buf).unwrap(), None);
            let e = dec.finish(&buf).unwrap_err();
            assert_eq!(e.code(), "unexpected_eof");
            assert_eq!(e.offset(), cut as u64);
            if cut >= whole.len() - 5 {
                assert_eq!(e.missing(), Some((whole.len() - cut) as u64));
            }
        }
    }

    #[test]
    fn streaming_digest_mismatch_at_end() {
        let mut h = Header::new();
        h.set_sha256(&[0u8; 32]);
        let mut wire = BytesMut::new();
        Encoder::new()
            .encode(&Frame::new(h, Bytes::from_static(b"abc")), &mut wire)
            .unwrap();
        let body_offset = (wire.len() - 3) as u64;
        let mut dec = Decoder::new();
        assert!(matches!(
            dec.decode_event(&mut wire),
            Ok(Some(Event::Head(_)))
        ));
        assert!(matches!(
            dec.decode_event(&mut wire),
            Ok(Some(Event::Body(_)))
        ));
        let e = dec.decode_event(&mut wire).unwrap_err();
        assert_eq!(e.code(), "digest_mismatch");
        assert_eq!(e.offset(), body_offset);
    }

    /// §6: a whole frame with a digest, all in one buffer, comes out of one `decode` call
    /// (through the `Body` state, inside `read_whole`): verified when the digest matches,
    /// `digest_mismatch` at the body's first octet when it does not, and the frame after it
    /// decodes too.
    #[test]
    fn a_whole_frame_with_a_digest_is_verified_in_one_call() {
        let body = Bytes::from_static(b"abc");
        let right: [u8; 32] = Sha256::digest(&body).into();
        for (digest, ok) in [(right, true), ([0u8; 32], false)] {
            let mut h = Header::with_kind("put");
            h.set_sha256(&digest);
            let mut wire = BytesMut::new();
            let enc = Encoder::new();
            enc.encode(&Frame::new(h, body.clone()), &mut wire).unwrap();
            let body_offset = (wire.len() - body.len()) as u64;
            enc.encode(
                &Frame::new(Header::with_kind("next"), body.clone()),
                &mut wire,
            )
            .unwrap();
            let mut dec = Decoder::new();
            match dec.decode(&mut wire) {
                Ok(Some(f)) => {
                    assert!(ok);
                    assert_eq!((f.header.kind(), &f.body[..]), (Some("put"), &body[..]));
                    let next = dec.decode(&mut wire).unwrap().unwrap();
                    assert_eq!(next.header.kind(), Some("next"));
                    assert!(wire.is_empty());
                }
                Ok(None) => panic!("a whole frame in the buffer needs no more input"),
                Err(e) => {
                    assert!(!ok);
                    assert_eq!((e.code(), e.offset()), ("digest_mismatch", body_offset));
                }
            }
        }
    }

    /// §4.1: a header that is not UTF-8 is refused with `header_not_utf8` at the header's
    /// first octet by every entry point, the in-place and raw ones included (they make the
    /// header's `&str` after the validation pass, which must have refused it first).
    #[test]
    fn non_utf8_headers_are_refused_by_every_entry_point() {
        let texts: [&[u8]; 7] = [
            b"{\"kind\":\"\xff\"}",              // not a UTF-8 octet, in a value
            b"{\"k\xc3\":1}",                    // a sequence cut short by the quote, in a name
            b"{\"kind\":\"\xed\xa0\x80\"}",      // a surrogate
            b"{\"kind\":\"\xc0\xaf\"}",          // an overlong encoding
            b"{\"kind\":\"\xf4\x90\x80\x80\"}",  // past U+10FFFF
            b"{\x80\"kind\":\"x\"}",             // outside strings
            b"{\"a\":\"0123456789abcdef\x80\"}", // past the first eight octets of a string
        ];
        for text in texts {
            let mut wire = BytesMut::new();
            wire.extend_from_slice(&(text.len() as u32).to_be_bytes());
            wire.extend_from_slice(text);
            wire.extend_from_slice(&frame("next", b"")[..]);
            let expect = |e: DecodeError, how: &str| {
                assert_eq!(
                    (e.code(), e.offset()),
                    ("header_not_utf8", PREFIX_LEN as u64),
                    "{how}: {text:?}"
                );
                e
            };
            let mut dec = Decoder::new();
            let e = expect(dec.decode(&mut wire.clone()).unwrap_err(), "decode");
            let mut dec = Decoder::new();
            let got = dec.decode_event(&mut wire.clone()).unwrap_err();
            assert_eq!(expect(got, "decode_event"), e);
            let mut dec = Decoder::new();
            let got = dec.decode_ref(&wire).unwrap_err();
            assert_eq!(expect(got, "decode_ref"), e);
            let mut dec = Decoder::new();
            let got = dec.decode_span(&wire).unwrap_err();
            assert_eq!(expect(got, "decode_span"), e);
            let mut dec = Decoder::new();
            let got = dec.decode_raw(&mut wire.clone()).unwrap_err();
            assert_eq!(expect(got, "decode_raw"), e);
            // The same, the header arriving an octet at a time.
            let mut dec = Decoder::new();
            let mut buf = BytesMut::new();
            let mut got = None;
            for octet in wire.iter() {
                buf.extend_from_slice(&[*octet]);
                if let Err(e) = dec.decode_raw(&mut buf) {
                    got = Some(e);
                    break;
                }
            }
            assert_eq!(got.map(|g| expect(g, "decode_raw, split")), Some(e));
        }
    }

    #[test]
    fn seed_compat_negative_prefix() {
        let mut dec = Decoder::with(Profile::SeedCompat, Limits::default());
        let mut buf = BytesMut::from(&(-5i32).to_le_bytes()[..]);
        let e = dec.decode(&mut buf).unwrap_err();
        assert_eq!(e.code(), "header_len_too_small");
        assert!(e.to_string().contains("negative"));
    }

    /// §6: `set_verify_digests(false)` turns the digest check off, for whole frames, events
    /// and in-place frames alike; by default a wrong `sha256` is `digest_mismatch`.
    #[test]
    fn digest_verification_can_be_turned_off() {
        let mut h = Header::with_kind("put");
        h.set_sha256(&[0u8; 32]);
        let mut wire = BytesMut::new();
        Encoder::new()
            .encode(&Frame::new(h, Bytes::from_static(b"abc")), &mut wire)
            .unwrap();
        for verify in [true, false] {
            let dec = || {
                let mut d = Decoder::new();
                d.set_verify_digests(verify);
                d
            };
            let whole = dec().decode(&mut wire.clone());
            let span = dec().decode_span(&wire);
            let mut events = dec();
            let mut buf = wire.clone();
            let mut streamed = Ok(());
            loop {
                match events.decode_event(&mut buf) {
                    Ok(Some(Event::End)) | Ok(None) => break,
                    Ok(Some(_)) => {}
                    Err(e) => {
                        streamed = Err(e);
                        break;
                    }
                }
            }
            if verify {
                assert_eq!(whole.unwrap_err().code(), "digest_mismatch");
                assert_eq!(span.unwrap_err().code(), "digest_mismatch");
                assert_eq!(streamed.unwrap_err().code(), "digest_mismatch");
            } else {
                assert_eq!(&whole.unwrap().unwrap().body[..], b"abc");
                assert_eq!(span.unwrap().unwrap().body.len(), 3);
                assert!(streamed.is_ok() && buf.is_empty() && events.is_between_frames());
            }
        }
    }

    /// A decoder reports the profile and limits it was made with.
    #[test]
    fn a_decoder_reports_its_profile_and_limits() {
        let limits = Limits::new()
            .with_max_header_len(1000)
            .with_max_body_len(12345);
        let dec = Decoder::with(Profile::SeedCompat, limits);
        assert_eq!(dec.profile(), Profile::SeedCompat);
        assert_eq!(dec.limits(), limits);
        assert_eq!(Decoder::new().profile(), Profile::Lhp1);
        assert_eq!(Decoder::new().limits(), Limits::default());
    }

    /// `wanted` during an in-place decode: once the header of a frame decoded in place was
    /// checked, the octets still missing are those of the whole frame (prefix, header, body)
    /// beyond what is buffered, so that a shell reads exactly up to the frame's end.
    #[test]
    fn wanted_counts_the_rest_of_a_frame_decoded_in_place() {
        let wire = frame("x", b"0123456789");
        let total = wire.len();
        let mut dec = Decoder::new();
        assert_eq!(dec.wanted(0), PREFIX_LEN as u64);
        for have in [total - 10, total - 7, total - 1] {
            assert_eq!(dec.decode_span(&wire[..have]).unwrap(), None);
            assert_eq!(dec.wanted(have), (total - have) as u64, "{have} of {total}");
        }
        assert!(dec.decode_span(&wire).unwrap().is_some());
        assert_eq!(dec.wanted(0), PREFIX_LEN as u64, "between frames: a prefix");
    }

    /// Body octets the caller read itself are taken up to the body's end and no further, and
    /// none outside a body; the frame then ends as if they had come through `decode_event`.
    #[test]
    fn feed_body_takes_at_most_the_rest_of_the_body() {
        let wire = frame("put", b"0123456789");
        let head_len = wire.len() - 10;
        let mut dec = Decoder::new();
        assert_eq!(dec.feed_body(b"xyz"), 0, "between frames there is no body");
        let mut head = BytesMut::from(&wire[..head_len]);
        assert!(matches!(
            dec.decode_event(&mut head),
            Ok(Some(Event::Head(_)))
        ));
        assert_eq!(dec.feed_body(&wire[head_len..head_len + 4]), 4);
        assert_eq!(dec.wanted(0), 6);
        assert_eq!(
            dec.feed_body(b"456789 and the next frame"),
            6,
            "never past the end"
        );
        assert_eq!(dec.decode_event(&mut head).unwrap(), Some(Event::End));
        assert_eq!(dec.offset(), wire.len() as u64);
        assert_eq!(dec.feed_body(b"more"), 0);
    }

    /// §3.4: at the end of the stream a complete frame still comes out, a clean end is
    /// `None`, and a cut frame is `unexpected_eof`.
    #[test]
    fn decode_eof_yields_the_last_frame_then_ends() {
        let mut wire = frame("a", b"one");
        wire.extend_from_slice(&frame("b", b"two"));
        let mut dec = Decoder::new();
        let first = dec.decode_eof(&mut wire).unwrap().unwrap();
        assert_eq!(
            (first.header.kind(), &first.body[..]),
            (Some("a"), &b"one"[..])
        );
        let second = dec.decode_eof(&mut wire).unwrap().unwrap();
        assert_eq!(second.header.kind(), Some("b"));
        assert_eq!(dec.decode_eof(&mut wire).unwrap(), None);
        let whole = frame("c", b"three");
        let mut cut = BytesMut::from(&whole[..whole.len() - 2]);
        let e = Decoder::new().decode_eof(&mut cut).unwrap_err();
        assert_eq!((e.code(), e.missing()), ("unexpected_eof", Some(2)));
    }

    /// A header only the general parser takes (here a nested extension, which the fast path
    /// leaves) still reads as itself through `decode_raw` and `decode_ref`, also after frames
    /// the fast path took: nothing of an earlier or half-done fast scan shows through.
    #[test]
    fn general_path_headers_read_right_after_fast_ones() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct H<'a> {
            kind: &'a str,
            id: u64,
        }
        let encode = |text: &str, wire: &mut BytesMut| {
            wire.extend_from_slice(&(text.len() as u32).to_be_bytes());
            wire.extend_from_slice(text.as_bytes());
        };
        let mut wire = BytesMut::new();
        encode(r#"{"kind":"fast","id":1}"#, &mut wire);
        encode(r#"{"kind":"slow","x":{"n":1},"id":2}"#, &mut wire);
        encode(r#"{"kind":"fast","id":3}"#, &mut wire);
        let want = [("fast", 1), ("slow", 2), ("fast", 3)];
        let mut dec = Decoder::new();
        let mut buf = wire.clone();
        for (kind, id) in want {
            let raw = dec.decode_raw(&mut buf).unwrap().unwrap();
            assert_eq!(raw.header::<H<'_>>().unwrap(), H { kind, id });
        }
        let mut dec = Decoder::new();
        let mut at = 0;
        for (kind, id) in want {
            let f = dec.decode_ref(&wire[at..]).unwrap().unwrap();
            assert_eq!(f.header::<H<'_>>().unwrap(), H { kind, id });
            at += PREFIX_LEN + f.header_text().len() + f.body().len();
        }
    }

    /// `seed-compat` §6: an `md5` digest is verified however its text is written, also with
    /// an escape in it (the general parser reads it unescaped): a body that does not match is
    /// `digest_mismatch`, whole or streamed.
    #[test]
    fn an_escaped_md5_is_still_verified() {
        let hex = hex_lower(&Md5::digest(b"abc"));
        assert!(hex.starts_with('9'));
        let escaped = format!("\\u0039{}", &hex[1..]);
        let text = format!(r#"{{"file_name":"a.txt","file_size":3,"md5":"{escaped}"}}"#);
        for (body, ok) in [(&b"abc"[..], true), (&b"abd"[..], false)] {
            let mut wire = BytesMut::new();
            wire.extend_from_slice(&(text.len() as i32).to_le_bytes());
            wire.extend_from_slice(text.as_bytes());
            wire.extend_from_slice(body);
            let dec = || Decoder::with(Profile::SeedCompat, Limits::default());
            let whole = dec().decode(&mut wire.clone());
            let span = dec().decode_span(&wire);
            if ok {
                assert_eq!(&whole.unwrap().unwrap().body[..], body);
                assert!(span.unwrap().is_some());
            } else {
                assert_eq!(whole.unwrap_err().code(), "digest_mismatch");
                assert_eq!(span.unwrap_err().code(), "digest_mismatch");
            }
        }
    }
}
