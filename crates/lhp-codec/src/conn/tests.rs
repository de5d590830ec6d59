//! Unit tests of the connection machine, in virtual time.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::{Limits, Profile};

fn frame(profile: Profile, header: &str, body: &[u8]) -> Vec<u8> {
    let mut v = match profile {
        Profile::Lhp1 => (header.len() as u32).to_be_bytes().to_vec(),
        _ => (header.len() as i32).to_le_bytes().to_vec(),
    };
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(body);
    v
}

fn lhp(header: &str, body: &[u8]) -> Vec<u8> {
    frame(Profile::Lhp1, header, body)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn short() -> Config {
    let mut c = Config::new();
    c.set_idle_timeout(ms(1000))
        .set_read_timeout(ms(400))
        .set_write_timeout(ms(400))
        .set_close_linger(ms(100));
    c
}

/// The next event, which must be a whole request frame handed to the application.
fn request(c: &mut Connection) -> Frame {
    match c.poll_event() {
        Some(Event::Frame(f)) => f,
        other => panic!("expected a request, got {other:?}"),
    }
}

/// An application server (timeouts of `short()`) whose application holds one request,
/// `{"kind":"stat","id":1}`, unanswered.
fn handed_a_request(t: Instant) -> (Connection, Frame) {
    let mut c = Connection::app_server(short(), t);
    c.handle_input(&lhp(r#"{"kind":"stat","id":1}"#, b""), t);
    let f = request(&mut c);
    (c, f)
}

/// The error frame's header text, if `out` is exactly one error frame.
fn error_text(out: &[u8]) -> String {
    String::from_utf8(out[4..].to_vec()).unwrap()
}

#[test]
fn echo_is_the_request_text_octet_for_octet() {
    let t = Instant::now();
    let mut c = Connection::echo_server(Config::new(), t);
    let req = lhp(
        r#"{"kind":"echo", "x":0.1,"y":1e2,"z":-0,"body_len":2}"#,
        b"hi",
    );
    c.handle_input(&req, t);
    assert_eq!(c.take_pending(t), req);
    assert!(!c.is_closed());
}

#[test]
fn seed_compat_echo_keeps_file_size_and_the_prefix() {
    let t = Instant::now();
    let mut config = Config::new();
    config.set_profile(Profile::SeedCompat);
    let mut c = Connection::echo_server(config, t);
    let req = frame(
        Profile::SeedCompat,
        r#"{"kind":"echo","file_size":3}"#,
        b"abc",
    );
    c.handle_input(&req, t);
    assert_eq!(c.take_pending(t), req);
}

#[test]
fn any_split_gives_the_same_output() {
    let t = Instant::now();
    let mut wire = lhp(r#"{"kind":"echo","id":1,"body_len":3}"#, b"abc");
    wire.extend(lhp(r#"{"kind":"other","id":5}"#, b""));
    wire.extend(lhp(r#"{"kind":"echo"}"#, b""));
    let mut whole = Connection::echo_server(Config::new(), t);
    whole.handle_input(&wire, t);
    let want = whole.take_pending(t);
    assert!(
        String::from_utf8_lossy(&want).contains(r#"{"kind":"error","id":5,"code":"bad_request""#)
    );
    for at in 0..wire.len() {
        let mut c = Connection::echo_server(Config::new(), t);
        c.handle_input(&wire[..at], t);
        c.handle_input(&wire[at..], t);
        assert_eq!(c.take_pending(t), want, "split at {at}");
    }
}

#[test]
fn a_decode_error_after_a_good_request_sends_the_frame_and_closes() {
    let t = Instant::now();
    let mut c = Connection::echo_server(short(), t);
    let good = lhp(r#"{"kind":"echo"}"#, b"");
    let mut wire = good.clone();
    wire.extend(lhp(r#"{"a":1,"a":2}"#, b""));
    c.handle_input(&wire, t);
    let out = c.take_pending(t);
    assert_eq!(&out[..good.len()], &good[..]);
    let err = error_text(&out[good.len()..]);
    assert!(
        err.starts_with(r#"{"kind":"error","code":"duplicate_member","message":"#),
        "{err}"
    );
    assert!(
        err.ends_with(&format!(r#","offset":{}}}"#, good.len() + 4)),
        "{err}"
    );
    assert!(c.is_write_closed() && !c.is_closed());
    // Linger: input is discarded, then the connection closes.
    c.handle_input(b"more", t);
    assert_eq!(c.pending_len(), 0);
    assert_eq!(c.poll_timeout(), Some(t + ms(100)));
    c.handle_timeout(t + ms(100));
    assert!(c.is_closed());
}

#[test]
fn unexpected_eof_carries_missing() {
    let t = Instant::now();
    let mut c = Connection::echo_server(short(), t);
    c.handle_input(&lhp(r#"{"kind":"echo","body_len":5}"#, b"ab"), t);
    assert_eq!(c.pending_len(), 0);
    c.handle_eof(t);
    let err = error_text(&c.take_pending(t));
    assert!(
        err.contains(r#""code":"unexpected_eof""#) && err.ends_with(r#","missing":3}"#),
        "{err}"
    );
    assert!(c.is_closed());
}

#[test]
fn no_error_frame_after_a_partial_echo() {
    let t = Instant::now();
    let mut config = short();
    config.set_stream_threshold(4);
    let mut c = Connection::echo_server(config, t);
    let head = lhp(r#"{"kind":"echo","body_len":10}"#, b"abc");
    c.handle_input(&head, t);
    assert_eq!(
        c.take_pending(t),
        head,
        "streamed: head and first octets go out at once"
    );
    c.handle_eof(t);
    assert_eq!(c.pending_len(), 0, "nothing after a partial frame");
    assert!(c.is_closed());
    assert!(matches!(c.ending(), Some(Ending::Decode(e)) if e.code() == "unexpected_eof"));
}

#[test]
fn idle_timeout_sends_timeout_with_the_octets_received() {
    let t = Instant::now();
    let mut c = Connection::echo_server(short(), t);
    let req = lhp(r#"{"kind":"echo"}"#, b"");
    c.handle_input(&req, t + ms(10));
    c.take_pending(t + ms(10));
    assert_eq!(c.poll_timeout(), Some(t + ms(1010)));
    c.handle_timeout(t + ms(1009));
    assert_eq!(c.pending_len(), 0);
    c.handle_timeout(t + ms(1010));
    let err = error_text(&c.take_pending(t + ms(1010)));
    assert!(err.contains(r#""code":"timeout""#));
    assert!(
        err.ends_with(&format!(r#""offset":{}}}"#, req.len())),
        "{err}"
    );
    assert_eq!(
        c.ending(),
        Some(&Ending::Timeout {
            offset: req.len() as u64
        })
    );
}

#[test]
fn read_timeout_runs_from_the_first_octet_of_a_frame() {
    let t = Instant::now();
    let mut c = Connection::echo_server(short(), t);
    c.handle_input(&[0, 0], t + ms(50));
    c.handle_input(&[0], t + ms(300));
    assert_eq!(c.poll_timeout(), Some(t + ms(450)));
    c.handle_timeout(t + ms(450));
    let err = error_text(&c.take_pending(t + ms(450)));
    assert!(
        err.contains(r#""code":"timeout""#) && err.ends_with(r#""offset":3}"#),
        "{err}"
    );
}

#[test]
fn body_deadline_is_read_timeout_plus_len_over_rate() {
    let t = Instant::now();
    let mut config = short();
    config.set_min_body_rate(1000);
    let mut c = Connection::echo_server(config, t);
    c.handle_input(&lhp(r#"{"kind":"echo","body_len":500}"#, b""), t);
    assert_eq!(c.poll_timeout(), Some(t + ms(400 + 500)));
    c.handle_input(&[7; 499], t + ms(899));
    c.handle_timeout(t + ms(900));
    assert!(error_text(&c.take_pending(t)).contains("timeout"));
}

#[test]
fn a_peer_that_does_not_read_stalls_the_write_and_is_closed_silently() {
    let t = Instant::now();
    let stats = Arc::new(Stats::new());
    let mut c = Connection::echo_server(short(), t);
    c.set_stats(stats.clone());
    c.handle_input(&lhp(r#"{"kind":"echo","body_len":4}"#, b"abcd"), t);
    assert!(c.pending_len() > 0);
    assert_eq!(c.poll_timeout(), Some(t + ms(400)));
    c.handle_sent(3, t + ms(300));
    assert_eq!(c.poll_timeout(), Some(t + ms(700)));
    c.handle_timeout(t + ms(700));
    assert!(c.is_closed());
    assert_eq!(c.ending(), Some(&Ending::WriteStalled));
    // Counted once as a stall, and not as an error: nothing was sent about it.
    c.handle_timeout(t + ms(800));
    let s = stats.snapshot();
    assert_eq!((s.write_stalls, s.connection_errors), (1, 0));
    assert!(s.errors.is_empty(), "{:?}", s.errors);
}

#[test]
fn busy_is_offset_zero() {
    let t = Instant::now();
    let mut config = short();
    config.set_max_connections(1);
    let mut c = Connection::busy(config, t);
    let err = error_text(&c.take_pending(t));
    assert!(
        err.starts_with(r#"{"kind":"error","code":"busy","#) && err.ends_with(r#""offset":0}"#)
    );
    assert!(c.is_write_closed());
    c.handle_timeout(t + ms(100));
    assert!(c.is_closed());
}

#[test]
fn half_close_answers_everything_then_closes_cleanly() {
    let t = Instant::now();
    let mut c = Connection::app_server(short(), t);
    let mut wire = lhp(r#"{"kind":"stat","id":1}"#, b"");
    wire.extend(lhp(r#"{"kind":"echo","id":2}"#, b""));
    c.handle_input(&wire, t);
    c.handle_eof(t);
    let f = request(&mut c);
    assert_eq!(
        c.poll_event(),
        None,
        "the echo waits for the earlier answer"
    );
    assert!(!c.is_closed());
    c.refuse(&f.header, "not_found", "no", t);
    assert!(!c.is_closed(), "not finished yet");
    c.finish_request(t);
    let out = String::from_utf8_lossy(&c.take_pending(t)).into_owned();
    assert!(
        out.contains(r#"{"kind":"error","id":1,"code":"not_found","message":"no"}"#),
        "{out}"
    );
    assert!(out.ends_with(r#"{"kind":"echo","id":2}"#), "{out}");
    assert!(c.is_closed());
    assert_eq!(c.ending(), Some(&Ending::Clean));
}

#[test]
fn shutdown_lets_the_request_in_progress_finish() {
    let t = Instant::now();
    let mut c = Connection::echo_server(short(), t);
    let req = lhp(r#"{"kind":"echo","body_len":4}"#, b"abcd");
    c.handle_input(&req[..10], t);
    c.begin_shutdown(t);
    assert!(!c.is_write_closed());
    c.handle_input(&req[10..], t);
    assert_eq!(c.take_pending(t), req);
    assert!(c.is_closed());
    assert_eq!(c.ending(), Some(&Ending::Shutdown { forced: false }));
    let mut idle = Connection::echo_server(short(), t);
    idle.begin_shutdown(t);
    assert!(idle.is_closed() && idle.pending_len() == 0);
}

#[test]
fn shutdown_grace_runs_out() {
    let t = Instant::now();
    let mut config = short();
    config
        .set_shutdown_grace(ms(200))
        .set_read_timeout(ms(10_000));
    let mut c = Connection::echo_server(config, t);
    c.handle_input(&[0, 0, 0], t);
    c.handle_input(&[16], t);
    c.begin_shutdown(t);
    // A second call does not extend the grace the first one gave.
    c.begin_shutdown(t + ms(150));
    assert_eq!(c.poll_timeout(), Some(t + ms(200)));
    c.handle_timeout(t + ms(200));
    assert!(c.is_closed() && c.pending_len() == 0);
    assert_eq!(c.ending(), Some(&Ending::Shutdown { forced: true }));
}

#[test]
fn client_tells_refusals_from_connection_errors() {
    let t = Instant::now();
    let mut c = Connection::client(Config::new(), t);
    c.handle_input(
        &lhp(
            r#"{"kind":"error","id":3,"code":"not_found","message":""}"#,
            b"",
        ),
        t,
    );
    assert!(
        matches!(c.poll_event(), Some(Event::Refused(p)) if p.class == ErrorClass::Request && p.code == "not_found")
    );
    c.handle_input(
        &lhp(
            r#"{"kind":"error","code":"timeout","message":"","offset":9}"#,
            b"",
        ),
        t,
    );
    assert!(c.is_closed());
    assert!(matches!(c.ending(), Some(Ending::Peer(p)) if p.offset == Some(9)));
}

#[test]
fn app_requests_stream_above_the_threshold() {
    let t = Instant::now();
    let mut config = Config::new();
    config
        .set_deliver_whole(2)
        .set_limits(Limits::new().with_max_body_len(100));
    let mut c = Connection::app_server(config, t);
    c.handle_input(&lhp(r#"{"kind":"put","body_len":5}"#, b"abc"), t);
    assert!(matches!(c.poll_event(), Some(Event::Head(h)) if h.body_len() == 5));
    assert_eq!(
        c.poll_event(),
        Some(Event::Body(Bytes::from_static(b"abc")))
    );
    c.handle_input(b"de", t);
    assert_eq!(c.poll_event(), Some(Event::Body(Bytes::from_static(b"de"))));
    assert_eq!(c.poll_event(), Some(Event::End));
    let mut h = Header::with_kind("ok");
    h.set_id(1);
    c.send(&Frame::new(h, Bytes::new()), t).unwrap();
    assert!(c.pending_len() > 0);
}

#[test]
fn wrong_protocol_gets_one_error_frame() {
    let t = Instant::now();
    let mut c = Connection::echo_server(short(), t);
    c.handle_input(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", t);
    let err = error_text(&c.take_pending(t));
    assert!(
        err.contains(r#""code":"header_len_too_large""#) && err.ends_with(r#""offset":0}"#),
        "{err}"
    );
}

/// An echo server decodes a frame that arrived whole in place, and one that arrives in pieces
/// through events: both paths give the same octets, the same ending and the same counts.
#[test]
fn whole_and_piecemeal_frames_are_answered_alike() {
    let digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; // "abc"
    let streams: Vec<Vec<u8>> = vec![
        lhp(
            &format!(r#"{{"kind":"echo","sha256":"{digest}","body_len":3}}"#),
            b"abc",
        ),
        // A digest that does not match: the body is checked before anything is echoed.
        [
            lhp(r#"{"kind":"echo"}"#, b""),
            lhp(
                &format!(r#"{{"kind":"echo","sha256":"{digest}","body_len":3}}"#),
                b"abd",
            ),
        ]
        .concat(),
        // An escaped kind is still `echo`; another kind is refused with its `id`.
        [
            lhp(r#"{"kind":"ech\u006f","body_len":1}"#, b"x"),
            lhp(r#"{"kind":"put","id":7,"body_len":2}"#, b"zz"),
            lhp(r#"{"id":8}"#, b""),
        ]
        .concat(),
        [lhp(r#"{"kind":"echo"}"#, b""), lhp(r#"{"kind":1}"#, b"")].concat(),
    ];
    for wire in streams {
        let t = Instant::now();
        let run = |chunk: usize| {
            let stats = Arc::new(Stats::new());
            let mut c = Connection::echo_server(short(), t);
            c.set_stats(stats.clone());
            for piece in wire.chunks(chunk) {
                c.handle_input(piece, t);
            }
            let out = c.take_pending(t);
            let ending = c.ending().and_then(Ending::code).map(str::to_owned);
            let counts = stats.snapshot();
            (out, ending, counts.frames_in, counts.frames_out)
        };
        let whole = run(wire.len());
        for chunk in [1, 3, 7] {
            assert_eq!(
                run(chunk),
                whole,
                "{chunk}-octet pieces of {:?}",
                String::from_utf8_lossy(&wire)
            );
        }
        assert!(!whole.0.is_empty());
    }
}

/// Drains `c` the way a driver with short writes does: at most `write` octets per call,
/// never handed an empty slice, `pending_len` always what is left.
fn drain_in_writes(c: &mut Connection, write: usize, t: Instant) -> Vec<u8> {
    let mut out = Vec::new();
    while c.pending_len() > 0 {
        let before = c.pending_len();
        let mut chunk = Vec::new();
        for s in c.pending() {
            assert!(!s.is_empty(), "pending() handed out an empty slice");
            chunk.extend_from_slice(s);
        }
        assert_eq!(chunk.len(), before, "pending() and pending_len() disagree");
        chunk.truncate(write);
        c.handle_sent(chunk.len(), t);
        assert_eq!(c.pending_len(), before - chunk.len());
        out.extend(chunk);
    }
    out
}

/// Replies leave whole and in order however the driver writes them: a large echo body (kept
/// as its own buffers), small frames before and after it, the input in pieces larger and
/// smaller than a body chunk, written one octet, a few, or many at a time.
#[test]
fn output_is_whole_and_in_order_whatever_the_write_sizes() {
    let t = Instant::now();
    let body: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let mut wire = lhp(r#"{"kind":"echo","id":1}"#, b"");
    wire.extend(lhp(
        &format!(r#"{{"kind":"echo","body_len":{}}}"#, body.len()),
        &body,
    ));
    wire.extend(lhp(r#"{"kind":"echo","id":2}"#, b""));
    for piece in [4500, 9000, wire.len()] {
        for write in [1usize, 7, 4096, 5000, 1 << 20] {
            let mut c = Connection::echo_server(Config::new(), t);
            let mut out = Vec::new();
            for p in wire.chunks(piece) {
                c.handle_input(p, t);
                out.extend(drain_in_writes(&mut c, write, t));
            }
            assert_eq!(
                out.len(),
                wire.len(),
                "pieces of {piece}, writes of {write}"
            );
            assert!(
                out == wire,
                "pieces of {piece}, writes of {write}: octets differ"
            );
            assert_eq!(c.sent(), wire.len() as u64);
        }
    }
}

/// A connection reads while what it owes the peer stays under `OUTPUT_HIGH_WATER`, and stops
/// reading above it until the peer has taken the excess.
#[test]
fn input_waits_while_too_much_output_is_queued() {
    let t = Instant::now();
    let c = Connection::echo_server(Config::new(), t);
    assert!(c.wants_input(), "a fresh connection reads");
    let mut c = Connection::echo_server(Config::new(), t);
    c.handle_input(&lhp(r#"{"kind":"echo"}"#, b""), t);
    assert!(c.pending_len() > 0);
    assert!(c.wants_input(), "a small reply pending");
    let body = vec![7u8; OUTPUT_HIGH_WATER + 10];
    let req = lhp(
        &format!(r#"{{"kind":"echo","body_len":{}}}"#, body.len()),
        &body,
    );
    let mut c = Connection::echo_server(Config::new(), t);
    c.handle_input(&req, t);
    assert!(c.pending_len() > OUTPUT_HIGH_WATER);
    assert!(!c.wants_input(), "over the high-water mark");
    c.handle_sent(c.pending_len() - 100, t);
    assert!(c.wants_input(), "back under it");
}

/// Each way a connection ends names the code it sent, or none.
#[test]
fn each_ending_names_its_code() {
    let t = Instant::now();
    assert_eq!(Ending::Clean.code(), None);
    assert_eq!(Ending::WriteStalled.code(), None);
    assert_eq!(Ending::Shutdown { forced: true }.code(), None);
    assert_eq!(Ending::Busy.code(), Some("busy"));
    assert_eq!(Ending::Timeout { offset: 3 }.code(), Some("timeout"));
    let mut c = Connection::echo_server(Config::new(), t);
    c.handle_input(&[0, 0, 0, 0], t);
    let code = c.ending().and_then(Ending::code).map(str::to_owned);
    assert_eq!(code.as_deref(), Some("header_len_too_small"));
    let mut c = Connection::client(Config::new(), t);
    c.handle_input(
        &lhp(
            r#"{"kind":"error","code":"header_not_json","message":"m","offset":9}"#,
            b"",
        ),
        t,
    );
    let code = c.ending().and_then(Ending::code).map(str::to_owned);
    assert_eq!(code.as_deref(), Some("header_not_json"));
}

/// A connection counts as open from `set_stats` until it is dropped; a `busy` one counts as
/// turned away, never as open; a second `set_stats` changes nothing.
#[test]
fn connections_are_counted_open_until_dropped_and_busy_ones_never() {
    let t = Instant::now();
    let stats = Arc::new(Stats::new());
    let mut a = Connection::echo_server(Config::new(), t);
    assert!(a.stats().is_none());
    a.set_stats(stats.clone());
    a.set_stats(Arc::new(Stats::new()));
    assert!(
        a.stats().is_some_and(|s| Arc::ptr_eq(s, &stats)),
        "the first counters stay"
    );
    let mut b = Connection::echo_server(Config::new(), t);
    b.set_stats(stats.clone());
    let s = stats.snapshot();
    assert_eq!((s.connections_open, s.connections_total), (2, 2));
    drop(a);
    assert_eq!(stats.snapshot().connections_open, 1);
    let mut busy = Connection::busy(Config::new(), t);
    busy.set_stats(stats.clone());
    let s = stats.snapshot();
    assert_eq!((s.connections_open, s.busy, s.frames_out), (1, 1, 1));
    assert_eq!(s.errors_of("busy"), 1);
    drop(busy);
    drop(b);
    let s = stats.snapshot();
    assert_eq!((s.connections_open, s.busy), (0, 1));
}

/// While the application works on a request, a few pipelined requests behind it are still
/// read; more than `PIPELINE_HIGH_WATER` of them waiting stops reading until it answers.
#[test]
fn pipelined_input_waits_above_the_pipeline_high_water() {
    let t = Instant::now();
    let mut c = Connection::app_server(Config::new(), t);
    let mut wire = lhp(r#"{"kind":"stat","id":1}"#, b"");
    wire.extend(lhp(r#"{"kind":"echo","id":2}"#, b""));
    c.handle_input(&wire, t);
    let f = request(&mut c);
    assert!(c.wants_input(), "one small request waiting behind it");
    let mut more = Vec::new();
    while more.len() <= PIPELINE_HIGH_WATER {
        more.extend(lhp(r#"{"kind":"echo","id":3}"#, b""));
    }
    c.handle_input(&more, t);
    assert!(!c.wants_input(), "over the pipeline high-water mark");
    c.refuse(&f.header, "not_found", "no", t);
    c.finish_request(t);
    assert!(c.wants_input(), "answered: the waiting requests are served");
}

/// The accessors report the settings the connection was made with, its role, and every octet
/// received (discarded ones too) and reported sent.
#[test]
fn a_connection_reports_its_settings_role_and_octets() {
    let t = Instant::now();
    let mut c = Connection::echo_server(short(), t);
    assert_eq!(c.config().idle_timeout(), ms(1000));
    assert_eq!(c.config().close_linger(), ms(100));
    assert_eq!(c.role(), Role::EchoServer);
    assert_eq!(Connection::client(short(), t).role(), Role::Client);
    let req = lhp(r#"{"kind":"echo","body_len":2}"#, b"hi");
    c.handle_input(&req, t);
    assert_eq!(c.received(), req.len() as u64);
    c.handle_sent(5, t);
    assert_eq!(c.sent(), 5);
    c.handle_input(&[0, 0, 0, 0], t);
    c.handle_input(b"discarded while closing", t);
    assert_eq!(c.received(), (req.len() + 4 + 23) as u64);
}

/// Input a driver hands over after the peer's end is ignored: it can not be a request.
#[test]
fn input_after_the_peers_end_is_ignored() {
    let t = Instant::now();
    let (mut c, f) = handed_a_request(t);
    c.handle_eof(t);
    c.handle_input(&lhp(r#"{"kind":"echo","id":2}"#, b""), t);
    c.refuse(&f.header, "not_found", "no", t);
    c.finish_request(t);
    let out = String::from_utf8_lossy(&c.take_pending(t)).into_owned();
    assert!(!out.contains(r#""id":2"#), "{out}");
    assert!(c.is_closed());
    assert_eq!(c.ending(), Some(&Ending::Clean));
}

/// An application that has not taken 1 MiB of delivered body octets stops the reading; taking
/// them, chunk by chunk, lets it go on once less than 1 MiB is waiting.
#[test]
fn input_waits_while_the_application_holds_a_mebibyte_of_body() {
    let t = Instant::now();
    let mut config = Config::new();
    config.set_deliver_whole(0);
    let mut c = Connection::app_server(config, t);
    let small = 100 << 10;
    let big = OUTPUT_HIGH_WATER;
    let len = small + big + 10;
    c.handle_input(
        &lhp(
            &format!(r#"{{"kind":"put","body_len":{len}}}"#),
            &vec![1; small],
        ),
        t,
    );
    assert!(c.wants_input());
    c.handle_input(&vec![2; big], t);
    assert!(!c.wants_input(), "1.1 MiB delivered and not taken");
    assert!(matches!(c.poll_event(), Some(Event::Head(_))));
    assert!(matches!(c.poll_event(), Some(Event::Body(b)) if b.len() == small));
    assert!(!c.wants_input(), "exactly 1 MiB still held");
    assert!(matches!(c.poll_event(), Some(Event::Body(b)) if b.len() == big));
    assert!(c.wants_input(), "all taken");
}

/// A connection stops reading with exactly `OUTPUT_HIGH_WATER` octets queued for the peer,
/// and reads again once it has taken one of them.
#[test]
fn input_waits_at_exactly_the_output_high_water() {
    let t = Instant::now();
    let head = |n: usize| format!(r#"{{"kind":"echo","body_len":{n}}}"#);
    let n = OUTPUT_HIGH_WATER - 4 - head(1_000_000).len();
    let req = lhp(&head(n), &vec![3; n]);
    assert_eq!(req.len(), OUTPUT_HIGH_WATER);
    let mut c = Connection::echo_server(Config::new(), t);
    c.handle_input(&req, t);
    assert_eq!(c.pending_len(), OUTPUT_HIGH_WATER);
    assert!(!c.wants_input());
    c.handle_sent(1, t);
    assert!(c.wants_input());
}

/// Pipelined requests waiting behind one the application works on: reading stops with
/// exactly `PIPELINE_HIGH_WATER` octets of them buffered, not one octet before.
#[test]
fn pipelined_input_waits_at_exactly_the_pipeline_high_water() {
    let t = Instant::now();
    for (waiting, wants) in [
        (PIPELINE_HIGH_WATER - 1, true),
        (PIPELINE_HIGH_WATER, false),
    ] {
        let mut c = Connection::app_server(Config::new(), t);
        c.handle_input(&lhp(r#"{"kind":"stat","id":1}"#, b""), t);
        assert!(matches!(c.poll_event(), Some(Event::Frame(_))));
        let head = |n: usize| format!(r#"{{"kind":"echo","body_len":{n}}}"#);
        let n = waiting - 4 - head(10_000).len();
        let next = lhp(&head(n), &vec![4; n]);
        assert_eq!(next.len(), waiting);
        c.handle_input(&next, t);
        assert_eq!(c.wants_input(), wants, "{waiting} octets waiting");
    }
}

/// A frame delivered whole that is larger than `PIPELINE_HIGH_WATER` is read to its end: the
/// connection keeps asking for input while the frame is incomplete.
#[test]
fn a_whole_frame_above_the_pipeline_high_water_is_read_to_its_end() {
    let t = Instant::now();
    let mut config = Config::new();
    config.set_deliver_whole(1 << 20);
    let mut c = Connection::app_server(config, t);
    let body = vec![5u8; 200 << 10];
    let wire = lhp(
        &format!(r#"{{"kind":"put","body_len":{}}}"#, body.len()),
        &body,
    );
    for piece in wire.chunks(10 << 10) {
        assert!(c.wants_input(), "the frame is not complete");
        assert_eq!(c.poll_event(), None);
        c.handle_input(piece, t);
    }
    assert!(matches!(c.poll_event(), Some(Event::Frame(f)) if f.body.len() == body.len()));
}

/// The connection asks a driver for what the current element still needs: the prefix, the
/// rest of a header, or a body, at most 1 MiB at a time.
#[test]
fn the_read_hint_is_what_the_current_element_still_needs() {
    let t = Instant::now();
    let mut config = Config::new();
    config.set_deliver_whole(0);
    let mut c = Connection::app_server(config, t);
    assert_eq!(c.read_hint(), 4);
    let header = format!(r#"{{"kind":"put","body_len":{}}}"#, 5 << 20);
    let wire = lhp(&header, b"");
    c.handle_input(&wire[..4], t);
    assert_eq!(c.read_hint(), header.len());
    c.handle_input(&wire[4..10], t);
    assert_eq!(c.read_hint(), header.len() - 6);
    c.handle_input(&wire[10..], t);
    assert!(matches!(c.poll_event(), Some(Event::Head(_))));
    assert_eq!(
        c.read_hint(),
        1 << 20,
        "a 5 MiB body, asked for 1 MiB at a time"
    );
    c.handle_input(&vec![0; (5 << 20) - 100], t);
    assert_eq!(c.read_hint(), 100);
}

/// Reporting a write of nothing is no progress: the write deadline still runs from the last
/// octet written, and not a moment before it.
#[test]
fn a_write_of_nothing_is_no_progress() {
    let t = Instant::now();
    let mut c = Connection::echo_server(short(), t);
    c.handle_input(&lhp(r#"{"kind":"echo","body_len":4}"#, b"abcd"), t);
    c.handle_sent(0, t + ms(300));
    assert_eq!(c.poll_timeout(), Some(t + ms(400)));
    c.handle_timeout(t + ms(399));
    assert!(!c.is_closed(), "the peer has 400 ms");
    c.handle_timeout(t + ms(400));
    assert_eq!(c.ending(), Some(&Ending::WriteStalled));
}

/// Only a server with nothing in progress has an idle deadline: not a client, not a server
/// whose application is working on a request.
#[test]
fn only_an_idle_server_has_an_idle_deadline() {
    let t = Instant::now();
    let client = Connection::client(short(), t);
    assert_eq!(client.poll_timeout(), None);
    let mut c = Connection::app_server(short(), t);
    assert_eq!(c.poll_timeout(), Some(t + ms(1000)));
    c.handle_input(&lhp(r#"{"kind":"stat","id":1}"#, b""), t);
    let f = request(&mut c);
    assert_eq!(c.poll_timeout(), None, "the application is working");
    assert_eq!(c.outstanding(), 1);
    c.handle_timeout(t + ms(5000));
    assert!(c.ending().is_none() && c.pending_len() == 0);
    // Idle again from the moment it answers.
    c.refuse(&f.header, "not_found", "no", t + ms(5000));
    c.finish_request(t + ms(5000));
    c.take_pending(t + ms(5000));
    assert_eq!(c.outstanding(), 0);
    assert_eq!(c.poll_timeout(), Some(t + ms(6000)));
}

/// A peer that reads slowly but steadily is not idle while output is queued for it.
#[test]
fn queued_output_is_not_idleness() {
    let t = Instant::now();
    let mut c = Connection::echo_server(short(), t);
    c.handle_input(&lhp(r#"{"kind":"echo","body_len":4}"#, b"abcd"), t);
    for step in 1..=5 {
        let now = t + ms(300 * step);
        c.handle_sent(1, now);
        c.handle_timeout(now);
        assert!(c.ending().is_none(), "at {} ms", 300 * step);
    }
    assert!(c.pending_len() > 0);
}

/// A frame begun just before the idle deadline is given its whole `read_timeout`.
#[test]
fn a_frame_begun_before_the_idle_deadline_gets_its_read_timeout() {
    let t = Instant::now();
    let mut c = Connection::echo_server(short(), t);
    c.handle_input(&[0, 0, 0], t + ms(900));
    assert_eq!(c.poll_timeout(), Some(t + ms(1300)));
    c.handle_timeout(t + ms(1000));
    assert!(c.ending().is_none() && c.pending_len() == 0);
    c.handle_timeout(t + ms(1300));
    assert!(matches!(c.ending(), Some(Ending::Timeout { offset: 3 })));
}

/// A request pipelined behind one the application works on waits without a deadline; its
/// `read_timeout` starts when the earlier one is answered.
#[test]
fn a_waiting_pipelined_request_has_no_deadline_until_its_turn() {
    let t = Instant::now();
    let mut c = Connection::app_server(short(), t);
    let mut wire = lhp(r#"{"kind":"stat","id":1}"#, b"");
    let second = lhp(r#"{"kind":"echo","id":2}"#, b"");
    wire.extend_from_slice(&second[..6]);
    c.handle_input(&wire, t);
    let f = request(&mut c);
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(t + ms(3000));
    assert!(c.ending().is_none() && c.pending_len() == 0);
    c.refuse(&f.header, "not_found", "no", t + ms(3000));
    c.finish_request(t + ms(3000));
    c.take_pending(t + ms(3000));
    assert_eq!(c.poll_timeout(), Some(t + ms(3400)));
    c.handle_input(&second[6..], t + ms(3100));
    let out = c.take_pending(t + ms(3100));
    assert_eq!(out, second);
}

/// A streamed reply: its head, then exactly `body_len` octets however they are handed over
/// (octets beyond it dropped); an empty one is complete at once.
#[test]
fn a_streamed_reply_is_its_head_then_exactly_body_len_octets() {
    let t = Instant::now();
    let mut c = Connection::app_server(short(), t);
    let mut wire = lhp(r#"{"kind":"get","id":1}"#, b"");
    wire.extend(lhp(r#"{"kind":"get","id":2}"#, b""));
    c.handle_input(&wire, t);
    assert!(matches!(c.poll_event(), Some(Event::Frame(_))));
    let mut h = Header::with_kind("ok");
    h.set_body_len(10);
    c.send_head(&h, 10, t).unwrap();
    assert!(c.is_sending_body());
    c.send_body(Bytes::from_static(b"abcdef"), t);
    assert!(c.is_sending_body());
    c.send_body(Bytes::from_static(b"ghijklmnop"), t);
    assert!(!c.is_sending_body());
    c.finish_request(t);
    assert!(matches!(c.poll_event(), Some(Event::Frame(_))));
    let empty = Header::with_kind("ok");
    c.send_head(&empty, 0, t).unwrap();
    assert!(!c.is_sending_body(), "an empty body is complete");
    c.finish_request(t);
    let mut want = BytesMut::new();
    Encoder::new().encode_head(&h, 10, &mut want).unwrap();
    want.extend_from_slice(b"abcdefghij");
    Encoder::new().encode_head(&empty, 0, &mut want).unwrap();
    assert_eq!(c.take_pending(t), want);
    assert!(
        !c.is_closed(),
        "both requests answered, the connection goes on"
    );
}

/// An application whose source breaks mid-reply aborts it: nothing more is written and the
/// connection closes once what was queued is out.
#[test]
fn an_aborted_reply_closes_without_another_octet() {
    let t = Instant::now();
    let mut c = Connection::app_server(short(), t);
    c.handle_input(&lhp(r#"{"kind":"get","id":1}"#, b""), t);
    assert!(matches!(c.poll_event(), Some(Event::Frame(_))));
    let mut h = Header::with_kind("ok");
    h.set_body_len(10);
    c.send_head(&h, 10, t).unwrap();
    c.send_body(Bytes::from_static(b"abc"), t);
    let queued = c.pending_len();
    c.abort_reply(t);
    assert!(!c.is_closed(), "what was queued still goes out");
    assert_eq!(c.take_pending(t).len(), queued);
    assert!(c.is_closed());
    assert_eq!(c.ending(), Some(&Ending::Shutdown { forced: true }));
    c.send_body(Bytes::from_static(b"defghij"), t);
    assert_eq!(c.pending_len(), 0);
}

/// Once a connection is closing nothing more is queued, whatever the application sends.
#[test]
fn a_closing_connection_queues_nothing_more() {
    let t = Instant::now();
    let mut c = Connection::client(Config::new(), t);
    let mut fatal = Header::with_kind("error");
    fatal
        .insert("code", "timeout")
        .insert("message", "idle")
        .insert("offset", 9);
    assert!(c.handle_reply(&fatal).is_err());
    let req = Frame::new(Header::with_kind("echo"), Bytes::new());
    c.send(&req, t).unwrap();
    c.send_head(&req.header, 3, t).unwrap();
    c.send_body(Bytes::from_static(b"abc"), t);
    c.refuse(&req.header, "internal", "x", t);
    assert_eq!(c.pending_len(), 0);
}

/// A `seed-compat` server's refusals and error frames carry that profile's prefix (i32 LE).
#[test]
fn seed_compat_error_frames_carry_its_prefix() {
    let t = Instant::now();
    let mut config = short();
    config.set_profile(Profile::SeedCompat);
    let mut c = Connection::echo_server(config, t);
    c.handle_input(&frame(Profile::SeedCompat, r#"{"kind":"stat"}"#, b""), t);
    let out = c.take_pending(t);
    let text = r#"{"kind":"error","code":"bad_request","#;
    let n = i32::from_le_bytes(out[..4].try_into().unwrap());
    assert_eq!(n as usize, out.len() - 4);
    assert!(String::from_utf8_lossy(&out[4..]).starts_with(text));
    c.handle_input(&[0, 0, 0, 0], t);
    let out = c.take_pending(t);
    let n = i32::from_le_bytes(out[..4].try_into().unwrap());
    assert_eq!(n as usize, out.len() - 4);
}

/// Frames in and out are counted on every path: whole, piecemeal, refused, streamed.
#[test]
fn frames_are_counted_in_and_out_on_every_path() {
    let t = Instant::now();
    let stats = Arc::new(Stats::new());
    let mut c = Connection::app_server(short(), t);
    c.set_stats(stats.clone());
    let echo = lhp(r#"{"kind":"echo","body_len":3}"#, b"abc");
    c.handle_input(&echo[..5], t);
    c.handle_input(&echo[5..], t);
    c.handle_input(&lhp(r#"{"kind":"get","id":1}"#, b""), t);
    let f = request(&mut c);
    let mut h = Header::with_kind("ok");
    h.set_body_len(2);
    c.send_head(&h, 2, t).unwrap();
    c.send_body(Bytes::from_static(b"ok"), t);
    c.finish_request(t);
    c.handle_input(&lhp(r#"{"kind":"get","id":2}"#, b""), t);
    assert!(matches!(c.poll_event(), Some(Event::Frame(_))));
    c.refuse(&f.header, "not_found", "no", t);
    c.finish_request(t);
    let s = stats.snapshot();
    assert_eq!((s.frames_in, s.frames_out), (3, 3));
    // Octets: every one received, and every one the driver reports written (but never more
    // than were queued).
    let received = echo.len() + 2 * lhp(r#"{"kind":"get","id":1}"#, b"").len();
    assert_eq!(s.octets_in, received as u64);
    assert_eq!(s.octets_out, 0, "nothing reported written yet");
    let queued = c.pending_len();
    c.handle_sent(queued - 1, t);
    c.handle_sent(queued, t);
    assert_eq!(stats.snapshot().octets_out, queued as u64);
}

/// Nothing is shut down before the octets queued ahead of the close are written: a refusal
/// then a clean half-close, an error frame then the linger.
#[test]
fn the_sending_direction_closes_only_after_what_is_queued() {
    let t = Instant::now();
    let (mut c, f) = handed_a_request(t);
    c.handle_eof(t);
    assert!(!c.is_write_closed(), "the request is not answered yet");
    c.refuse(&f.header, "not_found", "no", t);
    c.finish_request(t);
    assert!(
        c.pending_len() > 0,
        "the refusal went out after the half-close"
    );
    assert!(!c.is_write_closed() && !c.is_closed());
    c.take_pending(t);
    assert!(c.is_closed());
    let mut c = Connection::echo_server(short(), t);
    c.handle_input(&[0, 0, 0, 0], t);
    assert!(
        c.wants_input(),
        "input is read and discarded during the linger"
    );
    assert!(!c.is_write_closed(), "the error frame is still queued");
    c.handle_sent(c.pending_len() - 1, t);
    assert!(!c.is_write_closed());
    c.handle_eof(t);
    assert!(!c.wants_input(), "the peer ended: nothing more to read");
    assert!(!c.is_closed(), "one octet of the error frame left");
    c.handle_sent(1, t);
    assert!(c.is_write_closed() && c.is_closed());
}

/// A shutdown lets a frame whose first prefix octets have arrived finish (it is in progress,
/// not at a frame boundary, §3), then closes cleanly.
#[test]
fn shutdown_lets_a_frame_begun_in_its_prefix_finish() {
    let t = Instant::now();
    let mut c = Connection::echo_server(short(), t);
    let req = lhp(r#"{"kind":"echo","body_len":2}"#, b"hi");
    c.handle_input(&req[..3], t);
    c.begin_shutdown(t);
    assert!(!c.is_closed() && !c.is_write_closed());
    c.handle_input(&req[3..], t);
    assert_eq!(c.take_pending(t), req);
    assert!(c.is_closed());
    assert_eq!(c.ending(), Some(&Ending::Shutdown { forced: false }));
}

/// A frame that follows an answered one in the same input has begun: its `read_timeout` runs
/// from that input, whether the answered frame arrived whole or in pieces.
#[test]
fn a_frame_begun_behind_an_answered_one_has_a_read_deadline() {
    let t = Instant::now();
    let mut config = short();
    config.set_write_timeout(ms(5000));
    let echo = lhp(r#"{"kind":"echo","body_len":2}"#, b"hi");
    let mut wire = echo.clone();
    wire.extend_from_slice(&[0, 0, 0]);
    // Whole: answered in place.
    let mut c = Connection::echo_server(config, t);
    c.handle_input(&wire, t + ms(50));
    assert_eq!(c.take_pending(t + ms(50)), echo);
    assert_eq!(c.poll_timeout(), Some(t + ms(450)));
    // The head first, then the body with the next frame's first octets: answered through
    // the event path.
    let mut c = Connection::echo_server(config, t);
    let cut = echo.len() - 2;
    c.handle_input(&wire[..cut], t);
    assert_eq!(c.pending_len(), 0);
    c.handle_input(&wire[cut..], t + ms(100));
    assert_eq!(c.take_pending(t + ms(100)), echo);
    assert_eq!(c.poll_timeout(), Some(t + ms(500)));
}

/// A body of exactly the threshold is delivered whole (echoed in one piece, handed over as
/// one `Frame`); one octet more streams.
#[test]
fn bodies_stream_only_above_the_threshold() {
    let t = Instant::now();
    let mut config = short();
    config.set_stream_threshold(4).set_deliver_whole(4);
    for (len, streamed) in [(4usize, false), (5, true)] {
        let body = vec![b'x'; len];
        let echo = lhp(&format!(r#"{{"kind":"echo","body_len":{len}}}"#), &body);
        let mut c = Connection::echo_server(config, t);
        c.handle_input(&echo[..echo.len() - 1], t);
        assert_eq!(c.pending_len() > 0, streamed, "echo of {len}");
        let put = lhp(&format!(r#"{{"kind":"put","body_len":{len}}}"#), &body);
        let mut c = Connection::app_server(config, t);
        c.handle_input(&put, t);
        let first = c.poll_event();
        assert_eq!(
            matches!(first, Some(Event::Head(_))),
            streamed,
            "put of {len}"
        );
        assert_eq!(
            matches!(first, Some(Event::Frame(_))),
            !streamed,
            "put of {len}"
        );
    }
}

/// `request_id` is the `id` a request error copies: the request's own value, or none.
#[test]
fn request_id_is_the_requests_own_id() {
    let mut h = Header::with_kind("get");
    assert_eq!(Connection::request_id(&h), None);
    h.insert("id", "abc");
    assert_eq!(Connection::request_id(&h), Some(&Value::from("abc")));
}

/// A client's read deadline for the next reply runs from the input that brought its first
/// octets, behind a reply delivered in pieces.
#[test]
fn a_clients_next_reply_has_a_read_deadline_from_its_first_octets() {
    let t = Instant::now();
    let reply = lhp(r#"{"kind":"ok","body_len":2}"#, b"hi");
    let mut wire = reply.clone();
    wire.extend_from_slice(&[0, 0, 0]);
    let mut c = Connection::client(short(), t);
    let cut = reply.len() - 2;
    c.handle_input(&wire[..cut], t);
    c.handle_input(&wire[cut..], t + ms(100));
    assert!(matches!(c.poll_event(), Some(Event::Frame(_))));
    assert_eq!(c.poll_timeout(), Some(t + ms(500)));
}
