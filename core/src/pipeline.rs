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

use crate::assess::{round3, round4};
use crate::candidates::{self, Candidate, CandidateOptions, Channel};
use crate::classify::{Classifier, Prediction, extract_patch_scaled_into, patch_scale};
use crate::error::{Error, Result};
use crate::findings::{self, Scored};
pub use crate::findings::{AcceptRules, UnresolvedRules};
use crate::ingest::{self, IngestOptions, InputFile, LoadedSeries, Severity, Warning};
use crate::lungs::{self, LungOptions};
use crate::measure::{self, FindingMask, MeasureOptions, Measurement};
use crate::opacities::{self, Exclusion, OpacityInput, OpacityOptions};
use crate::progress::{Progress, Stage};
pub use crate::report::{Analysis, KeyImage};
use crate::report::{
    CandidateDecision, CandidateRecord, CandidateSummary, DISCLAIMER, Finding, Generator,
    InputSummary, KeyImageRef, LIMITS, PatientContext, REPORT_SCHEMA, Report, key_images,
};
use crate::resample;
use crate::triage::{self, TriageRules};

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
    /// Diffuse-opacity stage. Default: [`OpacityOptions::default`].
    #[serde(default)]
    pub opacities: OpacityOptions,
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
    /// Per-channel acceptance rules. Default: [`AcceptRules::default`].
    pub accept: AcceptRules,
    /// What counts as seen but not resolved (it makes a `routine` exam `priority`).
    /// Default: [`UnresolvedRules::default`].
    pub unresolved: UnresolvedRules,
    /// List every candidate in the report (`candidates.items`) with its channel,
    /// scale, classifier outputs and why it was kept or dropped. Default false.
    pub explain: bool,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        AnalysisOptions {
            ingest: IngestOptions::default().min_slices(3),
            lungs: LungOptions::default(),
            candidates: CandidateOptions::default(),
            measure: MeasureOptions::default(),
            opacities: OpacityOptions::default(),
            triage: TriageRules::default(),
            patient: PatientOverrides::default(),
            min_slices: 16,
            min_lung_extent_mm: 80.0,
            max_findings: 10,
            key_images: true,
            batch_size: 32,
            accept: AcceptRules::default(),
            unresolved: UnresolvedRules::default(),
            explain: false,
        }
    }
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
    let detection = if inconclusive.is_none() {
        candidates::detect(&iso, &lungs, &opts.candidates, progress)?
    } else {
        candidates::Detection::empty(&opts.candidates)
    };
    timer.lap(Stage::Candidates);

    // Classify.
    let scored = classify(
        &iso,
        detection.candidates.clone(),
        classifier,
        opts.batch_size,
        progress,
    )?;
    timer.lap(Stage::Classify);
    let detected = scored.len();
    let threshold = manifest.nodule_threshold as f64;
    let plan = findings::Plan::new(&scored, threshold, &opts.accept);

    // Measure (parallel, order kept).
    let measured: Vec<Option<Measurement>> = plan
        .order
        .par_iter()
        .map(|&i| {
            let s = &scored[i];
            let p = iso.geometry.voxel_to_patient(s.cand.center_xyz);
            measure::measure(
                &series.volume,
                &iso,
                &lungs,
                p,
                s.cand.radius_mm,
                match s.cand.channel {
                    Channel::Solid => measure::LesionHint::Solid,
                    Channel::Subsolid => measure::LesionHint::Subsolid,
                    Channel::Mass => measure::LesionHint::Mass,
                },
                &opts.measure,
            )
        })
        .collect();
    if progress.is_cancelled() {
        return Err(Error::Cancelled);
    }
    // Findings: acceptance rules, duplicates of the same lesion.
    let mut accepted = findings::accept(
        &scored,
        plan,
        measured,
        findings::lungs_midline_x(&lungs),
        &iso.geometry,
        &opts.accept,
    );
    let kept = std::mem::take(&mut accepted.kept);
    progress.progress(Stage::Measure, 1.0);
    timer.lap(Stage::Measure);

    // Diffuse opacities (ground glass, consolidation), the focal findings kept out.
    let anatomy = crate::anatomy::LungAnatomy::estimate(&iso, &lungs);
    let (mut opacity, opacity_map) = if inconclusive.is_none() {
        let exclude: Vec<Exclusion> = kept
            .iter()
            .map(|(_, m)| Exclusion::from_mask(&m.mask, &series.volume.geometry))
            .collect();
        let input = OpacityInput {
            iso: &iso,
            lungs: &lungs,
            exclude: &exclude,
            anatomy: Some(&anatomy),
        };
        let mut r = opacities::measure(&input, &opts.opacities, progress)?;
        if let Some((k, n)) = r.most_affected_iso_k {
            let p = iso.geometry.voxel_to_patient([0.0, 0.0, k as f64]);
            let sv = series.volume.geometry.patient_to_voxel(p);
            let idx = (sv[2].round().max(0.0) as usize).min(n_slices.saturating_sub(1));
            let px = iso.geometry.spacing[0] * iso.geometry.spacing[1];
            r.opacities.most_affected_slice = Some(crate::report::AffectedSlice {
                slice_index: idx,
                image_number: series.slices.get(idx).and_then(|s| s.instance_number),
                area_cm2: (n as f64 * px / 100.0 * 10.0).round() / 10.0,
                key_image: None,
            });
        }
        let map =
            opacities::OpacityMap::from_labels(&r.labels, &iso.geometry, &series.volume.geometry);
        (Some(r.opacities), Some(map))
    } else {
        (None, None)
    };
    timer.lap(Stage::Opacities);

    // Risk, Lung-RADS, suspicion, triage.
    // ---- issue 12: clinical rules in core::assess (lobe, Brock, Lung-RADS, triage) ----
    let patient = patient_context(&series, &opts.patient, lungs.summary.laa950_fraction);
    let ctx = crate::assess::Context {
        patient: &patient,
        anatomy: &anatomy,
        series: &series,
        rules: &opts.triage,
        nodule_count: kept.len(),
    };
    let mut findings: Vec<(Finding, FindingMask, usize)> = kept
        .into_iter()
        .map(|(si, m)| {
            let s = &scored[si];
            let f = crate::assess::finding(&m, &s.prediction, s.cand.channel, &ctx);
            (f, m.mask, si)
        })
        .collect();
    findings.sort_by(|a, b| {
        b.0.suspicion
            .total_cmp(&a.0.suspicion)
            .then(b.0.diameter_mm.total_cmp(&a.0.diameter_mm))
    });
    for (f, _, si) in findings.iter().skip(opts.max_findings) {
        accepted.mark_beyond(*si, f.diameter_mm, f.suspicion, opts.max_findings);
    }
    findings.truncate(opts.max_findings);
    let mut finding_of = BTreeMap::new();
    for (i, (f, _, si)) in findings.iter_mut().enumerate() {
        f.id = i as u32 + 1;
        f.tracking_uid = tracking_uid(&series.meta.series_instance_uid, f);
        finding_of.insert(*si, f.id);
        accepted.mark_reported(&scored, *si, f.id, f.long_axis_mm);
    }
    accepted.name_duplicates(&finding_of);
    let unresolved = if inconclusive.is_none() {
        findings::unresolved_reasons(
            &scored,
            &accepted.fates,
            &detection,
            &lungs.summary,
            threshold,
            &opts.unresolved,
            &iso,
        )
    } else {
        Vec::new()
    };
    let exam = {
        let mut fs: Vec<Finding> = findings.iter().map(|(f, _, _)| f.clone()).collect();
        let e = crate::assess::exam(&mut fs, inconclusive.clone(), partial, &opts.triage);
        for ((f, _, _), g) in findings.iter_mut().zip(fs) {
            *f = g;
        }
        let e = triage::escalate_pattern(e, opacity.as_ref(), &opts.triage.pattern);
        triage::escalate_unresolved(e, &unresolved)
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
        let rendered: Vec<ct_triage_analysis::Result<key_images::RenderedKeyImage>> = findings
            .par_iter()
            .map(|(f, m, _)| key_images::render_finding(&series.volume, f, m))
            .collect();
        for ((f, _, _), png) in findings.iter().zip(rendered) {
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
    let mut opacity_key_image = None;
    if opts.key_images
        && let (Some(o), Some(map)) = (opacity.as_mut(), opacity_map.as_ref())
        && let Some(ms) = o.most_affected_slice.as_mut()
    {
        let n = |v: Option<i64>| v.map_or("?".to_string(), |v| v.to_string());
        let caption = [
            format!(
                "Diffuse opacities  Se {} Im {}",
                n(series.meta.series_number),
                n(ms.image_number)
            ),
            format!(
                "ground glass R {:.1} L {:.1} mL",
                o.right.ground_glass_ml, o.left.ground_glass_ml
            ),
            format!(
                "consolidation R {:.1} L {:.1} mL",
                o.right.consolidation_ml, o.left.consolidation_ml
            ),
            format!("CT severity score {}/25", o.ct_severity_score),
        ];
        let k = key_images::render_opacities(&series.volume, map, ms.slice_index, &caption)?;
        ms.key_image = Some(k.file.clone());
        opacity_key_image = Some(k);
    }
    let g = &series.volume.geometry;
    let meta = &series.meta;
    let (findings, masks): (Vec<Finding>, Vec<FindingMask>) =
        findings.into_iter().map(|(f, m, _)| (f, m)).unzip();
    let items = opts.explain.then(|| {
        let rec = |c: &Candidate,
                   outputs: BTreeMap<String, f64>,
                   d: (CandidateDecision, Option<u32>, String),
                   scale: usize| {
            let lps = iso.geometry.voxel_to_patient(c.center_xyz);
            let sv = series.volume.geometry.patient_to_voxel(lps);
            CandidateRecord {
                channel: c.channel,
                center_lps_mm: round3(lps),
                slice_index: (sv[2].round().max(0.0) as usize).min(n_slices.saturating_sub(1)),
                radius_mm: (c.radius_mm * 100.0).round() / 100.0,
                response: (c.response as f64 * 100.0).round() / 100.0,
                patch_scale: scale,
                outputs,
                decision: d.0,
                finding_id: d.1,
                reason: d.2,
                measured: None,
            }
        };
        let patch = manifest.input.patch_zyx;
        let mut v: Vec<CandidateRecord> = scored
            .iter()
            .zip(&accepted.fates)
            .enumerate()
            .map(|(i, (s, fate))| {
                let outputs = s
                    .prediction
                    .to_map()
                    .into_iter()
                    .map(|(k, p)| (k, round4(p as f64)))
                    .collect();
                let id = match fate.decision {
                    CandidateDecision::Finding => finding_of.get(&i).copied(),
                    _ => fate.of.map(|o| o as u32),
                };
                let mut r = rec(
                    &s.cand,
                    outputs,
                    (fate.decision, id, fate.reason.clone()),
                    patch_scale(&s.cand, patch, iso.geometry.spacing[0]),
                );
                r.measured = accepted.measured.get(&i).cloned();
                r
            })
            .collect();
        v.extend(detection.dropped.iter().map(|c| {
            rec(
                c,
                BTreeMap::new(),
                (
                    CandidateDecision::DroppedByBudget,
                    None,
                    format!(
                        "beyond the {} channel's budget of {}",
                        c.channel.as_str(),
                        opts.candidates.budget(c.channel)
                    ),
                ),
                patch_scale(c, patch, iso.geometry.spacing[0]),
            )
        }));
        v
    });
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
        opacities: opacity,
        candidates: CandidateSummary {
            detected,
            classified: detected,
            accepted: accepted_n,
            threshold,
            channels: detection.channels.clone(),
            items,
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
        opacity_map,
        opacity_key_image,
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
                let factor = patch_scale(c, patch, iso.geometry.spacing[0]);
                extract_patch_scaled_into(
                    iso,
                    c.center_xyz,
                    patch,
                    factor,
                    &m.input.normalization,
                    &mut v,
                );
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
            out.push(Scored {
                cand: c.clone(),
                prediction: Prediction::from_outputs(m.probabilities(row)),
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
