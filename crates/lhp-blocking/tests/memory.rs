//! Server memory with many connections that declare 1 GiB bodies and send nothing more. In its
//! own test binary so that no other test shares the process whose RSS is measured.

use std::time::Duration;

use lhp_blocking::{Config, EchoHandler, Server};
use lhp_codec::Limits;

#[test]
fn idle_large_declarations_hold_little_memory() {
    const CONNS: usize = 500;
    /// The issue allows "a few MiB per connection"; this engine should need far less.
    const MAX_GROWTH_PER_CONN: u64 = 1 << 20;
    let mut config = Config::new();
    config
        .set_limits(Limits::new().with_max_body_len(4 << 30))
        .set_read_timeout(Duration::from_secs(120))
        .set_idle_timeout(Duration::from_secs(120))
        .set_shutdown_grace(Duration::from_millis(100));
    let server = Server::bind("127.0.0.1:0", config, EchoHandler::new())
        .and_then(Server::spawn)
        .unwrap_or_else(|e| panic!("cannot start the echo server: {e}"));
    // Warm up: a few connections so one-time allocations are not charged to the test.
    drop(lhp_testkit::idle_large_declarations(server.local_addr(), 4));
    std::thread::sleep(Duration::from_millis(100));
    let Some(before) = lhp_testkit::rss_bytes() else {
        eprintln!(
            "SKIPPED idle_large_declarations_hold_little_memory: /proc/self/status is not readable"
        );
        return;
    };
    let held = lhp_testkit::idle_large_declarations(server.local_addr(), CONNS);
    let after = lhp_testkit::rss_bytes().unwrap_or(before);
    let growth = after.saturating_sub(before);
    eprintln!(
        "blocking: {} connections declaring 1 GiB bodies held ({} busy); RSS {} KiB -> {} KiB, \
         growth {} KiB = {} KiB per connection",
        held.held(),
        held.busy(),
        before >> 10,
        after >> 10,
        growth >> 10,
        (growth / CONNS as u64) >> 10
    );
    assert_eq!(
        held.held(),
        CONNS,
        "max_connections is 1024: none should be busy"
    );
    assert!(
        growth < MAX_GROWTH_PER_CONN * CONNS as u64,
        "RSS grew by {growth} octets for {CONNS} idle connections"
    );
    drop(held);
    server.shutdown().unwrap();
}
