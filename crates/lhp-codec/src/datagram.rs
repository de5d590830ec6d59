//! LHP/1 over UDP (`spec/lhp-udp.md`): exactly one frame per datagram, sans IO.
//!
//! ```text
//!   one UDP datagram (at most max_datagram_len octets, §3)
//! +--------------+-------------------+--------------------+
//! | H (4 octets) | header (H octets) | body (B octets)    |   4 + H + B = datagram length
//! +--------------+-------------------+--------------------+
//!   fewer octets than the frame needs:  unexpected_eof   (§4.2)
//!   octets after the frame:             trailing_octets  (§4.3)
//!   more than max_datagram_len octets:  datagram_too_large (§3.2)
//! ```
//!
//! [`DatagramCodec::decode`] runs the stream [`Decoder`] over the one datagram, so every header
//! and body rule, error code and offset is the stream decoder's (§4.1); only the two rules that
//! a datagram adds (its size, and nothing after the frame) are checked here. Offsets count from
//! the datagram's first octet.
//!
//! [`DatagramServer`] is the server's whole policy, also sans IO: per-source rate limits in a
//! fixed-size table (§7), the amplification bound (§6), and what to send for a bad datagram
//! (§5). The blocking and tokio engines only move datagrams through it.
//!
//! ```
//! use bytes::BytesMut;
//! use lhp_codec::datagram::DatagramCodec;
//! use lhp_codec::{Frame, Header};
//!
//! let codec = DatagramCodec::new();
//! let mut datagram = BytesMut::new();
//! let mut h = Header::with_kind("echo");
//! h.set_id(7);
//! codec.encode(&Frame::new(h, "hello".into()), &mut datagram).unwrap();
//! let frame = codec.decode(&datagram).unwrap();
//! assert_eq!((frame.header.id(), &frame.body[..]), (Some(7), &b"hello"[..]));
//!
//! // Two frames in one datagram: the second is refused where it starts.
//! let one = datagram.len();
//! let copy = datagram.clone();
//! datagram.extend_from_slice(&copy);
//! let err = codec.decode(&datagram).unwrap_err();
//! assert_eq!((err.code(), err.offset()), ("trailing_octets", one as u64));
//!
//! // A datagram cut short (here: after 10 octets) is `unexpected_eof`, as at the end of a stream.
//! let err = codec.decode(&datagram[..10]).unwrap_err();
//! assert_eq!((err.code(), err.offset()), ("unexpected_eof", 10));
//! ```

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::decoder::PREFIX_LEN;
use crate::error::{DecodeError, DecodeErrorKind, EncodeError, Part};
use crate::{Decoder, Encoder, Frame, Header, Limits, Profile, Value};

/// The default and largest `max_datagram_len` (§3.1): the largest UDP payload over IPv4
/// (65,535 − 8 octets of UDP header − 20 octets of IPv4 header).
pub const MAX_DATAGRAM_LEN: usize = 65_507;

/// The smallest `max_datagram_len` a receiver may configure (§3.1): room for a small request.
pub const MIN_DATAGRAM_LEN: usize = 512;

/// The amplification factor (§6): an unauthenticated reply is at most this many times the size
/// of the datagram it answers.
pub const AMPLIFICATION_FACTOR: usize = 3;

/// The datagram binding's settings (§3, §6, §7): the same in both engines.
///
/// ```
/// use lhp_codec::datagram::DatagramConfig;
///
/// let c = DatagramConfig::new().with_max_datagram_len(1200).with_rate(20, 100);
/// assert_eq!(c.max_datagram_len(), 1200);
/// assert_eq!(c.recv_buffer_len(), 1201); // one octet more, to see truncation (§3.2)
/// assert_eq!(c.limits().max_body_len(), 1200 - 6);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatagramConfig {
    profile: Profile,
    limits: Limits,
    max_datagram_len: usize,
    amplification: usize,
    burst: u32,
    per_second: u32,
    rate_slots: usize,
}

impl Default for DatagramConfig {
    fn default() -> Self {
        DatagramConfig::new()
    }
}

impl DatagramConfig {
    /// The default burst: datagrams a source may send at once before it is limited (§7).
    pub const DEFAULT_BURST: u32 = 64;
    /// The default sustained rate per source, in datagrams per second (§7).
    pub const DEFAULT_PER_SECOND: u32 = 256;
    /// The default number of slots in the rate-limit table (§7): fixed, whatever the number of
    /// sources.
    pub const DEFAULT_RATE_SLOTS: usize = 4096;

    /// `lhp1`, default limits clamped to the datagram (§4.1), 65,507-octet datagrams, factor 3,
    /// 64 datagrams of burst and 256 per second per source, 4,096 rate-limit slots.
    pub fn new() -> Self {
        DatagramConfig {
            profile: Profile::Lhp1,
            limits: clamp(Limits::new(), MAX_DATAGRAM_LEN),
            max_datagram_len: MAX_DATAGRAM_LEN,
            amplification: AMPLIFICATION_FACTOR,
            burst: Self::DEFAULT_BURST,
            per_second: Self::DEFAULT_PER_SECOND,
            rate_slots: Self::DEFAULT_RATE_SLOTS,
        }
    }

    /// Sets the profile (§8: both profiles apply).
    pub fn with_profile(mut self, profile: Profile) -> Self {
        self.profile = profile;
        self
    }

    /// Sets the header and body limits; they are clamped to what a datagram can hold (§4.1).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = clamp(limits, self.max_datagram_len);
        self
    }

    /// Sets the largest datagram sent or accepted, clamped to
    /// [`MIN_DATAGRAM_LEN`]`..=`[`MAX_DATAGRAM_LEN`] (§3.1). The limits are clamped again.
    pub fn with_max_datagram_len(mut self, max: usize) -> Self {
        self.max_datagram_len = max.clamp(MIN_DATAGRAM_LEN, MAX_DATAGRAM_LEN);
        self.limits = clamp(self.limits, self.max_datagram_len);
        self
    }

    /// Sets the amplification factor, at most [`AMPLIFICATION_FACTOR`] (§6); 1 means a reply is
    /// never larger than its request.
    pub fn with_amplification(mut self, factor: usize) -> Self {
        self.amplification = factor.clamp(1, AMPLIFICATION_FACTOR);
        self
    }

    /// Sets the per-source rate limit: `burst` datagrams at once, `per_second` sustained (§7).
    pub fn with_rate(mut self, burst: u32, per_second: u32) -> Self {
        self.burst = burst.max(1);
        self.per_second = per_second;
        self
    }

    /// Sets the number of rate-limit slots (at least 1); memory is fixed at this many buckets.
    pub fn with_rate_slots(mut self, slots: usize) -> Self {
        self.rate_slots = slots.max(1);
        self
    }

    /// The profile.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The limits, already clamped to the datagram.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The largest datagram sent or accepted.
    pub fn max_datagram_len(&self) -> usize {
        self.max_datagram_len
    }

    /// The size of a receive buffer: one octet more than the largest datagram, so that a
    /// longer datagram is seen as too large instead of silently cut (§3.2).
    pub fn recv_buffer_len(&self) -> usize {
        self.max_datagram_len + 1
    }

    /// The amplification factor.
    pub fn amplification(&self) -> usize {
        self.amplification
    }

    /// The burst per source.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The sustained rate per source, datagrams per second.
    pub fn per_second(&self) -> u32 {
        self.per_second
    }

    /// The number of rate-limit slots.
    pub fn rate_slots(&self) -> usize {
        self.rate_slots
    }

    /// The codec for these settings.
    pub fn codec(&self) -> DatagramCodec {
        DatagramCodec {
            profile: self.profile,
            limits: self.limits,
            max_datagram_len: self.max_datagram_len,
        }
    }
}

/// §4.1: no limit larger than a datagram can carry.
fn clamp(limits: Limits, max_datagram_len: usize) -> Limits {
    let room = max_datagram_len.saturating_sub(PREFIX_LEN);
    let max_header = u32::try_from(room).unwrap_or(u32::MAX);
    let max_body = room.saturating_sub(crate::MIN_HEADER_LEN as usize) as u64;
    Limits::new()
        .with_max_header_len(limits.max_header_len().min(max_header))
        .with_max_body_len(limits.max_body_len().min(max_body))
}

/// A datagram that is not exactly one valid frame (§4), or one that is too large (§3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatagramError {
    /// The frame broke a rule of LHP/1 (`spec/lhp-1.md` §3–§6), including `unexpected_eof` for
    /// a datagram that ends inside its frame (§4.2). Offsets count from the datagram's start.
    Decode(DecodeError),
    /// §4.3: octets follow the frame.
    TrailingOctets {
        /// Where the frame ended: the offset of the first extra octet.
        offset: u64,
        /// How many octets follow the frame.
        count: usize,
    },
    /// §3.2: the datagram is longer than `max_datagram_len` (the receive buffer, one octet
    /// larger, filled up, or the system said it was truncated).
    TooLarge {
        /// The receiver's `max_datagram_len`, also the offset of the first octet beyond it.
        max: usize,
    },
}

impl DatagramError {
    /// The stable snake_case code: a §7.1 code of `spec/lhp-1.md`, or `trailing_octets` /
    /// `datagram_too_large` (registered in `spec/lhp-udp.md` §9).
    pub fn code(&self) -> &'static str {
        match self {
            DatagramError::Decode(e) => e.code(),
            DatagramError::TrailingOctets { .. } => "trailing_octets",
            DatagramError::TooLarge { .. } => "datagram_too_large",
        }
    }

    /// The offset in the datagram of the element at fault.
    pub fn offset(&self) -> u64 {
        match self {
            DatagramError::Decode(e) => e.offset(),
            DatagramError::TrailingOctets { offset, .. } => *offset,
            DatagramError::TooLarge { max } => *max as u64,
        }
    }

    /// For `unexpected_eof`: how many octets the frame still needed.
    pub fn missing(&self) -> Option<u64> {
        match self {
            DatagramError::Decode(e) => e.missing(),
            _ => None,
        }
    }

    /// The rule broken: `lhp-1 §N` or `lhp-udp §N`.
    pub fn section(&self) -> String {
        match self {
            DatagramError::Decode(e) => format!("lhp-1 §{}", e.section()),
            DatagramError::TrailingOctets { .. } => "lhp-udp §4.3".to_owned(),
            DatagramError::TooLarge { .. } => "lhp-udp §3.2".to_owned(),
        }
    }

    /// The error frame's header (`spec/lhp-1.md` §7.2 member order: `kind`, `code`, `message`,
    /// `offset`, and `missing` for `unexpected_eof`), as §5 of the binding sends it.
    pub fn error_header(&self, message: &str) -> Header {
        let mut h = Header::with_kind("error");
        h.insert("code", self.code())
            .insert("message", message)
            .insert("offset", self.offset());
        if let Some(missing) = self.missing() {
            h.insert("missing", missing);
        }
        h
    }
}

impl fmt::Display for DatagramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatagramError::Decode(e) => write!(f, "{e}"),
            DatagramError::TrailingOctets { offset, count } => write!(
                f,
                "trailing_octets at offset {offset} (lhp-udp §4.3): {count} octet(s) follow the \
                 frame; a datagram carries exactly one frame"
            ),
            DatagramError::TooLarge { max } => write!(
                f,
                "datagram_too_large at offset {max} (lhp-udp §3.2): the datagram is longer than \
                 the {max}-octet maximum"
            ),
        }
    }
}

impl std::error::Error for DatagramError {}

/// A frame that cannot be sent as one datagram: caller misuse.
#[derive(Debug)]
#[non_exhaustive]
pub enum DatagramEncodeError {
    /// The frame itself is not valid (`spec/lhp-1.md` §9).
    Encode(EncodeError),
    /// §3.1: the encoded frame is longer than `max_datagram_len`.
    TooLarge {
        /// The encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl fmt::Display for DatagramEncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatagramEncodeError::Encode(e) => write!(f, "{e}"),
            DatagramEncodeError::TooLarge { len, max } => write!(
                f,
                "the frame is {len} octets, more than fits in one datagram ({max}; lhp-udp §3.1)"
            ),
        }
    }
}

impl std::error::Error for DatagramEncodeError {}

impl From<EncodeError> for DatagramEncodeError {
    fn from(e: EncodeError) -> Self {
        DatagramEncodeError::Encode(e)
    }
}

/// Decodes and encodes one frame per datagram (§3, §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatagramCodec {
    profile: Profile,
    limits: Limits,
    max_datagram_len: usize,
}

impl Default for DatagramCodec {
    fn default() -> Self {
        DatagramCodec::new()
    }
}

impl DatagramCodec {
    /// The codec of [`DatagramConfig::new`].
    pub fn new() -> Self {
        DatagramConfig::new().codec()
    }

    /// The profile.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The limits (clamped to the datagram, §4.1).
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The largest datagram.
    pub fn max_datagram_len(&self) -> usize {
        self.max_datagram_len
    }

    /// Decodes the one frame `datagram` holds (§4). `datagram` is what one receive returned,
    /// into a buffer of [`DatagramConfig::recv_buffer_len`] octets: if it is longer than
    /// `max_datagram_len` the datagram was too large (§3.2).
    ///
    /// The checks, in order: the size (§3.2), then the stream decoder's rules over the
    /// datagram as a whole stream (§4.1, §4.2), then nothing after the frame (§4.3).
    pub fn decode(&self, datagram: &[u8]) -> Result<Frame, DatagramError> {
        // §3.2: "A receiver MUST treat a datagram longer than max_datagram_len as an error."
        if datagram.len() > self.max_datagram_len {
            return Err(DatagramError::TooLarge {
                max: self.max_datagram_len,
            });
        }
        // §4.2: an empty datagram holds less than one frame (a stream may end there; a
        // datagram may not).
        if datagram.is_empty() {
            return Err(DatagramError::Decode(DecodeError::new(
                0,
                DecodeErrorKind::UnexpectedEof {
                    missing: PREFIX_LEN as u64,
                    part: Part::Prefix,
                },
            )));
        }
        let mut buf = BytesMut::from(datagram);
        let mut dec = Decoder::with(self.profile, self.limits);
        // §4.1: the same decoder, the same rules and the same errors as on a stream; the end
        // of the datagram is the end of the stream.
        match dec.decode(&mut buf).map_err(DatagramError::Decode)? {
            Some(frame) if buf.is_empty() => Ok(frame),
            // §4.3: "octets after the frame ... trailing_octets at the offset where the frame
            // ended".
            Some(_) => Err(DatagramError::TrailingOctets {
                offset: dec.offset(),
                count: buf.len(),
            }),
            None => match dec.finish(&buf) {
                Err(e) => Err(DatagramError::Decode(e)),
                // Unreachable: a non-empty datagram with no frame leaves the decoder mid-frame.
                Ok(()) => Err(DatagramError::Decode(DecodeError::new(
                    datagram.len() as u64,
                    DecodeErrorKind::UnexpectedEof {
                        missing: PREFIX_LEN as u64,
                        part: Part::Prefix,
                    },
                ))),
            },
        }
    }

    /// Appends `frame` to `dst` as one datagram's payload, refusing it if it is longer than
    /// `max_datagram_len` (§3.1). `dst` is unchanged on error.
    pub fn encode(&self, frame: &Frame, dst: &mut BytesMut) -> Result<(), DatagramEncodeError> {
        self.encode_within(frame, self.max_datagram_len, dst)
    }

    /// [`encode`](Self::encode) with a tighter size limit (`min(limit, max_datagram_len)`),
    /// such as an amplification budget (§6).
    pub fn encode_within(
        &self,
        frame: &Frame,
        limit: usize,
        dst: &mut BytesMut,
    ) -> Result<(), DatagramEncodeError> {
        let max = limit.min(self.max_datagram_len);
        let start = dst.len();
        let mut enc = Encoder::with_profile(self.profile);
        enc.set_max_header_len(u32::try_from(max).unwrap_or(u32::MAX));
        enc.encode(frame, dst)?;
        let len = dst.len() - start;
        if len > max {
            dst.truncate(start);
            return Err(DatagramEncodeError::TooLarge { len, max });
        }
        Ok(())
    }

    /// Appends the error frame for `err` (§5) if it fits in `limit` octets, shortening `message`
    /// (at a character boundary) as needed; returns false, `dst` unchanged, if even an empty
    /// message does not fit (§6: the receiver then drops the datagram).
    pub fn encode_error(
        &self,
        err: &DatagramError,
        message: &str,
        limit: usize,
        dst: &mut BytesMut,
    ) -> bool {
        let base = self.error_len(&err.error_header(""));
        let Some(room) = limit.min(self.max_datagram_len).checked_sub(base) else {
            return false;
        };
        // JSON escaping can only lengthen the text; shorten until it fits.
        let mut cut = floor_char_boundary(message, room);
        loop {
            let frame = Frame::with_profile(
                self.profile,
                err.error_header(message.get(..cut).unwrap_or("")),
                bytes::Bytes::new(),
            );
            if self.encode_within(&frame, limit, dst).is_ok() {
                return true;
            }
            if cut == 0 {
                return false;
            }
            cut = floor_char_boundary(message, cut / 2);
        }
    }

    fn error_len(&self, header: &Header) -> usize {
        let mut tmp = BytesMut::new();
        let frame = Frame::with_profile(self.profile, header.clone(), bytes::Bytes::new());
        match Encoder::with_profile(self.profile).encode(&frame, &mut tmp) {
            Ok(()) => tmp.len(),
            Err(_) => usize::MAX,
        }
    }
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    let mut i = max.min(s.len());
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Per-source token buckets in a fixed-size table (§7): memory never grows with the number of
/// sources. Sources are hashed (with a key chosen at construction, so a peer cannot aim at one
/// slot) to a slot; sources that share a slot share its tokens, which only limits them more.
///
/// ```
/// use std::time::{Duration, Instant};
/// use lhp_codec::datagram::RateLimiter;
///
/// let mut rl = RateLimiter::new(16, 2, 10); // 16 slots, burst 2, 10 per second
/// let t = Instant::now();
/// assert!(rl.allow(&"10.0.0.1:5000", t));
/// assert!(rl.allow(&"10.0.0.1:5000", t));
/// assert!(!rl.allow(&"10.0.0.1:5000", t)); // burst spent
/// assert!(rl.allow(&"10.0.0.1:5000", t + Duration::from_millis(100))); // one token back
/// ```
#[derive(Debug)]
pub struct RateLimiter {
    slots: Box<[Bucket]>,
    hasher: RandomState,
    burst: u32,
    per_second: u32,
}

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// Tokens in thousandths.
    milli: u64,
    last: Option<Instant>,
}

impl RateLimiter {
    /// `slots` buckets (at least one) of `burst` tokens, refilled at `per_second`.
    pub fn new(slots: usize, burst: u32, per_second: u32) -> Self {
        RateLimiter {
            slots: vec![Bucket::default(); slots.max(1)].into_boxed_slice(),
            hasher: RandomState::new(),
            burst: burst.max(1),
            per_second,
        }
    }

    /// The number of slots (fixed).
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Takes one token from `source`'s bucket at time `now`; false if it has none (§7: the
    /// datagram is dropped unanswered).
    pub fn allow<S: Hash + ?Sized>(&mut self, source: &S, now: Instant) -> bool {
        let n = self.slots.len() as u64;
        let slot = (self.hasher.hash_one(source) % n) as usize;
        let cap = u64::from(self.burst) * 1000;
        let rate = u64::from(self.per_second);
        let Some(b) = self.slots.get_mut(slot) else {
            return false;
        };
        let refilled = match b.last {
            None => cap,
            Some(last) => {
                let ms = u64::try_from(now.saturating_duration_since(last).as_millis())
                    .unwrap_or(u64::MAX);
                b.milli.saturating_add(ms.saturating_mul(rate)).min(cap)
            }
        };
        b.last = Some(now);
        if refilled >= 1000 {
            b.milli = refilled - 1000;
            true
        } else {
            b.milli = refilled;
            false
        }
    }
}

/// What a [`DatagramServer`] did with one datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Disposition {
    /// The handler's reply is in the output buffer.
    Replied,
    /// The datagram was refused: an error frame (§5) with this code is in the output buffer.
    Refused(&'static str),
    /// Nothing is sent, for this reason.
    Dropped(DropReason),
}

/// Why a datagram got no reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// §7: its source is over its rate limit.
    RateLimited,
    /// §5/§6: it was bad, and even the smallest error frame exceeds the amplification budget.
    ErrorOverBudget,
    /// §6: the reply and the `reply_too_large` refusal both exceed the budget.
    ReplyOverBudget,
    /// The handler chose not to reply (a reply, such as a chat acknowledgement, or a message
    /// that wants none).
    NoReply,
}

/// Counters of a [`DatagramServer`], for tests and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DatagramStats {
    /// Datagrams handed to [`DatagramServer::handle`].
    pub received: u64,
    /// Replies from the handler sent.
    pub replied: u64,
    /// Error frames sent for bad datagrams or replies over budget.
    pub refused: u64,
    /// Datagrams dropped by the rate limit.
    pub rate_limited: u64,
    /// Datagrams dropped because no reply fitted the budget.
    pub over_budget: u64,
    /// The largest reply sent, in octets.
    pub largest_reply: usize,
    /// The largest reply-to-request size ratio seen, in thousandths (3000 = 3×).
    pub max_ratio_milli: u64,
}

/// The server side of the binding, sans IO: give it each datagram received and the time; it
/// decides, under the rate limit (§7) and the amplification bound (§6), what to send back.
///
/// ```
/// use std::time::Instant;
/// use bytes::BytesMut;
/// use lhp_codec::datagram::{DatagramConfig, DatagramServer, Disposition};
/// use lhp_codec::{Frame, Header};
///
/// let mut server = DatagramServer::new(DatagramConfig::new());
/// let mut request = BytesMut::new();
/// let codec = DatagramConfig::new().codec();
/// codec.encode(&Frame::new(Header::with_kind("echo"), "hi".into()), &mut request).unwrap();
/// let mut out = BytesMut::new();
/// let d = server.handle(&request, &"127.0.0.1:4000", Instant::now(), &mut out, |f| Some(f));
/// assert_eq!((d, &out[..]), (Disposition::Replied, &request[..]));
///
/// out.clear();
/// let d = server.handle(b"\0\0\0\x02{}{}", &"127.0.0.1:4000", Instant::now(), &mut out, |f| Some(f));
/// assert_eq!(d, Disposition::Dropped(lhp_codec::datagram::DropReason::ErrorOverBudget));
/// ```
#[derive(Debug)]
pub struct DatagramServer {
    config: DatagramConfig,
    codec: DatagramCodec,
    limiter: RateLimiter,
    stats: DatagramStats,
}

impl DatagramServer {
    /// A server with `config`'s codec, rate limits and amplification factor.
    pub fn new(config: DatagramConfig) -> Self {
        DatagramServer {
            config,
            codec: config.codec(),
            limiter: RateLimiter::new(config.rate_slots(), config.burst(), config.per_second()),
            stats: DatagramStats::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &DatagramConfig {
        &self.config
    }

    /// The counters so far.
    pub fn stats(&self) -> DatagramStats {
        self.stats
    }

    /// Handles one received datagram (`datagram`: what one receive into a
    /// [`recv_buffer_len`](DatagramConfig::recv_buffer_len) buffer returned) from `source` at
    /// `now`. On [`Disposition::Replied`] or [`Disposition::Refused`], `out` (cleared first)
    /// holds the one datagram to send back to `source`. A reply equal to the request is the
    /// echo of LHP/1 §8: the datagram is sent back octet for octet.
    pub fn handle<S, F>(
        &mut self,
        datagram: &[u8],
        source: &S,
        now: Instant,
        out: &mut BytesMut,
        handler: F,
    ) -> Disposition
    where
        S: Hash + ?Sized,
        F: FnOnce(Frame) -> Option<Frame>,
    {
        out.clear();
        self.stats.received += 1;
        // §7: the rate limit comes first; a limited source costs no decoding and gets nothing.
        if !self.limiter.allow(source, now) {
            self.stats.rate_limited += 1;
            return Disposition::Dropped(DropReason::RateLimited);
        }
        // §6: "a reply MUST NOT be longer than `factor` times the datagram it answers".
        let budget = datagram
            .len()
            .min(self.config.max_datagram_len() + 1)
            .saturating_mul(self.config.amplification());
        let d = match self.codec.decode(datagram) {
            Err(e) => self.refuse(&e, budget, out),
            Ok(request) => {
                let id = request.header.id();
                let asked = request.clone();
                match handler(request) {
                    None => Disposition::Dropped(DropReason::NoReply),
                    // LHP/1 §8 (decision E7): an echo is the request's octets, header text
                    // included, so it is sent as received (and is never over budget).
                    Some(reply) if reply == asked => {
                        out.extend_from_slice(datagram);
                        Disposition::Replied
                    }
                    Some(reply) => match self.codec.encode_within(&reply, budget, out) {
                        Ok(()) => Disposition::Replied,
                        Err(_) if self.shorten_error(&reply, budget, out) => Disposition::Replied,
                        Err(_) => self.reply_too_large(id, budget, out),
                    },
                }
            }
        };
        match d {
            Disposition::Replied | Disposition::Refused(_) => {
                self.stats.largest_reply = self.stats.largest_reply.max(out.len());
                let ratio = (out.len() as u64 * 1000) / (datagram.len().max(1) as u64);
                self.stats.max_ratio_milli = self.stats.max_ratio_milli.max(ratio);
                if d == Disposition::Replied {
                    self.stats.replied += 1;
                } else {
                    self.stats.refused += 1;
                }
            }
            Disposition::Dropped(DropReason::ErrorOverBudget | DropReason::ReplyOverBudget) => {
                self.stats.over_budget += 1
            }
            Disposition::Dropped(_) => {}
        }
        d
    }

    /// §5: a bad datagram gets an error frame if one fits the budget (§6), else nothing.
    fn refuse(&self, err: &DatagramError, budget: usize, out: &mut BytesMut) -> Disposition {
        if self.codec.encode_error(err, &err.to_string(), budget, out) {
            Disposition::Refused(err.code())
        } else {
            Disposition::Dropped(DropReason::ErrorOverBudget)
        }
    }

    /// §5.3: an `error` reply over budget is sent with its `message` shortened, if that fits.
    fn shorten_error(&self, reply: &Frame, budget: usize, out: &mut BytesMut) -> bool {
        if reply.header.kind() != Some("error") || !reply.body.is_empty() {
            return false;
        }
        let Some(message) = reply.header.get("message").and_then(Value::as_str) else {
            return false;
        };
        let mut cut = floor_char_boundary(message, message.len() / 2);
        loop {
            let mut h = reply.header.clone();
            h.insert("message", message.get(..cut).unwrap_or(""));
            let frame = Frame::with_profile(self.codec.profile(), h, bytes::Bytes::new());
            out.clear();
            if self.codec.encode_within(&frame, budget, out).is_ok() {
                return true;
            }
            if cut == 0 {
                out.clear();
                return false;
            }
            cut = floor_char_boundary(message, cut / 2);
        }
    }

    /// §6: the handler's reply is over budget: a request refusal `reply_too_large` instead, if
    /// it fits.
    fn reply_too_large(&self, id: Option<u64>, budget: usize, out: &mut BytesMut) -> Disposition {
        out.clear();
        let message = "the reply is larger than this request allows (lhp-udp §6)";
        for m in [message, ""] {
            let h = reply_too_large_header(id, m);
            let frame = Frame::with_profile(self.codec.profile(), h, bytes::Bytes::new());
            if self.codec.encode_within(&frame, budget, out).is_ok() {
                return Disposition::Refused("reply_too_large");
            }
        }
        Disposition::Dropped(DropReason::ReplyOverBudget)
    }
}

/// The request refusal of §6 (`spec/lhp-1.md` §7 request class: `id` iff the request had one,
/// no `offset`).
pub fn reply_too_large_header(id: Option<u64>, message: &str) -> Header {
    let mut h = Header::with_kind("error");
    if let Some(id) = id {
        h.set_id(id);
    }
    h.insert("code", "reply_too_large")
        .insert("message", message);
    h
}

/// A client's retry policy (§5.2): how long to wait for a reply, and how many times to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// How long to wait for a reply after each send.
    pub timeout: Duration,
    /// How many times to send in all (at least 1).
    pub tries: u32,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            timeout: Duration::from_millis(500),
            tries: 3,
        }
    }
}

impl Retry {
    /// Sends once, waits `timeout`.
    pub fn once(timeout: Duration) -> Self {
        Retry { timeout, tries: 1 }
    }
}

/// The request kinds a client may send again when no reply came (§5.2): the ones whose repeat
/// has no effect beyond the first (`echo`, `upper`, `time`, `stat`, `get`, `list`).
pub const IDEMPOTENT_KINDS: [&str; 6] = ["echo", "upper", "time", "stat", "get", "list"];

/// True when a request of this `kind` may be retried (§5.2).
pub fn is_idempotent(kind: Option<&str>) -> bool {
    kind.is_some_and(|k| IDEMPOTENT_KINDS.contains(&k))
}

/// Whether a received frame is a reply to the request with `id` (§5.1): it carries the same
/// `id`, or it is a datagram error (an `error` frame with `offset`, which cannot carry `id`).
pub fn matches_request(reply: &Header, id: u64) -> bool {
    reply.id() == Some(id) || is_datagram_error(reply)
}

/// True for the error frame a receiver sends for a bad datagram (§5): `kind` `error` with an
/// `offset` member.
pub fn is_datagram_error(header: &Header) -> bool {
    header.kind() == Some("error") && header.get("offset").is_some()
}

/// The code of an `error` frame, if it is one.
pub fn error_code(header: &Header) -> Option<&str> {
    if header.kind() != Some("error") {
        return None;
    }
    header.get("code").and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// The body length that makes a frame of `kind` (with a three-digit `body_len`) exactly
    /// `len` octets long.
    fn body_to_fill(codec: &DatagramCodec, kind: &'static str, len: usize) -> usize {
        let mut probe = BytesMut::new();
        let frame = Frame::new(Header::with_kind(kind), vec![7u8; 100].into());
        codec.encode(&frame, &mut probe).unwrap();
        len - (probe.len() - 100)
    }

    fn datagram(header: &str, body: &[u8]) -> Vec<u8> {
        let mut v = (header.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn one_frame_decodes() {
        let d = datagram(r#"{"kind":"echo","id":3,"body_len":2}"#, b"hi");
        let f = DatagramCodec::new().decode(&d).unwrap();
        assert_eq!(f.header.id(), Some(3));
        assert_eq!(&f.body[..], b"hi");
    }

    #[test]
    fn every_proper_prefix_is_unexpected_eof_at_its_end() {
        let d = datagram(r#"{"kind":"echo","body_len":5}"#, b"hello");
        let codec = DatagramCodec::new();
        for n in 0..d.len() {
            let e = codec.decode(&d[..n]).unwrap_err();
            assert_eq!(e.code(), "unexpected_eof", "prefix {n}");
            assert_eq!(e.offset(), n as u64, "prefix {n}");
            assert!(e.missing().unwrap() > 0);
        }
        // The body prefix case: missing counts the body octets.
        assert_eq!(
            codec.decode(&d[..d.len() - 2]).unwrap_err().missing(),
            Some(2)
        );
    }

    #[test]
    fn two_frames_are_trailing_octets_where_the_first_ends() {
        let one = datagram("{}", b"");
        let mut two = one.clone();
        two.extend_from_slice(&one);
        let e = DatagramCodec::new().decode(&two).unwrap_err();
        assert_eq!(
            e,
            DatagramError::TrailingOctets {
                offset: 6,
                count: 6
            }
        );
        // Even a single garbage octet after a frame.
        let mut three = one.clone();
        three.push(0);
        assert_eq!(
            DatagramCodec::new().decode(&three).unwrap_err().code(),
            "trailing_octets"
        );
    }

    #[test]
    fn oversized_datagram_is_refused_before_decoding() {
        let cfg = DatagramConfig::new().with_max_datagram_len(1024);
        let big = vec![0u8; cfg.recv_buffer_len()];
        let e = cfg.codec().decode(&big).unwrap_err();
        assert_eq!((e.code(), e.offset()), ("datagram_too_large", 1024));
        // Exactly the maximum is fine as far as size goes.
        let body = vec![b'a'; 1003];
        let d = datagram(r#"{"body_len":1003}"#, &body);
        assert_eq!(d.len(), 1024);
        assert_eq!(cfg.codec().decode(&d).unwrap().body.len(), 1003);
    }

    #[test]
    fn huge_claims_are_refused_by_the_clamped_limits() {
        let codec = DatagramCodec::new();
        let e = codec
            .decode(&datagram(r#"{"body_len":9007199254740991}"#, b""))
            .unwrap_err();
        assert_eq!((e.code(), e.offset()), ("body_too_large", 4));
        let mut d = 0xffff_ffffu32.to_be_bytes().to_vec();
        d.extend_from_slice(b"{}");
        let e = codec.decode(&d).unwrap_err();
        assert_eq!((e.code(), e.offset()), ("header_len_too_large", 0));
        // A claim that would fit a datagram but is not there: unexpected_eof.
        let e = codec
            .decode(&datagram(r#"{"body_len":60000}"#, b"x"))
            .unwrap_err();
        assert_eq!(e.code(), "unexpected_eof");
        assert_eq!(e.missing(), Some(59_999));
    }

    #[test]
    fn same_errors_as_the_stream_decoder() {
        let codec = DatagramCodec::new();
        for (hdr, code, offset) in [
            (r#"{"a":1,"a":2}"#, "duplicate_member", 4),
            (r#"[1]"#, "header_not_object", 4),
            (r#"{"kind":5}"#, "invalid_member", 4),
            (r#"{"a"}"#, "header_not_json", 4),
        ] {
            let e = codec.decode(&datagram(hdr, b"")).unwrap_err();
            assert_eq!((e.code(), e.offset()), (code, offset), "{hdr}");
            let mut stream = BytesMut::from(&datagram(hdr, b"")[..]);
            let se = Decoder::new().decode(&mut stream).unwrap_err();
            assert_eq!((se.code(), se.offset()), (code, offset));
        }
        let mut small = 1u32.to_be_bytes().to_vec();
        small.push(b'{');
        assert_eq!(
            codec.decode(&small).unwrap_err().code(),
            "header_len_too_small"
        );
    }

    #[test]
    fn seed_compat_applies() {
        let cfg = DatagramConfig::new().with_profile(Profile::SeedCompat);
        let mut out = BytesMut::new();
        let mut h = Header::new();
        h.insert("file_size", 3);
        cfg.codec()
            .encode(
                &Frame::with_profile(Profile::SeedCompat, h, Bytes::from_static(b"abc")),
                &mut out,
            )
            .unwrap();
        assert_eq!(out[..4], (out.len() as i32 - 7).to_le_bytes());
        assert_eq!(&cfg.codec().decode(&out).unwrap().body[..], b"abc");
    }

    #[test]
    fn error_frames_shrink_their_message_to_the_budget_or_are_not_sent() {
        let codec = DatagramCodec::new();
        let err = DatagramError::TrailingOctets {
            offset: 6,
            count: 6,
        };
        let mut out = BytesMut::new();
        assert!(codec.encode_error(&err, &"é".repeat(500), 120, &mut out));
        assert!(out.len() <= 120, "{}", out.len());
        let f = codec.decode(&out).unwrap();
        assert_eq!(error_code(&f.header), Some("trailing_octets"));
        assert_eq!(f.header.get("offset").and_then(Value::as_u64), Some(6));
        assert!(f.header.id().is_none());
        let mut out = BytesMut::new();
        assert!(!codec.encode_error(&err, "x", 20, &mut out));
        assert!(out.is_empty());
    }

    /// A message that JSON escaping lengthens (a control character becomes six octets) is
    /// shortened until the frame fits, and keeps a non-empty prefix of the text.
    #[test]
    fn error_frames_shorten_a_message_that_escaping_lengthens() {
        let codec = DatagramCodec::new();
        let err = DatagramError::TrailingOctets {
            offset: 6,
            count: 6,
        };
        let message = "\u{1}".repeat(200);
        let mut out = BytesMut::new();
        assert!(codec.encode_error(&err, &message, 300, &mut out));
        assert!(out.len() <= 300, "{}", out.len());
        let f = codec.decode(&out).unwrap();
        assert_eq!(error_code(&f.header), Some("trailing_octets"));
        let sent = f.header.get("message").and_then(Value::as_str).unwrap();
        assert!(!sent.is_empty() && message.starts_with(sent), "{sent:?}");
    }

    #[test]
    fn the_server_never_exceeds_the_amplification_factor() {
        let cfg = DatagramConfig::new();
        let mut server = DatagramServer::new(cfg);
        let codec = cfg.codec();
        let now = Instant::now();
        let mut out = BytesMut::new();
        // A handler that always answers with 10 KiB.
        let big = |_f: Frame| Some(Frame::new(Header::with_kind("x"), vec![1u8; 10_240].into()));
        for body in [0usize, 10, 100, 1000, 5000] {
            let mut req = BytesMut::new();
            let mut h = Header::with_kind("time");
            h.set_id(9);
            codec
                .encode(&Frame::new(h, vec![b'a'; body].into()), &mut req)
                .unwrap();
            let d = server.handle(&req, &body, now, &mut out, big);
            assert!(
                out.len() <= 3 * req.len(),
                "{} > 3 × {}",
                out.len(),
                req.len()
            );
            match d {
                Disposition::Replied => assert!(body >= 3400),
                Disposition::Refused(code) => {
                    assert_eq!(code, "reply_too_large");
                    let f = codec.decode(&out).unwrap();
                    assert_eq!(f.header.id(), Some(9));
                    assert!(f.header.get("offset").is_none());
                }
                Disposition::Dropped(r) => assert_eq!(r, DropReason::ReplyOverBudget),
            }
        }
        assert!(server.stats().max_ratio_milli <= 3000);
    }

    #[test]
    fn request_errors_over_budget_are_shortened() {
        let cfg = DatagramConfig::new();
        let mut server = DatagramServer::new(cfg);
        let mut req = BytesMut::new();
        let mut h = Header::with_kind("time");
        h.set_id(5);
        cfg.codec()
            .encode(&Frame::new(h, "%n".into()), &mut req)
            .unwrap();
        let mut out = BytesMut::new();
        let long = |_f: Frame| {
            let mut h = Header::with_kind("error");
            h.set_id(5)
                .insert("code", "bad_request")
                .insert("message", "ü".repeat(400));
            Some(Frame::new(h, Bytes::new()))
        };
        let d = server.handle(&req, "a", Instant::now(), &mut out, long);
        assert_eq!(d, Disposition::Replied);
        assert!(out.len() <= 3 * req.len());
        let f = cfg.codec().decode(&out).unwrap();
        assert_eq!(error_code(&f.header), Some("bad_request"));
        assert_eq!(f.header.id(), Some(5));
    }

    #[test]
    fn rate_limit_is_per_source_and_bounded() {
        let cfg = DatagramConfig::new().with_rate(4, 0).with_rate_slots(64);
        let mut server = DatagramServer::new(cfg);
        let mut req = BytesMut::new();
        cfg.codec()
            .encode(&Frame::new(Header::with_kind("echo"), "x".into()), &mut req)
            .unwrap();
        let now = Instant::now();
        let mut out = BytesMut::new();
        let mut ok = 0;
        for _ in 0..10 {
            if server.handle(&req, "flooder", now, &mut out, Some) == Disposition::Replied {
                ok += 1;
            }
        }
        assert_eq!(ok, 4);
        assert_eq!(server.stats().rate_limited, 6);
        // 10,000 other sources: the table stays 64 slots.
        for i in 0..10_000u32 {
            server.handle(&req, &i, now, &mut out, Some);
        }
        assert_eq!(server.limiter.slots(), 64);
    }

    /// Every setting reaches the codec and the server, and each is clamped to what the
    /// binding allows (§3.1, §4.1, §6, §7).
    #[test]
    fn settings_reach_the_codec_and_are_clamped() {
        let limits = Limits::new()
            .with_max_header_len(300)
            .with_max_body_len(100);
        let cfg = DatagramConfig::new()
            .with_profile(Profile::SeedCompat)
            .with_max_datagram_len(1200)
            .with_limits(limits)
            .with_amplification(2)
            .with_rate(5, 7)
            .with_rate_slots(9);
        assert_eq!(cfg.profile(), Profile::SeedCompat);
        assert_eq!(cfg.limits(), limits);
        assert_eq!(
            (cfg.max_datagram_len(), cfg.recv_buffer_len()),
            (1200, 1201)
        );
        assert_eq!(
            (cfg.amplification(), cfg.burst(), cfg.per_second()),
            (2, 5, 7)
        );
        assert_eq!(cfg.rate_slots(), 9);
        let codec = cfg.codec();
        assert_eq!(
            (codec.profile(), codec.limits(), codec.max_datagram_len()),
            (Profile::SeedCompat, limits, 1200)
        );
        let server = DatagramServer::new(cfg);
        assert_eq!(*server.config(), cfg);
        assert_eq!(server.limiter.slots(), 9);

        let d = DatagramConfig::default();
        assert_eq!(d, DatagramConfig::new());
        assert_eq!(d.amplification(), AMPLIFICATION_FACTOR);
        assert_eq!(
            d.with_amplification(10).amplification(),
            AMPLIFICATION_FACTOR
        );
        assert_eq!(d.with_amplification(0).amplification(), 1);
        assert_eq!(
            d.with_max_datagram_len(1).max_datagram_len(),
            MIN_DATAGRAM_LEN
        );
        assert_eq!(
            d.with_max_datagram_len(usize::MAX).max_datagram_len(),
            MAX_DATAGRAM_LEN
        );
        assert_eq!(
            (d.with_rate(0, 3).burst(), d.with_rate_slots(0).rate_slots()),
            (1, 1)
        );
        // §4.1: limits never exceed what a 600-octet datagram carries.
        let small = d.with_max_datagram_len(600);
        assert_eq!(small.limits().max_header_len(), 596);
        assert!(small.limits().max_body_len() < 596);
        assert_eq!(DatagramCodec::new(), d.codec());
        assert_eq!(DatagramCodec::default(), d.codec());
    }

    /// The server's rate limit refills at the configured rate: burst 2 at 10 per second
    /// gives one datagram back per 100 ms (§7).
    #[test]
    fn the_server_refills_at_the_configured_rate() {
        let cfg = DatagramConfig::new().with_rate(2, 10);
        let mut server = DatagramServer::new(cfg);
        let mut req = BytesMut::new();
        cfg.codec()
            .encode(&Frame::new(Header::with_kind("echo"), "x".into()), &mut req)
            .unwrap();
        let t = Instant::now();
        let mut out = BytesMut::new();
        let mut at =
            |ms: u64| server.handle(&req, "s", t + Duration::from_millis(ms), &mut out, Some);
        assert_eq!(at(0), Disposition::Replied);
        assert_eq!(at(0), Disposition::Replied);
        assert_eq!(at(0), Disposition::Dropped(DropReason::RateLimited));
        assert_eq!(at(50), Disposition::Dropped(DropReason::RateLimited));
        assert_eq!(at(100), Disposition::Replied);
        assert_eq!(at(100), Disposition::Dropped(DropReason::RateLimited));
    }

    /// With factor 1 a reply may not be longer than its request (§6); with 3 it may be three
    /// times as long.
    #[test]
    fn the_amplification_factor_is_the_configured_one() {
        let twice = |f: Frame| {
            let body = [&f.body[..], &f.body[..]].concat();
            Some(Frame::new(Header::with_kind("x"), body.into()))
        };
        for (factor, expected) in [
            (1, Disposition::Refused("reply_too_large")),
            (3, Disposition::Replied),
        ] {
            let cfg = DatagramConfig::new().with_amplification(factor);
            let mut server = DatagramServer::new(cfg);
            let mut req = BytesMut::new();
            cfg.codec()
                .encode(
                    &Frame::new(Header::with_kind("upper"), vec![b'a'; 200].into()),
                    &mut req,
                )
                .unwrap();
            let mut out = BytesMut::new();
            assert_eq!(
                server.handle(&req, "s", Instant::now(), &mut out, twice),
                expected,
                "factor {factor}"
            );
            assert!(out.len() <= factor * req.len());
        }
    }

    /// At factor 1 a reply may be exactly as long as its request, even a request of the
    /// largest size (§6: "not longer than").
    #[test]
    fn at_factor_one_a_reply_may_be_as_long_as_a_full_size_request() {
        let cfg = DatagramConfig::new()
            .with_max_datagram_len(600)
            .with_amplification(1);
        let codec = cfg.codec();
        let frame =
            |kind: &'static str, n: usize| Frame::new(Header::with_kind(kind), vec![7u8; n].into());
        let fill = body_to_fill(&codec, "upper", 600);
        let mut req = BytesMut::new();
        codec.encode(&frame("upper", fill), &mut req).unwrap();
        assert_eq!(req.len(), 600);
        let mut server = DatagramServer::new(cfg);
        let mut out = BytesMut::new();
        // "upper" → "UPPER": the same length, not the same frame (so not an echo).
        let d = server.handle(&req, "s", Instant::now(), &mut out, |_| {
            Some(frame("UPPER", fill))
        });
        assert_eq!((d, out.len()), (Disposition::Replied, 600));
        let s = server.stats();
        assert_eq!(
            (s.received, s.replied, s.largest_reply, s.max_ratio_milli),
            (1, 1, 600, 1000)
        );
    }

    /// LHP/1 §8: an echo is sent back octet for octet, header text included, even when
    /// that text is not how this implementation would write it.
    #[test]
    fn an_echo_is_the_request_octet_for_octet() {
        let req = datagram(
            r#"{ "id" : 4, "kind" : "ech\u006f", "body_len" : 2 }"#,
            b"hi",
        );
        let mut server = DatagramServer::new(DatagramConfig::new());
        let mut out = BytesMut::new();
        let d = server.handle(&req, "s", Instant::now(), &mut out, Some);
        assert_eq!((d, &out[..]), (Disposition::Replied, &req[..]));
    }

    /// The server counts what it did with each datagram: replies, refusals (an error frame
    /// sent) and drops over budget (§6).
    #[test]
    fn the_server_counts_refusals_and_drops_over_budget() {
        let mut server = DatagramServer::new(DatagramConfig::new());
        let mut out = BytesMut::new();
        let now = Instant::now();
        // Two frames in one datagram: refused with `trailing_octets` (§4.3).
        let two = [
            datagram(r#"{"kind":"echo"}"#, b""),
            datagram(r#"{"kind":"echo"}"#, b""),
        ]
        .concat();
        let d = server.handle(&two, "a", now, &mut out, Some);
        assert_eq!(d, Disposition::Refused("trailing_octets"));
        // A 4-octet datagram: even an empty error frame is more than 3 × 4 octets.
        let d = server.handle(b"\0\0\0\x09", "b", now, &mut out, Some);
        assert_eq!(d, Disposition::Dropped(DropReason::ErrorOverBudget));
        assert!(out.is_empty());
        // The handler wants no reply: counted as received only.
        let echo = datagram(r#"{"kind":"echo"}"#, b"");
        let d = server.handle(&echo, "c", now, &mut out, |_| None);
        assert_eq!(d, Disposition::Dropped(DropReason::NoReply));
        let s = server.stats();
        assert_eq!(
            (
                s.received,
                s.replied,
                s.refused,
                s.over_budget,
                s.rate_limited
            ),
            (3, 0, 1, 1, 0)
        );
    }

    /// Only an `error` reply without a body has its `message` shortened to fit (§5.3); any
    /// other reply over budget is refused with `reply_too_large` (§6), even one that carries
    /// a `message` member or an error with a body.
    #[test]
    fn only_bodiless_error_replies_are_shortened() {
        let cfg = DatagramConfig::new();
        let mut req = BytesMut::new();
        let mut h = Header::with_kind("time");
        h.set_id(5);
        cfg.codec()
            .encode(&Frame::new(h, Bytes::new()), &mut req)
            .unwrap();
        let long = "m".repeat(400);
        let with_body = |kind: &'static str, body: &'static [u8]| {
            let long = long.clone();
            move |_f: Frame| {
                let mut h = Header::with_kind(kind);
                h.set_id(5)
                    .insert("code", "bad_request")
                    .insert("message", long);
                Some(Frame::new(h, Bytes::from_static(body)))
            }
        };
        let mut out = BytesMut::new();
        for (kind, body) in [("error", &b"x"[..]), ("notice", &b""[..])] {
            let mut server = DatagramServer::new(cfg);
            let d = server.handle(&req, "s", Instant::now(), &mut out, with_body(kind, body));
            assert_eq!(
                d,
                Disposition::Refused("reply_too_large"),
                "{kind} {body:?}"
            );
        }
        let mut server = DatagramServer::new(cfg);
        let d = server.handle(&req, "s", Instant::now(), &mut out, with_body("error", b""));
        assert_eq!(d, Disposition::Replied);
        let f = cfg.codec().decode(&out).unwrap();
        let sent = f.header.get("message").and_then(Value::as_str).unwrap();
        assert!(!sent.is_empty() && long.starts_with(sent), "{sent:?}");
    }

    /// A client takes as its reply a frame with its request's `id`, or a datagram error
    /// (which carries `offset` and cannot carry `id`, §5.1); nothing else.
    #[test]
    fn replies_are_matched_by_id_or_as_datagram_errors() {
        let mut reply = Header::with_kind("time");
        reply.set_id(7);
        assert!(matches_request(&reply, 7));
        assert!(!matches_request(&reply, 8));
        assert!(!matches_request(&Header::with_kind("time"), 7));
        let bad = DatagramError::TooLarge { max: 512 }.error_header("too large");
        assert!(is_datagram_error(&bad) && matches_request(&bad, 7));
        // A request refusal has `id`, not `offset`; an `offset` on another kind is not one.
        let refusal = reply_too_large_header(Some(3), "no");
        assert!(!is_datagram_error(&refusal));
        assert!(matches_request(&refusal, 3) && !matches_request(&refusal, 7));
        let mut other = Header::with_kind("time");
        other.insert("offset", 0);
        assert!(!is_datagram_error(&other));
        assert_eq!(error_code(&bad), Some("datagram_too_large"));
        assert_eq!(error_code(&other), None);
    }

    #[test]
    fn retry_once_sends_once() {
        let t = Duration::from_millis(80);
        assert_eq!(
            Retry::once(t),
            Retry {
                timeout: t,
                tries: 1
            }
        );
        assert_eq!(Retry::default().tries, 3);
    }

    /// Each error names the rule it breaks and where, in its section and its message.
    #[test]
    fn errors_name_their_rule_and_offset() {
        let trailing = DatagramError::TrailingOctets {
            offset: 6,
            count: 2,
        };
        assert_eq!(trailing.section(), "lhp-udp §4.3");
        let text = trailing.to_string();
        assert!(
            text.starts_with("trailing_octets at offset 6 (lhp-udp §4.3): 2 octet(s)"),
            "{text}"
        );
        let large = DatagramError::TooLarge { max: 512 };
        assert_eq!(large.section(), "lhp-udp §3.2");
        assert!(large
            .to_string()
            .starts_with("datagram_too_large at offset 512 (lhp-udp §3.2)"));
        let eof = DatagramCodec::new().decode(b"\0\0").unwrap_err();
        let DatagramError::Decode(inner) = &eof else {
            panic!("{eof:?}")
        };
        assert_eq!(eof.section(), format!("lhp-1 §{}", inner.section()));
        assert_eq!(eof.to_string(), inner.to_string());
        assert_eq!(eof.missing(), Some(2));

        let too_large = DatagramEncodeError::TooLarge { len: 700, max: 600 };
        assert_eq!(
            too_large.to_string(),
            "the frame is 700 octets, more than fits in one datagram (600; lhp-udp §3.1)"
        );
        // A header that breaks §4.4 (`id` must be an integer) is caller misuse.
        let mut h = Header::with_kind("echo");
        h.insert("id", "three");
        let e = DatagramCodec::new()
            .encode(&Frame::new(h, Bytes::new()), &mut BytesMut::new())
            .unwrap_err();
        let DatagramEncodeError::Encode(inner) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(e.to_string(), inner.to_string());
    }

    /// The size limit counts the frame alone, not what `dst` held before it: a frame of
    /// exactly `max_datagram_len` octets is sent, one octet more is refused and leaves `dst`
    /// as it was (§3.1).
    #[test]
    fn a_frame_that_exactly_fills_the_datagram_is_sent() {
        let codec = DatagramConfig::new().with_max_datagram_len(600).codec();
        let frame = |n: usize| Frame::new(Header::with_kind("echo"), vec![7u8; n].into());
        let fill = body_to_fill(&codec, "echo", 600);
        let mut out = BytesMut::from(&b"earlier"[..]);
        codec.encode(&frame(fill), &mut out).unwrap();
        assert_eq!(out.len(), 7 + 600);
        let mut out = BytesMut::from(&b"earlier"[..]);
        let e = codec.encode(&frame(fill + 1), &mut out).unwrap_err();
        assert!(
            matches!(e, DatagramEncodeError::TooLarge { len: 601, max: 600 }),
            "{e:?}"
        );
        assert_eq!(&out[..], b"earlier");
    }

    /// An error frame's message is shortened no more than the budget needs: an ASCII
    /// message fills the budget exactly; a two-octet character is never cut in two, so the
    /// frame is at most one octet short of it.
    #[test]
    fn error_messages_are_shortened_no_more_than_the_budget_needs() {
        let codec = DatagramCodec::new();
        let err = DatagramError::TrailingOctets {
            offset: 6,
            count: 6,
        };
        for limit in 120..124 {
            let mut out = BytesMut::new();
            assert!(codec.encode_error(&err, &"a".repeat(500), limit, &mut out));
            assert_eq!(out.len(), limit);
            let wide = "é".repeat(500);
            let mut out = BytesMut::new();
            assert!(codec.encode_error(&err, &wide, limit, &mut out));
            assert!(
                out.len() == limit || out.len() + 1 == limit,
                "{} for {limit}",
                out.len()
            );
            let f = codec.decode(&out).unwrap();
            let sent = f.header.get("message").and_then(Value::as_str).unwrap();
            assert!(!sent.is_empty() && wide.starts_with(sent), "{sent:?}");
        }
    }

    #[test]
    fn retry_applies_to_idempotent_kinds_only() {
        assert!(is_idempotent(Some("echo")) && is_idempotent(Some("time")));
        assert!(!is_idempotent(Some("put")) && !is_idempotent(Some("exec")));
        assert!(!is_idempotent(Some("chat")) && !is_idempotent(None));
    }
}
