//! A counting global allocator for tests that bound allocations (spec §5: buffers grow with
//! octets received, never with a declared length).
//!
//! It counts per thread, and only inside [`count_large`], so tests running in parallel (and
//! the test harness) cannot disturb each other's numbers. It counts allocations, and growing
//! reallocations, of at least [`LARGE`] octets. A test binary installs it with:
//!
//! ```text
//! #[global_allocator]
//! static ALLOC: lhp_testkit::alloc::Counting = lhp_testkit::alloc::Counting;
//! ```
//!
//! (Both engines' `tests/reuse.rs` do.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Allocations of at least this many octets are counted.
pub const LARGE: usize = 1 << 20;

/// The counting allocator: [`System`], plus per-thread accounting.
pub struct Counting;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LARGE_ALLOCS: Cell<usize> = const { Cell::new(0) };
    static ALL_TRACKING: Cell<bool> = const { Cell::new(false) };
    static ALL_ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn account(size: usize) {
    if ALL_TRACKING.try_with(Cell::get).unwrap_or(false) {
        let _ = ALL_ALLOCS.try_with(|c| c.set(c.get() + 1));
    }
    // `try_with`: the thread may be tearing down its locals.
    if size >= LARGE && TRACKING.try_with(Cell::get).unwrap_or(false) {
        let _ = LARGE_ALLOCS.try_with(|c| c.set(c.get() + 1));
    }
}

// SAFETY: every call is forwarded to `System` unchanged; the accounting only touches
// const-initialised thread-locals, which neither allocate nor panic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        account(layout.size());
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        account(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            account(new_size);
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f`, returning its result and the large allocations this thread made meanwhile
/// (0 unless [`Counting`] is the global allocator).
pub fn count_large<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGE_ALLOCS.with(|c| c.set(0));
    TRACKING.with(|t| t.set(true));
    let out = f();
    TRACKING.with(|t| t.set(false));
    (out, LARGE_ALLOCS.with(Cell::get))
}

/// Runs `f`, returning its result and every allocation (and growing reallocation), of any
/// size, this thread made meanwhile (0 unless [`Counting`] is the global allocator). For
/// tests that prove a path allocates nothing per item in steady state.
pub fn count_all<T>(f: impl FnOnce() -> T) -> (T, usize) {
    ALL_ALLOCS.with(|c| c.set(0));
    ALL_TRACKING.with(|t| t.set(true));
    let out = f();
    ALL_TRACKING.with(|t| t.set(false));
    (out, ALL_ALLOCS.with(Cell::get))
}
