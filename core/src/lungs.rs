//! Stage 4 — body and lungs: right/left lung masks on the resampled volume.
//!
//! Per axial slice (in parallel): air below −500 HU that is connected to the
//! image border is outside the body; the remaining air is lung, trachea,
//! bronchi or bowel gas. Small central air components are airway and are
//! removed; 3-D components then keep the lungs (bowel gas and noise are small),
//! left and right are told apart by their position, and each lung is closed
//! with a 10 mm disk and hole-filled so that vessels, nodules and juxtapleural
//! nodules lie inside the "lung region" the candidate stage searches.

use ndarray::{Array2, Array3, Axis, s};
use rayon::prelude::*;

use crate::error::Result;
use crate::imgproc::{close2, fill_holes2, label2};
use crate::progress::{Progress, Stage};
use crate::report::LungSummary;
use crate::volume::Volume;

/// Label of the right lung in [`LungMasks::region`].
pub const RIGHT: u8 = 1;
/// Label of the left lung in [`LungMasks::region`].
pub const LEFT: u8 = 2;

/// Options of the lung stage. Defaults are documented per field.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LungOptions {
    /// Air threshold in HU. Default −500.
    pub air_hu: i16,
    /// Closing radius in mm that brings juxtapleural nodules inside. Default 10 mm.
    pub closing_mm: f64,
    /// Total lung volume (mL) below which the input is not a chest CT. Default 400 mL.
    pub min_lung_ml: f64,
}

impl Default for LungOptions {
    fn default() -> Self {
        LungOptions {
            air_hu: -500,
            closing_mm: 10.0,
            min_lung_ml: 400.0,
        }
    }
}

/// The lung masks on the resampled grid.
#[derive(Debug, Clone)]
pub struct LungMasks {
    /// Closed, hole-filled lung region: 0 outside, [`RIGHT`], [`LEFT`]. `[z, y, x]`.
    pub region: Array3<u8>,
    /// Aerated lung (before closing), same labels.
    pub aerated: Array3<u8>,
    /// Volumes, extent, truncation, emphysema index.
    pub summary: LungSummary,
    /// Why no result can be given (no lungs), if so.
    pub inconclusive: Option<String>,
    /// z index range (inclusive) of slices with lung.
    pub z_range: Option<(usize, usize)>,
}

/// Segment body and lungs on an isotropic (or any axial) volume.
///
/// Grids finer than 1.5 mm are segmented at half resolution (2× average
/// pooling: 8× fewer voxels) and the labels brought back by nearest neighbour;
/// the aerated mask and the summary are then computed on the full-resolution HU.
pub fn segment(iso: &Volume, opts: &LungOptions, progress: &dyn Progress) -> Result<LungMasks> {
    let (nz, ny, nx) = iso.hu.dim();
    let g = &iso.geometry;
    let coarse = g.spacing.iter().all(|&s| s < 1.5) && nz >= 8 && ny >= 8 && nx >= 8;
    let (region, labels) = if coarse {
        let half = half_resolution(iso);
        let (region2, aerated2) = masks(&half, opts, progress)?;
        (
            upsample2(&region2, (nz, ny, nx)),
            upsample2(&aerated2, (nz, ny, nx)),
        )
    } else {
        masks(iso, opts, progress)?
    };
    let air_hu = opts.air_hu;
    let mut aerated = labels;
    ndarray::Zip::from(&mut aerated)
        .and(&iso.hu)
        .par_for_each(|a, &h| {
            if h >= air_hu {
                *a = 0;
            }
        });
    summarize(iso, region, aerated, opts, progress)
}

/// Average-pool a volume by 2 along every axis (HU stay `i16`).
fn half_resolution(vol: &Volume) -> Volume {
    let f = vol.hu.mapv(|v| v as f32);
    let h = crate::imgproc::downsample2(&f).mapv(|v| v.round() as i16);
    let (nz, ny, nx) = h.dim();
    let mut geometry = vol.geometry.clone();
    geometry.size = [nx, ny, nz];
    geometry.spacing = geometry.spacing.map(|s| s * 2.0);
    // The centre of coarse voxel 0 is half a fine voxel away from fine voxel 0.
    let shift = [0.5, 0.5, 0.5];
    geometry.origin = vol.geometry.voxel_to_patient(shift);
    Volume { hu: h, geometry }
}

/// Nearest-neighbour ×2 upsampling of a label volume to `dim`.
fn upsample2(src: &Array3<u8>, dim: (usize, usize, usize)) -> Array3<u8> {
    let (sz, sy, sx) = src.dim();
    let mut out = Array3::<u8>::zeros(dim);
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(k, mut plane)| {
            let kk = (k / 2).min(sz - 1);
            for ((j, i), o) in plane.indexed_iter_mut() {
                *o = src[[kk, (j / 2).min(sy - 1), (i / 2).min(sx - 1)]];
            }
        });
    out
}

/// Steps 1–4 on one grid: the closed lung region and the aerated lung labels.
fn masks(
    iso: &Volume,
    opts: &LungOptions,
    progress: &dyn Progress,
) -> Result<(Array3<u8>, Array3<u8>)> {
    let (nz, ny, nx) = iso.hu.dim();
    let g = &iso.geometry;
    let px_mm = g.spacing[0].min(g.spacing[1]);
    let voxel_ml = g.voxel_volume_mm3() / 1000.0;

    // 1. Per slice: internal air without small central (airway) components.
    let air_hu = opts.air_hu;
    let mut internal = Array3::<bool>::from_elem((nz, ny, nx), false);
    let centre_band = 0.15;
    internal
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .try_for_each(|(k, mut out)| {
            if progress.is_cancelled() {
                return Err(crate::Error::Cancelled);
            }
            let hu = iso.hu.index_axis(Axis(0), k);
            let air = hu.mapv(|v| v < air_hu);
            let not_air = air.mapv(|a| !a);
            // body = everything not reachable from the border through air
            let body = fill_holes2(not_air.view());
            let mut inside = Array2::from_elem((ny, nx), false);
            let (mut bx0, mut bx1) = (nx, 0);
            for ((j, i), &b) in body.indexed_iter() {
                if b {
                    bx0 = bx0.min(i);
                    bx1 = bx1.max(i);
                    if air[[j, i]] {
                        inside[[j, i]] = true;
                    }
                }
            }
            if bx1 > bx0 {
                let (labels, comps) = label2(inside.view());
                let mid = (bx0 + bx1) as f64 / 2.0;
                let width = (bx1 - bx0) as f64;
                let airway: Vec<u32> = comps
                    .iter()
                    .filter(|c| {
                        let area_cm2 = c.area as f64 * px_mm * px_mm / 100.0;
                        area_cm2 < 8.0 && (c.cx - mid).abs() < centre_band * width
                    })
                    .map(|c| c.label)
                    .collect();
                let tiny: Vec<u32> = comps
                    .iter()
                    .filter(|c| (c.area as f64 * px_mm * px_mm) < 10.0)
                    .map(|c| c.label)
                    .collect();
                for ((j, i), &l) in labels.indexed_iter() {
                    if l != 0 && (airway.contains(&l) || tiny.contains(&l)) {
                        inside[[j, i]] = false;
                    }
                }
            }
            out.assign(&inside);
            Ok(())
        })?;
    progress.progress(Stage::Lungs, 0.35);

    // 2. 3-D components: keep the lungs (the largest, and a second one of comparable size).
    let structure = ndarray::Array3::from_shape_fn((3, 3, 3), |(a, b, c)| {
        (a as i32 - 1).abs() + (b as i32 - 1).abs() + (c as i32 - 1).abs() <= 1
    });
    let (labels3, n) = ndarray_ndimage::label::<u32>(&internal, &structure);
    let mut sizes = vec![0usize; n + 1];
    let mut sum_x = vec![0f64; n + 1];
    for ((_, _, i), &l) in labels3.indexed_iter() {
        sizes[l as usize] += 1;
        sum_x[l as usize] += i as f64;
    }
    let mut order: Vec<usize> = (1..=n).collect();
    order.sort_by(|&a, &b| sizes[b].cmp(&sizes[a]).then(a.cmp(&b)));
    let largest = order.first().map(|&l| sizes[l]).unwrap_or(0);
    let keep: Vec<usize> = order
        .iter()
        .copied()
        .take(2)
        .filter(|&l| sizes[l] as f64 >= 0.15 * largest as f64 && sizes[l] as f64 * voxel_ml >= 50.0)
        .collect();
    progress.progress(Stage::Lungs, 0.55);

    // 3. Right/left. Patient right is towards −x in LPS: decide through the row direction.
    let row_x = g.direction[0][0];
    let right_is_low_column = row_x >= 0.0;
    let mut aerated = Array3::<u8>::zeros((nz, ny, nx));
    if keep.len() == 2 {
        let cx = |l: usize| sum_x[l] / sizes[l] as f64;
        let (low, high) = if cx(keep[0]) < cx(keep[1]) {
            (keep[0], keep[1])
        } else {
            (keep[1], keep[0])
        };
        let (lab_low, lab_high) = if right_is_low_column {
            (RIGHT, LEFT)
        } else {
            (LEFT, RIGHT)
        };
        aerated.zip_mut_with(&labels3, |a, &l| {
            *a = if l as usize == low {
                lab_low
            } else if l as usize == high {
                lab_high
            } else {
                0
            }
        });
    } else if keep.len() == 1 {
        // Lungs joined (anterior junction or through airways): split each slice at the
        // column with the least lung between the two halves.
        let l0 = keep[0] as u32;
        aerated
            .axis_iter_mut(Axis(0))
            .into_par_iter()
            .enumerate()
            .for_each(|(k, mut out)| {
                let lab = labels3.index_axis(Axis(0), k);
                let mut profile = vec![0usize; nx];
                let (mut lo, mut hi) = (nx, 0);
                for ((_, i), &l) in lab.indexed_iter() {
                    if l == l0 {
                        profile[i] += 1;
                        lo = lo.min(i);
                        hi = hi.max(i);
                    }
                }
                if hi <= lo {
                    return;
                }
                let a = lo + (hi - lo) * 3 / 10;
                let b = lo + (hi - lo) * 7 / 10;
                let split = (a..=b)
                    .min_by_key(|&i| (profile[i], i.abs_diff((lo + hi) / 2)))
                    .unwrap_or((lo + hi) / 2);
                for ((j, i), &l) in lab.indexed_iter() {
                    if l == l0 {
                        let low = i < split;
                        out[[j, i]] = if low == right_is_low_column {
                            RIGHT
                        } else {
                            LEFT
                        };
                    }
                }
            });
    }
    drop(labels3);
    drop(internal);
    progress.progress(Stage::Lungs, 0.7);

    // 4. Closed, hole-filled region per lung and slice. The closing fills the
    // concavities juxtapleural nodules make in the costal surface; on the medial
    // side it would swallow hilar vessels and bronchi, so what the closing adds
    // there (beyond 20 % of the lung's width from its centre, towards the
    // midline) is not kept. Hole filling is kept everywhere.
    let radius_px = (opts.closing_mm / px_mm) as f32;
    let mut region = Array3::<u8>::zeros((nz, ny, nx));
    region
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(k, mut out)| {
            let a = aerated.index_axis(Axis(0), k);
            let extent = |lab: u8| {
                let (mut n, mut sum, mut lo, mut hi) = (0usize, 0f64, nx, 0usize);
                for ((_, i), &v) in a.indexed_iter() {
                    if v == lab {
                        n += 1;
                        sum += i as f64;
                        lo = lo.min(i);
                        hi = hi.max(i);
                    }
                }
                (n > 0).then(|| (sum / n as f64, (hi - lo) as f64))
            };
            let (er, el) = (extent(RIGHT), extent(LEFT));
            let mid = match (er, el) {
                (Some(r), Some(l)) => (r.0 + l.0) / 2.0,
                _ => nx as f64 / 2.0,
            };
            for (lab, ext) in [(RIGHT, er), (LEFT, el)] {
                let Some((cx, width)) = ext else { continue };
                let m = a.mapv(|v| v == lab);
                let holes = fill_holes2(m.view());
                let closed = fill_holes2(close2(m.view(), radius_px).view());
                let medial = if mid >= cx { 1.0 } else { -1.0 };
                for ((j, i), o) in out.indexed_iter_mut() {
                    if *o != 0 {
                        continue;
                    }
                    let medial_part = (i as f64 - cx) * medial > 0.2 * width;
                    if holes[[j, i]] || (closed[[j, i]] && !medial_part) {
                        *o = lab;
                    }
                }
            }
        });
    progress.progress(Stage::Lungs, 0.9);
    Ok((region, aerated))
}

/// Step 5: volumes, extent, truncation and emphysema index on the full grid.
fn summarize(
    iso: &Volume,
    region: Array3<u8>,
    aerated: Array3<u8>,
    opts: &LungOptions,
    progress: &dyn Progress,
) -> Result<LungMasks> {
    let (nz, _, _) = iso.hu.dim();
    let g = &iso.geometry;
    let px_mm = g.spacing[0].min(g.spacing[1]);
    let voxel_ml = g.voxel_volume_mm3() / 1000.0;
    // 5. Summary.
    let per_slice: Vec<(usize, usize, usize, usize)> = (0..nz)
        .into_par_iter()
        .map(|k| {
            let a = aerated.slice(s![k, .., ..]);
            let h = iso.hu.slice(s![k, .., ..]);
            let (mut r, mut l, mut laa) = (0, 0, 0);
            for (&lab, &v) in a.iter().zip(h.iter()) {
                match lab {
                    RIGHT => r += 1,
                    LEFT => l += 1,
                    _ => continue,
                }
                if v < -950 {
                    laa += 1;
                }
            }
            (r, l, laa, r + l)
        })
        .collect();
    let right: usize = per_slice.iter().map(|p| p.0).sum();
    let left: usize = per_slice.iter().map(|p| p.1).sum();
    let laa: usize = per_slice.iter().map(|p| p.2).sum();
    let max_area = per_slice.iter().map(|p| p.3).max().unwrap_or(0);
    let min_area = (100.0 / (px_mm * px_mm)) as usize; // 1 cm²
    let with_lung: Vec<usize> = (0..nz)
        .filter(|&k| per_slice[k].3 >= min_area.max(1))
        .collect();
    let z_range = with_lung
        .first()
        .zip(with_lung.last())
        .map(|(&a, &b)| (a, b));
    let extent_mm = z_range
        .map(|(a, b)| (b - a) as f64 * g.spacing[2])
        .unwrap_or(0.0);
    let edge_big = |k: usize| per_slice[k].3 as f64 > 0.25 * max_area as f64;
    let truncated = max_area > 0 && (edge_big(0) || edge_big(nz - 1));
    let total_ml = (right + left) as f64 * voxel_ml;
    let summary = LungSummary {
        right_ml: round1(right as f64 * voxel_ml),
        left_ml: round1(left as f64 * voxel_ml),
        extent_mm: round1(extent_mm),
        truncated,
        laa950_fraction: if right + left > 0 {
            (laa as f64 / (right + left) as f64 * 1e4).round() / 1e4
        } else {
            0.0
        },
    };
    let inconclusive = if total_ml < opts.min_lung_ml {
        Some(format!(
            "no lungs found ({total_ml:.0} mL of aerated lung, at least {:.0} mL expected): \
             not a chest CT, or the lungs are outside the scan",
            opts.min_lung_ml
        ))
    } else if right == 0 || left == 0 {
        Some("only one lung found: the scan does not cover both lungs".to_string())
    } else {
        None
    };
    progress.progress(Stage::Lungs, 1.0);
    Ok(LungMasks {
        region,
        aerated,
        summary,
        inconclusive,
        z_range,
    })
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}
