// ct-triage's results shown in the released OHIF viewer (issue 13).
//   1. Orthanc 1.10.1 + its DICOMweb plugin on 127.0.0.1 holds lung1 (REST
//      POST /instances) and what `ct-triage analyze` wrote for it (SR, SEG,
//      key images, KOS);
//   2. nginx serves OHIF's prebuilt dist/ (SPA fallback to index.html) with
//      this test's app-config.js (the default data source pointed at
//      /dicom-web, same origin) and Orthanc's /dicom-web/ behind a proxy;
//   3. headless Chromium opens /viewer?StudyInstanceUIDs=<lung1>: the study
//      browser lists the SR and the SEG; the SR, opened, lists ct-triage's
//      finding 1 with its long axis (the value of report.json, in mm) in the
//      measurement panel; the SEG, opened, lists the findings' segments and
//      the opacity types' (ground glass, consolidation).
// Writes tests/e2e/out/ohif-sr.png (with UPDATE_DOCS=1 copied to docs/ohif-sr.png) and
// tests/e2e/out/ohif-seg.png. Run by tests/e2e/ohif.sh, which gets OHIF.
//
//   node tests/e2e/ohif.mjs --ohif tests/e2e/.cache/ohif-3.13.2/dist   # CTT_BIN=… for the CLI
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { NGINX, ORTHANC, PLUGIN, Peers, freePort, requireFiles, sleep } from './peers.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt; };
const OHIF = path.resolve(opt('--ohif', path.join(HERE, '.cache/ohif-3.13.2/dist')));
const CTT_BIN = process.env.CTT_BIN || path.join(ROOT, 'target/release/ct-triage');
const SERIES = path.join(ROOT, 'sample-dicom/lung1');
const OUT = path.join(HERE, 'out');
fs.mkdirSync(OUT, { recursive: true });
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// swiftshader on 2 cores renders slowly: generous waits, all on conditions.
const LONG = 240000;

let failures = 0;
function check(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures++;
  return ok;
}
requireFiles([ORTHANC, PLUGIN, NGINX, CHROMIUM, CTT_BIN, path.join(OHIF, 'index.html'), path.join(OHIF, 'app-config.js')],
  'Debian orthanc, orthanc-dicomweb, nginx-light, chromium; the CLI: cargo build --release -p ct-triage; OHIF: tests/e2e/ohif.sh');

const t0 = Date.now();
const peers = new Peers('ctt-ohif-');
const work = peers.work;
let browser;
let page;
const consoleLines = [];
async function cleanup() {
  if (browser) await browser.close().catch(() => {});
  await peers.stop();
}
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { cleanup().finally(() => process.exit(130)); });

try {
  // ------------------------------------------------------------ 1. Orthanc + DICOMweb, lung1 and ct-triage's results
  const OH = await peers.orthanc('ctt-ohif-test');
  const post = (file) => peers.post(OH, file);
  const slices = fs.readdirSync(SERIES).filter((f) => f.endsWith('.dcm')).sort();
  for (const f of slices) await post(path.join(SERIES, f));
  check(slices.length === 48, `Orthanc holds lung1 (${slices.length} slices)`);

  const results = path.join(work, 'results');
  const cli = spawnSync(CTT_BIN, ['analyze', SERIES, '--out', results, '--quiet'], { encoding: 'utf8', timeout: 300000 });
  if (cli.status !== 0) throw new Error(`${CTT_BIN} analyze: exit ${cli.status}: ${cli.stderr}`);
  const report = JSON.parse(fs.readFileSync(path.join(results, 'report.json'), 'utf8'));
  const f1 = report.findings[0];
  const dcms = [];
  const walk = (d) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) { const p = path.join(d, e.name); if (e.isDirectory()) walk(p); else if (e.name.endsWith('.dcm')) dcms.push(p); } };
  walk(results);
  for (const f of dcms) await post(f);
  const names = dcms.map((f) => path.relative(results, f)).sort();
  check(['report.sr.dcm', 'findings.seg.dcm', 'key-objects.kos.dcm'].every((n) => names.includes(n)) && names.some((n) => n.endsWith('.sc.dcm')),
    `Orthanc holds ct-triage's results: ${names.join(', ')}`);
  const studies = await (await fetch(`${OH}/dicom-web/studies`, { headers: { Accept: 'application/dicom+json' } })).json();
  const study = studies[0]['0020000D'].Value[0];
  const series = await (await fetch(`${OH}/dicom-web/studies/${study}/series`, { headers: { Accept: 'application/dicom+json' } })).json();
  const modalities = series.map((s) => s['00080060']?.Value?.[0]).sort();
  check(studies.length === 1 && ['CT', 'SEG', 'SR'].every((m) => modalities.includes(m)), `one study ${study} with series ${modalities.join(', ')} (QIDO-RS)`);

  // ------------------------------------------------------------ 2. OHIF behind nginx, /dicom-web on the same origin
  // The released app-config.js points at a public demo server; serve a copy
  // pointed at this origin's /dicom-web (the cached dist/ stays untouched).
  let config = fs.readFileSync(path.join(OHIF, 'app-config.js'), 'utf8');
  const edits = [
    [/(wadoUriRoot|qidoRoot|wadoRoot): '[^']*'/g, "$1: '/dicom-web'", 3],
    [/staticWado: true/g, 'staticWado: false', 1],
    [/thumbnailRendering: '[^']*'/g, "thumbnailRendering: 'wadors'", 1],
  ];
  for (const [re, to, n] of edits) {
    const hits = (config.match(re) || []).length;
    if (hits !== n) throw new Error(`app-config.js of this OHIF: ${re} matched ${hits} times, expected ${n}`);
    config = config.replace(re, to);
  }
  fs.chmodSync(work, 0o755); // nginx's workers (nobody) read app-config.js from here
  fs.writeFileSync(path.join(work, 'app-config.js'), config, { mode: 0o644 });
  const webPort = await freePort();
  const nginx = peers.nginx(`server {
  listen 127.0.0.1:${webPort};
  root ${OHIF};
  location = /app-config.js { alias ${work}/app-config.js; add_header Cache-Control no-store; }
  location / { try_files $uri /index.html; }
  location /dicom-web/ {
    proxy_pass ${OH}/dicom-web/;
    proxy_http_version 1.1;
    proxy_buffering off;
    proxy_read_timeout 300s;
  }
}
`, { http: 'types { application/wasm wasm; }' });
  const origin = `http://127.0.0.1:${webPort}`;
  await peers.waitUp(`${origin}/app-config.js`, nginx, 'nginx');
  const served = await (await fetch(`${origin}/app-config.js`)).text();
  const spa = await fetch(`${origin}/viewer?StudyInstanceUIDs=${study}`).then((r) => r.text());
  const qido = await fetch(`${origin}/dicom-web/studies/${study}/series`).then((r) => r.status);
  check(served.includes("qidoRoot: '/dicom-web'") && spa.includes('app-config.js') && qido === 200,
    `nginx serves OHIF (its own app-config.js, SPA fallback) and Orthanc's /dicom-web on ${origin}`);

  // ------------------------------------------------------------ 3. OHIF in headless Chromium
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--use-gl=swiftshader', '--enable-unsafe-swiftshader', '--disable-dev-shm-usage',
      '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
  const context = await browser.newContext({ viewport: { width: 1600, height: 1000 }, serviceWorkers: 'block', locale: 'en-US' });
  page = await context.newPage();
  page.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${e}`));

  await page.goto(`${origin}/viewer?StudyInstanceUIDs=${study}`);
  // Dismiss the tour and the banner whenever they show (they may come late).
  const dismiss = async () => {
    for (const name of ['Skip all', 'Confirm and hide']) {
      const b = page.getByRole('button', { name, exact: true });
      if (await b.count().catch(() => 0)) await b.first().click({ timeout: 5000 }).catch(() => {});
    }
  };
  // The study browser: thumbnails with their modality.
  await page.waitForFunction(() => /\bSR\b/.test(document.body.innerText) && /\bSEG\b/.test(document.body.innerText)
    && document.querySelectorAll('[data-cy^="study-browser-thumbnail"], [data-series]').length >= 2, null, { timeout: LONG, polling: 250 })
    .catch(() => {});
  await dismiss();
  const thumb = (modality) => page.locator('[data-cy^="study-browser-thumbnail"]', { has: page.locator('[data-cy="series-modality-label"]', { hasText: new RegExp(`^${modality}$`) }) });
  const nSr = await thumb('SR').count(), nSeg = await thumb('SEG').count();
  check(nSr === 1 && nSeg === 1, `OHIF's study browser lists ct-triage's SR (${nSr}) and SEG (${nSeg}): ${(await thumb('SR').innerText().catch(() => '')).replace(/\s+/g, ' ')} / ${(await thumb('SEG').innerText().catch(() => '')).replace(/\s+/g, ' ')}`);
  await dismiss();
  // The SR: OHIF draws each finding's long and short axis on its slice with
  // the SR's values (SVG text of the annotation layer).
  // A value shown for the long axis: report.json's, to OHIF's rounding (it
  // shows 1 or 2 decimals). A value OHIF recomputes from the drawn endpoints
  // must agree with the reported one as well.
  const long = f1.long_axis_mm;
  const TOL = 0.1;
  const near = (text) => (text.match(/\d+(\.\d+)?/g) || []).some((n) => Math.abs(Number(n) - long) <= TOL);
  await thumb('SR').dblclick();
  await page.waitForFunction(([v, tol]) => [...document.querySelectorAll('svg text')].some((t) => (t.textContent.match(/\d+(\.\d+)?/g) || []).some((n) => Math.abs(Number(n) - v) <= tol)),
    [long, TOL], { timeout: LONG, polling: 250 });
  const drawn = await page.$$eval('svg text', (ts) => ts.map((t) => t.textContent));
  check(drawn.some((t) => near(t) && /mm/.test(t)), `the SR, opened, draws finding 1's long axis ${long} mm on its slice: ${drawn.filter((t) => /mm/.test(t)).join(' | ')}`);
  await dismiss();
  const slice = await page.locator('[data-cy="viewport-overlay-bottom-right"]').innerText().catch(() => '');
  check(new RegExp(`\\b${f1.image_number}\\b`).test(slice), `on finding 1's slice (image ${f1.image_number}): ${slice.replace(/\s+/g, ' ')}`);
  // OHIF tracks an SR's measurements (its measurement panel) only when it can
  // rehydrate them; it then asks whether to continue tracking, or logs that
  // no measurement was rehydratable.
  let prompt = null;
  for (const until = Date.now() + LONG; !prompt && Date.now() < until;) {
    if (await page.evaluate(() => /continue tracking measurements/i.test(document.body.innerText))) prompt = 'prompt';
    else if (consoleLines.some((l) => /No measurements found which were rehydratable/.test(l))) prompt = 'none';
    else await sleep(250);
  }
  if (prompt === 'prompt') await page.getByRole('button', { name: 'Yes', exact: true }).click();
  // The measurement panel: the smallest layout panel holding "Measurements (n)".
  const rightPanel = () => page.evaluate(() => [...document.querySelectorAll('[data-panel-id]')].map((p) => p.innerText)
    .filter((t) => /Measurements \(\d+\)/.test(t)).sort((a, b) => a.length - b.length)[0] || '');
  if (!/Measurements \(/.test(await rightPanel().catch(() => ''))) await page.click('[data-cy="trackedMeasurements-btn"]').catch(() => {});
  // Wait until the panel lists measurements with values, then read them.
  await page.waitForFunction(() => {
    const t = [...document.querySelectorAll('[data-panel-id]')].map((p) => p.innerText)
      .filter((x) => /Measurements \(\d+\)/.test(x)).sort((a, b) => a.length - b.length)[0] || '';
    return /Measurements \([1-9]\d*\)/.test(t) && /\d mm/.test(t);
  }, null, { timeout: prompt === 'prompt' ? LONG : 10000, polling: 250 }).catch(() => {});
  const rows = await rightPanel();
  const listed = /Measurements \([1-9]\d*\)/.test(rows) && near(rows);
  check(!!listed, `OHIF's measurement panel lists finding 1 with its long axis ${long} mm: ${rows.replace(/\s+/g, ' ').slice(0, 300)}${prompt === 'prompt' ? '' : ' (OHIF did not offer to track the SR: not rehydratable)'}`);
  if (!listed) [...new Set(consoleLines.filter((l) => /rehydratable|skipping annotation|Unable to generate/i.test(l)))].forEach((l) => console.log(`     OHIF console: ${l.slice(0, 300)}`));
  await page.screenshot({ path: path.join(OUT, 'ohif-sr.png') });
  // UPDATE_DOCS=1 refreshes the README's screenshot; a plain run leaves the tree clean.
  if (process.env.UPDATE_DOCS === '1') fs.copyFileSync(path.join(OUT, 'ohif-sr.png'), path.join(ROOT, 'docs/ohif-sr.png'));

  // The SEG: its segments, named after the findings, in the segmentation panel.
  await thumb('SEG').dblclick();
  // OHIF shows the SEG over its CT at once and asks whether to open it;
  // opened, its segments are in the segmentation panel.
  const segPrompt = await page.waitForFunction(() => /open this Segmentation\?/i.test(document.body.innerText), null, { timeout: LONG, polling: 250 }).then(() => true, () => false);
  check(segPrompt, 'the SEG, double-clicked, is shown over the CT (OHIF asks "Do you want to open this Segmentation?")');
  if (segPrompt) await page.getByRole('button', { name: 'Yes', exact: true }).click();
  const labels = report.findings.map((f) => `Finding ${f.id}`);
  // Issue 16: a segment per diffuse-opacity type the report measured.
  const op = report.opacities;
  if (op && op.right.ground_glass_ml + op.left.ground_glass_ml > 0) labels.push('Ground glass opacity');
  if (op && op.right.consolidation_ml + op.left.consolidation_ml > 0) labels.push('Consolidation');
  // In a side panel (a layout panel without the viewport), not anywhere on the page.
  const inPanel = (ls) => [...document.querySelectorAll('[data-panel-id]')].some((p) => !p.querySelector('[data-cy="viewport-grid"]') && ls.every((l) => p.innerText.includes(l)));
  if (!(await page.evaluate(inPanel, labels))) await page.click('[data-cy="panelSegmentation-btn"]').catch(() => {});
  const segOk = await page.waitForFunction(inPanel, labels, { timeout: LONG, polling: 250 }).then(() => true, () => false);
  check(segOk, `OHIF's segmentation panel lists the SEG's segments ${labels.join(', ')}`);
  await page.screenshot({ path: path.join(OUT, 'ohif-seg.png') });
} catch (e) {
  check(false, `OHIF e2e: ${e.stack || e}`);
  if (page) await page.screenshot({ path: path.join(OUT, 'ohif-failed.png') }).catch(() => {});
  if (page) fs.writeFileSync(path.join(OUT, 'ohif-failed.html'), await page.content().catch(() => ''));
  consoleLines.filter((l) => !/ProtocolEngine|skipping annotation/.test(l)).slice(-40).forEach((l) => console.log(`     console: ${l.slice(0, 400)}`));
} finally {
  await cleanup();
}
console.log(`OHIF e2e: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
console.log(failures ? `${failures} failed` : 'all OHIF checks passed');
process.exit(failures ? 1 : 0);
