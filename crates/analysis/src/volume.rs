//! Stage 2 of 11 — the volume: HU voxels in an `ndarray` (z, y, x) plus patient geometry.
//!
//! Coordinates follow DICOM: the patient coordinate system is LPS (x to the
//! patient's left, y posterior, z superior), in millimetres. Voxel index
//! `(i, j, k)` is (column, row, slice); the array is indexed `[k, j, i]`.

use ndarray::Array3;
use serde::{Deserialize, Serialize};

/// A 3-vector of `f64` (LPS millimetres or a direction cosine).
pub type Vec3 = [f64; 3];

/// Position, orientation and spacing of a voxel grid in patient space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Geometry {
    /// Grid size in voxels, `[x (columns), y (rows), z (slices)]`.
    pub size: [usize; 3],
    /// Voxel spacing in mm along `[x, y, z]` (z is the distance between slice centres).
    pub spacing: Vec3,
    /// LPS position (mm) of the centre of voxel (0, 0, 0).
    pub origin: Vec3,
    /// Unit direction vectors of the grid axes in LPS: `[row (x), column (y), slice (z)]`.
    /// The slice axis is the actual stacking direction, so it is not orthogonal to
    /// the image plane when the gantry was tilted.
    pub direction: [Vec3; 3],
}

impl Geometry {
    /// Number of voxels.
    pub fn len(&self) -> usize {
        self.size[0] * self.size[1] * self.size[2]
    }

    /// True when the grid holds no voxel.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Volume of one voxel in mm³.
    pub fn voxel_volume_mm3(&self) -> f64 {
        self.spacing[0] * self.spacing[1] * self.spacing[2] * self.shear_factor()
    }

    /// `|det|` of the unit direction matrix: 1 for orthogonal grids, cos(tilt) for tilted ones.
    fn shear_factor(&self) -> f64 {
        let [a, b, c] = self.direction;
        dot(cross(a, b), c).abs()
    }

    /// The direction cosines flattened as 9 numbers: row, then column, then slice axis.
    pub fn direction_flat(&self) -> [f64; 9] {
        let d = self.direction;
        [
            d[0][0], d[0][1], d[0][2], d[1][0], d[1][1], d[1][2], d[2][0], d[2][1], d[2][2],
        ]
    }

    /// Patient (LPS mm) position of a continuous voxel index `[i, j, k]` (x, y, z order).
    pub fn voxel_to_patient(&self, ijk: Vec3) -> Vec3 {
        let mut p = self.origin;
        for (axis, &idx) in ijk.iter().enumerate() {
            let step = idx * self.spacing[axis];
            for (pc, dc) in p.iter_mut().zip(self.direction[axis]) {
                *pc += step * dc;
            }
        }
        p
    }

    /// Continuous voxel index `[i, j, k]` of a patient (LPS mm) position.
    ///
    /// Works for sheared (tilted) grids too: it inverts the full 3×3 matrix.
    pub fn patient_to_voxel(&self, p: Vec3) -> Vec3 {
        self.to_voxel().apply(p)
    }

    /// [`patient_to_voxel`](Self::patient_to_voxel) with the matrix inverted
    /// once, for mapping many positions (the same arithmetic, the same results).
    pub fn to_voxel(&self) -> ToVoxel {
        ToVoxel {
            inv: invert3(self.matrix()).unwrap_or([[0.0; 3]; 3]),
            origin: self.origin,
        }
    }

    /// The voxel→patient matrix (columns are the scaled axis vectors), as rows.
    fn matrix(&self) -> [Vec3; 3] {
        let mut m = [[0.0; 3]; 3];
        for (r, row) in m.iter_mut().enumerate() {
            for (c, cell) in row.iter_mut().enumerate() {
                *cell = self.direction[c][r] * self.spacing[c];
            }
        }
        m
    }

    /// Physical extent of the grid in mm along each axis (centre of first to centre of last voxel).
    pub fn extent_mm(&self) -> Vec3 {
        [0, 1, 2].map(|a| self.size[a].saturating_sub(1) as f64 * self.spacing[a])
    }
}

/// A CT volume in Hounsfield units with its geometry.
///
/// HU are stored as `i16` (the modality LUT of CT is integral on every scanner
/// we know of; a non-integral rescale is rounded to the nearest HU). Pixels
/// marked by Pixel Padding Value are set to −1024 HU (air).
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    /// HU voxels indexed `[z, y, x]`.
    pub hu: Array3<i16>,
    /// Where those voxels are in the patient.
    pub geometry: Geometry,
}

/// Summary statistics of a volume's HU values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HuStats {
    /// Lowest HU.
    pub min: i16,
    /// Highest HU.
    pub max: i16,
    /// Mean HU.
    pub mean: f64,
}

impl Volume {
    /// Min, max and mean HU over the whole volume.
    pub fn hu_stats(&self) -> HuStats {
        use rayon::prelude::*;
        let data = self
            .hu
            .as_slice_memory_order()
            .map(|s| s.to_vec())
            .unwrap_or_else(|| self.hu.iter().copied().collect());
        let (min, max, sum) = data
            .par_chunks(1 << 16)
            .map(|c| {
                c.iter()
                    .fold((i16::MAX, i16::MIN, 0i64), |(lo, hi, s), &v| {
                        (lo.min(v), hi.max(v), s + v as i64)
                    })
            })
            .reduce(
                || (i16::MAX, i16::MIN, 0i64),
                |a, b| (a.0.min(b.0), a.1.max(b.1), a.2 + b.2),
            );
        let n = data.len().max(1) as f64;
        if data.is_empty() {
            return HuStats {
                min: 0,
                max: 0,
                mean: 0.0,
            };
        }
        HuStats {
            min,
            max,
            mean: sum as f64 / n,
        }
    }
}

/// The patient (LPS mm) → continuous voxel index map of a [`Geometry`]
/// ([`Geometry::to_voxel`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToVoxel {
    inv: [Vec3; 3],
    origin: Vec3,
}

impl ToVoxel {
    /// Continuous voxel index `[i, j, k]` of patient position `p`.
    pub fn apply(&self, p: Vec3) -> Vec3 {
        let d = [
            p[0] - self.origin[0],
            p[1] - self.origin[1],
            p[2] - self.origin[2],
        ];
        [
            dot(self.inv[0], d),
            dot(self.inv[1], d),
            dot(self.inv[2], d),
        ]
    }
}

/// Dot product.
pub fn dot(a: Vec3, b: Vec3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Cross product.
pub fn cross(a: Vec3, b: Vec3) -> Vec3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// Euclidean norm.
pub fn norm(a: Vec3) -> f64 {
    dot(a, a).sqrt()
}

/// Inverse of a 3×3 matrix given as rows, `None` when singular.
pub fn invert3(m: [Vec3; 3]) -> Option<[Vec3; 3]> {
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    if det.abs() < 1e-12 || !det.is_finite() {
        return None;
    }
    let inv_det = 1.0 / det;
    let mut r = [[0.0; 3]; 3];
    r[0][0] = (m[1][1] * m[2][2] - m[1][2] * m[2][1]) * inv_det;
    r[0][1] = (m[0][2] * m[2][1] - m[0][1] * m[2][2]) * inv_det;
    r[0][2] = (m[0][1] * m[1][2] - m[0][2] * m[1][1]) * inv_det;
    r[1][0] = (m[1][2] * m[2][0] - m[1][0] * m[2][2]) * inv_det;
    r[1][1] = (m[0][0] * m[2][2] - m[0][2] * m[2][0]) * inv_det;
    r[1][2] = (m[0][2] * m[1][0] - m[0][0] * m[1][2]) * inv_det;
    r[2][0] = (m[1][0] * m[2][1] - m[1][1] * m[2][0]) * inv_det;
    r[2][1] = (m[0][1] * m[2][0] - m[0][0] * m[2][1]) * inv_det;
    r[2][2] = (m[0][0] * m[1][1] - m[0][1] * m[1][0]) * inv_det;
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tilted() -> Geometry {
        let t = 15f64.to_radians();
        Geometry {
            size: [10, 20, 30],
            spacing: [0.7, 0.7, 2.5],
            origin: [-100.0, -50.0, 20.0],
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, t.sin(), t.cos()]],
        }
    }

    #[test]
    fn voxel_patient_round_trip_on_tilted_grid() {
        let g = tilted();
        let ijk = [3.25, 7.5, 11.0];
        let p = g.voxel_to_patient(ijk);
        let back = g.patient_to_voxel(p);
        for a in 0..3 {
            assert!((back[a] - ijk[a]).abs() < 1e-9, "{back:?}");
        }
        assert!((g.voxel_volume_mm3() - 0.7 * 0.7 * 2.5 * 15f64.to_radians().cos()).abs() < 1e-9);
    }

    #[test]
    fn stats() {
        let v = Volume {
            hu: Array3::from_shape_vec((1, 1, 4), vec![-1000, 0, 40, 1000]).unwrap(),
            geometry: tilted(),
        };
        let s = v.hu_stats();
        assert_eq!((s.min, s.max), (-1000, 1000));
        assert!((s.mean - 10.0).abs() < 1e-12);
    }
}
