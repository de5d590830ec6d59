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
    let mut c = Connection::echo_server(short(), t);
    c.handle_input(&lhp(r#"{"kind":"echo","body_len":4}"#, b"abcd"), t);
    assert!(c.pending_len() > 0);
    assert_eq!(c.poll_timeout(), Some(t + ms(400)));
    c.handle_sent(3, t + ms(300));
    assert_eq!(c.poll_timeout(), Some(t + ms(700)));
    c.handle_timeout(t + ms(700));
    assert!(c.is_closed());
    assert_eq!(c.ending(), Some(&Ending::WriteStalled));
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
    let Some(Event::Frame(f)) = c.poll_event() else {
        panic!()
    };
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
    assert_eq!(c.poll_timeout(), Some(t + ms(200)));
    c.handle_timeout(t + ms(200));
    assert!(c.is_closed() && c.pending_len() == 0);
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
    let Some(Event::Frame(f)) = c.poll_event() else {
        panic!("the first request")
    };
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
