//! Calcification pattern of a segmented nodule.
//!
//! ACR Lung-RADS v2022 gives category 1 (negative) only to nodules with a
//! *benign* pattern of calcification — complete, central, popcorn or
//! concentric rings (laminated) — and to fat-containing nodules. Any other
//! calcification (eccentric, stippled/punctate, amorphous) does not make a
//! nodule benign: it is categorised by its size and attenuation like any
//! other nodule. This module tells the patterns apart from the HU values of
//! the finding's mask; [`CalcificationPattern::is_benign`] is the v2022 list.
//!
//! Method (all thresholds in [`CalcificationOptions`]):
//!
//! 1. Calcified voxels: mask voxels at or above `calcified_hu` (200 HU).
//!    Fewer than `min_voxels` of them, and below 2 % of the nodule: no calcification.
//! 2. Each voxel's *normalised radius* r: its distance from the nodule's
//!    centroid along each axis divided by the nodule's half extent along that
//!    axis (an ellipsoid fills r ≤ 1; the centre is r = 0).
//! 3. In this order:
//!    - **complete** (diffuse): ≥ `complete_fraction` (60 %) of the nodule is
//!      calcified, or its mean HU is at or above `calcified_hu`;
//!    - **laminated** (concentric rings): one continuous focus surrounds the
//!      centre — in-plane it covers ≥ 9 of 12 sectors of 30° around the
//!      centroid — and ≥ 60 % of the calcium lies in a shell 0.35 ≤ r ≤ 0.9;
//!    - several separate foci (≥ 3 components, 26-connected): **popcorn**
//!      when the foci are coarse (median largest in-plane extent ≥ 2 mm) and
//!      make up ≥ 5 % of the nodule, otherwise **stippled** (punctate);
//!    - **central**: the calcification's centroid lies at r ≤ 0.3 and ≥ 80 %
//!      of its voxels at r ≤ 0.55;
//!    - otherwise **eccentric** (an off-centre focus).
//!
//! Partial-volume averaging on thick slices lowers the HU of small foci, so a
//! thin-slice reconstruction is needed for small calcifications to be seen at
//! all; fat (v2022 category 1 for fat-containing nodules) is not assessed.

use ndarray::Array3;
use serde::{Deserialize, Serialize};

/// Calcification pattern of a nodule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CalcificationPattern {
    /// No calcified voxels.
    #[serde(rename = "none")]
    Absent,
    /// Complete (diffuse) calcification of the whole nodule — benign.
    Complete,
    /// A central nidus of calcium — benign.
    Central,
    /// Concentric rings (laminated) — benign.
    Laminated,
    /// Coarse, chondroid foci throughout ("popcorn", hamartoma) — benign.
    Popcorn,
    /// One off-centre focus — not a benign pattern.
    Eccentric,
    /// Several small punctate foci — not a benign pattern.
    Stippled,
}

impl CalcificationPattern {
    /// True for the patterns ACR Lung-RADS v2022 lists as benign (category 1):
    /// complete, central, popcorn and concentric rings.
    pub fn is_benign(self) -> bool {
        matches!(
            self,
            CalcificationPattern::Complete
                | CalcificationPattern::Central
                | CalcificationPattern::Laminated
                | CalcificationPattern::Popcorn
        )
    }

    /// snake_case name (as in the JSON report).
    pub fn as_str(self) -> &'static str {
        match self {
            CalcificationPattern::Absent => "none",
            CalcificationPattern::Complete => "complete",
            CalcificationPattern::Central => "central",
            CalcificationPattern::Laminated => "laminated",
            CalcificationPattern::Popcorn => "popcorn",
            CalcificationPattern::Eccentric => "eccentric",
            CalcificationPattern::Stippled => "stippled",
        }
    }
}

/// Thresholds of the pattern classifier. Defaults are documented per field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalcificationOptions {
    /// HU at or above which a voxel is calcified. Default 200.
    pub calcified_hu: f64,
    /// Fewest calcified voxels for any calcification. Default 2.
    pub min_voxels: usize,
    /// Calcified fraction of the nodule at or above which it is completely calcified. Default 0.6.
    pub complete_fraction: f64,
    /// Median largest in-plane extent (mm) of the foci at or above which
    /// several foci are coarse (popcorn) rather than punctate (stippled). Default 2 mm.
    pub coarse_focus_mm: f64,
    /// Calcified fraction at or above which coarse foci are popcorn. Default 0.05.
    pub popcorn_fraction: f64,
}

impl Default for CalcificationOptions {
    fn default() -> Self {
        CalcificationOptions {
            calcified_hu: 200.0,
            min_voxels: 2,
            complete_fraction: 0.6,
            coarse_focus_mm: 2.0,
            popcorn_fraction: 0.05,
        }
    }
}

/// The calcification of one nodule: pattern and the figures that decided it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Calcification {
    /// The pattern.
    pub pattern: CalcificationPattern,
    /// True when the pattern is benign in Lung-RADS v2022 (category 1).
    pub benign: bool,
    /// Fraction of the nodule's voxels at or above the calcium threshold.
    pub fraction: f64,
    /// Number of separate calcified foci (26-connected).
    pub foci: usize,
    /// Normalised radius (0 centre, 1 edge) of the calcification's centroid.
    pub centroid_radius: f64,
    /// Why this pattern, in words.
    pub reason: String,
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Classify the calcification of the nodule `mask` (`[z, y, x]` box) from the
/// HU values `hu` of the same box; `spacing_xyz` in mm.
pub fn classify(
    mask: &Array3<bool>,
    hu: &Array3<f64>,
    spacing_xyz: [f64; 3],
    opts: &CalcificationOptions,
) -> Calcification {
    let none = |reason: String, fraction: f64| Calcification {
        pattern: CalcificationPattern::Absent,
        benign: false,
        fraction: round3(fraction),
        foci: 0,
        centroid_radius: 0.0,
        reason,
    };
    let vox: Vec<[usize; 3]> = mask
        .indexed_iter()
        .filter(|(_, m)| **m)
        .map(|((k, j, i), _)| [i, j, k])
        .collect();
    if vox.is_empty() || hu.dim() != mask.dim() {
        return none("empty mask".into(), 0.0);
    }
    let n = vox.len() as f64;
    let [sx, sy, sz] = spacing_xyz;
    // Centroid and half extents (mm) of the nodule.
    let mut c = [0.0f64; 3];
    let mut lo = [usize::MAX; 3];
    let mut hi = [0usize; 3];
    for v in &vox {
        for a in 0..3 {
            c[a] += v[a] as f64 / n;
            lo[a] = lo[a].min(v[a]);
            hi[a] = hi[a].max(v[a]);
        }
    }
    let sp = [sx, sy, sz];
    let half: [f64; 3] =
        std::array::from_fn(|a| ((hi[a] - lo[a] + 1) as f64 * sp[a] / 2.0).max(1e-6));
    let rnorm = |p: [f64; 3]| -> f64 {
        (0..3)
            .map(|a| ((p[a] - c[a]) * sp[a] / half[a]).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let at = |v: [usize; 3]| hu[[v[2], v[1], v[0]]];
    let calc: Vec<[usize; 3]> = vox
        .iter()
        .copied()
        .filter(|&v| at(v) >= opts.calcified_hu)
        .collect();
    let fraction = calc.len() as f64 / n;
    let mean_hu = vox.iter().map(|&v| at(v)).sum::<f64>() / n;
    if calc.len() < opts.min_voxels && fraction < 0.02 {
        return none(
            format!(
                "{} voxel(s) ≥ {} HU ({:.1} % of the nodule): no calcification",
                calc.len(),
                opts.calcified_hu,
                fraction * 100.0
            ),
            fraction,
        );
    }
    // Calcification centroid and foci.
    let nc = calc.len() as f64;
    let mut cc = [0.0f64; 3];
    for v in &calc {
        for a in 0..3 {
            cc[a] += v[a] as f64 / nc;
        }
    }
    let centroid_radius = rnorm(cc);
    let foci = components26(mask.dim(), &calc);
    let result = |pattern: CalcificationPattern, reason: String| Calcification {
        pattern,
        benign: pattern.is_benign(),
        fraction: round3(fraction),
        foci: foci.len(),
        centroid_radius: round3(centroid_radius),
        reason,
    };
    let pct = fraction * 100.0;
    if fraction >= opts.complete_fraction || mean_hu >= opts.calcified_hu {
        return result(
            CalcificationPattern::Complete,
            format!(
                "{pct:.0} % of the nodule ≥ {} HU (mean {mean_hu:.0} HU): complete calcification",
                opts.calcified_hu
            ),
        );
    }
    // Sectors around the centroid covered in-plane by the largest focus: a
    // ring is one continuous focus around the centre; separate foci around
    // it (popcorn) each cover only a few sectors.
    let sectors_of = |vox: &[[usize; 3]]| {
        let mut sectors = [false; 12];
        for v in vox {
            let dx = (v[0] as f64 - c[0]) * sx;
            let dy = (v[1] as f64 - c[1]) * sy;
            // In-plane normalised radius: voxels near the axis (a cap above or
            // below the centre) surround nothing.
            if (dx / half[0]).hypot(dy / half[1]) < 0.3 {
                continue;
            }
            let a = dy.atan2(dx).to_degrees().rem_euclid(360.0);
            sectors[((a / 30.0) as usize).min(11)] = true;
        }
        sectors.iter().filter(|&&s| s).count()
    };
    let largest = foci
        .iter()
        .max_by_key(|f| f.len())
        .map_or(&[][..], |f| &f[..]);
    let covered = sectors_of(largest);
    let radii: Vec<f64> = calc.iter().map(|&v| rnorm(v.map(|x| x as f64))).collect();
    let in_shell = radii.iter().filter(|&&r| (0.35..=0.9).contains(&r)).count() as f64 / nc;
    if covered >= 9 && in_shell >= 0.6 {
        return result(
            CalcificationPattern::Laminated,
            format!(
                "calcium in a continuous ring around the centre ({covered}/12 sectors, {:.0} % in \
                 the shell): concentric (laminated) calcification",
                in_shell * 100.0
            ),
        );
    }
    if foci.len() >= 3 {
        let mut extents: Vec<f64> = foci.iter().map(|f| inplane_extent_mm(f, sx, sy)).collect();
        extents.sort_by(f64::total_cmp);
        let median = extents[extents.len() / 2];
        if median >= opts.coarse_focus_mm && fraction >= opts.popcorn_fraction {
            return result(
                CalcificationPattern::Popcorn,
                format!(
                    "{} coarse foci (median {median:.1} mm, {pct:.0} % of the nodule): popcorn calcification",
                    foci.len()
                ),
            );
        }
        return result(
            CalcificationPattern::Stippled,
            format!(
                "{} small foci (median {median:.1} mm, {pct:.0} % of the nodule): stippled \
                 calcification, not a benign pattern",
                foci.len()
            ),
        );
    }
    let central = radii.iter().filter(|&&r| r <= 0.55).count() as f64 / nc;
    if centroid_radius <= 0.3 && central >= 0.8 {
        return result(
            CalcificationPattern::Central,
            format!(
                "calcium at the centre (centroid at r = {centroid_radius:.2}, {:.0} % within r ≤ 0.55): \
                 central calcification",
                central * 100.0
            ),
        );
    }
    result(
        CalcificationPattern::Eccentric,
        format!(
            "calcium off-centre (centroid at r = {centroid_radius:.2}, {pct:.0} % of the nodule): \
             eccentric calcification, not a benign pattern"
        ),
    )
}

/// Largest in-plane extent (mm, edge to edge) of a set of voxels.
fn inplane_extent_mm(vox: &[[usize; 3]], sx: f64, sy: f64) -> f64 {
    let mut best: f64 = 0.0;
    for (i, a) in vox.iter().enumerate() {
        for b in &vox[i..] {
            if a[2] != b[2] {
                continue;
            }
            let d = ((a[0] as f64 - b[0] as f64) * sx).hypot((a[1] as f64 - b[1] as f64) * sy);
            best = best.max(d);
        }
    }
    best + sx.min(sy)
}

/// 26-connected components of a voxel list inside a box of `dim` `(z, y, x)`.
fn components26(dim: (usize, usize, usize), vox: &[[usize; 3]]) -> Vec<Vec<[usize; 3]>> {
    let (nz, ny, nx) = dim;
    let mut id = Array3::<u32>::zeros(dim);
    for (n, v) in vox.iter().enumerate() {
        id[[v[2], v[1], v[0]]] = n as u32 + 1;
    }
    let mut seen = vec![false; vox.len()];
    let mut out = Vec::new();
    for start in 0..vox.len() {
        if seen[start] {
            continue;
        }
        seen[start] = true;
        let mut comp = vec![vox[start]];
        let mut stack = vec![vox[start]];
        while let Some([x, y, z]) = stack.pop() {
            for dz in -1i64..=1 {
                for dy in -1i64..=1 {
                    for dx in -1i64..=1 {
                        let (a, b, c) = (x as i64 + dx, y as i64 + dy, z as i64 + dz);
                        if a < 0 || b < 0 || c < 0 {
                            continue;
                        }
                        let (a, b, c) = (a as usize, b as usize, c as usize);
                        if a >= nx || b >= ny || c >= nz {
                            continue;
                        }
                        let k = id[[c, b, a]];
                        if k != 0 && !seen[k as usize - 1] {
                            seen[k as usize - 1] = true;
                            comp.push([a, b, c]);
                            stack.push([a, b, c]);
                        }
                    }
                }
            }
        }
        out.push(comp);
    }
    out
}

#[cfg(test)]
mod tests {
    //! Synthetic nodules with each pattern. Source of the benign list: ACR
    //! Lung-RADS v2022, category 1 ("nodule(s) with specific calcifications:
    //! complete, central, popcorn, concentric rings and fat-containing
    //! nodules"); eccentric and stippled calcification are not on that list
    //! (and can occur in malignancy: Fleischner Society, MacMahon et al.,
    //! Radiology 2017;284:228–243), so those nodules are categorised by size.
    use super::*;
    use CalcificationPattern::*;

    /// A 10 mm sphere of soft tissue (40 HU) in lung (−850 HU) on a grid of
    /// `spacing` mm, with calcium (400 HU) wherever `calcium(dx, dy, dz)`
    /// (mm from the centre) holds. Returns (mask, hu).
    fn nodule(
        spacing: [f64; 3],
        calcium: impl Fn(f64, f64, f64) -> bool,
    ) -> (Array3<bool>, Array3<f64>) {
        let r = 5.0;
        let n: [usize; 3] =
            std::array::from_fn(|a| (2.0 * (r + 1.0) / spacing[a]).ceil() as usize + 1);
        let centre: [f64; 3] = std::array::from_fn(|a| (n[a] - 1) as f64 / 2.0);
        let mut mask = Array3::from_elem((n[2], n[1], n[0]), false);
        let mut hu = Array3::from_elem((n[2], n[1], n[0]), -850.0);
        for k in 0..n[2] {
            for j in 0..n[1] {
                for i in 0..n[0] {
                    let d = [
                        (i as f64 - centre[0]) * spacing[0],
                        (j as f64 - centre[1]) * spacing[1],
                        (k as f64 - centre[2]) * spacing[2],
                    ];
                    if d[0] * d[0] + d[1] * d[1] + d[2] * d[2] <= r * r {
                        mask[[k, j, i]] = true;
                        hu[[k, j, i]] = if calcium(d[0], d[1], d[2]) {
                            400.0
                        } else {
                            40.0
                        };
                    }
                }
            }
        }
        (mask, hu)
    }

    fn pattern(spacing: [f64; 3], calcium: impl Fn(f64, f64, f64) -> bool) -> Calcification {
        let (m, h) = nodule(spacing, calcium);
        classify(&m, &h, spacing, &CalcificationOptions::default())
    }

    const ISO: [f64; 3] = [0.5, 0.5, 0.5];
    const THICK: [f64; 3] = [0.6, 0.6, 1.25];

    fn sq(v: f64) -> f64 {
        v * v
    }

    #[test]
    fn no_calcium_is_none_and_not_benign() {
        for sp in [ISO, THICK] {
            let c = pattern(sp, |_, _, _| false);
            assert_eq!(c.pattern, Absent, "{c:?}");
            assert!(!c.benign);
        }
    }

    #[test]
    fn complete_calcification_is_benign() {
        for sp in [ISO, THICK] {
            let c = pattern(sp, |_, _, _| true);
            assert_eq!(c.pattern, Complete, "{c:?}");
            assert!(c.benign);
            // 70 % calcified (all but an outer rim) is still complete.
            let c = pattern(sp, |x, y, z| x * x + y * y + z * z <= sq(4.45));
            assert_eq!(c.pattern, Complete, "{c:?}");
        }
    }

    #[test]
    fn central_nidus_is_benign() {
        for sp in [ISO, THICK] {
            let c = pattern(sp, |x, y, z| x * x + y * y + z * z <= sq(1.6));
            assert_eq!(c.pattern, Central, "{c:?}");
            assert!(c.benign);
        }
    }

    #[test]
    fn concentric_ring_is_benign() {
        for sp in [ISO, THICK] {
            let c = pattern(sp, |x, y, z| {
                let r = (x * x + y * y + z * z).sqrt();
                (2.8..=3.6).contains(&r)
            });
            assert_eq!(c.pattern, Laminated, "{c:?}");
            assert!(c.benign);
        }
    }

    #[test]
    fn coarse_foci_throughout_are_popcorn_and_benign() {
        // Six coarse (2.4 mm) foci scattered through the nodule, centre included.
        let foci = [
            [3.0, 0.0, 0.0],
            [-3.0, 0.5, 0.0],
            [0.0, 3.0, -1.5],
            [0.5, -3.0, 1.5],
            [-0.5, 0.0, 3.2],
            [0.0, -0.2, -3.2],
        ];
        for sp in [ISO, THICK] {
            let c = pattern(sp, |x, y, z| {
                foci.iter()
                    .any(|f| sq(x - f[0]) + sq(y - f[1]) + sq(z - f[2]) <= sq(1.2))
            });
            assert_eq!(c.pattern, Popcorn, "{c:?}");
            assert!(c.benign);
        }
    }

    #[test]
    fn punctate_foci_are_stippled_and_not_benign() {
        // Single-voxel foci, far apart, on the iso grid (0.5 mm voxels).
        let pts: [[i64; 3]; 6] = [
            [4, 0, 0],
            [-4, 2, 0],
            [0, 5, 2],
            [1, -5, -2],
            [0, 0, 6],
            [-3, -3, -3],
        ];
        let c = pattern(ISO, |x, y, z| {
            let v = [
                (x / 0.5).round() as i64,
                (y / 0.5).round() as i64,
                (z / 0.5).round() as i64,
            ];
            pts.contains(&v)
        });
        assert_eq!(c.pattern, Stippled, "{c:?}");
        assert!(!c.benign);
    }

    #[test]
    fn off_centre_focus_is_eccentric_and_not_benign() {
        for sp in [ISO, THICK] {
            let c = pattern(sp, |x, y, z| sq(x - 3.2) + y * y + z * z <= sq(1.4));
            assert_eq!(c.pattern, Eccentric, "{c:?}");
            assert!(!c.benign);
        }
    }

    #[test]
    fn benign_list_is_the_v2022_list() {
        let benign: Vec<CalcificationPattern> = [
            Absent, Complete, Central, Laminated, Popcorn, Eccentric, Stippled,
        ]
        .into_iter()
        .filter(|p| p.is_benign())
        .collect();
        assert_eq!(benign, vec![Complete, Central, Laminated, Popcorn]);
    }
}
