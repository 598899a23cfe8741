//! The opacities on the source grid ([`OpacityMap`]): what the SEG, the key
//! image and the viewer overlay draw.
//!
//! The stage segments at the analysis grid ([`super::OpacityResult::labels`]);
//! readers look at the source slices. [`OpacityMap::from_labels`] takes every
//! source voxel's label from the nearest analysis-grid voxel (the grids share
//! the patient frame, so this is one affine map) and keeps, per source slice,
//! runs of equal label along each row: a diffuse opacity of a few hundred mL
//! is a few megabytes as a dense source-grid mask but a few hundred kilobytes
//! as runs, which matters in a browser tab.

use ndarray::Array3;
use rayon::prelude::*;

use super::{CONSOLIDATION, GROUND_GLASS};
use crate::volume::{Geometry, Vec3};

/// A run of voxels with one label along a source row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Row (y) on the slice.
    pub row: u32,
    /// First column (x) of the run.
    pub col: u32,
    /// Number of voxels.
    pub len: u32,
    /// [`GROUND_GLASS`] or [`CONSOLIDATION`].
    pub label: u8,
}

/// The runs of one source slice, by row then column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceRuns {
    /// Source slice index (stack order).
    pub slice: usize,
    /// The runs.
    pub runs: Vec<Run>,
}

impl SliceRuns {
    /// Voxels of `label` on this slice.
    pub fn count(&self, label: u8) -> u64 {
        self.runs
            .iter()
            .filter(|r| r.label == label)
            .map(|r| r.len as u64)
            .sum()
    }
}

/// Ground glass and consolidation per source voxel, as runs per slice (only
/// slices with an opacity are kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpacityMap {
    /// Source grid size `[columns, rows, slices]`.
    pub size: [usize; 3],
    /// Slices with at least one opacity voxel, in slice order.
    pub slices: Vec<SliceRuns>,
}

impl OpacityMap {
    /// An empty map of a source grid.
    pub fn empty(size: [usize; 3]) -> OpacityMap {
        OpacityMap {
            size,
            slices: Vec::new(),
        }
    }

    /// Resample analysis-grid `labels` (`[z, y, x]` on `analysis`) to the
    /// `source` grid by nearest neighbour. Voxels that map outside the
    /// analysis grid are unlabelled.
    pub fn from_labels(labels: &Array3<u8>, analysis: &Geometry, source: &Geometry) -> OpacityMap {
        let (nz, ny, nx) = labels.dim();
        if labels.iter().all(|&l| l == 0) {
            return OpacityMap::empty(source.size);
        }
        // Analysis index = a + x·dx + y·dy + z·dz (source index x, y, z).
        let at = |v: Vec3| analysis.patient_to_voxel(source.voxel_to_patient(v));
        let a = at([0.0; 3]);
        let d = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]].map(|e| {
            let p = at(e);
            [p[0] - a[0], p[1] - a[1], p[2] - a[2]]
        });
        // The source box that can map into the labelled part of the analysis grid.
        let (mut lo, mut hi) = ([usize::MAX; 3], [0usize; 3]);
        for ((k, j, i), &l) in labels.indexed_iter() {
            if l != 0 {
                for (ax, v) in [i, j, k].into_iter().enumerate() {
                    lo[ax] = lo[ax].min(v);
                    hi[ax] = hi[ax].max(v);
                }
            }
        }
        let (mut slo, mut shi) = ([f64::INFINITY; 3], [f64::NEG_INFINITY; 3]);
        for corner in 0..8 {
            let c: Vec3 = [0, 1, 2].map(|ax| {
                if corner & (1 << ax) == 0 {
                    lo[ax] as f64 - 1.0
                } else {
                    hi[ax] as f64 + 1.0
                }
            });
            let s = source.patient_to_voxel(analysis.voxel_to_patient(c));
            for ax in 0..3 {
                slo[ax] = slo[ax].min(s[ax]);
                shi[ax] = shi[ax].max(s[ax]);
            }
        }
        let clamp = |v: f64, n: usize| -> usize {
            if v.is_nan() || v <= 0.0 {
                0
            } else {
                (v as usize).min(n.saturating_sub(1))
            }
        };
        let s0 = [0, 1, 2].map(|ax| clamp(slo[ax].floor(), source.size[ax]));
        let s1 = [0, 1, 2].map(|ax| clamp(shi[ax].ceil(), source.size[ax]));
        let slices: Vec<SliceRuns> = (s0[2]..=s1[2])
            .into_par_iter()
            .filter_map(|z| {
                let mut runs = Vec::new();
                for y in s0[1]..=s1[1] {
                    let base =
                        [0, 1, 2].map(|ax| a[ax] + y as f64 * d[1][ax] + z as f64 * d[2][ax]);
                    let mut open: Option<Run> = None;
                    for x in s0[0]..=s1[0] {
                        let p = [0, 1, 2].map(|ax| (base[ax] + x as f64 * d[0][ax]).round());
                        let inside = p[0] >= 0.0
                            && p[1] >= 0.0
                            && p[2] >= 0.0
                            && (p[0] as usize) < nx
                            && (p[1] as usize) < ny
                            && (p[2] as usize) < nz;
                        let l = if inside {
                            labels[[p[2] as usize, p[1] as usize, p[0] as usize]]
                        } else {
                            0
                        };
                        match &mut open {
                            Some(r) if r.label == l => r.len += 1,
                            _ => {
                                if let Some(r) = open.take() {
                                    runs.push(r);
                                }
                                if l == GROUND_GLASS || l == CONSOLIDATION {
                                    open = Some(Run {
                                        row: y as u32,
                                        col: x as u32,
                                        len: 1,
                                        label: l,
                                    });
                                }
                            }
                        }
                    }
                    if let Some(r) = open {
                        runs.push(r);
                    }
                }
                (!runs.is_empty()).then_some(SliceRuns { slice: z, runs })
            })
            .collect();
        OpacityMap {
            size: source.size,
            slices,
        }
    }

    /// No opacity anywhere.
    pub fn is_empty(&self) -> bool {
        self.slices.is_empty()
    }

    /// The runs of source slice `z`, if it has an opacity.
    pub fn slice(&self, z: usize) -> Option<&SliceRuns> {
        self.slices
            .binary_search_by_key(&z, |s| s.slice)
            .ok()
            .map(|i| &self.slices[i])
    }

    /// Source voxels of `label` in the whole map.
    pub fn count(&self, label: u8) -> u64 {
        self.slices.iter().map(|s| s.count(label)).sum()
    }

    /// A point inside the opacity to anchor it on an image: the slice with
    /// the most voxels of `label` (any opacity with `None`) and the middle of
    /// its longest run of that label, as `(slice, column, row)`; `None`
    /// without such a voxel. Viewers draw a measurement at it.
    pub fn anchor(&self, label: Option<u8>) -> Option<(usize, u32, u32)> {
        let of = |r: &&Run| label.is_none_or(|l| r.label == l);
        let best = self
            .slices
            .iter()
            .map(|s| {
                (
                    s,
                    s.runs.iter().filter(of).map(|r| r.len as u64).sum::<u64>(),
                )
            })
            .filter(|(_, n)| *n > 0)
            .fold(None::<(&SliceRuns, u64)>, |acc, (s, n)| match acc {
                Some((_, m)) if m >= n => acc,
                _ => Some((s, n)),
            })?
            .0;
        let run = best
            .runs
            .iter()
            .filter(of)
            .fold(None::<&Run>, |acc, r| match acc {
                Some(a) if a.len >= r.len => acc,
                _ => Some(r),
            })?;
        Some((best.slice, run.col + run.len / 2, run.row))
    }

    /// Slice `z` as a dense label image, `rows × columns`, row-major (0 none,
    /// [`GROUND_GLASS`], [`CONSOLIDATION`]); all zeros for a slice without
    /// opacity or out of range.
    pub fn label_image(&self, z: usize) -> Vec<u8> {
        let [cols, rows, _] = self.size;
        let mut out = vec![0u8; cols * rows];
        if let Some(s) = self.slice(z) {
            for r in &s.runs {
                let start = r.row as usize * cols + r.col as usize;
                let end = (start + r.len as usize).min(out.len());
                if start < end {
                    out[start..end].fill(r.label);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(size: [usize; 3], spacing: Vec3) -> Geometry {
        Geometry {
            size,
            spacing,
            origin: [0.0; 3],
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        }
    }

    /// A labelled analysis-grid block lands on the source voxels of the same
    /// patient position, with its volume kept (1 mm analysis grid, 0.5 × 0.5 ×
    /// 2 mm source grid), as runs per row.
    #[test]
    fn a_block_maps_to_the_source_grid_with_its_volume() {
        let analysis = grid([20, 20, 20], [1.0; 3]);
        // Source voxel centres a quarter voxel off the analysis boundaries: no ties.
        let mut source = grid([40, 40, 10], [0.5, 0.5, 2.0]);
        source.origin = [0.25, 0.25, 0.0];
        let mut labels = Array3::<u8>::zeros((20, 20, 20));
        // x 4..8, y 6..10, z 4..8 at 1 mm: ground glass; x 8..10 consolidation.
        for k in 4..8 {
            for j in 6..10 {
                for i in 4..10 {
                    labels[[k, j, i]] = if i < 8 { GROUND_GLASS } else { CONSOLIDATION };
                }
            }
        }
        let m = OpacityMap::from_labels(&labels, &analysis, &source);
        let mm3 = |label| m.count(label) as f64 * 0.5 * 0.5 * 2.0;
        assert_eq!(mm3(GROUND_GLASS), 4.0 * 4.0 * 4.0);
        assert_eq!(mm3(CONSOLIDATION), 2.0 * 4.0 * 4.0);
        assert_eq!(m.slices.iter().map(|s| s.slice).collect::<Vec<_>>(), [2, 3]);
        let s = m.slice(2).expect("slice 2 labelled");
        // Row 12 (y = 6.25 mm): ground glass from column 7 (x = 3.75 mm) for 8, then 4 consolidation.
        let row: Vec<_> = s.runs.iter().filter(|r| r.row == 12).collect();
        assert_eq!(row.len(), 2);
        assert_eq!((row[0].col, row[0].len, row[0].label), (7, 8, GROUND_GLASS));
        assert_eq!(
            (row[1].col, row[1].len, row[1].label),
            (15, 4, CONSOLIDATION)
        );
        let img = m.label_image(2);
        assert_eq!(img[12 * 40 + 7], GROUND_GLASS);
        assert_eq!(img[12 * 40 + 18], CONSOLIDATION);
        assert_eq!(img[12 * 40 + 19], 0);
        assert!(m.slice(0).is_none());
        // Anchors: inside a run of the label, on a slice that has it.
        let (z, x, y) = m.anchor(Some(CONSOLIDATION)).unwrap();
        assert!(z == 2 || z == 3);
        assert_eq!(
            m.label_image(z)[y as usize * 40 + x as usize],
            CONSOLIDATION
        );
        let (z, x, y) = m.anchor(None).unwrap();
        assert_ne!(m.label_image(z)[y as usize * 40 + x as usize], 0);
        assert!(m.label_image(99).iter().all(|&v| v == 0));
    }

    /// No label, no slice.
    #[test]
    fn no_opacity_is_an_empty_map() {
        let g = grid([8, 8, 8], [1.0; 3]);
        let m = OpacityMap::from_labels(&Array3::zeros((8, 8, 8)), &g, &g);
        assert!(m.is_empty());
        assert_eq!(m.anchor(None), None);
        assert_eq!(m.size, [8, 8, 8]);
    }
}
