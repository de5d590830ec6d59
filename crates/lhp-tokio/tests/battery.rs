//! The shared loopback battery (`lhp-testkit`) against the tokio echo server.

mod common;

use std::sync::{RwLock, RwLockReadGuard};
use std::time::Duration;

use lhp_codec::Limits;
use lhp_tokio::Config;

use common::start_echo;

/// The memory test measures the whole process's RSS: it holds this for writing, so the other
/// tests (200 concurrent clients allocate a lot) never run while it measures.
static MEASURING: RwLock<()> = RwLock::new(());

fn alongside_others() -> RwLockReadGuard<'static, ()> {
    MEASURING.read().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn battery_vectors_at_split_points() {
    let _running = alongside_others();
    let server = start_echo(Config::new());
    lhp_testkit::vectors_at_split_points(server.addr);
}

#[test]
fn battery_all_vectors_coalesced() {
    let _running = alongside_others();
    let server = start_echo(Config::new());
    lhp_testkit::all_vectors_coalesced(server.addr);
}

#[test]
fn battery_concurrent_random_frames() {
    let _running = alongside_others();
    let server = start_echo(Config::new());
    lhp_testkit::concurrent_random_frames(server.addr, 200, 500, 0x1f2e3d);
}

#[test]
fn battery_hostile_peers() {
    let _running = alongside_others();
    let read_timeout = Duration::from_millis(500);
    let mut config = Config::new();
    config.set_read_timeout(read_timeout);
    let server = start_echo(config);
    lhp_testkit::hostile_peers(server.addr, read_timeout);
}

#[test]
fn battery_idle_large_declarations_hold_little_memory() {
    let _alone = MEASURING.write().unwrap_or_else(|p| p.into_inner());
    let conns = 500;
    let mut config = Config::new();
    config.set_limits(Limits::new().with_max_body_len(1 << 30));
    let server = start_echo(config);
    let before = lhp_testkit::rss_bytes();
    let held = lhp_testkit::idle_large_declarations(server.addr, conns);
    let after = lhp_testkit::rss_bytes();
    assert_eq!(held.held() + held.busy(), conns);
    assert_eq!(
        held.busy(),
        0,
        "the default limit admits {conns} connections"
    );
    match (before, after) {
        (Some(before), Some(after)) => {
            let per = after.saturating_sub(before) / conns as u64;
            // Each holds at most a read chunk (8 KiB) and its task: nowhere near 1 GiB.
            assert!(
                per < 64 << 10,
                "server grew by {per} octets per held connection"
            );
            eprintln!("idle large declarations: {per} octets of RSS per held connection");
        }
        _ => eprintln!("SKIPPING the memory assertion: no /proc/self/statm on this system"),
    }
    drop(held);
}
