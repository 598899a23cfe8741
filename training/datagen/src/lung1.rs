//! Real lung parenchyma from `sample-dicom/lung1` (one real chest CT,
//! 0.57 mm pixels, 5 mm slices), used as background for part of the
//! renderings, away from its annotated lesion.
//!
//! The volume is split by side: the patient's left lung (voxel x ≥ 256)
//! serves the training and validation splits, the right lung (x < 256,
//! which also holds the lesion, excluded with a 30 mm margin) the test split.

use std::path::Path;

use ct_triage_core::candidates::{self, CandidateOptions};
use ct_triage_core::classify::patch_scale;
use ct_triage_core::ingest::{self, IngestOptions, InputFile};
use ct_triage_core::lungs::{self, LungOptions};
use ct_triage_core::progress::NoProgress;
use ct_triage_core::resample::to_isotropic;
use ct_triage_core::volume::Volume;

/// lung1 with precomputed candidate positions.
#[derive(Debug)]
pub struct Lung1 {
    vol: Volume,
    /// Parenchyma positions (mm, lung1 voxel frame) for train/val (`[0]`) and test (`[1]`).
    pub parenchyma: [Vec<[f64; 3]>; 2],
    /// Blob-detector-like maxima on vessels (mm) for train/val (`[0]`) and test (`[1]`).
    pub maxima: [Vec<[f64; 3]>; 2],
    /// The core's own candidates on lung1 (its lung region and detection channels,
    /// with budgets well above inference's), away from the annotated lesion and
    /// from the one small unannotated nodule-like finding: real hard negatives —
    /// hilar vessels, heart, aorta and mediastinal borders, the diaphragm, ribs and
    /// spine where the region meets them. Centre on the 1 mm grid (= mm in the voxel
    /// frame) and the scale the classifier sees it at; train/val (`[0]`), test (`[1]`).
    pub candidates: [Vec<([f64; 3], usize)>; 2],
    /// lung1 on the 1 mm grid (for the candidates' patches).
    pub iso: Volume,
}

/// Position (mm, lung1 voxel frame) of the 3.8 mm nodule-like finding the
/// pipeline reports in lung1's left lower zone, which the truth file does not
/// annotate: neither a positive nor a negative, candidates within 10 mm are left out.
const UNANNOTATED_MM: [f64; 3] = [239.2, 153.8, 25.0];

impl Lung1 {
    /// HU at `p` (mm in the voxel frame: `index * spacing`), trilinear; air outside.
    pub fn sample(&self, p: [f64; 3]) -> f64 {
        let g = &self.vol.geometry;
        let s = self.vol.hu.shape();
        let (nz, ny, nx) = (s[0], s[1], s[2]);
        let f = [
            p[0] / g.spacing[0],
            p[1] / g.spacing[1],
            p[2] / g.spacing[2],
        ];
        if f[0] < 0.0 || f[1] < 0.0 || f[2] < 0.0 {
            return -1000.0;
        }
        let (i, j, k) = (f[0] as usize, f[1] as usize, f[2] as usize);
        if i + 1 >= nx || j + 1 >= ny || k + 1 >= nz {
            return -1000.0;
        }
        let (tx, ty, tz) = (f[0] - i as f64, f[1] - j as f64, f[2] - k as f64);
        let h = |k: usize, j: usize, i: usize| self.vol.hu[[k, j, i]] as f64;
        let c0 = (h(k, j, i) * (1.0 - tx) + h(k, j, i + 1) * tx) * (1.0 - ty)
            + (h(k, j + 1, i) * (1.0 - tx) + h(k, j + 1, i + 1) * tx) * ty;
        let c1 = (h(k + 1, j, i) * (1.0 - tx) + h(k + 1, j, i + 1) * tx) * (1.0 - ty)
            + (h(k + 1, j + 1, i) * (1.0 - tx) + h(k + 1, j + 1, i + 1) * tx) * ty;
        c0 * (1.0 - tz) + c1 * tz
    }

    /// Voxel spacing of the source series (mm).
    pub fn spacing(&self) -> [f64; 3] {
        self.vol.geometry.spacing
    }

    /// Load the series in `dir` and find parenchyma positions and vessel maxima.
    /// `lesion_mm` is the annotated lesion centroid (voxel frame, mm).
    pub fn load(dir: &Path, lesion_mm: [f64; 3]) -> Result<Self, String> {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .map(|p| {
                let b = std::fs::read(&p).unwrap_or_default();
                (p.display().to_string(), b)
            })
            .collect();
        files.sort();
        let inputs: Vec<InputFile> = files.iter().map(|(n, b)| InputFile::new(n, b)).collect();
        let (_, series) = ingest::load(&inputs, &IngestOptions::default(), &NoProgress)
            .map_err(|e| format!("lung1: {e}"))?;
        let vol = series.volume;
        // 1 mm grid for the candidate search (the core's own resampler).
        let iso = to_isotropic(&vol, 1.0, &NoProgress).map_err(|e| e.to_string())?;
        let s = iso.hu.shape();
        let (nz, ny, nx) = (s[0], s[1], s[2]);
        let at = |k: usize, j: usize, i: usize| iso.hu[[k, j, i]];
        // Outside air: flood fill from the border of each axial plane through HU < -500.
        let mut outside = vec![false; nz * ny * nx];
        let id = |k: usize, j: usize, i: usize| (k * ny + j) * nx + i;
        for k in 0..nz {
            let mut stack: Vec<(usize, usize)> = Vec::new();
            for i in 0..nx {
                stack.push((0, i));
                stack.push((ny - 1, i));
            }
            for j in 0..ny {
                stack.push((j, 0));
                stack.push((j, nx - 1));
            }
            while let Some((j, i)) = stack.pop() {
                if outside[id(k, j, i)] || at(k, j, i) >= -500 {
                    continue;
                }
                outside[id(k, j, i)] = true;
                if j > 0 {
                    stack.push((j - 1, i));
                }
                if j + 1 < ny {
                    stack.push((j + 1, i));
                }
                if i > 0 {
                    stack.push((j, i - 1));
                }
                if i + 1 < nx {
                    stack.push((j, i + 1));
                }
            }
        }
        let lung: Vec<bool> = (0..nz * ny * nx)
            .map(|v| {
                let (k, r) = (v / (ny * nx), v % (ny * nx));
                let (j, i) = (r / nx, r % nx);
                !outside[v] && at(k, j, i) < -500
            })
            .collect();
        // Lung fraction in a 15 mm cube (separable running sums).
        let frac = box_mean(&lung, [nz, ny, nx], 7);
        let spacing = vol.geometry.spacing;
        let mid_x_mm = (vol.geometry.size[0] as f64 / 2.0) * spacing[0];
        let iso_to_mm = |k: usize, j: usize, i: usize| [i as f64, j as f64, k as f64];
        let far = |p: [f64; 3]| {
            let d = ((p[0] - lesion_mm[0]).powi(2)
                + (p[1] - lesion_mm[1]).powi(2)
                + (p[2] - lesion_mm[2]).powi(2))
            .sqrt();
            d > 30.0
        };
        let z_ok = |k: usize| k >= 19 && k + 19 < nz;
        let mut parenchyma = [Vec::new(), Vec::new()];
        let mut maxima = [Vec::new(), Vec::new()];
        // Smoothed HU for maxima (σ ≈ 1.5 mm, separable box approximations).
        let huf: Vec<f32> = iso.hu.iter().map(|&v| v as f32).collect();
        let sm = box_mean_f(&box_mean_f(&huf, [nz, ny, nx], 1), [nz, ny, nx], 1);
        for k in (0..nz).filter(|&k| z_ok(k)) {
            for j in 2..ny - 2 {
                for i in 2..nx - 2 {
                    let v = id(k, j, i);
                    let p = iso_to_mm(k, j, i);
                    if !far(p) {
                        continue;
                    }
                    let side = usize::from(p[0] < mid_x_mm);
                    if lung[v] && frac[v] > 0.75 && at(k, j, i) < -750 && (i + j + k) % 3 == 0 {
                        parenchyma[side].push(p);
                    }
                    // local maximum of the smoothed image, tissue-dense, surrounded by lung
                    let c = sm[v];
                    if c > -450.0 && frac[v] > 0.45 && !outside[v] {
                        let mut is_max = true;
                        'n: for dk in -1i64..=1 {
                            for dj in -1i64..=1 {
                                for di in -1i64..=1 {
                                    if dk == 0 && dj == 0 && di == 0 {
                                        continue;
                                    }
                                    let w = id(
                                        (k as i64 + dk) as usize,
                                        (j as i64 + dj) as usize,
                                        (i as i64 + di) as usize,
                                    );
                                    if sm[w] > c {
                                        is_max = false;
                                        break 'n;
                                    }
                                }
                            }
                        }
                        if is_max {
                            maxima[side].push(p);
                        }
                    }
                }
            }
        }
        // The core's candidates, with generous budgets.
        let lm = lungs::segment(&iso, &LungOptions::default(), &NoProgress)
            .map_err(|e| e.to_string())?;
        let copts = CandidateOptions {
            solid_budget: 600,
            subsolid_budget: 240,
            mass_budget: 48,
            ..CandidateOptions::default()
        };
        let det = candidates::detect(&iso, &lm, &copts, &NoProgress).map_err(|e| e.to_string())?;
        let mut cands = [Vec::new(), Vec::new()];
        for c in &det.candidates {
            let p = c.center_xyz; // 1 mm grid, same origin: mm in the voxel frame
            let d_un = (0..3)
                .map(|a| (p[a] - UNANNOTATED_MM[a]).powi(2))
                .sum::<f64>()
                .sqrt();
            let d_les = (0..3)
                .map(|a| (p[a] - lesion_mm[a]).powi(2))
                .sum::<f64>()
                .sqrt();
            if d_un < 10.0 || d_les < 30.0 + c.radius_mm {
                continue;
            }
            let side = usize::from(p[0] < mid_x_mm);
            cands[side].push((p, patch_scale(c, [32, 32, 32], 1.0)));
        }
        Ok(Lung1 {
            vol,
            parenchyma,
            maxima,
            candidates: cands,
            iso,
        })
    }
}

fn box_mean(m: &[bool], dims: [usize; 3], r: usize) -> Vec<f32> {
    let f: Vec<f32> = m.iter().map(|&b| if b { 1.0 } else { 0.0 }).collect();
    box_mean_f(&f, dims, r)
}

/// Mean over a `(2r+1)³` cube, clamped at the borders.
fn box_mean_f(f: &[f32], dims: [usize; 3], r: usize) -> Vec<f32> {
    let [nz, ny, nx] = dims;
    let mut a = f.to_vec();
    let strides = [ny * nx, nx, 1];
    for (axis, &n) in dims.iter().enumerate() {
        let st = strides[axis];
        let mut b = vec![0f32; a.len()];
        for base in 0..a.len() {
            let coord = (base / st) % n;
            let lo = coord.saturating_sub(r);
            let hi = (coord + r).min(n - 1);
            let mut s = 0f32;
            for c in lo..=hi {
                s += a[base - coord * st + c * st];
            }
            b[base] = s / (hi - lo + 1) as f32;
        }
        a = b;
    }
    let _ = (nz, ny, nx);
    a
}
