//! The server's counters after a scripted conversation (issue 16), and how the client
//! classifies error frames (spec §7, decisions E2): the same scripts as `lhp-tokio`'s
//! `tests/stats_and_errors.rs`, from `lhp_testkit::scripted`.

use lhp_blocking::{Client, Config, EchoHandler, Error, Server};
use lhp_codec::conn::ErrorClass;
use lhp_codec::{Frame, Header};
use lhp_testkit::scripted::{
    connection_error, echo, request_error, stats_conversation, Reply, ScriptedServer,
};

#[test]
fn counters_after_a_scripted_conversation_are_exact() {
    let mut config = Config::new();
    config.set_max_connections(1);
    let server = Server::bind("127.0.0.1:0", config, EchoHandler::new())
        .unwrap()
        .spawn()
        .unwrap();
    let stats = server.stats();
    let expected = stats_conversation(server.local_addr(), || {
        server.connections() == 0 && stats.snapshot().connections_open == 0
    });
    expected.check("blocking", &stats.snapshot());
    server.shutdown().unwrap();
}

#[test]
fn a_refusal_leaves_the_connection_usable() {
    let server = Server::bind("127.0.0.1:0", Config::new(), EchoHandler::new())
        .unwrap()
        .spawn()
        .unwrap();
    let mut client = Client::connect(server.local_addr()).unwrap();
    let mut put = Header::with_kind("put");
    put.set_id(3);
    match client.request(&Frame::new(put, Default::default())) {
        Err(Error::Refused(p)) => {
            assert_eq!(p.class, ErrorClass::Request);
            assert_eq!((p.code.as_str(), p.offset), ("bad_request", None));
            assert_eq!(p.id, Some(3.into()));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(client.request(&echo("after")).unwrap(), echo("after"));
    assert!(client.ended().is_none());
    server.shutdown().unwrap();
}

#[test]
fn a_connection_error_ends_the_client() {
    let mut config = Config::new();
    config.set_max_connections(1);
    let server = Server::bind("127.0.0.1:0", config, EchoHandler::new())
        .unwrap()
        .spawn()
        .unwrap();
    let mut first = Client::connect(server.local_addr()).unwrap();
    assert_eq!(first.request(&echo("a")).unwrap(), echo("a"));
    // Read first: the server closes after `busy`, so a write could meet a reset.
    let mut second = Client::connect(server.local_addr()).unwrap();
    let err = second.recv().unwrap_err();
    let Error::Peer(p) = &err else {
        panic!("expected a connection error, got {err:?}")
    };
    assert_eq!((p.code.as_str(), p.offset), ("busy", Some(0)));
    assert_eq!(err.code(), "busy");
    // Every later request fails the same way.
    match second.request(&echo("c")) {
        Err(Error::Peer(again)) => assert_eq!(&again, p),
        other => panic!("expected the same connection error, got {other:?}"),
    }
    assert!(second.ended().is_some());
    server.shutdown().unwrap();
}

#[test]
fn an_unknown_code_without_offset_is_an_internal_refusal() {
    let fake = ScriptedServer::start(vec![
        Reply::Send(request_error("teapot", None)),
        Reply::Echo,
    ]);
    let mut client = Client::connect(fake.addr).unwrap();
    match client.request(&echo("x")) {
        Err(e @ Error::Refused(_)) => assert_eq!(e.code(), "internal"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(client.request(&echo("y")).unwrap(), echo("y"));
    drop(client);
    assert_eq!(fake.join(), 2);
}

#[test]
fn an_unknown_code_with_offset_is_an_internal_connection_error() {
    let fake = ScriptedServer::start(vec![Reply::Send(connection_error("teapot", 12))]);
    let mut client = Client::connect(fake.addr).unwrap();
    match client.request(&echo("x")) {
        Err(e @ Error::Peer(_)) => assert_eq!(e.code(), "internal"),
        other => panic!("expected a connection error, got {other:?}"),
    }
    match client.request(&echo("y")) {
        Err(Error::Peer(p)) => assert_eq!((p.code.as_str(), p.offset), ("teapot", Some(12))),
        other => panic!("expected the same connection error, got {other:?}"),
    }
    drop(client);
    assert_eq!(fake.join(), 1, "nothing is sent after a connection error");
}
