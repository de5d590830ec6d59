//! The tokio server and client over loopback: echo, pipelining, the connection limit,
//! protocol errors, timeouts, graceful shutdown and streaming handlers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use lhp_codec::{Frame, Header};
use lhp_tokio::{Client, Config, Error, Handler, LhpCodec, Replies, Request, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

const LIMIT: Duration = Duration::from_secs(20);

fn start(
    config: Config,
) -> (
    SocketAddr,
    CancellationToken,
    JoinHandle<std::io::Result<()>>,
) {
    let server = Server::bind("127.0.0.1:0", config, lhp_tokio::EchoHandler::new()).expect("bind");
    let addr = server.local_addr();
    let stop = server.shutdown_token();
    (addr, stop, tokio::spawn(server.run()))
}

fn echo_frame(body: impl Into<Bytes>) -> Frame {
    let mut h = Header::with_kind("echo");
    h.insert("trace", "t-1");
    Frame::new(h, body.into())
}

/// Reads one frame from a raw socket (test side), with a deadline.
async fn read_one(stream: &mut TcpStream) -> Option<Frame> {
    let mut framed = Framed::new(stream, LhpCodec::new());
    timeout(LIMIT, framed.next())
        .await
        .expect("reply in time")?
        .ok()
}

#[tokio::test]
async fn echo_round_trip_keeps_members_in_order() {
    let (addr, stop, running) = start(Config::new());
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let mut framed = Framed::new(tcp, LhpCodec::new());
    let mut h = Header::new();
    h.insert("z", 1)
        .set_kind("echo")
        .insert("a", "你好")
        .set_id(5);
    let sent = Frame::new(h, Bytes::from_static(b"body"));
    framed.send(sent.clone()).await.expect("send");
    let got = timeout(LIMIT, framed.next())
        .await
        .expect("in time")
        .expect("frame")
        .expect("ok");
    let names: Vec<_> = got.header.members().keys().cloned().collect();
    assert_eq!(names, ["z", "kind", "a", "id", "body_len"]);
    assert_eq!(got, sent);
    stop.cancel();
    running.await.expect("join").expect("run");
}

#[tokio::test]
async fn other_kinds_get_bad_request_and_the_connection_stays_open() {
    let (addr, stop, running) = start(Config::new());
    let client = Client::connect(addr, LIMIT).await.expect("connect");
    // E2: an error frame without `offset` refuses this one request.
    match client
        .request(Frame::new(Header::with_kind("put"), Bytes::new()))
        .await
    {
        Err(Error::Refused(p)) => {
            assert_eq!((p.code.as_str(), p.offset), ("bad_request", None));
            assert!(p.id.is_some(), "the request's id is copied");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let reply = client
        .request(echo_frame("still here"))
        .await
        .expect("reply");
    assert_eq!(&reply.body[..], b"still here");
    stop.cancel();
    running.await.expect("join").expect("run");
}

#[tokio::test]
async fn pipelined_requests_are_matched_by_id() {
    let (addr, stop, running) = start(Config::new());
    let client = Client::connect(addr, LIMIT).await.expect("connect");
    let replies = futures::future::join_all((0..500u32).map(|i| {
        let client = client.clone();
        async move {
            let body = format!("request #{i}").repeat((i % 7 + 1) as usize);
            let reply = client.request(echo_frame(body.clone())).await?;
            Ok::<_, Error>((body, reply))
        }
    }))
    .await;
    for r in replies {
        let (body, reply) = r.expect("reply");
        assert_eq!(reply.body, body.as_bytes());
    }
    assert_eq!(client.in_flight(), 0);
    stop.cancel();
    running.await.expect("join").expect("run");
}

#[tokio::test]
async fn connections_over_the_limit_get_busy() {
    let mut config = Config::new();
    config.set_max_connections(2);
    let (addr, stop, running) = start(config);
    let a = Client::connect(addr, LIMIT).await.expect("a");
    let b = Client::connect(addr, LIMIT).await.expect("b");
    a.request(echo_frame("a")).await.expect("a served");
    b.request(echo_frame("b")).await.expect("b served");
    let mut c = TcpStream::connect(addr).await.expect("c connects");
    let busy = read_one(&mut c).await.expect("busy frame");
    assert_eq!(
        busy.header.get("code").and_then(|v| v.as_str()),
        Some("busy")
    );
    let mut rest = Vec::new();
    let n = timeout(LIMIT, c.read_to_end(&mut rest))
        .await
        .expect("closed in time");
    assert!(n.is_ok() && rest.is_empty(), "closed after the busy frame");
    // The limit frees up when a connection ends.
    drop(a);
    let deadline = Instant::now() + LIMIT;
    loop {
        let d = Client::connect(addr, LIMIT).await.expect("d");
        match d.request(echo_frame("d")).await {
            Ok(reply) => {
                assert_eq!(&reply.body[..], b"d");
                break;
            }
            Err(Error::Peer(p)) if p.code == "busy" && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    stop.cancel();
    running.await.expect("join").expect("run");
}

#[tokio::test]
async fn protocol_error_gets_an_error_frame_and_only_that_connection_closes() {
    let (addr, stop, running) = start(Config::new());
    let bystander = Client::connect(addr, LIMIT).await.expect("bystander");
    let mut bad = TcpStream::connect(addr).await.expect("connect");
    // A valid frame, then a header with a duplicate member.
    let mut wire = BytesMut::new();
    lhp_codec::Encoder::new()
        .encode(&echo_frame("ok"), &mut wire)
        .expect("encode");
    let first_len = wire.len() as u64;
    wire.extend_from_slice(b"\0\0\0\x0d{\"a\":1,\"a\":2}");
    bad.write_all(&wire).await.expect("write");
    let mut framed = Framed::new(&mut bad, LhpCodec::new());
    let echo = timeout(LIMIT, framed.next())
        .await
        .expect("in time")
        .expect("frame")
        .expect("ok");
    assert_eq!(&echo.body[..], b"ok");
    let err = timeout(LIMIT, framed.next())
        .await
        .expect("in time")
        .expect("frame")
        .expect("ok");
    assert_eq!(err.header.kind(), Some("error"));
    assert_eq!(
        err.header.get("code").and_then(|v| v.as_str()),
        Some("duplicate_member")
    );
    assert_eq!(
        err.header.get("offset").and_then(|v| v.as_u64()),
        Some(first_len + 4)
    );
    assert!(timeout(LIMIT, framed.next())
        .await
        .expect("closed in time")
        .is_none());
    let reply = bystander
        .request(echo_frame("fine"))
        .await
        .expect("bystander served");
    assert_eq!(&reply.body[..], b"fine");
    stop.cancel();
    running.await.expect("join").expect("run");
}

#[tokio::test]
async fn a_trickling_peer_hits_the_per_frame_deadline() {
    let mut config = Config::new();
    config.set_read_timeout(Duration::from_millis(600));
    let (addr, stop, running) = start(config);
    let mut wire = BytesMut::new();
    lhp_codec::Encoder::new()
        .encode(&echo_frame("x".repeat(64)), &mut wire)
        .expect("encode");
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    slow.set_nodelay(true).expect("nodelay");
    let started = Instant::now();
    // One octet every 100 ms: each read is quick, the frame is not.
    for byte in wire.iter().take(20) {
        if slow.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reply = read_one(&mut slow).await.expect("timeout frame");
    assert_eq!(
        reply.header.get("code").and_then(|v| v.as_str()),
        Some("timeout")
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "held for {took:?}");
    stop.cancel();
    running.await.expect("join").expect("run");
}

#[tokio::test]
async fn idle_connections_time_out() {
    let mut config = Config::new();
    config.set_idle_timeout(Duration::from_millis(300));
    let (addr, stop, running) = start(config);
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    let frame = read_one(&mut idle).await.expect("timeout frame");
    assert_eq!(
        frame.header.get("code").and_then(|v| v.as_str()),
        Some("timeout")
    );
    stop.cancel();
    running.await.expect("join").expect("run");
}

/// A handler that takes a while, to catch a frame in flight at shutdown.
async fn slow_echo(frame: Frame) -> Option<Frame> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    Some(frame.echo_reply())
}

#[tokio::test]
async fn shutdown_stops_accepting_and_drains_frames_in_flight() {
    let server = Server::bind("127.0.0.1:0", Config::new(), slow_echo).expect("bind");
    let (addr, stop) = (server.local_addr(), server.shutdown_token());
    let running = tokio::spawn(server.run());
    let client = Client::connect(addr, LIMIT).await.expect("connect");
    let idle = Client::connect(addr, LIMIT).await.expect("connect idle");
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { client.request(echo_frame("in flight")).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.cancel();
    let reply = in_flight.await.expect("join").expect("drained reply");
    assert_eq!(&reply.body[..], b"in flight");
    timeout(LIMIT, running)
        .await
        .expect("run returns")
        .expect("join")
        .expect("run");
    // Idle connections were closed; no new ones are accepted.
    assert!(idle.request(echo_frame("late")).await.is_err());
    assert!(
        TcpStream::connect(addr).await.is_err() || {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            let mut b = [0u8; 1];
            matches!(timeout(LIMIT, s.read(&mut b)).await, Ok(Ok(0)) | Ok(Err(_)))
        }
    );
}

#[tokio::test]
async fn shutdown_grace_bounds_a_stuck_handler() {
    async fn stuck(_: Frame) -> Option<Frame> {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        None
    }
    let mut config = Config::new();
    config.set_shutdown_grace(Duration::from_millis(200));
    let server = Server::bind("127.0.0.1:0", config, stuck).expect("bind");
    let (addr, stop) = (server.local_addr(), server.shutdown_token());
    let running = tokio::spawn(server.run());
    let client = Client::connect(addr, LIMIT).await.expect("connect");
    // Not `echo`: the connection layer answers echo itself, so it would never reach `stuck`.
    let pending = tokio::spawn(async move {
        client
            .request(Frame::new(Header::with_kind("work"), "never".into()))
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    stop.cancel();
    timeout(LIMIT, running)
        .await
        .expect("run returns")
        .expect("join")
        .expect("run");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(pending.await.expect("join").is_err());
}

/// Hashes a streamed body without holding it.
struct Digest;

impl Handler for Digest {
    async fn handle(&self, request: Request<'_>, replies: &mut Replies<'_>) -> Result<(), Error> {
        let (head, mut body) = request.into_parts();
        use sha2::Digest as _;
        let mut hasher = sha2::Sha256::new();
        let mut n = 0u64;
        while let Some(chunk) = body.chunk().await? {
            n += chunk.len() as u64;
            hasher.update(&chunk);
        }
        let mut reply = Header::with_kind("digest");
        reply
            .insert("octets", n)
            .insert("sha", hex::encode(hasher.finalize()));
        if let Some(id) = head.id() {
            reply.set_id(id);
        }
        replies.send(&Frame::new(reply, Bytes::new())).await
    }
}

#[tokio::test]
async fn streaming_handler_sees_a_body_larger_than_its_limit_for_whole_frames() {
    use sha2::Digest as _;
    let mut config = Config::new();
    config.set_limits(lhp_codec::Limits::new().with_max_body_len(1 << 40));
    let server = Server::bind("127.0.0.1:0", config, Digest).expect("bind");
    let (addr, stop) = (server.local_addr(), server.shutdown_token());
    let running = tokio::spawn(server.run());
    // 80 MiB: more than the 64 MiB a whole-frame receiver accepts by default.
    let len: u64 = 80 << 20;
    let pattern: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
    let expected = hex::encode(sha2::Sha256::digest(&pattern));
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (rd, wr) = tcp.into_split();
    let mut writer = lhp_tokio::FrameWriter::new(wr);
    let mut h = Header::with_kind("put");
    h.set_id(1);
    writer
        .write_frame_from(&h, len, std::io::Cursor::new(pattern))
        .await
        .expect("stream the body");
    let mut reader = lhp_tokio::FrameReader::new(rd);
    let reply = timeout(LIMIT, reader.read_frame())
        .await
        .expect("in time")
        .expect("ok")
        .expect("reply");
    assert_eq!(
        reply.header.get("octets").and_then(|v| v.as_u64()),
        Some(len)
    );
    assert_eq!(
        reply.header.get("sha").and_then(|v| v.as_str()),
        Some(expected.as_str())
    );
    stop.cancel();
    running.await.expect("join").expect("run");
}

#[tokio::test]
async fn streamed_digest_mismatch_ends_with_an_error_frame() {
    let server = Server::bind("127.0.0.1:0", Config::new(), Digest).expect("bind");
    let (addr, stop) = (server.local_addr(), server.shutdown_token());
    let running = tokio::spawn(server.run());
    let mut h = Header::with_kind("put");
    h.set_sha256(&[0u8; 32]);
    let mut wire = BytesMut::new();
    lhp_codec::Encoder::new()
        .encode(&Frame::new(h, Bytes::from_static(b"abc")), &mut wire)
        .expect("encode");
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(&wire).await.expect("write");
    let err = read_one(&mut tcp).await.expect("error frame");
    assert_eq!(
        err.header.get("code").and_then(|v| v.as_str()),
        Some("digest_mismatch")
    );
    assert_eq!(
        err.header.get("offset").and_then(|v| v.as_u64()),
        Some(wire.len() as u64 - 3)
    );
    stop.cancel();
    running.await.expect("join").expect("run");
}

#[tokio::test]
async fn client_connect_times_out_or_fails_fast() {
    // Port 1 on loopback: nothing listens; the connect fails rather than hangs.
    let started = Instant::now();
    let r = Client::connect("127.0.0.1:1", Duration::from_secs(2)).await;
    assert!(r.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Answers `count` small frames, then a streamed body of `stream_len` octets (a pattern
/// generated as it is written), then an `error` frame about the request.
struct Multi;

impl Handler for Multi {
    async fn handle(&self, request: Request<'_>, replies: &mut Replies<'_>) -> Result<(), Error> {
        let (head, _body) = request.into_parts();
        let count = head.get("count").and_then(|v| v.as_u64()).unwrap_or(0);
        let stream_len = head.get("stream_len").and_then(|v| v.as_u64()).unwrap_or(0);
        let mut reply = Header::with_kind("part");
        if let Some(id) = head.id() {
            reply.set_id(id);
        }
        for i in 0..count {
            let mut h = reply.clone();
            h.insert("seq", i);
            replies
                .send(&Frame::new(h, Bytes::from(i.to_string())))
                .await?;
        }
        let mut h = reply.clone();
        h.insert("seq", count).set_body_len(stream_len);
        replies.send_stream(&h, tokio::io::repeat(0x5a)).await?;
        replies
            .error("not_found", "and a request-level error")
            .await
    }
}

#[tokio::test]
async fn stream_handler_sends_many_replies_including_a_streamed_body() {
    let server = Server::bind("127.0.0.1:0", Config::new(), Multi).expect("bind");
    let (addr, stop) = (server.local_addr(), server.shutdown_token());
    let running = tokio::spawn(server.run());
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (rd, wr) = tcp.into_split();
    let mut writer = lhp_tokio::FrameWriter::new(wr);
    let mut reader = lhp_tokio::FrameReader::new(rd);
    // Two pipelined requests: the second one's `error` must name its own start offset.
    let mut starts = Vec::new();
    let mut sent = 0u64;
    for (id, count, stream_len) in [(1u64, 50u64, 3u64 << 20), (2, 0, 0)] {
        let mut h = Header::with_kind("multi");
        h.set_id(id)
            .insert("count", count)
            .insert("stream_len", stream_len);
        let mut wire = BytesMut::new();
        lhp_codec::Encoder::new()
            .encode(&Frame::new(h.clone(), Bytes::new()), &mut wire)
            .expect("encode");
        starts.push(sent);
        sent += wire.len() as u64;
        writer
            .write_frame(&Frame::new(h, Bytes::new()))
            .await
            .expect("write");
    }
    for (i, (id, count, stream_len)) in [(1u64, 50u64, 3u64 << 20), (2, 0, 0)]
        .into_iter()
        .enumerate()
    {
        for seq in 0..=count {
            let f = timeout(LIMIT, reader.read_frame())
                .await
                .expect("in time")
                .expect("frame")
                .expect("not the end");
            assert_eq!(f.header.kind(), Some("part"));
            assert_eq!(f.header.id(), Some(id));
            assert_eq!(f.header.get("seq").and_then(|v| v.as_u64()), Some(seq));
            if seq < count {
                assert_eq!(&f.body[..], seq.to_string().as_bytes());
            } else {
                assert_eq!(f.body.len() as u64, stream_len);
                assert!(f.body.iter().all(|&b| b == 0x5a));
            }
        }
        let err = timeout(LIMIT, reader.read_frame())
            .await
            .expect("in time")
            .expect("frame")
            .expect("not the end");
        assert_eq!(err.header.kind(), Some("error"));
        assert_eq!(err.header.id(), Some(id));
        assert_eq!(
            err.header.get("code").and_then(|v| v.as_str()),
            Some("not_found")
        );
        // A request error (E2): the request's id, no offset.
        assert_eq!(err.header.get("offset"), None, "request {i}");
    }
    stop.cancel();
    running.await.expect("join").expect("run");
}

/// Sleeps before reading its body, then echoes the body's length.
struct Slow;

impl Handler for Slow {
    async fn handle(&self, request: Request<'_>, replies: &mut Replies<'_>) -> Result<(), Error> {
        let (_head, mut body) = request.into_parts();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let mut n = 0u64;
        while let Some(chunk) = body.chunk().await? {
            n += chunk.len() as u64;
        }
        let mut h = Header::with_kind("len");
        h.insert("octets", n);
        replies.send(&Frame::new(h, Bytes::new())).await
    }
}

#[tokio::test]
async fn stream_handler_read_deadline_counts_only_waiting_for_the_peer() {
    let mut config = Config::new();
    config.set_read_timeout(Duration::from_millis(200));
    let server = Server::bind("127.0.0.1:0", config, Slow).expect("bind");
    let (addr, stop) = (server.local_addr(), server.shutdown_token());
    let running = tokio::spawn(server.run());

    // The whole body arrives at once: a handler slower than the deadline is fine.
    let mut wire = BytesMut::new();
    lhp_codec::Encoder::new()
        .encode(
            &Frame::new(Header::with_kind("x"), Bytes::from(vec![1u8; 1000])),
            &mut wire,
        )
        .expect("encode");
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(&wire).await.expect("write");
    let reply = read_one(&mut tcp).await.expect("reply");
    assert_eq!(
        reply.header.get("octets").and_then(|v| v.as_u64()),
        Some(1000)
    );

    // Half the body, then silence: the deadline passes while the server waits for the peer.
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(wire.get(..wire.len() - 500).expect("half"))
        .await
        .expect("write");
    let err = read_one(&mut tcp).await.expect("error frame");
    assert_eq!(
        err.header.get("code").and_then(|v| v.as_str()),
        Some("timeout")
    );
    stop.cancel();
    running.await.expect("join").expect("run");
}
