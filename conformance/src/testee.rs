//! Implementations under test, and the in-process ones (`lhp-codec` through `decode` and
//! through `decode_event`).

use bytes::BytesMut;
use lhp_codec::{DecodeError, Decoder, Event, Frame, Header, Limits, Profile};
use lhp_vectors::{Outcome, OutcomeError};

use crate::plan::{Budget, Plan};

/// What one run of a plan produced.
#[derive(Clone, Debug, PartialEq)]
pub enum Run {
    /// The implementation decoded something (right or wrong).
    Outcome(Outcome),
    /// The implementation crashed or broke its protocol.
    Crash(String),
    /// No answer in time.
    Timeout,
}

/// The parameters of one decode: the stream after any skipped octets, and how to configure the
/// decoder.
#[derive(Clone, Copy, Debug)]
pub struct Job<'a> {
    /// The octets to feed.
    pub stream: &'a [u8],
    /// The chunk plan (total = `stream.len()`).
    pub plan: &'a Plan,
    /// The profile.
    pub profile: Profile,
    /// The limits.
    pub limits: Limits,
    /// Octets of the original stream before `stream` (offsets count them).
    pub skip: u64,
    /// The true body octets of the vector's expected frames, in order, as far as known: lets
    /// out-of-process implementations report bodies by digest.
    pub bodies: &'a [&'a [u8]],
}

/// An implementation under test.
pub trait Testee {
    /// The name in reports (`codec`, `stdio:COMMAND`, ...).
    fn name(&self) -> String;

    /// Decodes `job.stream` fed in `job.plan`'s chunks.
    fn run(&mut self, job: &Job<'_>) -> Run;

    /// Whether the implementation offers `profile`.
    fn supports(&self, profile: Profile) -> bool {
        let _ = profile;
        true
    }

    /// How many plans it gets per vector.
    fn budget(&self) -> Budget {
        Budget::FULL
    }

    /// The memory of the implementation's process, if it runs in one the harness can
    /// measure (the `resources` group); `None` for in-process implementations.
    fn memory(&self) -> Option<crate::process::Mem> {
        None
    }

    /// A line about the implementation for the report (capabilities, reductions).
    fn about(&self) -> String {
        String::new()
    }
}

/// Converts a codec error to the outcome form.
pub fn outcome_error(e: &DecodeError) -> OutcomeError {
    OutcomeError {
        code: e.code().to_owned(),
        offset: e.offset(),
        missing: e.missing(),
    }
}

/// Converts a decoded frame to the outcome form.
pub fn outcome_frame(f: Frame) -> (serde_json::Map<String, serde_json::Value>, Vec<u8>) {
    (f.header.into_members(), Vec::from(f.body))
}

fn decoder(job: &Job<'_>) -> Decoder {
    let mut d = Decoder::with(job.profile, job.limits);
    d.set_stream_offset(job.skip);
    d
}

/// Splits `stream` into the plan's chunks.
pub fn chunks<'a>(stream: &'a [u8], plan: &'a Plan) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut at = 0usize;
    plan.chunks().map(move |n| {
        let end = (at + n).min(stream.len());
        let c = stream.get(at..end).unwrap_or(&[]);
        at = end;
        c
    })
}

/// `lhp-codec`'s [`Decoder::decode`], fed chunk by chunk.
#[derive(Debug, Default)]
pub struct CodecDecode;

impl Testee for CodecDecode {
    fn name(&self) -> String {
        "codec".into()
    }

    fn run(&mut self, job: &Job<'_>) -> Run {
        let mut dec = decoder(job);
        let mut buf = BytesMut::new();
        let mut out = Outcome::default();
        for chunk in chunks(job.stream, job.plan) {
            buf.extend_from_slice(chunk);
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(f)) => out.frames.push(outcome_frame(f)),
                    Ok(None) => break,
                    Err(e) => {
                        out.error = Some(outcome_error(&e));
                        return Run::Outcome(out);
                    }
                }
            }
        }
        if let Err(e) = dec.finish(&buf) {
            out.error = Some(outcome_error(&e));
        }
        Run::Outcome(out)
    }

    fn about(&self) -> String {
        "lhp-codec Decoder::decode (whole frames)".into()
    }
}

/// `lhp-codec`'s [`Decoder::decode_event`] (streaming bodies), fed chunk by chunk.
#[derive(Debug, Default)]
pub struct CodecEvents;

impl Testee for CodecEvents {
    fn name(&self) -> String {
        "codec-events".into()
    }

    fn run(&mut self, job: &Job<'_>) -> Run {
        let mut dec = decoder(job);
        let mut buf = BytesMut::new();
        let mut out = Outcome::default();
        let mut current: Option<(Header, Vec<u8>)> = None;
        for chunk in chunks(job.stream, job.plan) {
            buf.extend_from_slice(chunk);
            loop {
                match dec.decode_event(&mut buf) {
                    Ok(Some(Event::Head(h))) => current = Some((h, Vec::new())),
                    Ok(Some(Event::Body(b))) => match current.as_mut() {
                        Some((_, body)) => body.extend_from_slice(&b),
                        None => return Run::Crash("body event without a head".into()),
                    },
                    Ok(Some(Event::End)) => match current.take() {
                        Some((h, body)) => out.frames.push((h.into_members(), body)),
                        None => return Run::Crash("end event without a head".into()),
                    },
                    Ok(None) => break,
                    Err(e) => {
                        out.error = Some(outcome_error(&e));
                        return Run::Outcome(out);
                    }
                }
            }
        }
        if let Err(e) = dec.finish(&buf) {
            out.error = Some(outcome_error(&e));
        }
        Run::Outcome(out)
    }

    fn about(&self) -> String {
        "lhp-codec Decoder::decode_event (streaming bodies)".into()
    }
}
