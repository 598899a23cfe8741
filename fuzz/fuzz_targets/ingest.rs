//! Fuzz the ingest entry point: arbitrary bytes as one or several files,
//! through scan (parse, group, select) and load (order, decode to HU).
//! Any panic is a bug; errors are expected.
#![no_main]

use ct_triage_core::ingest::{self, IngestOptions, InputFile, Limits};
use ct_triage_core::progress::NoProgress;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Split the input into up to 4 "files" at 0xFF 0x00 0xFF 0x00 markers so
    // the fuzzer can also build multi-file series.
    let mut parts: Vec<&[u8]> = data.split(|&b| b == 0xA5).take(4).collect();
    if parts.is_empty() {
        parts.push(data);
    }
    let names = ["a.dcm", "b.dcm", "c.dcm", "d.dcm"];
    let files: Vec<InputFile> = parts
        .iter()
        .zip(names)
        .map(|(b, n)| InputFile::new(n, b))
        .collect();
    let limits = Limits::default()
        .max_frame_pixels(1 << 20)
        .max_frames(64)
        .max_volume_voxels(1 << 24);
    let opts = IngestOptions::default().limits(limits).min_slices(1);
    if let Ok(scan) = ingest::scan(&files, &opts, &NoProgress) {
        let _ = serde_json::to_string(scan.inventory());
        let _ = scan.load(&opts, &NoProgress);
    }
});
