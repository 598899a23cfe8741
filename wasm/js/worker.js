// @ts-check
// ct-triage Web Worker: runs the wasm module off the page's main thread.
// Protocol (all messages carry the request `id`):
//   in : {type: 'model', manifest, weights} | {type: 'scan'|'inspect'|'analyze', inputs, options, cancel}
//        (inspect/analyze with `inputs: null` reuse the files of the last scan)
//        {type: 'slice', z, center, width} | {type: 'sliceHu', z} | {type: 'mask', index, z}
//        {type: 'opacity', z}
//        {type: 'dicom', keyImages} | {type: 'voxel', points} | {type: 'release'}
//   out: {type: 'progress', stage, fraction} | {type: 'result', value} |
//        {type: 'error', error: {name, code, message}, crashed}
// When the instance traps (a bug: a panic aborts), the error is reported with
// `crashed: true` and the client starts a fresh worker.
import init, * as wasm from './ct_triage_wasm.js';
import { unzipSync, zipSync } from './vendor/fflate.js';

const ready = init({ module_or_path: new URL('./ct_triage_wasm_bg.wasm', import.meta.url) });
let model = null;
let current = null; // the AnalysisResult kept for slice requests
let held = null; // the FileSet of the last scan, reused by inspect/analyze without inputs
let crashed = false;

const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04];
// The core's archive rules (ct_triage_core::ingest::ArchiveLimits and
// hidden_member, the same the native reader applies), read from the engine
// once it is loaded. fflate allocates each member at its declared size, so
// sizes are checked before it unpacks.
let archive = null;
function archiveLimits() {
  if (!archive) archive = JSON.parse(wasm.archiveLimits());
  return archive;
}

function isZip(bytes) {
  return bytes.length >= 4 && ZIP_MAGIC.every((b, i) => bytes[i] === b);
}

function hidden(path) {
  return wasm.isHiddenMember(path);
}

/** Read every input (File, Blob with a name, {name, data}) into a wasm FileSet; zips are unpacked. */
async function toFileSet(inputs, onProgress) {
  const set = new wasm.FileSet();
  const read = async (item, i) => {
    if (typeof Blob !== 'undefined' && item instanceof Blob) {
      const file = /** @type {Blob & { name?: string, webkitRelativePath?: string }} */ (item); // a File, or a Blob given a name
      return { name: file.webkitRelativePath || file.name || `file-${i}`, bytes: new Uint8Array(await item.arrayBuffer()) };
    }
    if (item && (item.data instanceof ArrayBuffer || ArrayBuffer.isView(item.data))) {
      const d = item.data;
      return {
        name: item.name || `buffer-${i}`,
        bytes: d instanceof ArrayBuffer ? new Uint8Array(d) : new Uint8Array(d.buffer, d.byteOffset, d.byteLength),
      };
    }
    throw Object.assign(new Error(`input ${i} is neither a File nor {name, data}`), { code: 'invalid_argument' });
  };
  // Read a few files at a time (the reads overlap), copy each into wasm memory at once.
  const BATCH = 16;
  for (let start = 0; start < inputs.length; start += BATCH) {
    const batch = await Promise.all(inputs.slice(start, start + BATCH).map((item, k) => read(item, start + k)));
    for (const { name, bytes } of batch) {
      if (isZip(bytes)) {
        const limits = archiveLimits();
        let members;
        /** @type {{ name: string } | null} the first member over the limits (set in the filter) */
        let over = null;
        let total = 0;
        let count = 0;
        try {
          members = unzipSync(bytes, {
            filter: (f) => {
              if (f.name.endsWith('/') || hidden(f.name)) return false;
              total += f.originalSize;
              count += 1;
              if (f.originalSize > limits.max_member_bytes || total > limits.max_total_bytes
                  || count > limits.max_members) over = over || f;
              return over === null;
            },
          });
        } catch (e) {
          throw Object.assign(new Error(`${name}: not a readable zip: ${e.message}`), { code: 'invalid_argument' });
        }
        if (over) {
          throw Object.assign(new Error(`${name}!/${over.name}: the archive unpacks to more than its limits `
            + `(${limits.max_member_bytes} bytes a member, ${limits.max_total_bytes} in all, `
            + `${limits.max_members} members)`), { code: 'limit_exceeded' });
        }
        for (const [member, data] of Object.entries(members)) set.add(`${name}!/${member}`, data);
      } else {
        set.add(name, bytes);
      }
    }
    if (onProgress) onProgress('read', Math.min(1, (start + BATCH) / inputs.length));
  }
  return set;
}

function errorOf(e) {
  if (e instanceof WebAssembly.RuntimeError) {
    crashed = true;
    let panic = null;
    try { panic = wasm.lastPanic(); } catch { /* the instance is gone */ }
    return { name: 'CtTriageError', code: 'internal', message: panic || `the analysis engine crashed: ${e.message}` };
  }
  return { name: e?.name || 'Error', code: e?.code || 'internal', message: e?.message || String(e) };
}

function post(msg, transfer) {
  self.postMessage(msg, transfer || []);
}

async function handle(msg) {
  const { id, type } = msg;
  await ready;
  const progress = (stage, fraction) => post({ id, type: 'progress', stage, fraction });
  const flag = msg.cancel ? new Int32Array(msg.cancel) : null;
  const cancelled = () => (flag ? Atomics.load(flag, 0) !== 0 : false);
  switch (type) {
    case 'model': {
      if (model) model.free();
      model = null;
      model = wasm.Model.load(msg.manifest, new Uint8Array(msg.weights));
      return { id: JSON.parse(model.idJson()) };
    }
    case 'scan': {
      if (held) { held.free(); held = null; }
      held = await toFileSet(msg.inputs, progress);
      return wasm.scan(held, JSON.stringify(msg.options || {}), progress, cancelled);
    }
    case 'inspect': {
      const files = msg.inputs ? await toFileSet(msg.inputs, progress) : held;
      if (!files) throw Object.assign(new Error('no input: pass files or scan() first'), { code: 'invalid_argument' });
      try {
        return wasm.inspect(files, JSON.stringify(msg.options || {}), progress, cancelled);
      } finally {
        if (files !== held) files.free();
      }
    }
    case 'analyze': {
      if (!model) throw Object.assign(new Error('no model loaded'), { code: 'model' });
      if (current) { current.free(); current = null; }
      const files = msg.inputs ? await toFileSet(msg.inputs, progress) : held;
      if (!files) throw Object.assign(new Error('no input: pass files or scan() first'), { code: 'invalid_argument' });
      const t0 = performance.now();
      let result;
      try {
        result = wasm.analyze(files, model, JSON.stringify(msg.options || {}), progress, cancelled);
      } finally {
        if (files !== held) files.free();
      }
      current = result;
      const keyImages = [];
      for (let i = 0; i < result.keyImageCount; i++) {
        keyImages.push({ findingId: result.keyImageFindingId(i), file: result.keyImageFile(i), png: result.keyImagePng(i) });
      }
      // The slices with a diffuse opacity and their voxel counts (a few bytes
      // each); the label images themselves are fetched per slice ('opacity').
      const opacitySlices = Array.from(result.opacitySlices(), (z) => {
        const [groundGlass, consolidation] = result.opacityVoxels(z);
        return { slice: z, groundGlass, consolidation };
      });
      return {
        reportJson: result.reportJson(),
        volume: JSON.parse(result.volumeJson()),
        keyImages,
        opacitySlices,
        engineMs: performance.now() - t0,
      };
    }
    case 'slice': {
      if (!current) throw Object.assign(new Error('no analysis loaded'), { code: 'invalid_argument' });
      const rgba = current.renderSlice(msg.z, msg.center, msg.width);
      return { rgba };
    }
    case 'sliceHu': {
      if (!current) throw Object.assign(new Error('no analysis loaded'), { code: 'invalid_argument' });
      return { hu: current.sliceHu(msg.z) };
    }
    case 'mask': {
      if (!current) throw Object.assign(new Error('no analysis loaded'), { code: 'invalid_argument' });
      const box = current.maskBox(msg.index);
      const data = current.maskSlice(msg.index, msg.z);
      return { box: box ? Array.from(box) : null, data: data || null };
    }
    case 'opacity': {
      if (!current) throw Object.assign(new Error('no analysis loaded'), { code: 'invalid_argument' });
      return { data: current.opacitySlice(msg.z) || null };
    }
    case 'dicom': {
      if (!current) throw Object.assign(new Error('no analysis loaded'), { code: 'invalid_argument' });
      return { objects: current.dicomExport(!!msg.keyImages) };
    }
    case 'bundle': {
      if (!current) throw Object.assign(new Error('no analysis loaded'), { code: 'invalid_argument' });
      const files = current.resultBundle(!!msg.deidentify, msg.key || undefined);
      if (!msg.zip) return { files };
      /** @type {Record<string, Uint8Array>} */
      const entries = {};
      for (const f of files) entries[f.name] = f.bytes;
      return { zip: zipSync(entries, { level: 6 }) };
    }
    case 'voxel': {
      if (!current) throw Object.assign(new Error('no analysis loaded'), { code: 'invalid_argument' });
      return msg.points.map((p) => Array.from(current.patientToVoxel(p[0], p[1], p[2])));
    }
    case 'release': {
      if (current) current.free();
      current = null;
      if (held) held.free();
      held = null;
      return null;
    }
    case 'version':
      return { version: wasm.version(), rayonThreads: wasm.rayonThreads() };
    default:
      throw Object.assign(new Error(`unknown request ${type}`), { code: 'invalid_argument' });
  }
}

function transferables(value) {
  const out = [];
  if (!value || typeof value !== 'object') return out;
  for (const v of [value.rgba, value.hu, value.data]) if (v && v.buffer) out.push(v.buffer);
  for (const k of value.keyImages || []) if (k.png && k.png.buffer) out.push(k.png.buffer);
  for (const o of value.objects || []) if (o.bytes && o.bytes.buffer) out.push(o.bytes.buffer);
  return out;
}

// Requests run one at a time, in order: the engine is single-threaded.
let queue = Promise.resolve();
self.onmessage = (ev) => {
  const msg = ev.data;
  queue = queue.then(async () => {
    if (crashed) {
      post({ id: msg.id, type: 'error', error: { name: 'CtTriageError', code: 'internal', message: 'the analysis engine crashed; restarting' }, crashed: true });
      return;
    }
    try {
      const value = await handle(msg);
      post({ id: msg.id, type: 'result', value }, transferables(value));
    } catch (e) {
      post({ id: msg.id, type: 'error', error: errorOf(e), crashed });
    }
  });
};
