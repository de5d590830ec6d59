//! Interoperability with the blocking engine, byte for byte: the tokio client against the
//! blocking echo server, and the blocking client against the tokio echo server, with bodies
//! of 0 B, 1 B, 1 KiB, 1 MiB and 64 MiB, each carrying and checked by its sha256.

mod common;

use std::time::Duration;

use bytes::Bytes;
use lhp_codec::{Frame, Header};
use lhp_tokio::{Client, Config};
use sha2::{Digest, Sha256};

const SIZES: [usize; 5] = [0, 1, 1 << 10, 1 << 20, 64 << 20];

/// An echo frame whose body is `len` pseudo-random octets and whose header carries their
/// sha256 (which every receiver verifies, §6).
fn frame_of(len: usize, seed: u64) -> (Frame, [u8; 32]) {
    let mut x = seed | 1;
    let body: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let digest: [u8; 32] = Sha256::digest(&body).into();
    let mut h = Header::with_kind("echo");
    h.insert("note", "interop ✓").set_sha256(&digest);
    (Frame::new(h, Bytes::from(body)), digest)
}

fn check(reply: &Frame, sent: &Frame, digest: &[u8; 32], what: &str) {
    let got: [u8; 32] = Sha256::digest(&reply.body).into();
    assert_eq!(reply.body.len(), sent.body.len(), "{what}: body length");
    assert_eq!(&got, digest, "{what}: body sha256");
    assert_eq!(
        reply.header.members(),
        sent.header.members(),
        "{what}: header members"
    );
    let names: Vec<_> = reply.header.members().keys().collect();
    let want: Vec<_> = sent.header.members().keys().collect();
    assert_eq!(names, want, "{what}: member order");
}

#[test]
fn tokio_client_to_blocking_server() {
    let server = lhp_blocking::Server::bind(
        "127.0.0.1:0",
        lhp_blocking::Config::new(),
        lhp_blocking::EchoHandler::new(),
    )
    .expect("bind")
    .spawn()
    .expect("spawn");
    let addr = server.local_addr();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = Client::connect(addr, Duration::from_secs(10))
            .await
            .expect("connect");
        for (i, len) in SIZES.into_iter().enumerate() {
            let (mut frame, digest) = frame_of(len, i as u64 + 1);
            let reply = client.request(frame.clone()).await.expect("reply");
            // The client set `id`; the sent frame had it too.
            frame.header.set_id(reply.header.id().expect("id echoed"));
            check(
                &reply,
                &frame,
                &digest,
                &format!("tokio → blocking, {len} octets"),
            );
        }
    });
    server.shutdown().expect("blocking server shuts down");
}

#[test]
fn blocking_client_to_tokio_server() {
    let server = common::start_echo(Config::new());
    let mut client = lhp_blocking::Client::connect(server.addr).expect("connect");
    for (i, len) in SIZES.into_iter().enumerate() {
        let (mut frame, digest) = frame_of(len, i as u64 + 100);
        frame.header.set_id(i as u64);
        let reply = client.request(&frame).expect("reply");
        check(
            &reply,
            &frame,
            &digest,
            &format!("blocking → tokio, {len} octets"),
        );
    }
}
