//! LHP/1 over UDP on tokio (`spec/lhp-udp.md`): the same tests as `lhp-blocking`'s
//! `tests/udp.rs` — round trips, `id` matching, retries, and hostile input (oversized
//! datagrams, huge claims, floods from many ports).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use lhp_codec::datagram::{error_code, DatagramConfig, DatagramStats, Disposition, Retry};
use lhp_codec::{Frame, Header, Value};
use lhp_tokio::udp::{UdpClient, UdpError, UdpServer};
use lhp_tokio::CancellationToken;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

#[global_allocator]
static ALLOC: lhp_testkit::alloc::Counting = lhp_testkit::alloc::Counting;

fn echo(f: Frame, _from: SocketAddr) -> Option<Frame> {
    Some(f)
}

struct Running {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<DatagramStats>,
}

impl Running {
    async fn stop(self) -> DatagramStats {
        self.stop.cancel();
        self.task.await.unwrap()
    }
}

async fn spawn(config: DatagramConfig) -> Running {
    let mut server = UdpServer::bind("127.0.0.1:0", config).await.unwrap();
    let addr = server.local_addr().unwrap();
    let stop = CancellationToken::new();
    let s = stop.clone();
    let task = tokio::spawn(async move {
        server.serve_until(s, echo).await.unwrap();
        server.stats()
    });
    Running { addr, stop, task }
}

fn frame_bytes(header: &str, body: &[u8]) -> Vec<u8> {
    let mut v = (header.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(body);
    v
}

async fn exchange(server: SocketAddr, datagram: &[u8]) -> Option<Vec<u8>> {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.send_to(datagram, server).await.unwrap();
    let mut buf = vec![0u8; 70_000];
    let (n, _) = tokio::time::timeout(Duration::from_millis(500), s.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
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

#[tokio::test]
async fn echo_round_trip() {
    let server = spawn(DatagramConfig::new()).await;
    let client = UdpClient::connect(server.addr, DatagramConfig::new())
        .await
        .unwrap();
    let mut h = Header::with_kind("echo");
    h.insert("note", "粘包");
    let body = vec![7u8; 2000];
    let reply = client
        .request(h, body.clone().into(), Retry::default())
        .await
        .unwrap();
    assert_eq!(reply.header.kind(), Some("echo"));
    assert_eq!(reply.header.id(), Some(1));
    assert_eq!(&reply.body[..], &body[..]);
    assert_eq!(server.stop().await.replied, 1);
}

#[tokio::test]
async fn client_discards_replies_with_other_ids() {
    let fake = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = fake.local_addr().unwrap();
    let t = tokio::spawn(async move {
        let mut buf = vec![0u8; 70_000];
        let (n, from) = fake.recv_from(&mut buf).await.unwrap();
        let codec = DatagramConfig::new().codec();
        let id = codec.decode(&buf[..n]).unwrap().header.id().unwrap();
        for (reply_id, body) in [(id + 100, "stale"), (id, "right")] {
            let mut h = Header::with_kind("echo");
            h.set_id(reply_id);
            let mut out = BytesMut::new();
            codec.encode(&Frame::new(h, body.into()), &mut out).unwrap();
            fake.send_to(&out, from).await.unwrap();
            if reply_id != id {
                fake.send_to(b"\0\0\0\x02{}{}", from).await.unwrap();
            }
        }
    });
    let client = UdpClient::connect(addr, DatagramConfig::new())
        .await
        .unwrap();
    let reply = client
        .request(Header::with_kind("echo"), "x".into(), Retry::default())
        .await
        .unwrap();
    assert_eq!(&reply.body[..], b"right");
    t.await.unwrap();
}

#[tokio::test]
async fn client_times_out_when_nobody_listens() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let client = UdpClient::connect(silent.local_addr().unwrap(), DatagramConfig::new())
        .await
        .unwrap();
    let retry = Retry {
        timeout: Duration::from_millis(50),
        tries: 3,
    };
    async fn count(silent: &UdpSocket) -> usize {
        let mut buf = [0u8; 256];
        let mut n = 0;
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(300), silent.recv_from(&mut buf)).await
        {
            n += 1;
        }
        n
    }
    let e = client
        .request(Header::with_kind("echo"), "x".into(), retry)
        .await
        .unwrap_err();
    assert!(matches!(e, UdpError::Timeout { tries: 3, .. }), "{e}");
    assert_eq!(count(&silent).await, 3);
    let e = client
        .request(Header::with_kind("put"), "x".into(), retry)
        .await
        .unwrap_err();
    assert!(matches!(e, UdpError::Timeout { tries: 1, .. }), "{e}");
    assert_eq!(count(&silent).await, 1);
    let gone = silent.local_addr().unwrap();
    drop(silent);
    let client = UdpClient::connect(gone, DatagramConfig::new())
        .await
        .unwrap();
    let e = client
        .request(Header::with_kind("echo"), "x".into(), retry)
        .await
        .unwrap_err();
    assert!(
        matches!(e, UdpError::PeerUnreachable(_) | UdpError::Timeout { .. }),
        "{e}"
    );
}

#[tokio::test]
async fn hostile_oversized_datagrams() {
    let cfg = DatagramConfig::new().with_max_datagram_len(1024);
    let server = spawn(cfg).await;
    let big = frame_bytes(r#"{"kind":"echo","body_len":2000}"#, &[b'x'; 2000]);
    let reply = exchange(server.addr, &big).await.expect("an error reply");
    assert!(reply.len() <= 3 * 1025);
    assert_eq!(
        decoded_error(&reply),
        ("datagram_too_large".into(), 1024, None)
    );
    let client = UdpClient::connect(server.addr, cfg).await.unwrap();
    client.send_raw(&big).await.unwrap();
    let f = client.recv(Duration::from_secs(2)).await.unwrap();
    assert_eq!(error_code(&f.header), Some("datagram_too_large"));
    let reply = exchange(server.addr, &vec![0xffu8; 65_507])
        .await
        .expect("an error reply");
    assert_eq!(decoded_error(&reply).0, "datagram_too_large");
    let ok = frame_bytes(r#"{"body_len":1003}"#, &[b'a'; 1003]);
    assert_eq!(exchange(server.addr, &ok).await.unwrap(), ok);
    let stats = server.stop().await;
    assert!(stats.max_ratio_milli <= 3000, "{stats:?}");
}

#[test]
fn hostile_huge_body_claims() {
    // A current-thread runtime on this thread, so the allocation count sees the server.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ((dispositions, stats, codes), large) = lhp_testkit::alloc::count_large(|| {
        rt.block_on(async {
            let mut server = UdpServer::bind("127.0.0.1:0", DatagramConfig::new())
                .await
                .unwrap();
            let addr = server.local_addr().unwrap();
            let attacker = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let claims: Vec<Vec<u8>> = vec![
                frame_bytes(r#"{"body_len":9007199254740991}"#, b""),
                frame_bytes(r#"{"body_len":65502}"#, b""),
                frame_bytes(
                    r#"{"body_len":60000,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#,
                    b"x",
                ),
                b"\xff\xff\xff\xff{}".to_vec(),
                b"\x7f\xff\xff\xff".to_vec(),
            ];
            for _ in 0..20 {
                for c in &claims {
                    attacker.send_to(c, addr).await.unwrap();
                }
            }
            let mut d = Vec::new();
            while let Ok(r) =
                tokio::time::timeout(Duration::from_millis(200), server.serve_one(&mut echo)).await
            {
                d.extend(r.unwrap());
            }
            let mut buf = vec![0u8; 70_000];
            let mut codes = std::collections::BTreeSet::new();
            while let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(200), attacker.recv(&mut buf)).await
            {
                let (code, _, missing) = decoded_error(&buf[..n]);
                if code == "unexpected_eof" {
                    assert_eq!(missing, Some(59_999));
                }
                codes.insert(code);
            }
            (d, server.stats(), codes)
        })
    });
    assert_eq!(large, 0, "a claim made the server allocate ≥ 1 MiB");
    assert!(dispositions.len() >= 50, "{}", dispositions.len());
    assert!(dispositions
        .iter()
        .any(|d| matches!(d, Disposition::Refused(_))));
    assert_eq!(stats.replied, 0);
    assert!(codes.contains("body_too_large"), "{codes:?}");
    assert!(codes.contains("unexpected_eof"), "{codes:?}");
    assert!(stats.max_ratio_milli <= 3000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_flood_from_many_ports() {
    let cfg = DatagramConfig::new().with_rate_slots(1 << 16);
    let server = spawn(cfg).await;
    let stop = Arc::new(AtomicBool::new(false));
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
                    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
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
    tokio::time::sleep(Duration::from_millis(100)).await;
    let client = UdpClient::connect(server.addr, cfg).await.unwrap();
    let retry = Retry {
        timeout: Duration::from_millis(200),
        tries: 10,
    };
    for i in 0..10u32 {
        let body = format!("normal {i}");
        let reply = client
            .request(Header::with_kind("echo"), body.clone().into(), retry)
            .await
            .unwrap_or_else(|e| panic!("request {i} during the flood: {e}"));
        assert_eq!(&reply.body[..], body.as_bytes());
    }
    stop.store(true, Ordering::Relaxed);
    let sent: u64 = flooders.into_iter().map(|t| t.join().unwrap()).sum();
    let stats = server.stop().await;
    assert!(
        sent > 64 * 64,
        "the flood was too small to test anything: {sent}"
    );
    assert!(stats.rate_limited > 0, "{stats:?}");
    assert!(stats.max_ratio_milli <= 3000, "{stats:?}");
}
