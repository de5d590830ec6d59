//! Runs a vector through the codec under a chunk plan.
#![allow(dead_code)]

use bytes::BytesMut;
use lhp_codec::{Decoder, Event, Limits, Profile};
use lhp_vectors::{Outcome, OutcomeError, Vector};

/// A decoder configured as the vector says, with the skipped octets accounted for.
pub fn decoder_for(v: &Vector) -> Decoder {
    let profile: Profile = v.profile.parse().expect("known profile");
    let mut limits = Limits::default();
    if let Some((h, b)) = v.limits {
        if let Some(h) = h {
            limits = limits.with_max_header_len(h);
        }
        if let Some(b) = b {
            limits = limits.with_max_body_len(b);
        }
    }
    let mut d = Decoder::with(profile, limits);
    d.set_stream_offset(v.skip_bytes);
    d
}

/// The stream the decoder sees (input minus skipped octets).
pub fn stream(v: &Vector) -> &[u8] {
    &v.input[v.skip_bytes as usize..]
}

fn err(e: lhp_codec::DecodeError) -> Option<OutcomeError> {
    Some(OutcomeError {
        code: e.code().to_owned(),
        offset: e.offset(),
        missing: e.missing(),
    })
}

/// Whole-frame API: feeds `data` cut at `cuts` (sorted offsets).
pub fn run_frames(v: &Vector, data: &[u8], cuts: &[usize]) -> Outcome {
    let mut dec = decoder_for(v);
    let mut buf = BytesMut::new();
    let mut out = Outcome::default();
    let mut start = 0;
    for end in cuts.iter().copied().chain([data.len()]) {
        buf.extend_from_slice(&data[start..end]);
        start = end;
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(f)) => out.frames.push((f.header.into_members(), f.body.to_vec())),
                Ok(None) => break,
                Err(e) => {
                    out.error = err(e);
                    return out;
                }
            }
        }
    }
    if let Err(e) = dec.finish(&buf) {
        out.error = err(e);
    }
    out
}

/// In-place API (`decode_ref`): same, the caller dropping each frame's octets itself; the
/// header is built from the validated text only to compare members.
pub fn run_in_place(v: &Vector, data: &[u8], cuts: &[usize]) -> Outcome {
    let mut dec = decoder_for(v);
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Outcome::default();
    let mut start = 0;
    for end in cuts.iter().copied().chain([data.len()]) {
        buf.extend_from_slice(&data[start..end]);
        start = end;
        loop {
            match dec.decode_ref(&buf) {
                Ok(Some(f)) => {
                    out.frames
                        .push((f.to_header().into_members(), f.body().to_vec()));
                    let n = f.len();
                    buf.drain(..n);
                }
                Ok(None) => break,
                Err(e) => {
                    out.error = err(e);
                    return out;
                }
            }
        }
    }
    if let Err(e) = dec.finish(&BytesMut::from(&buf[..])) {
        out.error = err(e);
    }
    out
}

/// Streaming API: same, reassembling bodies from `Event::Body` chunks.
pub fn run_events(v: &Vector, data: &[u8], cuts: &[usize]) -> Outcome {
    let mut dec = decoder_for(v);
    let mut buf = BytesMut::new();
    let mut out = Outcome::default();
    let mut current: Option<(lhp_codec::Map<String, lhp_codec::Value>, Vec<u8>)> = None;
    let mut start = 0;
    for end in cuts.iter().copied().chain([data.len()]) {
        buf.extend_from_slice(&data[start..end]);
        start = end;
        loop {
            match dec.decode_event(&mut buf) {
                Ok(Some(Event::Head(h))) => {
                    assert!(current.is_none(), "Head while a body is open");
                    current = Some((h.into_members(), Vec::new()));
                }
                Ok(Some(Event::Body(b))) => {
                    assert!(!b.is_empty(), "empty Body event");
                    current
                        .as_mut()
                        .expect("Body before Head")
                        .1
                        .extend_from_slice(&b)
                }
                Ok(Some(Event::End)) => out.frames.push(current.take().expect("End before Head")),
                Ok(None) => break,
                Err(e) => {
                    out.error = err(e);
                    return out;
                }
            }
        }
    }
    if let Err(e) = dec.finish(&buf) {
        out.error = err(e);
    }
    out
}
