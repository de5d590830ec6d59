//! `chunked`: the sticky-packet property. The same stream fed under an arbitrary chunking,
//! through `decode`, `decode_event` and `decode_ref` (in place), gives the same frames and the same error (code,
//! offset, missing octets) as the stream fed whole.
//!
//! Input: the configuration header of `fuzz/src/lib.rs`, then one octet `k`, then `k` chunk
//! sizes used cyclically (none, or all zero: one octet at a time), then the stream.
#![no_main]

use lhp_fuzz::{
    chunks, decode_chunked, decode_whole, events_chunked, in_place_chunked, read_config, Cursor,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut cur = Cursor::new(data);
    let cfg = read_config(&mut cur, None);
    let k = usize::from(cur.byte());
    let sizes = cur.take(k);
    let stream = cur.rest();
    let whole = decode_whole(&cfg, stream);
    let pieces = chunks(stream, sizes);
    let chunked = decode_chunked(&cfg, &pieces);
    assert_eq!(chunked, whole, "decode: chunking changed the result");
    let events = events_chunked(&cfg, &pieces);
    assert_eq!(events, whole, "decode_event: chunking changed the result");
    let in_place = in_place_chunked(&cfg, &pieces);
    assert_eq!(in_place, whole, "decode_ref: chunking changed the result");
});
