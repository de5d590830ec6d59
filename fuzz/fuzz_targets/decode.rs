//! `decode`: arbitrary bytes under an arbitrary profile and limits (see `fuzz/src/lib.rs` for
//! the input layout). Invariants: no panic; offsets and consumed counts never exceed the
//! input; errors are sticky; every decoded frame re-encodes with the same profile, decodes
//! again to an equal frame, and that canonical encoding is a byte-for-byte fixpoint.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| lhp_fuzz::decode_target(data, None));
