//! The analysis pipeline: the stages chained with typed values between them.
//!
//! ```text
//! &[InputFile] ─ingest→ LoadedSeries ─resample→ iso Volume ─lungs→ LungMasks
//!   ─candidates→ Vec<Candidate> ─classify→ scored candidates ─measure→ Measurements
//!   ─risk/lungrads/triage→ Findings + Exam ─report→ Report + key images
//! ```
//!
//! Every adapter (CLI, server, browser) calls [`analyze`] (or
//! [`analyze_series`] with a series it already loaded) and gets the same
//! [`Analysis`]. Progress and cancellation go through [`Progress`].
//!
//! ```no_run
//! use ct_triage_core::pipeline::{analyze, AnalysisOptions};
//! use ct_triage_core::ingest::InputFile;
//! use ct_triage_core::progress::NoProgress;
//! # fn classifier() -> Box<dyn ct_triage_core::classify::Classifier> { unimplemented!() }
//! let bytes: Vec<(String, Vec<u8>)> = vec![];
//! let files: Vec<InputFile> = bytes.iter().map(|(n, b)| InputFile::new(n, b)).collect();
//! let analysis = analyze(&files, &AnalysisOptions::default(), classifier().as_ref(), &NoProgress)?;
//! println!("{} {:?}", analysis.report.exam.triage_priority.as_str(), analysis.report.exam.lung_rads);
//! # Ok::<(), ct_triage_core::Error>(())
//! ```

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::candidates::{self, Candidate, CandidateOptions, CandidateSource};
use crate::classify::{Classifier, extract_patch_into};
use crate::error::{Error, Result};
use crate::ingest::{self, IngestOptions, InputFile, LoadedSeries, Severity, Warning};
use crate::lungs::{self, LungOptions};
use crate::measure::{self, FindingMask, MeasureOptions, Measurement};
use crate::progress::{Progress, Stage};
use crate::report::{
    CandidateSummary, DISCLAIMER, Finding, Generator, InputSummary, KeyImageRef, LIMITS,
    PatientContext, REPORT_SCHEMA, Report, key_images,
};
use crate::resample;
use crate::triage::TriageRules;

/// What the caller knows about the patient beyond the DICOM header.
/// Anything left `None` comes from DICOM (age, sex) or a stated default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PatientOverrides {
    /// Age in years (overrides DICOM).
    pub age_years: Option<f64>,
    /// Female sex (overrides DICOM).
    pub female: Option<bool>,
    /// Family history of lung cancer. Default: no.
    pub family_history: Option<bool>,
    /// Emphysema. Default: from CT, %LAA-950 ≥ 5 % of lung volume.
    pub emphysema: Option<bool>,
}

/// Options of the whole pipeline. Defaults are documented per field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisOptions {
    /// Ingest options (limits, series choice). Default: [`IngestOptions::default`].
    pub ingest: IngestOptions,
    /// Lung stage. Default: [`LungOptions::default`].
    pub lungs: LungOptions,
    /// Candidate stage. Default: [`CandidateOptions::default`].
    pub candidates: CandidateOptions,
    /// Measurement stage. Default: [`MeasureOptions::default`].
    pub measure: MeasureOptions,
    /// Triage thresholds. Default: [`TriageRules::default`].
    pub triage: TriageRules,
    /// Patient information from the caller. Default: none.
    pub patient: PatientOverrides,
    /// Fewest slices for a conclusive result. Default 16.
    pub min_slices: usize,
    /// Shortest lung extent (mm) for a conclusive result. Default 80 mm.
    pub min_lung_extent_mm: f64,
    /// Most findings reported. Default 10.
    pub max_findings: usize,
    /// Render key images. Default true.
    pub key_images: bool,
    /// Patches per classifier call. Default 32.
    pub batch_size: usize,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        AnalysisOptions {
            ingest: IngestOptions::default().min_slices(3),
            lungs: LungOptions::default(),
            candidates: CandidateOptions::default(),
            measure: MeasureOptions::default(),
            triage: TriageRules::default(),
            patient: PatientOverrides::default(),
            min_slices: 16,
            min_lung_extent_mm: 80.0,
            max_findings: 10,
            key_images: true,
            batch_size: 32,
        }
    }
}

/// A rendered key image.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyImage {
    /// Finding id.
    pub finding_id: u32,
    /// File name relative to the output folder (`key-images/finding-N.png`).
    pub file: String,
    /// PNG bytes: overview and zoomed inset side by side.
    pub png: Vec<u8>,
    /// The panels (overview at the source pixel size, zoomed inset), each
    /// written as a Secondary Capture with its own pixel spacing.
    pub panels: key_images::RenderedKeyImage,
}

/// Everything one analysis produced.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The report.
    pub report: Report,
    /// Key images (PNG), one per finding.
    pub key_images: Vec<KeyImage>,
    /// Segmentation of each finding on the source grid, in report order.
    pub masks: Vec<FindingMask>,
    /// The loaded series (volume, metadata, slice references) for viewers, SR and SEG.
    pub series: LoadedSeries,
}

/// Times stages and keeps them in a sorted map.
struct Timer(BTreeMap<String, f64>, web_time::Instant);

impl Timer {
    fn new() -> Self {
        Timer(BTreeMap::new(), web_time::Instant::now())
    }
    fn lap(&mut self, stage: Stage) {
        let now = web_time::Instant::now();
        let ms = (now - self.1).as_secs_f64() * 1000.0;
        self.0
            .insert(stage.name().to_string(), (ms * 10.0).round() / 10.0);
        self.1 = now;
    }
}

/// Ingest `files` and analyse the selected series.
pub fn analyze(
    files: &[InputFile],
    opts: &AnalysisOptions,
    classifier: &dyn Classifier,
    progress: &dyn Progress,
) -> Result<Analysis> {
    let mut timer = Timer::new();
    let scan = ingest::scan(files, &opts.ingest, progress)?;
    let series = scan.load(&opts.ingest, progress)?;
    timer.lap(Stage::Ingest);
    let skipped = scan.inventory().skipped.len();
    analyze_loaded(
        series,
        files.len(),
        skipped,
        opts,
        classifier,
        progress,
        timer,
    )
}

/// Analyse a series that is already loaded.
pub fn analyze_series(
    series: LoadedSeries,
    opts: &AnalysisOptions,
    classifier: &dyn Classifier,
    progress: &dyn Progress,
) -> Result<Analysis> {
    let files = series.slices.len();
    analyze_loaded(series, files, 0, opts, classifier, progress, Timer::new())
}

/// A candidate with its model outputs.
struct Scored {
    cand: Candidate,
    probs: BTreeMap<String, f32>,
}

fn analyze_loaded(
    series: LoadedSeries,
    files: usize,
    skipped: usize,
    opts: &AnalysisOptions,
    classifier: &dyn Classifier,
    progress: &dyn Progress,
    mut timer: Timer,
) -> Result<Analysis> {
    let manifest = classifier.manifest();
    let mut warnings = series.warnings.clone();

    // Resample.
    let iso = resample::to_isotropic(&series.volume, manifest.input.spacing_mm, progress)?;
    timer.lap(Stage::Resample);

    // Lungs.
    let lungs = lungs::segment(&iso, &opts.lungs, progress)?;
    timer.lap(Stage::Lungs);
    let n_slices = series.volume.geometry.size[2];
    let mut inconclusive = lungs.inconclusive.clone();
    if inconclusive.is_none() && n_slices < opts.min_slices {
        inconclusive = Some(format!(
            "too few slices ({n_slices}) for a volumetric analysis (at least {})",
            opts.min_slices
        ));
    }
    if inconclusive.is_none() && lungs.summary.extent_mm < opts.min_lung_extent_mm {
        inconclusive = Some(format!(
            "the scan covers only {:.0} mm of lung (at least {:.0} mm needed)",
            lungs.summary.extent_mm, opts.min_lung_extent_mm
        ));
    }
    let partial = lungs.summary.truncated.then(|| {
        "the lungs extend beyond the scanned range: regions outside it were not assessed"
            .to_string()
    });
    if let Some(p) = &partial {
        warnings.push(Warning::new(
            "partial_coverage",
            Severity::Warning,
            p.clone(),
        ));
    }

    // Candidates.
    let cands = if inconclusive.is_none() {
        candidates::detect(&iso, &lungs, &opts.candidates, progress)?
    } else {
        Vec::new()
    };
    timer.lap(Stage::Candidates);

    // Classify.
    let scored = classify(&iso, cands, classifier, opts.batch_size, progress)?;
    timer.lap(Stage::Classify);
    let detected = scored.len();
    let threshold = manifest.nodule_threshold as f64;
    let mut accepted: Vec<&Scored> = scored
        .iter()
        .filter(|s| {
            let p = s.probs.get("nodule").copied().unwrap_or(0.0) as f64;
            p >= threshold || (s.cand.source == CandidateSource::Mass && p >= threshold / 2.0)
        })
        .collect();
    accepted.sort_by(|a, b| b.probs["nodule"].total_cmp(&a.probs["nodule"]));

    // Measure (parallel, order kept), then drop duplicates of the same lesion.
    let measured: Vec<Option<Measurement>> = accepted
        .par_iter()
        .map(|s| {
            let p = iso.geometry.voxel_to_patient(s.cand.center_xyz);
            measure::measure(
                &series.volume,
                &iso,
                &lungs,
                p,
                s.cand.radius_mm,
                &opts.measure,
            )
        })
        .collect();
    if progress.is_cancelled() {
        return Err(Error::Cancelled);
    }
    let mut kept: Vec<(&Scored, Measurement)> = Vec::new();
    for (s, m) in accepted.iter().zip(measured) {
        let Some(m) = m else { continue };
        let c = m.center_voxel_xyz.map(|v| v.round().max(0.0) as usize);
        let dup = kept.iter().any(|(_, k)| {
            k.mask.contains(c)
                || m.mask
                    .contains(k.center_voxel_xyz.map(|v| v.round().max(0.0) as usize))
        });
        if !dup {
            kept.push((s, m));
        }
    }
    progress.progress(Stage::Measure, 1.0);
    timer.lap(Stage::Measure);

    // Risk, Lung-RADS, suspicion, triage.
    // ---- issue 12: clinical rules in core::assess (lobe, Brock, Lung-RADS, triage) ----
    let patient = patient_context(&series, &opts.patient, lungs.summary.laa950_fraction);
    let anatomy = crate::anatomy::LungAnatomy::estimate(&iso, &lungs);
    let ctx = crate::assess::Context {
        patient: &patient,
        anatomy: &anatomy,
        series: &series,
        rules: &opts.triage,
        nodule_count: kept.len(),
    };
    let mut findings: Vec<(Finding, FindingMask)> = kept
        .into_iter()
        .map(|(s, m)| (crate::assess::finding(&m, &s.probs, &ctx), m.mask))
        .collect();
    findings.sort_by(|a, b| {
        b.0.suspicion
            .total_cmp(&a.0.suspicion)
            .then(b.0.diameter_mm.total_cmp(&a.0.diameter_mm))
    });
    findings.truncate(opts.max_findings);
    for (i, (f, _)) in findings.iter_mut().enumerate() {
        f.id = i as u32 + 1;
        f.tracking_uid = tracking_uid(&series.meta.series_instance_uid, f);
    }
    let exam = {
        let mut fs: Vec<Finding> = findings.iter().map(|(f, _)| f.clone()).collect();
        let e = crate::assess::exam(&mut fs, inconclusive.clone(), partial, &opts.triage);
        for ((f, _), g) in findings.iter_mut().zip(fs) {
            *f = g;
        }
        e
    };
    if lungs.inconclusive.is_none()
        && let Some(w) = crate::quality::motion_warning(&iso, &lungs, &series.volume)
    {
        warnings.push(w);
    }
    warnings.push(crate::quality::needs_prior_exams(findings.len()));
    // ---- end issue 12 ----
    timer.lap(Stage::Triage);

    // Report and key images.
    let mut key_images_out = Vec::new();
    let mut key_refs = Vec::new();
    if opts.key_images {
        let rendered: Vec<Result<key_images::RenderedKeyImage>> = findings
            .par_iter()
            .map(|(f, m)| key_images::render_finding(&series.volume, f, m))
            .collect();
        for ((f, _), png) in findings.iter().zip(rendered) {
            let file = format!("key-images/finding-{}.png", f.id);
            key_refs.push(KeyImageRef {
                finding_id: f.id,
                file: file.clone(),
                slice_index: f.slice_index,
                image_number: f.image_number,
                sop_instance_uid: series
                    .slices
                    .get(f.slice_index)
                    .map(|s| s.sop_instance_uid.clone())
                    .unwrap_or_default(),
            });
            let panels = png?;
            key_images_out.push(KeyImage {
                finding_id: f.id,
                file,
                png: panels.composite_png.clone(),
                panels,
            });
        }
    }
    let g = &series.volume.geometry;
    let meta = &series.meta;
    let (findings, masks): (Vec<Finding>, Vec<FindingMask>) = findings.into_iter().unzip();
    let accepted_n = findings.len();
    let mut report = Report {
        schema: REPORT_SCHEMA.to_string(),
        generator: Generator {
            name: "ct-triage".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        model: classifier.id(),
        input: InputSummary {
            study_instance_uid: meta.study_instance_uid.clone(),
            series_instance_uid: meta.series_instance_uid.clone(),
            series_key: series.series_key.clone(),
            modality: meta.modality.clone(),
            study_date: meta.study_date.clone(),
            accession_number: meta.accession_number.clone(),
            patient_id: meta.patient_id.clone(),
            files,
            skipped_files: skipped,
            size_xyz: g.size,
            spacing_mm: g.spacing.map(|v| (v * 1e6).round() / 1e6),
            slice_thickness_mm: series.slice_thickness_mm,
            transfer_syntaxes: series.transfer_syntaxes.clone(),
            manufacturer: meta.manufacturer.clone(),
            convolution_kernel: meta.convolution_kernel.clone(),
        },
        patient,
        warnings,
        lungs: (lungs.summary.right_ml + lungs.summary.left_ml > 0.0)
            .then(|| lungs.summary.clone()),
        candidates: CandidateSummary {
            detected,
            classified: detected,
            accepted: accepted_n,
            threshold,
        },
        findings,
        exam,
        key_images: key_refs,
        timings_ms: BTreeMap::new(),
        disclaimer: DISCLAIMER.to_string(),
        limits: LIMITS.iter().map(|s| s.to_string()).collect(),
    };
    progress.progress(Stage::Report, 1.0);
    timer.lap(Stage::Report);
    let total: f64 = timer.0.values().sum();
    timer
        .0
        .insert("total".into(), (total * 10.0).round() / 10.0);
    report.timings_ms = timer.0;
    Ok(Analysis {
        report,
        key_images: key_images_out,
        masks,
        series,
    })
}

/// Extract patches in parallel and run them through the classifier in batches.
fn classify(
    iso: &crate::volume::Volume,
    cands: Vec<Candidate>,
    classifier: &dyn Classifier,
    batch: usize,
    progress: &dyn Progress,
) -> Result<Vec<Scored>> {
    let m = classifier.manifest();
    let patch = m.input.patch_zyx;
    let per = patch.iter().product::<usize>();
    let n_out = m.outputs.len();
    let mut out = Vec::with_capacity(cands.len());
    let total = cands.len().max(1);
    for chunk in cands.chunks(batch.max(1)) {
        if progress.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let patches: Vec<Vec<f32>> = chunk
            .par_iter()
            .map(|c| {
                let mut v = Vec::with_capacity(per);
                extract_patch_into(iso, c.center_xyz, patch, &m.input.normalization, &mut v);
                v
            })
            .collect();
        let flat: Vec<f32> = patches.concat();
        let raw = classifier.infer(&flat, chunk.len())?;
        if raw.len() != chunk.len() * n_out {
            return Err(Error::Model(format!(
                "classifier returned {} values for {} patches × {n_out} outputs",
                raw.len(),
                chunk.len()
            )));
        }
        for (c, row) in chunk.iter().zip(raw.chunks(n_out)) {
            let probs = m.probabilities(row).into_iter().collect();
            out.push(Scored {
                cand: c.clone(),
                probs,
            });
        }
        progress.progress(Stage::Classify, out.len() as f64 / total as f64);
    }
    Ok(out)
}

/// Patient context for the risk model, recording where each value came from.
fn patient_context(series: &LoadedSeries, o: &PatientOverrides, laa950: f64) -> PatientContext {
    let (age_years, age_source) = match (o.age_years, series.meta.patient_age_years) {
        (Some(a), _) => (a, "caller"),
        (None, Some(a)) => (a, "dicom"),
        (None, None) => (62.0, "default"),
    };
    let dicom_female = match series.meta.patient_sex.as_deref() {
        Some("F") => Some(true),
        Some("M") => Some(false),
        _ => None,
    };
    let (female, sex_source) = match (o.female, dicom_female) {
        (Some(f), _) => (f, "caller"),
        (None, Some(f)) => (f, "dicom"),
        (None, None) => (false, "default"),
    };
    let history_source = if o.family_history.is_some() {
        "caller"
    } else {
        "default"
    };
    PatientContext {
        age_years,
        age_source: age_source.into(),
        female,
        sex_source: sex_source.into(),
        family_history: o.family_history.unwrap_or(false),
        emphysema: o.emphysema.unwrap_or(laa950 >= 0.05),
        history_source: history_source.into(),
    }
}

/// A deterministic UID (`2.25.<decimal>`) for a finding, from the series UID and its position.
fn tracking_uid(series_uid: &str, f: &Finding) -> String {
    let mut h = Sha256::new();
    h.update(series_uid.as_bytes());
    h.update(format!("{:?}{}", f.center_lps_mm, f.id).as_bytes());
    let d = h.finalize();
    let mut v = [0u8; 16];
    v.copy_from_slice(&d[..16]);
    v[0] &= 0x7f; // keep it below 2^127 so the decimal stays ≤ 39 digits
    format!("2.25.{}", u128::from_be_bytes(v))
}
