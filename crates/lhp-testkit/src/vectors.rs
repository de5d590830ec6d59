//! The vector cases: every valid `lhp1` vector of `spec/vectors`, echoed.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use lhp_codec::{Decoder, EncodeError, Encoder, Frame, Header, Limits, Profile, Value};

use crate::{assert_same_frame, TestConn};

/// Pause between the chunks of a split send, so each chunk is its own segment at the server.
const SPLIT_PAUSE: Duration = Duration::from_millis(2);

/// A valid vector made into echo requests.
#[derive(Clone, Debug)]
pub struct EchoStream {
    /// The vector's id.
    pub id: String,
    /// The octets to send: the vector's own input when every frame is already an `echo`,
    /// otherwise its frames re-encoded with `kind` set to `echo` (position kept if present,
    /// appended otherwise) and every other member kept in order.
    pub wire: Vec<u8>,
    /// The frames the echo server must send back, in order.
    pub expected: Vec<Frame>,
    /// `(header length, body length)` of the first frame, for choosing split points.
    pub first: (usize, usize),
}

/// Every valid `lhp1` vector as an [`EchoStream`]. Vectors whose frames a default receiver
/// would refuse (a header over 64 KiB, a body over 64 MiB) are left out, since the server
/// under test runs with default limits; so are `seed-compat` vectors.
pub fn echo_streams() -> Vec<EchoStream> {
    let vectors =
        lhp_vectors::load_default().unwrap_or_else(|e| panic!("cannot load spec/vectors: {e}"));
    let mut out = Vec::new();
    for v in vectors
        .iter()
        .filter(|v| v.profile == "lhp1" && v.expect.is_valid())
    {
        let skip = usize::try_from(v.skip_bytes).unwrap_or(usize::MAX);
        let Some(input) = v.input.get(skip..) else {
            continue;
        };
        let limits = match v.limits {
            Some((h, b)) => Limits::new()
                .with_max_header_len(h.unwrap_or(Limits::DEFAULT_MAX_HEADER_LEN))
                .with_max_body_len(b.unwrap_or(Limits::DEFAULT_MAX_BODY_LEN)),
            None => Limits::new(),
        };
        let mut dec = Decoder::with(Profile::Lhp1, limits);
        dec.set_stream_offset(v.skip_bytes);
        let mut buf = BytesMut::from(input);
        let mut frames = Vec::new();
        loop {
            match dec.decode_eof(&mut buf) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => panic!("vector {} is marked valid but the codec says {e}", v.id),
            }
        }
        if frames.is_empty() {
            continue; // an empty stream: nothing to echo
        }
        let fits = frames
            .iter()
            .all(|f| f.body.len() as u64 <= Limits::DEFAULT_MAX_BODY_LEN);
        let all_echo = frames.iter().all(|f| f.header.kind() == Some("echo"));
        // Setting `kind` can push a header over a §4.2 cap (a 1024-member vector gains a
        // 1025th member): the encoder refuses such a header (§9), as a receiver would, and
        // the vector is left out.
        let Some(expected) = frames
            .into_iter()
            .map(as_echo)
            .collect::<Option<Vec<Frame>>>()
        else {
            continue;
        };
        let mut wire = BytesMut::new();
        let mut encodable = true;
        for f in &expected {
            encodable &= Encoder::new().encode(f, &mut wire).is_ok();
        }
        if !fits || !encodable {
            continue;
        }
        let wire = if all_echo && skip == 0 && v.limits.is_none() {
            v.input.clone()
        } else {
            wire.to_vec()
        };
        let first = first_frame_shape(&wire);
        out.push(EchoStream {
            id: v.id.clone(),
            wire,
            expected,
            first,
        });
    }
    assert!(
        out.len() >= 10,
        "only {} usable valid lhp1 vectors in spec/vectors",
        out.len()
    );
    out
}

/// Sends every valid `lhp1` vector (see [`echo_streams`]) to the echo server at `addr`, one
/// connection per vector, once for each split point, with `TCP_NODELAY` and one write per
/// chunk: points inside the prefix (after 1, 2, 3 octets), inside the header (after its
/// first octet, its middle, before its last), inside the body (same) and just after the
/// first frame's end; then once with all of those points at once. Every round's replies must
/// match member for member and byte for byte.
///
/// The server must run with default limits (or larger).
pub fn vectors_at_split_points(addr: SocketAddr) {
    for s in echo_streams() {
        let context = format!("vector {}", s.id);
        let mut conn = TestConn::connect(addr, &context);
        let points = split_points(&s);
        for &p in &points {
            let (a, b) = s.wire.split_at(p);
            conn.send_chunks(&[a, b], SPLIT_PAUSE);
            check_replies(&mut conn, &s, &format!("split at octet {p}"));
        }
        let mut chunks = Vec::new();
        let mut last = 0;
        for &p in &points {
            chunks.push(s.wire.get(last..p).unwrap_or_default());
            last = p;
        }
        chunks.push(s.wire.get(last..).unwrap_or_default());
        conn.send_chunks(&chunks, SPLIT_PAUSE);
        check_replies(&mut conn, &s, &format!("split at all of {points:?}"));
        conn.shutdown_write();
        conn.expect_close(Duration::from_secs(10), "end of the vector's rounds");
    }
}

/// Sends every valid `lhp1` vector's frames back to back in one write on one connection (a
/// writer thread sends while the replies are read) and checks every reply, in order.
pub fn all_vectors_coalesced(addr: SocketAddr) {
    let streams = echo_streams();
    let wire: Vec<u8> = streams
        .iter()
        .flat_map(|s| s.wire.iter().copied())
        .collect();
    let mut conn = TestConn::connect(addr, "all vectors coalesced");
    let mut writer = conn
        .stream()
        .try_clone()
        .unwrap_or_else(|e| panic!("all vectors coalesced: cannot clone the socket: {e}"));
    let total = wire.len();
    let sender = std::thread::spawn(move || {
        use std::io::Write;
        writer
            .write_all(&wire)
            .map_err(|e| format!("write of {total} octets failed: {e}"))
    });
    for s in &streams {
        for (i, want) in s.expected.iter().enumerate() {
            let got = conn.expect_frame(&format!("vector {} frame {i}", s.id));
            assert_same_frame(
                &got,
                want,
                &format!("all vectors coalesced: vector {} frame {i}", s.id),
            );
        }
    }
    match sender.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("all vectors coalesced: {e}"),
        Err(_) => panic!("all vectors coalesced: the writer thread panicked"),
    }
    conn.shutdown_write();
    conn.expect_close(Duration::from_secs(10), "after all vectors");
}

/// The frame the echo server must return for `f`: `kind` set to `echo`, all else unchanged;
/// `None` when that header breaks a §4.2 cap (the only rule setting `kind` can break).
fn as_echo(f: Frame) -> Option<Frame> {
    let mut members = f.header.into_members();
    members.insert("kind".into(), Value::from("echo"));
    let header = match Header::from_members(members, Profile::Lhp1) {
        Ok(h) => h,
        Err(EncodeError::InvalidHeader(e)) if e.code() == "header_not_json" => return None,
        Err(e) => panic!("testkit bug: a decoded header with kind echo is invalid: {e}"),
    };
    Some(Frame {
        header,
        body: f.body,
    })
}

/// (H, B) of the first frame of a well-formed `lhp1` stream.
fn first_frame_shape(wire: &[u8]) -> (usize, usize) {
    let mut dec = Decoder::with(Profile::Lhp1, Limits::new().with_max_header_len(u32::MAX));
    let mut buf = BytesMut::from(wire);
    let h = wire
        .first_chunk::<4>()
        .map_or(0, |p| u32::from_be_bytes(*p) as usize);
    match dec.decode(&mut buf) {
        Ok(Some(f)) => (h, f.body.len()),
        _ => (h, 0),
    }
}

fn split_points(s: &EchoStream) -> Vec<usize> {
    let (h, b) = s.first;
    let body = 4 + h;
    let end = body + b;
    let mut points = vec![1, 2, 3, 5, 4 + h / 2, body - 1];
    if b >= 2 {
        points.extend([body + 1, body + b / 2, end - 1]);
    }
    points.push(end + 2); // inside the second frame's prefix, when there is one
    points.retain(|&p| p > 0 && p < s.wire.len());
    points.sort_unstable();
    points.dedup();
    points
}

fn check_replies(conn: &mut TestConn, s: &EchoStream, round: &str) {
    for (i, want) in s.expected.iter().enumerate() {
        let context = format!("vector {} ({round}) reply {i}", s.id);
        let got = conn.expect_frame(&context);
        assert_same_frame(&got, want, &context);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_streams_reencode_to_their_expected_frames() {
        for s in echo_streams() {
            let mut dec = Decoder::new();
            let mut buf = BytesMut::from(&s.wire[..]);
            for want in &s.expected {
                let got = dec.decode(&mut buf).unwrap().unwrap();
                crate::assert_same_frame(&got, want, &s.id);
                assert_eq!(got.header.kind(), Some("echo"), "{}", s.id);
            }
            assert!(dec.decode_eof(&mut buf).unwrap().is_none(), "{}", s.id);
            let points = split_points(&s);
            let (h, _) = s.first;
            assert!(
                points.iter().any(|&p| p < 4),
                "{}: no split in the prefix",
                s.id
            );
            assert!(
                points.iter().any(|&p| p > 4 && p < 4 + h),
                "{}: no split in the header",
                s.id
            );
            assert!(
                points.iter().all(|&p| p > 0 && p < s.wire.len()),
                "{}",
                s.id
            );
        }
    }
}
