//! Lobe approximation from the whole lung's anatomy.
//!
//! Lobes are not segmented (the fissures are not found). What the Brock model
//! needs — upper lobe or not — is approximated from landmarks every chest CT
//! that covers both lungs shows:
//!
//! - the **carina**: going down the trachea (an air column between the lungs,
//!   not part of either lung, 0.2–8 cm² in cross-section), the first slice
//!   where it has split into two main bronchi, one on each side;
//! - per lung, an oblique plane standing in for the **major fissure**: it
//!   runs through the lung's posterior edge at the carina level and its
//!   anterior edge at its lowest anterior slice (the major fissure runs from
//!   about T4–T5 posteriorly, the carina level, to the anterior diaphragm);
//!   the lung anterior and superior to it is upper lobe (left, lingula
//!   included) or upper + middle lobe (right);
//! - on the right, a horizontal plane [`MINOR_FISSURE_BELOW_CARINA_MM`] below
//!   the carina stands in for the **minor fissure** (at the level of the
//!   bronchus intermedius): above it upper lobe, below it middle lobe.
//!
//! The result is `unknown` — and the Brock model uses its stated default —
//! when the lungs are not covered from apex to base (the planes need both
//! ends), when no carina is found, or when a lung is missing. This is an
//! approximation: near the fissures, and with anatomical variants, it can be
//! wrong; the report names the method with every lobe it gives.

use ndarray::{Array2, Axis};
use serde::{Deserialize, Serialize};

use crate::imgproc::label2;
use crate::lungs::{LEFT, LungMasks, RIGHT};
use crate::report::Side;
use crate::volume::{Vec3, Volume};

/// Distance (mm) below the carina of the plane that stands in for the right minor fissure.
pub const MINOR_FISSURE_BELOW_CARINA_MM: f64 = 25.0;

/// HU below which a voxel is airway lumen.
const LUMEN_HU: i16 = -900;

/// Lobe of a finding (approximated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Lobe {
    /// Right upper lobe.
    RightUpper,
    /// Right middle lobe.
    RightMiddle,
    /// Right lower lobe.
    RightLower,
    /// Left upper lobe (lingula included).
    LeftUpper,
    /// Left lower lobe.
    LeftLower,
    /// Not determinable (partial coverage, no carina found).
    Unknown,
}

impl Lobe {
    /// True for the upper lobes (the Brock "upper lobe" term); `None` when unknown.
    pub fn is_upper(self) -> Option<bool> {
        match self {
            Lobe::RightUpper | Lobe::LeftUpper => Some(true),
            Lobe::Unknown => None,
            _ => Some(false),
        }
    }

    /// Human-readable name.
    pub fn name(self) -> &'static str {
        match self {
            Lobe::RightUpper => "right upper lobe",
            Lobe::RightMiddle => "right middle lobe",
            Lobe::RightLower => "right lower lobe",
            Lobe::LeftUpper => "left upper lobe",
            Lobe::LeftLower => "left lower lobe",
            Lobe::Unknown => "lobe unknown",
        }
    }
}

/// The major-fissure stand-in of one lung: a line in the (y, z) plane (LPS mm).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FissureLine {
    /// Posterior point `(y, z)`: the lung's posterior edge at the carina level.
    pub posterior: [f64; 2],
    /// Anterior point `(y, z)`: the lung's anterior edge at its lowest anterior slice.
    pub anterior: [f64; 2],
}

impl FissureLine {
    /// True when `(y, z)` lies anterior–superior of the line.
    fn above(&self, y: f64, z: f64) -> bool {
        let [y1, z1] = self.posterior;
        let [y2, z2] = self.anterior;
        if (y1 - y2).abs() < 1e-6 {
            return z > z1;
        }
        let zf = z1 + (y - y1) * (z2 - z1) / (y2 - y1);
        z > zf
    }
}

/// Landmarks found in one scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LungAnatomy {
    /// Patient z (mm, superior positive) of the carina, when found.
    pub carina_z_mm: Option<f64>,
    /// Right lung's fissure stand-in.
    pub right: Option<FissureLine>,
    /// Left lung's fissure stand-in.
    pub left: Option<FissureLine>,
    /// Why lobes cannot be given, when they cannot.
    pub unknown_reason: Option<String>,
}

/// Where a finding is by lobe, and how that was decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LobeEstimate {
    /// The lobe (approximated) or unknown.
    pub lobe: Lobe,
    /// How it was decided, or why it is unknown.
    pub method: String,
}

/// The method, as stated with every lobe given.
pub const METHOD: &str = "approximated from landmarks (carina; oblique plane through the \
posterior lung edge at the carina level and the anterior lung base for the major fissure; \
right minor fissure 25 mm below the carina), not a lobar segmentation";

impl LungAnatomy {
    /// Find the landmarks on the isotropic volume and its lung masks.
    pub fn estimate(iso: &Volume, lungs: &LungMasks) -> LungAnatomy {
        let fail = |why: &str| LungAnatomy {
            carina_z_mm: None,
            right: None,
            left: None,
            unknown_reason: Some(why.to_string()),
        };
        if lungs.summary.truncated {
            return fail("the lungs are not covered from apex to base (partial coverage)");
        }
        let (nz, _, _) = iso.hu.dim();
        if nz < 8 || lungs.region.dim() != iso.hu.dim() {
            return fail("too few slices to find the carina");
        }
        let slices = slice_z(iso);
        let Some(k_carina) = find_carina(iso, lungs, &slices) else {
            return fail("the carina (tracheal bifurcation) was not found");
        };
        let zc = slices[k_carina];
        let line = |label: u8| fissure_line(iso, lungs, &slices, label, k_carina);
        let (right, left) = (line(RIGHT), line(LEFT));
        if right.is_none() || left.is_none() {
            return fail("a lung is missing at the carina level or at its base");
        }
        LungAnatomy {
            carina_z_mm: Some(round1(zc)),
            right,
            left,
            unknown_reason: None,
        }
    }

    /// The lobe of a point (LPS mm) on `side`, without the method text
    /// ([`Lobe::Unknown`] when the landmarks are unknown). Allocation-free, for
    /// per-voxel use.
    pub fn lobe_of(&self, side: Side, p: Vec3) -> Lobe {
        if self.unknown_reason.is_some() {
            return Lobe::Unknown;
        }
        let (Some(zc), Some(r), Some(l)) = (self.carina_z_mm, self.right, self.left) else {
            return Lobe::Unknown;
        };
        let (y, z) = (p[1], p[2]);
        match side {
            Side::Right => {
                if !r.above(y, z) {
                    Lobe::RightLower
                } else if z > zc - MINOR_FISSURE_BELOW_CARINA_MM {
                    Lobe::RightUpper
                } else {
                    Lobe::RightMiddle
                }
            }
            Side::Left => {
                if l.above(y, z) {
                    Lobe::LeftUpper
                } else {
                    Lobe::LeftLower
                }
            }
        }
    }

    /// The lobe of a point (LPS mm) on `side`.
    pub fn lobe_at(&self, side: Side, p: Vec3) -> LobeEstimate {
        let unknown = |why: &str| LobeEstimate {
            lobe: Lobe::Unknown,
            method: why.to_string(),
        };
        if let Some(why) = &self.unknown_reason {
            return unknown(why);
        }
        let (Some(zc), Some(r), Some(l)) = (self.carina_z_mm, self.right, self.left) else {
            return unknown("no landmarks");
        };
        let (y, z) = (p[1], p[2]);
        let lobe = match side {
            Side::Right => {
                if !r.above(y, z) {
                    Lobe::RightLower
                } else if z > zc - MINOR_FISSURE_BELOW_CARINA_MM {
                    Lobe::RightUpper
                } else {
                    Lobe::RightMiddle
                }
            }
            Side::Left => {
                if l.above(y, z) {
                    Lobe::LeftUpper
                } else {
                    Lobe::LeftLower
                }
            }
        };
        LobeEstimate {
            lobe,
            method: METHOD.to_string(),
        }
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Patient z of each slice (centre of the slice).
fn slice_z(iso: &Volume) -> Vec<f64> {
    let g = &iso.geometry;
    let (nz, ny, nx) = iso.hu.dim();
    (0..nz)
        .map(|k| g.voxel_to_patient([nx as f64 / 2.0, ny as f64 / 2.0, k as f64])[2])
        .collect()
}

/// Mean column and row range of a lung label on one slice.
fn lung_on_slice(region: ndarray::ArrayView2<u8>, label: u8) -> Option<(f64, usize, usize, usize)> {
    let (mut n, mut sx, mut y0, mut y1) = (0usize, 0.0, usize::MAX, 0usize);
    for ((j, i), &v) in region.indexed_iter() {
        if v == label {
            n += 1;
            sx += i as f64;
            y0 = y0.min(j);
            y1 = y1.max(j);
        }
    }
    (n > 0).then(|| (sx / n as f64, y0, y1, n))
}

/// The slice index of the carina: walking from the top of the lungs down,
/// after at least 5 mm of a single tracheal air column, the first slice with
/// two airway columns on either side of the trachea's last centre.
fn find_carina(iso: &Volume, lungs: &LungMasks, slices: &[f64]) -> Option<usize> {
    let g = &iso.geometry;
    let (nz, ny, nx) = iso.hu.dim();
    let (px, pz) = (g.spacing[0].min(g.spacing[1]), g.spacing[2]);
    let px_area = g.spacing[0] * g.spacing[1];
    // Slice order from superior to inferior.
    let mut order: Vec<usize> = (0..nz).collect();
    order.sort_by(|&a, &b| slices[b].total_cmp(&slices[a]));
    let need_run = (5.0 / pz).ceil().max(1.0) as usize;
    let mut run = 0usize;
    let mut trachea_x: Option<f64> = None;
    for &k in &order {
        let region = lungs.region.index_axis(Axis(0), k);
        let (Some(r), Some(l)) = (lung_on_slice(region, RIGHT), lung_on_slice(region, LEFT)) else {
            if trachea_x.is_some() {
                run = 0;
            }
            continue;
        };
        let mid = (r.0 + l.0) / 2.0;
        let half = (40.0 / px).round() as i64;
        let (y0, y1) = (r.1.min(l.1), r.2.max(l.2));
        let hu = iso.hu.index_axis(Axis(0), k);
        let lumen = Array2::from_shape_fn((ny, nx), |(j, i)| {
            (i as f64 - mid).abs() <= half as f64
                && j >= y0
                && j <= y1
                && region[[j, i]] == 0
                && hu[[j, i]] < LUMEN_HU
        });
        let (labels, comps) = label2(lumen.view());
        // Components touching the window border are not airway.
        let mut touches = vec![false; comps.len() + 1];
        for ((j, i), &lab) in labels.indexed_iter() {
            if lab != 0 && ((i as f64 - mid).abs() >= half as f64 - 1.0 || j == y0 || j == y1) {
                touches[lab as usize] = true;
            }
        }
        let airways: Vec<_> = comps
            .iter()
            .filter(|c| {
                let mm2 = c.area as f64 * px_area;
                !touches[c.label as usize] && (20.0..=800.0).contains(&mm2)
            })
            .collect();
        match (airways.len(), trachea_x) {
            (1, _) if airways[0].area as f64 * px_area >= 80.0 => {
                run += 1;
                trachea_x = Some(airways[0].cx);
            }
            (n, Some(tx)) if n >= 2 && run >= need_run => {
                let split = airways.iter().any(|c| c.cx < tx - 2.0)
                    && airways.iter().any(|c| c.cx > tx + 2.0);
                let apart = airways
                    .iter()
                    .map(|c| c.cx)
                    .fold(f64::NEG_INFINITY, f64::max)
                    - airways.iter().map(|c| c.cx).fold(f64::INFINITY, f64::min);
                if split && apart * px >= 10.0 {
                    return Some(k);
                }
                run = 0;
            }
            _ => run = 0,
        }
    }
    None
}

/// The fissure stand-in of one lung.
fn fissure_line(
    iso: &Volume,
    lungs: &LungMasks,
    slices: &[f64],
    label: u8,
    k_carina: usize,
) -> Option<FissureLine> {
    let g = &iso.geometry;
    let ys = |k: usize| -> Vec<f64> {
        let region = lungs.region.index_axis(Axis(0), k);
        let mut v: Vec<f64> = region
            .indexed_iter()
            .filter(|(_, l)| **l == label)
            .map(|((j, i), _)| g.voxel_to_patient([i as f64, j as f64, k as f64])[1])
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let pct = |v: &[f64], q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    let at_carina = ys(k_carina);
    if at_carina.len() < 10 {
        return None;
    }
    let posterior = [pct(&at_carina, 0.95), slices[k_carina]];
    // The lung's anterior third (over its whole AP range), lowest slice that has it.
    let (nz, _, _) = lungs.region.dim();
    let mut all = Vec::new();
    for k in (0..nz).step_by(4) {
        all.extend(ys(k));
    }
    if all.len() < 10 {
        return None;
    }
    all.sort_by(f64::total_cmp);
    let (ya, yp) = (pct(&all, 0.02), pct(&all, 0.98));
    let band = ya + (yp - ya) / 3.0;
    let mut lowest: Option<(f64, usize)> = None;
    for (k, &z) in slices.iter().enumerate().take(nz) {
        let v = ys(k);
        if v.iter().filter(|&&y| y <= band).count() >= 20 && lowest.is_none_or(|(zl, _)| z < zl) {
            lowest = Some((z, k));
        }
    }
    let (z_low, k_low) = lowest?;
    let v = ys(k_low);
    let anterior = [pct(&v, 0.05), z_low];
    (anterior[1] < posterior[1] && anterior[0] < posterior[0]).then_some(FissureLine {
        posterior: posterior.map(round1),
        anterior: anterior.map(round1),
    })
}

#[cfg(test)]
mod tests {
    //! A synthetic chest on a 2 mm grid: two ellipsoid lungs, a trachea that
    //! splits at z = 152 mm into two main bronchi. Anatomy sources: the
    //! carina lies at about T4–T5, where the major fissure begins posteriorly;
    //! the major fissure reaches the diaphragm anteriorly; the minor fissure
    //! lies at about the level of the bronchus intermedius (Gray's Anatomy,
    //! 42nd ed., thorax: lungs; Webb, Fundamentals of Body CT, chest anatomy).
    //! Brock's "upper lobe" term: McWilliams et al., NEJM 2013;369:910–919.
    use super::*;
    use crate::report::LungSummary;
    use crate::volume::Geometry;
    use ndarray::Array3;

    const S: f64 = 2.0;
    const N: [usize; 3] = [80, 60, 120]; // x, y, z voxels: 160 × 120 × 240 mm

    fn in_lung(x: f64, y: f64, z: f64) -> u8 {
        let e = |cx: f64| {
            ((x - cx) / 30.0).powi(2) + ((y - 60.0) / 45.0).powi(2) + ((z - 120.0) / 100.0).powi(2)
        };
        if e(40.0) <= 1.0 {
            RIGHT // LPS: patient right is low x
        } else if e(120.0) <= 1.0 {
            LEFT
        } else {
            0
        }
    }

    fn in_airway(x: f64, y: f64, z: f64) -> bool {
        let tube = |a: [f64; 3], b: [f64; 3], r: f64| {
            let ab = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
            let ap = [x - a[0], y - a[1], z - a[2]];
            let len2 = ab.iter().map(|v| v * v).sum::<f64>();
            let t = (ap.iter().zip(&ab).map(|(p, q)| p * q).sum::<f64>() / len2).clamp(0.0, 1.0);
            let d: f64 = (0..3).map(|i| (ap[i] - t * ab[i]).powi(2)).sum();
            d <= r * r
        };
        tube([80.0, 60.0, 240.0], [80.0, 60.0, 152.0], 8.0)
            || tube([80.0, 60.0, 152.0], [58.0, 60.0, 128.0], 5.0)
            || tube([80.0, 60.0, 152.0], [102.0, 60.0, 128.0], 5.0)
    }

    fn chest(truncate_top: bool, airway: bool) -> (Volume, LungMasks) {
        let [nx, ny, nz] = N;
        let mut hu = Array3::<i16>::from_elem((nz, ny, nx), 40);
        let mut region = Array3::<u8>::zeros((nz, ny, nx));
        for k in 0..nz {
            for j in 0..ny {
                for i in 0..nx {
                    let (x, y, z) = (i as f64 * S, j as f64 * S, k as f64 * S);
                    let l = in_lung(x, y, z);
                    if l != 0 {
                        region[[k, j, i]] = l;
                        hu[[k, j, i]] = -850;
                    } else if airway && in_airway(x, y, z) {
                        hu[[k, j, i]] = -1000;
                    }
                }
            }
        }
        let geometry = Geometry {
            size: N,
            spacing: [S, S, S],
            origin: [0.0, 0.0, 0.0],
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        };
        let lungs = LungMasks {
            aerated: region.clone(),
            region,
            summary: LungSummary {
                right_ml: 1000.0,
                left_ml: 1000.0,
                extent_mm: 200.0,
                truncated: truncate_top,
                laa950_fraction: 0.0,
            },
            inconclusive: None,
            z_range: Some((10, 110)),
        };
        (Volume { hu, geometry }, lungs)
    }

    #[test]
    fn carina_and_lobes_of_a_synthetic_chest() {
        let (iso, lungs) = chest(false, true);
        let a = LungAnatomy::estimate(&iso, &lungs);
        assert_eq!(a.unknown_reason, None, "{a:?}");
        let zc = a.carina_z_mm.unwrap();
        // Built: the bronchi leave the trachea at z = 152 mm; two separate
        // lumens (the detection) exist a few mm below that.
        assert!(
            (140.0..=152.0).contains(&zc),
            "carina at {zc} mm, built at 152 mm"
        );
        let lobe = |side, y: f64, z: f64| a.lobe_at(side, [0.0, y, z]).lobe;
        // LPS: small y is anterior.
        assert_eq!(lobe(Side::Right, 60.0, 190.0), Lobe::RightUpper); // apex
        assert_eq!(lobe(Side::Right, 30.0, 140.0), Lobe::RightUpper); // anterior, just below the carina
        assert_eq!(lobe(Side::Right, 25.0, 90.0), Lobe::RightMiddle); // anterior, low
        assert_eq!(lobe(Side::Right, 95.0, 90.0), Lobe::RightLower); // posterior, low
        assert_eq!(lobe(Side::Right, 100.0, 140.0), Lobe::RightLower); // posterior at carina level: superior segment
        assert_eq!(lobe(Side::Left, 25.0, 90.0), Lobe::LeftUpper); // lingula
        assert_eq!(lobe(Side::Left, 95.0, 90.0), Lobe::LeftLower);
        assert_eq!(lobe(Side::Left, 60.0, 190.0), Lobe::LeftUpper);
        assert_eq!(Lobe::RightMiddle.is_upper(), Some(false));
        assert_eq!(Lobe::LeftUpper.is_upper(), Some(true));
        let e = a.lobe_at(Side::Right, [0.0, 60.0, 190.0]);
        assert!(e.method.contains("not a lobar segmentation"));
    }

    #[test]
    fn partial_coverage_or_no_carina_gives_unknown() {
        let (iso, lungs) = chest(true, true);
        let a = LungAnatomy::estimate(&iso, &lungs);
        let e = a.lobe_at(Side::Right, [0.0, 60.0, 190.0]);
        assert_eq!(e.lobe, Lobe::Unknown);
        assert_eq!(e.lobe.is_upper(), None);
        assert!(e.method.contains("partial coverage"), "{}", e.method);
        let (iso, lungs) = chest(false, false);
        let a = LungAnatomy::estimate(&iso, &lungs);
        assert_eq!(
            a.lobe_at(Side::Left, [0.0, 60.0, 190.0]).lobe,
            Lobe::Unknown
        );
        assert!(a.unknown_reason.unwrap().contains("carina"));
    }
}
