//! Hard bounds on memory (spec §5: "buffers grow with bytes received, never with a declared
//! length"), measured with a counting global allocator on stable Rust.
//!
//! The allocator counts per thread: only allocations made by a thread inside [`measure`] are
//! counted, so tests running in parallel (and the test harness itself) cannot disturb each
//! other's numbers. A `realloc` counts as the difference between the new and old sizes.
//!
//! - `declared_lengths_cost_no_allocation`: a prefix declaring a 4 GiB header and a header
//!   declaring a 2^53−1 octet body cost no allocation proportional to the claim.
//! - `streaming_1gib_body_in_constant_memory`: 1 GiB of body streamed through
//!   `decode_event` in 64 KiB chunks keeps the peak at one chunk plus a small constant.
//! - `registered_members_are_built_and_encoded_without_allocating`: a header of registered
//!   members with `&'static str` values, built and encoded into a buffer with room, costs no
//!   heap at all (issue 13 item 1).
//! - `typed_headers_are_encoded_without_allocating`: a derived struct as the header, every
//!   registered member and some extensions, in both profiles, costs no heap either (item 2).
//! - `typed_headers_are_decoded_in_place_without_allocating`: headers with every kind of
//!   string and integer the one-pass scan takes, decoded in place into a borrowed struct,
//!   cost no heap in steady state (item 4).
//! - `random_claims_cost_at_most_input_plus_constant` (proptest): random prefix and header
//!   claims, random bodies and random chunkings, through `decode` and `decode_event`: the
//!   decoder's peak growth is bounded by the input size plus a constant.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::BytesMut;
use lhp_codec::{Decoder, Encoder, Event, Header, Limits, Profile, MAX_SAFE_INTEGER};
use proptest::prelude::*;

/// Counts the live bytes and their peak for the thread inside [`measure`].
struct Counting;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static CURRENT: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn account(delta: i64) {
    // `try_with`: the thread may be tearing down its locals.
    let tracking = TRACKING.try_with(Cell::get).unwrap_or(false);
    if !tracking {
        return;
    }
    let _ = CURRENT.try_with(|c| {
        let now = c.get() + delta;
        c.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

// SAFETY: every call is forwarded to `System` unchanged; the accounting only touches
// const-initialised thread-locals, which neither allocate nor panic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            account(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            account(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        account(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            account(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result with the peak growth of live heap bytes on this thread
/// while it ran.
fn measure<R>(f: impl FnOnce() -> R) -> (R, u64) {
    CURRENT.with(|c| c.set(0));
    PEAK.with(|p| p.set(0));
    TRACKING.with(|t| t.set(true));
    let r = f();
    TRACKING.with(|t| t.set(false));
    (r, PEAK.with(Cell::get).max(0) as u64)
}

const KIB: u64 = 1024;
const CHUNK: usize = 64 * 1024;

fn open_limits() -> Limits {
    Limits::new()
        .with_max_header_len(u32::MAX)
        .with_max_body_len(u64::MAX)
}

fn frame_head(header: &str) -> Vec<u8> {
    let mut out = (header.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out
}

#[test]
fn declared_lengths_cost_no_allocation() {
    // The meter works: a 1 MiB vector shows up.
    let (v, peak) = measure(|| vec![1u8; 1 << 20]);
    assert!(
        peak >= 1 << 20,
        "the counting allocator missed 1 MiB (saw {peak})"
    );
    drop(v);

    // A prefix declaring a 4 GiB header (FF FF FF FF), accepted by an open limit: the
    // decoder waits for the header without reserving room for it.
    for streaming in [false, true] {
        let mut buf = BytesMut::from(&b"\xff\xff\xff\xff{\"kind\":"[..]);
        let ((), peak) = measure(|| {
            let mut dec = Decoder::with(Profile::Lhp1, open_limits());
            if streaming {
                assert_eq!(dec.decode_event(&mut buf), Ok(None));
            } else {
                assert_eq!(dec.decode(&mut buf), Ok(None));
            }
            assert_eq!(dec.wanted(buf.len()), u64::from(u32::MAX) - 8);
        });
        assert!(
            peak < 64 * KIB,
            "4 GiB header claim cost {peak} octets (streaming: {streaming})"
        );
    }

    // The same claim under the default limit is refused before anything is sized by it.
    let mut buf = BytesMut::from(&b"\xff\xff\xff\xff"[..]);
    let (code, peak) = measure(|| Decoder::new().decode(&mut buf).map_err(|e| e.code()));
    assert_eq!(code, Err("header_len_too_large"));
    assert!(peak < 64 * KIB, "refusing a 4 GiB claim cost {peak} octets");

    // seed-compat: i32::MAX, little-endian.
    let mut buf = BytesMut::from(&i32::MAX.to_le_bytes()[..]);
    let ((), peak) = measure(|| {
        let mut dec = Decoder::with(Profile::SeedCompat, open_limits());
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert_eq!(dec.wanted(0), i32::MAX as u64);
    });
    assert!(
        peak < 64 * KIB,
        "2 GiB seed-compat claim cost {peak} octets"
    );

    // A header declaring a 2^53−1 octet body, with max_body_len at its maximum.
    let head = frame_head(&format!(
        "{{\"kind\":\"put\",\"body_len\":{MAX_SAFE_INTEGER}}}"
    ));
    for streaming in [false, true] {
        let mut buf = BytesMut::from(&head[..]);
        buf.extend_from_slice(&[0u8; 1000]); // and the first octets of the body
        let ((), peak) = measure(|| {
            let mut dec = Decoder::with(Profile::Lhp1, open_limits());
            if streaming {
                let Ok(Some(Event::Head(h))) = dec.decode_event(&mut buf) else {
                    panic!("no Head event");
                };
                assert_eq!(h.body_len(), MAX_SAFE_INTEGER);
                assert!(
                    matches!(dec.decode_event(&mut buf), Ok(Some(Event::Body(b))) if b.len() == 1000)
                );
                assert_eq!(dec.decode_event(&mut buf), Ok(None));
                assert_eq!(dec.wanted(0), MAX_SAFE_INTEGER - 1000);
            } else {
                assert_eq!(dec.decode(&mut buf), Ok(None));
                assert_eq!(dec.wanted(buf.len()), MAX_SAFE_INTEGER - 1000);
            }
        });
        assert!(
            peak < 64 * KIB,
            "2^53−1 body claim cost {peak} octets (streaming: {streaming})"
        );
    }
}

/// Issue 13 item 1: building a header of registered members allocates nothing beyond what the
/// caller hands over (nothing for `&'static str`), and encoding writes it straight into the
/// output buffer, with no map in between.
#[test]
fn registered_members_are_built_and_encoded_without_allocating() {
    let enc = Encoder::new();
    let mut out = BytesMut::with_capacity(4096);
    let (written, peak) = measure(|| {
        let mut written = 0;
        for i in 0..100u64 {
            let mut h = Header::with_kind("upload");
            h.set_id(i)
                .set_name("sensor-42/temperature.bin")
                .set_body_len(100)
                .set_version(1)
                .set_sha256(&[0xab; 32]);
            enc.encode_head(&h, 100, &mut out).unwrap();
            written += out.len();
            out.clear();
        }
        written
    });
    assert!(written > 100 * 150, "{written}");
    assert_eq!(peak, 0, "octets allocated while building and encoding");
}

/// Issue 13 item 2: a typed header goes straight onto the wire, no `serde_json::Value` in
/// between: a derived struct of every registered member and a few extensions, in each
/// profile (`seed-compat`'s own members, the seeds' `file_size` and `md5`, included), is
/// checked and encoded into a buffer with room without touching the heap.
#[test]
fn typed_headers_are_encoded_without_allocating() {
    #[derive(serde::Serialize)]
    struct Upload<'a> {
        kind: &'a str,
        id: u64,
        name: &'a str,
        sha256: &'a str,
        v: u64,
        trace: &'a str,
        attempt: u64,
        urgent: bool,
        note: Option<&'a str>,
    }
    #[derive(serde::Serialize)]
    struct Seed<'a> {
        kind: &'a str,
        name: &'a str,
        file_size: u64,
        total_size: u64,
        md5: &'a str,
    }
    let sha = lhp_codec::hex_lower(&[0xab; 32]);
    let md5 = lhp_codec::hex_lower(&[0xcd; 16]);
    let body = [7u8; 100];
    let mut out = BytesMut::with_capacity(8192);
    let (written, peak) = measure(|| {
        let mut written = 0;
        for i in 0..100u64 {
            let h = Upload {
                kind: "upload",
                id: i,
                name: "sensor-42/temperature.bin",
                sha256: &sha,
                v: 1,
                trace: "t-1",
                attempt: 3,
                urgent: false,
                note: None,
            };
            Encoder::new().encode_typed(&h, &body, &mut out).unwrap();
            let s = Seed {
                kind: "put",
                name: "a.txt",
                file_size: 100,
                total_size: 100,
                md5: &md5,
            };
            Encoder::with_profile(Profile::SeedCompat)
                .encode_typed(&s, &body, &mut out)
                .unwrap();
            written += out.len();
            out.clear();
        }
        written
    });
    assert!(written > 100 * 400, "{written}");
    assert_eq!(peak, 0, "octets allocated while encoding typed headers");
}

/// Issue 13 item 4, at the codec: a frame decoded in place and its header read into a
/// borrowed struct (its `kind` a unit enum) cost no heap in steady state, whatever the header's strings hold (spaces,
/// two-, three- and four-octet UTF-8, escapes in members the struct skips) and whatever its
/// integers are (zero, sixteen digits, 2^53−1): every one of these headers is validated by
/// the one-pass scan, never by the general parser's map.
#[test]
fn typed_headers_are_decoded_in_place_without_allocating() {
    #[derive(serde::Deserialize, Debug, Clone, Copy, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Put,
        Get,
        X,
    }
    #[derive(serde::Deserialize, Debug)]
    struct H<'a> {
        kind: Kind,
        #[serde(default)]
        id: Option<u64>,
        #[serde(default, borrow)]
        name: Option<&'a str>,
    }
    let headers = [
        r#"{"kind":"put","id":0,"name":"my file.txt","v":1,"note":"a b"}"#.to_owned(),
        format!(
            r#"{{"kind":"get","name":"données/über","n16":1234567890123456,"id":{MAX_SAFE_INTEGER}}}"#
        ),
        r#"{"kind":"x","name":"日本語","crab":"🦀","e":"\u00e9\n\"\\\/","neg":-7,"t":true,"z":null}"#
            .to_owned(),
    ];
    let mut wire = Vec::new();
    for h in &headers {
        wire.extend_from_slice(&frame_head(h));
    }
    let mut dec = Decoder::new();
    let read_all = |dec: &mut Decoder| {
        let (mut at, mut seen) = (0, [(Kind::X, None, None); 3]);
        for slot in &mut seen {
            let f = dec.decode_ref(&wire[at..]).unwrap().unwrap();
            let h: H<'_> = f.header().unwrap();
            *slot = (h.kind, h.id, h.name.map(str::len));
            at += f.len();
        }
        assert_eq!(at, wire.len());
        seen
    };
    let warm = read_all(&mut dec); // the decoder's member table is made on first use
    assert_eq!(
        warm,
        [
            (Kind::Put, Some(0), Some(11)),
            (
                Kind::Get,
                Some(MAX_SAFE_INTEGER),
                Some("données/über".len())
            ),
            (Kind::X, None, Some(9)),
        ]
    );
    let (seen, peak) = measure(|| {
        let mut seen = [(Kind::X, None, None); 3];
        for _ in 0..100 {
            seen = read_all(&mut dec);
        }
        seen
    });
    assert_eq!(seen, warm);
    assert_eq!(
        peak, 0,
        "octets allocated while decoding typed headers in place"
    );
}

#[test]
fn streaming_1gib_body_in_constant_memory() {
    const BODY: u64 = 1 << 30;
    let head = frame_head(&format!("{{\"kind\":\"blob\",\"body_len\":{BODY}}}"));
    let source = vec![0x5au8; CHUNK];
    let (streamed, peak) = measure(|| {
        let limits = Limits::new().with_max_body_len(BODY);
        let mut dec = Decoder::with(Profile::Lhp1, limits);
        let mut buf = BytesMut::with_capacity(CHUNK);
        buf.extend_from_slice(&head);
        let mut streamed = 0u64;
        let mut fed = 0u64;
        let mut ended = false;
        while !ended {
            loop {
                match dec.decode_event(&mut buf) {
                    Ok(Some(Event::Head(h))) => assert_eq!(h.body_len(), BODY),
                    // Dropped at once, as a shell writing to disk would.
                    Ok(Some(Event::Body(chunk))) => streamed += chunk.len() as u64,
                    Ok(Some(Event::End)) => {
                        ended = true;
                        break;
                    }
                    Ok(None) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            if !ended {
                assert!(fed < BODY, "decoder wants more than the body");
                buf.extend_from_slice(&source);
                fed += CHUNK as u64;
            }
        }
        assert_eq!(dec.finish(&buf), Ok(()));
        streamed
    });
    assert_eq!(streamed, BODY);
    // One chunk of buffer, plus the decoder's state and the header: well under 16 KiB.
    let bound = CHUNK as u64 + 16 * KIB;
    assert!(
        peak <= bound,
        "streaming 1 GiB peaked at {peak} octets (bound {bound})"
    );
    eprintln!("streaming 1 GiB in 64 KiB chunks: peak live allocation {peak} octets");
}

/// Feeds `input` in `sizes`-cycled chunks through `decode` or `decode_event`, dropping every
/// frame and chunk at once. The caller's buffer is sized for the whole input before the
/// measurement starts, so what is measured is the decoder's own memory.
fn feed(profile: Profile, input: &[u8], sizes: &[usize], streaming: bool) -> u64 {
    let mut buf = BytesMut::with_capacity(input.len().max(1));
    let ((), peak) = measure(|| {
        let mut dec = Decoder::with(profile, open_limits());
        let mut rest = input;
        let mut i = 0;
        'feed: while !rest.is_empty() {
            let n = sizes[i % sizes.len()].min(rest.len());
            i += 1;
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            buf.extend_from_slice(chunk);
            loop {
                let more = if streaming {
                    dec.decode_event(&mut buf).map(|e| e.is_some())
                } else {
                    dec.decode(&mut buf).map(|f| f.is_some())
                };
                match more {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(_) => break 'feed,
                }
            }
        }
        let _ = dec.finish(&buf);
    });
    peak
}

/// A stream that makes claims: a raw prefix claim, or a real header whose `body_len` (or, in
/// seed-compat, `file_size`) claims up to 2^53−1 octets, then some of the claimed octets.
fn claims() -> impl Strategy<Value = (Profile, Vec<u8>)> {
    let profile = prop_oneof![Just(Profile::Lhp1), Just(Profile::SeedCompat)];
    let raw_prefix =
        (any::<u32>(), prop::collection::vec(any::<u8>(), 0..2048)).prop_map(|(claim, tail)| {
            let mut v = claim.to_be_bytes().to_vec();
            v.extend(tail);
            v
        });
    let body_claim = (
        prop_oneof![
            0..=MAX_SAFE_INTEGER,
            MAX_SAFE_INTEGER - 10..=MAX_SAFE_INTEGER,
            0..4096u64
        ],
        prop::collection::vec(any::<u8>(), 0..4096),
        any::<bool>(),
    )
        .prop_map(|(claim, body, seed_name)| {
            let member = if seed_name { "file_size" } else { "body_len" };
            (claim, body, member)
        });
    (
        profile,
        prop_oneof![raw_prefix.prop_map(Err), body_claim.prop_map(Ok)],
    )
        .prop_map(|(profile, shape)| {
            let input = match shape {
                Err(raw) => raw,
                Ok((claim, body, member)) => {
                    let header = format!("{{\"kind\":\"put\",\"{member}\":{claim}}}");
                    let len = header.len() as u32;
                    let mut v = match profile {
                        Profile::SeedCompat => len.to_le_bytes().to_vec(),
                        _ => len.to_be_bytes().to_vec(),
                    };
                    v.extend_from_slice(header.as_bytes());
                    v.extend(body);
                    v
                }
            };
            (profile, input)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_claims_cost_at_most_input_plus_constant(
        (profile, input) in claims(),
        sizes in prop::collection::vec(1usize..=700, 1..16),
    ) {
        for streaming in [false, true] {
            let peak = feed(profile, &input, &sizes, streaming);
            let bound = input.len() as u64 + 16 * KIB;
            prop_assert!(
                peak <= bound,
                "peak {} > bound {} (input {} octets, streaming {})",
                peak, bound, input.len(), streaming
            );
        }
    }
}
