//! Fuzz the pixel decoder entry point (every transfer syntax, stored values).
#![no_main]

use ct_triage_core::ingest::{self, InputFile, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default().max_frame_pixels(1 << 20).max_frames(64);
    let _ = ingest::decode_stored(InputFile::new("fuzz.dcm", data), &limits);
});
