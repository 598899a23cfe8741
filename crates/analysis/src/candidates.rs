//! Stage 5 of 11 — candidates: three detection channels inside the lung region, each
//! with its own budget, so that one kind of structure can never crowd out
//! another.
//!
//! | channel | finds | how | budget (default) |
//! |---|---|---|---|
//! | [`Channel::Solid`] | solid nodules 3–30 mm | scale-space minima of the difference of Gaussians (DoG, a scale-normalised Laplacian of Gaussian) of the lung region clamped to [−1000, 100] HU; 3–7 mm on the 1 mm grid, larger on a 2 mm grid; ranked by strength × shape, so that vessels (tubes) rank below blobs | 80 |
//! | [`Channel::Subsolid`] | ground-glass and part-solid nodules ≥ 8 mm | the same DoG on an image where everything above −250 HU is clamped to −250 and structures thinner than 6 mm (vessels) are removed by a grey opening, so a ground-glass nodule (a few hundred HU above lung) competes with nothing brighter; kept when the mean attenuation at its centre is subsolid (−800 to −200 HU) | 32 |
//! | [`Channel::Mass`] | masses 30–100 mm | soft-tissue components (> −300 HU) of the region with an equivalent diameter ≥ 30 mm, and DoG minima at 17–50 mm blob radius on a 4 mm grid | 8 |
//!
//! Everything outside the (closed) lung region is set to air, so juxtapleural
//! nodules stand out against the "outside" like any other blob. Within a
//! channel candidates are thinned by non-maximum suppression and ranked by
//! strength; up to [`LARGE_RESERVE`] candidates of 10 mm radius or more beyond
//! the budget are kept as well; what still falls beyond it is counted and kept
//! in [`Detection::dropped`], so the triage stage can say
//! that something was not examined. A channel's budget never goes to another.

use ndarray::{Array3, Axis, s};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::imgproc::{downsample2, gaussian3};
use crate::lungs::LungMasks;
use crate::progress::{Progress, Stage};
use crate::volume::Volume;

/// Options of the candidate stage. Defaults are documented per field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateOptions {
    /// Budget of the solid channel (candidates passed to the classifier). Default 80.
    pub solid_budget: usize,
    /// Budget of the subsolid (ground-glass, part-solid) channel. Default 32.
    pub subsolid_budget: usize,
    /// Budget of the mass channel. Default 8.
    pub mass_budget: usize,
    /// Minimum blob strength of the solid channel: −DoG in HU at the blob's scale. Default 12.
    pub min_response: f32,
    /// Minimum blob strength of the subsolid channel (HU). Default 6.
    pub subsolid_min_response: f32,
    /// Equivalent diameter (mm) above which a soft-tissue component is a mass candidate. Default 30 mm.
    pub mass_min_diameter_mm: f64,
}

impl Default for CandidateOptions {
    fn default() -> Self {
        CandidateOptions {
            solid_budget: 80,
            subsolid_budget: 32,
            mass_budget: 8,
            min_response: 12.0,
            subsolid_min_response: 6.0,
            mass_min_diameter_mm: 30.0,
        }
    }
}

impl CandidateOptions {
    /// The budget of one channel.
    pub fn budget(&self, c: Channel) -> usize {
        match c {
            Channel::Solid => self.solid_budget,
            Channel::Subsolid => self.subsolid_budget,
            Channel::Mass => self.mass_budget,
        }
    }
}

/// The detection channel that found a candidate.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Solid nodules (DoG of the lung region, 3–30 mm).
    #[default]
    Solid,
    /// Ground-glass and part-solid nodules (DoG of the vessel-free, clamped image).
    Subsolid,
    /// Masses 30–100 mm (soft-tissue components and very coarse DoG).
    Mass,
}

impl Channel {
    /// All channels, in report order.
    pub const ALL: [Channel; 3] = [Channel::Solid, Channel::Subsolid, Channel::Mass];

    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Solid => "solid",
            Channel::Subsolid => "subsolid",
            Channel::Mass => "mass",
        }
    }
}

/// A candidate location on the resampled grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Continuous voxel index `[x, y, z]` on the resampled (isotropic) grid.
    pub center_xyz: [f64; 3],
    /// Estimated radius in mm (from the blob scale, or the component volume).
    pub radius_mm: f64,
    /// Detector strength: −DoG (HU) for blobs, the equivalent diameter (mm) for
    /// soft-tissue components.
    pub response: f32,
    /// Shape of the DoG minimum: smallest over largest eigenvalue of its Hessian,
    /// 1 for a sphere, near 0 for a tube (a vessel), 1 for components.
    pub blobness: f32,
    /// The channel that found it.
    pub channel: Channel,
}

/// What one channel found and what its budget left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChannelSummary {
    /// The channel.
    pub channel: Channel,
    /// Candidates after non-maximum suppression, counted up to the budget + 16.
    pub found: usize,
    /// Candidates passed on: the budget, plus up to [`LARGE_RESERVE`] large ones.
    pub kept: usize,
    /// The budget.
    pub budget: usize,
}

/// The candidate stage's output.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// The candidates passed to the classifier, channel by channel, strongest first.
    pub candidates: Vec<Candidate>,
    /// Per-channel counts.
    pub channels: Vec<ChannelSummary>,
    /// The candidates that the budgets left out, strongest first (at most 16 per channel).
    pub dropped: Vec<Candidate>,
}

/// Candidates of 10 mm radius or more a channel keeps beyond its budget.
pub const LARGE_RESERVE: usize = 4;

/// The DoG scales, in mm: Gaussian sigmas; DoG i uses sigmas i and i+1.
/// Fine scales (1 mm grid): blob radii ≈ 2–3 mm (3–6 mm nodules).
const SIGMAS_FINE: [f32; 3] = [1.0, 1.414, 2.0];
/// Coarse scales (2 mm grid): blob radii ≈ 4–17 mm.
const SIGMAS_COARSE: [f32; 6] = [2.0, 2.828, 4.0, 5.657, 8.0, 11.314];
/// Subsolid scales (2 mm grid): blob radii ≈ 4–17 mm (8–30 mm nodules).
const SIGMAS_SUBSOLID: [f32; 5] = [2.828, 4.0, 5.657, 8.0, 11.314];
/// Mass scales (4 mm grid): blob radii ≈ 17–33 mm.
const SIGMAS_MASS: [f32; 4] = [8.0, 11.314, 16.0, 22.627];

impl Detection {
    /// No candidates (the input could not be analysed).
    pub fn empty(opts: &CandidateOptions) -> Self {
        Detection {
            candidates: Vec::new(),
            channels: Channel::ALL
                .iter()
                .map(|&c| ChannelSummary {
                    channel: c,
                    found: 0,
                    kept: 0,
                    budget: opts.budget(c),
                })
                .collect(),
            dropped: Vec::new(),
        }
    }
}

/// Detect candidates in the lung region of an isotropic volume.
pub fn detect(
    iso: &Volume,
    lungs: &LungMasks,
    opts: &CandidateOptions,
    progress: &dyn Progress,
) -> Result<Detection> {
    let sp = iso.geometry.spacing[0];
    let empty = || Detection::empty(opts);
    let Some((z0, z1)) = lungs.z_range else {
        return Ok(empty());
    };
    // Bounding box of the lung region, with a margin.
    let (nz, ny, nx) = iso.hu.dim();
    let (mut y0, mut y1, mut x0, mut x1) = (ny, 0, nx, 0);
    for k in z0..=z1 {
        for ((j, i), &l) in lungs.region.index_axis(Axis(0), k).indexed_iter() {
            if l != 0 {
                y0 = y0.min(j);
                y1 = y1.max(j);
                x0 = x0.min(i);
                x1 = x1.max(i);
            }
        }
    }
    if y1 < y0 {
        return Ok(empty());
    }
    let m = (16.0 / sp).ceil() as usize;
    let (bz0, bz1) = (z0.saturating_sub(m), (z1 + m).min(nz - 1));
    let (by0, by1) = (y0.saturating_sub(m), (y1 + m).min(ny - 1));
    let (bx0, bx1) = (x0.saturating_sub(m), (x1 + m).min(nx - 1));
    let hu = iso.hu.slice(s![bz0..=bz1, by0..=by1, bx0..=bx1]);
    let reg = lungs.region.slice(s![bz0..=bz1, by0..=by1, bx0..=bx1]);
    let mut v = Array3::<f32>::zeros(hu.dim());
    ndarray::Zip::from(&mut v)
        .and(&hu)
        .and(&reg)
        .par_for_each(|o, &h, &r| {
            *o = if r != 0 {
                (h as f32).clamp(-1000.0, 100.0)
            } else {
                -1000.0
            }
        });
    if progress.is_cancelled() {
        return Err(Error::Cancelled);
    }
    let offset = [bx0 as f64, by0 as f64, bz0 as f64];
    let mut found = Vec::new();
    // Solid channel, fine scales on the 1 mm grid.
    found.extend(dog_extrema(
        &v,
        &SIGMAS_FINE.map(|s| s / sp as f32),
        1.0,
        opts.min_response,
        &reg.to_owned(),
        Channel::Solid,
    ));
    progress.progress(Stage::Candidates, 0.4);
    if progress.is_cancelled() {
        return Err(Error::Cancelled);
    }
    // Solid channel, coarse scales on a 2 mm grid.
    let v2 = downsample2(&v);
    let reg2 = downsample_labels(&reg.view(), v2.dim());
    for mut c in dog_extrema(
        &v2,
        &SIGMAS_COARSE.map(|s| s / (2.0 * sp as f32)),
        2.0,
        opts.min_response,
        &reg2,
        Channel::Solid,
    ) {
        c.center_xyz = c.center_xyz.map(|x| x * 2.0 + 0.5);
        found.push(c);
    }
    progress.progress(Stage::Candidates, 0.6);
    if progress.is_cancelled() {
        return Err(Error::Cancelled);
    }
    // Subsolid channel on the 2 mm grid: clamp at −250 HU, remove thin bright structures.
    let w2 = grey_open1(&v2.mapv(|x| x.min(-250.0)));
    for mut c in dog_extrema(
        &w2,
        &SIGMAS_SUBSOLID.map(|s| s / (2.0 * sp as f32)),
        2.0,
        opts.subsolid_min_response,
        &reg2,
        Channel::Subsolid,
    ) {
        let mean = mean_in_ball(&v2, c.center_xyz, 0.6 * c.radius_mm / 2.0);
        if !(-800.0..=-200.0).contains(&mean) {
            continue;
        }
        c.center_xyz = c.center_xyz.map(|x| x * 2.0 + 0.5);
        found.push(c);
    }
    progress.progress(Stage::Candidates, 0.75);
    // Mass channel: soft-tissue components (2 mm grid) and very coarse DoG (4 mm grid).
    for mut c in masses(
        &v2.view(),
        &reg2.view(),
        2.0 * sp,
        opts.mass_min_diameter_mm,
    ) {
        c.center_xyz = c.center_xyz.map(|x| x * 2.0 + 0.5);
        found.push(c);
    }
    let v4 = downsample2(&v2);
    let reg4 = downsample_labels(&reg2.view(), v4.dim());
    for mut c in dog_extrema(
        &v4,
        &SIGMAS_MASS.map(|s| s / (4.0 * sp as f32)),
        4.0,
        opts.min_response,
        &reg4,
        Channel::Mass,
    ) {
        // A mass is soft tissue at its centre.
        if mean_in_ball(&v4, c.center_xyz, 0.5 * c.radius_mm / 4.0) < -300.0 {
            continue;
        }
        c.center_xyz = c.center_xyz.map(|x| x * 4.0 + 1.5);
        found.push(c);
    }
    // To the full grid, radius to mm.
    for c in &mut found {
        for (v, o) in c.center_xyz.iter_mut().zip(offset) {
            *v += o;
        }
        c.radius_mm *= sp;
    }
    let mut out = Detection {
        candidates: Vec::new(),
        channels: Vec::new(),
        dropped: Vec::new(),
    };
    for ch in Channel::ALL {
        let mine: Vec<Candidate> = found.iter().filter(|c| c.channel == ch).cloned().collect();
        let budget = opts.budget(ch);
        let thinned = suppress(mine, sp, budget + 16);
        // The budget goes by rank; on top of it, up to LARGE_RESERVE candidates of
        // 10 mm radius or more that the budget left out are kept too, so that a
        // low-contrast large lesion is never left out by many small strong blobs.
        let (mut kept, mut dropped, mut extra) = (Vec::new(), Vec::new(), 0);
        for (rank, c) in thinned.into_iter().enumerate() {
            if rank < budget {
                kept.push(c);
            } else if c.radius_mm >= 10.0 && extra < LARGE_RESERVE {
                extra += 1;
                kept.push(c);
            } else {
                dropped.push(c);
            }
        }
        out.channels.push(ChannelSummary {
            channel: ch,
            found: kept.len() + dropped.len(),
            kept: kept.len(),
            budget,
        });
        out.candidates.extend(kept);
        out.dropped.extend(dropped.into_iter().take(16));
    }
    progress.progress(Stage::Candidates, 1.0);
    Ok(out)
}

/// Nearest-neighbour downsampling of a label volume to `dim` (factor 2).
fn downsample_labels(reg: &ndarray::ArrayView3<u8>, dim: (usize, usize, usize)) -> Array3<u8> {
    let (a, b, c) = dim;
    let (rz, ry, rx) = reg.dim();
    Array3::from_shape_fn((a, b, c), |(k, j, i)| {
        reg[[
            (2 * k).min(rz - 1),
            (2 * j).min(ry - 1),
            (2 * i).min(rx - 1),
        ]]
    })
}

/// Grey-level opening with a 3×3×3 cube (erosion then dilation): removes bright
/// structures thinner than 3 voxels, keeps broader ones.
fn grey_open1(v: &Array3<f32>) -> Array3<f32> {
    let ero = cube_filter(v, f32::min);
    cube_filter(&ero, f32::max)
}

/// Separable 3×3×3 min or max filter (borders clamp).
fn cube_filter(v: &Array3<f32>, op: fn(f32, f32) -> f32) -> Array3<f32> {
    let (nz, ny, nx) = v.dim();
    let mut a = v.clone();
    for axis in 0..3 {
        let src = a.clone();
        let n = [nz, ny, nx][axis];
        a.axis_iter_mut(Axis(0))
            .into_par_iter()
            .enumerate()
            .for_each(|(k, mut plane)| {
                for ((j, i), o) in plane.indexed_iter_mut() {
                    let idx = [k, j, i];
                    let c = idx[axis];
                    let mut r = src[[k, j, i]];
                    for d in [c.wrapping_sub(1), c + 1] {
                        if d < n {
                            let mut q = idx;
                            q[axis] = d;
                            r = op(r, src[[q[0], q[1], q[2]]]);
                        }
                    }
                    *o = r;
                }
            });
    }
    a
}

/// Mean of `v` over the voxels within `r` voxels of `c` (`[x, y, z]`), at least the centre voxel.
fn mean_in_ball(v: &Array3<f32>, c: [f64; 3], r: f64) -> f32 {
    let (nz, ny, nx) = v.dim();
    let r = r.max(0.5);
    let ri = r.ceil() as isize;
    let (ci, cj, ck) = (
        c[0].round() as isize,
        c[1].round() as isize,
        c[2].round() as isize,
    );
    let (mut sum, mut n) = (0f64, 0usize);
    for dk in -ri..=ri {
        for dj in -ri..=ri {
            for di in -ri..=ri {
                if ((dk * dk + dj * dj + di * di) as f64) > r * r {
                    continue;
                }
                let (k, j, i) = (ck + dk, cj + dj, ci + di);
                if k < 0
                    || j < 0
                    || i < 0
                    || k >= nz as isize
                    || j >= ny as isize
                    || i >= nx as isize
                {
                    continue;
                }
                sum += v[[k as usize, j as usize, i as usize]] as f64;
                n += 1;
            }
        }
    }
    if n == 0 {
        -1000.0
    } else {
        (sum / n as f64) as f32
    }
}

/// Scale-space minima of DoG below −`min_response`. Returns centres in the
/// grid's voxel coordinates and radius in grid voxels × `voxel_mm` … in voxels of the 1 mm grid.
fn dog_extrema(
    v: &Array3<f32>,
    sigmas_vox: &[f32],
    voxel_scale: f64,
    min_response: f32,
    region: &Array3<u8>,
    channel: Channel,
) -> Vec<Candidate> {
    // Gaussian scale space built incrementally: G(σ_i+1) = G(σ_i) ∗ g(√(σ_i+1² − σ_i²)),
    // so each level needs only the narrower difference kernel.
    let mut gs: Vec<Array3<f32>> = Vec::with_capacity(sigmas_vox.len());
    let mut prev_sigma = 0f32;
    for &s in sigmas_vox {
        let inc = (s * s - prev_sigma * prev_sigma).max(0.0).sqrt();
        let next = gaussian3(gs.last().unwrap_or(v), [inc; 3]);
        gs.push(next);
        prev_sigma = s;
    }
    let dogs: Vec<Array3<f32>> = gs.windows(2).map(|w| &w[1] - &w[0]).collect();
    drop(gs);
    let (nz, ny, nx) = v.dim();
    let mut out = Vec::new();
    for (si, d) in dogs.iter().enumerate() {
        // Effective sigma of DoG(σ_i, σ_i+1): geometric mean; blob radius ≈ σ·√3.
        let sigma = (sigmas_vox[si] * sigmas_vox[si + 1]).sqrt();
        let radius = sigma as f64 * 3f64.sqrt() * voxel_scale;
        let found: Vec<Candidate> = (1..nz.saturating_sub(1))
            .into_par_iter()
            .flat_map_iter(|k| {
                let mut local = Vec::new();
                for j in 1..ny - 1 {
                    for i in 1..nx - 1 {
                        let c = d[[k, j, i]];
                        if c > -min_response || region[[k, j, i]] == 0 {
                            continue;
                        }
                        if !is_local_min(d, k, j, i, c) {
                            continue;
                        }
                        // scale-space: not weaker than the neighbouring scales at this voxel
                        if si > 0 && dogs[si - 1][[k, j, i]] < c {
                            continue;
                        }
                        if si + 1 < dogs.len() && dogs[si + 1][[k, j, i]] < c {
                            continue;
                        }
                        let h = ((sigma * 0.5).round() as usize).max(1);
                        let blobness = blobness(d, k, j, i, h);
                        local.push(Candidate {
                            center_xyz: [i as f64, j as f64, k as f64],
                            radius_mm: radius,
                            response: -c,
                            blobness,
                            channel,
                        });
                    }
                }
                local
            })
            .collect();
        out.extend(found);
    }
    out
}

#[inline]
fn is_local_min(d: &Array3<f32>, k: usize, j: usize, i: usize, c: f32) -> bool {
    for dk in 0..3 {
        for dj in 0..3 {
            for di in 0..3 {
                if dk == 1 && dj == 1 && di == 1 {
                    continue;
                }
                let v = d[[k + dk - 1, j + dj - 1, i + di - 1]];
                // strict on one side so plateaus yield one voxel
                if v < c || (v == c && (dk, dj, di) < (1, 1, 1)) {
                    return false;
                }
            }
        }
    }
    true
}

/// Soft-tissue components (> −300 HU) inside the lung region with an
/// equivalent diameter above `min_d` mm.
fn masses(
    hu: &ndarray::ArrayView3<f32>,
    region: &ndarray::ArrayView3<u8>,
    sp: f64,
    min_d: f64,
) -> Vec<Candidate> {
    let mut tissue = Array3::<bool>::from_elem(hu.dim(), false);
    ndarray::Zip::from(&mut tissue)
        .and(hu)
        .and(region)
        .par_for_each(|t, &h, &r| *t = r != 0 && h > -300.0);
    let structure = Array3::from_shape_fn((3, 3, 3), |(a, b, c)| {
        (a as i32 - 1).abs() + (b as i32 - 1).abs() + (c as i32 - 1).abs() <= 1
    });
    let (labels, n) = ndarray_ndimage::label::<u32>(&tissue, &structure);
    let mut acc = vec![(0usize, 0f64, 0f64, 0f64); n + 1];
    for ((k, j, i), &l) in labels.indexed_iter() {
        if l != 0 {
            let a = &mut acc[l as usize];
            a.0 += 1;
            a.1 += i as f64;
            a.2 += j as f64;
            a.3 += k as f64;
        }
    }
    let voxel_mm3 = sp * sp * sp;
    acc.iter()
        .skip(1)
        .filter_map(|&(cnt, sx, sy, sz)| {
            let vol = cnt as f64 * voxel_mm3;
            let d = (6.0 * vol / std::f64::consts::PI).cbrt();
            (d >= min_d && d <= 120.0).then(|| Candidate {
                center_xyz: [sx / cnt as f64, sy / cnt as f64, sz / cnt as f64],
                // in voxels of the 1 mm-spacing grid (`detect` multiplies by the spacing)
                radius_mm: d / 2.0 / (sp / 2.0),
                response: d as f32,
                blobness: 1.0,
                channel: Channel::Mass,
            })
        })
        .collect()
}

impl Candidate {
    /// The rank within a channel: strength weighted by shape,
    /// `response × min(1, 2 × blobness)` — a sphere keeps its full strength, a
    /// vessel (blobness ≈ 0.1) a fifth of it, so that the vessel maxima of a
    /// real lung, which are stronger blobs than most nodules, cannot take a
    /// channel's budget.
    pub fn rank(&self) -> f32 {
        self.response * (2.0 * self.blobness).min(1.0)
    }
}

/// Smallest over largest eigenvalue of the Hessian of `d` at a minimum (central
/// differences with step `h` voxels), clamped to [0, 1].
fn blobness(d: &Array3<f32>, k: usize, j: usize, i: usize, h: usize) -> f32 {
    let (nz, ny, nx) = d.dim();
    let h = h
        .min(k)
        .min(j)
        .min(i)
        .min(nz - 1 - k)
        .min(ny - 1 - j)
        .min(nx - 1 - i);
    if h == 0 {
        return 0.0;
    }
    let at = |dk: isize, dj: isize, di: isize| {
        d[[
            (k as isize + dk * h as isize) as usize,
            (j as isize + dj * h as isize) as usize,
            (i as isize + di * h as isize) as usize,
        ]] as f64
    };
    let c = at(0, 0, 0);
    let hh = (h * h) as f64;
    let dzz = (at(1, 0, 0) - 2.0 * c + at(-1, 0, 0)) / hh;
    let dyy = (at(0, 1, 0) - 2.0 * c + at(0, -1, 0)) / hh;
    let dxx = (at(0, 0, 1) - 2.0 * c + at(0, 0, -1)) / hh;
    let dzy = (at(1, 1, 0) - at(1, -1, 0) - at(-1, 1, 0) + at(-1, -1, 0)) / (4.0 * hh);
    let dzx = (at(1, 0, 1) - at(1, 0, -1) - at(-1, 0, 1) + at(-1, 0, -1)) / (4.0 * hh);
    let dyx = (at(0, 1, 1) - at(0, 1, -1) - at(0, -1, 1) + at(0, -1, -1)) / (4.0 * hh);
    let ev = sym3_eigenvalues([[dzz, dzy, dzx], [dzy, dyy, dyx], [dzx, dyx, dxx]]);
    let (lo, hi) = (ev[0], ev[2]);
    if hi <= 0.0 {
        return 0.0;
    }
    (lo / hi).clamp(0.0, 1.0) as f32
}

/// Eigenvalues of a symmetric 3×3 matrix, ascending (trigonometric closed form).
fn sym3_eigenvalues(a: [[f64; 3]; 3]) -> [f64; 3] {
    let p1 = a[0][1] * a[0][1] + a[0][2] * a[0][2] + a[1][2] * a[1][2];
    if p1 == 0.0 {
        let mut e = [a[0][0], a[1][1], a[2][2]];
        e.sort_by(f64::total_cmp);
        return e;
    }
    let q = (a[0][0] + a[1][1] + a[2][2]) / 3.0;
    let p2 = (a[0][0] - q).powi(2) + (a[1][1] - q).powi(2) + (a[2][2] - q).powi(2) + 2.0 * p1;
    let p = (p2 / 6.0).sqrt();
    let b = |r: usize, c: usize| (a[r][c] - if r == c { q } else { 0.0 }) / p;
    let det = b(0, 0) * (b(1, 1) * b(2, 2) - b(1, 2) * b(2, 1))
        - b(0, 1) * (b(1, 0) * b(2, 2) - b(1, 2) * b(2, 0))
        + b(0, 2) * (b(1, 0) * b(2, 1) - b(1, 1) * b(2, 0));
    let r = (det / 2.0).clamp(-1.0, 1.0);
    let phi = r.acos() / 3.0;
    let e1 = q + 2.0 * p * phi.cos();
    let e3 = q + 2.0 * p * (phi + 2.0 * std::f64::consts::PI / 3.0).cos();
    let e2 = 3.0 * q - e1 - e3;
    let mut e = [e1, e2, e3];
    e.sort_by(f64::total_cmp);
    e
}

/// Non-maximum suppression within one channel, best [`Candidate::rank`] first:
/// drop candidates closer than the larger of the two radii (at least 3 mm) to a
/// kept one; stop after `limit` kept.
fn suppress(mut all: Vec<Candidate>, sp: f64, limit: usize) -> Vec<Candidate> {
    all.sort_by(|a, b| {
        b.rank()
            .total_cmp(&a.rank())
            .then(a.center_xyz[2].total_cmp(&b.center_xyz[2]))
            .then(a.center_xyz[1].total_cmp(&b.center_xyz[1]))
            .then(a.center_xyz[0].total_cmp(&b.center_xyz[0]))
    });
    let mut kept: Vec<Candidate> = Vec::new();
    for c in all {
        if kept.len() >= limit {
            break;
        }
        let clash = kept.iter().any(|k| {
            let d = (0..3)
                .map(|a| (k.center_xyz[a] - c.center_xyz[a]) * sp)
                .map(|x| x * x)
                .sum::<f64>()
                .sqrt();
            d < k.radius_mm.max(c.radius_mm).max(3.0)
        });
        if !clash {
            kept.push(c);
        }
    }
    kept
}
