//! `lhp decode`: a recorded stream in, one JSON line per frame out, in constant memory.
//!
//! The stream is read in 64 KiB chunks and fed to [`Decoder::decode_event`]; body chunks are
//! hashed as they pass and then dropped, so a 10 GiB body costs no more memory than a 10-byte
//! one. Each frame becomes one line:
//!
//! ```text
//! {"offset":0,"header":{"kind":"echo","body_len":5},"body_len":5,"body_sha256":"2cf2…"}
//! ```
//!
//! `offset` is the absolute stream offset of the frame's first prefix octet (octets skipped
//! with `--skip-bytes` included, as in error offsets, spec §7).

use std::io::{self, Read, Write};

use bytes::BytesMut;
use lhp_codec::{
    hex_lower, DecodeError, Decoder, Event, Header, Limits, Profile, MAX_SAFE_INTEGER,
};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Octets read from the input at a time.
pub const CHUNK: usize = 64 << 10;

/// What `lhp decode` decodes with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeOptions {
    /// The wire dialect.
    pub profile: Profile,
    /// Receiver limits. `lhp decode` streams bodies, so its default `max_body_len` is the
    /// largest the protocol allows (2^53−1), not the 64 MiB of whole-frame delivery.
    pub limits: Limits,
    /// Octets to consume before the first frame (e.g. 4 for the seeds' FTP stream, which
    /// starts with a bare file size). Offsets still count them.
    pub skip_bytes: u64,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            profile: Profile::Lhp1,
            limits: Limits::new().with_max_body_len(MAX_SAFE_INTEGER),
            skip_bytes: 0,
        }
    }
}

/// How a decoded stream ended.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeSummary {
    /// Frames decoded (and printed) before the end or the error.
    pub frames: u64,
    /// The protocol error that ended the stream, if it did not end cleanly between frames.
    pub error: Option<DecodeError>,
}

/// Decodes `input` under `opts`, writing one JSON line per complete frame to `out`.
///
/// Returns `Ok` with the [`DecodeSummary`] whether or not the stream held a protocol error
/// (the error is data here: it is what the user asked to see); `Err` only for IO errors, and
/// for an input shorter than `skip_bytes`.
pub fn decode_stream<R: Read, W: Write>(
    mut input: R,
    opts: &DecodeOptions,
    out: &mut W,
) -> io::Result<DecodeSummary> {
    skip(&mut input, opts.skip_bytes)?;
    let mut dec = Decoder::with(opts.profile, opts.limits);
    dec.set_stream_offset(opts.skip_bytes);

    let mut chunk = vec![0u8; CHUNK];
    let mut buf = BytesMut::with_capacity(CHUNK);
    let mut frames = 0u64;
    let mut frame_start = opts.skip_bytes;
    let mut current: Option<Current> = None;
    loop {
        loop {
            if dec.is_between_frames() {
                frame_start = dec.offset();
            }
            match dec.decode_event(&mut buf) {
                Ok(Some(Event::Head(header))) => {
                    current = Some(Current {
                        offset: frame_start,
                        header,
                        hasher: Sha256::new(),
                        len: 0,
                    });
                }
                Ok(Some(Event::Body(bytes))) => {
                    if let Some(c) = current.as_mut() {
                        c.hasher.update(&bytes);
                        c.len += bytes.len() as u64;
                    }
                }
                Ok(Some(Event::End)) => {
                    if let Some(c) = current.take() {
                        write_line(out, c)?;
                        frames += 1;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    return Ok(DecodeSummary {
                        frames,
                        error: Some(error),
                    })
                }
            }
        }
        let n = read_some(&mut input, &mut chunk)?;
        if n == 0 {
            let error = dec.finish(&buf).err();
            return Ok(DecodeSummary { frames, error });
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

/// The JSON object `lhp decode` prints on stderr for a protocol error:
/// `{"error":CODE,"offset":N,"section":S,"missing":M,"message":TEXT}` (`missing` only for
/// `unexpected_eof`).
pub fn error_json(e: &DecodeError) -> Value {
    let mut m = Map::new();
    m.insert("error".into(), e.code().into());
    m.insert("offset".into(), e.offset().into());
    m.insert("section".into(), e.section().into());
    if let Some(missing) = e.missing() {
        m.insert("missing".into(), missing.into());
    }
    m.insert("message".into(), e.to_string().into());
    Value::Object(m)
}

struct Current {
    offset: u64,
    header: Header,
    hasher: Sha256,
    len: u64,
}

fn write_line<W: Write>(out: &mut W, c: Current) -> io::Result<()> {
    let mut line = Map::new();
    line.insert("offset".into(), c.offset.into());
    line.insert("header".into(), Value::Object(c.header.into_members()));
    line.insert("body_len".into(), c.len.into());
    line.insert("body_sha256".into(), hex_lower(&c.hasher.finalize()).into());
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

fn skip<R: Read>(input: &mut R, n: u64) -> io::Result<()> {
    let got = io::copy(&mut input.take(n), &mut io::sink())?;
    if got < n {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the input has only {got} octets, fewer than --skip-bytes {n}"),
        ));
    }
    Ok(())
}

fn read_some<R: Read>(input: &mut R, chunk: &mut [u8]) -> io::Result<usize> {
    loop {
        match input.read(chunk) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lhp_codec::{Encoder, Frame};

    fn lines(out: &[u8]) -> Vec<Value> {
        out.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    #[test]
    fn offsets_count_every_frame_and_skipped_octets() {
        let mut wire = BytesMut::from(&b"junk"[..]);
        let enc = Encoder::new();
        enc.encode(&Frame::new(Header::with_kind("a"), "xyz".into()), &mut wire)
            .unwrap();
        let second = wire.len() as u64;
        enc.encode(&Frame::new(Header::with_kind("b"), "".into()), &mut wire)
            .unwrap();
        let opts = DecodeOptions {
            skip_bytes: 4,
            ..Default::default()
        };
        let mut out = Vec::new();
        let s = decode_stream(&wire[..], &opts, &mut out).unwrap();
        assert_eq!((s.frames, s.error), (2, None));
        let l = lines(&out);
        assert_eq!(l[0]["offset"], 4);
        assert_eq!(l[1]["offset"], second);
        assert_eq!(l[1]["body_len"], 0);
    }

    #[test]
    fn truncated_body_reports_missing_octets() {
        let mut wire = BytesMut::new();
        Encoder::new()
            .encode(
                &Frame::new(Header::with_kind("a"), "hello".into()),
                &mut wire,
            )
            .unwrap();
        let cut = wire.len() - 2;
        let mut out = Vec::new();
        let s = decode_stream(&wire[..cut], &DecodeOptions::default(), &mut out).unwrap();
        let e = s.error.unwrap();
        assert_eq!(
            (e.code(), e.offset(), e.missing()),
            ("unexpected_eof", cut as u64, Some(2))
        );
        assert!(out.is_empty());
        assert_eq!(error_json(&e)["missing"], 2);
    }

    #[test]
    fn skip_past_the_end_is_an_io_error() {
        let e = decode_stream(
            &b"ab"[..],
            &DecodeOptions {
                skip_bytes: 3,
                ..Default::default()
            },
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
