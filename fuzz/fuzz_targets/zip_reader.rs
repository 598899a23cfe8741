//! Fuzz the zip reader of uploads and `gather` (`input::read_zip_bytes`):
//! arbitrary bytes as an archive, read within small limits (4 MiB in all,
//! ratio 100 past 64 KiB) so that a bomb the fuzzer builds is refused
//! rather than slowing it down. Any panic, or unpacking beyond the limits,
//! is a bug; errors are expected.
#![no_main]

use ct_triage_native::input::{Gathered, ZipLimits, read_zip_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = ZipLimits {
        max_member_bytes: 2 << 20,
        max_total_bytes: 4 << 20,
        max_ratio: 100,
        ratio_floor_bytes: 64 << 10,
        max_members: 1000,
    };
    let mut got = Gathered::default();
    if read_zip_bytes("fuzz.zip", data, &limits, &mut got).is_ok() {
        assert!(got.total_bytes() <= limits.max_total_bytes);
        assert!(got.files.iter().all(|f| f.bytes.len() as u64 <= limits.max_member_bytes));
    }
});
