// @ts-check
// ct-triage in the browser: a promise-based client over the Web Worker
// (worker.js) that runs the wasm engine, and its DICOMweb client
// (dicomweb.js). Types: index.d.ts.

import { CtTriageError, abortError } from './errors.js';
import * as dicomweb from './dicomweb.js';

export { CtTriageError };

const PRESETS = {
  lung: { center: -600, width: 1500 },
  mediastinum: { center: 40, width: 400 },
  bone: { center: 400, width: 1800 },
};

/** Labels of {@link Analysis.opacityOverlay} (the core's `opacities::GROUND_GLASS`, `CONSOLIDATION`). */
export const OPACITY_LABELS = Object.freeze({ groundGlass: 1, consolidation: 2 });

/** Window presets (centre / width in HU). */
export const WINDOWS = Object.freeze({ ...PRESETS });

/**
 * Create a client. The worker (and the wasm module) start right away; pass
 * `model` to load the classifier (URLs on your own origin, or bytes).
 */
export async function createTriage(options = {}) {
  const t = new CtTriage(options);
  if (options.model) await t.loadModel(options.model);
  return t;
}

/** The client: one Web Worker running the engine, requests served in order. */
export class CtTriage {
  constructor(options = {}) {
    this._workerUrl = options.workerUrl || new URL('./worker.js', import.meta.url);
    this._model = null; // {manifest: string, weights: ArrayBuffer} to reload after a restart
    this._modelId = null;
    this._next = 1;
    this._pending = new Map();
    this._onRestart = options.onRestart || null;
    this._spawn();
  }

  _spawn() {
    this._worker = new Worker(this._workerUrl, { type: 'module', name: 'ct-triage' });
    this._worker.onmessage = (ev) => this._receive(ev.data);
    this._worker.onerror = (ev) => {
      ev.preventDefault?.();
      this._failAll(new CtTriageError('internal', `worker failed: ${ev.message || 'load error'}`));
    };
    this._modelLoaded = null;
    if (this._model) this._modelLoaded = this._request('model', { ...this._model, weights: this._model.weights.slice(0) }, [], {});
  }

  _failAll(err) {
    for (const p of this._pending.values()) p.reject(err);
    this._pending.clear();
  }

  /** Stop the worker and start a fresh one (after a crash or a hard cancel). */
  restart(reason) {
    this._worker.terminate();
    this._failAll(reason || new CtTriageError('internal', 'restarted'));
    this._spawn();
    if (this._onRestart) this._onRestart();
  }

  _receive(msg) {
    const p = this._pending.get(msg.id);
    if (!p) return;
    if (msg.type === 'progress') {
      if (p.onProgress) {
        try { p.onProgress(msg.stage, msg.fraction); } catch { /* the caller's problem */ }
      }
      return;
    }
    this._pending.delete(msg.id);
    if (msg.type === 'result') p.resolve(msg.value);
    else {
      const e = msg.error || {};
      p.reject(new CtTriageError(e.code || 'internal', e.message || 'unknown error'));
      if (msg.crashed) this.restart();
    }
  }

  /**
   * Send one request to the worker; settles with its result or error.
   * @param {string} type
   * @param {object} body
   * @param {Transferable[]} transfer
   * @param {{ signal?: AbortSignal, onProgress?: (stage: string, fraction: number) => void }} [options]
   */
  _request(type, body, transfer, { signal, onProgress } = {}) {
    if (signal?.aborted) return Promise.reject(abortError());
    const id = this._next++;
    let cancel = null;
    if (signal && typeof SharedArrayBuffer !== 'undefined' && globalThis.crossOriginIsolated) {
      cancel = new SharedArrayBuffer(4);
    }
    return new Promise((resolve, reject) => {
      const done = () => signal?.removeEventListener('abort', onAbort);
      const onAbort = () => {
        // An AbortSignal's contract: the promise rejects at once, whatever the
        // engine is doing; a result that arrives later is dropped.
        this._pending.delete(id);
        reject(abortError());
        if (cancel) {
          Atomics.store(new Int32Array(cancel), 0, 1); // the engine stops at its next check
        } else {
          // No shared memory (page not cross-origin isolated): stop the worker.
          this.restart(abortError());
        }
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this._pending.set(id, {
        resolve: (v) => { done(); resolve(v); },
        reject: (e) => { done(); reject(e); },
        onProgress,
      });
      this._worker.postMessage({ id, type, cancel, ...body }, transfer);
    });
  }

  /**
   * Load the classifier. `model` is `{manifestUrl, weightsUrl}` (fetched from
   * your origin) or `{manifest: string|object, weights: ArrayBuffer}`.
   * Resolves to the model identity `{name, version, sha256, runtime}`.
   */
  async loadModel(model) {
    let manifest = model.manifest;
    let weights = model.weights;
    if (model.manifestUrl) manifest = await (await fetchOk(model.manifestUrl)).text();
    if (model.weightsUrl) weights = await (await fetchOk(model.weightsUrl)).arrayBuffer();
    if (typeof manifest !== 'string') manifest = JSON.stringify(manifest);
    if (ArrayBuffer.isView(weights)) weights = weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength);
    this._model = { manifest, weights };
    this._modelLoaded = this._request('model', { manifest, weights: weights.slice(0) }, []);
    const { id } = await this._modelLoaded;
    this._modelId = id;
    return id;
  }

  /** Engine version and the number of threads it runs on. */
  version() {
    return this._request('version', {}, []);
  }

  /**
   * Parse `input` and list its studies and series without decoding pixels
   * (the core's inventory: `studies[].series[]` with `key`, `eligible`,
   * `selected`, `reason`; `skipped`; `selected`). The files stay in the
   * worker: `analyze()` / `inspect()` without input then use them.
   */
  async scan(input, options = {}) {
    const json = await this._request('scan', { inputs: toInputs(input), options: pick(options) }, [], options);
    return JSON.parse(json);
  }

  /**
   * List the studies and series in `input` and load the selected one: the
   * same document as `ct-triage inspect --json`.
   */
  async inspect(input, options = {}) {
    const inputs = input === undefined || input === null ? null : toInputs(input);
    const json = await this._request('inspect', { inputs, options: pick(options) }, [], options);
    return JSON.parse(json);
  }

  /**
   * Analyse `input` (Files, a FileList, a zip File, or `{name, data}` buffers;
   * `null` → the files of the last `scan()`).
   * Resolves to an {@link Analysis}; rejects with a CtTriageError (code
   * `cancelled` — name `AbortError` — when `options.signal` aborts).
   */
  async analyze(input, options = {}) {
    if (!this._modelLoaded) throw new CtTriageError('model', 'no model loaded: call loadModel() first');
    await this._modelLoaded;
    const inputs = input === undefined || input === null ? null : toInputs(input);
    const v = await this._request('analyze', { inputs, options: pick(options) }, [], options);
    return new Analysis(this, this._worker, v);
  }

  /**
   * The series of a study on a DICOMweb server (QIDO-RS), for a series picker:
   * `[{seriesInstanceUID, modality, seriesNumber, description, instances}]`.
   * @param {{ url: string, studyInstanceUID: string, headers?: Record<string, string>, signal?: AbortSignal }} q
   */
  async listDicomwebSeries(q) {
    return dicomweb.listSeries(q);
  }

  /**
   * Fetch a series from a DICOMweb server and analyse it in the tab: QIDO-RS
   * lists the study's series (`seriesInstanceUID`, or the CT series with the
   * most instances), WADO-RS fetches its instances in their stored transfer
   * syntax, then {@link analyze} runs as for local files. `headers` (e.g.
   * `Authorization`) go to that server only; nothing is sent anywhere else.
   * Progress reports stage `fetch` first. The analysis remembers its source
   * (`analysis.source`) for {@link Analysis.storeResults}.
   * @param {{ url: string, studyInstanceUID: string, seriesInstanceUID?: string, headers?: Record<string, string>,
   *   signal?: AbortSignal, onProgress?: (stage: string, fraction: number) => void } & Record<string, any>} q
   */
  async analyzeDicomweb(q) {
    const { url, studyInstanceUID, seriesInstanceUID, headers = {}, signal, onProgress, ...options } = q || {};
    if (!this._modelLoaded) throw new CtTriageError('model', 'no model loaded: call loadModel() first');
    const list = await dicomweb.listSeries({ url, studyInstanceUID, headers, signal });
    const chosen = dicomweb.chooseSeries(list, seriesInstanceUID);
    const files = await dicomweb.fetchSeries({
      url, studyInstanceUID, seriesInstanceUID: chosen.seriesInstanceUID, headers, signal,
      expected: chosen.instances,
      onProgress: onProgress && ((f) => onProgress('fetch', f)),
    });
    const a = await this.analyze(files, { ...options, signal, onProgress, series: chosen.seriesInstanceUID });
    a.source = { url, studyInstanceUID, seriesInstanceUID: chosen.seriesInstanceUID, instances: files.length };
    return a;
  }

  /** Stop the worker for good. */
  terminate() {
    this._worker.terminate();
    this._failAll(new CtTriageError('internal', 'terminated'));
  }
}

/** A finished analysis. Slices are rendered on demand by the worker. */
export class Analysis {
  constructor(client, worker, v) {
    this._client = client;
    this._worker = worker;
    /** The report JSON exactly as the engine wrote it (same as the native CLI). */
    this.reportJson = v.reportJson;
    /** The report, parsed. */
    this.report = JSON.parse(v.reportJson);
    /** Volume geometry: size_xyz, spacing_mm, origin_lps_mm, direction, series_key, … */
    this.volume = v.volume;
    /** Key images: [{findingId, file, png: Uint8Array}]. */
    this.keyImages = v.keyImages;
    /**
     * The source slices with a diffuse opacity, ascending, with their voxel
     * counts: `[{slice, groundGlass, consolidation}]` (empty when there is
     * none or the opacity stage did not run).
     * @type {Array<{ slice: number, groundGlass: number, consolidation: number }>}
     */
    this.opacitySlices = v.opacitySlices || [];
    /** Time spent in the engine, ms. */
    this.engineMs = v.engineMs;
    /**
     * Where the series came from when it was fetched over DICOMweb, else null.
     * @type {{ url: string, studyInstanceUID: string, seriesInstanceUID: string, instances: number } | null}
     */
    this.source = null;
  }

  _live() {
    if (this._client._worker !== this._worker) throw new CtTriageError('invalid_argument', 'this analysis is gone (the worker restarted)');
  }

  /** Render axial slice `z` in a window (`'lung'`, `'mediastinum'`, `'bone'` or `{center, width}`) as ImageData. */
  async renderSlice(z, window = 'lung') {
    this._live();
    const w = typeof window === 'string' ? PRESETS[window] : window;
    if (!w) throw new CtTriageError('invalid_argument', `unknown window ${window}`);
    const { rgba } = await this._client._request('slice', { z, center: w.center, width: w.width }, []);
    const [nx, ny] = this.volume.size_xyz;
    return new ImageData(new Uint8ClampedArray(rgba.buffer, rgba.byteOffset, rgba.byteLength), nx, ny);
  }

  /** HU values of axial slice `z` (Int16Array, row-major). */
  async sliceHu(z) {
    this._live();
    return (await this._client._request('sliceHu', { z }, [])).hu;
  }

  /** Segmentation of finding `index` (0-based, report order) on slice `z`: `{box: [x0,y0,z0,nx,ny,nz], data}`. */
  async findingMask(index, z) {
    this._live();
    return this._client._request('mask', { index, z }, []);
  }

  /**
   * The diffuse-opacity label image of slice `z` for an overlay: a
   * `Uint8Array` of `columns × rows` bytes, row-major (0 none,
   * {@link OPACITY_LABELS}`.groundGlass` = 1, `.consolidation` = 2), or
   * `undefined` when the slice has no opacity (see {@link opacitySlices}).
   * The buffer is transferred from the worker (never a view on wasm memory).
   * Rejects with `invalid_argument` for a slice outside the volume.
   * @param {number} z
   * @returns {Promise<Uint8Array | undefined>}
   */
  async opacityOverlay(z) {
    this._live();
    const { data } = await this._client._request('opacity', { z }, []);
    return data || undefined;
  }

  /** LPS points (mm) → continuous voxel indices `[x, y, z]`. */
  async toVoxels(points) {
    this._live();
    return this._client._request('voxel', { points }, []);
  }

  /**
   * The analysis as DICOM Part 10 objects: the TID 1500 measurement report
   * (`report.sr.dcm`), the findings' segmentation (`findings.seg.dcm`) and,
   * with `keyImages`, the key images as Secondary Capture.
   * Resolves to `[{file, kind, sopInstanceUid, bytes}]`.
   */
  async dicomExport({ keyImages = false } = {}) {
    this._live();
    return (await this._client._request('dicom', { keyImages }, [])).objects;
  }

  /**
   * Every file of the result folder the CLI writes (`key-images/*.png`, the
   * DICOM objects, `report.json` last), made by core. With `deidentify`, the
   * report and the objects are de-identified by core's recipe (DICOM PS3.15
   * Basic Profile) with `key` (at least 16 bytes; default a fresh random key
   * per call, so pseudonyms are not linkable between downloads) and
   * `deidentification.json` lists what was done to each file.
   * @param {{ deidentify?: boolean, key?: Uint8Array }} [options]
   * @returns {Promise<Array<{ name: string, bytes: Uint8Array }>>}
   */
  async resultFiles({ deidentify = false, key } = {}) {
    this._live();
    return (await this._client._request('bundle', { deidentify, key: bundleKey(deidentify, key), zip: false }, [])).files;
  }

  /**
   * {@link resultFiles} as one zip archive (`application/zip` Blob).
   * @param {{ deidentify?: boolean, key?: Uint8Array }} [options]
   * @returns {Promise<Blob>}
   */
  async resultZip({ deidentify = false, key } = {}) {
    this._live();
    const { zip } = await this._client._request('bundle', { deidentify, key: bundleKey(deidentify, key), zip: true }, []);
    return new Blob([zip], { type: 'application/zip' });
  }

  /**
   * Store the result objects (SR, SEG, key images as SC, KOS) on a DICOMweb
   * server with STOW-RS: by default the one the study came from
   * ({@link CtTriage.analyzeDicomweb}). Resolves to the server's answer per
   * object `{status, stored, failed, objects: [{file, sopInstanceUid, stored, reason}]}`.
   * @param {{ url?: string, headers?: Record<string, string>, signal?: AbortSignal, keyImages?: boolean }} [options]
   */
  async storeResults({ url, headers = {}, signal, keyImages = true } = {}) {
    this._live();
    const target = url || this.source?.url;
    if (!target) throw new CtTriageError('invalid_argument', 'storeResults: no DICOMweb URL (the study did not come from one)');
    const objects = await this.dicomExport({ keyImages });
    return dicomweb.storeInstances({ url: target, headers, signal, objects });
  }

  /** The report as a downloadable Blob (`report.json`). */
  reportBlob() {
    return new Blob([this.reportJson], { type: 'application/json' });
  }

  /** Key image `i` as a PNG Blob. */
  keyImageBlob(i) {
    return new Blob([this.keyImages[i].png], { type: 'image/png' });
  }

  /** Free the volume in the worker. */
  release() {
    if (this._client._worker === this._worker) return this._client._request('release', {}, []);
    return Promise.resolve(null);
  }
}

/**
 * The de-identification key of a bundle request: the caller's, or 32 random bytes.
 * @param {boolean} deidentify
 * @param {Uint8Array | undefined} key
 */
function bundleKey(deidentify, key) {
  if (!deidentify) return undefined;
  return key || crypto.getRandomValues(new Uint8Array(32));
}

async function fetchOk(url) {
  const r = await fetch(url);
  if (!r.ok) throw new CtTriageError('model', `${url}: HTTP ${r.status}`);
  return r;
}

function pick(o) {
  const out = {};
  for (const k of ['series', 'patient', 'keyImages', 'maxFindings', 'explain']) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

function toInputs(input) {
  if (input == null) throw new CtTriageError('invalid_argument', 'no input');
  if (typeof FileList !== 'undefined' && input instanceof FileList) return Array.from(input);
  if (typeof Blob !== 'undefined' && input instanceof Blob) return [input];
  if (input instanceof ArrayBuffer || ArrayBuffer.isView(input)) return [{ name: 'input', data: input }];
  if (Array.isArray(input)) return input;
  if (input.data) return [input];
  throw new CtTriageError('invalid_argument', 'input must be Files, a FileList, a zip File or {name, data} buffers');
}
