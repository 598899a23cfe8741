// The report types (schema `ct-triage/report/v1`), generated from the Rust types of
// crates/analysis (src/report/schema.rs). Do not edit: rewrite with
//   CTT_WRITE_SCHEMA=1 cargo test -p ct-triage-analysis --test schema
// The same contract as JSON Schema: docs/report.schema.json.

/** The analysis report. */
export interface Report {
  /** Candidate counts. */
  candidates: CandidateSummary;
  /** `DISCLAIMER`. */
  disclaimer: string;
  /** Exam-level Lung-RADS and triage. */
  exam: Exam;
  /** Findings, most suspicious first. */
  findings: Finding[];
  /** Software that produced it. */
  generator: Generator;
  /** What was analysed. */
  input: InputSummary;
  /** Key images. */
  key_images: KeyImageRef[];
  /** Every limit of this analysis a reader must know (`LIMITS`). */
  limits: string[];
  /** Lung segmentation summary (absent when no lungs were found). */
  lungs: LungSummary | null;
  /** The model used. */
  model: ModelId;
  /**
   * Diffuse opacities (ground glass, consolidation) per lung, zone and lobe with
   * the CT severity score: a pattern description, not a diagnosis. Present
   * whenever the analysis ran on the lungs (all zeros without opacity); `null`
   * when the input was inconclusive (no lungs, too few slices) and in reports
   * written before it existed.
   */
  opacities: Opacities | null;
  /** Patient context used by the risk model. */
  patient: PatientContext;
  /** `REPORT_SCHEMA`. */
  schema: string;
  /** Wall-clock time per stage in ms (the only part that varies between runs). */
  timings_ms: Record<string, number>;
  /** Warnings about the input and the analysis. */
  warnings: Warning[];
}

/** The axial slice with the most opacity. */
export interface AffectedSlice {
  /** Ground glass + consolidation on it, cm² (at the analysis grid). */
  area_cm2: number;
  /** Image number (InstanceNumber) of that slice. */
  image_number: number | null;
  /** Its key image in the result folder (`key-images/opacities.png`), when key images were made. */
  key_image: string | null;
  /** Source-volume slice index (0-based, stack order). */
  slice_index: number;
}

/** The Brock inputs of one finding that come from the image, and their sources. */
export interface BrockDetail {
  /**
   * Nodule size used: the long axis (the PanCan model's "nodule size" is the
   * longest diameter, McWilliams et al. 2013), mm.
   */
  diameter_mm: number;
  /** Which measurement that is (`long_axis`). */
  diameter_source: string;
  /** Nodule count input (findings reported). */
  nodule_count: number;
  /** With the lobe unknown: the probability had the nodule been in an upper lobe. */
  probability_if_upper_lobe: number | null;
  /** Spiculation input (model spiculation ≥ 0.5). */
  spiculation: boolean;
  /** Upper lobe input. */
  upper_lobe: boolean;
  /** `lobe approximation` or `default (lobe unknown)`. */
  upper_lobe_source: string;
}

/** The calcification of one nodule: pattern and the figures that decided it. */
export interface Calcification {
  /** True when the pattern is benign in Lung-RADS v2022 (category 1). */
  benign: boolean;
  /** Normalised radius (0 centre, 1 edge) of the calcification's centroid. */
  centroid_radius: number;
  /** Number of separate calcified foci (26-connected). */
  foci: number;
  /** Fraction of the nodule's voxels at or above the calcium threshold. */
  fraction: number;
  /** The pattern. */
  pattern: CalcificationPattern;
  /** Why this pattern, in words. */
  reason: string;
}

/** Calcification pattern of a nodule. */
export type CalcificationPattern = "none" | "complete" | "central" | "laminated" | "popcorn" | "eccentric" | "stippled";

/** What became of one candidate. */
export type CandidateDecision = "finding" | "below_threshold" | "not_segmented" | "rejected_by_rule" | "duplicate" | "beyond_max_findings" | "dropped_by_budget";

/** The measure stage's result for a candidate (explain list). */
export interface CandidateMeasure {
  /** Mean diameter, mm. */
  diameter_mm: number;
  /** SD of HU over the interior (the mass channel's rule). */
  interior_hu_sd: number;
  /** Attenuation type. */
  type: NoduleType;
}

/** One candidate in the explain list. */
export interface CandidateRecord {
  /** Centre, LPS mm. */
  center_lps_mm: [number, number, number];
  /** Detection channel. */
  channel: Channel;
  /** What became of it. */
  decision: CandidateDecision;
  /** The finding it became (or duplicated), if any. */
  finding_id: number | null;
  /** What the measure stage found there, when it segmented something. */
  measured?: CandidateMeasure;
  /** Classifier outputs (probabilities, by manifest key); empty when not classified. */
  outputs: Record<string, number>;
  /** Scale at which the classifier saw it (1 = the model's spacing; masses larger). */
  patch_scale: number;
  /** Estimated radius from the detector, mm. */
  radius_mm: number;
  /** Why, in plain words. */
  reason: string;
  /** Detector strength (−DoG in HU, or equivalent diameter in mm for components). */
  response: number;
  /** Nearest source slice (0-based index in slice order). */
  slice_index: number;
}

/** What the candidate stage found and what became of it. */
export interface CandidateSummary {
  /** Number accepted as findings. */
  accepted: number;
  /** Per detection channel: found, kept, budget. */
  channels: ChannelSummary[];
  /** Number classified. */
  classified: number;
  /** Candidates passed to the classifier (all channels, after the budgets). */
  detected: number;
  /**
   * Every candidate with its channel, scale, classifier outputs and why it was
   * kept or dropped — only when asked for (`AnalysisOptions::explain`,
   * `ct-triage analyze --explain`), absent otherwise.
   */
  items?: CandidateRecord[];
  /** Nodule-probability threshold applied. */
  threshold: number;
}

/** The detection channel that found a candidate. */
export type Channel = "solid" | "subsolid" | "mass";

/** What one channel found and what its budget left out. */
export interface ChannelSummary {
  /** The budget. */
  budget: number;
  /** The channel. */
  channel: Channel;
  /** Candidates after non-maximum suppression, counted up to the budget + 16. */
  found: number;
  /** Candidates passed on: the budget, plus up to `LARGE_RESERVE` large ones. */
  kept: number;
}

/** Exam-level result. */
export interface Exam {
  /** The highest category among the findings (also when the exam is 0). */
  highest_nodule_category: LungRads | null;
  /** For `inconclusive`: why the input cannot support a result. */
  inconclusive_reason: string | null;
  /**
   * Exam Lung-RADS: the highest nodule category (1 without nodules), or 0
   * when part or all of the lungs could not be evaluated. Always present
   * (`Option` for readers of older reports, which wrote `null` for 0).
   */
  lung_rads: LungRads | null;
  /** Why this exam category (for 0: what could not be evaluated). */
  lung_rads_reason: string;
  /** Lung-RADS v2022 management of the exam category (baseline exam). */
  management: string;
  /** Number of findings. */
  nodule_count: number;
  /**
   * The rule families that set the priority: `lung_rads`, `size`, `brock`,
   * `ai`, `coverage`, `input`.
   */
  triage_basis: string[];
  /** Worklist priority. */
  triage_priority: Priority;
  /** Why this priority (each rule that fired, prefixed by its family). */
  triage_reasons: string[];
  /** The triage rule set in words. */
  triage_rule_set: string;
  /** Score in [0, 1] for sorting the worklist (higher first). */
  triage_score: number;
  /**
   * What the analysis saw and could not resolve (it makes a `routine` exam
   * `priority`): an unclassified soft-tissue structure, a lung-volume
   * asymmetry, a large candidate left out by a budget.
   */
  unresolved: string[];
}

/** One measured, classified finding. */
export interface Finding {
  /** Endpoints of the long and short axes in LPS mm: `[[a0, a1], [b0, b1]]`. */
  axes_lps_mm: [[[number, number, number], [number, number, number]], [[number, number, number], [number, number, number]]];
  /** The Brock inputs used and where they came from (`None`: not recorded). */
  brock: BrockDetail | null;
  /** Brock (PanCan full model, with spiculation) probability of malignancy. */
  brock_probability: number;
  /** Calcification pattern and the figures behind it (`None`: not recorded). */
  calcification: Calcification | null;
  /** Centre of the segmented finding, LPS mm. */
  center_lps_mm: [number, number, number];
  /** Centre as a continuous voxel index `[x, y, z]` of the source volume. */
  center_voxel_xyz: [number, number, number];
  /** The detection channel that found it. */
  channel: Channel;
  /** Mean of long and short axis, rounded to 0.1 mm (the Lung-RADS size). */
  diameter_mm: number;
  /** 1-based rank by suspicion. */
  id: number;
  /** Image number (InstanceNumber) of that slice, as PACS viewers show it. */
  image_number: number | null;
  /** Nodule or mass. */
  kind: FindingKind;
  /** Where it is. */
  location: Location;
  /** Longest in-plane diameter on the axial slice of largest area, mm. */
  long_axis_mm: number;
  /** Lung-RADS category of this finding. */
  lung_rads: LungRads;
  /** Lung-RADS v2022 management of that category (baseline exam). */
  lung_rads_management: string;
  /** Why that category. */
  lung_rads_reason: string;
  /**
   * AI malignancy score of the model (a model output trained on readers'
   * ratings of synthetic renderings, not a calibrated probability of cancer).
   */
  malignancy_probability: number;
  /** Mean attenuation of the segmented finding, HU. */
  mean_hu: number;
  /** Margins and shape, for the juxtapleural rule (`None`: not recorded). */
  morphology: Morphology | null;
  /** Model probability that the candidate is a true nodule. */
  nodule_probability: number;
  /** Series number of the source series. */
  series_number: number | null;
  /** Longest diameter perpendicular to the long axis on that slice, mm. */
  short_axis_mm: number;
  /** Index (0-based, in stack order) of the source-volume axial slice on which the axes were measured. */
  slice_index: number;
  /** Mean diameter of the solid component of a part-solid nodule, mm. */
  solid_component_mm: number | null;
  /** Model probability of spiculation, when the model has that output. */
  spiculation_probability: number | null;
  /** Score in [0, 1] used for sorting (the band, then the score within it). */
  suspicion: number;
  /** Deterministic UID for DICOM SR tracking (derived from the series and the finding). */
  tracking_uid: string;
  /** Triage band of this finding (`None`: not recorded). */
  triage_band: Priority | null;
  /** The rules that placed it in that band (empty for routine). */
  triage_reasons: string[];
  /**
   * Attenuation type used for Lung-RADS and Brock: `calcified` only for a
   * benign calcification pattern, otherwise solid / part-solid / ground-glass by HU.
   */
  type: NoduleType;
  /**
   * Type by the HU fractions alone (≥ 25 % of voxels ≥ 200 HU = calcified),
   * kept for comparison (`None` in reports written before it was recorded).
   */
  type_hu_fraction: NoduleType | null;
  /** The model's type outputs (probabilities), when the model has them. */
  type_model: TypeScores | null;
  /** Segmented volume, mm³, rounded to a whole number (as Lung-RADS v2022 asks). */
  volume_mm3: number;
}

/** Nodule (≤ 30 mm) or mass (> 30 mm). */
export type FindingKind = "nodule" | "mass";

/** Software identification. */
export interface Generator {
  /** `ct-triage`. */
  name: string;
  /** Crate version. */
  version: string;
}

/** What was analysed. */
export interface InputSummary {
  /** Accession number. */
  accession_number: string | null;
  /** Reconstruction kernel. */
  convolution_kernel: string | null;
  /** Number of files in the input. */
  files: number;
  /** Manufacturer. */
  manufacturer: string | null;
  /** Modality. */
  modality: string;
  /** Patient ID (as in the input; de-identify before export). */
  patient_id: string | null;
  /** Series Instance UID. */
  series_instance_uid: string;
  /** Series key (UID, `#n` for a split series). */
  series_key: string;
  /** Source volume size `[x, y, z]`. */
  size_xyz: [number, number, number];
  /** Number of files skipped. */
  skipped_files: number;
  /** Nominal slice thickness. */
  slice_thickness_mm: number | null;
  /** Source volume spacing `[x, y, z]` mm. */
  spacing_mm: [number, number, number];
  /** Study date. */
  study_date: string | null;
  /** Study Instance UID. */
  study_instance_uid: string;
  /** Transfer syntaxes of the source. */
  transfer_syntaxes: string[];
}

/** A key image written for a finding. */
export interface KeyImageRef {
  /** Relative file name, e.g. `key-images/finding-1.png`. */
  file: string;
  /** Finding id. */
  finding_id: number;
  /** Image number (InstanceNumber) of that slice. */
  image_number: number | null;
  /** Source-volume slice index shown (0-based, stack order). */
  slice_index: number;
  /** SOP Instance UID of that source slice. */
  sop_instance_uid: string;
}

/** Lobe of a finding (approximated). */
export type Lobe = "right_upper" | "right_middle" | "right_lower" | "left_upper" | "left_lower" | "unknown";

/** One lobe's share of the CT severity score. */
export interface LobeScore {
  /** Ground glass + consolidation in the lobe, mL. */
  involved_ml: number;
  /** The lobe (approximated; see `Opacities::lobe_method`). */
  lobe: Lobe;
  /** Lung volume of the lobe, mL. */
  lung_ml: number;
  /** Involvement, percent of the lobe. */
  percent: number;
  /** Pan et al. score: 0 none, 1 < 5 %, 2 5–25 %, 3 26–49 %, 4 50–75 %, 5 > 75 %. */
  score: number;
}

/** Where a finding is. */
export interface Location {
  /** Touches the pleura / chest wall. */
  juxtapleural: boolean;
  /** Lobe approximated from landmarks (see `crate::anatomy`), or unknown. */
  lobe: Lobe;
  /** How the lobe was approximated, or why it is unknown. */
  lobe_method: string;
  /** Right or left lung. */
  side: Side;
  /**
   * The Brock "upper lobe" input used: true only when the lobe approximation
   * gives an upper lobe; false (the model's reference) when the lobe is unknown.
   */
  upper_lobe: boolean;
  /** Upper, middle or lower third of the covered lung height (not a lobe). */
  zone: Zone;
}

/** Ground glass and consolidation in one lung. */
export interface LungOpacity {
  /** Consolidation, mL. */
  consolidation_ml: number;
  /** Consolidation, percent of this lung's volume. */
  consolidation_percent: number;
  /** Ground glass, mL. */
  ground_glass_ml: number;
  /** Ground glass, percent of this lung's volume. */
  ground_glass_percent: number;
  /** Lung volume (the lung region of the lung stage), mL. */
  lung_ml: number;
  /** Ground glass + consolidation, percent of this lung's volume. */
  percent_of_lung: number;
  /** Per zone, upper first. */
  zones: ZoneOpacity[];
}

/** Lung-RADS v2022 category. */
export type LungRads = "0" | "1" | "2" | "3" | "4A" | "4B" | "4X";

/** The lungs as segmented. */
export interface LungSummary {
  /** Cranio-caudal extent of the lungs covered by the scan, mm. */
  extent_mm: number;
  /** Fraction of lung voxels below −950 HU (emphysema index, %LAA-950). */
  laa950_fraction: number;
  /** Left lung volume, mL. */
  left_ml: number;
  /** Right lung volume, mL. */
  right_ml: number;
  /** True when the lungs appear cut off at the top or bottom of the scan. */
  truncated: boolean;
}

/** Identity of a loaded model, recorded in every report. */
export interface ModelId {
  /** Model name from the manifest. */
  name: string;
  /** Runtime that executes it (`burn-flex`, `ort`, …). */
  runtime: string;
  /** SHA-256 (hex) of the weights actually loaded. */
  sha256: string;
  /** Model version from the manifest. */
  version: string;
}

/** Margin and shape figures of one nodule. */
export interface Morphology {
  /** Long / short extent of the largest slice. */
  elongation: number;
  /** Shape class. */
  shape: Shape;
  /** Smooth margins (no large slice loses more solidity than its staircase allows). */
  smooth_margins: boolean;
  /** Lowest solidity over the slices judged. */
  solidity: number;
  /** Hull area / largest inscribed triangle area of the largest slice. */
  triangle_ratio: number;
}

/** Nodule type by attenuation. */
export type NoduleType = "solid" | "part_solid" | "ground_glass" | "calcified";

/** The report's `opacities` section: diffuse ground glass and consolidation. */
export interface Opacities {
  /** CT severity score (Pan et al. 2020), 0–25: the sum of the lobe scores. */
  ct_severity_score: number;
  /** Where the opacities are. */
  distribution: OpacityDistribution;
  /** Emphysema index beside it: percent of lung voxels below −950 HU (%LAA-950). */
  emphysema_laa950_percent: number;
  /** Left lung. */
  left: LungOpacity;
  /** How the lobes were approximated. */
  lobe_method: string;
  /** Per lobe (RUL, RML, RLL, LUL, LLL). */
  lobes: LobeScore[];
  /** The method and its thresholds in words. */
  method: string;
  /** The slice with the most opacity (the key image), if any. */
  most_affected_slice: AffectedSlice | null;
  /** Right lung. */
  right: LungOpacity;
}

/** Where the opacities are. */
export interface OpacityDistribution {
  /**
   * `peripheral` (share ≥ the lung's + 0.15), `central` (≤ the lung's − 0.15),
   * `diffuse` otherwise, `none` without opacity.
   */
  axial: string;
  /**
   * `none`, `unilateral_right`, `unilateral_left` or `bilateral` (a lung counts when
   * its involvement reaches `involved_lung_percent`).
   */
  laterality: string;
  /** Share of the lung volume within that shell (0–1): what a uniform spread would give. */
  lung_peripheral_share: number;
  /** Depth of the shell, mm (distance to the lung surface, mediastinal surface included). */
  peripheral_mm: number;
  /** Share of the opacity volume within the peripheral shell (0–1). */
  peripheral_share: number;
  /** Zone with the highest involvement (percent of the zone, both lungs), if any. */
  predominant_zone: Zone | null;
}

/** Patient data used by risk models, and where each value came from. */
export interface PatientContext {
  /** `dicom`, `caller` or `default`. */
  age_source: string;
  /** Age in years. */
  age_years: number;
  /** Emphysema present. */
  emphysema: boolean;
  /** Family history of lung cancer. */
  family_history: boolean;
  /** Female sex. */
  female: boolean;
  /** `caller` or `default` (neither is in DICOM). */
  history_source: string;
  /** `dicom`, `caller` or `default`. */
  sex_source: string;
}

/** Worklist priority. */
export type Priority = "urgent" | "priority" | "routine" | "inconclusive";

/** How serious a warning is. */
export type Severity = "info" | "warning";

/** Axial shape of a nodule. */
export type Shape = "oval" | "lentiform" | "triangular" | "irregular" | "unknown";

/** Which lung. */
export type Side = "right" | "left";

/** The model's type outputs for one finding (softmax probabilities). */
export interface TypeScores {
  /** Calcified. */
  calcified: number;
  /** Ground-glass. */
  ground_glass: number;
  /** Part-solid. */
  part_solid: number;
  /** Solid. */
  solid: number;
  /** The type with the highest probability. */
  top: NoduleType;
}

/** Something a reader of the result should know about the input. */
export interface Warning {
  /** Stable machine-readable code (`gantry_tilt`, `uneven_spacing`, …). */
  code: string;
  /** Human-readable explanation. */
  message: string;
  /** How serious it is. */
  severity: Severity;
}

/** Cranio-caudal zone: thirds of the lung height *covered by the scan* (not a lobe). */
export type Zone = "upper" | "middle" | "lower";

/** Ground glass and consolidation in one zone of one lung. */
export interface ZoneOpacity {
  /** Consolidation, mL. */
  consolidation_ml: number;
  /** Ground glass, mL. */
  ground_glass_ml: number;
  /** Lung volume in the zone, mL. */
  lung_ml: number;
  /** Ground glass + consolidation, percent of the zone's lung volume. */
  percent_of_zone: number;
  /** Upper, middle or lower third of the lung's covered cranio-caudal extent. */
  zone: Zone;
}
