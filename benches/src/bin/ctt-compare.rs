//! The ct-triage side of the side-by-side comparison with the Python stack
//! (`benches/compare/run.sh`; the Python side is `ingest_pydicom.py` and
//! `chain_python.py` next to it). Prints one JSON object to stdout.
//!
//! ```text
//! ctt-compare ingest DIR [--reps N] [--warmup N]
//! ctt-compare chain  DIR [--reps N] [--warmup N]
//! ```
//!
//! * `ingest`: read every file of `DIR` into memory, then
//!   `ingest::load` with the default `IngestOptions` to an HU volume. The read
//!   and the parse + HU phases are timed separately.
//! * `chain`: the preprocessing chain of the pipeline, stage by stage: read +
//!   `ingest::load`, `resample::to_isotropic` at the model's 1 mm,
//!   `lungs::segment` and `candidates::detect` with default options.
//!
//! Times are medians over `--reps` repetitions (default 3) after `--warmup`
//! untimed ones (default 1). Threads: rayon's global pool, so set
//! `RAYON_NUM_THREADS` to pin them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use ct_triage_benches::{inputs, read_folder};
use ct_triage_core::candidates::{self, CandidateOptions, Channel};
use ct_triage_core::ingest::{self, IngestOptions};
use ct_triage_core::lungs::{self, LungOptions};
use ct_triage_core::progress::NoProgress;
use ct_triage_core::resample;
use serde_json::{Value, json};

/// Isotropic spacing the pipeline resamples to (the shipped model's `spacing_mm`).
const ISO_MM: f64 = 1.0;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((mode, dir, reps, warmup)) = parse_args(&args) else {
        eprintln!("usage: ctt-compare ingest|chain DIR [--reps N] [--warmup N]");
        return ExitCode::from(2);
    };
    let out = match mode.as_str() {
        "ingest" => run_ingest(&dir, reps, warmup),
        "chain" => run_chain(&dir, reps, warmup),
        _ => unreachable!("checked by parse_args"),
    };
    match out {
        Ok(v) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&v).expect("serialisable")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ctt-compare {mode}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(args: &[String]) -> Option<(String, PathBuf, usize, usize)> {
    let mode = args.first()?.clone();
    if mode != "ingest" && mode != "chain" {
        return None;
    }
    let dir = PathBuf::from(args.get(1)?);
    let (mut reps, mut warmup) = (3, 1);
    let mut it = args[2..].iter();
    while let Some(flag) = it.next() {
        let value: usize = it.next()?.parse().ok()?;
        match flag.as_str() {
            "--reps" => reps = value.max(1),
            "--warmup" => warmup = value,
            _ => return None,
        }
    }
    Some((mode, dir, reps, warmup))
}

/// Median of a non-empty list of seconds.
fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Smallest of a non-empty list of seconds (least disturbed by other load).
fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

/// The three load averages from `/proc/loadavg` (empty elsewhere).
fn loadavg() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| {
            s.split_whitespace()
                .take(3)
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The common header of both modes.
fn header(stage: &str, dir: &Path, reps: usize, warmup: usize) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("tool".into(), json!("ct-triage"));
    m.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
    m.insert("stage".into(), json!(stage));
    m.insert("series_dir".into(), json!(dir.display().to_string()));
    m.insert("threads".into(), json!(rayon::current_num_threads()));
    m.insert(
        "rayon_num_threads_env".into(),
        json!(std::env::var("RAYON_NUM_THREADS").ok()),
    );
    m.insert("reps".into(), json!(reps));
    m.insert("warmup".into(), json!(warmup));
    m.insert("loadavg_before".into(), json!(loadavg()));
    m
}

fn run_ingest(dir: &Path, reps: usize, warmup: usize) -> Result<Value, String> {
    let mut out = header("ingest", dir, reps, warmup);
    let opts = IngestOptions::default();
    let (mut read_s, mut parse_s, mut total_s) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = None;
    for rep in 0..warmup + reps {
        let t0 = Instant::now();
        let files = read_folder(dir);
        let t1 = Instant::now();
        let (_, series) =
            ingest::load(&inputs(&files), &opts, &NoProgress).map_err(|e| e.to_string())?;
        let t2 = Instant::now();
        if rep >= warmup {
            read_s.push((t1 - t0).as_secs_f64());
            parse_s.push((t2 - t1).as_secs_f64());
            total_s.push((t2 - t0).as_secs_f64());
        }
        let bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
        last = Some((files.len(), bytes, series));
    }
    let (n_files, bytes, series) = last.expect("at least one repetition");
    let hu = series.volume.hu_stats();
    let (med_read, med_parse, med_total) = (median(&read_s), median(&parse_s), median(&total_s));
    out.insert("files".into(), json!(n_files));
    out.insert("bytes".into(), json!(bytes));
    out.insert("size_xyz".into(), json!(series.volume.geometry.size));
    out.insert("spacing_mm".into(), json!(series.volume.geometry.spacing));
    out.insert(
        "hu".into(),
        json!({"dtype": "i16", "min": hu.min, "max": hu.max, "mean": hu.mean}),
    );
    out.insert(
        "times_s".into(),
        json!({"read": read_s, "parse_hu": parse_s, "total": total_s}),
    );
    out.insert(
        "median_s".into(),
        json!({"read": med_read, "parse_hu": med_parse, "total": med_total}),
    );
    out.insert(
        "min_s".into(),
        json!({"read": min(&read_s), "parse_hu": min(&parse_s), "total": min(&total_s)}),
    );
    out.insert(
        "mb_per_s".into(),
        json!({
            "in_memory": bytes as f64 / 1e6 / med_parse,
            "from_disk": bytes as f64 / 1e6 / med_total,
        }),
    );
    out.insert("loadavg_after".into(), json!(loadavg()));
    Ok(Value::Object(out))
}

fn run_chain(dir: &Path, reps: usize, warmup: usize) -> Result<Value, String> {
    let mut out = header("chain", dir, reps, warmup);
    let e = |e: ct_triage_core::Error| e.to_string();
    let ea = |e: ct_triage_core::AnalysisError| e.to_string();
    let stages = ["load", "resample", "lungs", "candidates", "total"];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); stages.len()];
    let mut last = None;
    for rep in 0..warmup + reps {
        let t0 = Instant::now();
        // load: read the files and ingest them to HU (as `ingest` above).
        let files = read_folder(dir);
        let (_, series) =
            ingest::load(&inputs(&files), &IngestOptions::default(), &NoProgress).map_err(e)?;
        drop(files);
        let t1 = Instant::now();
        // resample: trilinear to 1 mm isotropic (pipeline::analyze does the same).
        let iso = resample::to_isotropic(&series.volume, ISO_MM, &NoProgress).map_err(ea)?;
        let t2 = Instant::now();
        // lungs: body, aerated lung, closed and hole-filled lung region.
        let masks = lungs::segment(&iso, &LungOptions::default(), &NoProgress).map_err(ea)?;
        let t3 = Instant::now();
        // candidates: DoG blobs in the lung region (+ mass path), NMS, capped at 64.
        let cands = candidates::detect(&iso, &masks, &CandidateOptions::default(), &NoProgress)
            .map_err(ea)?;
        let t4 = Instant::now();
        if rep >= warmup {
            for (i, (a, b)) in [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t0, t4)]
                .into_iter()
                .enumerate()
            {
                times[i].push((b - a).as_secs_f64());
            }
        }
        last = Some((iso, masks, cands));
    }
    let (iso, masks, cands) = last.expect("at least one repetition");
    let cands = cands.candidates;
    let voxel_ml = iso.geometry.voxel_volume_mm3() / 1000.0;
    let region_voxels = masks.region.iter().filter(|&&l| l != 0).count();
    let aerated_voxels = masks.aerated.iter().filter(|&&l| l != 0).count();
    let count =
        |c: &[candidates::Candidate], ch: Channel| c.iter().filter(|c| c.channel == ch).count();
    let opts = CandidateOptions::default();
    out.insert("iso_size_xyz".into(), json!(iso.geometry.size));
    out.insert(
        "times_s".into(),
        Value::Object(
            stages
                .iter()
                .zip(&times)
                .map(|(s, t)| (s.to_string(), json!(t)))
                .collect(),
        ),
    );
    out.insert(
        "median_s".into(),
        Value::Object(
            stages
                .iter()
                .zip(&times)
                .map(|(s, t)| (s.to_string(), json!(median(t))))
                .collect(),
        ),
    );
    out.insert(
        "min_s".into(),
        Value::Object(
            stages
                .iter()
                .zip(&times)
                .map(|(s, t)| (s.to_string(), json!(min(t))))
                .collect(),
        ),
    );
    out.insert(
        "outputs".into(),
        json!({
            "air_threshold_hu": LungOptions::default().air_hu,
            "lung_aerated_ml": aerated_voxels as f64 * voxel_ml,
            "lung_region_ml": region_voxels as f64 * voxel_ml,
            "lung_right_ml": masks.summary.right_ml,
            "lung_left_ml": masks.summary.left_ml,
            "lung_z_range": masks.z_range,
            "candidates": cands.len(),
            "candidates_solid": count(&cands, Channel::Solid),
            "candidates_subsolid": count(&cands, Channel::Subsolid),
            "candidates_mass": count(&cands, Channel::Mass),
            "budgets": [opts.solid_budget, opts.subsolid_budget, opts.mass_budget],
            "min_response_hu": opts.min_response,
        }),
    );
    out.insert("loadavg_after".into(), json!(loadavg()));
    Ok(Value::Object(out))
}
