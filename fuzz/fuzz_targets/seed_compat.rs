//! `seed_compat`: the `decode` target with the profile forced to `seed-compat` (signed
//! little-endian prefix, `file_size`/`total_size`, `md5`), so the fuzzer spends all its time
//! on the dialect of the seeds' Python programs.
#![no_main]

use lhp_codec::Profile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| lhp_fuzz::decode_target(data, Some(Profile::SeedCompat)));
