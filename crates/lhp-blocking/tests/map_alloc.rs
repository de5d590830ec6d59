//! Map-style headers (issue 13 item 1) on the blocking engine, counted with the counting
//! allocator of `lhp-testkit` (every allocation of any size on the measuring thread).
//!
//! - `building_a_header_of_registered_members_allocates_nothing`: `Header::with_kind` and the
//!   setters with `&'static str` values, then `FrameWriter::write_frame` into a sink with
//!   room: zero allocations per frame in steady state.
//! - `map_style_receive_allocates_a_bounded_few_per_buffer_not_per_frame`: `read_frame` keeps
//!   the header text as a slice of the read buffer (no copy per frame) and parses no map
//!   unless asked, so after a warm-up 19,000 frames cost at most one allocation per 50
//!   frames (the only ones are the read buffer's own, a few per refill).
//! - `received_headers_read_typed_members_without_allocating`: the typed accessors of a
//!   received header read its text.

use std::io::Cursor;

use bytes::Bytes;
use lhp_blocking::{FrameReader, FrameWriter};
use lhp_codec::{Frame, Header};
use lhp_testkit::alloc::count_all;

#[global_allocator]
static ALLOC: lhp_testkit::alloc::Counting = lhp_testkit::alloc::Counting;

const BODY: usize = 100;

fn header(id: u64) -> Header {
    let mut h = Header::with_kind("upload");
    h.set_id(id)
        .set_name("sensor-42/temperature.bin")
        .set_body_len(BODY as u64)
        .set_version(1);
    h
}

fn write(w: &mut FrameWriter<Vec<u8>>, body: &Bytes, ids: std::ops::Range<u64>) {
    for id in ids {
        let f = Frame {
            header: header(id),
            body: body.clone(),
        };
        w.write_frame(&f).unwrap();
    }
}

#[test]
fn building_a_header_of_registered_members_allocates_nothing() {
    // The counter counts: one allocation is one.
    let (v, n) = count_all(|| Vec::<u8>::with_capacity(1));
    assert_eq!((v.capacity() >= 1, n), (true, 1));
    let (h, n) = count_all(|| header(7));
    assert_eq!(n, 0, "allocations building a header of registered members");
    assert_eq!(
        h.to_string(),
        r#"{"kind":"upload","id":7,"name":"sensor-42/temperature.bin","body_len":100,"v":1}"#
    );
    // An owned `String` moves in; nothing more is allocated.
    let name = String::from("moved.bin");
    let ((), n) = count_all(|| {
        let mut h = Header::with_kind("put");
        h.set_name(name);
        assert_eq!(h.name(), Some("moved.bin"));
    });
    assert_eq!(n, 0, "allocations setting a String member");

    let body = Bytes::from(vec![b'x'; BODY]);
    let mut w = FrameWriter::new(Vec::with_capacity(4 << 20));
    write(&mut w, &body, 0..100);
    let ((), n) = count_all(|| write(&mut w, &body, 100..10_100));
    assert_eq!(
        n, 0,
        "allocations building and writing 10,000 map-style frames"
    );
    let data = w.into_inner();
    let mut r = FrameReader::new(Cursor::new(data));
    for id in 0..10_100 {
        let f = r.read_frame().unwrap().unwrap();
        assert_eq!(f.header, header(id));
        assert_eq!(f.body, body);
    }
    assert!(r.read_frame().unwrap().is_none());
}

#[test]
fn map_style_receive_allocates_a_bounded_few_per_buffer_not_per_frame() {
    let body = Bytes::from(vec![b'x'; BODY]);
    let mut w = FrameWriter::new(Vec::new());
    write(&mut w, &body, 0..20_000);
    let mut r = FrameReader::new(Cursor::new(w.into_inner()));
    let read = |r: &mut FrameReader<Cursor<Vec<u8>>>, ids: std::ops::Range<u64>| {
        for id in ids {
            let f = r.read_frame().unwrap().unwrap();
            assert_eq!(
                (f.header.id(), f.header.kind(), f.body.len()),
                (Some(id), Some("upload"), BODY)
            );
        }
    };
    read(&mut r, 0..1_000);
    let ((), n) = count_all(|| read(&mut r, 1_000..20_000));
    // The allocations are the read buffer's, a few per refill (a new buffer while the last
    // frames still share the old one); a header copied per frame would be 19,000 more.
    assert!(
        n <= 19_000 / 50,
        "{n} allocations reading 19,000 map-style frames (bound: one per 50 frames)"
    );
    eprintln!("map-style receive: {n} allocations for 19,000 frames");
    assert!(r.read_frame().unwrap().is_none());
}

#[test]
fn received_headers_read_typed_members_without_allocating() {
    let body = Bytes::from(vec![b'x'; BODY]);
    let mut w = FrameWriter::new(Vec::new());
    write(&mut w, &body, 0..1);
    let mut r = FrameReader::new(Cursor::new(w.into_inner()));
    let f = r.read_frame().unwrap().unwrap();
    let (got, n) = count_all(|| {
        (
            f.header.kind(),
            f.header.id(),
            f.header.name(),
            f.header.version(),
            f.header.body_len(),
        )
    });
    assert_eq!(n, 0);
    assert_eq!(
        got,
        (
            Some("upload"),
            Some(0),
            Some("sensor-42/temperature.bin"),
            Some(1),
            BODY as u64
        )
    );
    // Map-style access still works (and builds the map once).
    assert_eq!(f.header.get("v"), Some(&lhp_codec::Value::from(1)));
    assert_eq!(f.header.members().len(), 5);
}
