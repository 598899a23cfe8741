// Types of the ct-triage browser client (index.js).
//
// The report types (`Report`, `Finding`, `Exam`, `LungRads`, …) are generated from
// the Rust types into report.d.ts (see its header); only the client's own API is
// written here.

import type { ModelId, Report } from './report.js';

export * from './report.js';

/** Pipeline stages reported by `onProgress` (`fetch` is WADO-RS in `analyzeDicomweb`, `read` is reading the Files in the worker). */
export type Stage =
  | 'fetch' | 'read' | 'ingest' | 'resample' | 'lungs' | 'candidates'
  | 'classify' | 'measure' | 'opacities' | 'triage' | 'report';

/** Called as the analysis advances: `fraction` of `stage` is done (0–1). */
export type ProgressCallback = (stage: Stage, fraction: number) => void;

/** A window in HU. */
export interface Window { center: number; width: number }

/** Window presets: lung (−600/1500), mediastinum (40/400), bone (400/1800). */
export declare const WINDOWS: Readonly<Record<'lung' | 'mediastinum' | 'bone', Window>>;

/** Labels of `Analysis.opacityOverlay`: 1 ground glass, 2 consolidation (0 is no opacity). */
export declare const OPACITY_LABELS: Readonly<{ groundGlass: 1; consolidation: 2 }>;

/** A source slice with a diffuse opacity and its voxel counts per label. */
export interface OpacitySlice {
  /** Slice index (stack order, as `renderSlice`). */
  slice: number;
  /** Ground-glass voxels on that slice. */
  groundGlass: number;
  /** Consolidation voxels on that slice. */
  consolidation: number;
}

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
  /** The slices with a diffuse opacity (ground glass or consolidation), ascending; empty when none
   * or the opacity stage did not run (an inconclusive scan). */
  readonly opacitySlices: OpacitySlice[];
  /** Time spent in the engine (ms). */
  readonly engineMs: number;
  renderSlice(z: number, window?: 'lung' | 'mediastinum' | 'bone' | Window): Promise<ImageData>;
  sliceHu(z: number): Promise<Int16Array>;
  findingMask(index: number, z: number): Promise<{ box: number[] | null; data: Uint8Array | null }>;
  /** The diffuse-opacity label image of slice `z` (`columns × rows` bytes, row-major; 0 none,
   * 1 ground glass, 2 consolidation), or `undefined` when the slice has none. Rejects with
   * `invalid_argument` for a slice outside the volume. */
  opacityOverlay(z: number): Promise<Uint8Array | undefined>;
  toVoxels(points: Array<[number, number, number]>): Promise<Array<[number, number, number]>>;
  /** DICOM objects: TID 1500 SR (`report.sr.dcm`), SEG (`findings.seg.dcm`), optionally key images as SC
   * (overview and zoom per finding), and the Key Object Selection (`key-objects.kos.dcm`). */
  dicomExport(options?: { keyImages?: boolean }): Promise<Array<{ file: string; kind: 'sr' | 'seg' | 'key_image' | 'key_object_selection'; sopInstanceUid: string; bytes: Uint8Array }>>;
  /** Every file of the result folder the CLI writes (key images, DICOM objects, `report.json` last), made by core;
   * with `deidentify` de-identified (PS3.15 Basic Profile) with `key` (≥ 16 bytes; default a fresh random key)
   * plus `deidentification.json`. */
  resultFiles(options?: BundleOptions): Promise<Array<{ name: string; bytes: Uint8Array }>>;
  /** `resultFiles` as one zip archive. */
  resultZip(options?: BundleOptions): Promise<Blob>;
  /** Where the series came from when it was fetched over DICOMweb, else null. */
  source: { url: string; studyInstanceUID: string; seriesInstanceUID: string; instances: number } | null;
  /** STOW-RS of the SR, SEG, key images (SC) and KOS; default server: `source.url`. */
  storeResults(options?: Partial<DicomwebServer> & { keyImages?: boolean }): Promise<StoreResult>;
  reportBlob(): Blob;
  keyImageBlob(i: number): Blob;
  release(): Promise<null>;
}

/** A DICOMweb server (QIDO-RS, WADO-RS, STOW-RS root, e.g. `https://pacs.example.org/dicom-web`). */
export interface DicomwebServer {
  url: string;
  /** Sent to that server only (e.g. `{ Authorization: 'Bearer …' }`). */
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** One series of a study, from QIDO-RS. */
export interface DicomwebSeries {
  seriesInstanceUID: string;
  modality: string | null;
  seriesNumber: number | null;
  description: string | null;
  instances: number | null;
}

/** What `analyzeDicomweb` fetches and how it analyses it. */
export interface DicomwebQuery extends DicomwebServer, Omit<AnalyzeOptions, 'signal' | 'series'> {
  studyInstanceUID: string;
  /** Default: the CT series of the study with the most instances. */
  seriesInstanceUID?: string;
}

/** The server's answer to `storeResults`, per object. */
export interface StoreResult {
  /** HTTP status: 200 all stored, 202 some failed, 409 none stored. */
  status: number;
  stored: number;
  failed: number;
  objects: Array<{ file: string; sopInstanceUid: string; stored: boolean; reason: number | null }>;
}

/** Options of `resultFiles` / `resultZip`. */
export interface BundleOptions {
  /** De-identify the report and the DICOM objects. Default false. */
  deidentify?: boolean;
  /** De-identification key (≥ 16 bytes); the same key gives the same pseudonyms. Default: random per call. */
  key?: Uint8Array;
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
  /** The series of a study on a DICOMweb server (QIDO-RS). */
  listDicomwebSeries(query: DicomwebServer & { studyInstanceUID: string }): Promise<DicomwebSeries[]>;
  /** QIDO-RS + WADO-RS (stored transfer syntax) of a study's CT series, then `analyze` in the tab. */
  analyzeDicomweb(query: DicomwebQuery): Promise<Analysis>;
  restart(reason?: Error): void;
  terminate(): void;
}

export declare function createTriage(options?: CreateOptions): Promise<CtTriage>;
