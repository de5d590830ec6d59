//! httparse-style prefix tests: every proper prefix of a valid stream is "need more", never an
//! error; and a stream cut at any offset ends with `unexpected_eof` (missing octets counted) or
//! cleanly, exactly at frame boundaries (spec §3.4).

mod common;

use bytes::BytesMut;
use common::{decoder_for, stream};
use lhp_codec::Decoder;
use lhp_vectors::Vector;

fn valid_small() -> Vec<Vector> {
    lhp_vectors::load_default()
        .expect("vectors load")
        .into_iter()
        .filter(|v| v.expect.is_valid() && v.input.len() <= 8_192)
        .collect()
}

/// Offsets at which each frame of a valid stream ends.
fn boundaries(v: &Vector) -> Vec<usize> {
    let mut dec = decoder_for(v);
    let mut buf = BytesMut::from(stream(v));
    let total = buf.len();
    let mut out = vec![0];
    while let Some(_f) = dec.decode(&mut buf).expect("valid vector") {
        out.push(total - buf.len());
    }
    out
}

#[test]
fn every_prefix_is_partial() {
    let vs = valid_small();
    assert!(vs.len() > 50);
    for v in &vs {
        let s = stream(v);
        let ends = boundaries(v);
        for cut in 0..s.len() {
            let mut dec = decoder_for(v);
            let mut buf = BytesMut::from(&s[..cut]);
            let mut frames = 0;
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(_)) => frames += 1,
                    Ok(None) => break,
                    Err(e) => panic!("{}: prefix of {cut} octets gave {e}", v.id),
                }
            }
            // Exactly the frames that end at or before the cut were delivered.
            let complete = ends.iter().filter(|&&e| e > 0 && e <= cut).count();
            assert_eq!(frames, complete, "{}: cut at {cut}", v.id);
        }
    }
}

#[test]
fn truncation_at_every_offset() {
    for v in &valid_small() {
        let s = stream(v);
        let ends = boundaries(v);
        for cut in 0..=s.len() {
            let mut dec = decoder_for(v);
            let mut buf = BytesMut::from(&s[..cut]);
            while dec.decode(&mut buf).expect("prefix of valid").is_some() {}
            let end = dec.finish(&buf);
            if ends.contains(&cut) {
                assert!(
                    end.is_ok(),
                    "{}: clean end at boundary {cut}: {end:?}",
                    v.id
                );
            } else {
                let e = end.expect_err("truncated inside a frame");
                assert_eq!(e.code(), "unexpected_eof", "{}", v.id);
                assert_eq!(e.offset(), v.skip_bytes + cut as u64, "{}", v.id);
                let next = ends
                    .iter()
                    .copied()
                    .find(|&e| e > cut)
                    .expect("a later boundary");
                let missing = e.missing().expect("missing count");
                assert!(
                    missing >= 1 && missing <= (next - cut) as u64,
                    "{}: cut {cut}: missing {missing}, frame ends at {next}",
                    v.id
                );
            }
        }
    }
}

#[test]
fn missing_count_is_exact_inside_a_body() {
    let mut wire = BytesMut::new();
    let f = lhp_codec::Frame::new(lhp_codec::Header::with_kind("x"), vec![1u8; 100].into());
    lhp_codec::Encoder::new()
        .encode(&f, &mut wire)
        .expect("encodes");
    let head = wire.len() - 100;
    for got in 0..100 {
        let mut dec = Decoder::new();
        let mut buf = BytesMut::from(&wire[..head + got]);
        assert_eq!(dec.decode(&mut buf).expect("partial"), None);
        let e = dec.finish(&buf).expect_err("short body");
        assert_eq!(e.missing(), Some(100 - got as u64));
        assert!(e
            .to_string()
            .contains(&format!("{} octet(s) short", 100 - got)));
    }
}
