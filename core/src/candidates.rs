//! Stage 5 — candidates: multi-scale blob detection inside the lungs, plus a
//! path for masses larger than 30 mm.
//!
//! Blobs are scale-space minima of the difference of Gaussians (DoG, a
//! scale-normalised Laplacian of Gaussian) of the lung region, in which
//! everything outside the closed lung mask is set to air, so juxtapleural
//! nodules stand out against the "outside" like any other blob. Small scales
//! (3–7 mm nodules) run on the 1 mm grid, larger ones on a 2 mm grid.
//! Candidates are then thinned by non-maximum suppression and capped.

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
    /// Most candidates passed to the classifier. Default 64.
    pub max_candidates: usize,
    /// Minimum blob strength: −DoG in HU at the blob's scale. Default 12.
    pub min_response: f32,
    /// Equivalent diameter (mm) above which a soft-tissue component is a mass candidate. Default 30 mm.
    pub mass_min_diameter_mm: f64,
}

impl Default for CandidateOptions {
    fn default() -> Self {
        CandidateOptions {
            max_candidates: 64,
            min_response: 12.0,
            mass_min_diameter_mm: 30.0,
        }
    }
}

/// How a candidate was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CandidateSource {
    /// A DoG blob (3–30 mm).
    Blob,
    /// A large soft-tissue component (mass path).
    Mass,
}

/// A candidate location on the resampled grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Continuous voxel index `[x, y, z]` on the resampled (isotropic) grid.
    pub center_xyz: [f64; 3],
    /// Estimated radius in mm (from the blob scale, or the component volume).
    pub radius_mm: f64,
    /// Blob strength (−DoG, HU); for masses, the equivalent diameter.
    pub response: f32,
    /// How it was found.
    pub source: CandidateSource,
}

/// The DoG scales, in mm: Gaussian sigmas; DoG i uses sigmas i and i+1.
/// Fine scales (1 mm grid): blob radii ≈ 2–3 mm (3–6 mm nodules).
const SIGMAS_FINE: [f32; 3] = [1.0, 1.414, 2.0];
/// Coarse scales (2 mm grid): blob radii ≈ 4–17 mm.
const SIGMAS_COARSE: [f32; 6] = [2.0, 2.828, 4.0, 5.657, 8.0, 11.314];

/// Detect candidates in the lung region of an isotropic volume.
pub fn detect(
    iso: &Volume,
    lungs: &LungMasks,
    opts: &CandidateOptions,
    progress: &dyn Progress,
) -> Result<Vec<Candidate>> {
    let sp = iso.geometry.spacing[0];
    let Some((z0, z1)) = lungs.z_range else {
        return Ok(Vec::new());
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
        return Ok(Vec::new());
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
    // Fine scales on the 1 mm grid.
    found.extend(dog_extrema(
        &v,
        &SIGMAS_FINE.map(|s| s / sp as f32),
        1.0,
        opts.min_response,
        &reg.to_owned(),
    ));
    progress.progress(Stage::Candidates, 0.5);
    if progress.is_cancelled() {
        return Err(Error::Cancelled);
    }
    // Coarse scales on a 2 mm grid.
    let v2 = downsample2(&v);
    let reg2 = {
        let (a, b, c) = v2.dim();
        Array3::from_shape_fn((a, b, c), |(k, j, i)| {
            reg[[
                (2 * k).min(reg.dim().0 - 1),
                (2 * j).min(reg.dim().1 - 1),
                (2 * i).min(reg.dim().2 - 1),
            ]]
        })
    };
    for mut c in dog_extrema(
        &v2,
        &SIGMAS_COARSE.map(|s| s / (2.0 * sp as f32)),
        2.0,
        opts.min_response,
        &reg2,
    ) {
        c.center_xyz = c.center_xyz.map(|x| x * 2.0 + 0.5);
        found.push(c);
    }
    progress.progress(Stage::Candidates, 0.8);
    // Mass path, on the 2 mm grid.
    for mut c in masses(
        &v2.view(),
        &reg2.view(),
        2.0 * sp,
        opts.mass_min_diameter_mm,
    ) {
        c.center_xyz = c.center_xyz.map(|x| x * 2.0 + 0.5);
        found.push(c);
    }
    // To the full grid, radius to mm.
    for c in &mut found {
        for (v, o) in c.center_xyz.iter_mut().zip(offset) {
            *v += o;
        }
        if c.source == CandidateSource::Blob {
            c.radius_mm *= sp;
        }
    }
    let kept = suppress(found, opts.max_candidates, sp);
    progress.progress(Stage::Candidates, 1.0);
    Ok(kept)
}

/// Scale-space minima of DoG below −`min_response`. Returns centres in the
/// grid's voxel coordinates and radius in grid voxels × `voxel_mm` … in voxels of the 1 mm grid.
fn dog_extrema(
    v: &Array3<f32>,
    sigmas_vox: &[f32],
    voxel_scale: f64,
    min_response: f32,
    region: &Array3<u8>,
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
                        local.push(Candidate {
                            center_xyz: [i as f64, j as f64, k as f64],
                            radius_mm: radius,
                            response: -c,
                            source: CandidateSource::Blob,
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
                radius_mm: d / 2.0,
                response: d as f32,
                source: CandidateSource::Mass,
            })
        })
        .collect()
}

/// Non-maximum suppression: strongest first; drop candidates closer than the
/// larger of the two radii (at least 3 mm) to a kept one. Masses always come first.
fn suppress(mut all: Vec<Candidate>, max: usize, sp: f64) -> Vec<Candidate> {
    all.sort_by(|a, b| {
        (b.source == CandidateSource::Mass)
            .cmp(&(a.source == CandidateSource::Mass))
            .then(b.response.total_cmp(&a.response))
            .then(a.center_xyz[2].total_cmp(&b.center_xyz[2]))
            .then(a.center_xyz[1].total_cmp(&b.center_xyz[1]))
            .then(a.center_xyz[0].total_cmp(&b.center_xyz[0]))
    });
    let mut kept: Vec<Candidate> = Vec::new();
    for c in all {
        if kept.len() >= max {
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
