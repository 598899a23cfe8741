// Synthesise a thin-slice CT series from sample-dicom/lung1 for the browser
// performance goal (512×512×300): slices linearly interpolated along z between
// the original 5 mm slices, same in-plane pixels, new UIDs and positions.
// lung1's files are flat explicit-VR little-endian data sets (no sequences),
// which is all this small writer handles.
//
//   node tests/e2e/synth-series.mjs [--src sample-dicom/lung1] [--out dir] [--slices 300]
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const args = process.argv.slice(2);
const opt = (n, d) => { const i = args.indexOf(n); return i >= 0 ? args[i + 1] : d; };
const SRC = path.resolve(opt('--src', path.join(ROOT, 'sample-dicom/lung1')));
const OUT = path.resolve(opt('--out', path.join(HERE, 'out/synth300')));
const N = Number(opt('--slices', '300'));

const LONG_VR = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'UC', 'UN', 'UR', 'UT']);

function parse(buf) {
  if (buf.toString('latin1', 128, 132) !== 'DICM') throw new Error('no DICM preamble');
  const els = [];
  let p = 132;
  while (p < buf.length) {
    const group = buf.readUInt16LE(p);
    const elem = buf.readUInt16LE(p + 2);
    const vr = buf.toString('latin1', p + 4, p + 6);
    let len;
    let hdr;
    if (LONG_VR.has(vr)) { len = buf.readUInt32LE(p + 8); hdr = 12; } else { len = buf.readUInt16LE(p + 6); hdr = 8; }
    if (len === 0xffffffff || vr === 'SQ') throw new Error('sequences / undefined lengths are not supported');
    els.push({ tag: (group << 16) | elem, vr, value: buf.subarray(p + hdr, p + hdr + len) });
    p += hdr + len;
  }
  return els;
}

function write(els) {
  const parts = [Buffer.alloc(128), Buffer.from('DICM', 'latin1')];
  // Recompute the meta group length.
  const metaLen = els.filter((e) => e.tag >>> 16 === 2 && e.tag !== 0x00020000)
    .reduce((a, e) => a + (LONG_VR.has(e.vr) ? 12 : 8) + e.value.length, 0);
  for (const e of els) {
    let value = e.value;
    if (e.tag === 0x00020000) { value = Buffer.alloc(4); value.writeUInt32LE(metaLen); }
    const long = LONG_VR.has(e.vr);
    const h = Buffer.alloc(long ? 12 : 8);
    h.writeUInt16LE(e.tag >>> 16, 0);
    h.writeUInt16LE(e.tag & 0xffff, 2);
    h.write(e.vr, 4, 'latin1');
    if (long) h.writeUInt32LE(value.length, 8); else h.writeUInt16LE(value.length, 6);
    parts.push(h, value);
  }
  return Buffer.concat(parts);
}

function str(v, vr) {
  let b = Buffer.from(String(v), 'latin1');
  if (b.length % 2) b = Buffer.concat([b, Buffer.from(vr === 'UI' ? '\0' : ' ', 'latin1')]);
  return b;
}

function uid(seed) {
  const h = crypto.createHash('sha256').update(seed).digest();
  h[0] &= 0x7f;
  return `2.25.${BigInt(`0x${h.subarray(0, 16).toString('hex')}`).toString()}`;
}

const get = (els, tag) => els.find((e) => e.tag === tag);
const set = (els, tag, vr, value) => {
  const e = get(els, tag);
  if (e) { e.value = value; } else { els.push({ tag, vr, value }); els.sort((a, b) => (a.tag >>> 0) - (b.tag >>> 0)); }
};

const files = fs.readdirSync(SRC).filter((f) => f.endsWith('.dcm')).map((f) => parse(fs.readFileSync(path.join(SRC, f))));
const z = (els) => Number(get(els, 0x00200032).value.toString('latin1').trim().split('\\')[2]);
files.sort((a, b) => z(a) - z(b));
const zs = files.map(z);
const z0 = zs[0];
const z1 = zs[zs.length - 1];
const step = (z1 - z0) / (N - 1);
const series = uid(`synth-${N}-${zs.join(',')}`);
const [x0, y0] = get(files[0], 0x00200032).value.toString('latin1').trim().split('\\');
fs.rmSync(OUT, { recursive: true, force: true });
fs.mkdirSync(OUT, { recursive: true });
const pixels = files.map((els) => {
  const v = get(els, 0x7fe00010).value;
  return new Uint16Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength));
});
for (let k = 0; k < N; k++) {
  const zk = z0 + k * step;
  let i = zs.findIndex((v, j) => j + 1 < zs.length && zk <= zs[j + 1] + 1e-6);
  if (i < 0) i = zs.length - 2;
  const t = Math.min(1, Math.max(0, (zk - zs[i]) / (zs[i + 1] - zs[i])));
  const a = pixels[i];
  const b = pixels[i + 1];
  const out = new Uint16Array(a.length);
  for (let p = 0; p < a.length; p++) out[p] = Math.round(a[p] * (1 - t) + b[p] * t);
  const els = files[i].map((e) => ({ ...e }));
  const sop = uid(`${series}-${k}`);
  set(els, 0x00020003, 'UI', str(sop, 'UI'));
  set(els, 0x00080018, 'UI', str(sop, 'UI'));
  set(els, 0x0008103e, 'LO', str(`CHEST ${step.toFixed(2)}mm synthetic from lung1`, 'LO'));
  set(els, 0x00180050, 'DS', str(step.toFixed(4), 'DS'));
  set(els, 0x0020000e, 'UI', str(series, 'UI'));
  set(els, 0x00200013, 'IS', str(k + 1, 'IS'));
  set(els, 0x00200032, 'DS', str(`${x0}\\${y0}\\${zk.toFixed(4)}`, 'DS'));
  set(els, 0x00201041, 'DS', str(zk.toFixed(4), 'DS'));
  set(els, 0x7fe00010, 'OW', Buffer.from(out.buffer));
  fs.writeFileSync(path.join(OUT, `slice-${String(k + 1).padStart(4, '0')}.dcm`), write(els));
}
console.log(`wrote ${N} slices (${step.toFixed(3)} mm apart, 512×512) to ${OUT}`);
