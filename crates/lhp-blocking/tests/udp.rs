//! LHP/1 over UDP on `std::net` (`spec/lhp-udp.md`): round trips, `id` matching, retries, and
//! hostile input (oversized datagrams, huge claims, floods from many ports).

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::BytesMut;
use lhp_blocking::udp::{UdpClient, UdpError, UdpServer};
use lhp_codec::datagram::{error_code, DatagramConfig, DatagramStats, Disposition, Retry};
use lhp_codec::{Frame, Header, Value};

#[global_allocator]
static ALLOC: lhp_testkit::alloc::Counting = lhp_testkit::alloc::Counting;

fn echo(f: Frame, _from: SocketAddr) -> Option<Frame> {
    Some(f)
}

struct Running {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<DatagramStats>,
}

impl Running {
    fn stop(self) -> DatagramStats {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

fn spawn(config: DatagramConfig) -> Running {
    let mut server = UdpServer::bind("127.0.0.1:0", config).unwrap();
    let addr = server.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::spawn(move || {
        server.serve_until(&s, echo).unwrap();
        server.stats()
    });
    Running { addr, stop, thread }
}

fn frame_bytes(header: &str, body: &[u8]) -> Vec<u8> {
    let mut v = (header.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(body);
    v
}

/// Sends `datagram` from a fresh socket and returns the reply, if any, within 500 ms.
fn exchange(server: SocketAddr, datagram: &[u8]) -> Option<Vec<u8>> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    s.send_to(datagram, server).unwrap();
    let mut buf = vec![0u8; 70_000];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

fn decoded_error(reply: &[u8]) -> (String, u64, Option<u64>) {
    let f = DatagramConfig::new().codec().decode(reply).unwrap();
    assert!(f.header.id().is_none(), "a datagram error carries no id");
    (
        error_code(&f.header).unwrap().to_owned(),
        f.header.get("offset").and_then(Value::as_u64).unwrap(),
        f.header.get("missing").and_then(Value::as_u64),
    )
}

#[test]
fn echo_round_trip() {
    let server = spawn(DatagramConfig::new());
    let client = UdpClient::connect(server.addr, DatagramConfig::new()).unwrap();
    let mut h = Header::with_kind("echo");
    h.insert("note", "粘包");
    let body = vec![7u8; 2000];
    let reply = client
        .request(h, body.clone().into(), Retry::default())
        .unwrap();
    assert_eq!(reply.header.kind(), Some("echo"));
    assert_eq!(reply.header.id(), Some(1));
    assert_eq!(&reply.body[..], &body[..]);
    let stats = server.stop();
    assert_eq!(stats.replied, 1);
}

#[test]
fn client_discards_replies_with_other_ids() {
    let fake = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = fake.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let mut buf = vec![0u8; 70_000];
        let (n, from) = fake.recv_from(&mut buf).unwrap();
        let req = DatagramConfig::new().codec().decode(&buf[..n]).unwrap();
        let id = req.header.id().unwrap();
        let codec = DatagramConfig::new().codec();
        // A late reply to another request, a bad datagram, then the reply.
        for (reply_id, body) in [(id + 100, "stale"), (id, "right")] {
            let mut h = Header::with_kind("echo");
            h.set_id(reply_id);
            let mut out = BytesMut::new();
            codec.encode(&Frame::new(h, body.into()), &mut out).unwrap();
            fake.send_to(&out, from).unwrap();
            if reply_id != id {
                fake.send_to(b"\0\0\0\x02{}{}", from).unwrap();
            }
        }
    });
    let client = UdpClient::connect(addr, DatagramConfig::new()).unwrap();
    let reply = client
        .request(Header::with_kind("echo"), "x".into(), Retry::default())
        .unwrap();
    assert_eq!(&reply.body[..], b"right");
    t.join().unwrap();
}

#[test]
fn client_times_out_when_nobody_listens() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    silent
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let client = UdpClient::connect(silent.local_addr().unwrap(), DatagramConfig::new()).unwrap();
    let retry = Retry {
        timeout: Duration::from_millis(50),
        tries: 3,
    };
    let count = |silent: &UdpSocket| {
        let mut buf = [0u8; 256];
        let mut n = 0;
        while silent.recv_from(&mut buf).is_ok() {
            n += 1;
        }
        n
    };
    // §5.2: echo is idempotent, so it is sent three times.
    let e = client
        .request(Header::with_kind("echo"), "x".into(), retry)
        .unwrap_err();
    assert!(matches!(e, UdpError::Timeout { tries: 3, .. }), "{e}");
    assert_eq!(count(&silent), 3);
    // `put` is not: sent once.
    let e = client
        .request(Header::with_kind("put"), "x".into(), retry)
        .unwrap_err();
    assert!(matches!(e, UdpError::Timeout { tries: 1, .. }), "{e}");
    assert_eq!(count(&silent), 1);
    // Nobody at all at the address: the system says so (ICMP port unreachable on loopback).
    let gone = silent.local_addr().unwrap();
    drop(silent);
    let client = UdpClient::connect(gone, DatagramConfig::new()).unwrap();
    let e = client
        .request(Header::with_kind("echo"), "x".into(), retry)
        .unwrap_err();
    assert!(
        matches!(e, UdpError::PeerUnreachable(_) | UdpError::Timeout { .. }),
        "{e}"
    );
}

#[test]
fn hostile_oversized_datagrams() {
    let cfg = DatagramConfig::new().with_max_datagram_len(1024);
    let server = spawn(cfg);
    // The seeds' 2,000-octet message, as one frame: refused whole, not cut to 1024.
    let big = frame_bytes(r#"{"kind":"echo","body_len":2000}"#, &[b'x'; 2000]);
    let reply = exchange(server.addr, &big).expect("an error reply");
    assert!(reply.len() <= 3 * 1025);
    assert_eq!(
        decoded_error(&reply),
        ("datagram_too_large".into(), 1024, None)
    );
    // Through the client API: a rejection naming the code.
    let client = UdpClient::connect(server.addr, cfg).unwrap();
    client.send_raw(&big).unwrap();
    let f = client.recv(Duration::from_secs(2)).unwrap();
    assert_eq!(error_code(&f.header), Some("datagram_too_large"));
    // The largest datagram UDP can carry over IPv4, full of garbage.
    let reply = exchange(server.addr, &vec![0xffu8; 65_507]).expect("an error reply");
    assert_eq!(decoded_error(&reply).0, "datagram_too_large");
    // A 1024-octet frame still passes.
    let ok = frame_bytes(r#"{"body_len":1003}"#, &[b'a'; 1003]);
    assert_eq!(ok.len(), 1024);
    assert_eq!(exchange(server.addr, &ok).unwrap(), ok);
    let stats = server.stop();
    assert!(stats.max_ratio_milli <= 3000, "{stats:?}");
}

#[test]
fn hostile_huge_body_claims() {
    let mut server = UdpServer::bind("127.0.0.1:0", DatagramConfig::new()).unwrap();
    server
        .socket()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let addr = server.local_addr().unwrap();
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    let claims: Vec<Vec<u8>> = vec![
        frame_bytes(r#"{"body_len":9007199254740991}"#, b""),
        frame_bytes(r#"{"body_len":65502}"#, b""),
        // Padded, so that the error frame (with `missing`) fits 3× the request (§6).
        frame_bytes(
            r#"{"body_len":60000,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#,
            b"x",
        ),
        b"\xff\xff\xff\xff{}".to_vec(),
        b"\x7f\xff\xff\xff".to_vec(),
    ];
    // Queue 20 rounds in the socket buffer, then serve them on this thread while counting
    // large allocations: none may happen (claims never size a buffer, §4.1).
    for _ in 0..20 {
        for c in &claims {
            attacker.send_to(c, addr).unwrap();
        }
    }
    let (dispositions, large) = lhp_testkit::alloc::count_large(|| {
        let mut d = Vec::new();
        while let Some(x) = server.serve_one(&mut echo).unwrap() {
            d.push(x);
        }
        d
    });
    assert_eq!(large, 0, "a claim made the server allocate ≥ 1 MiB");
    assert!(dispositions.len() >= 50, "{}", dispositions.len());
    let refused = dispositions
        .iter()
        .filter(|d| matches!(d, Disposition::Refused(_)))
        .count();
    assert!(refused > 0 && server.stats().replied == 0);
    // What the attacker got back: each reply decodes to the expected error, within 3×.
    attacker
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = vec![0u8; 70_000];
    let mut codes = std::collections::BTreeSet::new();
    while let Ok(n) = attacker.recv(&mut buf) {
        let (code, _, missing) = decoded_error(&buf[..n]);
        if code == "unexpected_eof" {
            assert_eq!(missing, Some(59_999));
        }
        codes.insert(code);
    }
    assert!(codes.contains("body_too_large"), "{codes:?}");
    assert!(codes.contains("unexpected_eof"), "{codes:?}");
    assert!(server.stats().max_ratio_milli <= 3000);
}

#[test]
fn hostile_flood_from_many_ports() {
    let cfg = DatagramConfig::new().with_rate_slots(1 << 16);
    let server = spawn(cfg);
    let stop = Arc::new(AtomicBool::new(false));
    // 64 flooders, each from its own port, send as fast as they can.
    let mut flooders = Vec::new();
    // 64 source ports (8 threads of 8 sockets), each sending 4 datagrams per millisecond
    // (16 times its sustained rate) until the normal client is done. The pause keeps the
    // flooders from taking every CPU of a small machine from the server under test.
    for t in 0..8u32 {
        let stop = stop.clone();
        let addr = server.addr;
        flooders.push(std::thread::spawn(move || {
            let sockets: Vec<_> = (0..8)
                .map(|_| {
                    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                    s.set_nonblocking(true).unwrap();
                    s
                })
                .collect();
            let d = frame_bytes(&format!(r#"{{"kind":"echo","id":{t}}}"#), b"");
            let mut sent = 0u64;
            let mut worst = 0usize;
            let mut buf = vec![0u8; 70_000];
            while !stop.load(Ordering::Relaxed) {
                for s in &sockets {
                    for _ in 0..4 {
                        if s.send_to(&d, addr).is_ok() {
                            sent += 1;
                        }
                    }
                    while let Ok(n) = s.recv(&mut buf) {
                        worst = worst.max(n);
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            assert!(
                worst <= 3 * d.len(),
                "a reply of {worst} to {} octets",
                d.len()
            );
            sent
        }));
    }
    std::thread::sleep(Duration::from_millis(100));
    // A normal client keeps being answered during the flood.
    let client = UdpClient::connect(server.addr, cfg).unwrap();
    let retry = Retry {
        timeout: Duration::from_millis(200),
        tries: 10,
    };
    for i in 0..10u32 {
        let body = format!("normal {i}");
        let reply = client
            .request(Header::with_kind("echo"), body.clone().into(), retry)
            .unwrap_or_else(|e| panic!("request {i} during the flood: {e}"));
        assert_eq!(&reply.body[..], body.as_bytes());
    }
    stop.store(true, Ordering::Relaxed);
    let sent: u64 = flooders.into_iter().map(|t| t.join().unwrap()).sum();
    let stats = server.stop();
    assert!(
        sent > 64 * 64,
        "the flood was too small to test anything: {sent}"
    );
    assert!(stats.rate_limited > 0, "{stats:?}");
    assert!(stats.max_ratio_milli <= 3000, "{stats:?}");
}
