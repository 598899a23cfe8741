//! Write the synthetic 512×512×N series of the benchmarks to a folder, so that
//! the Python side of the comparison (`benches/compare/run.sh`) reads the same
//! files as ct-triage.
//!
//! ```text
//! ctt-synth OUT_DIR [SLICES]     # SLICES defaults to 300
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use ct_triage_benches::{synthetic_series, write_series};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(out), rest) = (args.first(), args.get(1..).unwrap_or_default()) else {
        eprintln!("usage: ctt-synth OUT_DIR [SLICES]");
        return ExitCode::from(2);
    };
    let slices = match rest.first().map(|s| s.parse::<usize>()) {
        None => 300,
        Some(Ok(n)) if n >= 2 => n,
        Some(_) => {
            eprintln!("SLICES must be an integer ≥ 2");
            return ExitCode::from(2);
        }
    };
    let dir = PathBuf::from(out);
    let files = synthetic_series(slices);
    if let Err(e) = write_series(&files, &dir) {
        eprintln!("writing {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
    eprintln!(
        "wrote {} files ({:.1} MB) to {}",
        files.len(),
        bytes as f64 / 1e6,
        dir.display()
    );
    ExitCode::SUCCESS
}
