//! [`FrameWriter`]: prefix, header and body in one write call; streamed bodies; digests.

use std::io::{self, IoSlice, Read, Seek, SeekFrom, Write};

use bytes::{Bytes, BytesMut};
use lhp_codec::{hex_lower, Encoder, Frame, Header, Profile};
use sha2::{Digest as _, Sha256};

use crate::Error;

/// Size of the chunks a streamed body is copied in.
const CHUNK: usize = 64 << 10;

/// Bodies up to this size are copied behind the head and sent with one plain `write`: on
/// Linux `writev` costs more in the kernel than `send` (importing the iovec, the VFS path),
/// about 0.1 µs a call, which is more than copying a few KiB.
const COPY_BELOW: usize = 4 << 10;

/// Writes LHP/1 frames to a byte stream.
///
/// Each frame's prefix, header and body go out in one write call (repeated only if the OS
/// takes part of it), never as three small writes that invite Nagle's algorithm to hold the
/// last one back: a body up to 4 KiB is copied behind the head and sent with one `write`, a
/// larger one goes in one `write_vectored` without being copied. A streamed body's first
/// chunk rides in the same vectored write as the head.
///
/// ```
/// use lhp_blocking::FrameWriter;
/// use lhp_codec::{Frame, Header};
///
/// let mut w = FrameWriter::new(Vec::new());
/// w.write_frame(&Frame::new(Header::with_kind("echo"), "hi".into())).unwrap();
/// assert_eq!(w.get_ref(), b"\0\0\0\x1c{\"kind\":\"echo\",\"body_len\":2}hi");
///
/// // A body from any `Read`: the header must declare its length.
/// let mut h = Header::with_kind("put");
/// h.set_body_len(5);
/// w.write_stream(&h, &b"12345"[..]).unwrap();
/// assert!(w.get_ref().ends_with(b"12345"));
/// ```
#[derive(Debug)]
pub struct FrameWriter<W> {
    inner: W,
    encoder: Encoder,
    head: BytesMut,
}

impl<W: Write> FrameWriter<W> {
    /// An `lhp1` writer.
    pub fn new(inner: W) -> Self {
        FrameWriter::with_encoder(inner, Encoder::new())
    }

    /// A writer for `profile`.
    pub fn with_profile(inner: W, profile: Profile) -> Self {
        FrameWriter::with_encoder(inner, Encoder::with_profile(profile))
    }

    /// A writer using an encoder configured by the caller.
    pub fn with_encoder(inner: W, encoder: Encoder) -> Self {
        FrameWriter {
            inner,
            encoder,
            head: BytesMut::new(),
        }
    }

    /// Writes a whole frame with one write call: a vectored one for a large body (not
    /// copied), a plain one for a small body (copied behind the head). Nothing is written if
    /// the encoder refuses the header.
    pub fn write_frame(&mut self, frame: &Frame) -> Result<(), Error> {
        self.head.clear();
        self.encoder
            .encode_head(&frame.header, frame.body.len() as u64, &mut self.head)?;
        if frame.body.len() <= COPY_BELOW {
            self.head.extend_from_slice(&frame.body);
            write_all_vectored(&mut self.inner, &[&self.head])?;
        } else {
            write_all_vectored(&mut self.inner, &[&self.head, &frame.body])?;
        }
        Ok(())
    }

    /// Writes a whole frame whose header is the caller's own type (see
    /// [`Encoder::encode_typed`](lhp_codec::Encoder::encode_typed)): serialized straight into
    /// the writer's head buffer with `body_len` filled in and the receiver's rules applied,
    /// then sent with the body in one write call. Nothing is written if the header is refused.
    ///
    /// ```
    /// use lhp_blocking::{FrameReader, FrameWriter};
    ///
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Reading<'a> { kind: &'a str, id: u64, sensor: &'a str }
    ///
    /// let mut w = FrameWriter::new(Vec::new());
    /// w.write_typed(&Reading { kind: "reading", id: 1, sensor: "t-42" }, b"21.5").unwrap();
    /// let mut r = FrameReader::new(&w.get_ref()[..]);
    /// let f = r.read_frame_ref().unwrap().unwrap();
    /// let h: Reading<'_> = f.header().unwrap();
    /// assert_eq!((h.sensor, f.body()), ("t-42", &b"21.5"[..]));
    /// ```
    pub fn write_typed<T: serde::Serialize + ?Sized>(
        &mut self,
        header: &T,
        body: &[u8],
    ) -> Result<(), Error> {
        self.head.clear();
        if body.len() <= COPY_BELOW {
            // Head and body in one buffer, reserved once.
            self.encoder.encode_typed(header, body, &mut self.head)?;
            write_all_vectored(&mut self.inner, &[&self.head])?;
        } else {
            self.encoder
                .encode_typed_head(header, body.len() as u64, &mut self.head)?;
            write_all_vectored(&mut self.inner, &[&self.head, body])?;
        }
        Ok(())
    }

    /// Writes `body` with `header`, after setting the header's `sha256` member to the body's
    /// digest and its body length to the body's length.
    pub fn write_frame_sha256(&mut self, mut header: Header, body: Bytes) -> Result<(), Error> {
        header.set_sha256(&Sha256::digest(&body).into());
        self.write_frame(&Frame::new(header, body))
    }

    /// Writes `header` and then exactly `header.body_len()` octets read from `body`.
    ///
    /// The head and the first chunk of the body go out in one vectored write. If the header
    /// carries a `sha256`, the digest of the octets sent is computed on the way and compared
    /// at the end: a mismatch (say, a file that changed after it was hashed) is an
    /// `InvalidData` IO error, and the receiver will reject the frame too. If `body` ends
    /// early the frame on the wire is incomplete: the error is `UnexpectedEof` and the
    /// connection must be closed. Returns the number of body octets written.
    pub fn write_stream<B: Read>(&mut self, header: &Header, mut body: B) -> Result<u64, Error> {
        let len = header.body_len();
        self.head.clear();
        self.encoder.encode_head(header, len, &mut self.head)?;
        let mut hasher = header.sha256().map(|_| Sha256::new());
        let first = usize::try_from(len).map_or(CHUNK, |l| l.min(CHUNK));
        let mut chunk = vec![0u8; first];
        read_full(&mut body, &mut chunk, 0, len)?;
        if let Some(h) = hasher.as_mut() {
            h.update(&chunk);
        }
        write_all_vectored(&mut self.inner, &[&self.head, &chunk])?;
        let mut sent = chunk.len() as u64;
        while sent < len {
            let n = usize::try_from(len - sent).map_or(CHUNK, |l| l.min(CHUNK));
            let part = chunk.get_mut(..n).unwrap_or_default();
            read_full(&mut body, part, sent, len)?;
            if let Some(h) = hasher.as_mut() {
                h.update(&*part);
            }
            self.inner.write_all(part)?;
            sent += n as u64;
        }
        if let (Some(h), Some(declared)) = (hasher, header.sha256()) {
            let actual = hex_lower(&h.finalize());
            if actual != declared {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the body sent has sha256 {actual}, but the header declared {declared}"
                    ),
                )));
            }
        }
        Ok(sent)
    }

    /// Sends a file (or anything seekable) in two passes: hashes it from its current position
    /// to its end, sets `body_len` and `sha256` in `header`, seeks back and streams it.
    /// Returns the header as sent.
    pub fn write_file<F: Read + Seek>(
        &mut self,
        mut header: Header,
        file: &mut F,
    ) -> Result<Header, Error> {
        let start = file.stream_position()?;
        let (digest, len) = sha256_of(&mut *file)?;
        file.seek(SeekFrom::Start(start))?;
        header.set_body_len(len).set_sha256(&digest);
        self.write_stream(&header, file)?;
        Ok(header)
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> Result<(), Error> {
        Ok(self.inner.flush()?)
    }

    /// The encoder (its profile and header limit).
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The underlying writer. Writing to it directly desynchronizes the stream.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

/// The sha256 digest and length of everything `reader` yields (the first pass of a two-pass
/// send; see [`FrameWriter::write_file`]).
pub fn sha256_of<R: Read>(mut reader: R) -> io::Result<([u8; 32], u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut len = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(buf.get(..n).unwrap_or_default());
        len += n as u64;
    }
    Ok((hasher.finalize().into(), len))
}

/// Writes all of `parts` with `write_vectored`, looping on partial writes.
pub(crate) fn write_all_vectored<W: Write + ?Sized>(w: &mut W, parts: &[&[u8]]) -> io::Result<()> {
    // (part index, offset within it) of the first octet not yet written.
    if let [one] = parts {
        // One part: a plain `write` (`send` on a socket), cheaper than `writev`.
        return w.write_all(one);
    }
    let mut idx = 0;
    let mut off = 0;
    while idx < parts.len() {
        let slices: Vec<IoSlice<'_>> = parts
            .iter()
            .enumerate()
            .skip(idx)
            .map(|(i, p)| {
                IoSlice::new(if i == idx {
                    p.get(off..).unwrap_or_default()
                } else {
                    p
                })
            })
            .collect();
        let mut n = match w.write_vectored(&slices) {
            Ok(0) if slices.iter().any(|s| !s.is_empty()) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "failed to write the whole frame",
                ));
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        // Advance past what was written.
        while idx < parts.len() {
            let left = parts.get(idx).map_or(0, |p| p.len()) - off;
            if n < left {
                off += n;
                break;
            }
            n -= left;
            idx += 1;
            off = 0;
        }
    }
    Ok(())
}

/// Fills `buf` from `body` or fails with `UnexpectedEof` naming how far the body got.
fn read_full<B: Read>(body: &mut B, buf: &mut [u8], sent: u64, len: u64) -> io::Result<()> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|r| !r.is_empty()) {
        match body.read(rest) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the body source ended after {} of the {len} octets the header declared; \
                         the frame on the wire is incomplete",
                        sent + filled as u64
                    ),
                ))
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::FrameReader;

    /// Records each write call and accepts at most `max` octets per call.
    struct Recorder {
        calls: Vec<usize>,
        data: Vec<u8>,
        max: usize,
        /// Which calls were `write_vectored`.
        vectored: Vec<bool>,
    }

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.max);
            self.data.extend_from_slice(&buf[..n]);
            self.calls.push(n);
            self.vectored.push(false);
            Ok(n)
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.max - n);
                self.data.extend_from_slice(&b[..take]);
                n += take;
            }
            self.calls.push(n);
            self.vectored.push(true);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn one_vectored_write_per_frame() {
        let mut w = FrameWriter::new(Recorder {
            calls: vec![],
            data: vec![],
            max: usize::MAX,
            vectored: vec![],
        });
        w.write_frame(&Frame::new(
            Header::with_kind("echo"),
            vec![1u8; 1000].into(),
        ))
        .unwrap();
        assert_eq!(w.get_ref().calls.len(), 1);
    }

    /// A small body is copied behind the head and sent with one plain `write` (a `send`, which
    /// costs less in the kernel than a `writev`); a large one is not copied: one vectored
    /// write carries the head and the body.
    #[test]
    fn small_frames_take_one_plain_write_large_ones_one_vectored_write() {
        for (len, vectored) in [
            (0, false),
            (64, false),
            (COPY_BELOW, false),
            (COPY_BELOW + 1, true),
        ] {
            let mut w = FrameWriter::new(Recorder {
                calls: vec![],
                data: vec![],
                max: usize::MAX,
                vectored: vec![],
            });
            let f = Frame::new(Header::with_kind("echo"), vec![3u8; len].into());
            w.write_frame(&f).unwrap();
            assert_eq!(w.get_ref().vectored, [vectored], "body of {len}");
            let mut r = FrameReader::new(Cursor::new(w.into_inner().data));
            assert_eq!(r.read_frame().unwrap().unwrap(), f);
        }
    }

    #[test]
    fn partial_writes_are_continued() {
        for max in [1, 3, 29, 1000] {
            let mut w = FrameWriter::new(Recorder {
                calls: vec![],
                data: vec![],
                max,
                vectored: vec![],
            });
            let f = Frame::new(Header::with_kind("echo"), vec![7u8; 300].into());
            w.write_frame(&f).unwrap();
            w.write_frame(&f).unwrap();
            let mut r = FrameReader::new(Cursor::new(w.into_inner().data));
            assert_eq!(r.read_frame().unwrap().unwrap(), f);
            assert_eq!(r.read_frame().unwrap().unwrap(), f);
            assert!(r.read_frame().unwrap().is_none());
        }
    }

    #[test]
    fn streamed_file_with_digest_round_trips() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut w = FrameWriter::new(Vec::new());
        let sent = w
            .write_file(Header::with_kind("put"), &mut Cursor::new(&data))
            .unwrap();
        assert_eq!(sent.body_len(), 200_000);
        let mut r = FrameReader::new(Cursor::new(w.into_inner()));
        let f = r.read_frame().unwrap().unwrap(); // the reader verifies the sha256
        assert_eq!(f.header.sha256(), sent.sha256());
        assert_eq!(&f.body[..], &data[..]);
    }

    #[test]
    fn short_source_and_wrong_digest_are_errors() {
        let mut h = Header::with_kind("put");
        h.set_body_len(10);
        let mut w = FrameWriter::new(Vec::new());
        let e = w.write_stream(&h, &b"abc"[..]).unwrap_err();
        assert!(
            matches!(&e, Error::Io(io) if io.kind() == io::ErrorKind::UnexpectedEof),
            "{e}"
        );
        h.set_body_len(3).set_sha256(&[0u8; 32]);
        let e = w.write_stream(&h, &b"abc"[..]).unwrap_err();
        assert!(e.to_string().contains("sha256"), "{e}");
    }

    #[test]
    fn whole_frame_digest() {
        let mut w = FrameWriter::new(Vec::new());
        w.write_frame_sha256(Header::with_kind("x"), "abc".into())
            .unwrap();
        let f = FrameReader::new(Cursor::new(w.into_inner()))
            .read_frame()
            .unwrap()
            .unwrap();
        assert_eq!(
            f.header.sha256(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
    }
}
