//! `LhpCodec` under `FramedRead`: every vector of `spec/vectors`, read through an `AsyncRead`
//! that returns `Poll::Pending` between every octet (the way tokio-util's own tests mock IO),
//! and through a 1-octet `tokio::io::duplex`, gives the same frames and the same error as the
//! whole stream at once, and what the vector expects.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures::StreamExt;
use lhp_codec::{Limits, Profile};
use lhp_tokio::{Error, FrameReader, LhpCodec};
use lhp_vectors::{Outcome, OutcomeError, Vector, Verdict};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio_util::codec::{Decoder as _, FramedRead};

/// An `AsyncRead` that hands out `step` octets per ready poll and answers every other poll
/// with `Pending` (waking itself at once).
struct Stutter {
    data: Vec<u8>,
    pos: usize,
    step: usize,
    pend: bool,
}

impl Stutter {
    fn new(data: &[u8], step: usize) -> Self {
        Stutter {
            data: data.to_vec(),
            pos: 0,
            step,
            pend: true,
        }
    }
}

impl AsyncRead for Stutter {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pend {
            self.pend = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.pend = true;
        let end = (self.pos + self.step.min(buf.remaining())).min(self.data.len());
        let chunk = self.data[self.pos..end].to_vec();
        buf.put_slice(&chunk);
        self.pos = end;
        Poll::Ready(Ok(()))
    }
}

fn codec_for(v: &Vector) -> LhpCodec {
    let profile: Profile = v.profile.parse().expect("known profile");
    let mut limits = Limits::default();
    if let Some((header, body)) = v.limits {
        if let Some(h) = header {
            limits = limits.with_max_header_len(h);
        }
        if let Some(b) = body {
            limits = limits.with_max_body_len(b);
        }
    }
    let mut codec = LhpCodec::with(profile, limits);
    codec.decoder_mut().set_stream_offset(v.skip_bytes);
    codec
}

fn stream_of(v: &Vector) -> &[u8] {
    let skip = usize::try_from(v.skip_bytes).expect("small skip");
    &v.input[skip.min(v.input.len())..]
}

async fn outcome_of<R: AsyncRead + Unpin>(io: R, codec: LhpCodec) -> Outcome {
    let mut framed = FramedRead::new(io, codec);
    let mut outcome = Outcome::default();
    while let Some(item) = framed.next().await {
        match item {
            Ok(frame) => outcome
                .frames
                .push((frame.header.members().clone(), frame.body.to_vec())),
            Err(Error::Decode(e)) => {
                outcome.error = Some(OutcomeError {
                    code: e.code().to_owned(),
                    offset: e.offset(),
                    missing: e.missing(),
                });
                break;
            }
            Err(other) => panic!("not a decode error: {other}"),
        }
    }
    outcome
}

fn vectors() -> Vec<Vector> {
    let v = lhp_vectors::load_default().expect("spec/vectors loads");
    assert!(v.len() >= 20, "only {} vectors", v.len());
    v
}

/// Octets handed out per poll: 1 for ordinary vectors, more for the large ones so the test
/// stays fast (the poll count, not the step, is what exercises the state machine).
fn step_for(len: usize) -> usize {
    if len <= 256 << 10 {
        1
    } else {
        len / 100_000 + 1
    }
}

#[tokio::test]
async fn pending_between_every_octet_changes_nothing() {
    let mut checked = 0;
    for v in vectors() {
        let whole = outcome_of(stream_of(&v), codec_for(&v)).await;
        let data = stream_of(&v);
        let stuttered = outcome_of(Stutter::new(data, step_for(data.len())), codec_for(&v)).await;
        assert_eq!(stuttered, whole, "vector {}: stuttered read differs", v.id);
        if let Verdict::Fail(why) = lhp_vectors::check(&v.expect, &whole) {
            panic!("vector {}: {why}", v.id);
        }
        checked += 1;
    }
    assert!(checked >= 20);
}

#[tokio::test]
async fn one_octet_duplex_changes_nothing() {
    for v in vectors() {
        let data = stream_of(&v).to_vec();
        if data.len() > 256 << 10 {
            continue; // the stuttering reader above covers the large vectors
        }
        let (mut tx, rx) = tokio::io::duplex(1);
        let writer = tokio::spawn(async move {
            let _ = tx.write_all(&data).await;
        });
        let got = outcome_of(rx, codec_for(&v)).await;
        writer.abort();
        let whole = outcome_of(stream_of(&v), codec_for(&v)).await;
        assert_eq!(got, whole, "vector {}", v.id);
    }
}

#[tokio::test]
async fn streaming_reader_matches_whole_frames() {
    for v in vectors() {
        let whole = outcome_of(stream_of(&v), codec_for(&v)).await;
        let data = stream_of(&v);
        let codec = codec_for(&v);
        let profile: Profile = v.profile.parse().expect("profile");
        let limits = codec_limits(&v);
        let mut dec = lhp_codec::Decoder::with(profile, limits);
        dec.set_stream_offset(v.skip_bytes);
        drop(codec);
        let mut reader = FrameReader::from_decoder(Stutter::new(data, step_for(data.len())), dec);
        let mut got = Outcome::default();
        loop {
            match reader.read_head().await {
                Ok(Some(head)) => {
                    let mut body = Vec::new();
                    let r =
                        tokio::io::AsyncReadExt::read_to_end(&mut reader.body(), &mut body).await;
                    match r {
                        Ok(_) => got.frames.push((head.members().clone(), body)),
                        Err(e) => {
                            let e = e
                                .into_inner()
                                .and_then(|i| i.downcast::<lhp_codec::DecodeError>().ok())
                                .expect("a decode error inside the io error");
                            got.error = Some(OutcomeError {
                                code: e.code().to_owned(),
                                offset: e.offset(),
                                missing: e.missing(),
                            });
                            break;
                        }
                    }
                }
                Ok(None) => break,
                Err(Error::Decode(e)) => {
                    got.error = Some(OutcomeError {
                        code: e.code().to_owned(),
                        offset: e.offset(),
                        missing: e.missing(),
                    });
                    break;
                }
                Err(other) => panic!("vector {}: {other}", v.id),
            }
        }
        assert_eq!(got, whole, "vector {}: streamed read differs", v.id);
    }
}

fn codec_limits(v: &Vector) -> Limits {
    let mut limits = Limits::default();
    if let Some((header, body)) = v.limits {
        if let Some(h) = header {
            limits = limits.with_max_header_len(h);
        }
        if let Some(b) = body {
            limits = limits.with_max_body_len(b);
        }
    }
    limits
}

#[test]
fn eof_inside_a_frame_is_unexpected_eof_with_missing_octets() {
    let mut codec = LhpCodec::new();
    // A prefix declaring a 16-octet header, and 7 of them.
    let mut buf = BytesMut::from(&b"\0\0\0\x10{\"kind\""[..]);
    assert!(codec.decode(&mut buf).expect("partial is fine").is_none());
    match codec.decode_eof(&mut buf) {
        Err(Error::Decode(e)) => {
            assert_eq!(e.code(), "unexpected_eof");
            assert_eq!(e.offset(), 11);
            assert_eq!(e.missing(), Some(9));
        }
        other => panic!("expected unexpected_eof, got {other:?}"),
    }
}

#[test]
fn huge_declarations_do_not_reserve_memory() {
    // 1 GiB body allowed and declared; only the head arrives.
    let mut codec = LhpCodec::with(Profile::Lhp1, Limits::new().with_max_body_len(1 << 30));
    let json = br#"{"body_len":1073741824}"#;
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&(json.len() as u32).to_be_bytes());
    buf.extend_from_slice(json);
    assert!(codec.decode(&mut buf).expect("valid head").is_none());
    assert!(
        buf.capacity() <= 64 << 10,
        "reserved {} octets",
        buf.capacity()
    );
    // Feed 100 KiB of body in 1 KiB reads; capacity stays within a small multiple of what
    // arrived (each reservation is at most what is buffered; `Vec` growth may double that).
    for _ in 0..100 {
        buf.extend_from_slice(&[0u8; 1024]);
        assert!(codec.decode(&mut buf).expect("valid").is_none());
        assert!(
            buf.capacity() <= 4 * buf.len() + (16 << 10),
            "{} for {}",
            buf.capacity(),
            buf.len()
        );
    }
}
