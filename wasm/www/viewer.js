// @ts-check
// Slice viewer: canvas with window presets, zoom/pan, slice scrolling,
// finding overlays (segmentation outline, long/short axes, label) and the
// diffuse-opacity overlay (ground glass, consolidation as colour fills).

import { WINDOWS } from './pkg/index.js';

const OUTLINE = '#ffd600';
const LONG_AXIS = '#ff7a00';
const SHORT_AXIS = '#00c8ff';
const CACHE = 96;
/** Opacity label images kept (256 KB each at 512 × 512). */
const OPACITY_CACHE = 64;

/**
 * Fill colours of the opacity overlay, RGBA (alpha 0–255) by label: chosen
 * against the lung window's greys and apart from the finding overlay's
 * yellow / orange / cyan.
 */
export const OPACITY_COLORS = Object.freeze({
  /** Ground glass (label 1): green. */
  groundGlass: Object.freeze([0, 230, 118, 105]),
  /** Consolidation (label 2): magenta. */
  consolidation: Object.freeze([255, 45, 170, 140]),
});

export class Viewer {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{ onSlice?: (z: number) => void }} [options]
   */
  constructor(canvas, { onSlice } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.onSlice = onSlice;
    this.analysis = null;
    this.z = 0;
    this.window = 'lung';
    this.zoom = 1;
    this.pan = [0, 0];
    this.overlay = true;
    /** Draw the diffuse-opacity fills (independent of `overlay`). */
    this.opacity = false;
    this.opacityIndex = new Map(); // z → {slice, groundGlass, consolidation}
    this.opacityLabels = new Map(); // z → Uint8Array label image
    this.opacityLayer = document.createElement('canvas');
    this.opacityLayerOf = null; // the label image drawn on opacityLayer
    this.opacityLayerMs = 0;
    this.selected = null;
    this.findings = [];
    this.cache = new Map(); // `${window}:${z}` → ImageBitmap | canvas
    this.masks = new Map(); // `${i}:${z}` → {box, data}
    this.inflight = false;
    this.want = null;
    this.frame = document.createElement('canvas');
    this._bind();
    new ResizeObserver(() => this.draw()).observe(canvas.parentElement);
  }

  async load(analysis) {
    this.analysis = analysis;
    this.cache.clear();
    this.masks.clear();
    this.opacityIndex = new Map(analysis.opacitySlices.map((s) => [s.slice, s]));
    this.opacityLabels.clear();
    this.opacityLayerOf = null;
    this.zoom = 1;
    this.pan = [0, 0];
    const [nx, ny, nz] = analysis.volume.size_xyz;
    this.size = [nx, ny, nz];
    this.spacing = analysis.volume.spacing_mm;
    // Finding axes in voxel coordinates, for drawing.
    const pts = [];
    for (const f of analysis.report.findings) for (const ax of f.axes_lps_mm) pts.push(ax[0], ax[1]);
    const vox = pts.length ? await analysis.toVoxels(pts) : [];
    this.findings = analysis.report.findings.map((f, i) => ({
      f,
      index: i,
      axes: [[vox[4 * i], vox[4 * i + 1]], [vox[4 * i + 2], vox[4 * i + 3]]],
    }));
    const top = analysis.report.findings[0];
    await this.show(top ? top.slice_index : Math.floor(nz / 2));
  }

  get sliceCount() {
    return this.size ? this.size[2] : 0;
  }

  async show(z) {
    if (!this.analysis) return;
    z = Math.max(0, Math.min(this.sliceCount - 1, Math.round(z)));
    this.z = z;
    if (this.onSlice) this.onSlice(z);
    this.want = z;
    if (this.inflight) return; // the loop below picks up the latest request
    this.inflight = true;
    try {
      while (this.want !== null) {
        const want = this.want;
        this.want = null;
        await this._ensure(want, this.window);
        await this._ensureMasks(want);
        this.draw();
        // The slice is on screen; its opacity fill follows (a newer request waits for no more than that).
        if (await this._ensureOpacity(want)) this.draw();
      }
    } catch (e) {
      console.error(e);
    } finally {
      this.inflight = false;
    }
    // Warm the neighbours so scrolling feels instant.
    this._prefetch(z);
  }

  async _prefetch(z) {
    for (const d of [1, -1, 2, -2]) {
      const n = z + d;
      if (n < 0 || n >= this.sliceCount || this.want !== null || this.inflight) continue;
      try {
        await this._ensure(n, this.window);
        await this._ensureOpacity(n);
      } catch { return; }
    }
  }

  async _ensure(z, win) {
    const key = `${win}:${z}`;
    if (this.cache.has(key)) return this.cache.get(key);
    const img = await this.analysis.renderSlice(z, win);
    const bmp = typeof createImageBitmap === 'function' ? await createImageBitmap(img) : img;
    this.cache.set(key, bmp);
    if (this.cache.size > CACHE) {
      const first = this.cache.keys().next().value;
      const old = this.cache.get(first);
      if (old && old.close) old.close();
      this.cache.delete(first);
    }
    return bmp;
  }

  async _ensureMasks(z) {
    for (const { index, f } of this.findings) {
      const key = `${index}:${z}`;
      if (this.masks.has(key)) continue;
      // Only ask for slices near the finding.
      const half = Math.max(3, Math.ceil(f.long_axis_mm / this.spacing[2]));
      if (Math.abs(z - f.slice_index) > half) { this.masks.set(key, null); continue; }
      const m = await this.analysis.findingMask(index, z);
      this.masks.set(key, m && m.data ? m : null);
    }
  }

  /**
   * Fetch the opacity label image of slice `z` when the overlay is on and the
   * slice has one. Resolves to true when it fetched something.
   * @param {number} z
   */
  async _ensureOpacity(z) {
    if (!this.opacity || !this.opacityIndex.has(z) || this.opacityLabels.has(z)) return false;
    const labels = await this.analysis.opacityOverlay(z);
    if (!labels) return false;
    this.opacityLabels.set(z, labels);
    if (this.opacityLabels.size > OPACITY_CACHE) this.opacityLabels.delete(this.opacityLabels.keys().next().value);
    return true;
  }

  /** Show or hide the diffuse-opacity fills. @param {boolean} on */
  setOpacity(on) {
    this.opacity = !!on;
    this.draw();
    if (this.opacity) this.show(this.z);
  }

  setWindow(w) {
    if (!WINDOWS[w]) return;
    this.window = w;
    this.show(this.z);
  }

  setZoom(z, anchor) {
    const old = this.zoom;
    this.zoom = Math.max(0.5, Math.min(8, z));
    if (anchor) {
      // keep the image point under the cursor fixed
      const k = this.zoom / old;
      this.pan = [anchor[0] - (anchor[0] - this.pan[0]) * k, anchor[1] - (anchor[1] - this.pan[1]) * k];
    }
    if (this.zoom === 1 && !anchor) this.pan = [0, 0];
    this.draw();
    this.canvas.dispatchEvent(new CustomEvent('zoomchange', { detail: this.zoom }));
  }

  /** Select finding `i`: go to its slice and, unless zoomed already, centre it at 2.5×. */
  select(i, { focus = true } = {}) {
    this.selected = i;
    const f = this.findings[i];
    if (!f) return;
    if (focus) this.centerOn(f.f.center_voxel_xyz, Math.max(this.zoom, 2.5));
    this.show(f.f.slice_index);
  }

  centerOn([cx, cy], zoom) {
    this.zoom = zoom;
    const [nx, ny] = this.size;
    const { sx, sy } = this._fit();
    this.pan = [sx * (nx / 2 - cx - 0.5), sy * (ny / 2 - cy - 0.5)];
    this.draw();
    this.canvas.dispatchEvent(new CustomEvent('zoomchange', { detail: this.zoom }));
  }

  /** Image → canvas transform: scale and offset (CSS pixels). */
  _fit() {
    const wrap = this.canvas.parentElement;
    const w = wrap.clientWidth;
    const h = wrap.clientHeight;
    const [nx, ny] = this.size;
    const ax = this.spacing[0];
    const ay = this.spacing[1];
    const base = Math.min(w / (nx * ax), h / (ny * ay));
    const sx = base * ax * this.zoom;
    const sy = base * ay * this.zoom;
    const ox = (w - nx * sx) / 2 + this.pan[0];
    const oy = (h - ny * sy) / 2 + this.pan[1];
    return { w, h, sx, sy, ox, oy };
  }

  draw() {
    if (!this.analysis) return;
    const dpr = window.devicePixelRatio || 1;
    const { w, h, sx, sy, ox, oy } = this._fit();
    if (this.canvas.width !== Math.round(w * dpr) || this.canvas.height !== Math.round(h * dpr)) {
      this.canvas.width = Math.round(w * dpr);
      this.canvas.height = Math.round(h * dpr);
    }
    const c = this.ctx;
    c.setTransform(dpr, 0, 0, dpr, 0, 0);
    c.fillStyle = '#000';
    c.fillRect(0, 0, w, h);
    const img = this.cache.get(`${this.window}:${this.z}`);
    if (!img) return;
    const [nx, ny] = this.size;
    c.imageSmoothingEnabled = true;
    c.imageSmoothingQuality = 'high';
    if (img instanceof ImageData) {
      this.frame.width = nx; this.frame.height = ny;
      this.frame.getContext('2d').putImageData(img, 0, 0);
      c.drawImage(this.frame, ox, oy, nx * sx, ny * sy);
    } else {
      c.drawImage(img, ox, oy, nx * sx, ny * sy);
    }
    const opacityDrawn = this.opacity && this._opacity({ sx, sy, ox, oy });
    // What is on the canvas, for tests and tools: the image → canvas
    // transform (CSS px), the slice, and whether its opacity fill is drawn.
    this.canvas.dataset.view = JSON.stringify({ z: this.z, sx, sy, ox, oy, dpr, opacity: opacityDrawn, opacityLayerMs: this.opacityLayerMs });
    if (!this.overlay) return;
    for (const { f, index, axes } of this.findings) {
      const sel = this.selected === index;
      const m = this.masks.get(`${index}:${this.z}`);
      if (m) this._outline(m, { sx, sy, ox, oy }, sel);
      const onSlice = f.slice_index === this.z;
      const near = Math.abs(f.slice_index - this.z) * this.spacing[2] <= f.long_axis_mm / 2;
      if (onSlice && axes[0][0]) {
        this._line(axes[0], LONG_AXIS, { sx, sy, ox, oy });
        this._line(axes[1], SHORT_AXIS, { sx, sy, ox, oy });
      }
      if (onSlice || near || m) {
        const [cx, cy] = f.center_voxel_xyz;
        const r = Math.max(f.long_axis_mm / 2 / this.spacing[0], 4) * sx + 10;
        const px = ox + (cx + 0.5) * sx;
        const py = oy + (cy + 0.5) * sy;
        if (!m) {
          c.strokeStyle = OUTLINE;
          c.setLineDash([4, 4]);
          c.lineWidth = 1.5;
          c.beginPath();
          c.arc(px, py, r - 4, 0, 2 * Math.PI);
          c.stroke();
          c.setLineDash([]);
        }
        c.font = '600 13px system-ui, sans-serif';
        const label = `${f.id}`;
        const tx = px + r * 0.72;
        const ty = py - r * 0.72;
        c.fillStyle = sel ? '#ffd600' : 'rgba(0,0,0,0.65)';
        c.beginPath();
        c.arc(tx, ty, 10, 0, 2 * Math.PI);
        c.fill();
        c.fillStyle = sel ? '#000' : '#ffd600';
        c.textAlign = 'center';
        c.textBaseline = 'middle';
        c.fillText(label, tx, ty + 0.5);
      }
    }
  }

  /** Fill the opacity voxels of the current slice; false when it has none (or not fetched yet). */
  _opacity({ sx, sy, ox, oy }) {
    const labels = this.opacityLabels.get(this.z);
    if (!labels) return false;
    const [nx, ny] = this.size;
    if (this.opacityLayerOf !== labels) {
      // One RGBA layer per slice shown, rebuilt only when the slice changes.
      const t0 = performance.now();
      const layer = this.opacityLayer;
      layer.width = nx;
      layer.height = ny;
      const lc = layer.getContext('2d');
      const img = lc.createImageData(nx, ny);
      const px = img.data;
      const colors = [null, OPACITY_COLORS.groundGlass, OPACITY_COLORS.consolidation];
      for (let i = 0; i < labels.length; i++) {
        const col = colors[labels[i]];
        if (!col) continue;
        const o = 4 * i;
        px[o] = col[0]; px[o + 1] = col[1]; px[o + 2] = col[2]; px[o + 3] = col[3];
      }
      lc.putImageData(img, 0, 0);
      this.opacityLayerOf = labels;
      this.opacityLayerMs = Math.round((performance.now() - t0) * 100) / 100;
    }
    const c = this.ctx;
    // Nearest neighbour: each voxel a crisp cell, as labelled.
    c.imageSmoothingEnabled = false;
    c.drawImage(this.opacityLayer, ox, oy, nx * sx, ny * sy);
    c.imageSmoothingEnabled = true;
    return true;
  }

  _line([a, b], color, { sx, sy, ox, oy }) {
    const c = this.ctx;
    c.strokeStyle = color;
    c.lineWidth = 2;
    c.beginPath();
    c.moveTo(ox + (a[0] + 0.5) * sx, oy + (a[1] + 0.5) * sy);
    c.lineTo(ox + (b[0] + 0.5) * sx, oy + (b[1] + 0.5) * sy);
    c.stroke();
  }

  _outline({ box, data }, { sx, sy, ox, oy }, sel) {
    const [x0, y0, , bw, bh] = box;
    const c = this.ctx;
    const at = (i, j) => i >= 0 && j >= 0 && i < bw && j < bh && data[j * bw + i] === 1;
    c.strokeStyle = OUTLINE;
    c.lineWidth = sel ? 2.5 : 1.75;
    c.beginPath();
    for (let j = 0; j < bh; j++) {
      for (let i = 0; i < bw; i++) {
        if (!at(i, j)) continue;
        const X = ox + (x0 + i) * sx;
        const Y = oy + (y0 + j) * sy;
        if (!at(i, j - 1)) { c.moveTo(X, Y); c.lineTo(X + sx, Y); }
        if (!at(i, j + 1)) { c.moveTo(X, Y + sy); c.lineTo(X + sx, Y + sy); }
        if (!at(i - 1, j)) { c.moveTo(X, Y); c.lineTo(X, Y + sy); }
        if (!at(i + 1, j)) { c.moveTo(X + sx, Y); c.lineTo(X + sx, Y + sy); }
      }
    }
    c.stroke();
  }

  _bind() {
    const cv = this.canvas;
    cv.addEventListener('wheel', (e) => {
      if (!this.analysis) return;
      e.preventDefault();
      if (e.ctrlKey || e.metaKey) {
        const r = cv.getBoundingClientRect();
        const w = cv.parentElement.clientWidth;
        const h = cv.parentElement.clientHeight;
        const anchor = [e.clientX - r.left - w / 2, e.clientY - r.top - h / 2];
        this.setZoom(this.zoom * (e.deltaY < 0 ? 1.15 : 1 / 1.15), anchor);
      } else {
        this.show(this.z + (e.deltaY > 0 ? 1 : -1));
      }
    }, { passive: false });
    cv.addEventListener('keydown', (e) => {
      const step = { ArrowUp: -1, ArrowDown: 1, PageUp: -10, PageDown: 10 }[e.key];
      if (step) { e.preventDefault(); this.show(this.z + step); }
    });
    let drag = null;
    cv.addEventListener('pointerdown', (e) => {
      drag = { x: e.clientX, y: e.clientY, pan: [...this.pan] };
      cv.setPointerCapture(e.pointerId);
      cv.focus();
    });
    cv.addEventListener('pointermove', (e) => {
      if (!drag) return;
      this.pan = [drag.pan[0] + e.clientX - drag.x, drag.pan[1] + e.clientY - drag.y];
      this.draw();
    });
    cv.addEventListener('pointerup', () => { drag = null; });
    cv.addEventListener('dblclick', () => { this.pan = [0, 0]; this.setZoom(1); });
    cv.addEventListener('pointercancel', () => { drag = null; });
  }
}
