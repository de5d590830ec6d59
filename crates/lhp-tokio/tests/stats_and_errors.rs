//! The server's counters after a scripted conversation (issue 16), and how the client
//! classifies error frames (spec §7, decisions E2): the same scripts as `lhp-blocking`'s
//! `tests/stats_and_errors.rs`, from `lhp_testkit::scripted`.

use std::time::Duration;

use bytes::Bytes;
use lhp_codec::conn::ErrorClass;
use lhp_testkit::scripted::{
    connection_error, echo, request_error, stats_conversation, Reply, ScriptedServer,
};
use lhp_tokio::{Client, Config, EchoHandler, Error, Frame, Header, Server};

const LIMIT: Duration = Duration::from_secs(5);

#[test]
fn counters_after_a_scripted_conversation_are_exact() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut config = Config::new();
    config.set_max_connections(1);
    let server = runtime
        .block_on(async { Server::bind("127.0.0.1:0", config, EchoHandler::new()) })
        .unwrap();
    let (addr, stop, stats, conns) = (
        server.local_addr(),
        server.shutdown_token(),
        server.stats(),
        server.connections(),
    );
    let running = runtime.spawn(server.run());
    let expected = stats_conversation(addr, || {
        conns.active() == 0 && stats.snapshot().connections_open == 0
    });
    expected.check("tokio", &stats.snapshot());
    stop.cancel();
    runtime.block_on(running).unwrap().unwrap();
}

#[tokio::test]
async fn a_refusal_leaves_the_connection_usable() {
    let server = Server::bind("127.0.0.1:0", Config::new(), EchoHandler::new()).unwrap();
    let (addr, stop) = (server.local_addr(), server.shutdown_token());
    let running = tokio::spawn(server.run());
    let client = Client::connect(addr, LIMIT).await.unwrap();
    match client
        .request(Frame::new(Header::with_kind("put"), Bytes::new()))
        .await
    {
        Err(Error::Refused(p)) => {
            assert_eq!(p.class, ErrorClass::Request);
            assert_eq!((p.code.as_str(), p.offset), ("bad_request", None));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let reply = client.request(echo("after")).await.unwrap();
    assert_eq!(&reply.body[..], b"after");
    stop.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_connection_error_ends_the_client() {
    let mut config = Config::new();
    config.set_max_connections(1);
    let server = Server::bind("127.0.0.1:0", config, EchoHandler::new()).unwrap();
    let (addr, stop) = (server.local_addr(), server.shutdown_token());
    let running = tokio::spawn(server.run());
    let first = Client::connect(addr, LIMIT).await.unwrap();
    first.request(echo("a")).await.unwrap();
    let second = Client::connect(addr, LIMIT).await.unwrap();
    // Let the `busy` frame arrive before writing (the server closes after it).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let err = second.request(echo("b")).await.unwrap_err();
    let Error::Peer(p) = &err else {
        panic!("expected a connection error, got {err:?}")
    };
    assert_eq!((p.code.as_str(), p.offset), ("busy", Some(0)));
    assert_eq!(err.code(), "busy");
    match second.request(echo("c")).await {
        Err(Error::Peer(again)) => assert_eq!(&again, p),
        other => panic!("expected the same connection error, got {other:?}"),
    }
    drop(first);
    stop.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_unknown_code_without_offset_is_an_internal_refusal() {
    // The client numbers its requests from 1.
    let fake = ScriptedServer::start(vec![
        Reply::Send(request_error("teapot", Some(1))),
        Reply::Echo,
    ]);
    let client = Client::connect(fake.addr, LIMIT).await.unwrap();
    match client.request(echo("x")).await {
        Err(e @ Error::Refused(_)) => assert_eq!(e.code(), "internal"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let reply = client.request(echo("y")).await.unwrap();
    assert_eq!(&reply.body[..], b"y");
    drop(client);
    let received = tokio::task::spawn_blocking(move || fake.join())
        .await
        .unwrap();
    assert_eq!(received, 2);
}

#[tokio::test]
async fn an_unknown_code_with_offset_is_an_internal_connection_error() {
    let fake = ScriptedServer::start(vec![Reply::Send(connection_error("teapot", 12))]);
    let client = Client::connect(fake.addr, LIMIT).await.unwrap();
    match client.request(echo("x")).await {
        Err(e @ Error::Peer(_)) => assert_eq!(e.code(), "internal"),
        other => panic!("expected a connection error, got {other:?}"),
    }
    match client.request(echo("y")).await {
        Err(Error::Peer(p)) => assert_eq!((p.code.as_str(), p.offset), ("teapot", Some(12))),
        other => panic!("expected the same connection error, got {other:?}"),
    }
    drop(client);
    let received = tokio::task::spawn_blocking(move || fake.join())
        .await
        .unwrap();
    assert_eq!(received, 1, "nothing is sent after a connection error");
}
