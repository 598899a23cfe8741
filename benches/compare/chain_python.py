#!/usr/bin/env python3
"""Python side of the preprocessing-chain comparison: load -> 1 mm resample ->
lung mask -> blob filter, with the stack a user would pick (pydicom + numpy,
SimpleITK, scipy.ndimage), stage by stage.

    chain_python.py SERIES_DIR [--reps N] [--warmup N] [--threads N]
                    [--air-hu HU] [--full-res-lungs]          # JSON on stdout

Each stage names the ct-triage stage it corresponds to. The code is
vectorised throughout (Python loops run over repetitions, DoG scales, the
eight offsets of 2x pooling and the candidate list, never over voxels or
slices). Where ct-triage makes an
algorithmic choice that decides the cost (lungs segmented on a 2 mm grid,
coarse DoG scales on a 2 mm grid), the Python chain makes the same choice, so
the ratio compares implementations rather than algorithms;
``--full-res-lungs`` segments the lungs on the full 1 mm grid instead.

Threads: SimpleITK's resampler uses ``--threads`` (default 2);
scipy.ndimage and numpy are single-threaded in these calls.
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import pydicom
import scipy
import SimpleITK as sitk
from scipy import ndimage

from ingest_pydicom import load_hu, loadavg

# The DoG scales of crates/analysis/src/candidates.rs, in mm (Gaussian sigmas; DoG i uses
# sigmas i and i+1). Fine scales run on the 1 mm grid, coarse ones on 2 mm.
SIGMAS_FINE = [1.0, 1.414, 2.0]
SIGMAS_COARSE = [2.0, 2.828, 4.0, 5.657, 8.0, 11.314]
MIN_RESPONSE = 12.0  # CandidateOptions::min_response (HU of -DoG)
MAX_CANDIDATES = 64  # CandidateOptions::max_candidates
MASS_MIN_D_MM = 30.0  # CandidateOptions::mass_min_diameter_mm
CLOSING_MM = 10.0  # LungOptions::closing_mm
ISO_MM = 1.0  # the model's spacing_mm

# In-plane (per-slice) 4-connectivity as a 3-D structure: one call labels /
# fills every axial slice independently, like the per-slice loops in Rust.
IN_PLANE = np.zeros((3, 3, 3), dtype=bool)
IN_PLANE[1] = ndimage.generate_binary_structure(2, 1)


# --------------------------------------------------------------------------
# Stage: resample (Rust: resample::to_isotropic, trilinear, -1024 outside).
def resample_iso(vol, geometry, spacing=ISO_MM):
    img = sitk.GetImageFromArray(vol)  # int16, [z, y, x] -> (x, y, z)
    img.SetSpacing(geometry["spacing_xyz"])
    img.SetOrigin(geometry["origin"])
    row, col, normal = geometry["direction"]
    # ITK's direction matrix has the axis vectors as columns (row-major flat).
    direction = [row[0], col[0], normal[0], row[1], col[1], normal[1], row[2], col[2], normal[2]]
    img.SetDirection(direction)
    # Same output grid as ct-triage: same origin and axes, covering the extent.
    size = [
        int(np.floor((n - 1) * s / spacing + 1e-6)) + 1
        for n, s in zip(img.GetSize(), geometry["spacing_xyz"])
    ]
    out = sitk.Resample(
        img,
        size,
        sitk.Transform(),
        sitk.sitkLinear,
        img.GetOrigin(),
        [spacing] * 3,
        direction,
        -1024.0,
        sitk.sitkInt16,
    )
    return sitk.GetArrayFromImage(out)


# --------------------------------------------------------------------------
# Helpers shared by the lung and candidate stages.
def pool2(a):
    """2x average pooling along every axis, float32 (Rust: imgproc::downsample2).
    Odd trailing planes are dropped (Rust averages the voxels that exist)."""
    nz, ny, nx = (n // 2 * 2 for n in a.shape)
    a = a[:nz, :ny, :nx]
    s = np.zeros((nz // 2, ny // 2, nx // 2), dtype=np.float32)
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                s += a[dz::2, dy::2, dx::2]
    s *= 0.125
    return s


def upsample2(m, shape):
    """Nearest-neighbour x2 upsampling to `shape` (Rust: lungs::upsample2):
    eight strided copies; an odd trailing plane repeats the last coarse one."""
    out = np.empty(shape, m.dtype)
    mp = np.pad(m, [(0, 1)] * 3, mode="edge")
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                t = out[dz::2, dy::2, dx::2]
                t[...] = mp[: t.shape[0], : t.shape[1], : t.shape[2]]
    return out


def disk(radius):
    r = int(np.floor(radius))
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    return x * x + y * y <= radius * radius


# --------------------------------------------------------------------------
# Stage: lungs (Rust: lungs::segment). The classic recipe: threshold, drop the
# air connected to the image border (outside the body), keep the two largest
# 3-D air components inside the body, per-slice closing and hole filling.
def lung_masks(iso, air_hu, full_res=False, spacing=ISO_MM):
    seg = iso
    px = spacing
    coarse = not full_res and spacing < 1.5 and min(iso.shape) >= 8
    if coarse:  # like Rust: segment on a 2x average-pooled grid
        seg = pool2(iso)
        px = 2 * spacing
    voxel_ml = px**3 / 1000.0
    air = seg < air_hu
    # Outside the body: air components (per slice) touching the in-plane border.
    lab, n = ndimage.label(air, structure=IN_PLANE)
    border = np.unique(
        np.concatenate([lab[:, 0, :].ravel(), lab[:, -1, :].ravel(), lab[:, :, 0].ravel(), lab[:, :, -1].ravel()])
    )
    outside_lut = np.zeros(n + 1, dtype=bool)
    outside_lut[border] = True
    outside_lut[0] = True
    internal = ~outside_lut[lab]
    del lab
    # 3-D components (6-connectivity): keep the largest and a second one of
    # comparable size (same rule as Rust: >= 15 % of the largest, >= 50 mL).
    lab3, n3 = ndimage.label(internal)
    sizes = np.bincount(lab3.ravel(), minlength=n3 + 1)
    sizes[0] = 0
    order = np.argsort(sizes)[::-1][:2]
    largest = sizes[order[0]] if n3 else 0
    keep = [l for l in order if sizes[l] > 0 and sizes[l] >= 0.15 * largest and sizes[l] * voxel_ml >= 50.0]
    lut = np.zeros(n3 + 1, dtype=bool)
    lut[keep] = True
    lungs = lut[lab3]
    del lab3
    # Per-slice closing with a 10 mm disk, then per-slice hole filling.
    # (Rust closes each lung separately and keeps the medial additions out;
    # the classic recipe closes the whole mask.)
    # Done on the lungs' bounding box plus a margin of the disk radius.
    r = CLOSING_MM / px
    pad = int(np.ceil(r)) + 1
    region = np.zeros_like(lungs)
    zs = np.nonzero(lungs.any(axis=(1, 2)))[0]
    if len(zs):
        ys = np.nonzero(lungs[zs[0] : zs[-1] + 1].any(axis=(0, 2)))[0]
        xs = np.nonzero(lungs[zs[0] : zs[-1] + 1].any(axis=(0, 1)))[0]
        box = np.s_[zs[0] : zs[-1] + 1, ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1]
        padded = np.pad(lungs[box], ((0, 0), (pad, pad), (pad, pad)))
        closed = ndimage.binary_closing(padded, structure=disk(r)[None])
        filled = ndimage.binary_fill_holes(closed, structure=IN_PLANE)
        # What the closing adds beyond the volume's edges is dropped.
        region[box] = filled[:, pad:-pad, pad:-pad]
    if coarse:
        region = upsample2(region, iso.shape)
        lungs = upsample2(lungs, iso.shape)
    aerated = lungs & (iso < air_hu)
    return region, aerated


# --------------------------------------------------------------------------
# Stage: candidates (Rust: candidates::detect).
def dog_extrema(v, region, sigmas_vox, voxel_scale):
    """Scale-space minima of DoG below -MIN_RESPONSE inside `region`.
    Returns (centres [n, 3] as z, y, x; radius in voxels of the 1 mm grid; response)."""
    gs = [ndimage.gaussian_filter(v, s, truncate=3.0, mode="reflect", output=np.float32) for s in sigmas_vox]
    dogs = [b - a for a, b in zip(gs, gs[1:])]
    del gs
    interior = np.zeros(v.shape, dtype=bool)
    interior[1:-1, 1:-1, 1:-1] = True
    interior &= region != 0
    out = []
    for i, d in enumerate(dogs):
        m = interior & (d <= -MIN_RESPONSE)
        m &= d <= ndimage.minimum_filter(d, size=3, mode="nearest")
        if i > 0:
            m &= d <= dogs[i - 1]
        if i + 1 < len(dogs):
            m &= d <= dogs[i + 1]
        zyx = np.argwhere(m)
        sigma = np.sqrt(sigmas_vox[i] * sigmas_vox[i + 1])
        radius = sigma * np.sqrt(3.0) * voxel_scale
        out.append((zyx.astype(np.float64), np.full(len(zyx), radius), -d[m]))
    return (
        np.concatenate([o[0] for o in out]),
        np.concatenate([o[1] for o in out]),
        np.concatenate([o[2] for o in out]),
    )


def masses(v2, reg2, sp2):
    """Soft-tissue (> -300 HU) components in the lung region, equivalent
    diameter 30-120 mm (Rust: candidates::masses)."""
    tissue = (reg2 != 0) & (v2 > -300.0)
    lab, n = ndimage.label(tissue)
    if n == 0:
        return np.zeros((0, 3)), np.zeros(0), np.zeros(0)
    cnt = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    d = np.cbrt(6.0 * cnt * sp2**3 / np.pi)
    sel = np.nonzero((d >= MASS_MIN_D_MM) & (d <= 120.0))[0] + 1
    if len(sel) == 0:
        return np.zeros((0, 3)), np.zeros(0), np.zeros(0)
    com = np.array(ndimage.center_of_mass(tissue, lab, sel), dtype=np.float64)
    dd = d[sel - 1]
    return com, dd / 2.0, dd


def suppress(zyx, radius_mm, response, is_mass, max_n, sp):
    """Greedy NMS, masses first then strongest (Rust: candidates::suppress)."""
    order = np.lexsort((zyx[:, 2], zyx[:, 1], zyx[:, 0], -response, ~is_mass))
    kept = []
    kp = np.zeros((0, 3))
    kr = np.zeros(0)
    for i in order:
        if len(kept) >= max_n:
            break
        if len(kept):
            dist = np.sqrt((((kp - zyx[i]) * sp) ** 2).sum(axis=1))
            if np.any(dist < np.maximum(np.maximum(kr, radius_mm[i]), 3.0)):
                continue
        kept.append(i)
        kp = np.vstack([kp, zyx[i]])
        kr = np.append(kr, radius_mm[i])
    return np.array(kept, dtype=np.int64)


def detect(iso, region, aerated, sp=ISO_MM, max_n=MAX_CANDIDATES):
    # Slices with lung (>= 1 cm² aerated), as LungMasks::z_range.
    area = aerated.sum(axis=(1, 2))
    zs = np.nonzero(area >= max(1, int(100.0 / (sp * sp))))[0]
    if len(zs) == 0:
        return np.zeros((0, 3)), np.zeros(0, dtype=bool)
    z0, z1 = zs[0], zs[-1]
    ys, xs = np.nonzero(region[z0 : z1 + 1].any(axis=0))
    if len(ys) == 0:
        return np.zeros((0, 3)), np.zeros(0, dtype=bool)
    m = int(np.ceil(16.0 / sp))
    nz, ny, nx = iso.shape
    bz0, bz1 = max(z0 - m, 0), min(z1 + m, nz - 1)
    by0, by1 = max(ys.min() - m, 0), min(ys.max() + m, ny - 1)
    bx0, bx1 = max(xs.min() - m, 0), min(xs.max() + m, nx - 1)
    box = np.s_[bz0 : bz1 + 1, by0 : by1 + 1, bx0 : bx1 + 1]
    reg = region[box]
    # Lung region with everything outside it set to air, clamped to [-1000, 100].
    v = np.where(reg, np.clip(iso[box], -1000, 100), -1000).astype(np.float32)
    # Fine scales on the 1 mm grid.
    c1, r1, s1 = dog_extrema(v, reg, [s / sp for s in SIGMAS_FINE], 1.0)
    # Coarse scales and the mass path on a 2 mm grid.
    v2 = pool2(v)
    reg2 = reg[: 2 * v2.shape[0] : 2, : 2 * v2.shape[1] : 2, : 2 * v2.shape[2] : 2]
    c2, r2, s2 = dog_extrema(v2, reg2, [s / (2 * sp) for s in SIGMAS_COARSE], 2.0)
    c3, r3, s3 = masses(v2, reg2, 2 * sp)
    zyx = np.concatenate([c1, c2 * 2 + 0.5, c3 * 2 + 0.5]) + np.array([bz0, by0, bx0])
    radius_mm = np.concatenate([r1 * sp, r2 * sp, r3])
    response = np.concatenate([s1, s2, s3])
    is_mass = np.zeros(len(zyx), dtype=bool)
    is_mass[len(c1) + len(c2) :] = True
    keep = suppress(zyx, radius_mm, response, is_mass, max_n, sp)
    return zyx[keep], is_mass[keep]


# --------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("series_dir")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("CTT_THREADS", "2")))
    ap.add_argument("--air-hu", type=float, default=-320.0, help="lung air threshold (ct-triage uses -500)")
    ap.add_argument("--full-res-lungs", action="store_true", help="segment lungs on the 1 mm grid")
    a = ap.parse_args()
    reps = max(1, a.reps)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(a.threads)
    out = {
        "tool": "pydicom+SimpleITK+scipy.ndimage",
        "stage": "chain",
        "series_dir": a.series_dir,
        "threads": {
            "simpleitk": sitk.ProcessObject.GetGlobalDefaultNumberOfThreads(),
            "numpy_scipy": 1,
        },
        "reps": reps,
        "warmup": a.warmup,
        "lung_grid": "1 mm" if a.full_res_lungs else "2 mm (as ct-triage)",
        "loadavg_before": loadavg(),
    }
    stages = ["load", "resample", "lungs", "candidates", "total"]
    times = {s: [] for s in stages}
    for rep in range(a.warmup + reps):
        t0 = time.perf_counter()
        vol, geometry, _ = load_hu(a.series_dir)
        t1 = time.perf_counter()
        iso = resample_iso(vol, geometry)
        del vol
        t2 = time.perf_counter()
        region, aerated = lung_masks(iso, a.air_hu, a.full_res_lungs)
        t3 = time.perf_counter()
        cands, is_mass = detect(iso, region, aerated)
        t4 = time.perf_counter()
        if rep >= a.warmup:
            for s, (x, y) in zip(stages, [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t0, t4)]):
                times[s].append(y - x)
    # Untimed: the same detection without the cap, for the sanity check.
    all_cands, all_mass = detect(iso, region, aerated, max_n=sys.maxsize)
    voxel_ml = ISO_MM**3 / 1000.0
    out.update(
        {
            "iso_size_xyz": [iso.shape[2], iso.shape[1], iso.shape[0]],
            "times_s": times,
            "median_s": {s: statistics.median(t) for s, t in times.items()},
            "min_s": {s: min(t) for s, t in times.items()},
            "outputs": {
                "air_threshold_hu": a.air_hu,
                "lung_aerated_ml": float(aerated.sum()) * voxel_ml,
                "lung_region_ml": float(region.sum()) * voxel_ml,
                "candidates_capped": int(len(cands)),
                "candidates_capped_blob": int((~is_mass).sum()),
                "candidates_capped_mass": int(is_mass.sum()),
                "candidates_after_nms": int(len(all_cands)),
                "candidates_after_nms_blob": int((~all_mass).sum()),
                "candidates_after_nms_mass": int(all_mass.sum()),
                "max_candidates": MAX_CANDIDATES,
                "min_response_hu": MIN_RESPONSE,
            },
            "versions": {
                "python": sys.version.split()[0],
                "pydicom": pydicom.__version__,
                "numpy": np.__version__,
                "scipy": scipy.__version__,
                "SimpleITK": sitk.Version_VersionString(),
            },
            "loadavg_after": loadavg(),
        }
    )
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
