//! The engines under test in process: `lhp-blocking`'s and `lhp-tokio`'s `FrameReader` over a
//! reader that returns exactly the chunks of the plan, one per read.

use std::io::{self, Read};
use std::pin::Pin;
use std::task::{Context, Poll};

use lhp_vectors::Outcome;
use tokio::io::{AsyncRead, ReadBuf};

use crate::testee::{chunks, outcome_error, outcome_frame, Job, Run, Testee};

/// Returns the plan's chunks, one per `read` (less if the caller's buffer is smaller; the rest
/// of that chunk comes next), then end of stream. Never more than one chunk per read.
struct ChunkReader<'a> {
    chunks: Vec<&'a [u8]>,
    next: usize,
    pending: &'a [u8],
}

impl<'a> ChunkReader<'a> {
    fn new(job: &Job<'a>) -> ChunkReader<'a> {
        ChunkReader {
            chunks: chunks(job.stream, job.plan).collect(),
            next: 0,
            pending: &[],
        }
    }

    /// The next octets to hand out, at most `room` of them (empty at end of stream).
    fn take(&mut self, room: usize) -> &'a [u8] {
        if self.pending.is_empty() {
            match self.chunks.get(self.next) {
                Some(c) => {
                    self.pending = c;
                    self.next += 1;
                }
                None => return &[],
            }
        }
        let (now, later) = self.pending.split_at(room.min(self.pending.len()));
        self.pending = later;
        now
    }
}

impl Read for ChunkReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let now = self.take(buf.len());
        if let Some(d) = buf.get_mut(..now.len()) {
            d.copy_from_slice(now);
        }
        Ok(now.len())
    }
}

impl AsyncRead for ChunkReader<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // put_slice initializes only what it writes: zeroing the whole unfilled buffer on every
        // one-octet read would make this mock quadratic.
        let now = self.get_mut().take(buf.remaining());
        buf.put_slice(now);
        Poll::Ready(Ok(()))
    }
}

fn decoder(job: &Job<'_>) -> lhp_codec::Decoder {
    let mut d = lhp_codec::Decoder::with(job.profile, job.limits);
    d.set_stream_offset(job.skip);
    d
}

/// `lhp_blocking::FrameReader::read_frame`.
#[derive(Debug, Default)]
pub struct Blocking;

impl Testee for Blocking {
    fn name(&self) -> String {
        "blocking".into()
    }

    fn run(&mut self, job: &Job<'_>) -> Run {
        let mut r = lhp_blocking::FrameReader::with_decoder(ChunkReader::new(job), decoder(job));
        let mut out = Outcome::default();
        loop {
            match r.read_frame() {
                Ok(Some(f)) => out.frames.push(outcome_frame(f)),
                Ok(None) => return Run::Outcome(out),
                Err(lhp_blocking::Error::Decode(e)) => {
                    out.error = Some(outcome_error(&e));
                    return Run::Outcome(out);
                }
                Err(e) => return Run::Crash(format!("not a decode error: {e}")),
            }
        }
    }

    fn about(&self) -> String {
        "lhp-blocking FrameReader::read_frame over a reader returning one chunk per read".into()
    }
}

/// `lhp_tokio::FrameReader::read_frame`, on a current-thread runtime.
pub struct Tokio {
    rt: Option<tokio::runtime::Runtime>,
}

impl Tokio {
    /// Builds the runtime.
    pub fn new() -> Tokio {
        Tokio {
            rt: tokio::runtime::Builder::new_current_thread().build().ok(),
        }
    }
}

impl Default for Tokio {
    fn default() -> Self {
        Tokio::new()
    }
}

impl Testee for Tokio {
    fn name(&self) -> String {
        "tokio".into()
    }

    fn run(&mut self, job: &Job<'_>) -> Run {
        let Some(rt) = self.rt.as_ref() else {
            return Run::Crash("no tokio runtime".into());
        };
        rt.block_on(async {
            let mut r = lhp_tokio::FrameReader::from_decoder(ChunkReader::new(job), decoder(job));
            let mut out = Outcome::default();
            loop {
                match r.read_frame().await {
                    Ok(Some(f)) => out.frames.push(outcome_frame(f)),
                    Ok(None) => return Run::Outcome(out),
                    Err(lhp_tokio::Error::Decode(e)) => {
                        out.error = Some(outcome_error(&e));
                        return Run::Outcome(out);
                    }
                    Err(e) => return Run::Crash(format!("not a decode error: {e}")),
                }
            }
        })
    }

    fn about(&self) -> String {
        "lhp-tokio FrameReader::read_frame over an AsyncRead returning one chunk per poll".into()
    }
}
