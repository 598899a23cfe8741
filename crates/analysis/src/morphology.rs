//! Margin and shape of a segmented nodule, for the v2022 juxtapleural rule.
//!
//! ACR Lung-RADS v2022 makes a juxtapleural solid nodule < 10 mm category 2
//! when it has *smooth margins* and an *oval, lentiform or triangular* shape.
//! These are read here from the mask, slice by slice in the axial plane:
//!
//! - **solidity** = mask area / area of its convex hull (the hull of the
//!   pixel squares' corners). Smooth convex outlines — circles, ellipses,
//!   lenses, triangles — stay close to 1; lobulated or spiculated outlines
//!   fall well below. A digitised convex shape loses some solidity to its
//!   pixel staircase, more the smaller it is: about `staircase` (0.3) ×
//!   boundary pixels / pixels. Margins are smooth when, on every slice with at
//!   least 40 % of the largest slice's area, 1 − solidity is at most that
//!   staircase loss plus `tolerance` (0.03).
//! - **shape** of the largest slice: *triangular* when the hull is at most
//!   1.35 × the largest triangle inscribed in it (a triangle gives 1, an
//!   ellipse 4π/(3√3) ≈ 2.42); else *lentiform* when elongated (long/short
//!   extent ≥ 1.6); else *oval* (round included). Irregular when the
//!   margins are not smooth.
//!
//! Slices with fewer than 6 pixels are too small to judge: the shape is then
//! `unknown`, which never counts as benign.

use ndarray::{Array3, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// Axial shape of a nodule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// Oval or round, smooth.
    Oval,
    /// Lens-shaped (elongated, convex), smooth.
    Lentiform,
    /// Triangular, smooth.
    Triangular,
    /// Lobulated, spiculated or otherwise not smooth.
    Irregular,
    /// Too small to judge.
    Unknown,
}

/// Thresholds of the shape reader. Defaults are documented per field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MorphologyOptions {
    /// Expected solidity loss of a digitised convex outline per boundary pixel
    /// and pixel (the staircase). Default 0.3.
    pub staircase: f64,
    /// Solidity loss beyond the staircase still counted as smooth. Default 0.03.
    pub tolerance: f64,
    /// Hull / inscribed-triangle area ratio at or below which a shape is triangular. Default 1.35.
    pub max_triangle_ratio: f64,
    /// Elongation (long / short extent) at or above which a shape is lentiform. Default 1.6.
    pub min_lentiform_elongation: f64,
}

impl Default for MorphologyOptions {
    fn default() -> Self {
        MorphologyOptions {
            staircase: 0.3,
            tolerance: 0.03,
            max_triangle_ratio: 1.35,
            min_lentiform_elongation: 1.6,
        }
    }
}

/// Margin and shape figures of one nodule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Morphology {
    /// Shape class.
    pub shape: Shape,
    /// Smooth margins (no large slice loses more solidity than its staircase allows).
    pub smooth_margins: bool,
    /// Lowest solidity over the slices judged.
    pub solidity: f64,
    /// Long / short extent of the largest slice.
    pub elongation: f64,
    /// Hull area / largest inscribed triangle area of the largest slice.
    pub triangle_ratio: f64,
}

impl Morphology {
    /// Smooth margins and an oval, lentiform or triangular shape (the v2022 wording).
    pub fn is_benign_shape(&self) -> bool {
        self.smooth_margins
            && matches!(
                self.shape,
                Shape::Oval | Shape::Lentiform | Shape::Triangular
            )
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Margin and shape of the mask (`[z, y, x]`), pixel spacing `sx`, `sy` mm.
pub fn assess(mask: &Array3<bool>, sx: f64, sy: f64, opts: &MorphologyOptions) -> Morphology {
    let areas: Vec<usize> = mask
        .axis_iter(Axis(0))
        .map(|p| p.iter().filter(|&&v| v).count())
        .collect();
    let max_area = areas.iter().copied().max().unwrap_or(0);
    let unknown = Morphology {
        shape: Shape::Unknown,
        smooth_margins: false,
        solidity: 0.0,
        elongation: 0.0,
        triangle_ratio: 0.0,
    };
    if max_area < 6 {
        return unknown;
    }
    let kmax = areas.iter().position(|&a| a == max_area).unwrap_or(0);
    let mut min_solidity: f64 = 1.0;
    let mut smooth = true;
    for (k, &a) in areas.iter().enumerate() {
        if a < 6 || (a as f64) < 0.4 * max_area as f64 {
            continue;
        }
        let plane = mask.index_axis(Axis(0), k);
        let hull = hull_of(plane, sx, sy);
        let hull_area = polygon_area(&hull);
        if hull_area > 0.0 {
            let solidity = a as f64 * sx * sy / hull_area;
            min_solidity = min_solidity.min(solidity);
            let allowed =
                opts.staircase * boundary_pixels(plane) as f64 / a as f64 + opts.tolerance;
            smooth &= 1.0 - solidity <= allowed;
        }
    }
    let plane = mask.index_axis(Axis(0), kmax);
    let hull = hull_of(plane, sx, sy);
    let hull_area = polygon_area(&hull);
    let tri = max_inscribed_triangle(&hull);
    let triangle_ratio = if tri > 0.0 {
        hull_area / tri
    } else {
        f64::INFINITY
    };
    let elongation = elongation_of(&hull);
    let shape = if !smooth {
        Shape::Irregular
    } else if triangle_ratio <= opts.max_triangle_ratio {
        Shape::Triangular
    } else if elongation >= opts.min_lentiform_elongation {
        Shape::Lentiform
    } else {
        Shape::Oval
    };
    Morphology {
        shape,
        smooth_margins: smooth,
        solidity: round3(min_solidity.min(1.0)),
        elongation: round3(elongation),
        triangle_ratio: round3(triangle_ratio.min(99.0)),
    }
}

/// Mask pixels with a 4-neighbour outside the mask.
fn boundary_pixels(plane: ArrayView2<bool>) -> usize {
    let (ny, nx) = plane.dim();
    plane
        .indexed_iter()
        .filter(|&((j, i), &m)| {
            m && (i == 0
                || j == 0
                || i + 1 == nx
                || j + 1 == ny
                || !plane[[j, i - 1]]
                || !plane[[j, i + 1]]
                || !plane[[j - 1, i]]
                || !plane[[j + 1, i]])
        })
        .count()
}

/// Convex hull (counter-clockwise, mm) of the corners of the mask's pixels.
fn hull_of(plane: ArrayView2<bool>, sx: f64, sy: f64) -> Vec<[f64; 2]> {
    let mut pts = Vec::new();
    for ((j, i), &m) in plane.indexed_iter() {
        if m {
            for (dx, dy) in [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)] {
                pts.push([(i as f64 + dx) * sx, (j as f64 + dy) * sy]);
            }
        }
    }
    convex_hull(pts)
}

/// Andrew's monotone chain; collinear points dropped.
fn convex_hull(mut pts: Vec<[f64; 2]>) -> Vec<[f64; 2]> {
    pts.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    pts.dedup();
    if pts.len() < 3 {
        return pts;
    }
    let cross = |o: [f64; 2], a: [f64; 2], b: [f64; 2]| {
        (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
    };
    let mut hull: Vec<[f64; 2]> = Vec::with_capacity(pts.len() * 2);
    for &p in &pts {
        while hull.len() >= 2 && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0 {
            hull.pop();
        }
        hull.push(p);
    }
    let lower = hull.len() + 1;
    for &p in pts.iter().rev().skip(1) {
        while hull.len() >= lower && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0 {
            hull.pop();
        }
        hull.push(p);
    }
    hull.pop();
    hull
}

/// Shoelace area of a polygon.
fn polygon_area(p: &[[f64; 2]]) -> f64 {
    if p.len() < 3 {
        return 0.0;
    }
    let mut s = 0.0;
    for i in 0..p.len() {
        let (a, b) = (p[i], p[(i + 1) % p.len()]);
        s += a[0] * b[1] - b[0] * a[1];
    }
    s.abs() / 2.0
}

/// Area of the largest triangle with vertices on the hull (brute force over
/// vertices; hulls of small nodules have a few dozen vertices).
fn max_inscribed_triangle(h: &[[f64; 2]]) -> f64 {
    let n = h.len();
    let mut best: f64 = 0.0;
    for a in 0..n {
        for b in a + 1..n {
            for c in b + 1..n {
                best = best.max(polygon_area(&[h[a], h[b], h[c]]));
            }
        }
    }
    best
}

/// Longest hull diameter over the hull's width perpendicular to it.
fn elongation_of(h: &[[f64; 2]]) -> f64 {
    let (mut best, mut dir) = (0.0f64, [1.0, 0.0]);
    for (i, a) in h.iter().enumerate() {
        for b in &h[i + 1..] {
            let d = (b[0] - a[0]).hypot(b[1] - a[1]);
            if d > best {
                best = d;
                dir = [(b[0] - a[0]) / d, (b[1] - a[1]) / d];
            }
        }
    }
    let proj: Vec<f64> = h.iter().map(|p| -p[0] * dir[1] + p[1] * dir[0]).collect();
    let lo = proj.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = proj.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if hi > lo { best / (hi - lo) } else { 0.0 }
}

#[cfg(test)]
mod tests {
    //! Digitised shapes on a 0.6 mm grid. Source of the rule: ACR Lung-RADS
    //! v2022 category 2, juxtapleural nodules "< 10 mm … solid; smooth margins;
    //! and oval, lentiform or triangular shape".
    use super::*;

    const PX: f64 = 0.6;

    /// A 3-slice mask from a 2-D predicate on (x, y) in mm from the centre.
    fn mask(f: impl Fn(f64, f64) -> bool) -> Array3<bool> {
        let n = 50;
        Array3::from_shape_fn((3, n, n), |(_, j, i)| {
            let (x, y) = ((i as f64 - 25.0) * PX, (j as f64 - 25.0) * PX);
            f(x, y)
        })
    }

    fn shape(f: impl Fn(f64, f64) -> bool) -> Morphology {
        assess(&mask(f), PX, PX, &MorphologyOptions::default())
    }

    #[test]
    fn round_and_oval_nodules_are_smooth_ovals() {
        let m = shape(|x, y| x * x + y * y <= 16.0);
        assert_eq!(m.shape, Shape::Oval, "{m:?}");
        assert!(m.is_benign_shape());
        let m = shape(|x, y| (x / 4.5).powi(2) + (y / 3.5).powi(2) <= 1.0);
        assert_eq!(m.shape, Shape::Oval, "{m:?}");
    }

    #[test]
    fn lens_is_lentiform() {
        // Intersection of two discs of radius 6 mm whose centres are 9 mm apart.
        let m =
            shape(|x, y| (x - 4.5).powi(2) + y * y <= 36.0 && (x + 4.5).powi(2) + y * y <= 36.0);
        assert_eq!(m.shape, Shape::Lentiform, "{m:?}");
        assert!(m.is_benign_shape());
    }

    #[test]
    fn triangle_is_triangular() {
        // Base 9 mm along y = 3, apex at (0, -5).
        let m = shape(|x, y| y <= 3.0 && y >= -5.0 + 8.0 * x.abs() / 4.5);
        assert_eq!(m.shape, Shape::Triangular, "{m:?}");
        assert!(m.is_benign_shape());
    }

    #[test]
    fn spiculated_and_lobulated_outlines_are_irregular() {
        // A star: radius swinging between 1.5 and 6 mm with 7 spikes.
        let m = shape(|x, y| {
            let r = x.hypot(y);
            let a = y.atan2(x);
            r <= 3.75 + 2.25 * (7.0 * a).cos()
        });
        assert_eq!(m.shape, Shape::Irregular, "{m:?}");
        assert!(!m.is_benign_shape());
        // Three overlapping lobes.
        let m = shape(|x, y| {
            [(0.0, -3.0), (2.6, 1.5), (-2.6, 1.5)]
                .iter()
                .any(|(cx, cy)| (x - cx).powi(2) + (y - cy).powi(2) <= 4.0)
        });
        assert!(!m.smooth_margins, "{m:?}");
        // Shallow lobulation of a larger nodule: raw solidity stays near 0.9,
        // above what a staircase alone explains at that size.
        let m = shape(|x, y| x.hypot(y) <= 6.0 + 0.9 * (5.0 * y.atan2(x)).cos());
        assert_eq!(m.shape, Shape::Irregular, "{m:?}");
    }

    #[test]
    fn a_large_smooth_ellipse_stays_smooth() {
        let m = shape(|x, y| (x / 7.0).powi(2) + (y / 5.5).powi(2) <= 1.0);
        assert!(m.smooth_margins, "{m:?}");
        assert_eq!(m.shape, Shape::Oval);
    }

    #[test]
    fn tiny_masks_are_unknown_and_never_benign() {
        let m = shape(|x, y| x.abs() < 0.5 && y.abs() < 0.5);
        assert_eq!(m.shape, Shape::Unknown);
        assert!(!m.is_benign_shape());
    }
}
