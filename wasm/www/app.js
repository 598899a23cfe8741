// @ts-check
// The page: intake (folder / zip / files, drag-and-drop), series picker,
// progress per stage, viewer, findings, triage, downloads. Everything runs in
// this tab: the engine is a Web Worker (pkg/), the model is fetched from this
// origin, and nothing is sent anywhere.

import { CtTriage, CtTriageError } from './pkg/index.js';
import { Viewer, OPACITY_COLORS } from './viewer.js';
import { t, setLang, initialLang, currentLang } from './i18n.js';

const MODEL_MANIFEST = 'models/ctt-nodule-v1.json';
const STAGES = ['read', 'ingest', 'resample', 'lungs', 'candidates', 'classify', 'measure', 'opacities', 'triage', 'report'];

/** @param {string} id */
const $ = (id) => document.getElementById(id);
/** An `<input>` of the page by id. @param {string} id */
const $input = (id) => /** @type {HTMLInputElement} */ ($(id));
/**
 * The elements matching `selector` (all of the page's are HTML elements).
 * @param {string} selector
 */
const $all = (selector) => /** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll(selector));
/**
 * @typedef {import('./pkg/index.js').Analysis} Analysis
 * @typedef {import('./pkg/index.js').Report} Report
 * @typedef {import('./pkg/index.js').Finding} Finding
 * @typedef {import('./pkg/index.js').Inventory} Inventory
 * @typedef {import('./pkg/index.js').ModelId} ModelId
 */

/**
 * @type {{ triage: CtTriage | null, modelId: ModelId | null, analysis: Analysis | null,
 *   abort: AbortController | null, t0: number, inventory: Inventory | null,
 *   selected: string | null, queued: (() => void) | null, stages: string[],
 *   pacsHeaders: Record<string, string> }}
 */
const state = {
  triage: null,
  modelId: null,
  analysis: null,
  abort: null,
  t0: 0,
  inventory: null,
  selected: null,
  /** What was asked for before the engine was ready (files, a PACS study). */
  queued: null,
  /** Stages of the progress bar. */
  stages: STAGES,
  /** Headers of the DICOMweb server the study came from (kept in this tab only). */
  pacsHeaders: {},
};

function setStatus(s) {
  $('status').textContent = s;
  document.body.dataset.status = s;
}

function show(id, on) {
  $(id).hidden = !on;
}

// ---------------------------------------------------------------- engine

async function startEngine() {
  setStatus('loading');
  try {
    state.triage = new CtTriage({ onRestart: () => console.warn('ct-triage: engine restarted') });
    const manifestText = await (await fetchOk(MODEL_MANIFEST)).text();
    const manifest = JSON.parse(manifestText);
    const weightsUrl = new URL(manifest.weights, new URL(MODEL_MANIFEST, location.href));
    const weights = await (await fetchOk(weightsUrl)).arrayBuffer();
    state.modelId = await state.triage.loadModel({ manifest: manifestText, weights });
    $('engine').classList.add('ready');
    $('engine-text').dataset.i18n = '';
    renderEngineLine();
    setStatus('ready');
    // Files chosen while the engine was starting are analysed now.
    const queued = state.queued;
    state.queued = null;
    if (queued) queued();
  } catch (e) {
    $('engine').classList.add('failed');
    $('engine-text').textContent = t('engineFailed', { msg: e.message });
    setStatus('error');
  }
}

function renderEngineLine() {
  if (!state.modelId) return;
  $('engine-text').textContent = t('engineReady', { model: `${state.modelId.name} ${state.modelId.version}` });
}

async function fetchOk(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r;
}

// ---------------------------------------------------------------- intake

function bindIntake() {
  for (const id of ['file-input', 'folder-input']) {
    $(id).addEventListener('change', (e) => {
      const input = /** @type {HTMLInputElement} */ (e.target);
      const files = Array.from(input.files || []);
      input.value = '';
      if (files.length) intake(files);
    });
  }
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', async (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    const files = await droppedFiles(e.dataTransfer);
    if (files.length) intake(files);
  });
  document.addEventListener('dragover', (e) => e.preventDefault());
  document.addEventListener('drop', (e) => e.preventDefault());
}

/** Files of a drop, walking dropped folders. */
async function droppedFiles(dt) {
  const entries = Array.from(dt.items || []).map((i) => (i.webkitGetAsEntry ? i.webkitGetAsEntry() : null));
  if (!entries.some(Boolean)) return Array.from(dt.files || []);
  const out = [];
  const walk = async (entry, path) => {
    if (!entry) return;
    if (entry.isFile) {
      const f = await new Promise((res, rej) => entry.file(res, rej));
      out.push(new File([f], `${path}${f.name}`, { type: f.type, lastModified: f.lastModified }));
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const e of batch) await walk(e, `${path}${entry.name}/`);
      }
    }
  };
  for (const e of entries) await walk(e, '');
  return out;
}

async function intake(files) {
  if (!state.modelId) {
    // The engine is still starting: keep the files (the last choice wins) and
    // start when it is ready; never drop them silently.
    state.queued = () => intake(files);
    if (document.body.dataset.status !== 'error') {
      setStatus('queued');
      $('engine-text').textContent = t('filesQueued', { n: files.length });
    }
    return;
  }
  state.t0 = performance.now();
  reset();
  show('intake', false);
  startProgress();
  setStatus('reading');
  const ctl = new AbortController();
  state.abort = ctl;
  try {
    const inv = await state.triage.scan(files, { signal: ctl.signal, onProgress });
    state.inventory = inv;
    const eligible = inv.studies.flatMap((s) => s.series.map((x) => ({ ...x, study: s }))).filter((x) => x.eligible);
    if (eligible.length > 1) {
      show('progress', false);
      pickSeries(eligible, inv.selected);
      return;
    }
    await analyze(null);
  } catch (e) {
    fail(e);
  }
}

function pickSeries(list, selected) {
  setStatus('choosing');
  const box = $('series-list');
  box.replaceChildren();
  for (const s of list) {
    const row = document.createElement('label');
    row.className = 'series';
    const r = document.createElement('input');
    r.type = 'radio';
    r.name = 'series';
    r.value = s.key;
    r.checked = s.key === selected;
    const d = document.createElement('div');
    const title = document.createElement('div');
    title.className = 'series-title';
    title.textContent = `${s.description || t('series')} ${s.series_number ?? ''}`.trim();
    const sub = document.createElement('div');
    sub.className = 'series-sub';
    const thick = s.slice_thickness_mm ? ` · ${s.slice_thickness_mm} mm` : '';
    sub.textContent = `${s.modality} · ${t('slices', { n: s.frames })} · ${s.rows}×${s.columns}${thick} · ${s.orientation}${s.selected ? ` · ${t('selectedAuto')}` : ''}`;
    d.append(title, sub);
    row.append(r, d);
    box.append(row);
  }
  show('picker', true);
  $('analyze-btn').onclick = () => {
    const key = /** @type {HTMLInputElement | null} */ (box.querySelector('input:checked'))?.value;
    show('picker', false);
    startProgress();
    state.t0 = performance.now();
    analyze(key || null).catch(fail);
  };
  $('cancel-pick').onclick = () => { show('picker', false); reset(); show('intake', true); setStatus('ready'); };
}

async function analyze(series) {
  setStatus('analysing');
  const ctl = new AbortController();
  state.abort = ctl;
  const opts = { signal: ctl.signal, onProgress };
  if (series) opts.series = series;
  await finish(await state.triage.analyze(null, opts));
}

/** Show a finished analysis. @param {Analysis} a */
async function finish(a) {
  state.analysis = a;
  const elapsed = performance.now() - state.t0;
  await showResult(a);
  setStatus('done');
  $('status').dataset.elapsedMs = String(Math.round(elapsed));
  $('status').dataset.engineMs = String(Math.round(a.engineMs));
  $('elapsed').textContent = `· ${t('analysedIn', { s: (elapsed / 1000).toFixed(1) })}`;
}

function fail(e) {
  state.abort = null;
  show('progress', false);
  show('picker', false);
  const cancelled = e instanceof CtTriageError && e.code === 'cancelled';
  if (cancelled) {
    setStatus('cancelled');
    show('intake', true);
    return;
  }
  setStatus('error');
  show('intake', true);
  show('error', true);
  const msg = e.code === 'internal' && /crash/.test(e.message) ? t('crashed') : e.message;
  $('error-text').textContent = e.code ? `${msg} (${e.code})` : msg;
}

function reset() {
  show('error', false);
  show('workspace', false);
  $('report-json').textContent = '';
  $('elapsed').textContent = '';
  if (state.analysis) state.analysis.release().catch(() => {});
  state.analysis = null;
}

// ---------------------------------------------------------------- progress

function startProgress(stages = STAGES) {
  state.stages = stages;
  const box = $('stages');
  box.replaceChildren();
  for (const s of stages) {
    const el = document.createElement('div');
    el.className = 'stage';
    el.dataset.stage = s;
    const bar = document.createElement('div');
    bar.className = 'bar';
    const fill = document.createElement('div');
    fill.className = 'fill';
    bar.append(fill);
    const name = document.createElement('div');
    name.className = 'stage-name';
    name.dataset.i18n = `st_${s}`;
    name.textContent = t(`st_${s}`);
    el.append(bar, name);
    box.append(el);
  }
  $('progress-stage').textContent = t('reading');
  show('progress', true);
}

function onProgress(stage, fraction) {
  const i = state.stages.indexOf(stage);
  if (i < 0) return;
  for (const el of /** @type {HTMLCollectionOf<HTMLElement>} */ ($('stages').children)) {
    const j = state.stages.indexOf(el.dataset.stage);
    const fill = /** @type {HTMLElement} */ (el.firstChild.firstChild);
    if (j < i) { fill.style.width = '100%'; el.className = 'stage done'; }
    else if (j === i) { fill.style.width = `${Math.round(fraction * 100)}%`; el.className = `stage ${fraction >= 1 ? 'done' : 'active'}`; }
  }
  $('progress-stage').textContent = `${t(`st_${stage}`)} · ${Math.round(fraction * 100)}%`;
}

$('cancel-btn')?.addEventListener('click', () => state.abort?.abort());

// ---------------------------------------------------------------- results

let viewer;

/** @param {Analysis} a */
async function showResult(a) {
  show('progress', false);
  show('workspace', true);
  $('report-json').textContent = a.reportJson;
  show('store-row', !!a.source);
  $('store-result').textContent = '';
  delete $('store-result').dataset.state;
  renderTriage(a.report);
  renderFindings(a.report);
  renderKeyImages(a);
  await viewer.load(a);
  $input('slice-range').max = String(viewer.sliceCount - 1);
  $input('show-opacity').checked = false;
  viewer.setOpacity(false);
  renderOpacityControls(a);
  if (a.report.findings.length) selectFinding(0, false);
}

/** @param {Report} r */
function renderTriage(r) {
  const p = r.exam.triage_priority;
  $('triage-priority').textContent = p;
  $('triage-priority').dataset.label = t(`p_${p}`);
  $('triage-badge').className = `badge ${p}`;
  $('triage-badge').dataset.label = t(`p_${p}`);
  const rads = r.exam.lung_rads ?? '0';
  $('exam-rads').textContent = rads;
  $('exam-rads').className = `rads r${rads}`;
  $('exam-rads-reason').textContent = t('examReason', { c: rads, why: r.exam.lung_rads_reason || '' });
  $('exam-management').textContent = r.exam.management || '';
  $('triage-rules').textContent = r.exam.triage_rule_set || '';
  const ul = $('triage-reasons');
  ul.replaceChildren();
  for (const reason of r.exam.triage_reasons) {
    const li = document.createElement('li');
    li.textContent = reason;
    ul.append(li);
  }
  if (r.exam.inconclusive_reason) {
    const li = document.createElement('li');
    li.textContent = r.exam.inconclusive_reason;
    ul.append(li);
  }
  const shown = (m) => r.exam.triage_reasons.some((x) => x.endsWith(m));
  for (const w of r.warnings.filter((w) => w.severity === 'warning' && !shown(w.message))) {
    const li = document.createElement('li');
    li.className = 'warn';
    li.dataset.testid = 'warning';
    li.setAttribute('data-testid', 'warning');
    li.textContent = w.message;
    ul.append(li);
  }
  const lungs = r.lungs;
  const meta = [];
  if (lungs) meta.push(t('lungsMeta', { r: Math.round(lungs.right_ml), l: Math.round(lungs.left_ml), n: r.candidates.detected, model: r.model.name }));
  meta.push(t('patientMeta', { age: Math.round(r.patient.age_years), src: r.patient.age_source, sex: t(r.patient.female ? 'female' : 'male') }));
  $('exam-meta').textContent = meta.join(' · ');
  // Diffuse opacities: a pattern, described per lung (issue 16).
  const o = r.opacities;
  const lung = (x) => t('opacityLung', { ggo: x.ground_glass_ml.toFixed(0), cons: x.consolidation_ml.toFixed(0), pct: x.percent_of_lung.toFixed(1) });
  $('opacity-meta').textContent = o
    ? t('opacityMeta', { r: lung(o.right), l: lung(o.left), css: o.ct_severity_score, laa: o.emphysema_laa950_percent.toFixed(1) })
    : '';
  renderLimits(r);
}

/**
 * The opacity overlay's controls: the toggle (disabled, with the reason, when
 * the scan has no opacity), its legend, and the jump to the most affected slice.
 * @param {Analysis} a
 */
function renderOpacityControls(a) {
  const o = a.report.opacities;
  const has = a.opacitySlices.length > 0;
  const toggle = $input('show-opacity');
  toggle.disabled = !has;
  if (!has) toggle.checked = false;
  const reason = $('opacity-reason');
  reason.dataset.i18n = has ? '' : (o ? 'opacityNone' : 'opacityNotAssessed');
  reason.textContent = has ? '' : t(reason.dataset.i18n);
  show('opacity-legend', toggle.checked);
  const most = o?.most_affected_slice;
  const go = /** @type {HTMLButtonElement} */ ($('opacity-goto'));
  go.disabled = !most;
  go.title = most ? t('opacityGotoTitle', { n: most.slice_index + 1, im: most.image_number ?? '?', area: most.area_cm2.toFixed(1) }) : '';
}

/** @param {Report} r */
function renderLimits(r) {
  const ul = $('limits');
  ul.replaceChildren();
  for (const l of r.limits || []) {
    const li = document.createElement('li');
    li.textContent = l;
    ul.append(li);
  }
  $('report-disclaimer').textContent = r.disclaimer;
}

function pct(v) {
  return v == null ? '–' : `${(v * 100).toFixed(v < 0.1 ? 1 : 0)}%`;
}

function imageCell(f) {
  const n = (v) => (v == null ? '?' : String(v));
  return `${n(f.series_number)}/${n(f.image_number)}`;
}

/** @param {Report} r */
function renderFindings(r) {
  const body = $('finding-rows');
  body.replaceChildren();
  $('finding-count').textContent = r.findings.length ? `(${r.findings.length})` : '';
  show('no-findings', r.findings.length === 0);
  show('finding-detail', r.findings.length > 0);
  r.findings.forEach((f, i) => {
    const tr = document.createElement('tr');
    tr.dataset.testid = 'finding';
    tr.setAttribute('data-testid', 'finding');
    tr.dataset.index = String(i);
    tr.tabIndex = 0;
    const lobe = f.location.lobe && f.location.lobe !== 'unknown' ? t(`lobeShort_${f.location.lobe}`) : `${t(`side_${f.location.side}`)} · ${t('lobeShort_unknown')}`;
    const loc = `${lobe}${f.location.juxtapleural ? ` · ${t('pleural')}` : ''}`;
    const type = `${t(`t_${f.type}`)}${f.kind === 'mass' ? ` ${t('k_mass')}` : ''}`;
    const size = `${f.diameter_mm.toFixed(1)} mm`;
    const cells = [
      String(f.id),
      loc,
      type,
      size,
      imageCell(f),
      f.lung_rads,
      pct(f.brock_probability),
      f.malignancy_probability.toFixed(2),
    ];
    cells.forEach((c, k) => {
      const td = document.createElement('td');
      if (k === 5) {
        const s = document.createElement('span');
        s.className = `rads r${f.lung_rads}`;
        s.textContent = c;
        td.append(s);
      } else {
        td.textContent = c;
      }
      if (k === 4) td.dataset.testid = 'image-number';
      if (k === 1) td.title = f.location.lobe_method || '';
      if (k === 3 || k >= 6) td.className = 'num';
      if (k === 3) td.title = `${f.long_axis_mm.toFixed(1)} × ${f.short_axis_mm.toFixed(1)} mm · ${Math.round(f.volume_mm3)} mm³`;
      if (k === 5) td.title = `${f.lung_rads_reason}\n${f.lung_rads_management || ''}`;
      tr.append(td);
    });
    tr.addEventListener('click', () => selectFinding(i, true));
    tr.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); selectFinding(i, true); } });
    body.append(tr);
  });
}

/** The selected finding in full: image, size, category with reason and management, calcification, Brock, AI. */
/** @param {Finding | undefined} f */
function renderDetail(f) {
  const dl = $('finding-detail');
  dl.replaceChildren();
  if (!f) return;
  const row = (k, v, testid) => {
    const dt = document.createElement('dt');
    dt.textContent = t(k);
    const dd = document.createElement('dd');
    dd.textContent = v;
    if (testid) dd.dataset.testid = testid;
    if (testid) dd.setAttribute('data-testid', testid);
    dl.append(dt, dd);
  };
  const n = (v) => (v == null ? '?' : String(v));
  row('dFinding', `#${f.id} · ${t(`t_${f.type}`)}${f.kind === 'mass' ? ` ${t('k_mass')}` : ''}`);
  row('dImage', t('dImageValue', { se: n(f.series_number), im: n(f.image_number), n: f.slice_index + 1 }), 'detail-image');
  row('dSize', t('dSizeValue', { d: f.diameter_mm.toFixed(1), l: f.long_axis_mm.toFixed(1), s: f.short_axis_mm.toFixed(1), v: Math.round(f.volume_mm3) }));
  const lobe = f.location.lobe ? t(`lobe_${f.location.lobe}`) : t('lobe_unknown');
  row('dLobe', `${lobe}${f.location.lobe && f.location.lobe !== 'unknown' ? ` (${t('lobeNote')})` : ` — ${f.location.lobe_method || ''}`}`);
  row('dRads', `${f.lung_rads} — ${f.lung_rads_reason}`);
  row('dManagement', f.lung_rads_management || '', 'detail-management');
  if (f.calcification) row('dCalc', `${f.calcification.pattern} — ${f.calcification.reason}`);
  if (f.morphology) row('dShape', `${f.morphology.smooth_margins ? 'smooth' : 'not smooth'}, ${f.morphology.shape}${f.location.juxtapleural ? ` · ${t('juxtapleural')}` : ''}`);
  const tm = f.type_model ? ` / ${f.type_model.top} (${pct(f.type_model[f.type_model.top])})` : '';
  row('dType', `${f.type}${f.type_hu_fraction && f.type_hu_fraction !== f.type ? ` (HU fraction: ${f.type_hu_fraction})` : ''}${tm}`);
  const b = f.brock;
  if (b) {
    const lobeTxt = b.upper_lobe_source.startsWith('default') && b.probability_if_upper_lobe != null
      ? `${b.upper_lobe_source}; ${t('dBrockIfUpper', { p: pct(b.probability_if_upper_lobe) })}`
      : `upper lobe ${b.upper_lobe ? 'yes' : 'no'} (${b.upper_lobe_source})`;
    row('dBrock', t('dBrockValue', { p: pct(f.brock_probability), d: b.diameter_mm.toFixed(1), lobe: lobeTxt }));
  } else {
    row('dBrock', pct(f.brock_probability));
  }
  row('dAi', t('dAiValue', { p: f.malignancy_probability.toFixed(2) }));
  if (f.triage_band) row('dTriage', `${t(`p_${f.triage_band}`)}${f.triage_reasons?.length ? ` — ${f.triage_reasons.join('; ')}` : ''}`);
}

function selectFinding(i, focus) {
  for (const tr of /** @type {HTMLCollectionOf<HTMLElement>} */ ($('finding-rows').children)) tr.classList.toggle('sel', tr.dataset.index === String(i));
  renderDetail(state.analysis?.report.findings[i]);
  state.selected = i;
  viewer.select(i);
  if (focus) $('view').focus();
}

/** @param {Analysis} a */
function renderKeyImages(a) {
  const box = $('key-images');
  box.replaceChildren();
  const byId = new Map(a.report.findings.map((f) => [f.id, f]));
  a.keyImages.forEach((k, i) => {
    const url = URL.createObjectURL(a.keyImageBlob(i));
    const link = document.createElement('a');
    link.href = url;
    link.download = k.file.split('/').pop();
    link.className = 'key';
    link.target = '_blank';
    const img = document.createElement('img');
    img.src = url;
    img.alt = k.file;
    const cap = document.createElement('span');
    const f = byId.get(k.findingId);
    cap.textContent = f ? `#${k.findingId} · ${imageCell(f)} · ${f.lung_rads}` : `#${k.findingId}`;
    link.append(img, cap);
    box.append(link);
  });
}

function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function reportName(ext) {
  const uid = state.analysis?.report.input.series_instance_uid || 'series';
  return `ct-triage-${uid.slice(-12)}.${ext}`;
}

// ---------------------------------------------------------------- viewer bar

function bindViewer() {
  viewer = new Viewer(/** @type {HTMLCanvasElement} */ ($('view')), {
    onSlice: (z) => {
      $input('slice-range').value = String(z);
      $('slice-label').textContent = t('slice', { n: z + 1, total: viewer.sliceCount });
      corners();
    },
  });
  $input('slice-range').addEventListener('input', () => viewer.show(Number($input('slice-range').value)));
  for (const b of $all('[data-window]')) {
    b.addEventListener('click', () => {
      for (const o of $all('[data-window]')) o.classList.toggle('on', o === b);
      viewer.setWindow(b.dataset.window);
      corners();
    });
  }
  $('zoom-in').addEventListener('click', () => viewer.setZoom(viewer.zoom * 1.25));
  $('zoom-out').addEventListener('click', () => viewer.setZoom(viewer.zoom / 1.25));
  $('zoom-reset').addEventListener('click', () => { viewer.pan = [0, 0]; viewer.setZoom(1); });
  $('view').addEventListener('zoomchange', (e) => { $('zoom-reset').textContent = `${Math.round(/** @type {CustomEvent<number>} */ (e).detail * 100)}%`; });
  $('show-overlay').addEventListener('change', () => { viewer.overlay = $input('show-overlay').checked; viewer.draw(); });
  $('swatch-ggo').style.background = rgba(OPACITY_COLORS.groundGlass);
  $('swatch-cons').style.background = rgba(OPACITY_COLORS.consolidation);
  $('show-opacity').addEventListener('change', () => {
    const on = $input('show-opacity').checked;
    show('opacity-legend', on);
    viewer.setOpacity(on);
  });
  $('opacity-goto').addEventListener('click', () => {
    const most = state.analysis?.report.opacities?.most_affected_slice;
    if (!most) return;
    // The whole slice (fit), as the opacity may lie anywhere on it.
    viewer.pan = [0, 0];
    viewer.setZoom(1);
    viewer.show(most.slice_index);
  });
  $('dl-report').addEventListener('click', () => state.analysis && download(state.analysis.reportBlob(), reportName('json')));
  $('dl-keys').addEventListener('click', () => {
    const a = state.analysis;
    if (!a) return;
    a.keyImages.forEach((k, i) => download(a.keyImageBlob(i), `${reportName('').slice(0, -1)}-${k.file.split('/').pop()}`));
  });
  $('dl-sr').addEventListener('click', async () => {
    const a = state.analysis;
    if (!a) return;
    try {
      const objs = await a.dicomExport({ keyImages: false });
      // The worker transfers ArrayBuffer-backed arrays (never shared memory).
      for (const o of objs) download(new Blob([/** @type {Uint8Array<ArrayBuffer>} */ (o.bytes)], { type: 'application/dicom' }), `${reportName('').slice(0, -1)}-${o.file}`);
    } catch (e) {
      /** @type {HTMLButtonElement} */ ($('dl-sr')).disabled = true;
      $('dl-sr').title = `${t('dlSrSoon')}: ${e.message}`;
    }
  });
  $('dl-zip').addEventListener('click', async () => {
    const a = state.analysis;
    if (!a) return;
    // De-identified by core (PS3.15 Basic Profile) with a fresh key per
    // download; the file name then carries no UID either.
    const deidentify = $input('dl-deid').checked;
    try {
      const zip = await a.resultZip({ deidentify });
      download(zip, deidentify ? 'ct-triage-results-deidentified.zip' : reportName('zip'));
      $('dl-zip').title = '';
    } catch (e) {
      $('dl-zip').title = `${t('dlZipFailed')}: ${e.message}`;
    }
  });
  $('new-study').addEventListener('click', () => { reset(); show('intake', true); setStatus('ready'); });
}

/** A CSS colour of an RGBA quadruple (alpha 0–255), at full opacity for a legend swatch. @param {readonly number[]} c */
function rgba(c) {
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

// ---------------------------------------------------------------- PACS (DICOMweb)

/** The DICOMweb request of the "Open from PACS" form. */
function pacsQuery() {
  const auth = $input('pacs-auth').value.trim();
  return {
    url: $input('pacs-url').value.trim(),
    studyInstanceUID: $input('pacs-study').value.trim(),
    seriesInstanceUID: $input('pacs-series').value.trim() || undefined,
    headers: auth ? { Authorization: /^(Bearer|Basic) /i.test(auth) ? auth : `Bearer ${auth}` } : {},
  };
}

/** The form, and the URL parameters `?dicomweb=<url>&study=<uid>[&series=<uid>]` a viewer links with. */
function bindPacs() {
  const p = new URLSearchParams(location.search);
  const url = p.get('dicomweb');
  if (url) {
    $input('pacs-url').value = url;
    $input('pacs-study').value = p.get('study') || '';
    $input('pacs-series').value = p.get('series') || '';
    /** @type {HTMLDetailsElement} */ ($('pacs')).open = true;
    if (p.get('study')) openFromPacs(pacsQuery());
  }
  $('pacs-form').addEventListener('submit', (e) => { e.preventDefault(); openFromPacs(pacsQuery()); });
  $('store-pacs').addEventListener('click', storeToPacs);
}

/** Fetch a study's CT series over DICOMweb and analyse it here. @param {ReturnType<typeof pacsQuery>} q */
async function openFromPacs(q) {
  if (!state.modelId) {
    state.queued = () => openFromPacs(q);
    if (document.body.dataset.status !== 'error') setStatus('queued');
    return;
  }
  state.t0 = performance.now();
  reset();
  show('intake', false);
  startProgress(['fetch', ...STAGES]);
  setStatus('fetching');
  const ctl = new AbortController();
  state.abort = ctl;
  try {
    const a = await state.triage.analyzeDicomweb({
      ...q,
      signal: ctl.signal,
      onProgress: (stage, f) => {
        if (stage !== 'fetch' && document.body.dataset.status === 'fetching') setStatus('analysing');
        onProgress(stage, f);
      },
    });
    state.pacsHeaders = q.headers;
    await finish(a);
  } catch (e) {
    fail(e);
  }
}

/** STOW-RS of the result objects to the server the study came from, after a confirmation. */
async function storeToPacs() {
  const a = state.analysis;
  if (!a?.source) return;
  if (!window.confirm(t('storeConfirm', { url: a.source.url }))) return;
  const out = $('store-result');
  out.dataset.state = 'storing';
  out.textContent = t('storing');
  try {
    const r = await a.storeResults({ headers: state.pacsHeaders });
    const bad = r.objects.filter((o) => !o.stored).map((o) => `${o.file}: ${t('rejected')}${o.reason != null ? ` (0x${o.reason.toString(16).toUpperCase()})` : ''}`);
    out.textContent = [t('stored', { n: r.stored, total: r.objects.length, status: r.status }), ...bad].join(' · ');
    out.dataset.state = r.failed ? 'partial' : 'stored';
  } catch (e) {
    out.textContent = `${t('storeFailed')}: ${e.message}${e.code ? ` (${e.code})` : ''}`;
    out.dataset.state = 'failed';
  }
}

function corners() {
  const a = state.analysis;
  if (!a) return;
  const r = a.report;
  const w = /** @type {HTMLElement | null} */ (document.querySelector('[data-window].on'))?.dataset.window || 'lung';
  $('corner-tl').textContent = [r.input.patient_id, r.input.study_date].filter(Boolean).join('\n');
  $('corner-tr').textContent = [r.input.manufacturer, r.input.convolution_kernel].filter(Boolean).join('\n');
  $('corner-bl').textContent = `${t(`w${w[0].toUpperCase()}${w.slice(1)}`)}\n${r.input.spacing_mm.map((v) => v.toFixed(2)).join(' × ')} mm`;
  const im = a.volume.image_numbers?.[viewer.z];
  $('corner-br').textContent = `${t('slice', { n: viewer.z + 1, total: viewer.sliceCount })}${im != null ? `\nSe ${a.volume.series_number ?? '?'} Im ${im}` : ''}`;
}

// ---------------------------------------------------------------- language

function bindLang() {
  for (const b of $all('[data-lang]')) {
    b.addEventListener('click', () => {
      setLang(b.dataset.lang);
      renderEngineLine();
      if (state.analysis) {
        renderTriage(state.analysis.report);
        renderFindings(state.analysis.report);
        renderOpacityControls(state.analysis);
        if (state.selected != null) selectFinding(state.selected, false);
        corners();
        $('slice-label').textContent = t('slice', { n: viewer.z + 1, total: viewer.sliceCount });
      }
      if (currentLang() && $('status').dataset.elapsedMs) {
        $('elapsed').textContent = `· ${t('analysedIn', { s: (Number($('status').dataset.elapsedMs) / 1000).toFixed(1) })}`;
      }
    });
  }
}

// ---------------------------------------------------------------- offline

function registerServiceWorker() {
  if (!('serviceWorker' in navigator)) return;
  if (new URLSearchParams(location.search).has('nosw')) return;
  navigator.serviceWorker.register('sw.js').catch((e) => console.warn('service worker:', e));
}

setLang(initialLang());
bindLang();
bindIntake();
bindPacs();
bindViewer();
registerServiceWorker();
startEngine();
