//! The workloads: each function performs one run and returns its figure.
//!
//! Every loopback run opens a fresh connection on an ephemeral port, moves the data, and ends
//! when the receiver has checked everything and answered with one acknowledgement octet; the
//! clock runs from the first write to that acknowledgement (connection setup excluded).

use std::hint::black_box;
use std::io::{self, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use lhp_codec::{Decoder, Encoder, Frame, Header, Limits, Map, Profile, Value};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio_util::codec::{Decoder as _, Framed, LengthDelimitedCodec};

/// Limits large enough for the biggest workload (64 MiB bodies).
pub fn limits() -> Limits {
    Limits::new().with_max_body_len(1 << 30)
}

/// The small-frame header: about 80 octets of JSON.
pub fn header(body_len: usize) -> Header {
    let mut h = Header::with_kind("upload");
    h.set_id(100_000)
        .set_name("sensor-42/temperature.bin")
        .set_body_len(body_len as u64);
    h.insert("v", 1);
    h
}

/// A frame with `len` body octets.
pub fn frame(len: usize) -> Frame {
    Frame::new(header(len), Bytes::from(vec![b'x'; len]))
}

/// The header a tokio-util user would declare.
#[derive(Deserialize)]
#[allow(dead_code)]
struct TypedHeader {
    kind: String,
    id: u64,
    name: String,
    #[serde(default)]
    body_len: u64,
    v: u64,
}

// ---------------------------------------------------------------------------------------
// Ceilings

/// memcpy bandwidth, GB/s: 64 MiB copied 4 times.
pub fn memcpy_gbps() -> f64 {
    let src = vec![7u8; 64 << 20];
    let mut dst = vec![0u8; 64 << 20];
    dst.copy_from_slice(&src); // fault the pages in
    let start = Instant::now();
    for _ in 0..4 {
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
    }
    gbps(4 * src.len(), start.elapsed())
}

/// How a raw receiver takes each body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawReceive {
    /// `read_exact` into one reused buffer of at most 1 MiB: the kernel's limit.
    Reused,
    /// Each body into a new buffer of its own (`vec![0; size]`, then `read_exact`), dropped
    /// after use: what an API that hands every body over as owned memory has to do.
    Owned,
}

/// Raw blocking TCP: `count` writes of `size` octets, received as `how` says. GB/s.
pub fn raw_bulk_blocking(size: usize, count: usize, how: RawReceive) -> f64 {
    let elapsed = blocking_pair(
        move |mut s| {
            match how {
                RawReceive::Reused => {
                    let mut buf = vec![0u8; size.clamp(1, 1 << 20)];
                    let mut left = size * count;
                    while left > 0 {
                        let n = buf.len().min(left);
                        s.read_exact(&mut buf[..n])?;
                        left -= n;
                    }
                }
                RawReceive::Owned => {
                    for _ in 0..count {
                        let mut body = vec![0u8; size];
                        s.read_exact(&mut body)?;
                        black_box(&body);
                    }
                }
            }
            s.write_all(b"k")
        },
        move |mut s| {
            let buf = vec![b'x'; size];
            let start = Instant::now();
            for _ in 0..count {
                s.write_all(&buf)?;
            }
            ack(&mut s)?;
            Ok(start.elapsed())
        },
    );
    gbps(size * count, elapsed)
}

/// Raw tokio TCP, the same transfer. GB/s.
pub fn raw_bulk_tokio(rt: &Runtime, size: usize, count: usize, how: RawReceive) -> f64 {
    let elapsed = rt.block_on(async move {
        let (mut c, server) = tokio_pair(move |mut s| async move {
            match how {
                RawReceive::Reused => {
                    let mut buf = vec![0u8; size.clamp(1, 1 << 20)];
                    let mut left = size * count;
                    while left > 0 {
                        let n = buf.len().min(left);
                        s.read_exact(&mut buf[..n]).await?;
                        left -= n;
                    }
                }
                RawReceive::Owned => {
                    for _ in 0..count {
                        let mut body = vec![0u8; size];
                        s.read_exact(&mut body).await?;
                        black_box(&body);
                    }
                }
            }
            s.write_all(b"k").await
        })
        .await;
        let buf = vec![b'x'; size];
        let start = Instant::now();
        for _ in 0..count {
            c.write_all(&buf).await.expect("raw write");
        }
        c.read_u8().await.expect("ack");
        let t = start.elapsed();
        server.await.expect("server task").expect("server");
        t
    });
    gbps(size * count, elapsed)
}

/// Raw blocking ping-pong of 64 octets with `TCP_NODELAY`: every round trip's latency.
pub fn raw_pingpong_blocking(rounds: usize) -> Vec<Duration> {
    let mut lat = Vec::with_capacity(rounds);
    let lat_ref = &mut lat;
    thread::scope(|scope| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        scope.spawn(move || -> io::Result<()> {
            let (mut s, _) = listener.accept()?;
            s.set_nodelay(true)?;
            let mut buf = [0u8; 64];
            while s.read_exact(&mut buf).is_ok() {
                s.write_all(&buf)?;
            }
            Ok(())
        });
        let mut c = TcpStream::connect(addr).expect("connect");
        c.set_nodelay(true).expect("nodelay");
        let mut buf = [7u8; 64];
        for _ in 0..WARMUP_ROUNDS {
            c.write_all(&buf).expect("write");
            c.read_exact(&mut buf).expect("read");
        }
        for _ in 0..rounds {
            let t = Instant::now();
            c.write_all(&buf).expect("write");
            c.read_exact(&mut buf).expect("read");
            lat_ref.push(t.elapsed());
        }
    });
    lat
}

/// Raw tokio ping-pong of 64 octets with `TCP_NODELAY`: the server in one task, the client
/// in another spawned task (not in `block_on`), as in [`echo_tokio`].
pub fn raw_pingpong_tokio(rt: &Runtime, rounds: usize) -> Vec<Duration> {
    rt.block_on(async move {
        let (mut c, server) = tokio_pair(|mut s| async move {
            let mut buf = vec![0u8; 4096];
            while read_64(&mut s, &mut buf).await.is_ok() {
                s.write_all(&buf[..64]).await?;
            }
            Ok(())
        })
        .await;
        let client = tokio::spawn(async move {
            let mut lat = Vec::with_capacity(rounds);
            let mut buf = vec![7u8; 4096];
            for i in 0..WARMUP_ROUNDS + rounds {
                let t = Instant::now();
                c.write_all(&buf[..64]).await.expect("write");
                read_64(&mut c, &mut buf).await.expect("read");
                if i >= WARMUP_ROUNDS {
                    lat.push(t.elapsed());
                }
            }
            lat
        });
        let lat = client.await.expect("client task");
        let _ = server.await;
        lat
    })
}

/// Reads 64 octets into `buf` (4 KiB) with reads offered the whole rest of `buf`, as a
/// framed reader does: a read that returns less than offered tells tokio the socket is
/// drained, so the next read waits for readiness instead of first failing with `EAGAIN`
/// (`read_exact` into exactly 64 octets costs that extra system call every time).
async fn read_64(s: &mut tokio::net::TcpStream, buf: &mut [u8]) -> io::Result<()> {
    let mut got = 0;
    while got < 64 {
        let rest = buf.get_mut(got..).unwrap_or_default();
        match s.read(rest).await? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
    }
    Ok(())
}

/// Round trips made before the clock starts in every echo subject (connection warm-up:
/// first allocations, page faults, TCP's initial state).
pub const WARMUP_ROUNDS: usize = 200;

/// CPU affinity for the echo workloads: both ends of a ping-pong on one CPU.
///
/// On a VM a wake-up of a thread on another, idle vCPU costs tens of microseconds and one on
/// the same CPU a few; left to the scheduler, a run lands in one mode or the other by chance.
/// Pinning the calling thread makes every thread (and every tokio worker) it spawns inherit
/// the same single CPU, so each subject pays the same-CPU wake-up, every run.
#[allow(unsafe_code)]
pub mod affinity {
    use std::marker::PhantomData;
    use std::mem;

    /// The calling thread's affinity mask before [`pin_here`]; restored when dropped, on the
    /// same thread (the guard is not `Send`).
    pub struct Pinned {
        before: libc::cpu_set_t,
        /// The CPU the thread is pinned to.
        pub cpu: usize,
        _same_thread: PhantomData<*const ()>,
    }

    /// Pins the calling thread to the CPU it is running on. `None` if the system refuses
    /// (then nothing changed).
    pub fn pin_here() -> Option<Pinned> {
        // SAFETY: `cpu_set_t` is a plain bit array; all zeroes is the empty set.
        let mut before: libc::cpu_set_t = unsafe { mem::zeroed() };
        let size = mem::size_of::<libc::cpu_set_t>();
        // SAFETY: pid 0 is the calling thread; `before` is a valid, writable set of `size`.
        if unsafe { libc::sched_getaffinity(0, size, &mut before) } != 0 {
            return None;
        }
        // SAFETY: no arguments, no memory.
        let cpu = usize::try_from(unsafe { libc::sched_getcpu() }).ok()?;
        if cpu >= 8 * size {
            return None;
        }
        // SAFETY: as above.
        let mut one: libc::cpu_set_t = unsafe { mem::zeroed() };
        // SAFETY: `cpu` is within the set's bits (checked above).
        unsafe { libc::CPU_SET(cpu, &mut one) };
        // SAFETY: pid 0 is the calling thread; `one` is a valid set of `size`.
        if unsafe { libc::sched_setaffinity(0, size, &one) } != 0 {
            return None;
        }
        Some(Pinned {
            before,
            cpu,
            _same_thread: PhantomData,
        })
    }

    impl Drop for Pinned {
        fn drop(&mut self) {
            let size = mem::size_of::<libc::cpu_set_t>();
            // SAFETY: pid 0 is the calling thread, the one that pinned itself (not `Send`).
            unsafe { libc::sched_setaffinity(0, size, &self.before) };
        }
    }

    /// Runs `f` with the calling thread pinned to its current CPU (threads spawned inside
    /// inherit the pin), then restores the affinity. Runs `f` unpinned if pinning fails.
    pub fn pinned<T>(f: impl FnOnce(Option<usize>) -> T) -> T {
        let guard = pin_here();
        let out = f(guard.as_ref().map(|g| g.cpu));
        drop(guard);
        out
    }
}

// ---------------------------------------------------------------------------------------
// Codec only, in process

/// `count` small frames encoded back to back by the LHP encoder.
pub fn lhp_wire(count: usize, body: usize) -> BytesMut {
    let f = frame(body);
    let enc = Encoder::new();
    let mut wire = BytesMut::new();
    for _ in 0..count {
        enc.encode(&f, &mut wire).expect("encode");
    }
    wire
}

/// The same frames as a tokio-util user would frame them: a `LengthDelimitedCodec` frame
/// holding `u32 header length + JSON header + body`.
pub fn ldc_wire(count: usize, body: usize) -> BytesMut {
    let f = frame(body);
    let mut codec = LengthDelimitedCodec::new();
    let mut wire = BytesMut::new();
    for _ in 0..count {
        let payload = ldc_payload(f.header.members(), &f.body);
        tokio_util::codec::Encoder::encode(&mut codec, payload, &mut wire).expect("encode");
    }
    wire
}

/// Decodes every LHP frame in `wire`: frames/s.
pub fn codec_lhp(wire: &BytesMut, count: usize) -> f64 {
    let mut buf = BytesMut::from(&wire[..]);
    let mut dec = Decoder::with(Profile::Lhp1, limits());
    let start = Instant::now();
    let mut n = 0;
    while let Some(f) = dec.decode(&mut buf).expect("decode") {
        black_box(&f);
        n += 1;
    }
    let t = start.elapsed();
    assert_eq!(n, count);
    count as f64 / t.as_secs_f64()
}

/// Decodes every baseline frame in `wire` and parses its header into a JSON map: frames/s.
pub fn codec_ldc(wire: &BytesMut, count: usize, typed: bool) -> f64 {
    let mut buf = BytesMut::from(&wire[..]);
    let mut codec = LengthDelimitedCodec::new();
    let start = Instant::now();
    let mut n = 0;
    while let Some(frame) = codec.decode(&mut buf).expect("decode") {
        black_box(ldc_parse(frame, typed).expect("parse"));
        n += 1;
    }
    let t = start.elapsed();
    assert_eq!(n, count);
    count as f64 / t.as_secs_f64()
}

/// Builds the baseline's payload: u32 header length, JSON header, body.
pub fn ldc_payload(members: &Map<String, Value>, body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(128 + body.len());
    out.put_u32(0);
    serde_json::to_writer((&mut out).writer(), members).expect("serialize");
    let hlen = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&hlen.to_be_bytes());
    out.extend_from_slice(body);
    out.freeze()
}

/// What a tokio-util user would write to take the payload apart.
fn ldc_parse(mut frame: BytesMut, typed: bool) -> io::Result<(Option<Map<String, Value>>, Bytes)> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let prefix: [u8; 4] = frame
        .get(..4)
        .and_then(|p| p.try_into().ok())
        .ok_or_else(|| bad("short frame"))?;
    let hlen = u32::from_be_bytes(prefix) as usize;
    if frame.len() - 4 < hlen {
        return Err(bad("short header"));
    }
    let body = frame.split_off(4 + hlen).freeze();
    let json = frame.get(4..).unwrap_or_default();
    if typed {
        let h: TypedHeader = serde_json::from_slice(json)?;
        if h.body_len != body.len() as u64 {
            return Err(bad("body_len"));
        }
        Ok((None, body))
    } else {
        let h: Map<String, Value> = serde_json::from_slice(json)?;
        if h.get("body_len").map_or(Some(0), Value::as_u64) != Some(body.len() as u64) {
            return Err(bad("body_len"));
        }
        Ok((Some(h), body))
    }
}

// ---------------------------------------------------------------------------------------
// One-way streams of frames over loopback

/// lhp-blocking: `count` frames of `body` octets through `FrameWriter` (over a `BufWriter`
/// for small frames) into `FrameReader::read_frame`. Seconds.
pub fn lhp_blocking_stream(body: usize, count: usize) -> Duration {
    let f = frame(body);
    blocking_pair(
        move |s| {
            let mut r = lhp_blocking::FrameReader::with(s, Profile::Lhp1, limits());
            for _ in 0..count {
                let got = r.read_frame().map_err(io::Error::other)?;
                let got = got.ok_or_else(|| io::Error::other("early end"))?;
                if got.body.len() != body {
                    return Err(io::Error::other("wrong body"));
                }
            }
            r.get_mut().write_all(b"k")
        },
        move |s| {
            let start = Instant::now();
            if body < 16 << 10 {
                let mut w = lhp_blocking::FrameWriter::new(BufWriter::with_capacity(64 << 10, s));
                for _ in 0..count {
                    w.write_frame(&f).map_err(io::Error::other)?;
                }
                w.flush().map_err(io::Error::other)?;
                let mut s = w.into_inner().into_inner().map_err(|e| e.into_error())?;
                ack(&mut s)?;
            } else {
                let mut w = lhp_blocking::FrameWriter::new(s);
                for _ in 0..count {
                    w.write_frame(&f).map_err(io::Error::other)?;
                }
                ack(w.get_mut())?;
            }
            Ok(start.elapsed())
        },
    )
}

/// lhp-blocking, bodies streamed: `FrameWriter::write_frame` (vectored, no copy of the body)
/// into `FrameReader::read_head` + `body()` read into one reused buffer, as the raw receiver
/// does.
pub fn lhp_blocking_streamed(body: usize, count: usize) -> Duration {
    let f = frame(body);
    blocking_pair(
        move |s| {
            let mut r = lhp_blocking::FrameReader::with(s, Profile::Lhp1, limits());
            let mut buf = vec![0u8; body.clamp(1, 1 << 20)];
            for _ in 0..count {
                let head = r.read_head().map_err(io::Error::other)?;
                let head = head.ok_or_else(|| io::Error::other("early end"))?;
                let mut got = 0;
                let mut b = r.body();
                loop {
                    let n = b.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    got += n;
                }
                if got as u64 != head.body_len() || got != body {
                    return Err(io::Error::other("wrong body"));
                }
            }
            r.get_mut().write_all(b"k")
        },
        move |s| {
            let start = Instant::now();
            let mut w = lhp_blocking::FrameWriter::new(s);
            for _ in 0..count {
                w.write_frame(&f).map_err(io::Error::other)?;
            }
            ack(w.get_mut())?;
            Ok(start.elapsed())
        },
    )
}

/// lhp-tokio, bodies streamed: `FrameWriter::write_frame` into `FrameReader::read_head` +
/// `body()` (an `AsyncRead`) read into one reused buffer.
pub fn lhp_tokio_streamed(rt: &Runtime, body: usize, count: usize) -> Duration {
    let f = frame(body);
    rt.block_on(async move {
        let (mut c, server) = tokio_pair(move |s| async move {
            let mut r = lhp_tokio::FrameReader::with(s, Profile::Lhp1, limits());
            let mut buf = vec![0u8; body.clamp(1, 1 << 20)];
            for _ in 0..count {
                let head = r.read_head().await.map_err(io::Error::other)?;
                let head = head.ok_or_else(|| io::Error::other("early end"))?;
                let mut got = 0;
                let mut b = r.body();
                loop {
                    let n = b.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    got += n;
                }
                if got as u64 != head.body_len() || got != body {
                    return Err(io::Error::other("wrong body"));
                }
            }
            r.get_mut().write_all(b"k").await
        })
        .await;
        let start = Instant::now();
        let mut w = lhp_tokio::FrameWriter::new(&mut c);
        for _ in 0..count {
            w.write_frame(&f).await.expect("write_frame");
        }
        c.read_u8().await.expect("ack");
        let t = start.elapsed();
        server.await.expect("server task").expect("server");
        t
    })
}

/// lhp-tokio: small frames through `Framed<TcpStream, LhpCodec>` (`feed`, then one flush);
/// large ones through `FrameWriter` (vectored, no copy of the body) into `FrameReader`.
pub fn lhp_tokio_stream(rt: &Runtime, body: usize, count: usize) -> Duration {
    let f = frame(body);
    let small = body < 16 << 10;
    rt.block_on(async move {
        let (mut c, server) = tokio_pair(move |s| async move {
            if small {
                let mut framed = Framed::new(s, lhp_tokio::LhpCodec::with(Profile::Lhp1, limits()));
                for _ in 0..count {
                    let got = framed.next().await.ok_or_else(|| io::Error::other("end"))?;
                    let got = got.map_err(io::Error::other)?;
                    if got.body.len() != body {
                        return Err(io::Error::other("wrong body"));
                    }
                }
                framed.get_mut().write_all(b"k").await
            } else {
                let mut r = lhp_tokio::FrameReader::with(s, Profile::Lhp1, limits());
                for _ in 0..count {
                    let got = r.read_frame().await.map_err(io::Error::other)?;
                    let got = got.ok_or_else(|| io::Error::other("early end"))?;
                    if got.body.len() != body {
                        return Err(io::Error::other("wrong body"));
                    }
                }
                r.get_mut().write_all(b"k").await
            }
        })
        .await;
        let start = Instant::now();
        if small {
            let mut framed = Framed::new(&mut c, lhp_tokio::LhpCodec::new());
            for _ in 0..count {
                framed.feed(&f).await.expect("feed");
            }
            SinkExt::<&Frame>::flush(&mut framed).await.expect("flush");
        } else {
            let mut w = lhp_tokio::FrameWriter::new(&mut c);
            for _ in 0..count {
                w.write_frame(&f).await.expect("write_frame");
            }
        }
        c.read_u8().await.expect("ack");
        let t = start.elapsed();
        server.await.expect("server task").expect("server");
        t
    })
}

/// The tokio-util baseline: `Framed<TcpStream, LengthDelimitedCodec>` both ways, the header
/// serialized and parsed with serde_json for every frame.
pub fn ldc_tokio_stream(rt: &Runtime, body: usize, count: usize) -> Duration {
    let f = frame(body);
    rt.block_on(async move {
        let (mut c, server) = tokio_pair(move |s| async move {
            let codec = LengthDelimitedCodec::builder()
                .max_frame_length(1 << 30)
                .new_codec();
            let mut framed = Framed::new(s, codec);
            for _ in 0..count {
                let got = framed
                    .next()
                    .await
                    .ok_or_else(|| io::Error::other("end"))??;
                let (_, b) = ldc_parse(got, false)?;
                if b.len() != body {
                    return Err(io::Error::other("wrong body"));
                }
            }
            framed.get_mut().write_all(b"k").await
        })
        .await;
        let start = Instant::now();
        let codec = LengthDelimitedCodec::builder()
            .max_frame_length(1 << 30)
            .new_codec();
        let mut framed = Framed::new(&mut c, codec);
        for _ in 0..count {
            if let Err(e) = framed.feed(ldc_payload(f.header.members(), &f.body)).await {
                let why = server.await;
                panic!("feed: {e}; server: {why:?}");
            }
        }
        SinkExt::<Bytes>::flush(&mut framed).await.expect("flush");
        c.read_u8().await.expect("ack");
        let t = start.elapsed();
        server.await.expect("server task").expect("server");
        t
    })
}

// ---------------------------------------------------------------------------------------
// Echo round trips

/// lhp-blocking `Server` with `EchoHandler`, `Client::request`: every round trip.
pub fn echo_lhp_blocking(rounds: usize) -> Vec<Duration> {
    let server = lhp_blocking::Server::bind(
        "127.0.0.1:0",
        lhp_blocking::Config::new(),
        lhp_blocking::EchoHandler::new(),
    )
    .and_then(|s| s.spawn())
    .expect("lhp-blocking server");
    let mut client = lhp_blocking::Client::connect(server.local_addr()).expect("connect");
    let f = Frame::new(Header::with_kind("echo"), Bytes::from(vec![b'x'; 64]));
    for _ in 0..WARMUP_ROUNDS {
        client.request(&f).expect("request");
    }
    let mut lat = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        let reply = client.request(&f).expect("request");
        lat.push(t.elapsed());
        assert_eq!(reply.body.len(), 64);
    }
    drop(client);
    server.shutdown().expect("shutdown");
    lat
}

/// lhp-blocking: `conns` connections to one `Server` + `EchoHandler` (a thread per
/// connection), each a `Client` on its own thread doing request → reply for `duration`;
/// returns (frames/s over all connections, every latency).
pub fn echo_blocking_conc(conns: usize, duration: Duration) -> (f64, Vec<Duration>) {
    let mut config = lhp_blocking::Config::new();
    config.set_max_connections(conns.max(1));
    let server =
        lhp_blocking::Server::bind("127.0.0.1:0", config, lhp_blocking::EchoHandler::new())
            .and_then(|s| s.spawn())
            .expect("lhp-blocking server");
    let addr = server.local_addr();
    let f = Frame::new(Header::with_kind("echo"), Bytes::from(vec![b'x'; 64]));
    // Every client connects first; the clock starts when all are ready.
    let ready = std::sync::Barrier::new(conns + 1);
    let (start, lats) = thread::scope(|scope| {
        let handles: Vec<_> = (0..conns)
            .map(|_| {
                let (f, ready) = (&f, &ready);
                scope.spawn(move || {
                    let mut client = lhp_blocking::Client::connect(addr).expect("connect");
                    ready.wait();
                    let deadline = Instant::now() + duration;
                    let mut lat = Vec::new();
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        let reply = client.request(f).expect("request");
                        lat.push(t.elapsed());
                        assert_eq!(reply.body.len(), 64);
                    }
                    lat
                })
            })
            .collect();
        ready.wait();
        let start = Instant::now();
        let lats: Vec<Duration> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("client thread"))
            .collect();
        (start, lats)
    });
    let elapsed = start.elapsed();
    server.shutdown().expect("shutdown");
    (lats.len() as f64 / elapsed.as_secs_f64(), lats)
}

/// Which tokio echo server and client to run.
#[derive(Clone, Copy, Debug)]
pub enum TokioEcho {
    /// lhp-tokio `Server` with `echo`; clients on `Framed<TcpStream, LhpCodec>`.
    Lhp,
    /// A hand-written `LengthDelimitedCodec` + serde_json echo server and client.
    Ldc,
}

/// `conns` connections, each doing request → reply for `duration` (or `rounds` each, when
/// `rounds` is given); returns (frames/s over all connections, every latency).
pub fn echo_tokio(
    rt: &Runtime,
    which: TokioEcho,
    conns: usize,
    duration: Duration,
    rounds: Option<usize>,
) -> (f64, Vec<Duration>) {
    rt.block_on(async move {
        let stop = tokio_util::sync::CancellationToken::new();
        let (addr, server) = match which {
            TokioEcho::Lhp => {
                let s = lhp_tokio::Server::bind(
                    "127.0.0.1:0",
                    lhp_tokio::Config::new(),
                    lhp_tokio::EchoHandler::new(),
                )
                .expect("lhp-tokio server");
                let addr = s.local_addr();
                let token = s.shutdown_token();
                let stop2 = stop.clone();
                let h = tokio::spawn(async move {
                    tokio::select! {
                        r = s.run() => r,
                        _ = stop2.cancelled() => { token.cancel(); Ok(()) }
                    }
                });
                (addr, h)
            }
            TokioEcho::Ldc => {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let addr = l.local_addr().expect("addr");
                let stop2 = stop.clone();
                let h = tokio::spawn(async move {
                    loop {
                        let (s, _) = tokio::select! {
                            a = l.accept() => a?,
                            _ = stop2.cancelled() => return Ok(()),
                        };
                        s.set_nodelay(true)?;
                        tokio::spawn(ldc_echo_conn(s));
                    }
                });
                (addr, h)
            }
        };
        let mut streams = Vec::with_capacity(conns);
        for _ in 0..conns {
            let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            s.set_nodelay(true).expect("nodelay");
            streams.push(s);
        }
        let f = Frame::new(Header::with_kind("echo"), Bytes::from(vec![b'x'; 64]));
        // Timed rounds are counted after a warm-up; timed runs count from the start.
        let warmup = if rounds.is_some() { WARMUP_ROUNDS } else { 0 };
        let start = Instant::now();
        let deadline = start + duration;
        let mut tasks = Vec::with_capacity(conns);
        for s in streams {
            let f = f.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut seen = 0usize;
                let done = |n: usize| match rounds {
                    Some(r) => n >= r + warmup,
                    None => Instant::now() >= deadline,
                };
                match which {
                    TokioEcho::Lhp => {
                        let mut framed = Framed::new(s, lhp_tokio::LhpCodec::new());
                        while !done(seen) {
                            let t = Instant::now();
                            framed.send(&f).await.expect("send");
                            let r = framed.next().await.expect("reply").expect("decode");
                            let took = t.elapsed();
                            seen += 1;
                            if seen > warmup {
                                lat.push(took);
                            }
                            assert_eq!(r.body.len(), 64);
                        }
                    }
                    TokioEcho::Ldc => {
                        let mut framed = Framed::new(s, LengthDelimitedCodec::new());
                        while !done(seen) {
                            let t = Instant::now();
                            framed
                                .send(ldc_payload(f.header.members(), &f.body))
                                .await
                                .expect("send");
                            let r = framed.next().await.expect("reply").expect("decode");
                            let (_, b) = ldc_parse(r, false).expect("parse");
                            let took = t.elapsed();
                            seen += 1;
                            if seen > warmup {
                                lat.push(took);
                            }
                            assert_eq!(b.len(), 64);
                        }
                    }
                }
                lat
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("client task"));
        }
        let elapsed = start.elapsed();
        stop.cancel();
        let _ = server.await;
        (all.len() as f64 / elapsed.as_secs_f64(), all)
    })
}

async fn ldc_echo_conn(s: tokio::net::TcpStream) -> io::Result<()> {
    let mut framed = Framed::new(s, LengthDelimitedCodec::new());
    while let Some(frame) = framed.next().await {
        let (h, body) = ldc_parse(frame?, false)?;
        let h = h.unwrap_or_default();
        framed.send(ldc_payload(&h, &body)).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Memory while streaming a large body

/// Streams `len` body octets through lhp-blocking (`FrameWriter::write_stream` from a
/// generator, `FrameReader::read_head` + `body()` into a sink) and returns the process's
/// peak resident set, in octets, read from /proc/self/status.
pub fn stream_peak_rss(len: u64) -> io::Result<(u64, Duration)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = thread::spawn(move || -> io::Result<u64> {
        let (s, _) = listener.accept()?;
        let limits = Limits::new().with_max_body_len(len);
        let mut r = lhp_blocking::FrameReader::with(s, Profile::Lhp1, limits);
        let head = r.read_head().map_err(io::Error::other)?;
        if head.map(|h| h.body_len()) != Some(len) {
            return Err(io::Error::other("wrong head"));
        }
        let n = io::copy(&mut r.body(), &mut io::sink())?;
        r.get_mut().write_all(b"k")?;
        Ok(n)
    });
    let start = Instant::now();
    let s = TcpStream::connect(addr)?;
    let mut w = lhp_blocking::FrameWriter::new(s);
    let mut h = Header::with_kind("upload");
    h.set_body_len(len);
    w.write_stream(&h, io::repeat(b'x').take(len))
        .map_err(io::Error::other)?;
    ack(w.get_mut())?;
    let got = server
        .join()
        .map_err(|_| io::Error::other("server panicked"))??;
    if got != len {
        return Err(io::Error::other("short body"));
    }
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or_else(|| io::Error::other("no VmHWM"))?;
    Ok((kib * 1024, start.elapsed()))
}

// ---------------------------------------------------------------------------------------
// Helpers

/// GB/s (10^9 octets per second).
pub fn gbps(octets: usize, t: Duration) -> f64 {
    octets as f64 / t.as_secs_f64() / 1e9
}

pub(crate) fn ack(s: &mut TcpStream) -> io::Result<()> {
    let mut k = [0u8; 1];
    s.read_exact(&mut k)
}

/// Runs `server` on an accepted connection in a thread and `client` on the connecting side;
/// returns what the client timed.
pub(crate) fn blocking_pair(
    server: impl FnOnce(TcpStream) -> io::Result<()> + Send + 'static,
    client: impl FnOnce(TcpStream) -> io::Result<Duration>,
) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let h = thread::spawn(move || {
        let (s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        server(s)
    });
    let c = TcpStream::connect(addr).expect("connect");
    c.set_nodelay(true).expect("nodelay");
    let t = client(c).expect("client");
    h.join().expect("server thread").expect("server");
    t
}

/// Binds, spawns `server` on the first accepted connection, connects.
pub(crate) async fn tokio_pair<F, Fut>(
    server: F,
) -> (
    tokio::net::TcpStream,
    tokio::task::JoinHandle<io::Result<()>>,
)
where
    F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = io::Result<()>> + Send + 'static,
{
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let h = tokio::spawn(async move {
        let (s, _) = l.accept().await?;
        s.set_nodelay(true)?;
        server(s).await
    });
    let c = tokio::net::TcpStream::connect(addr).await.expect("connect");
    c.set_nodelay(true).expect("nodelay");
    (c, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_wires_carry_the_same_frames() {
        let n = 50;
        assert!(codec_lhp(&lhp_wire(n, 100), n) > 0.0);
        assert!(codec_ldc(&ldc_wire(n, 100), n, false) > 0.0);
        assert!(codec_ldc(&ldc_wire(n, 100), n, true) > 0.0);
        assert!(codec_ldc(&ldc_wire(n, 0), n, false) > 0.0);
    }

    #[test]
    fn baseline_parse_rejects_bad_payloads() {
        assert!(ldc_parse(BytesMut::from(&b"\0\0"[..]), false).is_err());
        assert!(ldc_parse(BytesMut::from(&b"\0\0\0\x09{}"[..]), false).is_err());
        let mut wrong = BytesMut::from(&ldc_payload(header(5).members(), b"abc")[..]);
        assert!(ldc_parse(wrong.split(), false).is_err());
        let ok = ldc_payload(header(3).members(), b"abc");
        let (h, body) = ldc_parse(BytesMut::from(&ok[..]), false).expect("parse");
        assert_eq!(&body[..], b"abc");
        assert_eq!(
            h.and_then(|h| h.get("kind").cloned()),
            Some("upload".into())
        );
    }

    #[test]
    fn loopback_runs_move_every_frame() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        assert!(lhp_blocking_stream(100, 20) > Duration::ZERO);
        assert!(lhp_blocking_streamed(100_000, 3) > Duration::ZERO);
        assert!(lhp_tokio_stream(&rt, 100, 20) > Duration::ZERO);
        assert!(lhp_tokio_streamed(&rt, 100_000, 3) > Duration::ZERO);
        assert!(ldc_tokio_stream(&rt, 100, 20) > Duration::ZERO);
        assert_eq!(echo_lhp_blocking(3).len(), 3);
        assert_eq!(raw_pingpong_blocking(3).len(), 3);
        for how in [RawReceive::Reused, RawReceive::Owned] {
            assert!(raw_bulk_blocking(100_000, 3, how) > 0.0);
            assert!(raw_bulk_tokio(&rt, 100_000, 3, how) > 0.0);
        }
        let (fps, lat) = echo_blocking_conc(3, Duration::from_millis(30));
        assert!(fps > 0.0 && lat.len() >= 3, "{fps} {}", lat.len());
        let (_, lat) = echo_tokio(&rt, TokioEcho::Lhp, 2, Duration::ZERO, Some(3));
        assert_eq!(lat.len(), 6);
        let (_, lat) = echo_tokio(&rt, TokioEcho::Ldc, 2, Duration::ZERO, Some(3));
        assert_eq!(lat.len(), 6);
    }
}
