//! Whole large frames reuse one allocation (issue 8: no per-frame allocation, zero-filling or
//! page faulting of large bodies), measured with a counting global allocator.
//!
//! The allocator counts per thread, and only inside [`count_large`], so tests running in
//! parallel (and the harness) cannot disturb each other's numbers. It counts allocations (and
//! growing reallocations) of at least [`LARGE`](lhp_testkit::alloc::LARGE) octets: the bodies these tests read are larger,
//! every other allocation on the way is far smaller.
//!
//! - `dropped_large_frames_give_their_allocation_to_the_next`: after the first frame, reading
//!   and dropping large frames allocates nothing large, and each body lands where the last was.
//! - `held_frames_are_never_written_to`: frames the caller keeps stay intact while later ones
//!   are read, whatever their sizes; the reader allocates anew for those.
//! - `loopback_large_frames_reuse_one_allocation`: the same over a TCP socket, whose reads
//!   return what happens to have arrived.
//! - `a_huge_declaration_after_a_large_frame_allocates_nothing`: the kept allocation serves a
//!   body that declares 1 GiB, and nothing grows beyond what arrived.
//! - `a_timeout_between_frames_gives_the_allocation_back`: a peer that goes quiet between
//!   frames leaves the reader holding no large allocation.
//! - `timeouts_and_short_reads_inside_reused_buffers_lose_nothing`: reads of a few KiB and
//!   socket timeouts at many points, while bodies of changing sizes go through the reused
//!   allocation, give every frame intact.

use std::io::{self, Cursor, Read, Write};
use std::net::{TcpListener, TcpStream};

use bytes::BytesMut;
use lhp_blocking::{Error, FrameReader};
use lhp_codec::{Encoder, Frame, Header, Limits, Profile};
use lhp_testkit::alloc::count_large;

#[global_allocator]
static ALLOC: lhp_testkit::alloc::Counting = lhp_testkit::alloc::Counting;

use lhp_testkit::{encode_all as wire, patterned_frame as frame};

fn read(r: &mut FrameReader<impl Read>) -> Frame {
    match r.read_frame() {
        Ok(Some(f)) => f,
        other => panic!("expected a frame, got {other:?}"),
    }
}

#[test]
fn dropped_large_frames_give_their_allocation_to_the_next() {
    let want: Vec<Frame> = (0..8).map(|i| frame(4 << 20, i)).collect();
    let mut r = FrameReader::new(Cursor::new(wire(&want)));
    let first = read(&mut r);
    assert_eq!(first, want[0]);
    let at = first.body.as_ptr();
    drop(first);
    let (places, allocs) = count_large(|| {
        let mut places = Vec::new();
        for f in &want[1..] {
            let got = read(&mut r);
            assert_eq!(&got, f);
            places.push(got.body.as_ptr());
        }
        places
    });
    assert_eq!(
        allocs, 0,
        "7 dropped 4 MiB frames in a row made {allocs} large allocations"
    );
    assert!(places.iter().all(|&p| p == at), "{at:?} then {places:?}");
    assert!(r.read_frame().unwrap().is_none());
}

#[test]
fn held_frames_are_never_written_to() {
    // Smaller after larger, larger after smaller, and a run of equal ones.
    let sizes = [
        3 << 20,
        1 << 20,
        5 << 20,
        300 << 10,
        2 << 20,
        2 << 20,
        2 << 20,
    ];
    let want: Vec<Frame> = sizes
        .iter()
        .zip(1u8..)
        .map(|(&len, seed)| frame(len, seed))
        .collect();
    // Hold every frame: each needs memory of its own.
    let mut r = FrameReader::new(Cursor::new(wire(&want)));
    let held: Vec<Frame> = want.iter().map(|_| read(&mut r)).collect();
    assert_eq!(held, want);
    // Hold every other frame, drop the rest as soon as they are read.
    let mut r = FrameReader::new(Cursor::new(wire(&want)));
    let mut kept = Vec::new();
    for (i, f) in want.iter().enumerate() {
        let got = read(&mut r);
        assert_eq!(&got, f);
        if i % 2 == 0 {
            kept.push(got);
        }
    }
    let expected: Vec<&Frame> = want.iter().step_by(2).collect();
    assert_eq!(kept.iter().collect::<Vec<_>>(), expected);
    // A slice of a body keeps its allocation from being reused, too.
    let mut r = FrameReader::new(Cursor::new(wire(&want)));
    let part = read(&mut r).body.slice(100..200);
    for f in &want[1..] {
        assert_eq!(&read(&mut r), f);
    }
    assert_eq!(part, want[0].body.slice(100..200));
}

#[test]
fn loopback_large_frames_reuse_one_allocation() {
    const COUNT: u8 = 6;
    let want: Vec<Frame> = (0..COUNT).map(|i| frame(8 << 20, i)).collect();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = want.clone();
    let sender = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&wire(&sent)).unwrap();
    });
    let (s, _) = listener.accept().unwrap();
    let mut r = FrameReader::new(s);
    assert_eq!(read(&mut r), want[0]);
    let (_, allocs) = count_large(|| {
        for f in &want[1..] {
            assert_eq!(&read(&mut r), f);
        }
    });
    assert_eq!(
        allocs, 0,
        "{allocs} large allocations after the first frame"
    );
    assert!(r.read_frame().unwrap().is_none());
    sender.join().unwrap();
}

#[test]
fn a_huge_declaration_after_a_large_frame_allocates_nothing() {
    let mut stream = wire(&[frame(4 << 20, 1)]);
    let mut h = Header::with_kind("put");
    h.set_body_len(1 << 30);
    let mut head = BytesMut::new();
    Encoder::new().encode_head(&h, 1 << 30, &mut head).unwrap();
    stream.extend_from_slice(&head);
    stream.extend_from_slice(&[7u8; 3 << 20]);
    let limits = Limits::new().with_max_body_len(2 << 30);
    let mut r = FrameReader::with(Cursor::new(stream), Profile::Lhp1, limits);
    drop(read(&mut r));
    let (result, allocs) = count_large(|| r.read_frame());
    match result {
        Err(Error::Decode(e)) => {
            assert_eq!(e.code(), "unexpected_eof");
            assert_eq!(e.missing(), Some((1 << 30) - (3 << 20)));
        }
        other => panic!("expected unexpected_eof, got {other:?}"),
    }
    assert_eq!(
        allocs, 0,
        "a 1 GiB declaration made {allocs} large allocations"
    );
}

/// A reader that returns at most `step` octets per read and fails every `fail_every`-th read
/// with `WouldBlock` (what a socket read timeout gives).
struct Flaky {
    data: Vec<u8>,
    pos: usize,
    step: usize,
    reads: usize,
    fail_every: usize,
}

impl Read for Flaky {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.reads += 1;
        if self.reads % self.fail_every == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.step.min(out.len()).min(self.data.len() - self.pos);
        out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn timeouts_and_short_reads_inside_reused_buffers_lose_nothing() {
    let sizes = [2 << 20, 3 << 20, 1 << 20, 3 << 20, 400 << 10, 10, 2 << 20];
    let want: Vec<Frame> = sizes
        .iter()
        .zip(1u8..)
        .map(|(&len, seed)| frame(len, seed))
        .collect();
    for (step, fail_every) in [(100_000, 3), (7_000, 50), (1 << 20, 2)] {
        let mut r = FrameReader::new(Flaky {
            data: wire(&want),
            pos: 0,
            step,
            reads: 0,
            fail_every,
        });
        for f in &want {
            let got = loop {
                match r.read_frame() {
                    Ok(Some(got)) => break got,
                    Ok(None) => panic!("early end"),
                    Err(Error::Timeout(_)) => {}
                    Err(e) => panic!("{e}"),
                }
            };
            assert!(&got == f, "step {step}, fail every {fail_every}");
        }
        let end = loop {
            match r.read_frame() {
                Err(Error::Timeout(_)) => {}
                other => break other,
            }
        };
        assert!(matches!(end, Ok(None)), "{end:?}");
    }
}

/// A reader that stops once at `pause_at` with `WouldBlock` (what a socket read timeout
/// gives), then goes on.
struct Pausing {
    data: Vec<u8>,
    pos: usize,
    pause_at: Option<usize>,
}

impl Read for Pausing {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let end = match self.pause_at {
            Some(at) if self.pos == at => {
                self.pause_at = None;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Some(at) => at,
            None => self.data.len(),
        };
        let n = out.len().min(end - self.pos);
        out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn a_timeout_between_frames_gives_the_allocation_back() {
    let want: Vec<Frame> = (0..3).map(|i| frame(4 << 20, i)).collect();
    let first_end = wire(&want[..1]).len();
    for pause in [false, true] {
        let mut r = FrameReader::new(Pausing {
            data: wire(&want),
            pos: 0,
            pause_at: pause.then_some(first_end),
        });
        assert_eq!(read(&mut r), want[0]);
        if pause {
            assert!(matches!(r.read_frame(), Err(Error::Timeout(_))));
        }
        let (got, allocs) = count_large(|| read(&mut r));
        assert_eq!(got, want[1]);
        // Without the pause the allocation is reused; after it, it was given back.
        assert_eq!(
            allocs > 0,
            pause,
            "pause {pause}: {allocs} large allocations"
        );
    }
}
