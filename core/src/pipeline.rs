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
use crate::classify::{Classifier, extract_patch_scaled_into, patch_scale};
use crate::error::{Error, Result};
use crate::ingest::{self, IngestOptions, InputFile, LoadedSeries, Severity, Warning};
use crate::lungs::{self, LungOptions};
use crate::measure::{self, FindingMask, MeasureOptions, Measurement};
use crate::progress::{Progress, Stage};
pub use crate::report::{Analysis, KeyImage};
use crate::report::{
    CandidateDecision, CandidateRecord, CandidateSummary, DISCLAIMER, Finding, Generator,
    InputSummary, KeyImageRef, LIMITS, PatientContext, REPORT_SCHEMA, Report, key_images,
};
use crate::resample;
use crate::triage::{self, TriageRules};
use crate::volume::Vec3;

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

/// Acceptance rules applied per channel after the classifier and the measure
/// stage. Chosen on the insertion harness's lung1 cases (lung1 is in the
/// training data; lung2, reported separately, is not). Defaults documented per field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcceptRules {
    /// Nodule probability a subsolid-channel candidate must reach (the model's
    /// threshold when that is higher). Ground-glass candidates are low-contrast
    /// and many (partial volume at vessel branchings and the mediastinum).
    /// Default 0.9.
    pub subsolid_min_probability: f64,
    /// Smallest diameter (mm) a subsolid-channel finding is reported at. Default 6 mm.
    pub subsolid_min_diameter_mm: f64,
    /// Largest standard deviation (HU) of a mass-channel finding's soft-tissue
    /// interior: a lesion is one tissue; a hilum or mediastinal border is
    /// vessels, fat and bronchial walls. Default 100 HU.
    pub mass_max_hu_sd: f64,
    /// Smallest distance (mm) of a mass-channel finding's centre from the midline
    /// between the two lungs (the mean of their centroids' x): nearer, it is in
    /// the mediastinum (aorta, heart, lymph nodes). Default 25 mm.
    pub mass_min_midline_mm: f64,
    /// The mass rule: a mass-channel structure whose measured long axis reaches
    /// this (mm) is reported as a finding even when the classifier's nodule
    /// probability is below the threshold — when it is also homogeneous solid
    /// soft tissue ([`rule_mass_max_hu_sd`](Self::rule_mass_max_hu_sd)) and
    /// passes the mass-channel rules above. A lesion over 3 cm is a mass by
    /// definition (Fleischner Society glossary, Hansell et al., Radiology 2008),
    /// whatever an unvalidated score says: for triage a missed mass is worse
    /// than a false alarm. Default 30 mm.
    pub rule_mass_min_long_axis_mm: f64,
    /// Largest interior standard deviation (HU) of a structure the mass rule
    /// reports (which must also be solid and free of calcified foci: calcium in a
    /// structure the classifier turned down is the heart, the aorta or bone): one tissue, well below the [`mass_max_hu_sd`](Self::mass_max_hu_sd)
    /// a classifier-accepted mass may have (vessels, fat and bronchial walls at a
    /// hilum or the diaphragm's dome give 60–250 HU on lung1 and lung2).
    /// Default 50 HU.
    pub rule_mass_max_hu_sd: f64,
}

impl Default for AcceptRules {
    fn default() -> Self {
        AcceptRules {
            subsolid_min_probability: 0.9,
            subsolid_min_diameter_mm: 6.0,
            mass_max_hu_sd: 100.0,
            mass_min_midline_mm: 25.0,
            rule_mass_min_long_axis_mm: 30.0,
            rule_mass_max_hu_sd: 50.0,
        }
    }
}

/// What the analysis reports as seen but not resolved — each rule, when it
/// fires, adds a reason in plain words to the exam and makes a `routine` exam
/// `priority` ([`triage::escalate_unresolved`]). Defaults are documented per field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnresolvedRules {
    /// A mass-channel candidate (a soft-tissue structure of 30 mm or more in the
    /// lung region) that the classifier neither accepted nor clearly rejected:
    /// nodule probability at or above this share of the threshold. Default 0.5.
    pub uncertain_mass_share: f64,
    /// Larger over smaller lung volume above which the lungs are called
    /// asymmetric (collapse, effusion, a large lesion replacing lung, surgery).
    /// Default 2.5 (lung1: 1.6, lung2: 1.5).
    pub max_lung_volume_ratio: f64,
    /// Radius (mm) at or above which a blob-like candidate (blobness ≥ 0.5) that
    /// its channel's budget left out is reported. Default 10 mm (a 20 mm structure).
    pub dropped_min_radius_mm: f64,
}

impl Default for UnresolvedRules {
    fn default() -> Self {
        UnresolvedRules {
            uncertain_mass_share: 0.5,
            max_lung_volume_ratio: 2.5,
            dropped_min_radius_mm: 10.0,
        }
    }
}

/// The unresolved-analysis reasons (see [`UnresolvedRules`]).
fn unresolved_reasons(
    scored: &[Scored],
    fate: &[(CandidateDecision, Option<usize>, String)],
    detection: &candidates::Detection,
    lungs: &crate::report::LungSummary,
    threshold: f64,
    rules: &UnresolvedRules,
    iso: &crate::volume::Volume,
) -> Vec<String> {
    let mut out = Vec::new();
    let at = |c: &Candidate| {
        let p = iso.geometry.voxel_to_patient(c.center_xyz);
        format!("at LPS ({:.0}, {:.0}, {:.0}) mm", p[0], p[1], p[2])
    };
    for (s, (d, _, _)) in scored.iter().zip(fate) {
        if s.cand.channel != Channel::Mass {
            continue;
        }
        let p = s.probs.get("nodule").copied().unwrap_or(0.0) as f64;
        let unsure =
            *d == CandidateDecision::BelowThreshold && p >= rules.uncertain_mass_share * threshold;
        let lost = *d == CandidateDecision::NotSegmented;
        if unsure || lost {
            out.push(format!(
                "a soft-tissue structure of about {:.0} mm {} was {} (nodule probability {p:.2})",
                2.0 * s.cand.radius_mm,
                at(&s.cand),
                if lost {
                    "accepted but could not be measured"
                } else {
                    "neither accepted nor clearly rejected"
                }
            ));
        }
    }
    let (r, l) = (lungs.right_ml, lungs.left_ml);
    if r.min(l) > 0.0 && r.max(l) / r.min(l) > rules.max_lung_volume_ratio {
        out.push(format!(
            "the lungs are asymmetric: right {r:.0} mL, left {l:.0} mL of aerated lung (collapse, effusion, a large lesion or surgery?)"
        ));
    }
    for c in &detection.dropped {
        if c.radius_mm >= rules.dropped_min_radius_mm && c.blobness >= 0.5 {
            out.push(format!(
                "a {} candidate of about {:.0} mm {} was left out by the channel's budget",
                c.channel.as_str(),
                2.0 * c.radius_mm,
                at(c)
            ));
        }
    }
    out
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
    let mut fate: Vec<(CandidateDecision, Option<usize>, String)> = scored
        .iter()
        .map(|s| {
            let p = s.probs.get("nodule").copied().unwrap_or(0.0) as f64;
            (
                CandidateDecision::BelowThreshold,
                None,
                format!(
                    "nodule probability {p:.2} < threshold {:.2}",
                    accept_threshold(s, threshold, &opts.accept)
                ),
            )
        })
        .collect();
    let mut accepted: Vec<usize> = (0..scored.len())
        .filter(|&i| {
            let s = &scored[i];
            s.probs.get("nodule").copied().unwrap_or(0.0) as f64
                >= accept_threshold(s, threshold, &opts.accept)
        })
        .collect();
    accepted.sort_by(|&a, &b| scored[b].probs["nodule"].total_cmp(&scored[a].probs["nodule"]));
    // Mass-channel structures the classifier did not accept are measured too,
    // after the accepted ones: the mass rule (`AcceptRules`) may report them.
    let by_rule: Vec<usize> = (0..scored.len())
        .filter(|&i| scored[i].cand.channel == Channel::Mass && !accepted.contains(&i))
        .collect();
    let n_accepted = accepted.len();
    accepted.extend(&by_rule);

    // Measure (parallel, order kept), then drop duplicates of the same lesion.
    let measured: Vec<Option<Measurement>> = accepted
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
    let mut kept: Vec<(usize, Measurement)> = Vec::new();
    let mut measured_of = BTreeMap::new();
    let midline_x = lungs_midline_x(&lungs);
    let mut reported_by_rule = Vec::new();
    for (n, (&i, m)) in accepted.iter().zip(measured).enumerate() {
        if n >= n_accepted {
            // Below the classifier's threshold: reported only by the mass rule.
            let Some(m) = m else { continue };
            if let Some(why) = opts.accept.mass_rule_misses(&m) {
                fate[i].2 = format!("{}; {why}", fate[i].2);
                continue;
            }
            let midline_mm = midline_x.map(|mx| {
                let v = iso.geometry.patient_to_voxel(m.center_lps_mm);
                (v[0] - mx).abs() * iso.geometry.spacing[0]
            });
            if let Some(why) = rule_rejects(Channel::Mass, &m, midline_mm, &opts.accept) {
                fate[i].2 = format!("{}; not a mass by the mass rule: {why}", fate[i].2);
                continue;
            }
            match duplicate_of(&kept, &m) {
                Some(d) => fate[i] = (CandidateDecision::Duplicate, Some(kept[d].0), String::new()),
                None => {
                    reported_by_rule.push(i);
                    kept.push((i, m));
                }
            }
            continue;
        }
        let Some(m) = m else {
            fate[i] = (
                CandidateDecision::NotSegmented,
                None,
                "accepted by the classifier; no lesion could be segmented around it".into(),
            );
            continue;
        };
        measured_of.insert(
            i,
            crate::report::CandidateMeasure {
                diameter_mm: m.diameter_mm,
                nodule_type: m.nodule_type,
                interior_hu_sd: m.interior_hu_sd,
            },
        );
        let midline_mm = midline_x.map(|mx| {
            let v = iso.geometry.patient_to_voxel(m.center_lps_mm);
            (v[0] - mx).abs() * iso.geometry.spacing[0]
        });
        if let Some(why) = rule_rejects(scored[i].cand.channel, &m, midline_mm, &opts.accept) {
            fate[i] = (CandidateDecision::RejectedByRule, None, why);
            continue;
        }
        match duplicate_of(&kept, &m) {
            Some(d) => fate[i] = (CandidateDecision::Duplicate, Some(kept[d].0), String::new()),
            None => kept.push((i, m)),
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
    let mut findings: Vec<(Finding, FindingMask, usize)> = kept
        .into_iter()
        .map(|(si, m)| {
            let s = &scored[si];
            let f = crate::assess::finding(&m, &s.probs, s.cand.channel, &ctx);
            (f, m.mask, si)
        })
        .collect();
    findings.sort_by(|a, b| {
        b.0.suspicion
            .total_cmp(&a.0.suspicion)
            .then(b.0.diameter_mm.total_cmp(&a.0.diameter_mm))
    });
    for (f, _, si) in findings.iter().skip(opts.max_findings) {
        fate[*si] = (
            CandidateDecision::BeyondMaxFindings,
            None,
            format!(
                "{:.1} mm, suspicion {:.2}: beyond the {} findings reported",
                f.diameter_mm, f.suspicion, opts.max_findings
            ),
        );
    }
    findings.truncate(opts.max_findings);
    let mut finding_of = BTreeMap::new();
    for (i, (f, _, si)) in findings.iter_mut().enumerate() {
        f.id = i as u32 + 1;
        f.tracking_uid = tracking_uid(&series.meta.series_instance_uid, f);
        finding_of.insert(*si, f.id);
        let why = if reported_by_rule.contains(si) {
            format!(
                " (nodule probability {:.2} below the threshold; reported by the mass rule: a homogeneous soft-tissue structure with a {:.0} mm long axis)",
                scored[*si].probs.get("nodule").copied().unwrap_or(0.0),
                f.long_axis_mm
            )
        } else {
            String::new()
        };
        fate[*si] = (
            CandidateDecision::Finding,
            None,
            format!("finding {}{why}", f.id),
        );
    }
    for (decision, of, reason) in fate.iter_mut() {
        if *decision == CandidateDecision::Duplicate {
            let id = of.and_then(|o| finding_of.get(&o).copied());
            *reason = match id {
                Some(id) => format!("inside the segmentation of finding {id}"),
                None => "inside the segmentation of another accepted candidate".into(),
            };
            *of = id.map(|v| v as usize);
        }
    }
    let unresolved = if inconclusive.is_none() {
        unresolved_reasons(
            &scored,
            &fate,
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
            .zip(&fate)
            .enumerate()
            .map(|(i, (s, (d, of, why)))| {
                let outputs = s
                    .probs
                    .iter()
                    .map(|(k, &p)| (k.clone(), round4(p as f64)))
                    .collect();
                let id = match d {
                    CandidateDecision::Finding => finding_of.get(&i).copied(),
                    _ => of.map(|o| o as u32),
                };
                let mut r = rec(
                    &s.cand,
                    outputs,
                    (*d, id, why.clone()),
                    patch_scale(&s.cand, patch, iso.geometry.spacing[0]),
                );
                r.measured = measured_of.get(&i).cloned();
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

/// The nodule-probability threshold a candidate must reach: the model's, or the
/// subsolid channel's own when that is higher ([`AcceptRules`]).
fn accept_threshold(s: &Scored, threshold: f64, rules: &AcceptRules) -> f64 {
    if s.cand.channel == Channel::Subsolid {
        threshold.max(rules.subsolid_min_probability)
    } else {
        threshold
    }
}

/// The midline between the lungs: the mean of the two aerated lungs' centroid
/// columns (voxel x on the resampled grid), `None` without both lungs.
fn lungs_midline_x(l: &lungs::LungMasks) -> Option<f64> {
    let (mut sr, mut nr, mut sl, mut nl) = (0f64, 0usize, 0f64, 0usize);
    for ((_, _, i), &v) in l.aerated.indexed_iter() {
        match v {
            lungs::RIGHT => {
                sr += i as f64;
                nr += 1;
            }
            lungs::LEFT => {
                sl += i as f64;
                nl += 1;
            }
            _ => {}
        }
    }
    (nr > 0 && nl > 0).then(|| (sr / nr as f64 + sl / nl as f64) / 2.0)
}

/// Why a measured candidate of a channel is not a finding, if it is not
/// ([`AcceptRules`]).
/// The kept measurement that `m` duplicates: either contains the other's centre.
fn duplicate_of(kept: &[(usize, Measurement)], m: &Measurement) -> Option<usize> {
    let voxel = |v: Vec3| v.map(|x| x.round().max(0.0) as usize);
    kept.iter().position(|(_, k)| {
        k.mask.contains(voxel(m.center_voxel_xyz)) || m.mask.contains(voxel(k.center_voxel_xyz))
    })
}

impl AcceptRules {
    /// Why a measured mass-channel structure is not a mass by the mass rule
    /// ([`rule_mass_min_long_axis_mm`](Self::rule_mass_min_long_axis_mm),
    /// [`rule_mass_max_hu_sd`](Self::rule_mass_max_hu_sd)); `None` when it is.
    /// The mass-channel rules (interior SD, midline) apply on top.
    pub fn mass_rule_misses(&self, m: &Measurement) -> Option<String> {
        if m.long_axis_mm < self.rule_mass_min_long_axis_mm {
            Some(format!(
                "not a mass by the mass rule: long axis {:.0} mm < {} mm",
                m.long_axis_mm, self.rule_mass_min_long_axis_mm
            ))
        } else if m.interior_hu_sd > self.rule_mass_max_hu_sd {
            Some(format!(
                "not a mass by the mass rule: interior SD {:.0} HU > {} HU (mixed tissue)",
                m.interior_hu_sd, self.rule_mass_max_hu_sd
            ))
        } else if m.nodule_type != crate::report::NoduleType::Solid {
            Some(format!(
                "not a mass by the mass rule: {} rather than solid soft tissue",
                m.nodule_type.as_str()
            ))
        } else if m.calcification.foci > 0 {
            Some(format!(
                "not a mass by the mass rule: calcified foci ({}) — the heart, the aorta or bone beside the lung rather than plain soft tissue",
                m.calcification.foci
            ))
        } else {
            None
        }
    }
}

fn rule_rejects(
    ch: Channel,
    m: &Measurement,
    midline_mm: Option<f64>,
    rules: &AcceptRules,
) -> Option<String> {
    match ch {
        Channel::Subsolid if m.diameter_mm < rules.subsolid_min_diameter_mm => Some(format!(
            "subsolid {:.1} mm < {} mm: the subsolid channel reports nodules from {} mm (smaller ground glass is Lung-RADS 2)",
            m.diameter_mm, rules.subsolid_min_diameter_mm, rules.subsolid_min_diameter_mm
        )),
        Channel::Mass if m.interior_hu_sd > rules.mass_max_hu_sd => Some(format!(
            "mixed attenuation inside (SD {:.0} HU > {}: vessels, fat, bronchial walls), as at a hilum or the mediastinum, not one lesion",
            m.interior_hu_sd, rules.mass_max_hu_sd
        )),
        Channel::Mass if midline_mm.is_some_and(|d| d < rules.mass_min_midline_mm) => {
            Some(format!(
                "centre {:.0} mm from the midline between the lungs (< {} mm): the mediastinum, not the lung",
                midline_mm.unwrap_or(0.0),
                rules.mass_min_midline_mm
            ))
        }
        _ => None,
    }
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
