// DICOMweb end to end (issue 13), against a real Orthanc with its DICOMweb
// plugin on 127.0.0.1:
//   1. the module's DICOMweb client (wasm/js/dicomweb.js, run in Node):
//      QIDO-RS, WADO-RS in the stored transfer syntax, and every error case —
//      unreachable server, 401, unknown study, a series that is not CT, a
//      truncated multipart answer, a STOW-RS that rejects some instances;
//   2. the page, served by nginx with the recipe docs/nginx-ct-triage.conf
//      (the page and Orthanc's /dicom-web on one origin), opened with
//      ?dicomweb=…&study=…: fetches lung1 over WADO-RS, analyses it in the tab
//      (the report equals the one from local files, timings aside), stores the
//      SR, SEG, key images and KOS back over STOW-RS after the confirmation;
//      Orthanc then holds them.
// Writes tests/e2e/out/dicomweb.png.
//
//   node tests/e2e/dicomweb.mjs [--dist wasm/dist]
import fs from 'node:fs';
import path from 'node:path';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import * as dicomweb from '../../wasm/js/dicomweb.js';
import { NGINX, ORTHANC, PLUGIN, Peers, freePort, requireFiles } from './peers.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt; };
const DIST = path.resolve(opt('--dist', path.join(ROOT, 'wasm/dist')));
const SERIES = path.join(ROOT, 'sample-dicom/lung1');
const OUT = path.join(HERE, 'out');
fs.mkdirSync(OUT, { recursive: true });
let failures = 0;
function check(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures++;
}
/** The promise's error code, or 'resolved'. */
async function codeOf(p) {
  try { await p; return 'resolved'; } catch (e) { return e.code || String(e); }
}

requireFiles([ORTHANC, PLUGIN, NGINX], 'Debian orthanc, orthanc-dicomweb, nginx-light');

// ------------------------------------------------------------ Orthanc
const peers = new Peers('ctt-dicomweb-');
let server;
let browser;
async function cleanup() {
  if (browser) await browser.close().catch(() => {});
  await peers.stop();
}

try {
  const OH = await peers.orthanc('ctt-dicomweb-test');
  // lung1 into Orthanc over its REST API.
  const files = fs.readdirSync(SERIES).filter((f) => f.endsWith('.dcm')).sort();
  for (const f of files) await peers.post(OH, path.join(SERIES, f));
  const studies = await (await fetch(`${OH}/dicom-web/studies`, { headers: { Accept: 'application/dicom+json' } })).json();
  const study = studies[0]['0020000D'].Value[0];
  check(studies.length === 1 && files.length === 48, `Orthanc (DICOMweb) holds lung1: study ${study}, ${files.length} instances`);

  // ------------------------------------------------------------ 1. the client in Node
  const URL_ = `${OH}/dicom-web`;
  const list = await dicomweb.listSeries({ url: URL_, studyInstanceUID: study });
  check(list.length === 1 && list[0].modality === 'CT' && list[0].instances === 48, `QIDO-RS lists the CT series (${list.length} series, ${list[0]?.instances} instances)`);
  const chosen = dicomweb.chooseSeries(list);
  let fractions = [];
  const fetched = await dicomweb.fetchSeries({ url: URL_, studyInstanceUID: study, seriesInstanceUID: chosen.seriesInstanceUID, expected: chosen.instances, onProgress: (f) => fractions.push(f) });
  const localBytes = files.map((f) => fs.readFileSync(path.join(SERIES, f)));
  const sameBytes = fetched.length === 48 && fetched.every((p) => localBytes.some((b) => b.length === p.data.byteLength && Buffer.from(p.data).equals(b)));
  check(sameBytes, `WADO-RS gives the 48 stored instances byte for byte (stored transfer syntax kept)`);
  check(fractions.length > 1 && fractions.at(-1) >= 0.9 && fractions.every((f, i) => i === 0 || f >= fractions[i - 1]),
    `WADO-RS progress rises to ${fractions.at(-1)?.toFixed(2)} over ${fractions.length} reports`);

  // Fault injection in front of the real server: 401 and a truncated answer.
  const faults = http.createServer((req, res) => {
    const target = `${OH}${req.url.replace(/^\/(locked|trunc)/, '')}`;
    if (req.url.startsWith('/locked/')) { res.writeHead(401, { 'www-authenticate': 'Bearer' }).end(); return; }
    fetch(target, { headers: { accept: req.headers.accept || '*/*' } }).then(async (r) => {
      const body = Buffer.from(await r.arrayBuffer());
      const headers = { 'content-type': r.headers.get('content-type') || 'application/octet-stream' };
      res.writeHead(r.status, headers);
      res.end(body.subarray(0, Math.floor(body.length / 2)));
    }, () => res.writeHead(502).end());
  });
  await new Promise((r) => faults.listen(0, '127.0.0.1', r));
  const FAULTS = `http://127.0.0.1:${faults.address().port}`;
  const q = { studyInstanceUID: study, seriesInstanceUID: chosen.seriesInstanceUID };
  check(await codeOf(dicomweb.listSeries({ url: `http://127.0.0.1:${await freePort()}/dicom-web`, ...q })) === 'dicomweb_unreachable', 'unreachable server → dicomweb_unreachable');
  check(await codeOf(dicomweb.listSeries({ url: `${FAULTS}/locked/dicom-web`, ...q })) === 'dicomweb_auth', 'HTTP 401 → dicomweb_auth');
  check(await codeOf(dicomweb.listSeries({ url: URL_, studyInstanceUID: '1.2.3.4.5.6.7' })) === 'study_not_found', 'unknown study → study_not_found');
  check(await codeOf(dicomweb.fetchSeries({ url: `${FAULTS}/trunc/dicom-web`, ...q })) === 'dicomweb_truncated', 'truncated multipart answer → dicomweb_truncated');
  check(await codeOf(dicomweb.listSeries({ url: 'ftp://x', ...q })) === 'invalid_argument', 'a non-http URL → invalid_argument');
  check(await codeOf(Promise.resolve().then(() => dicomweb.chooseSeries([{ ...list[0], modality: 'SR' }], list[0].seriesInstanceUID))) === 'not_ct', 'a series that is not CT → not_ct');
  faults.close();

  // ------------------------------------------------------------ 2. the page
  // The page and /dicom-web on one origin: nginx running the README's recipe
  // (docs/nginx-ct-triage.conf) with this test's ports and folder.
  const webPort = await freePort();
  const recipe = fs.readFileSync(path.join(ROOT, 'docs/nginx-ct-triage.conf'), 'utf8');
  const site = recipe
    .replace(/listen 8080;/, `listen 127.0.0.1:${webPort};`)
    .replace(/root \/srv\/ct-triage\/dist;/, `root ${DIST};`)
    .replace(/proxy_pass http:\/\/127\.0\.0\.1:8042\/dicom-web\/;/, `proxy_pass ${OH}/dicom-web/;`);
  const marked = site.split('\n').filter((l) => l.includes('←'));
  check(marked.length === 3 && marked.every((l) => !/8080|8042|\/srv\//.test(l)), 'the nginx recipe has its three marked values, all set');
  const nginx = peers.nginx(site, { workerConnections: 64 });
  const webUrl = `http://127.0.0.1:${webPort}/`;
  await peers.waitUp(webUrl, nginx, 'nginx');
  server = { url: webUrl };
  const origin = new URL(server.url).origin;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-dev-shm-usage'],
  });
  const context = await browser.newContext({ viewport: { width: 1440, height: 960 }, serviceWorkers: 'block', locale: 'en-US' });
  const offOrigin = [];
  context.on('request', (r) => { const u = new URL(r.url()); if (u.origin !== origin && !['blob:', 'data:'].includes(u.protocol)) offOrigin.push(r.url()); });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const status = (states, timeout = 300000) => page.waitForFunction((s) => s.includes(document.querySelector('[data-testid=status]')?.textContent), states, { timeout, polling: 50 })
    .then(() => page.textContent('[data-testid=status]'));

  const link = `${server.url}?dicomweb=${encodeURIComponent(`${origin}/dicom-web`)}&study=${study}`;
  const t0 = Date.now();
  await page.goto(link);
  const s1 = await status(['done', 'error']);
  check(s1 === 'done', `the page opened with ?dicomweb=…&study=… fetched and analysed the study: ${s1}${s1 === 'error' ? ` (${await page.textContent('#error-text')} ${await page.textContent('#engine-text')})` : ''} in ${Date.now() - t0} ms`);
  const fromPacs = JSON.parse((await page.textContent('[data-testid=report-json]')) || '{}');
  check(fromPacs.input?.series_instance_uid === chosen.seriesInstanceUID && fromPacs.input?.files === 48, `the report is of the fetched series (${fromPacs.input?.files} files)`);
  await page.screenshot({ path: path.join(OUT, 'dicomweb.png') });

  // Store the results back (confirmation accepted), then read Orthanc.
  page.once('dialog', (d) => d.accept());
  await page.click('[data-testid=store-pacs]');
  await page.waitForFunction(() => ['stored', 'partial', 'failed'].includes(document.querySelector('[data-testid=store-result]')?.dataset.state || ''), null, { timeout: 120000 });
  const storeState = await page.getAttribute('[data-testid=store-result]', 'data-state');
  const storeText = await page.textContent('[data-testid=store-result]');
  check(storeState === 'stored', `STOW-RS from the page: ${storeText}`);
  const seriesNow = await dicomweb.listSeries({ url: URL_, studyInstanceUID: study });
  const modalities = seriesNow.map((s) => s.modality).sort();
  check(['CT', 'KO', 'OT', 'SEG', 'SR'].every((m) => modalities.includes(m)), `Orthanc now holds the SR, SEG, key images and KOS (${modalities.join(', ')})`);

  // The same report as from local files (same core, same numbers).
  await page.click('#new-study');
  await page.setInputFiles('[data-testid=dicom-input]', files.map((f) => path.join(SERIES, f)));
  const s2 = await status(['done', 'error']);
  const local = JSON.parse((await page.textContent('[data-testid=report-json]')) || '{}');
  const strip = (r) => JSON.stringify({ ...r, timings_ms: {} });
  check(s2 === 'done' && strip(local) === strip(fromPacs), 'the report from PACS equals the report from local files (timings aside)');

  // A series that is not CT, chosen by URL: a clear error on the page.
  const srSeries = seriesNow.find((s) => s.modality === 'SR')?.seriesInstanceUID;
  await page.goto(`${link}&series=${srSeries}`);
  const s3 = await status(['done', 'error']);
  const err = await page.textContent('#error-text');
  check(s3 === 'error' && /not_ct/.test(err || ''), `a non-CT series by URL gives a clear error: ${err}`);

  // A STOW-RS that rejects some instances: a stored CT instance again (accepted)
  // and a broken one (1000 bytes of it); then the whole request to another
  // study's URL (rejected: the instance is not of that study).
  const sop = (bytes) => /** SOP Instance UID (0008,0018), explicit VR LE */ {
    const at = bytes.indexOf(Buffer.from([0x08, 0x00, 0x18, 0x00, 0x55, 0x49]));
    return bytes.toString('latin1', at + 8, at + 8 + bytes.readUInt16LE(at + 6)).replace(/\0$/, '');
  };
  const objs = [
    { file: files[0], sopInstanceUid: sop(localBytes[0]), bytes: localBytes[0] },
    { file: 'broken.dcm', sopInstanceUid: sop(localBytes[1]), bytes: localBytes[1].subarray(0, 1000) },
  ];
  const mixed = await dicomweb.storeInstances({ url: URL_, objects: objs }).catch((e) => ({ error: e.code }));
  check(mixed.stored === 1 && mixed.failed === 1 && mixed.objects?.[0].stored && !mixed.objects?.[1].stored,
    `a STOW-RS with one broken instance: reported per instance (HTTP ${mixed.status}, ${mixed.stored} stored, ${mixed.failed} failed)`);
  const wrong = await dicomweb.storeInstances({ url: URL_, studyInstanceUID: '1.2.826.0.1.3680043.8.498.1', objects: objs.slice(0, 1) }).catch((e) => ({ error: e.code }));
  check(wrong.failed === 1 && wrong.stored === 0 && wrong.objects?.[0].reason != null,
    `a STOW-RS to another study's URL: rejected with its reason (HTTP ${wrong.status}, reason 0x${wrong.objects?.[0].reason?.toString(16)})`);
  check(offOrigin.length === 0, `no request left ${origin} (${offOrigin.slice(0, 2).join(', ')})`);
  check(errors.length === 0, `no page errors${errors.length ? `: ${errors[0]}` : ''}`);
} catch (e) {
  check(false, `dicomweb e2e: ${e.stack || e}`);
} finally {
  await cleanup();
}
console.log(failures ? `${failures} failed` : 'all DICOMweb checks passed');
process.exit(failures ? 1 : 0);
