//! The digest trailer of a file transfer (`spec/lhp-app.md` §10.3, §10.5): the whole file's
//! sha256 travels as the last 32 octets of the body, so each side hashes the file once, while
//! the octets stream, instead of a pass before the header can be written.
//!
//! ```text
//!   put  {"kind":"put","name":N,["offset":K,]"trailer":"file_sha256","body_len":L+32}
//!        body: the file's octets K .. K+L  ‖  sha256(octets 0 .. K+L), 32 raw octets
//!   get  {"kind":"get","name":N,["offset":K,]"trailer":"file_sha256"}
//!   file {"kind":"file","name":N,"size":S,"offset":K,"trailer":"file_sha256","body_len":S-K+32}
//!        body: the file's octets K .. S  ‖  sha256(octets 0 .. S), 32 raw octets
//! ```
//!
//! The sender hashes what it sends ([`TrailerReader`], on a thread of its own in [`ReadAhead`]
//! and [`AsyncReadAhead`]), the receiver
//! what it receives ([`TrailerSplitter`]); a resumed transfer hashes the `K` octets it already
//! holds first. The digest covers exactly the octets that went over the wire (plus the held
//! prefix), so a file that changes during a transfer is caught, never half-trusted.
//!
//! ```
//! use std::io::Read;
//! use lhp::transfer::{TrailerReader, TrailerSplitter, TRAILER_LEN};
//! use sha2::{Digest, Sha256};
//!
//! let mut body = Vec::new();
//! TrailerReader::new(&b"abc"[..], 3, Sha256::new()).read_to_end(&mut body).unwrap();
//! assert_eq!(body.len() as u64, 3 + TRAILER_LEN);
//! let mut split = TrailerSplitter::new(body.len() as u64).unwrap();
//! let (file, _) = split.split(&body);
//! assert_eq!(file, b"abc");
//! assert_eq!(split.digest(), Some(Sha256::digest(b"abc").into()));
//! ```

use std::io::{self, Read};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use lhp_codec::{hex_lower, Header, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, ReadBuf};

/// The request/reply member that announces a digest trailer (§10.3, §10.5).
pub const TRAILER: &str = "trailer";
/// The only value of [`TRAILER`] defined: the trailer is the whole file's sha256.
pub const FILE_SHA256: &str = "file_sha256";
/// Octets of the trailer: a raw sha256.
pub const TRAILER_LEN: u64 = 32;

/// Whether `head` asks for (or announces) a digest trailer: `Ok(false)` without the member,
/// `Err` with a value other than `"file_sha256"`.
pub fn wants_trailer(head: &Header) -> Result<bool, String> {
    match head.get(TRAILER) {
        None => Ok(false),
        Some(Value::String(s)) if s == FILE_SHA256 => Ok(true),
        Some(v) => Err(format!("{TRAILER} must be \"{FILE_SHA256}\", not {v}")),
    }
}

/// A [`Read`] of `len` octets of `inner`, hashed as they pass (into a hasher that may already
/// hold a prefix), followed by the 32-octet digest of everything hashed. A source shorter
/// than `len` is an `UnexpectedEof` error, never a short body.
#[derive(Debug)]
pub struct TrailerReader<R> {
    inner: R,
    left: u64,
    hasher: Option<Sha256>,
    digest: [u8; 32],
    sent: usize,
}

impl<R: Read> TrailerReader<R> {
    /// Reads `len` octets of `inner`, then the trailer; `hasher` holds the octets before them.
    pub fn new(inner: R, len: u64, hasher: Sha256) -> Self {
        TrailerReader {
            inner,
            left: len,
            hasher: Some(hasher),
            digest: [0; 32],
            sent: 0,
        }
    }

    /// The digest, once every data octet has been read (also after the trailer was read).
    pub fn digest(&self) -> Option<[u8; 32]> {
        (self.hasher.is_none()).then_some(self.digest)
    }

    /// The digest as 64 lowercase hex digits, once known.
    pub fn digest_hex(&self) -> Option<String> {
        self.digest().map(|d| hex_lower(&d))
    }

    fn finish(&mut self) {
        if let Some(h) = self.hasher.take() {
            self.digest = h.finalize().into();
        }
    }

    fn trailer(&mut self, out: &mut [u8]) -> usize {
        self.finish();
        let rest = self.digest.get(self.sent..).unwrap_or_default();
        let n = rest.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), rest.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.sent += n;
        n
    }
}

impl<R: Read> Read for TrailerReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(self.trailer(out));
        }
        let max = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(out.len());
        let Some(window) = out.get_mut(..max) else {
            return Ok(0);
        };
        let n = self.inner.read(window)?;
        if n == 0 && !window.is_empty() {
            return Err(short_source(self.left));
        }
        if let (Some(h), Some(data)) = (self.hasher.as_mut(), window.get(..n)) {
            h.update(data);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The receiving side: splits a body of `body_len` octets into the file's octets and the
/// 32-octet trailer, as chunks of any size arrive.
#[derive(Debug, Clone)]
pub struct TrailerSplitter {
    file_left: u64,
    trailer: Vec<u8>,
}

impl TrailerSplitter {
    /// A splitter for a body of `body_len` octets; `None` if it cannot hold a trailer.
    pub fn new(body_len: u64) -> Option<Self> {
        Some(TrailerSplitter {
            file_left: body_len.checked_sub(TRAILER_LEN)?,
            trailer: Vec::with_capacity(32),
        })
    }

    /// Splits `chunk` into (file octets, trailer octets); the trailer part is also kept.
    pub fn split<'c>(&mut self, chunk: &'c [u8]) -> (&'c [u8], &'c [u8]) {
        let n = usize::try_from(self.file_left)
            .unwrap_or(usize::MAX)
            .min(chunk.len());
        let (file, tail) = chunk.split_at(n);
        self.file_left -= n as u64;
        let room = 32usize.saturating_sub(self.trailer.len());
        self.trailer
            .extend_from_slice(tail.get(..room.min(tail.len())).unwrap_or_default());
        (file, tail)
    }

    /// The trailer, once all 32 octets arrived.
    pub fn digest(&self) -> Option<[u8; 32]> {
        if self.file_left != 0 {
            return None;
        }
        <[u8; 32]>::try_from(self.trailer.as_slice()).ok()
    }
}

/// A [`TrailerReader`] that reads and hashes on a second thread, up to [`PIPE_DEPTH`]
/// buffers ahead of its consumer, so the file and the digest are worked on while the
/// consumer writes to the socket. Dropping it stops the thread at its next buffer.
#[derive(Debug)]
pub struct ReadAhead {
    full: std::sync::mpsc::Receiver<io::Result<(Vec<u8>, usize)>>,
    out: Outbox,
    digest: std::sync::Arc<std::sync::Mutex<Option<[u8; 32]>>>,
}

/// The consumer's side of a read-ahead: the buffer being read out, and the way back for
/// spent buffers to the reading thread.
#[derive(Debug)]
struct Outbox {
    empty: std::sync::mpsc::Sender<Vec<u8>>,
    current: Vec<u8>,
    filled: usize,
    pos: usize,
}

impl Outbox {
    fn new(empty: std::sync::mpsc::Sender<Vec<u8>>) -> Self {
        Outbox {
            empty,
            current: Vec::new(),
            filled: 0,
            pos: 0,
        }
    }

    /// All of the current buffer was read out.
    fn drained(&self) -> bool {
        self.pos == self.filled
    }

    /// Takes the next buffer (its first `n` octets hold data) and sends the spent one back.
    fn next(&mut self, buf: Vec<u8>, n: usize) {
        let spent = std::mem::replace(&mut self.current, buf);
        if !spent.is_empty() {
            // The reading thread may be gone already; then the buffer is simply dropped.
            let _ = self.empty.send(spent);
        }
        self.filled = n;
        self.pos = 0;
    }

    /// Hands out up to `max` octets of the current buffer.
    fn take(&mut self, max: usize) -> &[u8] {
        let start = self.pos;
        let end = self.filled.min(start.saturating_add(max));
        self.pos = end.max(start);
        self.current.get(start..end).unwrap_or_default()
    }
}

/// The thread behind [`ReadAhead`] and [`AsyncReadAhead`]: reads `len` octets of `inner` and
/// then the trailer into whole buffers (recycled through `empty`), hashing as it goes, and
/// hands each to `send` until `send` reports the consumer gone, the source ends, or a read
/// fails (the error is sent, then the thread stops). `digest` gets the data's digest before
/// the consumer can see the trailer's octets.
fn read_ahead<R: Read>(
    inner: R,
    len: u64,
    hasher: Sha256,
    empty: std::sync::mpsc::Receiver<Vec<u8>>,
    mut send: impl FnMut(io::Result<(Vec<u8>, usize)>) -> bool,
    mut digest: impl FnMut([u8; 32]),
) {
    let mut source = TrailerReader::new(inner, len, hasher);
    loop {
        let mut buf = empty.try_recv().unwrap_or_else(|_| vec![0u8; PIPE_CHUNK]);
        let (n, how) = fill(&mut source, &mut buf);
        let ended = n < buf.len();
        if let Some(d) = source.digest() {
            digest(d);
        }
        if n > 0 && !send(Ok((buf, n))) {
            return; // the consumer is gone
        }
        if let Err(e) = how {
            send(Err(e));
            return;
        }
        if ended {
            return;
        }
    }
}

impl ReadAhead {
    /// Reads `len` octets of `inner` and then the trailer, like [`TrailerReader::new`].
    pub fn spawn<R: Read + Send + 'static>(inner: R, len: u64, hasher: Sha256) -> io::Result<Self> {
        use std::sync::{mpsc, Arc, Mutex};

        let (full_tx, full) = mpsc::sync_channel::<io::Result<(Vec<u8>, usize)>>(PIPE_DEPTH);
        let (empty, empty_rx) = mpsc::channel::<Vec<u8>>();
        let digest = Arc::new(Mutex::new(None));
        let slot = Arc::clone(&digest);
        std::thread::Builder::new()
            .name("lhp-read-ahead".into())
            .spawn(move || {
                read_ahead(
                    inner,
                    len,
                    hasher,
                    empty_rx,
                    |item| full_tx.send(item).is_ok(),
                    |d| {
                        if let Ok(mut slot) = slot.lock() {
                            *slot = Some(d);
                        }
                    },
                );
            })?;
        Ok(ReadAhead {
            full,
            out: Outbox::new(empty),
            digest,
        })
    }

    /// The digest of the data octets, once all of them were read (the trailer's octets).
    pub fn digest_hex(&self) -> Option<String> {
        self.digest
            .lock()
            .ok()
            .and_then(|d| d.map(|d| hex_lower(&d)))
    }
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.out.drained() {
            match self.full.recv() {
                Ok(Ok((buf, n))) => self.out.next(buf, n),
                Ok(Err(e)) => return Err(e),
                // The reader thread finished: the end of the body.
                Err(_) => return Ok(0),
            }
        }
        let src = self.out.take(out.len());
        let n = src.len();
        if let Some(dst) = out.get_mut(..n) {
            dst.copy_from_slice(src);
        }
        Ok(n)
    }
}

/// [`ReadAhead`] for the tokio engine: the file is read and hashed on a thread of its own, up
/// to [`PIPE_DEPTH`] buffers of [`PIPE_CHUNK`] octets ahead, and the task takes the buffers
/// as an `AsyncRead`. Reading a `tokio::fs::File` instead costs a hop to the blocking pool
/// for every read (64 KiB at a time in `send_stream`) and hashes on the task between socket
/// writes. Dropping it stops the thread at its next buffer.
#[derive(Debug)]
pub struct AsyncReadAhead {
    full: tokio::sync::mpsc::Receiver<io::Result<(Vec<u8>, usize)>>,
    out: Outbox,
}

impl AsyncReadAhead {
    /// Reads `len` octets of `inner` and then the trailer, like [`TrailerReader::new`].
    pub fn spawn<R: Read + Send + 'static>(inner: R, len: u64, hasher: Sha256) -> io::Result<Self> {
        let (full_tx, full) = tokio::sync::mpsc::channel(PIPE_DEPTH);
        let (empty, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::Builder::new()
            .name("lhp-read-ahead".into())
            .spawn(move || {
                read_ahead(
                    inner,
                    len,
                    hasher,
                    empty_rx,
                    |item| full_tx.blocking_send(item).is_ok(),
                    |_| {},
                );
            })?;
        Ok(AsyncReadAhead {
            full,
            out: Outbox::new(empty),
        })
    }
}

impl AsyncRead for AsyncReadAhead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.out.drained() {
            match ready!(this.full.poll_recv(cx)) {
                Some(Ok((next, n))) => this.out.next(next, n),
                Some(Err(e)) => return Poll::Ready(Err(e)),
                // The reader thread finished: the end of the body.
                None => return Poll::Ready(Ok(())),
            }
        }
        buf.put_slice(this.out.take(buf.remaining()));
        Poll::Ready(Ok(()))
    }
}

/// Reads `src` into `buf` until `buf` is full, `src` ends, or a read fails (an interrupted read
/// is retried). Returns the octets read and how it stopped: `Ok(())` when `buf` is full or `src`
/// ended (then fewer than `buf.len()` octets were read), or the read's error, which comes after
/// the `n` octets read before it, so that a caller keeps them (a resumable partial file does).
///
/// A socket read returns what has arrived, often a few dozen KiB: handing each such piece to a
/// writer thread costs a wake-up and a small `write` for each. Filling the buffer first makes
/// the pieces [`PIPE_CHUNK`] octets, as the tokio server's 1 MiB write batches do.
pub fn fill<R: Read + ?Sized>(src: &mut R, buf: &mut [u8]) -> (usize, io::Result<()>) {
    let mut n = 0;
    while let Some(rest) = buf.get_mut(n..).filter(|r| !r.is_empty()) {
        match src.read(rest) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return (n, Err(e)),
        }
    }
    (n, Ok(()))
}

/// Octets per buffer of [`receive_to_file`].
pub const PIPE_CHUNK: usize = 256 << 10;
/// Buffers in flight between the socket and the file in [`receive_to_file`].
pub const PIPE_DEPTH: usize = 4;

/// Receives a body into `file`, overlapping the socket with the disk: this thread reads
/// `body` (splitting off the trailer, if `splitter` is given) while a second thread writes
/// each buffer to `file` and hashes it (if `hasher` is given). At most [`PIPE_DEPTH`] buffers
/// of [`PIPE_CHUNK`] octets are in flight. Returns the file, the hasher and the octets
/// written; `progress` is called with each buffer's length as it is read.
pub fn receive_to_file<R: Read>(
    mut body: R,
    file: std::fs::File,
    hasher: Option<Sha256>,
    mut splitter: Option<&mut TrailerSplitter>,
    mut progress: impl FnMut(u64),
) -> io::Result<(std::fs::File, Option<Sha256>, u64)> {
    use std::io::Write;
    use std::sync::mpsc;

    let (full_tx, full_rx) = mpsc::sync_channel::<(Vec<u8>, usize)>(PIPE_DEPTH);
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
    for _ in 0..PIPE_DEPTH {
        let _ = empty_tx.send(vec![0u8; PIPE_CHUNK]);
    }
    std::thread::scope(|scope| {
        let writer = scope.spawn(
            move || -> io::Result<(std::fs::File, Option<Sha256>, u64)> {
                let (mut file, mut hasher, mut written) = (file, hasher, 0u64);
                for (buf, len) in full_rx {
                    let data = buf.get(..len).unwrap_or_default();
                    file.write_all(data)?;
                    if let Some(h) = hasher.as_mut() {
                        h.update(data);
                    }
                    written += len as u64;
                    // The reader may be gone already; then the buffer is simply dropped.
                    let _ = empty_tx.send(buf);
                }
                Ok((file, hasher, written))
            },
        );
        let read: io::Result<()> = (|| loop {
            let Ok(mut buf) = empty_rx.recv() else {
                // The writer stopped (a write failed): its error is the one to report.
                return Ok(());
            };
            let (n, how) = fill(&mut body, &mut buf);
            let ended = n < buf.len();
            if n > 0 {
                // The file's octets come first in a chunk, the trailer's after them.
                let len = match splitter.as_deref_mut() {
                    Some(s) => s.split(buf.get(..n).unwrap_or_default()).0.len(),
                    None => n,
                };
                progress(len as u64);
                if full_tx.send((buf, len)).is_err() {
                    return Ok(());
                }
            }
            how?;
            if ended {
                return Ok(());
            }
        })();
        drop(full_tx);
        let written = writer
            .join()
            .map_err(|_| io::Error::other("the file writer thread panicked"))?;
        read?;
        written
    })
}

/// Hashes the first `len` octets of `reader` (the prefix a resumed transfer already holds).
pub fn hash_prefix<R: Read>(reader: R, len: u64) -> io::Result<Sha256> {
    let mut hasher = Sha256::new();
    let mut src = reader.take(len);
    let mut buf = vec![0u8; 256 << 10];
    let mut done = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(buf.get(..n).unwrap_or_default());
        done += n as u64;
    }
    if done != len {
        return Err(short_source(len - done));
    }
    Ok(hasher)
}

fn short_source(left: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the file ended {left} octets early (did it shrink while being sent?)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out `data` a few octets at a time, interrupted before every piece, then fails
    /// with `fail` (if any) instead of ending.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        step: usize,
        interrupt: bool,
        fail: Option<io::ErrorKind>,
    }

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let rest = &self.data[self.pos..];
            if rest.is_empty() {
                return match self.fail {
                    Some(kind) => Err(kind.into()),
                    None => Ok(0),
                };
            }
            let n = rest.len().min(self.step).min(out.len());
            out[..n].copy_from_slice(&rest[..n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn trickle(len: usize, fail: Option<io::ErrorKind>) -> Trickle {
        let data = (0..len).map(|i| (i * 13) as u8).collect();
        Trickle {
            data,
            pos: 0,
            step: 7,
            interrupt: false,
            fail,
        }
    }

    #[test]
    fn fill_gathers_short_reads_into_whole_buffers_and_stops_at_the_end() {
        let mut src = trickle(100, None);
        let mut got = Vec::new();
        let mut buf = [0u8; 32];
        let mut sizes = Vec::new();
        loop {
            let (n, how) = fill(&mut src, &mut buf);
            assert!(how.is_ok(), "interrupted reads are retried, not reported");
            got.extend_from_slice(&buf[..n]);
            sizes.push(n);
            if n < buf.len() {
                break;
            }
        }
        assert_eq!(sizes, [32, 32, 32, 4], "whole buffers, then the rest");
        assert_eq!(got, src.data);
        // At the end exactly at a buffer's edge: one more call returns nothing.
        let mut src = trickle(64, None);
        assert_eq!(fill(&mut src, &mut buf).0, 32);
        assert_eq!(fill(&mut src, &mut buf).0, 32);
        let (n, how) = fill(&mut src, &mut buf);
        assert_eq!((n, how.is_ok()), (0, true));
    }

    #[test]
    fn fill_keeps_the_octets_read_before_an_error() {
        let mut src = trickle(20, Some(io::ErrorKind::ConnectionReset));
        let mut buf = [0u8; 32];
        let (n, how) = fill(&mut src, &mut buf);
        assert_eq!(n, 20, "the octets before the error are handed back");
        assert_eq!(&buf[..n], &src.data[..]);
        assert_eq!(how.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
    }

    #[test]
    fn splitter_finds_the_trailer_under_every_chunking() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let mut body = Vec::new();
        TrailerReader::new(&data[..], 1000, Sha256::new())
            .read_to_end(&mut body)
            .unwrap();
        for step in [1, 7, 31, 32, 33, 999, 1032] {
            let mut s = TrailerSplitter::new(body.len() as u64).unwrap();
            let mut file = Vec::new();
            for chunk in body.chunks(step) {
                file.extend_from_slice(s.split(chunk).0);
            }
            assert_eq!(file, data, "step {step}");
            assert_eq!(
                s.digest(),
                Some(Sha256::digest(&data).into()),
                "step {step}"
            );
        }
        assert!(TrailerSplitter::new(31).is_none());
        let mut s = TrailerSplitter::new(40).unwrap();
        s.split(&[0; 39]);
        assert_eq!(s.digest(), None, "a trailer short of an octet is no digest");
    }

    #[test]
    fn reader_hashes_a_held_prefix_and_refuses_a_short_source() {
        let mut prefix = Sha256::new();
        prefix.update(b"ab");
        let mut r = TrailerReader::new(&b"c"[..], 1, prefix);
        let mut body = Vec::new();
        r.read_to_end(&mut body).unwrap();
        assert_eq!(body.get(1..).unwrap(), Sha256::digest(b"abc").as_slice());
        assert_eq!(r.digest_hex(), Some(hex_lower(&Sha256::digest(b"abc"))));
        let err = TrailerReader::new(&b"ab"[..], 3, Sha256::new())
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(hash_prefix(&b"ab"[..], 3).is_err());
    }

    /// A source of a few buffers' worth, and what a [`TrailerReader`] makes of it.
    fn source_and_body() -> (Vec<u8>, Vec<u8>) {
        let data: Vec<u8> = (0..(3 * PIPE_CHUNK as u32 + 5))
            .map(|i| (i % 249) as u8)
            .collect();
        let mut want = Vec::new();
        TrailerReader::new(&data[..], data.len() as u64, Sha256::new())
            .read_to_end(&mut want)
            .unwrap();
        (data, want)
    }

    #[test]
    fn read_ahead_yields_what_trailer_reader_yields() {
        let (data, want) = source_and_body();
        let mut r = ReadAhead::spawn(
            io::Cursor::new(data.clone()),
            data.len() as u64,
            Sha256::new(),
        )
        .unwrap();
        let mut got = Vec::new();
        let mut small = [0u8; 1000];
        loop {
            let n = r.read(&mut small).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&small[..n]);
        }
        assert_eq!(got, want);
        assert_eq!(r.digest_hex(), Some(hex_lower(&Sha256::digest(&data))));
        let short = ReadAhead::spawn(io::Cursor::new(vec![1u8; 10]), 11, Sha256::new()).unwrap();
        let err = io::Read::bytes(short).find_map(Result::err).unwrap();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    /// The tokio flavour yields the same octets (file, then trailer) to reads of any size,
    /// and a source shorter than announced is an error, not a short body.
    #[test]
    fn async_read_ahead_yields_what_trailer_reader_yields() {
        use tokio::io::AsyncReadExt;

        let (data, want) = source_and_body();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut r = AsyncReadAhead::spawn(
                io::Cursor::new(data.clone()),
                data.len() as u64,
                Sha256::new(),
            )
            .unwrap();
            let mut got = Vec::new();
            let mut small = [0u8; 1000];
            loop {
                let n = r.read(&mut small).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&small[..n]);
            }
            assert_eq!(got, want);
            let mut short =
                AsyncReadAhead::spawn(io::Cursor::new(vec![1u8; 10]), 11, Sha256::new()).unwrap();
            let mut sink = Vec::new();
            let err = short.read_to_end(&mut sink).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
            assert_eq!(
                sink,
                vec![1u8; 10],
                "the octets before the error still arrive"
            );
        });
    }

    #[test]
    fn member_value_is_checked() {
        let mut h = Header::with_kind("put");
        assert_eq!(wants_trailer(&h), Ok(false));
        h.insert(TRAILER, FILE_SHA256);
        assert_eq!(wants_trailer(&h), Ok(true));
        h.insert(TRAILER, "md5");
        assert!(wants_trailer(&h).is_err());
    }
}
