//! The shared loopback battery (`lhp-testkit`) against the blocking echo server. The memory
//! case is in `tests/memory.rs`, its own process, so other tests do not disturb its RSS.

use std::time::{Duration, Instant};

use lhp_blocking::{Config, EchoHandler, Server, ServerThread};

/// The read timeout of the servers under test: short, so the slow-peer case is quick.
const READ_TIMEOUT: Duration = Duration::from_millis(500);

fn echo_server(config: &Config) -> ServerThread {
    Server::bind("127.0.0.1:0", *config, EchoHandler::new())
        .and_then(Server::spawn)
        .unwrap_or_else(|e| panic!("cannot start the echo server: {e}"))
}

/// Default limits and timeouts.
fn default_server() -> ServerThread {
    let mut config = Config::new();
    config.set_shutdown_grace(Duration::from_secs(1));
    echo_server(&config)
}

/// Default limits, a short read timeout.
fn impatient_server() -> ServerThread {
    let mut config = Config::new();
    config
        .set_read_timeout(READ_TIMEOUT)
        .set_shutdown_grace(Duration::from_secs(1));
    echo_server(&config)
}

/// Waits up to 5 s for the server to have no connection left.
fn wait_for_no_connections(server: &ServerThread) {
    let end = Instant::now() + Duration::from_secs(5);
    while server.connections() > 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        server.connections(),
        0,
        "connections still being served after their peers left"
    );
}

#[test]
fn vectors_at_split_points() {
    let server = default_server();
    lhp_testkit::vectors_at_split_points(server.local_addr());
    server.shutdown().unwrap();
}

#[test]
fn all_vectors_coalesced() {
    let server = default_server();
    lhp_testkit::all_vectors_coalesced(server.local_addr());
    server.shutdown().unwrap();
}

#[test]
fn concurrent_random_frames() {
    let server = default_server();
    let start = Instant::now();
    lhp_testkit::concurrent_random_frames(server.local_addr(), 200, 500, 0x1a9_2024);
    eprintln!(
        "blocking: 200 clients x 500 random frames in {:?}",
        start.elapsed()
    );
    wait_for_no_connections(&server);
    server.shutdown().unwrap();
}

#[test]
fn hostile_peers() {
    let server = impatient_server();
    lhp_testkit::hostile_peers(server.local_addr(), READ_TIMEOUT);
    wait_for_no_connections(&server);
    server.shutdown().unwrap();
}
