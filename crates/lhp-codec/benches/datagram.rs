//! The datagram binding's per-datagram cost (`spec/lhp-udp.md`), side by side with the stream
//! decoder on the same frame: what decoding one frame per datagram (a fresh decoder and a copy
//! of the datagram each time) and the server policy (rate limit, budget, echo) add.
//!
//! `cargo bench -p lhp-codec --bench datagram`

use std::hint::black_box;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lhp_codec::datagram::{DatagramCodec, DatagramConfig, DatagramServer};
use lhp_codec::{Decoder, Encoder, Frame, Header};

/// About 80 octets of header, `body` of body.
fn datagram(body: usize) -> Bytes {
    let mut h = Header::with_kind("echo");
    h.set_id(7)
        .set_name("sensor-17/temperature")
        .insert("ts", 1_700_000_000_000u64);
    let mut out = BytesMut::new();
    Encoder::new()
        .encode(&Frame::new(h, Bytes::from(vec![b'x'; body])), &mut out)
        .expect("encodes");
    out.freeze()
}

fn bench(c: &mut Criterion) {
    for body in [100usize, 1100] {
        let d = datagram(body);
        let mut g = c.benchmark_group(format!("one frame of {} octets", d.len()));
        g.throughput(Throughput::Elements(1));
        g.bench_function("stream Decoder (fresh)", |b| {
            b.iter(|| {
                let mut buf = BytesMut::from(&d[..]);
                black_box(Decoder::new().decode(&mut buf).expect("valid"))
            })
        });
        let codec = DatagramCodec::new();
        g.bench_function("DatagramCodec::decode", |b| {
            b.iter(|| black_box(codec.decode(&d).expect("valid")))
        });
        let mut server = DatagramServer::new(DatagramConfig::new().with_rate(u32::MAX, 0));
        let mut out = BytesMut::new();
        let now = Instant::now();
        g.bench_function("DatagramServer::handle (echo)", |b| {
            b.iter(|| black_box(server.handle(&d, &1u32, now, &mut out, Some)))
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
