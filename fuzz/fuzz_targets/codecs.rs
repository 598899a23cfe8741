//! Fuzz the pure-Rust codecs on raw codestreams (no DICOM around them): the
//! first byte picks JPEG-LS or 12-bit JPEG, the rest is the codestream.
#![no_main]

use ct_triage_codecs::{jpeg12, jpegls};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, code)) = data.split_first() else {
        return;
    };
    let limit = 1 << 20;
    if which & 1 == 0 {
        let _ = jpegls::decode(code, limit);
    } else {
        let _ = jpeg12::decode(code, limit);
    }
});
