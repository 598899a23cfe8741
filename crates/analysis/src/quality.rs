//! Image-quality warnings found in the analysed volume: motion, and the
//! standing "needs prior exams" notice. (Thick slices and contrast come from
//! the DICOM header, in [`crate::series`].)
//!
//! **Motion** is detected only when it is gross: patient or breathing motion
//! between slices displaces the lungs on one slice against its neighbours.
//! Per source slice and per lung (where each lung is at least half its
//! largest cross section, so the apex and the diaphragm dome, which change
//! fast anyway, are left out) the lung's area and centroid are compared with
//! the mean of the two neighbouring slices; when *both* lungs are off — a
//! centroid by ≥ 5 mm in-plane, or an area by ≥ 25 % — a warning names the
//! slice (a lesion or the dome changes one lung; motion moves the chest).
//! Blurring within a slice, or motion smaller than that, is not detected.

use ndarray::Axis;

use crate::lungs::{LEFT, LungMasks, RIGHT};
use crate::series::{Severity, Warning};
use crate::volume::Volume;

/// In-plane centroid displacement (mm) against the neighbours that counts as motion.
pub const MOTION_SHIFT_MM: f64 = 5.0;
/// Relative area deviation against the neighbours that counts as motion.
pub const MOTION_AREA: f64 = 0.25;

/// Per lung (right, left): area (mm²) and centroid (LPS x, y mm) on the iso
/// slice nearest to each source slice.
type LungProfile = [(f64, f64, f64); 2];

fn profile(iso: &Volume, lungs: &LungMasks, src: &Volume) -> Vec<LungProfile> {
    let (nz, _, _) = lungs.region.dim();
    let gi = &iso.geometry;
    let gs = &src.geometry;
    let px_area = gi.spacing[0] * gi.spacing[1];
    let centre = [gs.size[0] as f64 / 2.0, gs.size[1] as f64 / 2.0];
    (0..gs.size[2])
        .map(|s| {
            let p = gs.voxel_to_patient([centre[0], centre[1], s as f64]);
            let k = gi.patient_to_voxel(p)[2].round();
            let mut out = [(0.0, 0.0, 0.0); 2];
            if k < 0.0 || k as usize >= nz {
                return out;
            }
            let plane = lungs.region.index_axis(Axis(0), k as usize);
            let mut acc = [(0usize, 0.0f64, 0.0f64); 2];
            for ((j, i), &v) in plane.indexed_iter() {
                let side = match v {
                    RIGHT => 0,
                    LEFT => 1,
                    _ => continue,
                };
                acc[side].0 += 1;
                acc[side].1 += i as f64;
                acc[side].2 += j as f64;
            }
            for (o, (n, si, sj)) in out.iter_mut().zip(acc) {
                if n > 0 {
                    let c = gi.voxel_to_patient([si / n as f64, sj / n as f64, k]);
                    *o = (n as f64 * px_area, c[0], c[1]);
                }
            }
            out
        })
        .collect()
}

/// A `motion` warning when both lungs jump on a slice against both neighbours
/// (motion moves the whole chest; a lesion or the diaphragm dome changes one lung).
pub fn motion_warning(iso: &Volume, lungs: &LungMasks, src: &Volume) -> Option<Warning> {
    let prof = profile(iso, lungs, src);
    if prof.len() < 3 {
        return None;
    }
    let max_area: [f64; 2] =
        std::array::from_fn(|l| prof.iter().map(|p| p[l].0).fold(0.0, f64::max));
    if max_area.iter().any(|&m| m <= 0.0) {
        return None;
    }
    let mut worst: Option<(usize, f64, f64)> = None;
    for s in 1..prof.len() - 1 {
        // Per lung: displacement and relative area change against the neighbours.
        let mut dev = [(0.0f64, 0.0f64); 2];
        let mut judged = true;
        for (l, d) in dev.iter_mut().enumerate() {
            let (a, b, c) = (prof[s - 1][l], prof[s][l], prof[s + 1][l]);
            if [a, b, c].iter().any(|p| p.0 < 0.5 * max_area[l]) {
                judged = false;
                break;
            }
            let shift = (b.1 - (a.1 + c.1) / 2.0).hypot(b.2 - (a.2 + c.2) / 2.0);
            let mean = (a.0 + c.0) / 2.0;
            *d = (shift, (b.0 - mean).abs() / mean.max(1.0));
        }
        if !judged {
            continue;
        }
        let shift = dev[0].0.min(dev[1].0);
        let area = dev[0].1.min(dev[1].1);
        if (shift >= MOTION_SHIFT_MM || area >= MOTION_AREA)
            && worst.is_none_or(|w| shift + 10.0 * area > w.1 + 10.0 * w.2)
        {
            worst = Some((s, shift, area));
        }
    }
    let (s, shift, area) = worst?;
    Some(Warning::new(
        "motion",
        Severity::Warning,
        format!(
            "possible motion: on slice {s} (0-based) both lungs are displaced by at least \
             {shift:.1} mm or change their area by at least {:.0} % against the neighbouring \
             slices; sizes and shapes there may be distorted",
            area * 100.0
        ),
    ))
}

/// The standing notice that Lung-RADS at follow-up needs prior exams.
pub fn needs_prior_exams(findings: usize) -> Warning {
    Warning::new(
        "needs_prior_exams",
        if findings > 0 {
            Severity::Warning
        } else {
            Severity::Info
        },
        "Lung-RADS categories here assume a baseline exam: growth, stability and new-nodule \
         rules need prior chest CT, which this analysis does not see — compare with prior exams",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::LungSummary;
    use crate::volume::Geometry;
    use ndarray::Array3;

    /// Two elliptic-cylinder-like lungs on a 2 × 2 × 5 mm grid; slice `moved`
    /// (if any) shifted by `dx` voxels.
    fn lungs(moved: Option<(usize, i64)>) -> (Volume, LungMasks) {
        let (nx, ny, nz) = (100usize, 80usize, 30usize);
        let mut region = Array3::<u8>::zeros((nz, ny, nx));
        for k in 0..nz {
            let z = (k as f64 - 15.0) / 18.0;
            let scale = (1.0 - z * z).max(0.0).sqrt();
            let off = moved.filter(|m| m.0 == k).map_or(0, |m| m.1);
            for j in 0..ny {
                for i in 0..nx {
                    let x = i as i64 - off;
                    for (cx, lab) in [(28.0, 1u8), (72.0, 2u8)] {
                        let e =
                            ((x as f64 - cx) / 16.0).powi(2) + ((j as f64 - 40.0) / 28.0).powi(2);
                        if e <= scale * scale {
                            region[[k, j, i]] = lab;
                        }
                    }
                }
            }
        }
        let geometry = Geometry {
            size: [nx, ny, nz],
            spacing: [2.0, 2.0, 5.0],
            origin: [0.0; 3],
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        };
        let vol = Volume {
            hu: Array3::zeros((nz, ny, nx)),
            geometry,
        };
        let masks = LungMasks {
            aerated: region.clone(),
            region,
            summary: LungSummary {
                right_ml: 1.0,
                left_ml: 1.0,
                extent_mm: 150.0,
                truncated: false,
                laa950_fraction: 0.0,
            },
            inconclusive: None,
            z_range: Some((0, nz - 1)),
        };
        (vol, masks)
    }

    #[test]
    fn smooth_lungs_give_no_motion_warning() {
        let (v, l) = lungs(None);
        assert_eq!(motion_warning(&v, &l, &v), None);
    }

    #[test]
    fn a_displaced_slice_is_reported_as_motion() {
        let (v, l) = lungs(Some((14, 4))); // 8 mm sideways
        let w = motion_warning(&v, &l, &v).expect("motion found");
        assert_eq!(w.code, "motion");
        assert_eq!(w.severity, Severity::Warning);
        assert!(w.message.contains("slice 14"), "{}", w.message);
        // One lung displaced alone (a lesion, the dome) is not motion.
        let (v, mut l) = lungs(Some((14, 4)));
        let still = lungs(None).1;
        for ((k, j, i), r) in l.region.indexed_iter_mut() {
            if k == 14 && (i >= 50 || still.region[[k, j, i]] == LEFT) {
                *r = still.region[[k, j, i]];
            }
        }
        assert_eq!(motion_warning(&v, &l, &v), None);
        let (v, l) = lungs(Some((14, 2))); // 4 mm: below the threshold
        assert_eq!(motion_warning(&v, &l, &v), None);
    }

    #[test]
    fn prior_exams_notice_is_a_warning_with_findings() {
        assert_eq!(needs_prior_exams(1).severity, Severity::Warning);
        assert_eq!(needs_prior_exams(0).severity, Severity::Info);
        assert!(needs_prior_exams(0).message.contains("prior"));
    }
}
