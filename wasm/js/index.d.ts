// Types of the ct-triage browser client (index.js).

/** Pipeline stages reported by `onProgress` (`read` is reading the Files in the worker). */
export type Stage =
  | 'read' | 'ingest' | 'resample' | 'lungs' | 'candidates'
  | 'classify' | 'measure' | 'triage' | 'report';

/** Called as the analysis advances: `fraction` of `stage` is done (0–1). */
export type ProgressCallback = (stage: Stage, fraction: number) => void;

/** A window in HU. */
export interface Window { center: number; width: number }

/** Window presets: lung (−600/1500), mediastinum (40/400), bone (400/1800). */
export declare const WINDOWS: Readonly<Record<'lung' | 'mediastinum' | 'bone', Window>>;

/** A buffer from a viewer or a fetch. */
export interface NamedBuffer { name: string; data: ArrayBuffer | ArrayBufferView }

/** What can be analysed: Files (folder picker, drag-and-drop), a FileList, a zip File, buffers. */
export type Input = FileList | Blob | File | ArrayBuffer | ArrayBufferView | NamedBuffer | Array<File | Blob | NamedBuffer>;

/** Patient information the DICOM header lacks. */
export interface PatientOverrides {
  age_years?: number;
  female?: boolean;
  family_history?: boolean;
  emphysema?: boolean;
}

/** Request options. Defaults are those of the native CLI (same input → same report). */
export interface RequestOptions {
  /** Abort the request; the promise rejects with a CtTriageError named `AbortError` (code `cancelled`). */
  signal?: AbortSignal;
  onProgress?: ProgressCallback;
  /** Series key or Series Instance UID instead of the automatic choice. */
  series?: string;
}

export interface AnalyzeOptions extends RequestOptions {
  patient?: PatientOverrides;
  /** Render key images (default true). */
  keyImages?: boolean;
  /** Most findings reported (default 10). */
  maxFindings?: number;
  /** List every candidate in `report.candidates.items` (channel, position, scale, classifier outputs, decision). Default false. */
  explain?: boolean;
}

/** Model files: URLs on your own origin, or the manifest and the safetensors bytes. */
export type ModelSource =
  | { manifestUrl: string | URL; weightsUrl: string | URL }
  | { manifest: string | object; weights: ArrayBuffer | ArrayBufferView };

export interface ModelId { name: string; version: string; sha256: string; runtime: string }

export interface CreateOptions {
  model?: ModelSource;
  /** Where worker.js is (default: next to index.js). */
  workerUrl?: string | URL;
  /** Called after the worker was restarted (crash or hard cancel). */
  onRestart?: () => void;
}

/** An engine error; `code` is the core error code. */
export declare class CtTriageError extends Error {
  /** `not_dicom`, `bad_attribute`, `pixel_data`, `unsupported`, `limit_exceeded`, `no_series`,
   * `series_not_found`, `geometry`, `model`, `invalid_argument`, `output`, `cancelled`, `internal`. */
  code: string;
}

/** One series of the inventory. */
export interface SeriesEntry {
  key: string;
  series_instance_uid: string;
  series_number: number | null;
  description: string | null;
  modality: string;
  instances: number;
  frames: number;
  rows: number;
  columns: number;
  pixel_spacing_mm: [number, number];
  slice_thickness_mm: number | null;
  orientation: string;
  transfer_syntaxes: string[];
  eligible: boolean;
  selected: boolean;
  reason: string;
}

/** What `scan()` finds. */
export interface Inventory {
  studies: Array<{ study_instance_uid: string; study_date: string | null; description: string | null; patient_id: string | null; series: SeriesEntry[] }>;
  skipped: Array<{ path: string; code: string; reason: string }>;
  warnings: Array<{ code: string; severity: 'info' | 'warning'; message: string }>;
  selected: string | null;
}

/** The `ct-triage inspect --json` document. */
export interface InspectReport {
  studies: Array<{
    study_instance_uid: string;
    study_date?: string | null;
    description?: string | null;
    patient_id?: string | null;
    series: SeriesEntry[];
  }>;
  skipped: Array<{ path: string; code: string; reason: string }>;
  warnings: Array<{ code: string; severity: 'info' | 'warning'; message: string }>;
  volume: null | { series_instance_uid: string; series_key: string; size_xyz: [number, number, number]; spacing_mm: [number, number, number]; [k: string]: unknown };
  error: null | { code: string; message: string };
}

/** Lung-RADS v2022 category (`0`: part or all of the lungs not evaluated; exam level only). */
export type LungRads = '0' | '1' | '2' | '3' | '4A' | '4B' | '4X';

export type NoduleType = 'solid' | 'part_solid' | 'ground_glass' | 'calcified';

export type Priority = 'urgent' | 'priority' | 'routine' | 'inconclusive';

/** Lobe approximated from landmarks (carina, fissure planes), or unknown (partial coverage). */
export type Lobe = 'right_upper' | 'right_middle' | 'right_lower' | 'left_upper' | 'left_lower' | 'unknown';

/** Calcification pattern; only complete, central, laminated and popcorn are benign (Lung-RADS category 1). */
export interface Calcification {
  pattern: 'none' | 'complete' | 'central' | 'laminated' | 'popcorn' | 'eccentric' | 'stippled';
  benign: boolean;
  fraction: number;
  foci: number;
  centroid_radius: number;
  reason: string;
}

/** Margins and shape (the v2022 juxtapleural rule). */
export interface Morphology {
  shape: 'oval' | 'lentiform' | 'triangular' | 'irregular' | 'unknown';
  smooth_margins: boolean;
  solidity: number;
  elongation: number;
  triangle_ratio: number;
}

/** The Brock inputs taken from the image and where they came from. */
export interface BrockDetail {
  /** Nodule size used: the long axis (PanCan: longest diameter), mm. */
  diameter_mm: number;
  diameter_source: string;
  upper_lobe: boolean;
  /** `lobe approximation` or `default (lobe unknown)`. */
  upper_lobe_source: string;
  /** With the lobe unknown: the probability had the nodule been in an upper lobe. */
  probability_if_upper_lobe: number | null;
  spiculation: boolean;
  nodule_count: number;
}

export interface Finding {
  id: number;
  tracking_uid: string;
  kind: 'nodule' | 'mass';
  /** The detection channel that found it. */
  channel: 'solid' | 'subsolid' | 'mass';
  center_lps_mm: [number, number, number];
  center_voxel_xyz: [number, number, number];
  /** 0-based index of the source slice in stack order. */
  slice_index: number;
  /** Image number (InstanceNumber) of that slice, as PACS shows it. */
  image_number: number | null;
  series_number: number | null;
  /** Mean of long and short axis, rounded to 0.1 mm (the Lung-RADS size). */
  diameter_mm: number;
  long_axis_mm: number;
  short_axis_mm: number;
  /** Rounded to a whole mm³. */
  volume_mm3: number;
  mean_hu: number;
  /** `calcified` only for a benign calcification pattern. */
  type: NoduleType;
  /** Type by the HU fractions alone (≥ 25 % of voxels ≥ 200 HU = calcified). */
  type_hu_fraction: NoduleType | null;
  /** The model's type outputs. */
  type_model: null | { solid: number; part_solid: number; ground_glass: number; calcified: number; top: NoduleType };
  calcification: Calcification | null;
  morphology: Morphology | null;
  solid_component_mm: number | null;
  location: {
    side: 'right' | 'left';
    /** Third of the lung height covered by the scan (not a lobe). */
    zone: 'upper' | 'middle' | 'lower';
    /** The Brock upper-lobe input used (false when the lobe is unknown). */
    upper_lobe: boolean;
    juxtapleural: boolean;
    lobe: Lobe;
    lobe_method: string;
  };
  nodule_probability: number;
  /** AI malignancy score (model output, not a calibrated probability of cancer). */
  malignancy_probability: number;
  spiculation_probability: number | null;
  brock_probability: number;
  brock: BrockDetail | null;
  lung_rads: LungRads;
  lung_rads_reason: string;
  /** Lung-RADS v2022 management of the category (baseline exam). */
  lung_rads_management: string;
  triage_band: Priority | null;
  triage_reasons: string[];
  suspicion: number;
  axes_lps_mm: [[[number, number, number], [number, number, number]], [[number, number, number], [number, number, number]]];
}

/** The report (schema `ct-triage/report/v1`), as `ct-triage analyze --json` writes it. */
export interface Report {
  schema: string;
  generator: { name: string; version: string };
  model: ModelId;
  input: Record<string, unknown> & { series_instance_uid: string; size_xyz: [number, number, number]; spacing_mm: [number, number, number] };
  patient: Record<string, unknown>;
  warnings: Array<{ code: string; severity: 'info' | 'warning'; message: string }>;
  lungs: null | { right_ml: number; left_ml: number; extent_mm: number; truncated: boolean; laa950_fraction: number };
  candidates: {
    detected: number; classified: number; accepted: number; threshold: number;
    /** Per detection channel: found (after non-maximum suppression, counted up to budget + 16), kept, budget. */
    channels: Array<{ channel: 'solid' | 'subsolid' | 'mass'; found: number; kept: number; budget: number }>;
    /** Only with `explain`: every candidate and what became of it. */
    items?: Array<{
      channel: 'solid' | 'subsolid' | 'mass';
      center_lps_mm: [number, number, number];
      slice_index: number;
      radius_mm: number;
      response: number;
      patch_scale: number;
      outputs: Record<string, number>;
      decision: 'finding' | 'below_threshold' | 'not_segmented' | 'rejected_by_rule' | 'duplicate' | 'beyond_max_findings' | 'dropped_by_budget';
      finding_id: number | null;
      reason: string;
    }>;
  };
  findings: Finding[];
  exam: {
    /** Always set by this version (`'0'` when incomplete); `null` only in older reports. */
    lung_rads: LungRads | null;
    lung_rads_reason: string;
    highest_nodule_category: LungRads | null;
    /** Lung-RADS v2022 management of the exam category (baseline exam). */
    management: string;
    triage_priority: Priority;
    triage_score: number;
    triage_reasons: string[];
    /** Rule families that set the priority: lung_rads, size, brock, ai, coverage, input. */
    triage_basis: string[];
    triage_rule_set: string;
    nodule_count: number;
    inconclusive_reason: string | null;
    /** What the analysis saw and could not resolve; makes a routine exam `priority`. */
    unresolved: string[];
  };
  key_images: Array<{ finding_id: number; file: string; slice_index: number; image_number: number | null; sop_instance_uid: string }>;
  timings_ms: Record<string, number>;
  disclaimer: string;
  /** Every stated limit of the analysis. */
  limits: string[];
}

export interface VolumeInfo {
  size_xyz: [number, number, number];
  spacing_mm: [number, number, number];
  origin_lps_mm: [number, number, number];
  direction: number[];
  series_key: string;
  series_instance_uid: string;
  sop_instance_uids: string[];
  /** Image number (InstanceNumber) of each slice, as PACS shows it. */
  image_numbers: Array<number | null>;
  series_number: number | null;
}

export interface KeyImage { findingId: number; file: string; png: Uint8Array }

export declare class Analysis {
  /** The report JSON exactly as the engine wrote it. */
  readonly reportJson: string;
  readonly report: Report;
  readonly volume: VolumeInfo;
  readonly keyImages: KeyImage[];
  /** Time spent in the engine (ms). */
  readonly engineMs: number;
  renderSlice(z: number, window?: 'lung' | 'mediastinum' | 'bone' | Window): Promise<ImageData>;
  sliceHu(z: number): Promise<Int16Array>;
  findingMask(index: number, z: number): Promise<{ box: number[] | null; data: Uint8Array | null }>;
  toVoxels(points: Array<[number, number, number]>): Promise<Array<[number, number, number]>>;
  /** DICOM objects: TID 1500 SR (`report.sr.dcm`), SEG (`findings.seg.dcm`), optionally key images as SC
   * (overview and zoom per finding), and the Key Object Selection (`key-objects.kos.dcm`). */
  dicomExport(options?: { keyImages?: boolean }): Promise<Array<{ file: string; kind: 'sr' | 'seg' | 'key_image' | 'key_object_selection'; sopInstanceUid: string; bytes: Uint8Array }>>;
  reportBlob(): Blob;
  keyImageBlob(i: number): Blob;
  release(): Promise<null>;
}

export declare class CtTriage {
  constructor(options?: CreateOptions);
  loadModel(model: ModelSource): Promise<ModelId>;
  version(): Promise<{ version: string; rayonThreads: number }>;
  /** Studies and series in the input (no pixel decoding); the files stay in the worker for analyze(null). */
  scan(input: Input, options?: RequestOptions): Promise<Inventory>;
  /** `null` input: the files of the last scan(). */
  inspect(input: Input | null, options?: RequestOptions): Promise<InspectReport>;
  /** `null` input: the files of the last scan(). */
  analyze(input: Input | null, options?: AnalyzeOptions): Promise<Analysis>;
  restart(reason?: Error): void;
  terminate(): void;
}

export declare function createTriage(options?: CreateOptions): Promise<CtTriage>;
