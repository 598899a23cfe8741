// @ts-check
// The DICOMweb client of the module: QIDO-RS (the series of a study), WADO-RS
// (a series' instances as multipart/related in their stored transfer syntax,
// so compressed data stays compressed) and STOW-RS (result objects back).
// Only the server named by the caller is contacted, with the caller's headers.
// Node ≥ 18 has the same fetch, so these functions also run outside a browser.

import { CtTriageError, abortError } from './errors.js';

const DICOM_JSON = 'application/dicom+json';

/**
 * A DICOMweb server and how to reach it.
 * @typedef {{ url: string, headers?: Record<string, string>, signal?: AbortSignal }} Server
 */

/**
 * One series of a study, from QIDO-RS.
 * @typedef {{ seriesInstanceUID: string, modality: string | null, seriesNumber: number | null,
 *   description: string | null, instances: number | null }} SeriesInfo
 */

/** @param {string} url */
function root(url) {
  if (typeof url !== 'string' || !/^https?:\/\//i.test(url)) {
    throw new CtTriageError('invalid_argument', `DICOMweb URL must be http(s)://…, got ${JSON.stringify(url)}`);
  }
  return url.replace(/\/+$/, '');
}

/** @param {string} uid @param {string} what */
function checkUid(uid, what) {
  if (typeof uid !== 'string' || !/^[0-9]+(\.[0-9]+)*$/.test(uid) || uid.length > 64) {
    throw new CtTriageError('invalid_argument', `${what} must be a DICOM UID (digits and dots), got ${JSON.stringify(uid)}`);
  }
  return uid;
}

/**
 * fetch with the module's errors: unreachable (network, CORS), refused credentials, cancelled.
 * @param {string} url @param {RequestInit} init @param {string} what
 */
async function request(url, init, what) {
  if (init.signal?.aborted) throw abortError();
  let r;
  try {
    r = await fetch(url, init);
  } catch (e) {
    if (init.signal?.aborted) throw abortError();
    throw new CtTriageError('dicomweb_unreachable',
      `${what}: ${url} is not reachable (${e instanceof Error ? e.message : e}); a server on another origin must allow this page (CORS), or serve both from one origin`);
  }
  if (r.status === 401 || r.status === 403) {
    throw new CtTriageError('dicomweb_auth', `${what}: HTTP ${r.status}, the server refused the request (credentials?)`);
  }
  return r;
}

/** @param {any} ds @param {string} tag */
function value(ds, tag) {
  const v = ds?.[tag]?.Value?.[0];
  return v === undefined ? null : v;
}

/**
 * The series of a study (QIDO-RS `GET {url}/studies/{study}/series`).
 * @param {Server & { studyInstanceUID: string }} q
 * @returns {Promise<SeriesInfo[]>}
 */
export async function listSeries({ url, studyInstanceUID, headers = {}, signal }) {
  const study = checkUid(studyInstanceUID, 'studyInstanceUID');
  const u = `${root(url)}/studies/${study}/series?includefield=0008103E&includefield=00201209`;
  const r = await request(u, { headers: { ...headers, Accept: DICOM_JSON }, signal }, 'QIDO-RS');
  if (r.status === 204 || r.status === 404) throw new CtTriageError('study_not_found', `study ${study} is not on ${url}`);
  if (!r.ok) throw new CtTriageError('dicomweb', `QIDO-RS: HTTP ${r.status}`);
  const list = await r.json().catch(() => null);
  if (!Array.isArray(list)) throw new CtTriageError('dicomweb', 'QIDO-RS: the answer is not a DICOM JSON array');
  if (list.length === 0) throw new CtTriageError('study_not_found', `study ${study} is not on ${url}`);
  return list.map((ds) => ({
    seriesInstanceUID: String(value(ds, '0020000E') ?? ''),
    modality: value(ds, '00080060'),
    seriesNumber: value(ds, '00200011'),
    description: value(ds, '0008103E'),
    instances: value(ds, '00201209'),
  }));
}

/**
 * The series to analyse: `seriesInstanceUID` when given (it must be CT), else
 * the CT series with the most instances.
 * @param {SeriesInfo[]} list @param {string} [seriesInstanceUID]
 */
export function chooseSeries(list, seriesInstanceUID) {
  if (seriesInstanceUID) {
    const s = list.find((x) => x.seriesInstanceUID === seriesInstanceUID);
    if (!s) throw new CtTriageError('series_not_found', `series ${seriesInstanceUID} is not in the study`);
    if (s.modality !== 'CT') throw new CtTriageError('not_ct', `series ${seriesInstanceUID} is ${s.modality || 'of no modality'}, not CT`);
    return s;
  }
  const ct = list.filter((x) => x.modality === 'CT').sort((a, b) => (b.instances ?? 0) - (a.instances ?? 0));
  if (!ct.length) {
    throw new CtTriageError('not_ct', `the study has no CT series (${[...new Set(list.map((x) => x.modality || '?'))].join(', ')})`);
  }
  return ct[0];
}

const enc = new TextEncoder();

/** First index of `needle` in `hay` at or after `from`, or -1. @param {Uint8Array} hay @param {Uint8Array} needle @param {number} from */
function indexOf(hay, needle, from) {
  const first = needle[0];
  const last = hay.length - needle.length;
  outer: for (let i = hay.indexOf(first, from); i !== -1 && i <= last; i = hay.indexOf(first, i + 1)) {
    for (let k = 1; k < needle.length; k++) if (hay[i + k] !== needle[k]) continue outer;
    return i;
  }
  return -1;
}

/**
 * The bodies of a multipart/related message (RFC 2046). Fails with
 * `dicomweb_truncated` when the closing delimiter is missing.
 * @param {Uint8Array} body @param {string} boundary
 * @returns {{ type: string, data: Uint8Array }[]}
 */
export function splitMultipart(body, boundary) {
  const delim = enc.encode(`--${boundary}`);
  const next = enc.encode(`\r\n--${boundary}`);
  const crlf2 = enc.encode('\r\n\r\n');
  const parts = [];
  let at = indexOf(body, delim, 0);
  if (at < 0) throw new CtTriageError('dicomweb_truncated', 'WADO-RS: no multipart boundary in the answer');
  at += delim.length;
  for (;;) {
    if (body[at] === 0x2d && body[at + 1] === 0x2d) return parts; // "--": the close delimiter
    const head = indexOf(body, crlf2, at);
    if (head < 0) break;
    const end = indexOf(body, next, head + 4);
    if (end < 0) break;
    const headers = new TextDecoder().decode(body.subarray(at, head));
    const type = /content-type:\s*([^\r\n;]+)/i.exec(headers)?.[1]?.trim().toLowerCase() || '';
    parts.push({ type, data: body.slice(head + 4, end) });
    at = end + next.length;
  }
  throw new CtTriageError('dicomweb_truncated', `WADO-RS: the multipart answer is truncated after ${parts.length} complete part(s)`);
}

/**
 * The instances of a series (WADO-RS `GET {url}/studies/{study}/series/{series}`,
 * `multipart/related; type="application/dicom"; transfer-syntax=*`).
 * `onProgress(fraction)` follows the bytes (or the parts against `expected`).
 * @param {Server & { studyInstanceUID: string, seriesInstanceUID: string, expected?: number | null,
 *   onProgress?: (fraction: number) => void }} q
 * @returns {Promise<{ name: string, data: ArrayBuffer }[]>}
 */
export async function fetchSeries({ url, studyInstanceUID, seriesInstanceUID, headers = {}, signal, expected, onProgress }) {
  const study = checkUid(studyInstanceUID, 'studyInstanceUID');
  const series = checkUid(seriesInstanceUID, 'seriesInstanceUID');
  const u = `${root(url)}/studies/${study}/series/${series}`;
  const accept = 'multipart/related; type="application/dicom"; transfer-syntax=*';
  const r = await request(u, { headers: { ...headers, Accept: accept }, signal }, 'WADO-RS');
  if (r.status === 404) throw new CtTriageError('series_not_found', `series ${series} of study ${study} is not on ${url}`);
  if (!r.ok) throw new CtTriageError('dicomweb', `WADO-RS: HTTP ${r.status}`);
  const type = r.headers.get('content-type') || '';
  const boundary = /boundary="?([^";]+)"?/i.exec(type)?.[1];
  if (!/^multipart\/related/i.test(type) || !boundary) {
    throw new CtTriageError('dicomweb', `WADO-RS: expected multipart/related, got ${type || 'no content type'}`);
  }
  const total = Number(r.headers.get('content-length')) || 0;
  const marker = enc.encode(`--${boundary}`);
  /** @type {Uint8Array[]} */
  const chunks = [];
  let received = 0;
  let seen = 0;
  let tail = new Uint8Array(0);
  try {
    if (!r.body) throw new Error('no body');
    const reader = r.body.getReader();
    for (;;) {
      const { done, value: chunk } = await reader.read();
      if (done) break;
      chunks.push(chunk);
      received += chunk.length;
      if (onProgress) {
        // Count delimiters; the kept tail is shorter than one, so every
        // delimiter found in tail + chunk is a new one.
        const win = new Uint8Array(tail.length + chunk.length);
        win.set(tail);
        win.set(chunk, tail.length);
        for (let i = indexOf(win, marker, 0); i >= 0; i = indexOf(win, marker, i + marker.length)) seen++;
        tail = win.slice(Math.max(0, win.length - marker.length + 1));
        const f = total ? received / total : expected ? Math.min(1, Math.max(0, seen - 1) / expected) : 0;
        try { onProgress(Math.min(1, f)); } catch { /* the caller's problem */ }
      }
    }
  } catch (e) {
    if (signal?.aborted) throw abortError();
    throw new CtTriageError('dicomweb_truncated', `WADO-RS: the answer broke off after ${received} bytes (${e instanceof Error ? e.message : e})`);
  }
  const body = new Uint8Array(received);
  let o = 0;
  for (const c of chunks) { body.set(c, o); o += c.length; }
  const parts = splitMultipart(body, boundary);
  if (!parts.length) throw new CtTriageError('series_not_found', `series ${series} has no instances`);
  return parts.map((p, i) => ({ name: `${series}/${String(i + 1).padStart(4, '0')}.dcm`, data: /** @type {ArrayBuffer} */ (p.data.buffer) }));
}

/**
 * The outcome of a STOW-RS request, per object.
 * @typedef {{ status: number, stored: number, failed: number,
 *   objects: Array<{ file: string, sopInstanceUid: string, stored: boolean, reason: number | null }> }} StoreResult
 */

/**
 * Store DICOM objects (STOW-RS `POST {url}/studies[/{study}]`). Resolves with
 * the server's answer per object (HTTP 200 all stored, 202 some failed, 409
 * none; an object the answer does not name counts as not stored); rejects
 * only when there is no per-instance answer.
 * @param {Server & { studyInstanceUID?: string,
 *   objects: Array<{ file: string, sopInstanceUid: string, bytes: Uint8Array }> }} q
 * @returns {Promise<StoreResult>}
 */
export async function storeInstances({ url, studyInstanceUID, headers = {}, signal, objects }) {
  if (!objects?.length) throw new CtTriageError('invalid_argument', 'STOW-RS: nothing to store');
  const boundary = `ct-triage-${Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, '0')).join('')}`;
  const pieces = [];
  for (const o of objects) {
    pieces.push(enc.encode(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), o.bytes, enc.encode('\r\n'));
  }
  pieces.push(enc.encode(`--${boundary}--\r\n`));
  const target = `${root(url)}/studies${studyInstanceUID ? `/${checkUid(studyInstanceUID, 'studyInstanceUID')}` : ''}`;
  const r = await request(target, {
    method: 'POST',
    headers: { ...headers, Accept: DICOM_JSON, 'Content-Type': `multipart/related; type="application/dicom"; boundary=${boundary}` },
    body: new Blob(/** @type {BlobPart[]} */ (pieces)),
    signal,
  }, 'STOW-RS');
  const answer = await r.json().catch(() => null);
  // Servers answer per instance with 200, 202 or 409, some (Orthanc) with
  // 400 when a part could not be read; without that answer the request failed.
  const perInstance = answer && typeof answer === 'object' && ('00081198' in answer || '00081199' in answer);
  if (!perInstance) throw new CtTriageError('dicomweb', `STOW-RS: HTTP ${r.status}${r.ok ? ' without a per-instance answer' : ''}`);
  /** @type {Map<string, number | null>} */
  const failed = new Map();
  for (const it of answer?.['00081198']?.Value || []) failed.set(String(value(it, '00081155')), value(it, '00081197'));
  const ok = new Set((answer?.['00081199']?.Value || []).map((/** @type {any} */ it) => String(value(it, '00081155'))));
  const per = objects.map((o) => ({
    file: o.file,
    sopInstanceUid: o.sopInstanceUid,
    stored: ok.has(o.sopInstanceUid) && !failed.has(o.sopInstanceUid),
    reason: failed.get(o.sopInstanceUid) ?? null,
  }));
  return { status: r.status, stored: per.filter((p) => p.stored).length, failed: per.filter((p) => !p.stored).length, objects: per };
}
