//! Stage 11 of 11 — the report: a versioned JSON document (serde) plus key images, and
//! the vocabulary every stage shares (`NoduleType`, `LungRads`, `Priority`,
//! `Side`, `Zone`, …).
//!
//! The report is what every adapter shows and stores: the browser page, the
//! CLI (`report.json`), the server API, and the DICOM SR that
//! `ct-triage-dicom`'s export writes from it.
//! Findings are sorted by descending suspicion. Apart from `timings_ms`, the
//! same input gives a byte-identical report.

pub mod key_images;
pub mod schema;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::anatomy::Lobe;
pub use crate::calcification::{Calcification, CalcificationPattern};
pub use crate::candidates::{Channel, ChannelSummary};
use crate::classify::ModelId;
use crate::measure::FindingMask;
pub use crate::morphology::{Morphology, Shape};
pub use crate::opacities::{
    AffectedSlice, LobeScore, LungOpacity, Opacities, OpacityDistribution, ZoneOpacity,
};
use crate::series::{LoadedSeries, Warning};

/// Schema identifier of [`Report`]; bumped on incompatible changes.
pub const REPORT_SCHEMA: &str = "ct-triage/report/v1";

/// The disclaimer every report carries.
pub const DISCLAIMER: &str = "Research software for triage support. Not a medical device; \
not validated for clinical use. Every finding must be checked by a radiologist.";

/// The stated limits every report, SR, CLI summary and page shows.
pub const LIMITS: &[&str] = &[
    "Research software, not a medical device: every finding must be checked by a radiologist.",
    "The classifier was trained on synthetic renderings of LIDC-IDRI annotations and real \
     negatives from one CT; detection was measured only with synthetic lesions inserted into \
     two real chest CTs (one never trained on): 96 % of solid nodules >= 6 mm, 96 % of \
     subsolid nodules >= 10 mm, 100 % of chest-wall masses, 0.6 false findings per scan \
     (tests/insertion); a mass on the chest wall is measured by its part inside the lung. That is not a clinical validation: real lesions, patients and \
     scanners will differ.",
    "The AI malignancy score is a model output trained on readers' ratings, not a calibrated \
     probability of cancer (AUC 0.72 below 10 mm on held-out renderings, see the model card); \
     it never sets the worklist priority alone.",
    "Baseline exam assumed: Lung-RADS growth, stability and new-nodule rules need prior exams, \
     which ct-triage does not see; compare with prior chest CT.",
    "Lung-RADS v2022 rules not applied: endobronchial and airway nodules, atypical pulmonary \
     cysts, fat-containing nodules (category 1), perifissural location (fissures are not \
     segmented; pleural contact is), infectious or inflammatory findings (category 0), \
     category 4X features other than spiculation, and the S modifier (significant incidental \
     findings are not computed).",
    "Lobes are approximated from landmarks (carina, fissure planes), not segmented; with partial \
     coverage the lobe is unknown and Brock uses its reference (not upper lobe).",
    "Brock inputs not in DICOM (family history; emphysema from CT %LAA-950 unless given) use \
     stated defaults; nodule size is the long axis measured in the axial plane.",
    "Diffuse opacities (ground glass, consolidation) describe a pattern of attenuation, not a \
     diagnosis: fixed HU bands (-750 to -300, -300 to +100 HU) inside the lung region, so \
     contrast, noise, kernel and breath-hold move them; vessels, airway walls and a posterior \
     rim are removed by size and shape rules; lobes for the CT severity score are approximated \
     (landmark planes, or zones when the lungs are not covered whole).",
    "Contrast is read from the DICOM header only (ContrastBolusAgent); motion only from \
     discontinuities of the lung outline between slices.",
];

/// Lung-RADS v2022 category.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub enum LungRads {
    /// 0 — incomplete: part or all of the lungs cannot be evaluated (exam level only).
    #[serde(rename = "0")]
    Cat0,
    /// 1 — negative: no nodules, or nodules with benign calcification.
    #[serde(rename = "1")]
    Cat1,
    /// 2 — benign appearance or behaviour.
    #[serde(rename = "2")]
    Cat2,
    /// 3 — probably benign.
    #[serde(rename = "3")]
    Cat3,
    /// 4A — suspicious.
    #[serde(rename = "4A")]
    Cat4A,
    /// 4B — very suspicious.
    #[serde(rename = "4B")]
    Cat4B,
    /// 4X — category 3 or 4 with additional features that increase suspicion.
    #[serde(rename = "4X")]
    Cat4X,
}

impl LungRads {
    /// The category as printed (`0`, `1`, `2`, `3`, `4A`, `4B`, `4X`).
    pub fn as_str(self) -> &'static str {
        match self {
            LungRads::Cat0 => "0",
            LungRads::Cat1 => "1",
            LungRads::Cat2 => "2",
            LungRads::Cat3 => "3",
            LungRads::Cat4A => "4A",
            LungRads::Cat4B => "4B",
            LungRads::Cat4X => "4X",
        }
    }
}

/// Nodule type by attenuation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoduleType {
    /// Solid soft tissue attenuation.
    Solid,
    /// Ground-glass with a solid component.
    PartSolid,
    /// Pure ground-glass (non-solid).
    GroundGlass,
    /// Calcified with a benign pattern (complete, central, popcorn, laminated).
    Calcified,
}

impl NoduleType {
    /// snake_case name (as in the JSON report).
    pub fn as_str(self) -> &'static str {
        match self {
            NoduleType::Solid => "solid",
            NoduleType::PartSolid => "part_solid",
            NoduleType::GroundGlass => "ground_glass",
            NoduleType::Calcified => "calcified",
        }
    }
}

/// Nodule (≤ 30 mm) or mass (> 30 mm).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A nodule: mean diameter ≤ 30 mm.
    Nodule,
    /// A mass: mean diameter > 30 mm.
    Mass,
}

/// Which lung.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Patient's right lung.
    Right,
    /// Patient's left lung.
    Left,
}

/// Cranio-caudal zone: thirds of the lung height *covered by the scan* (not a lobe).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Zone {
    /// Upper third.
    Upper,
    /// Middle third.
    Middle,
    /// Lower third.
    Lower,
}

/// Where a finding is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Location {
    /// Right or left lung.
    pub side: Side,
    /// Upper, middle or lower third of the covered lung height (not a lobe).
    pub zone: Zone,
    /// The Brock "upper lobe" input used: true only when the lobe approximation
    /// gives an upper lobe; false (the model's reference) when the lobe is unknown.
    pub upper_lobe: bool,
    /// Touches the pleura / chest wall.
    pub juxtapleural: bool,
    /// Lobe approximated from landmarks (see [`crate::anatomy`]), or unknown.
    #[serde(default = "unknown_lobe")]
    pub lobe: Lobe,
    /// How the lobe was approximated, or why it is unknown.
    #[serde(default)]
    pub lobe_method: String,
}

fn unknown_lobe() -> Lobe {
    Lobe::Unknown
}

/// Worklist priority.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Read first.
    Urgent,
    /// Read soon.
    Priority,
    /// Normal order.
    Routine,
    /// The input cannot support a result; a human must look.
    Inconclusive,
}

impl Priority {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Urgent => "urgent",
            Priority::Priority => "priority",
            Priority::Routine => "routine",
            Priority::Inconclusive => "inconclusive",
        }
    }
}

/// One measured, classified finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Finding {
    /// 1-based rank by suspicion.
    pub id: u32,
    /// Deterministic UID for DICOM SR tracking (derived from the series and the finding).
    pub tracking_uid: String,
    /// Nodule or mass.
    pub kind: FindingKind,
    /// The detection channel that found it.
    #[serde(default)]
    pub channel: Channel,
    /// Centre of the segmented finding, LPS mm.
    pub center_lps_mm: [f64; 3],
    /// Centre as a continuous voxel index `[x, y, z]` of the source volume.
    pub center_voxel_xyz: [f64; 3],
    /// Index (0-based, in stack order) of the source-volume axial slice on which the axes were measured.
    pub slice_index: usize,
    /// Image number (InstanceNumber) of that slice, as PACS viewers show it.
    pub image_number: Option<i64>,
    /// Series number of the source series.
    pub series_number: Option<i64>,
    /// Mean of long and short axis, rounded to 0.1 mm (the Lung-RADS size).
    pub diameter_mm: f64,
    /// Longest in-plane diameter on the axial slice of largest area, mm.
    pub long_axis_mm: f64,
    /// Longest diameter perpendicular to the long axis on that slice, mm.
    pub short_axis_mm: f64,
    /// Segmented volume, mm³, rounded to a whole number (as Lung-RADS v2022 asks).
    pub volume_mm3: f64,
    /// Mean attenuation of the segmented finding, HU.
    pub mean_hu: f64,
    /// Attenuation type used for Lung-RADS and Brock: `calcified` only for a
    /// benign calcification pattern, otherwise solid / part-solid / ground-glass by HU.
    #[serde(rename = "type")]
    pub nodule_type: NoduleType,
    /// Type by the HU fractions alone (≥ 25 % of voxels ≥ 200 HU = calcified),
    /// kept for comparison (`None` in reports written before it was recorded).
    #[serde(default)]
    pub type_hu_fraction: Option<NoduleType>,
    /// The model's type outputs (probabilities), when the model has them.
    #[serde(default)]
    pub type_model: Option<TypeScores>,
    /// Calcification pattern and the figures behind it (`None`: not recorded).
    #[serde(default)]
    pub calcification: Option<Calcification>,
    /// Margins and shape, for the juxtapleural rule (`None`: not recorded).
    #[serde(default)]
    pub morphology: Option<Morphology>,
    /// Mean diameter of the solid component of a part-solid nodule, mm.
    pub solid_component_mm: Option<f64>,
    /// Where it is.
    pub location: Location,
    /// Model probability that the candidate is a true nodule.
    pub nodule_probability: f64,
    /// AI malignancy score of the model (a model output trained on readers'
    /// ratings of synthetic renderings, not a calibrated probability of cancer).
    pub malignancy_probability: f64,
    /// Model probability of spiculation, when the model has that output.
    pub spiculation_probability: Option<f64>,
    /// Brock (PanCan full model, with spiculation) probability of malignancy.
    pub brock_probability: f64,
    /// The Brock inputs used and where they came from (`None`: not recorded).
    #[serde(default)]
    pub brock: Option<BrockDetail>,
    /// Lung-RADS category of this finding.
    pub lung_rads: LungRads,
    /// Why that category.
    pub lung_rads_reason: String,
    /// Lung-RADS v2022 management of that category (baseline exam).
    #[serde(default)]
    pub lung_rads_management: String,
    /// Triage band of this finding (`None`: not recorded).
    #[serde(default)]
    pub triage_band: Option<Priority>,
    /// The rules that placed it in that band (empty for routine).
    #[serde(default)]
    pub triage_reasons: Vec<String>,
    /// Score in [0, 1] used for sorting (the band, then the score within it).
    pub suspicion: f64,
    /// Endpoints of the long and short axes in LPS mm: `[[a0, a1], [b0, b1]]`.
    pub axes_lps_mm: [[[f64; 3]; 2]; 2],
}

/// The model's type outputs for one finding (softmax probabilities).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TypeScores {
    /// Solid.
    pub solid: f64,
    /// Part-solid.
    pub part_solid: f64,
    /// Ground-glass.
    pub ground_glass: f64,
    /// Calcified.
    pub calcified: f64,
    /// The type with the highest probability.
    pub top: NoduleType,
}

/// The Brock inputs of one finding that come from the image, and their sources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BrockDetail {
    /// Nodule size used: the long axis (the PanCan model's "nodule size" is the
    /// longest diameter, McWilliams et al. 2013), mm.
    pub diameter_mm: f64,
    /// Which measurement that is (`long_axis`).
    pub diameter_source: String,
    /// Upper lobe input.
    pub upper_lobe: bool,
    /// `lobe approximation` or `default (lobe unknown)`.
    pub upper_lobe_source: String,
    /// With the lobe unknown: the probability had the nodule been in an upper lobe.
    pub probability_if_upper_lobe: Option<f64>,
    /// Spiculation input (model spiculation ≥ 0.5).
    pub spiculation: bool,
    /// Nodule count input (findings reported).
    pub nodule_count: usize,
}

/// Patient data used by risk models, and where each value came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PatientContext {
    /// Age in years.
    pub age_years: f64,
    /// `dicom`, `caller` or `default`.
    pub age_source: String,
    /// Female sex.
    pub female: bool,
    /// `dicom`, `caller` or `default`.
    pub sex_source: String,
    /// Family history of lung cancer.
    pub family_history: bool,
    /// Emphysema present.
    pub emphysema: bool,
    /// `caller` or `default` (neither is in DICOM).
    pub history_source: String,
}

/// What was analysed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct InputSummary {
    /// Study Instance UID.
    pub study_instance_uid: String,
    /// Series Instance UID.
    pub series_instance_uid: String,
    /// Series key (UID, `#n` for a split series).
    pub series_key: String,
    /// Modality.
    pub modality: String,
    /// Study date.
    pub study_date: Option<String>,
    /// Accession number.
    pub accession_number: Option<String>,
    /// Patient ID (as in the input; de-identify before export).
    pub patient_id: Option<String>,
    /// Number of files in the input.
    pub files: usize,
    /// Number of files skipped.
    pub skipped_files: usize,
    /// Source volume size `[x, y, z]`.
    pub size_xyz: [usize; 3],
    /// Source volume spacing `[x, y, z]` mm.
    pub spacing_mm: [f64; 3],
    /// Nominal slice thickness.
    pub slice_thickness_mm: Option<f64>,
    /// Transfer syntaxes of the source.
    pub transfer_syntaxes: Vec<String>,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Reconstruction kernel.
    pub convolution_kernel: Option<String>,
}

/// The lungs as segmented.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LungSummary {
    /// Right lung volume, mL.
    pub right_ml: f64,
    /// Left lung volume, mL.
    pub left_ml: f64,
    /// Cranio-caudal extent of the lungs covered by the scan, mm.
    pub extent_mm: f64,
    /// True when the lungs appear cut off at the top or bottom of the scan.
    pub truncated: bool,
    /// Fraction of lung voxels below −950 HU (emphysema index, %LAA-950).
    pub laa950_fraction: f64,
}

/// Exam-level result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Exam {
    /// Exam Lung-RADS: the highest nodule category (1 without nodules), or 0
    /// when part or all of the lungs could not be evaluated. Always present
    /// (`Option` for readers of older reports, which wrote `null` for 0).
    pub lung_rads: Option<LungRads>,
    /// Why this exam category (for 0: what could not be evaluated).
    #[serde(default)]
    pub lung_rads_reason: String,
    /// The highest category among the findings (also when the exam is 0).
    #[serde(default)]
    pub highest_nodule_category: Option<LungRads>,
    /// Lung-RADS v2022 management of the exam category (baseline exam).
    #[serde(default)]
    pub management: String,
    /// Worklist priority.
    pub triage_priority: Priority,
    /// Score in [0, 1] for sorting the worklist (higher first).
    pub triage_score: f64,
    /// Why this priority (each rule that fired, prefixed by its family).
    pub triage_reasons: Vec<String>,
    /// The rule families that set the priority: `lung_rads`, `size`, `brock`,
    /// `ai`, `coverage`, `input`.
    #[serde(default)]
    pub triage_basis: Vec<String>,
    /// The triage rule set in words.
    #[serde(default)]
    pub triage_rule_set: String,
    /// Number of findings.
    pub nodule_count: usize,
    /// For `inconclusive`: why the input cannot support a result.
    pub inconclusive_reason: Option<String>,
    /// What the analysis saw and could not resolve (it makes a `routine` exam
    /// `priority`): an unclassified soft-tissue structure, a lung-volume
    /// asymmetry, a large candidate left out by a budget.
    #[serde(default)]
    pub unresolved: Vec<String>,
}

/// A key image written for a finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KeyImageRef {
    /// Finding id.
    pub finding_id: u32,
    /// Relative file name, e.g. `key-images/finding-1.png`.
    pub file: String,
    /// Source-volume slice index shown (0-based, stack order).
    pub slice_index: usize,
    /// Image number (InstanceNumber) of that slice.
    pub image_number: Option<i64>,
    /// SOP Instance UID of that source slice.
    pub sop_instance_uid: String,
}

/// What the candidate stage found and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CandidateSummary {
    /// Candidates passed to the classifier (all channels, after the budgets).
    pub detected: usize,
    /// Number classified.
    pub classified: usize,
    /// Number accepted as findings.
    pub accepted: usize,
    /// Nodule-probability threshold applied.
    pub threshold: f64,
    /// Per detection channel: found, kept, budget.
    #[serde(default)]
    pub channels: Vec<ChannelSummary>,
    /// Every candidate with its channel, scale, classifier outputs and why it was
    /// kept or dropped — only when asked for (`AnalysisOptions::explain`,
    /// `ct-triage analyze --explain`), absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Vec<CandidateRecord>")]
    pub items: Option<Vec<CandidateRecord>>,
}

/// What became of one candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CandidateDecision {
    /// Reported as a finding (`finding_id`).
    Finding,
    /// The classifier's nodule probability was below the threshold.
    BelowThreshold,
    /// Accepted by the classifier, but no lesion could be segmented there.
    NotSegmented,
    /// Accepted and measured, but a channel's acceptance rule turned it down
    /// (`pipeline::AcceptRules`, the reason says which).
    RejectedByRule,
    /// The same lesion as a candidate reported before it (`finding_id` of that one, when reported).
    Duplicate,
    /// A finding beyond the most reported (`AnalysisOptions::max_findings`).
    BeyondMaxFindings,
    /// Left out by its channel's budget (not classified).
    DroppedByBudget,
}

/// One candidate in the explain list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CandidateRecord {
    /// Detection channel.
    pub channel: Channel,
    /// Centre, LPS mm.
    pub center_lps_mm: [f64; 3],
    /// Nearest source slice (0-based index in slice order).
    pub slice_index: usize,
    /// Estimated radius from the detector, mm.
    pub radius_mm: f64,
    /// Detector strength (−DoG in HU, or equivalent diameter in mm for components).
    pub response: f64,
    /// Scale at which the classifier saw it (1 = the model's spacing; masses larger).
    pub patch_scale: usize,
    /// Classifier outputs (probabilities, by manifest key); empty when not classified.
    pub outputs: BTreeMap<String, f64>,
    /// What became of it.
    pub decision: CandidateDecision,
    /// The finding it became (or duplicated), if any.
    pub finding_id: Option<u32>,
    /// Why, in plain words.
    pub reason: String,
    /// What the measure stage found there, when it segmented something.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "CandidateMeasure")]
    pub measured: Option<CandidateMeasure>,
}

/// The measure stage's result for a candidate (explain list).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CandidateMeasure {
    /// Mean diameter, mm.
    pub diameter_mm: f64,
    /// Attenuation type.
    #[serde(rename = "type")]
    pub nodule_type: NoduleType,
    /// SD of HU over the interior (the mass channel's rule).
    pub interior_hu_sd: f64,
}

/// Software identification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Generator {
    /// `ct-triage`.
    pub name: String,
    /// Crate version.
    pub version: String,
}

/// The analysis report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Report {
    /// [`REPORT_SCHEMA`].
    pub schema: String,
    /// Software that produced it.
    pub generator: Generator,
    /// The model used.
    pub model: ModelId,
    /// What was analysed.
    pub input: InputSummary,
    /// Patient context used by the risk model.
    pub patient: PatientContext,
    /// Warnings about the input and the analysis.
    pub warnings: Vec<Warning>,
    /// Lung segmentation summary (absent when no lungs were found).
    pub lungs: Option<LungSummary>,
    /// Diffuse opacities (ground glass, consolidation) per lung, zone and lobe with
    /// the CT severity score: a pattern description, not a diagnosis. Present
    /// whenever the analysis ran on the lungs (all zeros without opacity); `null`
    /// when the input was inconclusive (no lungs, too few slices) and in reports
    /// written before it existed.
    #[serde(default)]
    pub opacities: Option<Opacities>,
    /// Candidate counts.
    pub candidates: CandidateSummary,
    /// Findings, most suspicious first.
    pub findings: Vec<Finding>,
    /// Exam-level Lung-RADS and triage.
    pub exam: Exam,
    /// Key images.
    pub key_images: Vec<KeyImageRef>,
    /// Wall-clock time per stage in ms (the only part that varies between runs).
    pub timings_ms: BTreeMap<String, f64>,
    /// [`DISCLAIMER`].
    pub disclaimer: String,
    /// Every limit of this analysis a reader must know ([`LIMITS`]).
    #[serde(default)]
    pub limits: Vec<String>,
}

impl Report {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report with timings cleared, for comparing runs.
    pub fn without_timings(&self) -> Report {
        let mut r = self.clone();
        r.timings_ms.clear();
        r
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

/// Everything one analysis produced: the report and what the DICOM writers
/// and viewers need beside it (plain data of this layer, so that the writers in
/// `ct-triage-dicom` depend on the analysis, never the other way).
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
    /// Ground glass and consolidation on the source grid (the SEG's opacity
    /// segments, the key image, the viewer overlay); `None` when the opacity
    /// stage did not run (an inconclusive scan).
    pub opacity_map: Option<crate::opacities::OpacityMap>,
    /// Key image of the most affected slice (`None` without opacity or with
    /// key images off).
    pub opacity_key_image: Option<key_images::OpacityKeyImage>,
}
