//! Stage 4 of 11 — body and lungs: right/left lung masks on the resampled volume.
//!
//! Per axial slice (in parallel): air below −500 HU that is connected to the
//! image border is outside the body; the remaining air is lung, trachea,
//! bronchi or bowel gas. Small central air components of nearly pure air
//! (mean below −920 HU) are airway and are removed; 3-D components then keep the lungs (bowel gas and noise are small),
//! left and right are told apart by their position, and each lung is closed
//! with a 10 mm disk and hole-filled so that vessels, nodules and juxtapleural
//! nodules lie inside the "lung region" the candidate stage searches.
//!
//! Two 3-D rules then make the region keep what touches its border without
//! swallowing the anatomy around it:
//!
//! - **Islands are checked against their neighbours.** A non-lung island of
//!   more than [`LungOptions::island_check_mm`] inside one slice's lung outline
//!   is kept out when, on the slice above or below, at least half of its
//!   footprint lies outside both lungs: it is the cut top of the diaphragm's
//!   dome (or of the heart, or a hilum), continuous with what lies outside the
//!   lungs, not a lesion surrounded by lung.
//! - **Space-occupying lesions on the pleura are brought in.** Each lung is
//!   closed in 3-D with a ball of [`LungOptions::lesion_closing_mm`] (40 mm):
//!   that fills every concavity of the lung surface narrower than 80 mm — a
//!   broad-based chest-wall, paraspinal, juxtamediastinal or juxtadiaphragmatic
//!   mass, but also a rim along the heart, aorta, hila and diaphragm, where the
//!   surface curves gently. What the closing adds is then opened with a ball of
//!   [`LungOptions::lesion_min_radius_mm`] (7.5 mm): a rim is thinner than a
//!   15 mm ball and disappears, a lesion is not. What remains is kept when its
//!   mean attenuation is soft tissue (≥ −300 HU), so air-filled airways stay out.
//!   Measured on the two real chest CTs in the repository (lung1, lung2): the
//!   lung2 mass (45 mm, broad-based on the posterior chest wall beside the
//!   spine) is inside the region whole; the heart, mediastinum and diaphragm
//!   are not (a few hilar vessel segments are, which the classifier rejects).
//! - **Dense lung on its border is lung.** On the full grid each lung grows
//!   into the ground-glass band next to it (−750 to −300 HU, 6-connected, up
//!   to [`LungOptions::ground_glass_grow_mm`], 40 mm), and what holds a 6 mm
//!   ball ([`LungOptions::ground_glass_min_radius_mm`]) is kept: peripheral
//!   ground glass denser than the −500 HU air threshold (measured on the
//!   opacity insertion set, `tests/insertion/opacities.py`), not the
//!   partial-volume rim at the pleura or along the airway walls.

use ndarray::{Array2, Array3, Axis, s};
use rayon::prelude::*;

use crate::error::Result;
use crate::imgproc::{close2, fill_holes2, label2, neighbours6};
use crate::progress::{Progress, Stage};
use crate::report::LungSummary;
use crate::volume::Volume;

/// Mean HU below which a small central air component is an airway lumen
/// (trachea, main bronchi) rather than a piece of lung.
const AIRWAY_MAX_MEAN_HU: f64 = -920.0;

/// Label of the right lung in [`LungMasks::region`].
pub const RIGHT: u8 = 1;
/// Label of the left lung in [`LungMasks::region`].
pub const LEFT: u8 = 2;

/// Options of the lung stage. Defaults are documented per field.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LungOptions {
    /// Air threshold in HU. Default −500.
    pub air_hu: i16,
    /// Closing radius in mm that brings juxtapleural nodules inside (costal side). Default 10 mm.
    pub closing_mm: f64,
    /// Closing radius in mm on the medial side (towards the mediastinum). Default 5 mm.
    pub medial_closing_mm: f64,
    /// Total lung volume (mL) below which the input is not a chest CT. Default 400 mL.
    pub min_lung_ml: f64,
    /// Radius (mm) of the 3-D ball closing that brings space-occupying lesions on
    /// the pleura (chest wall, mediastinum, diaphragm, paraspinal gutter) inside the
    /// region: concavities narrower than twice this are candidates. Default 40 mm.
    pub lesion_closing_mm: f64,
    /// Radius (mm) of the ball a closing addition must hold to be kept (thickness
    /// test: what the closing adds along the heart, aorta, hila and diaphragm is
    /// a thin rim; a lesion is thick). Default 5 mm (a 10 mm ball).
    pub lesion_min_radius_mm: f64,
    /// Mean HU at or above which a thick closing addition is soft tissue (kept).
    /// Default −300.
    pub lesion_min_hu: f64,
    /// How far (mm, along 6-connected voxels) the region grows into dense lung
    /// next to it: voxels of −750 to −300 HU (ground glass) that the −500 HU
    /// air threshold left out, kept where the grown part holds a ball of
    /// [`LungOptions::ground_glass_min_radius_mm`]. Default 40 mm; 0 disables.
    pub ground_glass_grow_mm: f64,
    /// Radius (mm) of the ball grown dense lung must hold to be kept: the
    /// partial-volume rim at the pleura and along airway walls is thinner.
    /// Default 3 mm.
    pub ground_glass_min_radius_mm: f64,
    /// Equivalent diameter (mm) above which a non-lung island inside one slice's lung
    /// outline is checked against its neighbouring slices (the dome of the diaphragm
    /// cut axially looks like an island). Default 20 mm.
    pub island_check_mm: f64,
}

impl Default for LungOptions {
    fn default() -> Self {
        LungOptions {
            air_hu: -500,
            closing_mm: 10.0,
            medial_closing_mm: 5.0,
            min_lung_ml: 400.0,
            lesion_closing_mm: 40.0,
            lesion_min_radius_mm: 5.0,
            lesion_min_hu: -300.0,
            ground_glass_grow_mm: 40.0,
            ground_glass_min_radius_mm: 3.0,
            island_check_mm: 20.0,
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
    let mut region = region;
    grow_into_ground_glass(&mut region, &iso.hu, g.spacing[0].min(g.spacing[1]), opts);
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
                // Mean HU per component: an airway lumen is nearly pure air
                // (≈ −1000 HU), lung parenchyma is not (≈ −850), so a small piece
                // of lung near the midline (the anterior junction, a thin
                // anterior or paravertebral recess) is not taken for an airway.
                let mut hu_sum = vec![0f64; comps.len() + 1];
                for ((j, i), &l) in labels.indexed_iter() {
                    if l != 0 {
                        hu_sum[l as usize] += hu[[j, i]] as f64;
                    }
                }
                let airway: Vec<u32> = comps
                    .iter()
                    .filter(|c| {
                        let area_cm2 = c.area as f64 * px_mm * px_mm / 100.0;
                        let mean = hu_sum[c.label as usize] / c.area.max(1) as f64;
                        area_cm2 < 8.0
                            && (c.cx - mid).abs() < centre_band * width
                            && mean < AIRWAY_MAX_MEAN_HU
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
    // concavities juxtapleural nodules make in the costal surface. On the medial
    // side (beyond 20 % of the lung's width from its centre, towards the
    // midline) a closing that wide would take in the hilar vessels and bronchi
    // where they enter the lung, so there the radius is halved
    // ([`LungOptions::medial_closing_mm`]): juxtamediastinal nodules up to about
    // 10 mm are filled in, the broad hilar concavities are not (larger
    // juxtamediastinal lesions come in through step 4b). Hole filling is kept
    // everywhere, except for the islands that continue outside the lungs on a
    // neighbouring slice (4a).
    let excluded = open_islands(&aerated, px_mm, opts.island_check_mm);
    let radius_px = (opts.closing_mm / px_mm) as f32;
    let medial_px = (opts.medial_closing_mm / px_mm) as f32;
    let mut region = Array3::<u8>::zeros((nz, ny, nx));
    region
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(k, mut out)| {
            let a = aerated.index_axis(Axis(0), k);
            let ex = excluded.index_axis(Axis(0), k);
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
                let wide = fill_holes2(close2(m.view(), radius_px).view());
                let narrow = fill_holes2(close2(m.view(), medial_px).view());
                let medial = if mid >= cx { 1.0 } else { -1.0 };
                for ((j, i), o) in out.indexed_iter_mut() {
                    if *o != 0 || (ex[[j, i]] && !m[[j, i]]) {
                        continue;
                    }
                    let medial_part = (i as f64 - cx) * medial > 0.2 * width;
                    if narrow[[j, i]] || (wide[[j, i]] && !medial_part) {
                        *o = lab;
                    }
                }
            }
        });
    progress.progress(Stage::Lungs, 0.8);
    if progress.is_cancelled() {
        return Err(crate::Error::Cancelled);
    }
    // 4b. Space-occupying lesions on the pleura (module docs).
    for lab in [RIGHT, LEFT] {
        add_pleural_lesions(&mut region, lab, &iso.hu, px_mm, opts);
    }
    progress.progress(Stage::Lungs, 0.9);
    Ok((region, aerated))
}

/// One island of a slice: its pixels `(y, x)` and the lung label around it.
type Island = (Vec<(usize, usize)>, u8);

/// Step 4a: the non-lung islands (larger than `min_d_mm` across) inside one
/// slice's lung outline that continue outside both lungs on the slice above or
/// below — at least half of the island's footprint there lies outside every
/// lung outline — together with every island they overlap on the slices in
/// between (a chain of islands is one structure). The cut dome of the diaphragm, the top of the heart or a hilum
/// look like such islands; a lesion surrounded by lung does not continue that way.
fn open_islands(aerated: &Array3<u8>, px_mm: f64, min_d_mm: f64) -> Array3<bool> {
    let (nz, ny, nx) = aerated.dim();
    let min_area = (std::f64::consts::PI * (min_d_mm / 2.0).powi(2) / (px_mm * px_mm)).max(4.0);
    // Outline of both lungs per slice (hole-filled), and the large islands per lung.
    let outlines: Vec<Array2<bool>> = (0..nz)
        .into_par_iter()
        .map(|k| fill_holes2(aerated.index_axis(Axis(0), k).mapv(|v| v != 0).view()))
        .collect();
    let islands: Vec<Vec<Island>> = (0..nz)
        .into_par_iter()
        .map(|k| {
            let a = aerated.index_axis(Axis(0), k);
            let mut out = Vec::new();
            for lab in [RIGHT, LEFT] {
                let m = a.mapv(|v| v == lab);
                if !m.iter().any(|&b| b) {
                    continue;
                }
                let filled = fill_holes2(m.view());
                let isl = ndarray::Zip::from(&filled)
                    .and(&m)
                    .map_collect(|&f, &l| f && !l);
                let (labels, comps) = label2(isl.view());
                for c in comps.iter().filter(|c| c.area as f64 >= min_area) {
                    let px: Vec<(usize, usize)> = labels
                        .indexed_iter()
                        .filter(|&(_, &l)| l == c.label)
                        .map(|(p, _)| p)
                        .collect();
                    out.push((px, lab));
                }
            }
            out
        })
        .collect();
    // Islands that overlap from one slice to the next are one structure (union-find):
    // the whole chain is kept out when any of its islands continues outside.
    let offsets: Vec<usize> = islands
        .iter()
        .scan(0, |acc, l| {
            let o = *acc;
            *acc += l.len();
            Some(o)
        })
        .collect();
    let total: usize = islands.iter().map(Vec::len).sum();
    let mut parent: Vec<usize> = (0..total).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    let mut owner = Array2::<u32>::zeros((ny, nx));
    for k in 0..nz.saturating_sub(1) {
        owner.fill(0);
        for (a, (px, _)) in islands[k].iter().enumerate() {
            for &(j, i) in px {
                owner[[j, i]] = (a + 1) as u32;
            }
        }
        for (b, (px, _)) in islands[k + 1].iter().enumerate() {
            for &(j, i) in px {
                let a = owner[[j, i]];
                if a != 0 {
                    let (x, y) = (
                        find(&mut parent, offsets[k] + a as usize - 1),
                        find(&mut parent, offsets[k + 1] + b),
                    );
                    parent[x] = y;
                }
            }
        }
    }
    let mut open = vec![false; total];
    for (k, list) in islands.iter().enumerate() {
        for (a, (px, _)) in list.iter().enumerate() {
            let outside_share = |kk: usize| {
                let o = &outlines[kk];
                px.iter().filter(|&&(j, i)| !o[[j, i]]).count() as f64 / px.len() as f64
            };
            let above = if k + 1 < nz {
                outside_share(k + 1)
            } else {
                0.0
            };
            let below = if k > 0 { outside_share(k - 1) } else { 0.0 };
            if above.max(below) >= 0.5 {
                let r = find(&mut parent, offsets[k] + a);
                open[r] = true;
            }
        }
    }
    let mut excluded = Array3::from_elem((nz, ny, nx), false);
    for (k, list) in islands.iter().enumerate() {
        for (a, (px, _)) in list.iter().enumerate() {
            let r = find(&mut parent, offsets[k] + a);
            if open[r] {
                for &(j, i) in px {
                    excluded[[k, j, i]] = true;
                }
            }
        }
    }
    excluded
}

/// Step 4b for one lung: 3-D closing with a ball of `lesion_closing_mm`, the
/// additions opened with a ball of `lesion_min_radius_mm`, and the soft-tissue
/// components of what remains added to the region (module docs).
fn add_pleural_lesions(
    region: &mut Array3<u8>,
    lab: u8,
    hu: &Array3<i16>,
    px_mm: f64,
    opts: &LungOptions,
) {
    let (nz, ny, nx) = region.dim();
    let (mut lo, mut hi) = ([usize::MAX; 3], [0usize; 3]);
    for ((k, j, i), &v) in region.indexed_iter() {
        if v == lab {
            for (a, x) in [k, j, i].into_iter().enumerate() {
                lo[a] = lo[a].min(x);
                hi[a] = hi[a].max(x);
            }
        }
    }
    if lo[0] == usize::MAX || opts.lesion_closing_mm <= 0.0 {
        return;
    }
    let r = (opts.lesion_closing_mm / px_mm) as f32;
    let pad = r.ceil() as usize + 2;
    let dims = [nz, ny, nx];
    // Crop with a margin of the radius; the margin outside the volume is outside.
    let c0: Vec<isize> = (0..3).map(|a| lo[a] as isize - pad as isize).collect();
    let size: Vec<usize> = (0..3).map(|a| hi[a] - lo[a] + 1 + 2 * pad).collect();
    let at = |a: usize, x: usize| -> Option<usize> {
        let v = c0[a] + x as isize;
        (v >= 0 && (v as usize) < dims[a]).then_some(v as usize)
    };
    let crop = Array3::from_shape_fn((size[0], size[1], size[2]), |(k, j, i)| {
        match (at(0, k), at(1, j), at(2, i)) {
            (Some(k), Some(j), Some(i)) => region[[k, j, i]] == lab,
            _ => false,
        }
    });
    let closed = crate::imgproc::close3(&crop, r);
    let added = Array3::from_shape_fn(crop.dim(), |(k, j, i)| {
        closed[[k, j, i]]
            && !crop[[k, j, i]]
            && matches!((at(0, k), at(1, j), at(2, i)), (Some(k), Some(j), Some(i)) if region[[k, j, i]] == 0)
    });
    drop(closed);
    let thick = crate::imgproc::open3(&added, (opts.lesion_min_radius_mm / px_mm) as f32);
    let structure = Array3::from_shape_fn((3, 3, 3), |(a, b, c)| {
        (a as i32 - 1).abs() + (b as i32 - 1).abs() + (c as i32 - 1).abs() <= 1
    });
    let (labels, n) = ndarray_ndimage::label::<u32>(&thick, &structure);
    if n == 0 {
        return;
    }
    let mut sum = vec![(0usize, 0f64); n + 1];
    for ((k, j, i), &l) in labels.indexed_iter() {
        if l != 0
            && let (Some(k), Some(j), Some(i)) = (at(0, k), at(1, j), at(2, i))
        {
            sum[l as usize].0 += 1;
            sum[l as usize].1 += hu[[k, j, i]] as f64;
        }
    }
    let keep: Vec<bool> = sum
        .iter()
        .map(|&(c, s)| c > 0 && s / c as f64 >= opts.lesion_min_hu)
        .collect();
    for ((k, j, i), &l) in labels.indexed_iter() {
        if l != 0
            && keep[l as usize]
            && let (Some(k), Some(j), Some(i)) = (at(0, k), at(1, j), at(2, i))
        {
            region[[k, j, i]] = lab;
        }
    }
}

/// Step 4c on the full grid: grow each lung into the ground-glass band next to
/// it (−750 to −300 HU, 6-connected, up to `ground_glass_grow_mm`), then keep
/// only the part of what was grown that holds a ball of
/// `ground_glass_min_radius_mm` on a 2× coarser grid (module docs). A dense peripheral patch
/// against the chest wall is not a hole of the air mask, so neither the hole
/// filling nor the 40 mm closing (a patch broader than 80 mm) brings it in.
fn grow_into_ground_glass(
    region: &mut Array3<u8>,
    hu: &Array3<i16>,
    px_mm: f64,
    opts: &LungOptions,
) {
    let steps = (opts.ground_glass_grow_mm / px_mm).round() as usize;
    if steps == 0 || region.dim() != hu.dim() {
        return;
    }
    let (nz, ny, nx) = region.dim();
    let band = |v: i16| (-750..-300).contains(&v);
    let mut grown: Vec<(usize, usize, usize)> = Vec::new();
    // Start from the lung voxels with a band voxel outside the region beside them.
    let dim = region.dim();
    let free = |n: (usize, usize, usize)| region[n] == 0 && band(hu[n]);
    let open_beside = |k: usize, j: usize, i: usize| neighbours6(dim, (k, j, i)).any(free);
    let mut frontier: Vec<(usize, usize, usize)> = (0..nz)
        .into_par_iter()
        .flat_map_iter(|k| {
            let mut v = Vec::new();
            for j in 0..ny {
                for i in 0..nx {
                    let l = region[[k, j, i]];
                    if (l == RIGHT || l == LEFT) && open_beside(k, j, i) {
                        v.push((k, j, i));
                    }
                }
            }
            v
        })
        .collect();
    // Labels of grown voxels live in `region` with the high bit set until kept.
    const GROWN: u8 = 0x80;
    for _ in 0..steps {
        let mut next = Vec::new();
        for &(k, j, i) in &frontier {
            let l = region[[k, j, i]] & !GROWN;
            for n in neighbours6(dim, (k, j, i)) {
                if region[n] == 0 && band(hu[n]) {
                    region[n] = l | GROWN;
                    next.push(n);
                }
            }
        }
        if next.is_empty() {
            break;
        }
        grown.extend_from_slice(&next);
        frontier = next;
    }
    if grown.is_empty() {
        return;
    }
    // Thickness test on the bounding box of what was grown, on a 2× coarser
    // grid (a cell is grown when at least half of its 2×2×2 voxels are): the
    // partial-volume rim, one or two voxels thick, mostly vanishes already in
    // the pooling, and the opening costs an eighth.
    let (mut lo, mut hi) = ([usize::MAX; 3], [0usize; 3]);
    for &(k, j, i) in &grown {
        for (a, v) in [k, j, i].into_iter().enumerate() {
            lo[a] = lo[a].min(v);
            hi[a] = hi[a].max(v);
        }
    }
    let cdim = (
        (hi[0] - lo[0]) / 2 + 1,
        (hi[1] - lo[1]) / 2 + 1,
        (hi[2] - lo[2]) / 2 + 1,
    );
    let mut count = Array3::<u8>::zeros(cdim);
    for &(k, j, i) in &grown {
        count[[(k - lo[0]) / 2, (j - lo[1]) / 2, (i - lo[2]) / 2]] += 1;
    }
    // Open only the box of the thick-enough cells, padded by the radius so the
    // opening sees outside it as not grown; none (a normal lung: only the rim
    // grew) drops everything.
    let (mut clo, mut chi) = ([usize::MAX; 3], [0usize; 3]);
    for ((k, j, i), &n) in count.indexed_iter() {
        if n >= 4 {
            for (a, v) in [k, j, i].into_iter().enumerate() {
                clo[a] = clo[a].min(v);
                chi[a] = chi[a].max(v);
            }
        }
    }
    let r = (opts.ground_glass_min_radius_mm / (2.0 * px_mm)) as f32;
    let thick = (clo[0] != usize::MAX).then(|| {
        let pad = r.ceil() as usize + 1;
        let sub = Array3::from_shape_fn(
            (
                chi[0] - clo[0] + 1 + 2 * pad,
                chi[1] - clo[1] + 1 + 2 * pad,
                chi[2] - clo[2] + 1 + 2 * pad,
            ),
            |(k, j, i)| {
                let at = |v: usize, a: usize| (v + clo[a]).checked_sub(pad).filter(|&x| x <= chi[a]);
                matches!((at(k, 0), at(j, 1), at(i, 2)), (Some(k), Some(j), Some(i)) if count[[k, j, i]] >= 4)
            },
        );
        (crate::imgproc::open3(&sub, r), pad)
    });
    for &(k, j, i) in &grown {
        let l = region[[k, j, i]];
        let c = [(k - lo[0]) / 2, (j - lo[1]) / 2, (i - lo[2]) / 2];
        let keep = thick.as_ref().is_some_and(|(t, pad)| {
            (0..3).all(|a| c[a] >= clo[a] && c[a] <= chi[a])
                && t[[
                    c[0] - clo[0] + pad,
                    c[1] - clo[1] + pad,
                    c[2] - clo[2] + pad,
                ]]
        });
        region[[k, j, i]] = if keep { l & !GROWN } else { 0 };
    }
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
