//! Developer tool: run ingest → resample → lungs on a folder and write the
//! isotropic HU volume and the lung region as raw little-endian files, to look
//! at the stages' output (e.g. with numpy). Not part of the product.
//!
//! `cargo run --release -p ct-triage-core --example dump_stage -- <dicom dir> <out prefix>`

use ct_triage_core::ingest::{self, IngestOptions, InputFile};
use ct_triage_core::lungs::{self, LungOptions};
use ct_triage_core::progress::NoProgress;
use ct_triage_core::resample::to_isotropic;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (dir, out) = (&args[1], &args[2]);
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        files.push((p.display().to_string(), std::fs::read(&p)?));
    }
    let inputs: Vec<InputFile> = files.iter().map(|(n, b)| InputFile::new(n, b)).collect();
    let opts = IngestOptions::default();
    let scan = ingest::scan(&inputs, &opts, &NoProgress)?;
    let series = scan.load(&opts, &NoProgress)?;
    let iso = to_isotropic(&series.volume, 1.0, &NoProgress)?;
    let t = std::time::Instant::now();
    let mut lo = LungOptions::default();
    if let Ok(v) = std::env::var("LESION_CLOSING_MM") {
        lo.lesion_closing_mm = v.parse()?;
    }
    let l = lungs::segment(&iso, &lo, &NoProgress)?;
    eprintln!("lungs {:?} {:?}", t.elapsed(), l.summary);
    let (nz, ny, nx) = iso.hu.dim();
    let hu: Vec<u8> = iso.hu.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(format!("{out}.hu.i16"), hu)?;
    std::fs::write(
        format!("{out}.region.u8"),
        l.region.iter().copied().collect::<Vec<u8>>(),
    )?;
    std::fs::write(format!("{out}.shape"), format!("{nz} {ny} {nx}"))?;
    Ok(())
}
