//! Issue 13's workloads: the everyday path (a header built per frame through the public API,
//! typed or map-style) against the loop a user would hand-write instead, side by side.
//!
//! Every header is the same ≈85 octets of JSON,
//! `{"kind":"upload","id":N,"name":"sensor-42/temperature.bin","body_len":100,"v":1}`, with
//! a 100-octet body. The hand-written loops use a `#[derive]`d struct with `serde_json`, a
//! `u32` big-endian prefix and reused buffers, and check nothing but `body_len`; LHP checks
//! every header completely (§4).

use std::hint::black_box;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use lhp_codec::{Decoder, Encoder, Frame, Header, Profile};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio_util::codec::{Decoder as _, Framed, LengthDelimitedCodec};

use crate::work::{ack, blocking_pair, limits, tokio_pair};

/// Body octets of every small frame.
pub const BODY: usize = 100;
/// Capacity of the writers' `BufWriter`.
const BUF: usize = 64 << 10;

/// The header as the user declares it, borrowed on receipt.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct Upload<'a> {
    kind: &'a str,
    id: u64,
    name: &'a str,
    body_len: u64,
    v: u64,
}

fn upload(id: u64) -> Upload<'static> {
    Upload {
        kind: "upload",
        id,
        name: "sensor-42/temperature.bin",
        body_len: BODY as u64,
        v: 1,
    }
}

/// The map-style header, built per frame the way the README showed before this issue.
fn map_header(id: u64) -> Header {
    let mut h = Header::with_kind("upload");
    h.set_id(id)
        .set_name("sensor-42/temperature.bin")
        .set_body_len(BODY as u64);
    h.insert("v", 1);
    h
}

fn check(h: &Upload<'_>, body: &[u8], id: u64) -> io::Result<()> {
    if h.id != id || h.body_len != body.len() as u64 || body.len() != BODY {
        return Err(io::Error::other("wrong frame"));
    }
    Ok(())
}

/// How the small-frame loops build and read their frames.
#[derive(Clone, Copy, Debug)]
pub enum Style {
    /// The thirty lines a user writes instead of a framing crate.
    HandWritten,
    /// LHP with the caller's derived struct as header (`write_typed`, `read_frame_ref`).
    Typed,
    /// LHP with `Header` built member by member and `read_frame`.
    Map,
}

// ---------------------------------------------------------------------------------------
// Blocking, loopback

/// `count` small frames one way over loopback on threads, built per frame: frames/s.
pub fn blocking(style: Style, count: usize) -> f64 {
    let t = blocking_pair(
        move |s| {
            match style {
                Style::HandWritten => {
                    let mut r = BufReader::with_capacity(BUF, &s);
                    let mut head = Vec::with_capacity(256);
                    let mut body = vec![0u8; BODY];
                    for id in 0..count as u64 {
                        let mut p = [0u8; 4];
                        r.read_exact(&mut p)?;
                        head.resize(u32::from_be_bytes(p) as usize, 0);
                        r.read_exact(&mut head)?;
                        let h: Upload<'_> = serde_json::from_slice(&head)?;
                        body.resize(h.body_len as usize, 0);
                        r.read_exact(&mut body)?;
                        check(&h, &body, id)?;
                    }
                }
                Style::Typed => {
                    let mut r = lhp_blocking::FrameReader::with(&s, Profile::Lhp1, limits());
                    let mut body = [0u8; BODY];
                    for id in 0..count as u64 {
                        let f = r.read_frame_ref().map_err(io::Error::other)?;
                        let f = f.ok_or_else(|| io::Error::other("early end"))?;
                        let h: Upload<'_> = f.header().map_err(io::Error::other)?;
                        check(&h, f.body(), id)?;
                        body.copy_from_slice(f.body());
                        black_box(&body);
                    }
                }
                Style::Map => {
                    let mut r = lhp_blocking::FrameReader::with(&s, Profile::Lhp1, limits());
                    for id in 0..count as u64 {
                        let f = r.read_frame().map_err(io::Error::other)?;
                        let f = f.ok_or_else(|| io::Error::other("early end"))?;
                        if f.header.id() != Some(id) || f.body.len() != BODY {
                            return Err(io::Error::other("wrong frame"));
                        }
                    }
                }
            }
            (&s).write_all(b"k")
        },
        move |mut s| {
            let body = vec![b'x'; BODY];
            let start = Instant::now();
            match style {
                Style::HandWritten => {
                    let mut w = BufWriter::with_capacity(BUF, &s);
                    let mut head = Vec::with_capacity(256);
                    for id in 0..count as u64 {
                        head.clear();
                        serde_json::to_writer(&mut head, &upload(id))?;
                        w.write_all(&(head.len() as u32).to_be_bytes())?;
                        w.write_all(&head)?;
                        w.write_all(&body)?;
                    }
                    w.flush()?;
                }
                Style::Typed => {
                    let mut w = lhp_blocking::FrameWriter::new(BufWriter::with_capacity(BUF, &s));
                    for id in 0..count as u64 {
                        w.write_typed(&upload(id), &body)
                            .map_err(io::Error::other)?;
                    }
                    w.flush().map_err(io::Error::other)?;
                }
                Style::Map => {
                    let body = Bytes::from(body);
                    let mut w = lhp_blocking::FrameWriter::new(BufWriter::with_capacity(BUF, &s));
                    for id in 0..count as u64 {
                        let f = Frame {
                            header: map_header(id),
                            body: body.clone(),
                        };
                        w.write_frame(&f).map_err(io::Error::other)?;
                    }
                    w.flush().map_err(io::Error::other)?;
                }
            }
            ack(&mut s)?;
            Ok(start.elapsed())
        },
    );
    count as f64 / t.as_secs_f64()
}

// ---------------------------------------------------------------------------------------
// Tokio, loopback

/// `count` small frames one way over loopback through `Framed` (`feed`, one flush at the
/// end), built per frame: frames/s. The hand-written case is `LengthDelimitedCodec` +
/// `serde_json` into the struct.
///
/// The sender runs in `rt.block_on` and the receiver is a task spawned onto `rt`: on a
/// multi-thread runtime the receiver runs on a worker and every handoff is a wakeup across
/// threads; on a `current_thread` runtime both run on the calling thread, one while the other
/// waits on the socket, the same for every subject.
pub fn tokio(rt: &Runtime, style: Style, count: usize) -> f64 {
    let t: Duration = rt.block_on(async move {
        let (mut c, server) = tokio_pair(move |s| async move {
            let bad = io::Error::other;
            match style {
                Style::HandWritten => {
                    let mut framed = Framed::new(s, LengthDelimitedCodec::new());
                    for id in 0..count as u64 {
                        let mut f = framed.next().await.ok_or_else(|| bad("early end"))??;
                        let (h, body) = split_ldc(&mut f)?;
                        let h: Upload<'_> = serde_json::from_slice(h)?;
                        check(&h, body, id)?;
                    }
                    framed.get_mut().write_all(b"k").await
                }
                Style::Typed => {
                    let mut framed =
                        Framed::new(s, lhp_tokio::RawCodec::with(Profile::Lhp1, limits()));
                    for id in 0..count as u64 {
                        let f = framed.next().await.ok_or_else(|| bad("early end"))?;
                        let f = f.map_err(io::Error::other)?;
                        let h: Upload<'_> = f.header().map_err(io::Error::other)?;
                        check(&h, f.body(), id)?;
                    }
                    framed.get_mut().write_all(b"k").await
                }
                Style::Map => {
                    let mut framed =
                        Framed::new(s, lhp_tokio::LhpCodec::with(Profile::Lhp1, limits()));
                    for id in 0..count as u64 {
                        let f = framed.next().await.ok_or_else(|| bad("early end"))?;
                        let f = f.map_err(io::Error::other)?;
                        if f.header.id() != Some(id) || f.body.len() != BODY {
                            return Err(bad("wrong frame"));
                        }
                    }
                    framed.get_mut().write_all(b"k").await
                }
            }
        })
        .await;
        let body = Bytes::from(vec![b'x'; BODY]);
        let start = Instant::now();
        match style {
            Style::HandWritten => {
                let mut framed = Framed::new(&mut c, LengthDelimitedCodec::new());
                let mut payload = BytesMut::with_capacity(256);
                for id in 0..count as u64 {
                    payload.clear();
                    payload.extend_from_slice(&[0; 4]);
                    serde_json::to_writer(bytes::BufMut::writer(&mut payload), &upload(id))
                        .expect("serialize");
                    let hlen = (payload.len() - 4) as u32;
                    payload[..4].copy_from_slice(&hlen.to_be_bytes());
                    payload.extend_from_slice(&body);
                    framed.feed(payload.split().freeze()).await.expect("feed");
                }
                SinkExt::<Bytes>::flush(&mut framed).await.expect("flush");
            }
            Style::Typed => {
                let mut framed = Framed::new(&mut c, lhp_tokio::RawCodec::new());
                for id in 0..count as u64 {
                    framed.feed((upload(id), &body[..])).await.expect("feed");
                }
                SinkExt::<(Upload<'_>, &[u8])>::flush(&mut framed)
                    .await
                    .expect("flush");
            }
            Style::Map => {
                let mut framed = Framed::new(&mut c, lhp_tokio::LhpCodec::new());
                for id in 0..count as u64 {
                    let f = Frame {
                        header: map_header(id),
                        body: body.clone(),
                    };
                    framed.feed(f).await.expect("feed");
                }
                SinkExt::<Frame>::flush(&mut framed).await.expect("flush");
            }
        }
        c.read_u8().await.expect("ack");
        let t = start.elapsed();
        server.await.expect("server task").expect("server");
        t
    });
    count as f64 / t.as_secs_f64()
}

/// The baseline's payload taken apart: header JSON and body.
fn split_ldc(f: &mut BytesMut) -> io::Result<(&[u8], &[u8])> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let p: [u8; 4] = f
        .get(..4)
        .and_then(|p| p.try_into().ok())
        .ok_or_else(|| bad("short frame"))?;
    let hlen = u32::from_be_bytes(p) as usize;
    let h = f.get(4..4 + hlen).ok_or_else(|| bad("short header"))?;
    let body = f.get(4 + hlen..).unwrap_or_default();
    Ok((h, body))
}

// ---------------------------------------------------------------------------------------
// Codec in memory

/// `count` typed frames back to back, as LHP encodes them.
pub fn lhp_wire(count: usize) -> BytesMut {
    let enc = Encoder::new();
    let body = vec![b'x'; BODY];
    let mut wire = BytesMut::new();
    for id in 0..count as u64 {
        enc.encode_typed(&upload(id), &body, &mut wire)
            .expect("encode");
    }
    wire
}

/// The same frames for `LengthDelimitedCodec`: `u32 length + (u32 header length + header +
/// body)`.
pub fn ldc_wire(count: usize) -> BytesMut {
    let mut codec = LengthDelimitedCodec::new();
    let body = vec![b'x'; BODY];
    let mut wire = BytesMut::new();
    for id in 0..count as u64 {
        let mut payload = BytesMut::new();
        payload.extend_from_slice(&[0; 4]);
        serde_json::to_writer(bytes::BufMut::writer(&mut payload), &upload(id)).expect("json");
        let hlen = (payload.len() - 4) as u32;
        payload[..4].copy_from_slice(&hlen.to_be_bytes());
        payload.extend_from_slice(&body);
        tokio_util::codec::Encoder::encode(&mut codec, payload.freeze(), &mut wire)
            .expect("encode");
    }
    wire
}

/// How the in-memory decode runs.
#[derive(Clone, Copy, Debug)]
pub enum InMemory {
    /// `LengthDelimitedCodec` + `serde_json` into the borrowed struct (no validation).
    Ldc,
    /// `Decoder::decode_raw` (as `RawCodec` does) + `RawFrame::header`.
    Raw,
    /// `Decoder::decode_ref` + `FrameRef::header`.
    InPlace,
}

/// Decodes every frame of `wire` (fed in 64 KiB chunks, as reads would), deserializing each
/// header into the borrowed struct: frames/s.
pub fn codec(wire: &BytesMut, count: usize, how: InMemory) -> f64 {
    const CHUNK: usize = 64 << 10;
    let mut buf = BytesMut::with_capacity(2 * CHUNK);
    let mut dec = Decoder::with(Profile::Lhp1, limits());
    let mut ldc = LengthDelimitedCodec::new();
    let mut n = 0u64;
    let start = Instant::now();
    for chunk in wire.chunks(CHUNK) {
        buf.extend_from_slice(chunk);
        match how {
            InMemory::Ldc => {
                while let Some(mut f) = ldc.decode(&mut buf).expect("decode") {
                    let (h, body) = split_ldc(&mut f).expect("split");
                    let h: Upload<'_> = serde_json::from_slice(h).expect("json");
                    check(&h, body, n).expect("check");
                    n += 1;
                }
            }
            InMemory::Raw => {
                while let Some(f) = dec.decode_raw(&mut buf).expect("decode") {
                    let h: Upload<'_> = f.header().expect("typed");
                    check(&h, f.body(), n).expect("check");
                    n += 1;
                }
            }
            InMemory::InPlace => {
                let mut used = 0;
                while let Some(f) = dec.decode_ref(&buf[used..]).expect("decode") {
                    let h: Upload<'_> = f.header().expect("typed");
                    check(&h, f.body(), n).expect("check");
                    used += f.len();
                    n += 1;
                }
                let _ = buf.split_to(used);
            }
        }
    }
    let t = start.elapsed();
    assert_eq!(n as usize, count);
    count as f64 / t.as_secs_f64()
}

// ---------------------------------------------------------------------------------------
// 1 MiB bodies streamed, blocking and tokio: `crate::work::lhp_blocking_streamed` and
// `lhp_tokio_streamed` against `raw_bulk_*` with `RawReceive::Reused`.

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_style_moves_every_frame() {
        for style in [Style::HandWritten, Style::Typed, Style::Map] {
            assert!(blocking(style, 2_000) > 0.0);
        }
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let one = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for rt in [&multi, &one] {
            for style in [Style::HandWritten, Style::Typed, Style::Map] {
                assert!(tokio(rt, style, 2_000) > 0.0);
            }
        }
        let (lw, bw) = (lhp_wire(3_000), ldc_wire(3_000));
        for how in [InMemory::Ldc, InMemory::Raw, InMemory::InPlace] {
            let wire = if matches!(how, InMemory::Ldc) {
                &bw
            } else {
                &lw
            };
            assert!(codec(wire, 3_000, how) > 0.0);
        }
        // The same header text either way.
        let mut one = BytesMut::new();
        Encoder::new()
            .encode(
                &Frame::new(map_header(7), vec![b'x'; BODY].into()),
                &mut one,
            )
            .unwrap();
        let mut typed = BytesMut::new();
        Encoder::new()
            .encode_typed(&upload(7), &[b'x'; BODY], &mut typed)
            .unwrap();
        assert_eq!(one, typed);
    }
}
