//! Shared harness for the LHP/1 fuzz targets: how a fuzz input becomes a decoder
//! configuration and a stream, and the invariants every target asserts.
//!
//! Input layout used by `decode`, `chunked` and `seed_compat` (`fuzz/seed_corpus.py` writes
//! the same layout, so vectors land in the corpus as valid configurations):
//!
//! ```text
//! +-------+-------+-------+--------------------------+----------------------------+
//! | flags | h_sel | b_sel | explicit limits (if sel  | stream ...                 |
//! |       |       |       | is 7): u32 BE, u64 BE    |                            |
//! +-------+-------+-------+--------------------------+----------------------------+
//! flags bit 0: seed-compat profile    flags bit 1: do not verify digests
//! ```
//!
//! Missing bytes read as zero, so the all-zero configuration is the default one.

#![forbid(unsafe_code)]

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use lhp_codec::{DecodeError, Decoder, Encoder, Event, Frame, Header, Limits, Profile};

/// 2^53−1, the largest body length.
pub const MAX_SAFE: u64 = (1 << 53) - 1;

/// How a decoder is set up for one fuzz input.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// The wire dialect.
    pub profile: Profile,
    /// The receiver's limits.
    pub limits: Limits,
    /// Whether digests are verified.
    pub verify_digests: bool,
}

impl Config {
    /// A decoder for this configuration.
    pub fn decoder(&self) -> Decoder {
        let mut d = Decoder::with(self.profile, self.limits);
        d.set_verify_digests(self.verify_digests);
        d
    }
}

/// A byte cursor where reading past the end gives zeros.
pub struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// A cursor over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data }
    }

    /// The next byte, or 0.
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next `N` bytes, zero-padded.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for o in out.iter_mut() {
            *o = self.byte();
        }
        out
    }

    /// The next `n` bytes (fewer at the end).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// Everything left.
    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// Reads the configuration header; `force` overrides the profile bit.
pub fn read_config(cur: &mut Cursor<'_>, force: Option<Profile>) -> Config {
    let flags = cur.byte();
    let h_sel = cur.byte() % 8;
    let b_sel = cur.byte() % 8;
    let max_header_len = match h_sel {
        0 => Limits::DEFAULT_MAX_HEADER_LEN,
        1 => 2,
        2 => 3,
        3 => 16,
        4 => 64,
        5 => 1024,
        6 => u32::MAX,
        _ => u32::from_be_bytes(cur.array()),
    };
    let max_body_len = match b_sel {
        0 => Limits::DEFAULT_MAX_BODY_LEN,
        1 => 0,
        2 => 1,
        3 => 7,
        4 => 1024,
        5 => 1 << 20,
        6 => MAX_SAFE,
        _ => u64::from_be_bytes(cur.array()),
    };
    let profile = force.unwrap_or(if flags & 1 == 1 {
        Profile::SeedCompat
    } else {
        Profile::Lhp1
    });
    Config {
        profile,
        limits: Limits::new()
            .with_max_header_len(max_header_len)
            .with_max_body_len(max_body_len),
        verify_digests: flags & 2 == 0,
    }
}

/// How a decoding run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The stream ended between frames.
    Clean,
    /// A decode error: code, offset, missing octets.
    Error(&'static str, u64, Option<u64>),
}

impl End {
    fn of(e: &DecodeError) -> End {
        End::Error(e.code(), e.offset(), e.missing())
    }
}

/// Everything a decoder produced from one stream.
#[derive(Debug, PartialEq)]
pub struct Run {
    /// The frames, each with the stream range it was decoded from.
    pub frames: Vec<(Frame, Range<usize>)>,
    /// How it ended.
    pub end: End,
}

/// Checks what every decode error must satisfy, and that it is sticky.
fn check_error(dec: &mut Decoder, buf: &mut BytesMut, e: &DecodeError, stream_len: usize) {
    assert!(
        e.offset() <= stream_len as u64,
        "error offset {} past input {stream_len}: {e}",
        e.offset()
    );
    assert!(!e.code().is_empty() && !e.section().is_empty());
    let _ = e.to_string();
    if e.code() == "unexpected_eof" {
        assert_eq!(
            e.offset(),
            stream_len as u64,
            "unexpected_eof not at the end: {e}"
        );
        assert!(
            e.missing().is_some_and(|m| m > 0),
            "unexpected_eof missing nothing: {e}"
        );
    } else {
        assert_eq!(e.missing(), None);
    }
    // Sticky: the stream is over, whatever more arrives and whichever API is called.
    let before = buf.len();
    assert_eq!(dec.decode(buf).as_ref(), Err(e));
    assert_eq!(dec.decode_event(buf).as_ref(), Err(e));
    assert_eq!(dec.finish(buf).as_ref(), Err(e));
    assert_eq!(buf.len(), before, "a failed decoder consumed input");
    assert_eq!(dec.wanted(buf.len()), 0);
}

/// Decodes `stream` fed whole through [`Decoder::decode`], checking offsets, consumed counts,
/// `wanted`, and the sticky error.
pub fn decode_whole(cfg: &Config, stream: &[u8]) -> Run {
    let mut dec = cfg.decoder();
    let mut buf = BytesMut::from(stream);
    let mut frames = Vec::new();
    loop {
        let start = dec.offset();
        match dec.decode(&mut buf) {
            Ok(Some(frame)) => {
                let end = dec.offset();
                assert_eq!(
                    end as usize + buf.len(),
                    stream.len(),
                    "consumed count disagrees"
                );
                assert!(end > start && end <= stream.len() as u64);
                assert_eq!(frame.header.body_len(), frame.body.len() as u64);
                assert!(dec.is_between_frames());
                frames.push((frame, start as usize..end as usize));
            }
            Ok(None) => {
                assert!(dec.offset() <= stream.len() as u64);
                assert_eq!(dec.offset() as usize + buf.len(), stream.len());
                assert!(dec.wanted(buf.len()) > 0, "Ok(None) but nothing wanted");
                let end = match dec.finish(&buf) {
                    Ok(()) => {
                        assert!(buf.is_empty() && dec.is_between_frames());
                        End::Clean
                    }
                    Err(e) => {
                        check_error(&mut dec, &mut buf, &e, stream.len());
                        End::of(&e)
                    }
                };
                return Run { frames, end };
            }
            Err(e) => {
                check_error(&mut dec, &mut buf, &e, stream.len());
                return Run {
                    frames,
                    end: End::of(&e),
                };
            }
        }
    }
}

/// Splits `stream` into chunks whose sizes cycle through `sizes` (all-zero or empty sizes
/// mean one octet at a time; a zero in the cycle is an empty read).
pub fn chunks<'a>(stream: &'a [u8], sizes: &[u8]) -> Vec<&'a [u8]> {
    let all_zero = sizes.iter().all(|&s| s == 0);
    let mut out = Vec::new();
    let mut rest = stream;
    let mut i = 0usize;
    while !rest.is_empty() {
        let n = if all_zero {
            1
        } else {
            usize::from(sizes[i % sizes.len()])
        };
        i += 1;
        let (head, tail) = rest.split_at(n.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}

/// Decodes the chunks through [`Decoder::decode`], draining after each chunk.
pub fn decode_chunked(cfg: &Config, chunks: &[&[u8]]) -> Run {
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    let mut dec = cfg.decoder();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut fed = 0usize;
    let mut last_end = 0usize;
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        fed += chunk.len();
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    let end = dec.offset() as usize;
                    frames.push((frame, last_end..end));
                    last_end = end;
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(e.offset() <= fed as u64);
                    check_error(&mut dec, &mut buf, &e, total);
                    return Run {
                        frames,
                        end: End::of(&e),
                    };
                }
            }
        }
    }
    let end = match dec.finish(&buf) {
        Ok(()) => End::Clean,
        Err(e) => {
            check_error(&mut dec, &mut buf, &e, total);
            End::of(&e)
        }
    };
    Run { frames, end }
}

/// Decodes the chunks through [`Decoder::decode_event`], reassembling frames from events.
pub fn events_chunked(cfg: &Config, chunks: &[&[u8]]) -> Run {
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    let mut dec = cfg.decoder();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut open: Option<(Header, Vec<u8>)> = None;
    let mut last_end = 0usize;
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match dec.decode_event(&mut buf) {
                Ok(Some(Event::Head(h))) => {
                    assert!(open.is_none(), "Head inside a frame");
                    open = Some((h, Vec::new()));
                }
                Ok(Some(Event::Body(b))) => {
                    assert!(!b.is_empty(), "empty Body event");
                    let Some((h, body)) = open.as_mut() else {
                        panic!("Body outside a frame");
                    };
                    body.extend_from_slice(&b);
                    assert!(body.len() as u64 <= h.body_len(), "more body than declared");
                }
                Ok(Some(Event::End)) => {
                    let Some((header, body)) = open.take() else {
                        panic!("End outside a frame");
                    };
                    assert_eq!(body.len() as u64, header.body_len());
                    let end = dec.offset() as usize;
                    let body = Bytes::from(body);
                    frames.push((Frame { header, body }, last_end..end));
                    last_end = end;
                }
                Ok(None) => break,
                Err(e) => {
                    check_error(&mut dec, &mut buf, &e, total);
                    return Run {
                        frames,
                        end: End::of(&e),
                    };
                }
            }
        }
    }
    let end = match dec.finish(&buf) {
        Ok(()) => End::Clean,
        Err(e) => {
            check_error(&mut dec, &mut buf, &e, total);
            End::of(&e)
        }
    };
    Run { frames, end }
}

/// Decodes the chunks in place through [`Decoder::decode_ref`], the caller dropping each
/// frame's octets itself. For every frame, the typed path (a header deserialized from the
/// fast path's member table, or by `serde_json`) must read what `serde_json` reads from the
/// header text.
pub fn in_place_chunked(cfg: &Config, chunks: &[&[u8]]) -> Run {
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    let mut dec = cfg.decoder();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut last_end = 0usize;
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match dec.decode_ref(&buf) {
                Ok(Some(f)) => {
                    let typed: serde_json::Value = f.header().expect("a valid header is a Value");
                    let text: serde_json::Value =
                        serde_json::from_str(f.header_text()).expect("valid JSON");
                    assert_eq!(typed, text, "typed header differs from the text");
                    let n = f.len();
                    let frame = f.to_frame();
                    let end = dec.offset() as usize;
                    assert_eq!(end - last_end, n, "frame length");
                    frames.push((frame, last_end..end));
                    last_end = end;
                    let _ = buf.split_to(n);
                }
                Ok(None) => break,
                Err(e) => {
                    check_error(&mut dec, &mut buf, &e, total);
                    assert_eq!(dec.decode_ref(&buf).as_ref().err(), Some(&e));
                    return Run {
                        frames,
                        end: End::of(&e),
                    };
                }
            }
        }
    }
    let end = match dec.finish(&buf) {
        Ok(()) => End::Clean,
        Err(e) => {
            check_error(&mut dec, &mut buf, &e, total);
            End::of(&e)
        }
    };
    Run { frames, end }
}

/// An encoder for `profile` that writes any header a decoder could have accepted.
pub fn encoder(profile: Profile) -> Encoder {
    let mut e = Encoder::with_profile(profile);
    e.set_max_header_len(u32::MAX);
    e
}

/// A decoder for `profile` that accepts any length.
pub fn open_decoder(profile: Profile, verify_digests: bool) -> Decoder {
    let mut d = Decoder::with(
        profile,
        Limits::new()
            .with_max_header_len(u32::MAX)
            .with_max_body_len(u64::MAX),
    );
    d.set_verify_digests(verify_digests);
    d
}

/// Decodes exactly one frame from `wire`, which must hold nothing else.
pub fn decode_one(profile: Profile, verify_digests: bool, wire: &[u8]) -> Frame {
    let mut dec = open_decoder(profile, verify_digests);
    let mut buf = BytesMut::from(wire);
    let frame = match dec.decode(&mut buf) {
        Ok(Some(f)) => f,
        other => panic!("re-encoded frame does not decode: {other:?}\nwire: {wire:02x?}"),
    };
    assert!(buf.is_empty(), "re-encoded frame left {} octets", buf.len());
    assert_eq!(dec.finish(&buf), Ok(()));
    frame
}

/// The re-encoding invariant: a decoded frame re-encodes (same profile), decodes again to an
/// equal frame, and that canonical encoding is a fixpoint (re-encoding it gives the same
/// octets). Returns true if the original octets were already canonical.
pub fn check_reencode(cfg: &Config, frame: &Frame, original: &[u8]) -> bool {
    let enc = encoder(cfg.profile);
    let mut wire = BytesMut::new();
    if let Err(e) = enc.encode(frame, &mut wire) {
        panic!("decoded frame does not re-encode: {e}\nframe: {frame:?}");
    }
    let again = decode_one(cfg.profile, cfg.verify_digests, &wire);
    assert_eq!(
        &again, frame,
        "re-encoded frame decodes differently\nwire: {wire:02x?}"
    );
    let mut wire2 = BytesMut::new();
    if let Err(e) = enc.encode(&again, &mut wire2) {
        panic!("canonical frame does not re-encode: {e}");
    }
    assert_eq!(wire, wire2, "canonical encoding is not a fixpoint");
    wire[..] == *original
}

/// The `decode` target's body: decode whole, then check every frame re-encodes.
pub fn decode_target(data: &[u8], force: Option<Profile>) {
    let mut cur = Cursor::new(data);
    let cfg = read_config(&mut cur, force);
    let stream = cur.rest();
    let run = decode_whole(&cfg, stream);
    let mut covered = 0usize;
    for (frame, range) in &run.frames {
        assert_eq!(range.start, covered, "frames are not contiguous");
        covered = range.end;
        let original = stream.get(range.clone()).unwrap_or_default();
        check_reencode(&cfg, frame, original);
    }
    if run.end == End::Clean {
        assert_eq!(covered, stream.len(), "clean end with octets left over");
    }
}
