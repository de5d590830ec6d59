//! Many concurrent clients sending random frames in random chunks.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use lhp_codec::{Frame, Header};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use crate::{assert_same_frame, encode, TestConn};

/// The largest body sent.
const MAX_BODY: usize = 1 << 20;

/// Runs `clients` concurrent connections (two std threads each: one writes, one reads), each
/// sending `frames_per_client` echo frames pipelined back to back, and verifies every reply:
/// same members in the same order (`kind`, `id` = the frame's index, `client`, `body_len`),
/// same body octets (compared directly), in order, none lost or duplicated, then a clean close.
///
/// Body sizes are skewed small so that the 200 × 500 runs in seconds on two cores:
/// 95% uniform in 0..=4 KiB, 4% uniform in 4 KiB..=64 KiB, 1% uniform in 64 KiB..=1 MiB
/// (mean ≈ 8.7 KiB: 200 × 500 frames move ≈ 0.9 GB each way). Bodies are slices of one random
/// 2 MiB pool at random offsets. The stream is cut into writes regardless of frame
/// boundaries: one write in eight is 1..=16 octets, the others 1..=64 KiB. Everything derives
/// from `seed`, so a failure is reproducible.
///
/// The server must accept at least `clients` connections at once with default limits, and
/// its read timeouts must allow for a machine loaded by 3 × `clients` busy threads: with 200
/// clients on two cores a frame can take over 500 ms to arrive (use the default timeouts).
pub fn concurrent_random_frames(
    addr: SocketAddr,
    clients: usize,
    frames_per_client: usize,
    seed: u64,
) {
    let mut pool = vec![0u8; 2 * MAX_BODY];
    StdRng::seed_from_u64(seed).fill_bytes(&mut pool);
    let pool = Bytes::from(pool);
    let mut readers = Vec::with_capacity(clients);
    for c in 0..clients {
        let context = format!("random frames: client {c} (seed {seed})");
        let mut conn = TestConn::connect(addr, &context);
        let stream = conn
            .stream()
            .try_clone()
            .unwrap_or_else(|e| panic!("{context}: cannot clone the socket: {e}"));
        let (pool_w, pool_r) = (pool.clone(), pool.clone());
        let frame_seed = seed ^ (c as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let writer = std::thread::Builder::new()
            .stack_size(128 << 10)
            .spawn(move || write_frames(stream, &pool_w, c, frame_seed, frames_per_client))
            .unwrap_or_else(|e| panic!("{context}: cannot start a thread: {e}"));
        let reader_context = context.clone();
        let reader = std::thread::Builder::new()
            .stack_size(128 << 10)
            .spawn(move || {
                let context = reader_context;
                let mut frames = FrameSource::new(&pool_r, c, frame_seed);
                for i in 0..frames_per_client {
                    let want = frames.next_frame(i);
                    let got = conn.expect_frame(&format!("reply {i}"));
                    assert_same_frame(&got, &want, &format!("{context}: reply {i}"));
                }
                conn.shutdown_write();
                conn.expect_close(Duration::from_secs(10), "after the last reply");
            })
            .unwrap_or_else(|e| panic!("{context}: cannot start a thread: {e}"));
        readers.push((context, writer, reader));
    }
    let mut failures = Vec::new();
    for (context, writer, reader) in readers {
        match writer.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(format!("{context}: {e}")),
            Err(_) => failures.push(format!("{context}: the writer panicked")),
        }
        if let Err(p) = reader.join() {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(msg);
        }
    }
    assert!(
        failures.is_empty(),
        "{} client(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The frames of one client, regenerated identically by its writer and its reader.
struct FrameSource<'a> {
    pool: &'a Bytes,
    client: usize,
    rng: StdRng,
}

impl<'a> FrameSource<'a> {
    fn new(pool: &'a Bytes, client: usize, seed: u64) -> Self {
        FrameSource {
            pool,
            client,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn next_frame(&mut self, index: usize) -> Frame {
        let roll = self.rng.gen_range(0..100u32);
        let len = match roll {
            0..=94 => self.rng.gen_range(0..=4096),
            95..=98 => self.rng.gen_range(4097..=64 << 10),
            _ => self.rng.gen_range((64 << 10) + 1..=MAX_BODY),
        };
        let start = self.rng.gen_range(0..=self.pool.len() - len);
        let mut h = Header::with_kind("echo");
        h.set_id(index as u64).insert("client", self.client as u64);
        Frame::new(h, self.pool.slice(start..start + len))
    }
}

fn write_frames(
    mut stream: std::net::TcpStream,
    pool: &Bytes,
    client: usize,
    seed: u64,
    n: usize,
) -> Result<(), String> {
    let mut frames = FrameSource::new(pool, client, seed);
    let mut cuts = StdRng::seed_from_u64(seed.rotate_left(17) ^ 0x5eed);
    let mut pending: Vec<u8> = Vec::new();
    let mut next_cut = chunk_len(&mut cuts);
    for i in 0..n {
        pending.extend_from_slice(&encode(&frames.next_frame(i)));
        let mut from = 0;
        while pending.len() - from >= next_cut {
            let chunk = pending.get(from..from + next_cut).unwrap_or_default();
            stream
                .write_all(chunk)
                .map_err(|e| format!("write failed before frame {i}: {e}"))?;
            from += next_cut;
            next_cut = chunk_len(&mut cuts);
        }
        pending.drain(..from);
    }
    stream
        .write_all(&pending)
        .map_err(|e| format!("final write failed: {e}"))
}

fn chunk_len(rng: &mut StdRng) -> usize {
    if rng.gen_ratio(1, 8) {
        rng.gen_range(1..=16)
    } else {
        rng.gen_range(1..=64 << 10)
    }
}
