//! lhp-tokio's `FrameReader`: whole large frames reuse one allocation (issue 8: no per-frame
//! allocation or page faulting of large bodies), measured with a counting global allocator.
//!
//! The allocator counts per thread, and only inside [`count_large`], so tests running in
//! parallel (and the harness) cannot disturb each other's numbers; the tests run on a
//! current-thread runtime, so every read happens on the counted thread. It counts allocations
//! (and growing reallocations) of at least [`LARGE`](lhp_testkit::alloc::LARGE) octets: the bodies these tests read are
//! larger, every other allocation on the way is far smaller.
//!
//! - `dropped_large_frames_give_their_allocation_to_the_next`: after the first frame, reading
//!   and dropping large frames allocates nothing large, and each body lands where the last was.
//! - `held_frames_are_never_written_to`: frames the caller keeps (or a slice of one) stay
//!   intact while later ones are read, whatever their sizes.
//! - `loopback_large_frames_reuse_one_allocation`: the same over a TCP socket, whose reads
//!   return what happens to have arrived.
//! - `release_buffer_gives_the_allocation_back`: after `release_buffer` the next large frame
//!   needs a new allocation.
//! - `short_reads_inside_reused_buffers_lose_nothing`: reads of a few KiB, with `Pending`
//!   between them, while bodies of changing sizes go through the reused allocation, give
//!   every frame intact.

use std::io::Cursor;
use std::pin::Pin;
use std::task::{Context, Poll};

use lhp_codec::Frame;
use lhp_testkit::alloc::count_large;
use lhp_tokio::FrameReader;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static ALLOC: lhp_testkit::alloc::Counting = lhp_testkit::alloc::Counting;

use lhp_testkit::{encode_all as wire, patterned_frame as frame};

async fn read(r: &mut FrameReader<impl AsyncRead + Unpin>) -> Frame {
    match r.read_frame().await {
        Ok(Some(f)) => f,
        other => panic!("expected a frame, got {other:?}"),
    }
}

/// Runs `f` to completion on this thread, counting the large allocations it makes.
async fn count_large_async<T>(f: impl std::future::Future<Output = T>) -> (T, usize) {
    let mut f = std::pin::pin!(f);
    let mut out = None;
    let mut allocs = 0;
    // Count only while the future is polled, not while the runtime waits for the socket.
    std::future::poll_fn(|cx| {
        let (poll, n) = count_large(|| f.as_mut().poll(cx));
        allocs += n;
        match poll {
            std::task::Poll::Ready(v) => {
                out = Some(v);
                std::task::Poll::Ready(())
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    })
    .await;
    match out {
        Some(v) => (v, allocs),
        None => unreachable!("poll_fn returned only once the future was ready"),
    }
}

#[tokio::test]
async fn dropped_large_frames_give_their_allocation_to_the_next() {
    let want: Vec<Frame> = (0..8).map(|i| frame(4 << 20, i)).collect();
    let mut r = FrameReader::new(Cursor::new(wire(&want)));
    let first = read(&mut r).await;
    assert_eq!(first, want[0]);
    let at = first.body.as_ptr();
    drop(first);
    let (places, allocs) = count_large_async(async {
        let mut places = Vec::new();
        for f in &want[1..] {
            let got = read(&mut r).await;
            assert_eq!(&got, f);
            places.push(got.body.as_ptr());
        }
        places
    })
    .await;
    assert_eq!(
        allocs, 0,
        "7 dropped 4 MiB frames in a row made {allocs} large allocations"
    );
    assert!(places.iter().all(|&p| p == at), "{at:?} then {places:?}");
    assert!(r.read_frame().await.unwrap().is_none());
}

#[tokio::test]
async fn held_frames_are_never_written_to() {
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
    let mut held = Vec::new();
    for _ in &want {
        held.push(read(&mut r).await);
    }
    assert_eq!(held, want);
    // Hold every other frame, drop the rest as soon as they are read.
    let mut r = FrameReader::new(Cursor::new(wire(&want)));
    let mut kept = Vec::new();
    for (i, f) in want.iter().enumerate() {
        let got = read(&mut r).await;
        assert_eq!(&got, f);
        if i % 2 == 0 {
            kept.push(got);
        }
    }
    let expected: Vec<&Frame> = want.iter().step_by(2).collect();
    assert_eq!(kept.iter().collect::<Vec<_>>(), expected);
    // A slice of a body keeps its allocation from being reused, too.
    let mut r = FrameReader::new(Cursor::new(wire(&want)));
    let part = read(&mut r).await.body.slice(100..200);
    for f in &want[1..] {
        assert_eq!(&read(&mut r).await, f);
    }
    assert_eq!(part, want[0].body.slice(100..200));
}

#[tokio::test]
async fn loopback_large_frames_reuse_one_allocation() {
    const COUNT: u8 = 6;
    let want: Vec<Frame> = (0..COUNT).map(|i| frame(8 << 20, i)).collect();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = wire(&want);
    let sender = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(&sent).await.unwrap();
        });
    });
    let (s, _) = listener.accept().await.unwrap();
    let mut r = FrameReader::new(s);
    assert_eq!(read(&mut r).await, want[0]);
    let ((), allocs) = count_large_async(async {
        for f in &want[1..] {
            assert_eq!(&read(&mut r).await, f);
        }
    })
    .await;
    assert_eq!(
        allocs, 0,
        "{allocs} large allocations after the first frame"
    );
    assert!(r.read_frame().await.unwrap().is_none());
    sender.join().unwrap();
}

#[tokio::test]
async fn release_buffer_gives_the_allocation_back() {
    let want: Vec<Frame> = (0..3).map(|i| frame(4 << 20, i)).collect();
    let mut r = FrameReader::new(Cursor::new(wire(&want)));
    assert_eq!(read(&mut r).await, want[0]);
    let (_, kept) = count_large_async(read(&mut r)).await;
    assert_eq!(
        kept, 0,
        "the second frame should reuse the first one's allocation"
    );
    r.release_buffer();
    let (got, allocs) = count_large_async(read(&mut r)).await;
    assert_eq!(got, want[2]);
    assert!(
        allocs > 0,
        "after release_buffer the allocation should be gone"
    );
}

/// An `AsyncRead` that hands out at most `step` octets per ready poll and answers every other
/// poll with `Pending` (waking itself at once).
struct Trickle {
    data: Vec<u8>,
    pos: usize,
    step: usize,
    pend: bool,
}

impl AsyncRead for Trickle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.pend = !self.pend;
        if self.pend {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let n = self
            .step
            .min(out.remaining())
            .min(self.data.len() - self.pos);
        let pos = self.pos;
        out.put_slice(&self.data[pos..pos + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn short_reads_inside_reused_buffers_lose_nothing() {
    let sizes = [2 << 20, 3 << 20, 1 << 20, 3 << 20, 400 << 10, 10, 2 << 20];
    let want: Vec<Frame> = sizes
        .iter()
        .zip(1u8..)
        .map(|(&len, seed)| frame(len, seed))
        .collect();
    for step in [100_000, 7_000, 1 << 20] {
        let mut r = FrameReader::new(Trickle {
            data: wire(&want),
            pos: 0,
            step,
            pend: false,
        });
        for f in &want {
            let got = read(&mut r).await;
            assert!(&got == f, "step {step}");
        }
        assert!(r.read_frame().await.unwrap().is_none());
    }
}
