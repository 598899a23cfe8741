//! Stage 7 of 11 — measure: segment each accepted finding in 3-D on the source
//! volume (its native in-plane resolution, as a radiologist measures) and
//! derive the Lung-RADS measurements.
//!
//! Segmentation: an adaptive threshold halfway between the local lung
//! background and the lesion's dense core (for a part-solid nodule, then again
//! halfway between the background and its ground-glass part, so the total
//! extent is measured), region growing from the densest
//! voxel near the candidate centre inside the closed lung region (so the chest
//! wall is cut off), an in-plane opening that detaches vessels, and the
//! connected part containing the seed.
//!
//! Measurements: long axis = longest in-plane diameter on the axial slice of
//! largest area; short axis = longest diameter perpendicular to it (±10°) on
//! the same slice; both edge to edge (pixel-centre distance plus one pixel);
//! mean diameter = their mean, rounded to 0.1 mm as Lung-RADS does; volume =
//! voxel count × voxel volume.

use std::ops::Range;

use ndarray::{Array3, ArrayView2, s};
use serde::{Deserialize, Serialize};

use crate::lungs::{LEFT, LungMasks, RIGHT};
use crate::report::{FindingKind, Location, NoduleType, Side, Zone};
use crate::volume::{Vec3, Volume};

/// Options of the measurement stage. Defaults are documented per field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureOptions {
    /// HU at or above which tissue is solid. Default −300.
    pub solid_hu: f64,
    /// HU at or above which tissue is calcified. Default 200.
    pub calcified_hu: f64,
    /// Radius (mm) of the in-plane opening that detaches vessels. Default 1.5 mm.
    pub opening_mm: f64,
    /// Mean diameter (mm) above which a finding is a mass. Default 30 mm.
    pub mass_mm: f64,
    /// How far (HU) above the lung background the ring around a dense segmentation
    /// must be for a ground-glass part to be segmented with it. Default 150 HU.
    pub halo_min_hu: f64,
    /// A ring whose median is at or above this level is ground glass by its
    /// attenuation (the usual quantitative ground-glass range starts at about
    /// −750 HU; aerated lung lies below −800 HU). It is segmented with the lesion
    /// when the ring also surrounds it: its lower quartile
    /// [`halo_min_rise_hu`](Self::halo_min_rise_hu) above the background.
    /// Not for a mass: the ring around a mass is on every slice it occupies, whose
    /// end slices meet the hilum, the diaphragm or the chest wall. Default −750 HU.
    pub halo_ggo_hu: f64,
    /// Least rise (HU) of the ring's lower quartile above the lung background for
    /// a ground-glass ring ([`halo_ggo_hu`](Self::halo_ggo_hu)): a halo encircles
    /// the core, while a vessel or the pleura beside a solid nodule raises only a
    /// part of the ring (lower-quartile rise ≤ 25 HU around the solid nodules of
    /// lung1 and lung2, ≥ 95 HU around their part-solid ones). Default 60 HU.
    pub halo_min_rise_hu: f64,
}

impl Default for MeasureOptions {
    fn default() -> Self {
        MeasureOptions {
            solid_hu: -300.0,
            calcified_hu: 200.0,
            opening_mm: 1.5,
            mass_mm: 30.0,
            halo_min_hu: 150.0,
            halo_ggo_hu: -750.0,
            halo_min_rise_hu: 60.0,
        }
    }
}

/// A binary mask of one finding in a box of the source volume.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingMask {
    /// Source voxel index `[x, y, z]` of the box's first voxel.
    pub origin_xyz: [usize; 3],
    /// Mask `[z, y, x]` of the box.
    pub mask: Array3<bool>,
}

impl FindingMask {
    /// Does the mask contain source voxel `[x, y, z]`?
    pub fn contains(&self, xyz: [usize; 3]) -> bool {
        let (nz, ny, nx) = self.mask.dim();
        let [ox, oy, oz] = self.origin_xyz;
        if xyz[0] < ox || xyz[1] < oy || xyz[2] < oz {
            return false;
        }
        let (i, j, k) = (xyz[0] - ox, xyz[1] - oy, xyz[2] - oz);
        i < nx && j < ny && k < nz && self.mask[[k, j, i]]
    }

    /// Number of voxels in the mask.
    pub fn count(&self) -> usize {
        self.mask.iter().filter(|&&b| b).count()
    }
}

/// The measurements of one finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// Nodule or mass.
    pub kind: FindingKind,
    /// Centroid of the mask, LPS mm.
    pub center_lps_mm: Vec3,
    /// Centroid as a continuous source voxel index `[x, y, z]`.
    pub center_voxel_xyz: Vec3,
    /// Source slice (z index) of largest area.
    pub slice_index: usize,
    /// Long axis, mm.
    pub long_axis_mm: f64,
    /// Short axis, mm.
    pub short_axis_mm: f64,
    /// Mean of the axes rounded to 0.1 mm.
    pub diameter_mm: f64,
    /// Endpoints of long and short axis (LPS mm).
    pub axes_lps_mm: [[Vec3; 2]; 2],
    /// Volume, mm³.
    pub volume_mm3: f64,
    /// Mean HU.
    pub mean_hu: f64,
    /// Standard deviation of HU over the mask's interior (eroded in-plane by two
    /// pixels): low for a lesion (one tissue), high for a hilum or mediastinal
    /// border (vessels, fat, bronchial walls, contrast).
    pub interior_hu_sd: f64,
    /// Type by attenuation; `Calcified` only for a benign calcification pattern.
    pub nodule_type: NoduleType,
    /// Type by the HU fractions alone (≥ 25 % of voxels ≥ 200 HU = calcified).
    pub type_hu_fraction: NoduleType,
    /// Calcification pattern (issue 12).
    pub calcification: crate::calcification::Calcification,
    /// Margins and shape (issue 12).
    pub morphology: crate::morphology::Morphology,
    /// Mean diameter of the solid part (part-solid only), mm.
    pub solid_component_mm: Option<f64>,
    /// Location.
    pub location: Location,
    /// The segmentation.
    pub mask: FindingMask,
}

/// What the detector says a candidate is, which decides two segmentation rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LesionHint {
    /// A solid nodule: a growth that leaks beyond its limit is a vessel (`None`);
    /// a ground-glass halo is segmented with it.
    Solid,
    /// A ground-glass or part-solid nodule: leaks (common at its low threshold) are
    /// bounded by the radial profile; the halo is segmented with it.
    Subsolid,
    /// A mass: leaks (broad contact with the chest wall) are bounded by the radial
    /// profile; a ground-glass halo is segmented with it.
    Mass,
}

/// Segment and measure a finding around `center_lps` with estimated `radius_mm`.
/// Returns `None` when nothing lesion-like is there (the threshold region is
/// empty or tiny, or — for [`LesionHint::Solid`] — it leaks beyond the growth
/// limit).
pub fn measure(
    src: &Volume,
    iso: &Volume,
    lungs: &LungMasks,
    center_lps: Vec3,
    radius_mm: f64,
    hint: LesionHint,
    opts: &MeasureOptions,
) -> Option<Measurement> {
    measure_at(src, iso, lungs, center_lps, radius_mm, hint, opts, 2)
}

/// [`measure`], with `widen`: how many more times a ground-glass part that
/// reaches beyond the box sized for the candidate may be measured again in a
/// box twice as wide.
#[allow(clippy::too_many_arguments)]
fn measure_at(
    src: &Volume,
    iso: &Volume,
    lungs: &LungMasks,
    center_lps: Vec3,
    radius_mm: f64,
    hint: LesionHint,
    opts: &MeasureOptions,
    widen: u8,
) -> Option<Measurement> {
    let profile_bound = hint != LesionHint::Solid;
    let g = &src.geometry;
    let (nz, ny, nx) = src.hu.dim();
    let c = g.patient_to_voxel(center_lps);
    let r_est = radius_mm.clamp(1.5, 40.0);
    let half_mm = (2.2 * r_est + 4.0).clamp(10.0, 70.0);
    let lo =
        |a: usize, n: usize| ((c[a] - half_mm / g.spacing[a]).floor().max(0.0) as usize).min(n - 1);
    let hi =
        |a: usize, n: usize| ((c[a] + half_mm / g.spacing[a]).ceil().max(0.0) as usize).min(n - 1);
    let (x0, x1, y0, y1, z0, z1) = (
        lo(0, nx),
        hi(0, nx),
        lo(1, ny),
        hi(1, ny),
        lo(2, nz),
        hi(2, nz),
    );
    let (bx, by, bz) = (x1 - x0 + 1, y1 - y0 + 1, z1 - z0 + 1);
    let dist_mm = |i: usize, j: usize, k: usize| -> f64 {
        let d = [
            (i as f64 - c[0]) * g.spacing[0],
            (j as f64 - c[1]) * g.spacing[1],
            (k as f64 - c[2]) * g.spacing[2],
        ];
        (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt()
    };
    // Lung region lookup through patient space.
    let to_iso = iso.geometry.to_voxel();
    let region_at = |i: usize, j: usize, k: usize| -> u8 {
        let p = g.voxel_to_patient([i as f64, j as f64, k as f64]);
        let v = to_iso.apply(p);
        let (di, dj, dk) = (v[0].round(), v[1].round(), v[2].round());
        let (iz, iy, ix) = lungs.region.dim();
        if di < 0.0
            || dj < 0.0
            || dk < 0.0
            || di as usize >= ix
            || dj as usize >= iy
            || dk as usize >= iz
        {
            return 0;
        }
        lungs.region[[dk as usize, dj as usize, di as usize]]
    };
    let mut inside = Array3::<u8>::zeros((bz, by, bx));
    let mut hu_box = Array3::<f64>::zeros((bz, by, bx));
    for k in 0..bz {
        for j in 0..by {
            for i in 0..bx {
                inside[[k, j, i]] = region_at(x0 + i, y0 + j, z0 + k);
                hu_box[[k, j, i]] = src.hu[[z0 + k, y0 + j, x0 + i]] as f64;
            }
        }
    }
    // Background and core statistics.
    let core_r = (0.6 * r_est).max(1.5);
    let mut background = Vec::new();
    let mut core = Vec::new();
    let mut seed: Option<((usize, usize, usize), f64)> = None;
    for k in 0..bz {
        for j in 0..by {
            for i in 0..bx {
                let h = hu_box[[k, j, i]];
                let d = dist_mm(x0 + i, y0 + j, z0 + k);
                // Core and seed inside the lung region only: beside the chest wall
                // the densest voxel near a candidate can be a rib.
                if d <= core_r && inside[[k, j, i]] != 0 {
                    core.push(h.min(150.0));
                    if seed.is_none_or(|(_, best)| h > best) {
                        seed = Some(((i, j, k), h));
                    }
                }
                if inside[[k, j, i]] != 0 && h < -500.0 {
                    background.push(h);
                }
            }
        }
    }
    let ((si, sj, sk), _) = seed?;
    let b = percentile(&mut background, 0.5).unwrap_or(-850.0);
    // A box whose "background" is ground glass itself (median above −700 HU;
    // aerated lung is well below) sits inside a large ground-glass part around
    // a small solid core that the detector found at the core's scale: measure
    // in a box twice as wide.
    let wider = || -> Option<Measurement> {
        if widen == 0 || hint == LesionHint::Mass || r_est >= 20.0 {
            return None;
        }
        let r = 2.0 * r_est;
        measure_at(
            src,
            iso,
            lungs,
            center_lps,
            r,
            LesionHint::Subsolid,
            opts,
            widen - 1,
        )
    };
    if b > -700.0
        && let Some(w) = wider()
    {
        return Some(w);
    }
    let p = percentile(&mut core, 0.9)?;
    let thr = (b + 0.5 * (p - b)).clamp(-750.0, -350.0);
    if hu_box[[sk, sj, si]] < thr {
        return None;
    }
    // Region growing at a threshold, an in-plane opening to cut vessels, then the
    // component with the seed. A lesion is compact: if what remains still
    // reaches the growth limit, it continues beyond it (a vessel, an airway
    // wall, the hilum) — try a stronger opening, then give up (`None`).
    let r_max = (2.0 * r_est + 3.0).min(half_mm);
    let min_px = g.spacing[0].min(g.spacing[1]);
    let shell = r_max - 1.0 - g.spacing.iter().copied().fold(0.0, f64::max) / 2.0;
    let grow = |thr: f64, limit: f64| -> Option<Array3<bool>> {
        let grown = crate::imgproc::flood6((bz, by, bx), (si, sj, sk), |a, b2, c2| {
            hu_box[[c2, b2, a]] >= thr
                && inside[[c2, b2, a]] != 0
                && dist_mm(x0 + a, y0 + b2, z0 + c2) <= limit
        });
        for open_mm in [opts.opening_mm, opts.opening_mm * 1.75] {
            let opened = open_inplane(&grown, (open_mm / min_px) as f32);
            let mut m = keep_component(&opened, (si, sj, sk));
            let mut n = m.iter().filter(|&&v| v).count();
            if n < 3 {
                m = keep_component(&grown, (si, sj, sk));
                n = m.iter().filter(|&&v| v).count();
            }
            if limit < r_max {
                // A profile-limited growth (below): bounded by construction.
                return Some(m);
            }
            let at_limit = m
                .indexed_iter()
                .filter(|&((k, j, i), &v)| v && dist_mm(x0 + i, y0 + j, z0 + k) > shell)
                .count();
            if at_limit < 3.max(n / 50) {
                return Some(m);
            }
        }
        None
    };
    // When the growth leaks (a vessel or the chest wall continues the lesion
    // beyond the growth limit), bound it by the lesion's radial profile: the
    // median HU of 1 mm shells around the candidate centre drops below the
    // threshold at the lesion's edge, whatever a vessel does (it fills only a
    // small part of each shell). The growth is then limited to that radius +
    // 1.5 mm and kept when it fills at least a third of that ball.
    let profile_limited = |thr: f64, any_hint: bool| -> Option<Array3<bool>> {
        if !profile_bound && !any_hint {
            return None;
        }
        let edge = profile_edge(&hu_box, &inside, &dist_mm, [x0, y0, z0], thr, r_max)?;
        let limit = edge + 1.5;
        let m = grow(thr, limit)?;
        let n = m.iter().filter(|&&v| v).count() as f64;
        let ball = 4.0 / 3.0 * std::f64::consts::PI * limit.powi(3) / g.voxel_volume_mm3();
        (n >= ball / 3.0).then_some(m)
    };
    let mut mask = grow(thr, r_max).or_else(|| profile_limited(thr, false));
    // Ground-glass halo: a part-solid nodule's dense core sets the threshold above
    // its ground-glass part, which would be cut away. When the in-plane ring just
    // outside the first segmentation is well above the lung background and below
    // solid tissue, segment again halfway between the background and that ring:
    // the total extent (ground glass and solid part), as Lung-RADS measures it.
    // A halo is a subsolid lesion's: its growth is bounded by the radial profile
    // whatever the detector said. A halo that reaches past the box sized for the
    // candidate (a large ground-glass part around a small solid core, found at
    // the core's scale) is measured again in a box sized for the halo.
    if let Some(m) = &mask
        && let Some((ring_q1, ring)) =
            ring_level(m, &hu_box, &inside, min_px, hint != LesionHint::Mass)
        && (ring >= b + opts.halo_min_hu
            || (hint != LesionHint::Mass
                && ring >= opts.halo_ggo_hu
                && ring_q1 >= b + opts.halo_min_rise_hu))
        && ring < opts.solid_hu
    {
        let thr_total = (b + 0.5 * (ring - b)).clamp(-800.0, -450.0);
        if thr_total < thr {
            match grow(thr_total, r_max).or_else(|| profile_limited(thr_total, true)) {
                Some(t) => {
                    let count = |a: &Array3<bool>| a.iter().filter(|&&v| v).count();
                    if count(&t) > count(m) {
                        mask = Some(t);
                    }
                }
                None => {
                    let wide = wider();
                    let here = m.iter().filter(|&&v| v).count() as f64 * g.voxel_volume_mm3();
                    // kept only as what it was measured again for: a subsolid
                    // lesion larger than the first segmentation
                    if let Some(w) = wide
                        && w.volume_mm3 > here
                        && matches!(
                            w.nodule_type,
                            NoduleType::PartSolid | NoduleType::GroundGlass
                        )
                    {
                        return Some(w);
                    }
                }
            }
        }
    }
    let mask = mask?;
    let count = mask.iter().filter(|&&v| v).count();
    if count < 2 {
        return None;
    }
    // Centroid and HU statistics.
    let (mut sx, mut sy, mut sz, mut shu) = (0.0, 0.0, 0.0, 0.0);
    let (mut n_calc, mut n_core, mut n_core_solid) = (0usize, 0usize, 0usize);
    let (mut st_n, mut st_s, mut st_ss) = (0usize, 0f64, 0f64);
    let eroded = erode_inplane(&mask);
    let eroded2 = erode_inplane(&eroded);
    for ((k, j, i), &m) in mask.indexed_iter() {
        if !m {
            continue;
        }
        let h = hu_box[[k, j, i]];
        sx += (x0 + i) as f64;
        sy += (y0 + j) as f64;
        sz += (z0 + k) as f64;
        shu += h;
        if h >= opts.calcified_hu {
            n_calc += 1;
        }
        if eroded[[k, j, i]] {
            n_core += 1;
            if h >= opts.solid_hu {
                n_core_solid += 1;
            }
        }
        if eroded2[[k, j, i]] {
            st_n += 1;
            st_s += h;
            st_ss += h * h;
        }
    }
    let interior_hu_sd = if st_n >= 2 {
        let m = st_s / st_n as f64;
        ((st_ss / st_n as f64 - m * m).max(0.0)).sqrt()
    } else {
        0.0
    };
    let n = count as f64;
    let centroid = [sx / n, sy / n, sz / n];
    let mean_hu = shu / n;
    let volume_mm3 = n * g.voxel_volume_mm3();
    // Axes on the slice of largest area.
    let (kmax, _) = (0..bz)
        .map(|k| {
            (
                k,
                mask.index_axis(ndarray::Axis(0), k)
                    .iter()
                    .filter(|&&v| v)
                    .count(),
            )
        })
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))?;
    let plane = mask.index_axis(ndarray::Axis(0), kmax).to_owned();
    let (long, short, la, sa) = axes(&plane, g.spacing[0], g.spacing[1]);
    let to_lps =
        |p: [f64; 2]| g.voxel_to_patient([x0 as f64 + p[0], y0 as f64 + p[1], (z0 + kmax) as f64]);
    let diameter = ((long + short) / 2.0 * 10.0).round() / 10.0;
    // Type, by the solid component's size as Lung-RADS reads it: the solid voxels
    // (≥ −300 HU) of the segmentation, opened in-plane by 1.5 mm (at most a sixth
    // of the nodule's diameter) so that vessels
    // running through ground glass do not count, measured like the whole nodule
    // on its own slice of largest area. No solid component of 2 mm or more:
    // ground glass; one that is (nearly) the whole nodule — within 2 mm of the
    // total diameter, or ≥ 80 % of it: solid; otherwise part-solid.
    let _ = (n_core, n_core_solid);
    let calc_fraction = n_calc as f64 / n;
    let solid_d = {
        let solid = Array3::from_shape_fn(mask.dim(), |(k, j, i)| {
            mask[[k, j, i]] && hu_box[[k, j, i]] >= opts.solid_hu
        });
        // (the opening shrinks with the nodule: a 3 mm solid nodule has no 3 mm core)
        let solid = open_inplane(&solid, ((diameter / 6.0).min(1.5) / min_px) as f32);
        let (ks, area) = (0..bz)
            .map(|k| {
                (
                    k,
                    solid
                        .index_axis(ndarray::Axis(0), k)
                        .iter()
                        .filter(|&&v| v)
                        .count(),
                )
            })
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))?;
        if area == 0 {
            0.0
        } else {
            let sp = solid.index_axis(ndarray::Axis(0), ks).to_owned();
            let (sl, ss, _, _) = axes(&sp, g.spacing[0], g.spacing[1]);
            ((sl + ss) / 2.0 * 10.0).round() / 10.0
        }
    };
    let attenuation = if solid_d < 3.0 && mean_hu < opts.solid_hu {
        (NoduleType::GroundGlass, None)
    } else if solid_d >= diameter - 2.0 || solid_d >= 0.8 * diameter {
        (NoduleType::Solid, None)
    } else {
        (NoduleType::PartSolid, Some(solid_d))
    };
    // ---- issue 12: calcification pattern and shape (core::calcification, core::morphology) ----
    // Only a benign calcification pattern makes the nodule `Calcified`; the
    // HU-fraction type of before (≥ 25 % of voxels ≥ 200 HU) is kept beside it.
    let type_hu_fraction = if calc_fraction >= 0.25 || mean_hu >= opts.calcified_hu {
        NoduleType::Calcified
    } else {
        attenuation.0
    };
    let calcification = crate::calcification::classify(
        &mask,
        &hu_box,
        g.spacing,
        &crate::calcification::CalcificationOptions {
            calcified_hu: opts.calcified_hu,
            ..Default::default()
        },
    );
    let morphology = crate::morphology::assess(
        &mask,
        g.spacing[0],
        g.spacing[1],
        &crate::morphology::MorphologyOptions::default(),
    );
    let (nodule_type, solid_component_mm) = if calcification.benign {
        (NoduleType::Calcified, None)
    } else {
        attenuation
    };
    // ---- end issue 12 ----
    // Location.
    let center_lps = g.voxel_to_patient(centroid);
    let location = locate(iso, lungs, center_lps, &mask, [x0, y0, z0], src);
    Some(Measurement {
        kind: if diameter > opts.mass_mm {
            FindingKind::Mass
        } else {
            FindingKind::Nodule
        },
        center_lps_mm: center_lps,
        center_voxel_xyz: centroid,
        slice_index: z0 + kmax,
        long_axis_mm: round2(long),
        short_axis_mm: round2(short),
        diameter_mm: diameter,
        axes_lps_mm: [
            [to_lps(la[0]), to_lps(la[1])],
            [to_lps(sa[0]), to_lps(sa[1])],
        ],
        volume_mm3: round2(volume_mm3),
        mean_hu: round2(mean_hu),
        interior_hu_sd: round2(interior_hu_sd),
        nodule_type,
        type_hu_fraction,
        calcification,
        morphology,
        solid_component_mm,
        location,
        mask: FindingMask {
            origin_xyz: [x0, y0, z0],
            mask,
        },
    })
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Percentile (0–1) of a sample, `None` when empty: the element at rank
/// `round((n − 1) q)` in ascending order (the sample is reordered).
fn percentile(v: &mut [f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let rank = ((v.len() - 1) as f64 * q).round() as usize;
    Some(*v.select_nth_unstable_by(rank, f64::total_cmp).1)
}

/// The rows and columns of a plane's `true` pixels, each range widened by
/// `margin` pixels within the plane; `None` without any.
fn bounds2(plane: ArrayView2<bool>, margin: usize) -> Option<(Range<usize>, Range<usize>)> {
    let (ny, nx) = plane.dim();
    let (mut j0, mut j1, mut i0, mut i1) = (usize::MAX, 0, usize::MAX, 0);
    for ((j, i), &v) in plane.indexed_iter() {
        if v {
            j0 = j0.min(j);
            j1 = j1.max(j);
            i0 = i0.min(i);
            i1 = i1.max(i);
        }
    }
    (j0 <= j1).then(|| {
        (
            j0.saturating_sub(margin)..(j1 + margin + 1).min(ny),
            i0.saturating_sub(margin)..(i1 + margin + 1).min(nx),
        )
    })
}

/// Long and short axis (mm, edge to edge) of a 2-D mask and their endpoints in
/// (continuous) box pixel coordinates `[x, y]`, edge to edge too: the
/// endpoints are as far apart as the axis is long.
fn axes(
    plane: &ndarray::Array2<bool>,
    sx: f64,
    sy: f64,
) -> (f64, f64, [[f64; 2]; 2], [[f64; 2]; 2]) {
    let (ny, nx) = plane.dim();
    let mut boundary = Vec::new();
    for ((j, i), &m) in plane.indexed_iter() {
        if !m {
            continue;
        }
        let inside = |a: i64, b: i64| {
            a >= 0
                && b >= 0
                && (a as usize) < nx
                && (b as usize) < ny
                && plane[[b as usize, a as usize]]
        };
        if crate::imgproc::outside_neighbours4(&inside, i as i64, j as i64)
            .next()
            .is_some()
        {
            boundary.push([i as f64, j as f64]);
        }
    }
    if boundary.is_empty() {
        return (0.0, 0.0, [[0.0; 2]; 2], [[0.0; 2]; 2]);
    }
    let pix = (sx + sy) / 2.0;
    let d = |a: [f64; 2], b: [f64; 2]| {
        (((a[0] - b[0]) * sx).powi(2) + ((a[1] - b[1]) * sy).powi(2)).sqrt()
    };
    let (mut best, mut la) = (-1.0, [boundary[0], boundary[0]]);
    for (ai, &a) in boundary.iter().enumerate() {
        for &b in &boundary[ai..] {
            let dd = d(a, b);
            if dd > best {
                best = dd;
                la = [a, b];
            }
        }
    }
    let long_dir = {
        let v = [(la[1][0] - la[0][0]) * sx, (la[1][1] - la[0][1]) * sy];
        let l = (v[0] * v[0] + v[1] * v[1]).sqrt().max(1e-9);
        [v[0] / l, v[1] / l]
    };
    let cos_tol = 10f64.to_radians().sin();
    let (mut sbest, mut sa) = (0.0, [la[0], la[0]]);
    for (ai, &a) in boundary.iter().enumerate() {
        for &b in &boundary[ai + 1..] {
            let v = [(b[0] - a[0]) * sx, (b[1] - a[1]) * sy];
            let l = (v[0] * v[0] + v[1] * v[1]).sqrt();
            if l <= sbest || l == 0.0 {
                continue;
            }
            let cos = (v[0] * long_dir[0] + v[1] * long_dir[1]).abs() / l;
            if cos <= cos_tol {
                sbest = l;
                sa = [a, b];
            }
        }
    }
    // The reported lengths run edge to edge (centre distance + one pixel):
    // so do the drawn calipers — each end half a pixel further out along its
    // axis — and a viewer measuring the polyline gets the reported length.
    let long_dir = if best > 0.0 { long_dir } else { [1.0, 0.0] };
    let short_dir = if sbest > 0.0 {
        let v = [(sa[1][0] - sa[0][0]) * sx, (sa[1][1] - sa[0][1]) * sy];
        [v[0] / sbest, v[1] / sbest]
    } else {
        [-long_dir[1], long_dir[0]]
    };
    let out = |seg: [[f64; 2]; 2], dir: [f64; 2]| {
        let d = [dir[0] * pix / 2.0 / sx, dir[1] * pix / 2.0 / sy];
        [
            [seg[0][0] - d[0], seg[0][1] - d[1]],
            [seg[1][0] + d[0], seg[1][1] + d[1]],
        ]
    };
    (
        best + pix,
        sbest + pix,
        out(la, long_dir),
        out(sa, short_dir),
    )
}

/// The radius (mm) of the first 1 mm shell around the candidate centre whose
/// median HU (inside the lung region) is below `thr`: the lesion's edge by its
/// radial profile. `None` when no shell up to `r_max` drops below it.
fn profile_edge(
    hu: &Array3<f64>,
    inside: &Array3<u8>,
    dist_mm: &dyn Fn(usize, usize, usize) -> f64,
    origin: [usize; 3],
    thr: f64,
    r_max: f64,
) -> Option<f64> {
    let n_shells = r_max.ceil() as usize + 1;
    let mut shells: Vec<Vec<f64>> = vec![Vec::new(); n_shells];
    for ((k, j, i), &h) in hu.indexed_iter() {
        if inside[[k, j, i]] == 0 {
            continue;
        }
        let d = dist_mm(origin[0] + i, origin[1] + j, origin[2] + k);
        let s = d.floor() as usize;
        if s < n_shells {
            shells[s].push(h);
        }
    }
    for (r, v) in shells.iter_mut().enumerate().skip(1) {
        if v.len() < 4 {
            continue;
        }
        if percentile(v, 0.5)? < thr {
            return Some(r as f64);
        }
    }
    None
}

/// The lower quartile and the median HU of the in-plane ring 1–3 mm outside
/// `m`, inside the lung region; `None` when the ring has fewer than 8 voxels. `central`: only on the
/// slices where `m` has at least half its largest area (a nodule's end slices
/// are mostly partial volume, whose ring is lung and hides a thin ground-glass
/// rim); otherwise on every slice `m` occupies (a mass: its end slices meet
/// the diaphragm or chest wall, whose ring is not ground glass).
fn ring_level(
    m: &Array3<bool>,
    hu: &Array3<f64>,
    inside: &Array3<u8>,
    px_mm: f64,
    central: bool,
) -> Option<(f64, f64)> {
    let (r1, r3) = ((1.0 / px_mm) as f32, (3.0 / px_mm) as f32);
    let areas: Vec<usize> = m
        .outer_iter()
        .map(|p| p.iter().filter(|&&v| v).count())
        .collect();
    let max_area = areas.iter().copied().max().unwrap_or(0);
    let mut vals = Vec::new();
    for (k, plane) in m.outer_iter().enumerate() {
        if areas[k] == 0 || (central && 2 * areas[k] < max_area) {
            continue;
        }
        // The ring lies within r3 of the slice's bounding box: the distances
        // there are those of the whole slice (the nearest mask pixel is in the box).
        let Some((rows, cols)) = bounds2(plane, r3.ceil() as usize + 1) else {
            continue;
        };
        let (j0, i0) = (rows.start, cols.start);
        let d = crate::imgproc::edt2_sq(plane.slice(s![rows, cols]));
        for ((j, i), &dd) in d.indexed_iter() {
            let (j, i) = (j0 + j, i0 + i);
            if dd > r1 * r1 && dd <= r3 * r3 && inside[[k, j, i]] != 0 {
                vals.push(hu[[k, j, i]]);
            }
        }
    }
    if vals.len() < 8 {
        return None;
    }
    let q1 = percentile(&mut vals, 0.25)?;
    Some((q1, percentile(&mut vals, 0.5)?))
}

/// Per-slice opening with a disk of radius `r` pixels.
///
/// Computed on each slice's bounding box of the mask widened by one pixel: the
/// opening lies inside the mask, a mask pixel's nearest pixel outside the mask
/// is in that window (or there is none in the slice either), and so is the
/// nearest pixel of the erosion — the result is that of the whole slice.
fn open_inplane(m: &Array3<bool>, r: f32) -> Array3<bool> {
    if r < 0.5 {
        return m.clone();
    }
    let mut out = Array3::from_elem(m.dim(), false);
    for (k, mut plane) in out.outer_iter_mut().enumerate() {
        let full = m.index_axis(ndarray::Axis(0), k);
        let Some((rows, cols)) = bounds2(full, 1) else {
            continue;
        };
        let src = full.slice(s![rows.clone(), cols.clone()]);
        let inv = src.mapv(|v| !v);
        let d_in = crate::imgproc::edt2_sq(inv.view());
        let eroded = d_in.mapv(|d| d > r * r);
        let d_er = crate::imgproc::edt2_sq(eroded.view());
        plane.slice_mut(s![rows, cols]).assign(
            &ndarray::Zip::from(&d_er)
                .and(&src)
                .map_collect(|&d, &s| s && d <= r * r),
        );
    }
    out
}

/// Per-slice erosion by one pixel (4-neighbourhood).
fn erode_inplane(m: &Array3<bool>) -> Array3<bool> {
    let (nz, ny, nx) = m.dim();
    Array3::from_shape_fn((nz, ny, nx), |(k, j, i)| {
        m[[k, j, i]]
            && i > 0
            && j > 0
            && i + 1 < nx
            && j + 1 < ny
            && m[[k, j, i - 1]]
            && m[[k, j, i + 1]]
            && m[[k, j - 1, i]]
            && m[[k, j + 1, i]]
    })
}

/// The 6-connected component of `m` containing `seed` `(i, j, k)`.
fn keep_component(m: &Array3<bool>, seed: (usize, usize, usize)) -> Array3<bool> {
    let (si, sj, sk) = seed;
    if !m[[sk, sj, si]] {
        return Array3::from_elem(m.dim(), false);
    }
    crate::imgproc::flood6(m.dim(), seed, |i, j, k| m[[k, j, i]])
}

/// Side, zone and pleural contact of a finding.
fn locate(
    iso: &Volume,
    lungs: &LungMasks,
    center_lps: Vec3,
    mask: &Array3<bool>,
    origin: [usize; 3],
    src: &Volume,
) -> Location {
    let to_iso = iso.geometry.to_voxel();
    let v = to_iso.apply(center_lps);
    let (iz, iy, ix) = lungs.region.dim();
    let at = |x: f64, y: f64, z: f64| -> u8 {
        let (i, j, k) = (x.round(), y.round(), z.round());
        if i < 0.0 || j < 0.0 || k < 0.0 || i as usize >= ix || j as usize >= iy || k as usize >= iz
        {
            0
        } else {
            lungs.region[[k as usize, j as usize, i as usize]]
        }
    };
    // Side: the region label at the centre, else the nearest labelled voxel on the row.
    let mut side_label = at(v[0], v[1], v[2]);
    let mut step = 1.0;
    while side_label == 0 && step < 40.0 {
        side_label = at(v[0] - step, v[1], v[2]).max(at(v[0] + step, v[1], v[2]));
        step += 1.0;
    }
    let side = match side_label {
        RIGHT => Side::Right,
        LEFT => Side::Left,
        // Fall back on the patient x coordinate (LPS: negative x is the patient's right).
        _ => {
            if center_lps[0] < 0.0 {
                Side::Right
            } else {
                Side::Left
            }
        }
    };
    // Zone: thirds of the lungs' cranio-caudal extent (superior = larger patient z).
    let zone = match lungs.z_range {
        Some((a, b)) if b > a => {
            let za = iso.geometry.voxel_to_patient([0.0, 0.0, a as f64])[2];
            let zb = iso.geometry.voxel_to_patient([0.0, 0.0, b as f64])[2];
            let (lo, hi) = (za.min(zb), za.max(zb));
            let t = ((center_lps[2] - lo) / (hi - lo)).clamp(0.0, 1.0);
            if t > 2.0 / 3.0 {
                Zone::Upper
            } else if t > 1.0 / 3.0 {
                Zone::Middle
            } else {
                Zone::Lower
            }
        }
        _ => Zone::Middle,
    };
    // Pleural contact: a mask voxel within 2 mm (in-plane) of the outside of the lung region.
    let g = &src.geometry;
    let mut juxtapleural = false;
    'outer: for ((k, j, i), &m) in mask.indexed_iter() {
        if !m {
            continue;
        }
        for (dx, dy) in [(2.0, 0.0), (-2.0, 0.0), (0.0, 2.0), (0.0, -2.0)] {
            let p = g.voxel_to_patient([
                (origin[0] + i) as f64 + dx / g.spacing[0],
                (origin[1] + j) as f64 + dy / g.spacing[1],
                (origin[2] + k) as f64,
            ]);
            let q = to_iso.apply(p);
            if at(q[0], q[1], q[2]) == 0 {
                juxtapleural = true;
                break 'outer;
            }
        }
    }
    Location {
        side,
        zone,
        // Set from the lobe approximation (core::anatomy) by the pipeline.
        upper_lobe: false,
        juxtapleural,
        lobe: crate::anatomy::Lobe::Unknown,
        lobe_method: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::{axes, open_inplane, percentile};
    use ndarray::Array3;

    /// A small deterministic pseudo-random sequence (xorshift).
    fn noise(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed.max(1);
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    #[test]
    fn the_opening_on_the_mask_bounds_is_that_of_the_whole_slice() {
        // The opening of before: both distance transforms on the whole slice.
        let whole = |m: &Array3<bool>, r: f32| {
            let mut out = m.clone();
            for (k, mut plane) in out.outer_iter_mut().enumerate() {
                let src = m.index_axis(ndarray::Axis(0), k);
                let inv = src.mapv(|v| !v);
                let eroded = crate::imgproc::edt2_sq(inv.view()).mapv(|d| d > r * r);
                let d_er = crate::imgproc::edt2_sq(eroded.view());
                plane.assign(
                    &ndarray::Zip::from(&d_er)
                        .and(&src)
                        .map_collect(|&d, &s| s && d <= r * r),
                );
            }
            out
        };
        let mut rnd = noise(7);
        for case in 0..40 {
            let (nz, ny, nx) = (3, 20 + case % 7, 24 + case % 5);
            // Blobs of random centre and radius, some touching or filling the box.
            let blobs: Vec<[f64; 3]> = (0..1 + case % 4)
                .map(|_| {
                    [
                        (rnd() % nx as u64) as f64,
                        (rnd() % ny as u64) as f64,
                        1.0 + (rnd() % 14) as f64,
                    ]
                })
                .collect();
            // Slice 0 and 2: the blobs; slice 1: full, or scattered pixels.
            let m = Array3::from_shape_fn((nz, ny, nx), |(k, j, i)| {
                let in_blob = blobs
                    .iter()
                    .any(|b| (i as f64 - b[0]).powi(2) + (j as f64 - b[1]).powi(2) <= b[2] * b[2]);
                match k {
                    1 if case % 3 == 0 => rnd().is_multiple_of(3),
                    1 => true,
                    _ => in_blob,
                }
            });
            let m = if case % 5 == 0 {
                Array3::from_shape_fn(m.dim(), |(k, j, i)| k == 2 && m[[k, j, i]])
            } else {
                m
            };
            for r in [0.7f32, 2.7, 4.7] {
                assert_eq!(open_inplane(&m, r), whole(&m, r), "case {case} r {r}");
            }
        }
    }

    #[test]
    fn the_percentile_is_the_element_at_its_rank_in_sorted_order() {
        let mut rnd = noise(11);
        for n in [1usize, 2, 3, 10, 101, 1000] {
            let v: Vec<f64> = (0..n).map(|_| (rnd() % 200) as f64 - 100.5).collect();
            for q in [0.0, 0.25, 0.5, 0.9, 1.0] {
                let mut sorted = v.clone();
                sorted.sort_by(f64::total_cmp);
                let want = sorted[((n - 1) as f64 * q).round() as usize];
                assert_eq!(percentile(&mut v.clone(), q), Some(want), "n {n} q {q}");
            }
        }
        assert_eq!(percentile(&mut [], 0.5), None);
    }

    /// Distance (mm) between two box pixel positions.
    fn mm(a: [f64; 2], b: [f64; 2], sx: f64, sy: f64) -> f64 {
        (((a[0] - b[0]) * sx).powi(2) + ((a[1] - b[1]) * sy).powi(2)).sqrt()
    }

    #[test]
    fn the_drawn_axes_are_as_long_as_the_reported_ones() {
        // An ellipse 21 × 11 px on anisotropic pixels, a tilted bar, one pixel.
        let (sx, sy) = (0.57, 0.7);
        let ellipse = ndarray::Array2::from_shape_fn((15, 25), |(y, x)| {
            let (dx, dy) = (x as f64 - 12.0, y as f64 - 7.0);
            (dx / 10.5).powi(2) + (dy / 5.5).powi(2) <= 1.0
        });
        let bar =
            ndarray::Array2::from_shape_fn((20, 20), |(y, x)| (x as i64 - y as i64).abs() <= 1);
        let dot = ndarray::Array2::from_shape_fn((3, 3), |(y, x)| x == 1 && y == 1);
        for (what, m) in [("ellipse", ellipse), ("bar", bar), ("dot", dot)] {
            let (long, short, la, sa) = axes(&m, sx, sy);
            assert!(long >= short && short > 0.0, "{what}: {long} {short}");
            assert!(
                (mm(la[0], la[1], sx, sy) - long).abs() < 1e-9,
                "{what} long"
            );
            assert!(
                (mm(sa[0], sa[1], sx, sy) - short).abs() < 1e-9,
                "{what} short"
            );
        }
    }
}
