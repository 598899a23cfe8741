//! CT acquisition simulation: a fine rasterised scene → in-plane blur (the
//! reconstruction kernel's PSF) → slice sensitivity profile (partial volume
//! over the slice thickness) → correlated quantum noise (low or standard
//! dose) → integer HU on the acquisition grid, returned as a core `Volume`.

use ct_triage_core::volume::{Geometry, Volume};
use ndarray::Array3;
use serde::Serialize;

use crate::lung1::Lung1;
use crate::noise::{blur_xy, erf, gauss_kernel};
use crate::rng::Rng;
use crate::scene::{Grid, Scene, V3};

/// Acquisition and reconstruction parameters of one rendering.
#[derive(Debug, Clone, Serialize)]
pub struct Acquisition {
    /// In-plane pixel spacing (mm).
    pub pixel_mm: f64,
    /// Nominal slice thickness (FWHM of the slice profile, mm).
    pub thickness_mm: f64,
    /// Slice increment (mm); below the thickness for overlapping reconstructions.
    pub increment_mm: f64,
    /// In-plane PSF σ (mm).
    pub psf_mm: f64,
    /// Noise σ (HU) in a uniform region.
    pub noise_hu: f64,
    /// In-plane noise correlation (Gaussian σ, pixels).
    pub noise_corr_px: f64,
    /// `low` or `standard` dose.
    pub dose: &'static str,
    /// `soft`, `standard` or `sharp` reconstruction kernel.
    pub kernel: &'static str,
}

impl Acquisition {
    /// Draw acquisition parameters. With probability ½ the LIDC scan's own
    /// pixel spacing and slice thickness are used (clamped to the ranges),
    /// otherwise uniform draws: pixel 0.5–0.9 mm, thickness 0.6–5 mm.
    pub fn draw(rng: &mut Rng, scan_pixel: f64, scan_thickness: f64, extra_noise: f64) -> Self {
        let (pixel_mm, thickness_mm) = if rng.chance(0.5) {
            (scan_pixel.clamp(0.5, 0.9), scan_thickness.clamp(0.6, 5.0))
        } else {
            (rng.range(0.5, 0.9), {
                // thin and thick slices both common
                let u = rng.f64();
                (0.6f64.ln() + u * (5.0f64.ln() - 0.6f64.ln())).exp()
            })
        };
        let increment_mm = if rng.chance(0.3) {
            thickness_mm * rng.range(0.5, 1.0)
        } else {
            thickness_mm
        };
        let kernel = ["soft", "standard", "sharp"][rng.weighted(&[0.3, 0.45, 0.25])];
        let (psf_mm, corr, kfac) = match kernel {
            "soft" => (rng.range(0.6, 0.8), rng.range(0.9, 1.2), 0.7),
            "standard" => (rng.range(0.45, 0.6), rng.range(0.7, 0.9), 1.0),
            _ => (rng.range(0.3, 0.45), rng.range(0.5, 0.7), 1.6),
        };
        let low = rng.chance(0.4);
        let ref_sigma = if low {
            rng.range(25.0, 50.0)
        } else {
            rng.range(8.0, 20.0)
        };
        // σ ∝ 1/sqrt(thickness), referenced to 2.5 mm
        let noise_hu = (ref_sigma * kfac * (2.5 / thickness_mm).sqrt()).min(150.0) * extra_noise;
        Acquisition {
            pixel_mm,
            thickness_mm,
            increment_mm,
            psf_mm,
            noise_hu,
            noise_corr_px: corr,
            dose: if low { "low" } else { "standard" },
            kernel,
        }
    }

    /// The acquisition as a lesion `scale` times larger sees it when shown at
    /// `scale` times the patch spacing: lengths (pixel, slice, increment, blur)
    /// divided by the scale; noise divided by scale^1.5, as averaging scale³
    /// voxels does to uncorrelated noise.
    pub fn rescale(&mut self, scale: f64) {
        self.pixel_mm /= scale;
        self.thickness_mm /= scale;
        self.increment_mm /= scale;
        self.psf_mm /= scale;
        self.noise_hu /= scale.powf(1.5);
    }

    /// The record of a patch cut from a real series (lung1) without simulation.
    pub fn native(spacing: [f64; 3]) -> Self {
        Acquisition {
            pixel_mm: spacing[0],
            thickness_mm: spacing[2],
            increment_mm: spacing[2],
            psf_mm: 0.0,
            noise_hu: 0.0,
            noise_corr_px: 0.0,
            dose: "real",
            kernel: "real",
        }
    }
}

/// Render `scene` as acquired by `acq` in a cube of half-size `half` mm
/// centred near `centre` (the acquisition grid gets a random sub-voxel offset).
pub fn acquire(
    scene: &Scene,
    acq: &Acquisition,
    centre: V3,
    half: f64,
    lung1: Option<&Lung1>,
    rng: &mut Rng,
) -> Volume {
    let ps = acq.pixel_mm;
    let inc = acq.increment_mm;
    let t = acq.thickness_mm;
    let n_xy = (2.0 * half / ps).ceil() as usize + 1;
    let n_sl = (2.0 * half / inc).ceil() as usize + 1;
    let origin = [
        centre[0] - half + rng.range(-0.5, 0.5) * ps,
        centre[1] - half + rng.range(-0.5, 0.5) * ps,
        centre[2] - half + rng.range(-0.5, 0.5) * inc,
    ];
    // Fine z sampling over the slices' profiles.
    let dzf = (t / 3.0).min(0.4);
    let sig = 0.12 * t + 0.05; // edge blur of the slice profile (mm)
    let reach = 0.5 * t + 3.0 * sig;
    let z_lo = origin[2] - reach;
    let nzf = (((n_sl - 1) as f64 * inc + 2.0 * reach) / dzf).ceil() as usize + 1;
    let grid = Grid {
        nx: n_xy,
        ny: n_xy,
        nz: nzf,
        x0: [origin[0], origin[1], z_lo],
        dx: ps,
        dz: dzf,
    };
    let fine = scene.rasterize(&grid, lung1);
    // Slice sensitivity profile: a box of width t with Gaussian edges.
    let plane = n_xy * n_xy;
    let mut out = vec![0f32; n_sl * plane];
    let phi = |x: f64| 0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2));
    for s in 0..n_sl {
        let zc = origin[2] + s as f64 * inc;
        let mut wsum = 0.0;
        let dst = &mut out[s * plane..(s + 1) * plane];
        let f0 = (((zc - reach) - z_lo) / dzf).floor().max(0.0) as usize;
        let f1 = ((((zc + reach) - z_lo) / dzf).ceil() as usize).min(nzf - 1);
        for f in f0..=f1 {
            let d = z_lo + f as f64 * dzf - zc;
            let w = phi((d + 0.5 * t) / sig) - phi((d - 0.5 * t) / sig);
            if w < 1e-6 {
                continue;
            }
            wsum += w;
            let src = &fine[f * plane..(f + 1) * plane];
            for (o, &v) in dst.iter_mut().zip(src) {
                *o += (w as f32) * v;
            }
        }
        let inv = (1.0 / wsum.max(1e-9)) as f32;
        for o in dst.iter_mut() {
            *o *= inv;
        }
    }
    // In-plane PSF (linear and acting on other axes than the slice profile,
    // so it is applied after the profile integration: fewer planes).
    blur_xy(&mut out, n_sl, n_xy, n_xy, &gauss_kernel(acq.psf_mm / ps));
    // Correlated noise: white → in-plane Gaussian → renormalised; neighbouring
    // slices correlate when they overlap.
    if acq.noise_hu > 0.0 {
        let mut nz: Vec<f32> = (0..n_sl * plane).map(|_| rng.normal_fast()).collect();
        let k = gauss_kernel(acq.noise_corr_px);
        let gain: f32 = {
            // variance of the 2-D filtered unit noise = (sum k²)²
            let s2: f32 = k.iter().map(|v| v * v).sum();
            1.0 / s2
        };
        blur_xy(&mut nz, n_sl, n_xy, n_xy, &k);
        let rho = (0.5 * (1.0 - inc / t)).clamp(0.0, 0.45) as f32;
        let norm = (1.0 + 2.0 * rho * rho).sqrt();
        let src = nz.clone();
        for s in 0..n_sl {
            let prev = s.saturating_sub(1);
            let next = (s + 1).min(n_sl - 1);
            for v in 0..plane {
                let x = (src[s * plane + v]
                    + rho * (src[prev * plane + v] + src[next * plane + v]))
                    / norm;
                out[s * plane + v] += x * gain * acq.noise_hu as f32;
            }
        }
    }
    let hu: Vec<i16> = out
        .iter()
        .map(|&v| v.round().clamp(-1024.0, 3071.0) as i16)
        .collect();
    Volume {
        hu: Array3::from_shape_vec((n_sl, n_xy, n_xy), hu).expect("shape matches"),
        geometry: Geometry {
            size: [n_xy, n_xy, n_sl],
            spacing: [ps, ps, inc],
            origin,
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        },
    }
}
