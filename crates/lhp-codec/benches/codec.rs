//! Codec throughput against the baseline a tokio user would hand-roll: tokio-util's
//! `LengthDelimitedCodec` plus a `serde_json` parse of the same header (spec issue 2 §7).
//!
//! `cargo bench -p lhp-codec --bench codec`
//!
//! Both sides decode the same wire bytes fed in 64 KiB chunks. The baseline does *less*
//! validation than LHP (no duplicate-member, number-range, registered-member or UTF-8-before-JSON
//! checks), so a ratio ≥ 1.0 means LHP's full validation costs nothing relative to it.

use std::hint::black_box;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use lhp_codec::{Decoder, Encoder, Event, Frame, Header, Limits, Profile};
use tokio_util::codec::{Decoder as _, LengthDelimitedCodec};

const SMALL_FRAMES: usize = 10_000;
const CHUNK: usize = 64 << 10;

/// About 80 octets of header, 100 of body.
fn small_frame(i: u64) -> Frame {
    let mut h = Header::with_kind("echo");
    h.set_id(i)
        .set_name("sensor-17/temperature")
        .insert("ts", 1_700_000_000_000u64 + i);
    Frame::new(h, Bytes::from(vec![b'x'; 100]))
}

fn lhp_stream(frames: impl Iterator<Item = Frame>) -> Bytes {
    let mut out = BytesMut::new();
    for f in frames {
        Encoder::new().encode(&f, &mut out).expect("encodes");
    }
    out.freeze()
}

/// The baseline's wire format: a u32 length of (header length + header + body), then a u32
/// header length, the header, the body — what a tokio user writes with LengthDelimitedCodec.
fn baseline_stream(frames: impl Iterator<Item = Frame>) -> Bytes {
    let mut out = BytesMut::new();
    for f in frames {
        let h = serde_json::to_vec(f.header.members()).expect("json");
        out.put_u32((4 + h.len() + f.body.len()) as u32);
        out.put_u32(h.len() as u32);
        out.extend_from_slice(&h);
        out.extend_from_slice(&f.body);
    }
    out.freeze()
}

fn lhp_decode(wire: &Bytes, limits: Limits) -> usize {
    let mut dec = Decoder::with(Profile::Lhp1, limits);
    let mut buf = BytesMut::with_capacity(CHUNK * 2);
    let mut n = 0;
    for chunk in wire.chunks(CHUNK) {
        buf.extend_from_slice(chunk);
        while let Some(f) = dec.decode(&mut buf).expect("valid") {
            n += black_box(f.body.len());
        }
    }
    n
}

fn lhp_stream_decode(wire: &Bytes) -> usize {
    let mut dec = Decoder::with(Profile::Lhp1, Limits::default());
    let mut buf = BytesMut::with_capacity(CHUNK * 2);
    let mut n = 0;
    for chunk in wire.chunks(CHUNK) {
        buf.extend_from_slice(chunk);
        while let Some(e) = dec.decode_event(&mut buf).expect("valid") {
            if let Event::Body(b) = e {
                n += black_box(b.len());
            }
        }
    }
    n
}

fn baseline_decode(wire: &Bytes, max: usize) -> usize {
    let mut codec = LengthDelimitedCodec::builder()
        .max_frame_length(max)
        .new_codec();
    let mut buf = BytesMut::with_capacity(CHUNK * 2);
    let mut n = 0;
    for chunk in wire.chunks(CHUNK) {
        buf.extend_from_slice(chunk);
        while let Some(mut frame) = codec.decode(&mut buf).expect("valid") {
            let hlen = frame.get_u32() as usize;
            let header = frame.split_to(hlen);
            let v: serde_json::Value = serde_json::from_slice(&header).expect("json");
            black_box(v);
            n += black_box(frame.len());
        }
    }
    n
}

fn small(c: &mut Criterion) {
    let lhp = lhp_stream((0..SMALL_FRAMES as u64).map(small_frame));
    let base = baseline_stream((0..SMALL_FRAMES as u64).map(small_frame));
    let mut g = c.benchmark_group("small_frames");
    g.throughput(Throughput::Elements(SMALL_FRAMES as u64));
    g.bench_function("baseline_length_delimited+serde_json", |b| {
        b.iter(|| baseline_decode(&base, 8 << 20))
    });
    g.bench_function("lhp_decode", |b| {
        b.iter(|| lhp_decode(&lhp, Limits::default()))
    });
    g.bench_function("lhp_decode_event", |b| b.iter(|| lhp_stream_decode(&lhp)));
    g.bench_function("lhp_encode", |b| {
        let frames: Vec<Frame> = (0..SMALL_FRAMES as u64).map(small_frame).collect();
        b.iter_batched_ref(
            || BytesMut::with_capacity(lhp.len()),
            |out| {
                for f in &frames {
                    Encoder::new()
                        .encode_head(&f.header, 100, out)
                        .expect("encodes");
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn large(c: &mut Criterion) {
    const N: usize = 16;
    let body = Bytes::from(vec![0xa5u8; 1 << 20]);
    let mk = || (0..N as u64).map(|i| Frame::new(small_frame(i).header, body.clone()));
    let lhp = lhp_stream(mk());
    let base = baseline_stream(mk());
    let mut g = c.benchmark_group("1mib_bodies");
    g.throughput(Throughput::Bytes((N << 20) as u64));
    g.bench_function("baseline_length_delimited+serde_json", |b| {
        b.iter(|| baseline_decode(&base, 8 << 20))
    });
    g.bench_function("lhp_decode", |b| {
        b.iter(|| lhp_decode(&lhp, Limits::default()))
    });
    g.bench_function("lhp_decode_event", |b| b.iter(|| lhp_stream_decode(&lhp)));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = small, large
}
criterion_main!(benches);
