//! Typed headers on the blocking engine (issue 13): a derived struct written with
//! `FrameWriter::write_typed` and read back borrowed with `FrameReader::read_frame_ref`, and
//! no allocation per received frame in steady state on that path, counted with the counting
//! allocator of `lhp-testkit` (every allocation of any size on the reading thread).
//!
//! - `typed_frames_round_trip_borrowed`: headers and bodies come back as written, and a
//!   header that does not fit the type names the member.
//! - `steady_state_typed_receive_allocates_nothing` (in memory) and
//!   `steady_state_typed_receive_over_loopback_allocates_nothing` (over TCP): after a warm-up,
//!   thousands of frames are read, their headers deserialized into a borrowed struct and
//!   their bodies copied into the caller's buffer with zero allocations.

use std::io::{Cursor, Read, Write};
use std::net::{TcpListener, TcpStream};

use lhp_blocking::FrameReader;
use lhp_blocking::FrameWriter;
use lhp_testkit::alloc::count_all;
use serde::{Deserialize, Serialize};

#[global_allocator]
static ALLOC: lhp_testkit::alloc::Counting = lhp_testkit::alloc::Counting;

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Reading<'a> {
    kind: &'a str,
    id: u64,
    name: &'a str,
    v: u64,
}

fn wire(count: u64) -> Vec<u8> {
    let mut w = FrameWriter::new(Vec::new());
    for id in 0..count {
        let body = [(id % 251) as u8; 100];
        w.write_typed(
            &Reading {
                kind: "upload",
                id,
                name: "sensor-42/temperature.bin",
                v: 1,
            },
            &body,
        )
        .unwrap();
    }
    w.into_inner()
}

/// Reads `count` frames, checking each, the body copied into `out`.
fn read_typed<R: Read>(r: &mut FrameReader<R>, first: u64, count: u64, out: &mut [u8; 100]) {
    for id in first..first + count {
        let f = r.read_frame_ref().unwrap().unwrap();
        let h: Reading<'_> = f.header().unwrap();
        assert_eq!(
            (h.kind, h.id, h.name),
            ("upload", id, "sensor-42/temperature.bin")
        );
        out.copy_from_slice(f.body());
        assert_eq!(out[99], (id % 251) as u8);
    }
}

#[test]
fn typed_frames_round_trip_borrowed() {
    let data = wire(3);
    let mut r = FrameReader::new(Cursor::new(data));
    let mut out = [0u8; 100];
    read_typed(&mut r, 0, 2, &mut out);
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Wrong {
        id: u64,
        name: u64,
    }
    let f = r.read_frame_ref().unwrap().unwrap();
    let e = f.header::<Wrong>().unwrap_err();
    assert_eq!(e.member(), Some("name"), "{e}");
    assert!(r.read_frame_ref().unwrap().is_none());
}

#[test]
fn steady_state_typed_receive_allocates_nothing() {
    // The counter counts: one allocation is one.
    let (v, n) = count_all(|| Vec::<u8>::with_capacity(1));
    assert_eq!((v.capacity() >= 1, n), (true, 1));
    let data = wire(20_000);
    let mut r = FrameReader::new(Cursor::new(data));
    let mut out = [0u8; 100];
    read_typed(&mut r, 0, 1_000, &mut out);
    let ((), allocs) = count_all(|| read_typed(&mut r, 1_000, 19_000, &mut out));
    assert_eq!(allocs, 0, "allocations while reading 19,000 typed frames");
    assert!(r.read_frame_ref().unwrap().is_none());
}

#[test]
fn steady_state_typed_receive_over_loopback_allocates_nothing() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let data = wire(50_000);
    let sender = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        for piece in data.chunks(7_001) {
            s.write_all(piece).unwrap();
        }
    });
    let (s, _) = listener.accept().unwrap();
    let mut r = FrameReader::new(s);
    let mut out = [0u8; 100];
    read_typed(&mut r, 0, 1_000, &mut out);
    let ((), allocs) = count_all(|| read_typed(&mut r, 1_000, 49_000, &mut out));
    assert_eq!(allocs, 0, "allocations while reading 49,000 typed frames");
    assert!(r.read_frame_ref().unwrap().is_none());
    sender.join().unwrap();
}
