#!/usr/bin/env python3
"""Lesion-insertion harness: real CT backgrounds, lesions of known truth.

Inserts nodules and masses of known size, type and position into real chest
CT series (sample-dicom/lung1 and tests/data/lung2), writes each case as a
DICOM series, runs the shipped `ct-triage analyze` on it and scores the
reports: sensitivity by type and size, unmatched findings per scan, size
error and Lung-RADS agreement.

Written independently of the training renderer (training/datagen): its own
lesion shapes (lobulated super-ellipsoids with a random radial ripple), its
own edge model (an erf edge of a given width), slice-thickness averaging over
the series' own slice profile (box, sub-sampled), and noise restored inside
the lesion as correlated Gaussian noise whose level is measured on the scan
itself. The generated cases are never used for training: `training/` reads
only the LIDC annotations and lung1's parenchyma, and lung2 not at all.

    python tests/insertion/harness.py --ct-triage target/release/ct-triage \
        --work target/insertion --out tests/insertion/results.json [--check]

`--check` exits non-zero when a floor in FLOORS is not met (tests/run.sh).
Needs numpy, scipy, pydicom (+ pylibjpeg-openjpeg for lung2's JPEG 2000).
"""
import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian
from scipy import ndimage as ndi
from scipy.special import erfc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BACKGROUNDS = {
    # name: (DICOM folder, truth JSON, used in training?)
    "lung1": ("sample-dicom/lung1", "sample-dicom/lung1.truth.json", True),
    "lung2": ("tests/data/lung2/dicom", "tests/data/lung2/lung2.truth.json", False),
}

# What issue 11 asks for ("Done when"), reported beside the figures.
GOALS = {
    "sensitivity_solid_ge6": 0.95,
    "sensitivity_subsolid_ge10": 0.90,
    "sensitivity_mass_ge30": 1.00,
    "unmatched_per_scan_max": 1.0,
    "median_size_error_mm_max": 1.5,
    "lung_rads_agreement_min": 0.90,
}

# What `--check` enforces (tests/run.sh): about one lesion below the figures the
# shipped pipeline measures (tests/insertion/results.json), so that a change that
# loses a lesion of a group fails, while float rounding that depends on the
# thread count (parallel sums) cannot; the goal itself where it has that margin.
FLOORS = {
    "sensitivity_solid_ge6": 0.93,
    "sensitivity_subsolid_ge10": 0.90,
    "sensitivity_mass_ge30": 0.95,
    "unmatched_per_scan_max": 1.0,
    "median_size_error_mm_max": 1.5,
    "lung_rads_agreement_min": 0.87,
}


# ----------------------------------------------------------------------------
# Series I/O
# ----------------------------------------------------------------------------

class Series:
    """A CT series as an HU volume [z, y, x] with its geometry and datasets."""

    def __init__(self, folder):
        dss = []
        for name in sorted(os.listdir(folder)):
            p = os.path.join(folder, name)
            if os.path.isfile(p):
                dss.append(pydicom.dcmread(p))
        dss.sort(key=lambda d: float(d.ImagePositionPatient[2]))
        self.datasets = dss
        slope = float(getattr(dss[0], "RescaleSlope", 1))
        inter = float(getattr(dss[0], "RescaleIntercept", 0))
        self.hu = np.stack([d.pixel_array.astype(np.float32) * slope + inter for d in dss])
        self.slope, self.inter = slope, inter
        ps = [float(v) for v in dss[0].PixelSpacing]
        self.sy, self.sx = ps[0], ps[1]
        zs = [float(d.ImagePositionPatient[2]) for d in dss]
        self.sz = float(np.median(np.diff(zs)))
        self.origin = [float(v) for v in dss[0].ImagePositionPatient]
        self.z = np.array(zs)
        self.thickness = float(getattr(dss[0], "SliceThickness", self.sz) or self.sz)

    def voxel_to_lps(self, v):
        """Continuous voxel [x, y, z] → LPS mm (axial, identity orientation)."""
        return [self.origin[0] + v[0] * self.sx, self.origin[1] + v[1] * self.sy,
                self.origin[2] + v[2] * self.sz]

    def write(self, hu, folder, case_id):
        """Write `hu` as a new uncompressed series with fresh UIDs."""
        os.makedirs(folder, exist_ok=True)
        study = uid(case_id, "study")
        series = uid(case_id, "series")
        for k, d in enumerate(self.datasets):
            ds = d.copy()
            stored = np.round((hu[k] - self.inter) / self.slope)
            bits = int(ds.BitsStored)
            if int(ds.PixelRepresentation) == 0:
                stored = stored.clip(0, (1 << bits) - 1).astype("<u2")
            else:
                stored = stored.clip(-(1 << (bits - 1)), (1 << (bits - 1)) - 1).astype("<i2")
            ds.PixelData = stored.tobytes()
            ds["PixelData"].VR = "OW"
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            sop = uid(case_id, "sop", k)
            ds.SOPInstanceUID = sop
            ds.file_meta.MediaStorageSOPInstanceUID = sop
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
            ds.PatientID = f"INS-{case_id}"
            ds.AccessionNumber = case_id[:16]
            ds.save_as(os.path.join(folder, f"{k:03d}.dcm"), enforce_file_format=True)


def uid(*parts):
    d = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()[:16]
    return "2.25.%d" % (int.from_bytes(d, "big") & ((1 << 127) - 1))


# ----------------------------------------------------------------------------
# The harness' own anatomy (independent of the core's lung stage)
# ----------------------------------------------------------------------------

class Anatomy:
    """Body and lung masks and distance maps at the series' own resolution."""

    def __init__(self, s):
        hu = s.hu
        air = hu < -400
        body = np.zeros(hu.shape, bool)
        lung = np.zeros(hu.shape, bool)
        for k in range(hu.shape[0]):
            b = ndi.binary_fill_holes(~air[k])
            body[k] = b
            lung[k] = air[k] & b
        lab, n = ndi.label(lung)
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        keep = np.argsort(-sizes)[:2]
        lung = np.isin(lab, keep[sizes[keep] > 0.15 * sizes[keep].max()])
        # airways (trachea / main bronchi) out: small central components per slice
        for k in range(hu.shape[0]):
            l2, n2 = ndi.label(lung[k])
            for c in range(1, n2 + 1):
                m = l2 == c
                if m.sum() * s.sx * s.sy < 600:
                    ys, xs = np.nonzero(m)
                    if abs(xs.mean() - hu.shape[2] / 2) < 0.12 * hu.shape[2]:
                        lung[k][m] = False
        filled = np.stack([ndi.binary_fill_holes(x) for x in lung])
        sampling = (s.sz, s.sy, s.sx)
        self.body = body
        self.lung = filled
        self.parenchyma = lung & (hu < -700)
        # distance (mm) from inside the lung to its outside, and from the body to outside air
        self.d_lung = ndi.distance_transform_edt(filled, sampling=sampling)
        self.d_body = ndi.distance_transform_edt(body, sampling=sampling)
        # outward normals of the lung surface: gradient of the smoothed distance map
        smooth = ndi.gaussian_filter(self.d_lung, sigma=(0.6, 4.0, 4.0))
        self.grad_lung = np.gradient(smooth, s.sz, s.sy, s.sx)
        vessels = filled & (hu > -350)
        vessels = ndi.binary_opening(vessels, structure=np.ones((1, 2, 2), bool))
        self.d_vessel = ndi.distance_transform_edt(~vessels, sampling=sampling)
        self.vessels = vessels
        # noise level: the lower quartile of the local (7×7) standard deviation in
        # soft tissue (muscle, fat, blood pool): flat regions, where the spread is noise
        soft = body & (hu > -150) & (hu < 120)
        soft = ndi.binary_erosion(soft, structure=np.ones((1, 9, 9), bool))
        m1 = ndi.uniform_filter(hu, (1, 7, 7))
        m2 = ndi.uniform_filter(hu * hu, (1, 7, 7))
        sd = np.sqrt(np.maximum(m2 - m1 * m1, 0))[soft]
        self.noise_sd = float(np.percentile(sd, 25)) if sd.size else 10.0


# ----------------------------------------------------------------------------
# Lesion model (the harness' own): lobulated super-ellipsoid with an erf edge
# ----------------------------------------------------------------------------

def random_rotation(rng):
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    a, b, c, d = q
    return np.array([
        [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
        [2 * (b * c + a * d), a * a - b * b + c * c - d * d, 2 * (c * d - a * b)],
        [2 * (b * d - a * c), 2 * (c * d + a * b), a * a - b * b - c * c + d * d],
    ])


class Shape:
    """A closed surface r = R(u): super-ellipsoid radii times a radial ripple."""

    def __init__(self, rng, radius, elong=0.15, ripple=0.08, power=2.0):
        self.radius = radius
        a = 1.0 + rng.uniform(-elong, elong, size=3)
        self.axes = a / np.cbrt(a.prod())
        self.rot = random_rotation(rng)
        self.power = power
        k = rng.integers(3, 6)
        self.dirs = rng.normal(size=(k, 3))
        self.dirs /= np.linalg.norm(self.dirs, axis=1, keepdims=True)
        self.freq = rng.uniform(1.5, 4.0, size=k)
        self.phase = rng.uniform(0, 2 * np.pi, size=k)
        self.amp = rng.uniform(0.3, 1.0, size=k)
        self.amp *= ripple / self.amp.sum()

    def signed_distance(self, q):
        """Approximate signed distance (mm, > 0 outside) of points q [..., 3] (mm, LPS offsets)."""
        p = q @ self.rot  # into the shape frame
        r = np.linalg.norm(p, axis=-1) + 1e-9
        u = p / r[..., None]
        # super-ellipsoid support radius along u
        s = (np.abs(u / self.axes) ** self.power).sum(-1) ** (-1.0 / self.power)
        ripple = 1.0 + (self.amp * np.cos(self.freq * (u @ self.dirs.T) * np.pi + self.phase)).sum(-1)
        return r - self.radius * s * ripple


def occupancy(shape, q, edge_mm):
    return 0.5 * erfc(shape.signed_distance(q) / (math.sqrt(2) * edge_mm))


# ----------------------------------------------------------------------------
# Truth measurements on the continuous shape (as a reader measures on the image)
# ----------------------------------------------------------------------------

def axes_2d(mask, sx, sy):
    """Long axis and the longest perpendicular (±10°) of a 2-D mask, mm, edge to edge."""
    ys, xs = np.nonzero(mask)
    if len(xs) < 2:
        return 0.0, 0.0
    e = mask & ~ndi.binary_erosion(mask)
    ys, xs = np.nonzero(e)
    pts = np.stack([xs * sx, ys * sy], 1)
    if len(pts) > 600:
        pts = pts[:: len(pts) // 600 + 1]
    d = pts[:, None, :] - pts[None, :, :]
    dist = np.sqrt((d ** 2).sum(-1))
    i, j = np.unravel_index(np.argmax(dist), dist.shape)
    long = dist[i, j]
    v = (pts[j] - pts[i]) / max(long, 1e-9)
    cos = np.abs((d @ v)) / np.maximum(dist, 1e-9)
    perp = np.where(cos <= math.sin(math.radians(10)), dist, 0)
    short = perp.max()
    pix = (sx + sy) / 2
    return float(long + pix), float(short + pix)


def truth_size(shape, centre_mm, slice_z, res=0.1):
    """Mean diameter (long+short)/2 on the slice-centre plane of largest cross-section."""
    best = (0, 0.0, 0.0, None)
    r = shape.radius * 1.6 + 1
    g = np.arange(-r, r + res, res)
    X, Y = np.meshgrid(g, g)
    for z in slice_z:
        dz = z - centre_mm[2]
        if abs(dz) > r:
            continue
        q = np.stack([X, Y, np.full_like(X, dz)], -1)
        m = shape.signed_distance(q) <= 0
        a = int(m.sum())
        if a > best[0]:
            best = (a, *axes_2d(m, res, res), z)
    return best[1], best[2], best[3]


# ----------------------------------------------------------------------------
# Lung-RADS v2022 (baseline), written here independently of crates/analysis/src/lungrads.rs
# ----------------------------------------------------------------------------

def lung_rads(kind, d, solid=None, juxtapleural_smooth=False):
    """v2022 baseline category from size and type. `juxtapleural_smooth`: a solid
    nodule attached to the pleura with smooth margins and an oval shape — every
    juxtapleural nodule this generator draws — is category 2 below 10 mm."""
    d = round(d, 1)
    if kind == "solid" or kind == "mass":
        if juxtapleural_smooth and kind == "solid" and d < 10:
            return "2"
        return "2" if d < 6 else "3" if d < 8 else "4A" if d < 15 else "4B"
    if kind == "ground_glass":
        return "2" if d < 30 else "3"
    s = round(solid or 0.0, 1)
    if d < 6:
        return "2"
    return "3" if s < 6 else "4A" if s < 8 else "4B"


# ----------------------------------------------------------------------------
# Case plan
# ----------------------------------------------------------------------------

PLAN = (
    [("solid", "interior", d) for d in (5, 6, 7, 8, 10, 12, 15, 20, 25, 30)] * 2
    + [("solid", "juxtapleural", d) for d in (6, 8, 10, 14, 20)] * 2
    + [("solid", "juxtavascular", d) for d in (6, 8, 10, 14, 20)] * 2
    + [("part_solid", "interior", d) for d in (8, 10, 12, 15, 20, 25, 30)] * 2
    + [("ground_glass", "interior", d) for d in (8, 10, 12, 15, 20, 25, 30)] * 2
    + [("mass", "chest_wall", d) for d in (30, 40, 50, 60, 70)] * 2
)


def plan_cases(seed, per_scan=4):
    """Spread the plan over scans: one mass at most per scan, backgrounds alternating."""
    rng = np.random.default_rng(seed)
    items = list(PLAN)
    rng.shuffle(items)
    masses = [x for x in items if x[0] == "mass"]
    others = [x for x in items if x[0] != "mass"]
    n_scans = max(len(masses), math.ceil(len(items) / per_scan))
    scans = [[] for _ in range(n_scans)]
    for i, m in enumerate(masses):
        scans[i].append(m)
    i = 0
    for o in others:
        while len(scans[i % n_scans]) >= per_scan:
            i += 1
        scans[i % n_scans].append(o)
        i += 1
    names = sorted(BACKGROUNDS)
    return [(names[k % len(names)], s) for k, s in enumerate(scans)]


# ----------------------------------------------------------------------------
# Placement and rendering
# ----------------------------------------------------------------------------

def place(anat, s, rng, kind, where, d, taken):
    """A centre (voxel x, y, z as floats) for a lesion, or None."""
    r = d / 2.0
    nz = s.hu.shape[0]
    zmargin = (r + 6.0) / s.sz
    if where == "interior":
        ok = anat.parenchyma & (anat.d_lung >= r + 6.0)
    elif where == "juxtapleural":
        # the lesion touches the pleura (attached, not beyond it): centre 0.85–1.0 r
        # inside the lung surface, costal side
        depth = rng.uniform(0.85, 1.0) * r
        ok = anat.lung & (np.abs(anat.d_lung - depth) <= 0.8) & (anat.d_body <= 45.0) & (s.hu < -600)
    elif where == "juxtavascular":
        ok = anat.parenchyma & (anat.d_lung >= r + 6.0) & (np.abs(anat.d_vessel - 0.8 * r) <= 0.8)
    elif where == "chest_wall":
        # a mass broad-based on the costal chest wall: centre 0–0.2 r outside the lung
        # surface, on the lateral, anterior or posterior costal pleura (away from the
        # midline, where the surface is mediastinal), checked below to bulge into the lung
        ok = anat.lung & (anat.d_lung <= 1.5) & (anat.d_body <= 40.0) & (anat.d_body >= 8.0)
        mid = s.hu.shape[2] / 2.0
        xs_all = np.arange(s.hu.shape[2])[None, None, :]
        ok &= np.abs(xs_all - mid) * s.sx >= 40.0
    else:
        raise ValueError(where)
    zs, ys, xs = np.nonzero(ok)
    sel = (zs >= zmargin) & (zs <= nz - 1 - zmargin)
    zs, ys, xs = zs[sel], ys[sel], xs[sel]
    if len(zs) == 0:
        return None
    for _ in range(400):
        i = rng.integers(len(zs))
        c = np.array([xs[i], ys[i], zs[i]], float)
        cm = np.array([c[0] * s.sx, c[1] * s.sy, c[2] * s.sz])
        if where == "chest_wall":
            # push outward along the lung's outward normal (gradient of d_lung)
            gz, gy, gx = [g[zs[i], ys[i], xs[i]] for g in anat.grad_lung]
            n = -np.array([gx, gy, gz])
            n[2] *= 0.3  # mostly in-plane
            if np.linalg.norm(n) < 1e-6:
                continue
            n /= np.linalg.norm(n)
            cm = cm + n * rng.uniform(0.0, 0.2) * r
            c = cm / np.array([s.sx, s.sy, s.sz])
        clear = all(np.linalg.norm(cm - t[0]) > t[1] + r + 15.0 for t in taken)
        if clear and where == "chest_wall" and lung_share(anat, s, cm, r) < 0.4:
            continue  # mostly outside the lung: an extrapulmonary mass, not this case
        if clear:
            return c
    return None


def lung_share(anat, s, cm, r):
    """Share of a sphere (centre `cm` mm, radius `r`) inside the harness' lung mask."""
    zs = np.arange(max(0, int((cm[2] - r) / s.sz)), min(s.hu.shape[0], int((cm[2] + r) / s.sz) + 1))
    ys = np.arange(max(0, int((cm[1] - r) / s.sy)), min(s.hu.shape[1], int((cm[1] + r) / s.sy) + 1))
    xs = np.arange(max(0, int((cm[0] - r) / s.sx)), min(s.hu.shape[2], int((cm[0] + r) / s.sx) + 1))
    Z, Y, X = np.meshgrid(zs * s.sz - cm[2], ys * s.sy - cm[1], xs * s.sx - cm[0], indexing="ij")
    inside = (X ** 2 + Y ** 2 + Z ** 2) <= r * r
    if not inside.any():
        return 0.0
    lung = anat.lung[np.ix_(zs, ys, xs)]
    return float((lung & inside).sum() / inside.sum())


def render(hu, anat, s, rng, kind, d, centre_vox, noise_sd):
    """Insert one lesion; returns its truth record."""
    r = d / 2.0
    if kind == "mass":
        shape = Shape(rng, r, elong=0.12, ripple=0.06)
    else:
        shape = Shape(rng, r, elong=0.18, ripple=0.10 if kind == "solid" else 0.07)
    edge = rng.uniform(0.35, 0.7) if kind in ("solid", "mass") else rng.uniform(0.8, 1.4)
    core = None
    solid_hu = rng.uniform(15, 60)
    ggo_hu = rng.uniform(-680, -480)
    if kind == "part_solid":
        frac = rng.uniform(0.3, 0.65)
        core = Shape(rng, r * frac, elong=0.15, ripple=0.08)
        core_off = rng.normal(size=3) * r * (1 - frac) * 0.25
    cm = np.array([centre_vox[0] * s.sx, centre_vox[1] * s.sy, centre_vox[2] * s.sz])
    ext = r * 1.5 + 4 * edge + 2
    x0, x1 = int(max(0, (cm[0] - ext) / s.sx)), int(min(hu.shape[2] - 1, (cm[0] + ext) / s.sx))
    y0, y1 = int(max(0, (cm[1] - ext) / s.sy)), int(min(hu.shape[1] - 1, (cm[1] + ext) / s.sy))
    z0, z1 = int(max(0, (cm[2] - ext) / s.sz)), int(min(hu.shape[0] - 1, (cm[2] + ext) / s.sz))
    xs = np.arange(x0, x1 + 1) * s.sx - cm[0]
    ys = np.arange(y0, y1 + 1) * s.sy - cm[1]
    nsub = 10
    half = s.thickness / 2
    box = hu[z0:z1 + 1, y0:y1 + 1, x0:x1 + 1]
    body = anat.body[z0:z1 + 1, y0:y1 + 1, x0:x1 + 1]
    noise = rng.normal(size=box.shape).astype(np.float32)
    noise = ndi.gaussian_filter(noise, sigma=(0, 0.8, 0.8))
    noise *= noise_sd / max(noise.std(), 1e-6)
    Y, X = np.meshgrid(ys, xs, indexing="ij")
    for kk in range(box.shape[0]):
        zc = (z0 + kk) * s.sz - cm[2]
        occ_sum = np.zeros(X.shape)
        val_sum = np.zeros(X.shape)
        for t in (np.arange(nsub) + 0.5) / nsub:
            z = zc - half + t * s.thickness
            q = np.stack([X, Y, np.full_like(X, z)], -1)
            o = occupancy(shape, q, edge)
            if kind == "solid" or kind == "mass":
                v = np.full(X.shape, solid_hu)
            elif kind == "ground_glass":
                v = np.full(X.shape, ggo_hu)
            else:
                oc = occupancy(core, q - core_off, 0.5)
                v = ggo_hu + (solid_hu - ggo_hu) * oc
            occ_sum += o
            val_sum += o * v
        occ = occ_sum / nsub
        if occ.max() < 1e-3:
            continue
        val = val_sum / np.maximum(occ_sum / nsub, 1e-9) / nsub
        bg = box[kk]
        # the lesion replaces lung (and chest-wall fat for masses); brighter structures
        # inside (vessels through ground glass, ribs) stay; nothing drawn outside the body
        target = np.maximum(bg, val)
        new = bg * (1 - occ) + target * occ + noise[kk] * occ
        box[kk] = np.where(body[kk], new, bg)
    # truth on the continuous shape, at the slice centres
    slice_z = np.arange(hu.shape[0]) * s.sz
    long, short, _ = truth_size(shape, cm, slice_z)
    diam = round((long + short) / 2, 1)
    solid_d = None
    if kind == "part_solid":
        cl, cs, _ = truth_size(core, cm + core_off, slice_z)
        solid_d = round((cl + cs) / 2, 1)
    return {
        "kind": kind,
        "diameter_mm": diam,
        "long_axis_mm": round(long, 2),
        "short_axis_mm": round(short, 2),
        "solid_component_mm": solid_d,
        "nominal_mm": d,
        "centre_lps_mm": s.voxel_to_lps(list(centre_vox)),
        "lung_rads": lung_rads(kind, diam, solid_d),
    }


# ----------------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------------

def match(findings, truths):
    """Greedy nearest matching: a finding matches a truth whose centre is within
    max(0.5·d, 4 mm) + 2.5 mm (half a 5 mm slice) of the finding's centre."""
    pairs = []
    for ti, t in enumerate(truths):
        tc = np.array(t["centre_lps_mm"])
        tol = max(0.5 * t["diameter_mm"], 4.0) + 2.5
        for fi, f in enumerate(findings):
            dd = float(np.linalg.norm(np.array(f["center_lps_mm"]) - tc))
            if dd <= tol:
                pairs.append((dd, ti, fi))
    pairs.sort()
    used_t, used_f, out = set(), set(), {}
    for dd, ti, fi in pairs:
        if ti in used_t or fi in used_f:
            continue
        used_t.add(ti)
        used_f.add(fi)
        out[ti] = (fi, dd)
    return out


def finding_size(f):
    return f["diameter_mm"]


def summarise(cases):
    rows = []
    n_unmatched = 0
    for c in cases:
        m = match(c["findings"], c["truth"])
        matched_f = {fi for fi, _ in m.values()}
        # a finding on the same lesion as a matched one (a second measurement of it)
        # is not an extra finding elsewhere; everything else is unmatched
        n_unmatched += sum(1 for i in range(len(c["findings"])) if i not in matched_f)
        for ti, t in enumerate(c["truth"]):
            row = dict(t, background=c["background"], case=c["case"], found=ti in m)
            if ti in m:
                f = c["findings"][m[ti][0]]
                row.update(
                    found_id=f["id"], found_type=f["type"], found_kind=f["kind"],
                    found_type_model=(f.get("type_model") or {}).get("top"),
                    found_diameter_mm=finding_size(f),
                    found_solid_mm=f.get("solid_component_mm"),
                    found_lung_rads=f["lung_rads"], distance_mm=round(m[ti][1], 2),
                    size_error_mm=round(finding_size(f) - t["diameter_mm"], 2),
                )
            rows.append(row)
    return rows, n_unmatched


def base_category(r):
    """The reported category without the 4X modifier: 4X stands on a 3 or 4
    category, which the reported size, type and solid part give."""
    if r["found_lung_rads"] != "4X":
        return r["found_lung_rads"]
    t = {"solid": "solid", "part_solid": "part_solid", "ground_glass": "ground_glass"}.get(r["found_type"], "solid")
    return lung_rads(t, r["found_diameter_mm"], r.get("found_solid_mm"))


def group_metrics(rows, cases, n_unmatched):
    def sens(sel):
        s = [r for r in rows if sel(r)]
        return (sum(r["found"] for r in s) / len(s) if s else None, len(s))

    def is_sub(r):
        return r["kind"] in ("part_solid", "ground_glass")

    def frac(flags):
        return (sum(flags) / len(flags) if flags else None, len(flags))

    inserted = [r for r in rows if r.get("where") != "annotated"]
    found = [r for r in rows if r["found"]]
    errs = sorted(abs(r["size_error_mm"]) for r in found if r["kind"] != "mass")
    rads = [r for r in found if r["kind"] != "mass"]
    typed = [r for r in rows if r["found"] and r["kind"] in ("solid", "part_solid", "ground_glass")]
    agree = sum(r["found_lung_rads"] == r["lung_rads"] for r in rads)
    # The category that the measured size and type give (the X modifier for
    # suspicious features aside: the generator draws none, the model may see some)
    agree_base = sum(base_category(r) == r["lung_rads"] for r in rads)
    out = {
        "scans": len(cases),
        "lesions": len(rows),
        "sensitivity_solid_ge6": sens(lambda r: r["kind"] == "solid" and r["nominal_mm"] >= 6),
        "sensitivity_solid_lt6": sens(lambda r: r["kind"] == "solid" and r["nominal_mm"] < 6),
        "sensitivity_subsolid_ge10": sens(lambda r: is_sub(r) and r["nominal_mm"] >= 10),
        "sensitivity_subsolid_lt10": sens(lambda r: is_sub(r) and r["nominal_mm"] < 10),
        "sensitivity_part_solid_ge10": sens(lambda r: r["kind"] == "part_solid" and r["nominal_mm"] >= 10),
        "sensitivity_ground_glass_ge10": sens(lambda r: r["kind"] == "ground_glass" and r["nominal_mm"] >= 10),
        "sensitivity_mass_ge30": sens(lambda r: r["kind"] == "mass"),
        "sensitivity_juxtapleural": sens(lambda r: r.get("where") == "juxtapleural"),
        "sensitivity_juxtavascular": sens(lambda r: r.get("where") == "juxtavascular"),
        "unmatched_per_scan": n_unmatched / max(len(cases), 1),
        "median_size_error_mm": float(np.median(errs)) if errs else None,
        "lung_rads_agreement": agree_base / len(rads) if rads else None,
        "lung_rads_agreement_exact_incl_4x": agree / len(rads) if rads else None,
        "lung_rads_n": len(rads),
        # nodule type of the nodules found: the report's (measured solid
        # component, which Lung-RADS uses) and the classifier's type output
        "type_right_measured": frac([r["found_type"] == r["kind"] for r in typed]),
        "type_right_model": frac([r["found_type_model"] == r["kind"] for r in typed]),
        "inserted": len(inserted),
    }
    return out


def markdown(result):
    """The figures as the Markdown table of the README."""
    def cell(m, k, pct=True):
        v = m[k]
        if isinstance(v, (list, tuple)):
            if v[1] == 0:
                return "–"
            return f"{round(v[0] * v[1])}/{v[1]} = {v[0] * 100:.0f} %"
        if v is None:
            return "–"
        return f"{v * 100:.0f} %" if pct else f"{v:.2f}"
    rows = [
        ("solid nodules ≥ 6 mm found", "sensitivity_solid_ge6", True, "≥ 95 %"),
        ("part-solid + ground-glass ≥ 10 mm found", "sensitivity_subsolid_ge10", True, "≥ 90 %"),
        ("  of which part-solid", "sensitivity_part_solid_ge10", True, ""),
        ("  of which ground glass", "sensitivity_ground_glass_ge10", True, ""),
        ("masses ≥ 30 mm found (chest-wall and the real ones)", "sensitivity_mass_ge30", True, "100 %"),
        ("juxtapleural nodules found", "sensitivity_juxtapleural", True, ""),
        ("juxtavascular nodules found", "sensitivity_juxtavascular", True, ""),
        ("solid < 6 mm / subsolid < 10 mm found", None, True, ""),
        ("unmatched findings per scan", "unmatched_per_scan", False, "≤ 1"),
        ("median size error, nodules found (mm)", "median_size_error_mm", False, "≤ 1.5"),
        ("Lung-RADS right (size and type; 4X counted by its base category)", "lung_rads_agreement", True, "≥ 90 %"),
        ("Lung-RADS right, exact incl. 4X", "lung_rads_agreement_exact_incl_4x", True, ""),
        ("nodule type right: measured (used) / classifier output", None, True, ""),
    ]
    cols = ["all", "lung2", "lung1"]
    out = ["| | all (20 scans) | **lung2, not in training** (10) | lung1, in training (10) | goal |", "|---|---|---|---|---|"]
    for label, k, pct, goal in rows:
        if k is None and label.startswith("nodule type"):
            vals = [f"{cell(result[c], 'type_right_measured')} / {cell(result[c], 'type_right_model')}" for c in cols]
        elif k is None:
            vals = [f"{cell(result[c], 'sensitivity_solid_lt6')} / {cell(result[c], 'sensitivity_subsolid_lt10')}" for c in cols]
        else:
            vals = [cell(result[c], k, pct) for c in cols]
        out.append(f"| {label} | " + " | ".join(vals) + f" | {goal} |")
    return "\n".join(out) + "\n"


def goals_met(m):
    v = lambda k: m[k][0] if isinstance(m[k], (list, tuple)) else m[k]
    return {
        "sensitivity_solid_ge6": v("sensitivity_solid_ge6") >= GOALS["sensitivity_solid_ge6"],
        "sensitivity_subsolid_ge10": v("sensitivity_subsolid_ge10") >= GOALS["sensitivity_subsolid_ge10"],
        "sensitivity_mass_ge30": v("sensitivity_mass_ge30") >= GOALS["sensitivity_mass_ge30"],
        "unmatched_per_scan": m["unmatched_per_scan"] <= GOALS["unmatched_per_scan_max"],
        "median_size_error_mm": (m["median_size_error_mm"] or 99) <= GOALS["median_size_error_mm_max"],
        "lung_rads_agreement": (m["lung_rads_agreement"] or 0) >= GOALS["lung_rads_agreement_min"],
    }


def check_floors(m):
    fails = []

    def val(k):
        v = m[k]
        return v[0] if isinstance(v, (list, tuple)) else v

    if val("sensitivity_solid_ge6") < FLOORS["sensitivity_solid_ge6"]:
        fails.append("solid >= 6 mm sensitivity")
    if val("sensitivity_subsolid_ge10") < FLOORS["sensitivity_subsolid_ge10"]:
        fails.append("subsolid >= 10 mm sensitivity")
    if val("sensitivity_mass_ge30") < FLOORS["sensitivity_mass_ge30"]:
        fails.append("mass sensitivity")
    if m["unmatched_per_scan"] > FLOORS["unmatched_per_scan_max"]:
        fails.append("unmatched findings per scan")
    if (m["median_size_error_mm"] or 99) > FLOORS["median_size_error_mm_max"]:
        fails.append("median size error")
    if (m["lung_rads_agreement"] or 0) < FLOORS["lung_rads_agreement_min"]:
        fails.append("Lung-RADS agreement")
    return fails


# ----------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------

def annotated_truth(bg, s):
    t = json.load(open(os.path.join(ROOT, BACKGROUNDS[bg][1])))
    out = []
    for les in t["lesions"]:
        d = les["max_inplane_diameter_mm"]
        kind = "mass" if d > 30 else "solid"
        out.append({
            "kind": kind, "where": "annotated", "diameter_mm": round(d, 1), "nominal_mm": d,
            "long_axis_mm": d, "short_axis_mm": None, "solid_component_mm": None,
            "centre_lps_mm": les["centroid_lps_mm"], "lung_rads": lung_rads(kind, d),
            "bbox_min": les["bbox_voxel_min_xyz"], "bbox_max": les["bbox_voxel_max_xyz"],
        })
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ct-triage", default=os.path.join(ROOT, "target/release/ct-triage"))
    ap.add_argument("--work", default=os.path.join(ROOT, "target/insertion"))
    ap.add_argument("--out", default=None, help="write the metrics and per-lesion rows (JSON)")
    ap.add_argument("--seed", type=int, default=20261201)
    ap.add_argument("--check", action="store_true", help="exit 1 when a floor is not met")
    ap.add_argument("--only", default=None, help="comma-separated case ids (debugging)")
    ap.add_argument("--explain", action="store_true", help="run ct-triage analyze --explain (candidate lists in the reports)")
    ap.add_argument("--reuse", action="store_true", help="reuse written cases (same seed)")
    args = ap.parse_args()

    t0 = time.time()
    series = {bg: Series(os.path.join(ROOT, BACKGROUNDS[bg][0])) for bg in BACKGROUNDS}
    anat = {bg: Anatomy(series[bg]) for bg in BACKGROUNDS}
    plan = plan_cases(args.seed)
    cases = []
    for ci, (bg, items) in enumerate(plan):
        case_id = f"c{ci:02d}-{bg}"
        if args.only and case_id not in args.only.split(","):
            continue
        s, a = series[bg], anat[bg]
        rng = np.random.default_rng([args.seed, ci])
        hu = s.hu.copy()
        truth = annotated_truth(bg, s)
        taken = []
        for t in truth:
            lo = np.array(t["bbox_min"]) * [s.sx, s.sy, s.sz]
            hi = np.array(t["bbox_max"]) * [s.sx, s.sy, s.sz]
            taken.append(((lo + hi) / 2, float(np.linalg.norm(hi - lo)) / 2 + 10.0))
        for kind, where, d in items:
            c = place(a, s, rng, kind, where, d, taken)
            if c is None:
                print(f"{case_id}: no place for {kind} {where} {d} mm", file=sys.stderr)
                continue
            rec = render(hu, a, s, rng, kind, d, c, a.noise_sd)
            rec["where"] = where
            if where == "juxtapleural":
                rec["lung_rads"] = lung_rads(kind, rec["diameter_mm"], None, juxtapleural_smooth=True)
            truth.append(rec)
            cm = np.array([c[0] * s.sx, c[1] * s.sy, c[2] * s.sz])
            taken.append((cm, d / 2))
        folder = os.path.join(args.work, case_id, "dicom")
        out = os.path.join(args.work, case_id, "out")
        if not (args.reuse and os.path.isdir(folder)):
            s.write(hu, folder, case_id)
        cmd = [args.ct_triage, "analyze", folder, "--out", out, "--quiet"] + (["--explain"] if args.explain else [])
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode not in (0, 3):
            print(p.stderr, file=sys.stderr)
            raise SystemExit(f"{case_id}: ct-triage exited {p.returncode}")
        rep = json.load(open(os.path.join(out, "report.json")))
        cases.append({"case": case_id, "background": bg, "truth": truth,
                      "findings": rep["findings"], "priority": rep["exam"]["triage_priority"],
                      "exam_lung_rads": rep["exam"].get("lung_rads"),
                      "candidates": rep.get("candidates", {})})
        json.dump(truth, open(os.path.join(args.work, case_id, "truth.json"), "w"), indent=1)
        print(f"{case_id}: {len(truth)} lesions, {len(rep['findings'])} findings, "
              f"{rep['exam']['triage_priority']}", file=sys.stderr)

    rows, n_unmatched = summarise(cases)
    result = {"all": group_metrics(rows, cases, n_unmatched)}
    for bg in BACKGROUNDS:
        cs = [c for c in cases if c["background"] == bg]
        r, u = summarise(cs)
        result[bg] = group_metrics(r, cs, u)
        result[bg]["used_in_training"] = BACKGROUNDS[bg][2]
    result["noise_sd_hu"] = {bg: round(anat[bg].noise_sd, 1) for bg in BACKGROUNDS}
    result["seconds"] = round(time.time() - t0, 1)
    result["floors"] = FLOORS
    result["goals"] = GOALS
    result["goals_met"] = goals_met(result["all"])
    print(json.dumps(result, indent=1))
    if args.out:
        with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
            f.write(markdown(result))
        json.dump({"metrics": result, "lesions": rows,
                   "cases": [{k: c[k] for k in ("case", "background", "priority", "exam_lung_rads")}
                             for c in cases]},
                  open(args.out, "w"), indent=1)
    missed = [r for r in rows if not r["found"]]
    for r in missed:
        print(f"missed: {r['case']} {r['kind']} {r.get('where')} {r['nominal_mm']} mm "
              f"at {np.round(r['centre_lps_mm'], 1).tolist()}", file=sys.stderr)
    if args.check:
        fails = check_floors(result["all"])
        if fails:
            print("floors not met: " + "; ".join(fails), file=sys.stderr)
            raise SystemExit(1)


if __name__ == "__main__":
    main()
