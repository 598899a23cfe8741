//! Smooth random fields (value noise on a coarse lattice, trilinear) and
//! small numeric helpers used by the renderer.

use crate::rng::Rng;

/// A smooth random field: unit-variance-ish values on a lattice of `cell` mm,
/// trilinearly interpolated, covering a cube of half-size `half` mm around 0.
#[derive(Debug, Clone)]
pub struct ValueNoise {
    cell: f64,
    n: usize,
    half: f64,
    v: Vec<f32>,
}

impl ValueNoise {
    /// A new field with lattice spacing `cell` mm over `[-half, half]³`.
    pub fn new(rng: &mut Rng, cell: f64, half: f64) -> Self {
        let n = (2.0 * half / cell).ceil() as usize + 2;
        let v = (0..n * n * n).map(|_| rng.normal_fast()).collect();
        ValueNoise { cell, n, half, v }
    }

    /// Per-axis interpolation taps `(i0, i1, t)` for samples `o + k*d`, `k < n`.
    fn taps(&self, o: f64, d: f64, n: usize) -> Vec<(usize, usize, f32)> {
        let m = self.n;
        (0..n)
            .map(|k| {
                let f =
                    ((o + k as f64 * d + self.half) / self.cell).clamp(0.0, (m - 1) as f64 - 1e-9);
                let i = f as usize;
                let t = f - i as f64;
                (i, (i + 1).min(m - 1), (t * t * (3.0 - 2.0 * t)) as f32)
            })
            .collect()
    }

    /// Add `amp ×` the field, sampled on a regular grid (`nx × ny` at
    /// `x0 + i*dx`, `nz` planes at `x0[2] + k*dz`), to `out` (`[z][y][x]`):
    /// the same values as [`ValueNoise::at`], computed separably.
    #[allow(clippy::too_many_arguments)]
    pub fn add_to_grid(
        &self,
        out: &mut [f32],
        nx: usize,
        ny: usize,
        nz: usize,
        x0: [f64; 3],
        dx: f64,
        dz: f64,
        amp: f32,
    ) {
        let m = self.n;
        let tx = self.taps(x0[0], dx, nx);
        let ty = self.taps(x0[1], dx, ny);
        let tz = self.taps(x0[2], dz, nz);
        // x pass: for every lattice (z, y) row
        let mut ax = vec![0f32; m * m * nx];
        for zy in 0..m * m {
            let row = &self.v[zy * m..(zy + 1) * m];
            for (i, &(a, b, t)) in tx.iter().enumerate() {
                ax[zy * nx + i] = row[a] * (1.0 - t) + row[b] * t;
            }
        }
        // y pass
        let mut ay = vec![0f32; m * ny * nx];
        for z in 0..m {
            for (j, &(a, b, t)) in ty.iter().enumerate() {
                let ra = &ax[(z * m + a) * nx..(z * m + a + 1) * nx];
                let rb = &ax[(z * m + b) * nx..(z * m + b + 1) * nx];
                let dst = &mut ay[(z * ny + j) * nx..(z * ny + j + 1) * nx];
                for ((d, &va), &vb) in dst.iter_mut().zip(ra).zip(rb) {
                    *d = va * (1.0 - t) + vb * t;
                }
            }
        }
        // z pass
        let plane = ny * nx;
        for (k, &(a, b, t)) in tz.iter().enumerate() {
            let pa = &ay[a * plane..(a + 1) * plane];
            let pb = &ay[b * plane..(b + 1) * plane];
            let dst = &mut out[k * plane..(k + 1) * plane];
            for ((d, &va), &vb) in dst.iter_mut().zip(pa).zip(pb) {
                *d += amp * (va * (1.0 - t) + vb * t);
            }
        }
    }

    /// Field value at `p` (mm); clamped at the borders.
    pub fn at(&self, p: [f64; 3]) -> f64 {
        let n = self.n;
        let f = |x: f64| ((x + self.half) / self.cell).clamp(0.0, (n - 1) as f64 - 1e-9);
        let (fx, fy, fz) = (f(p[0]), f(p[1]), f(p[2]));
        let (i, j, k) = (fx as usize, fy as usize, fz as usize);
        let (i1, j1, k1) = ((i + 1).min(n - 1), (j + 1).min(n - 1), (k + 1).min(n - 1));
        let (tx, ty, tz) = (fx - i as f64, fy - j as f64, fz - k as f64);
        // smoothstep weights for a less blocky look
        let s = |t: f64| t * t * (3.0 - 2.0 * t);
        let (tx, ty, tz) = (s(tx), s(ty), s(tz));
        let g = |i: usize, j: usize, k: usize| self.v[(k * n + j) * n + i] as f64;
        let c00 = g(i, j, k) * (1.0 - tx) + g(i1, j, k) * tx;
        let c10 = g(i, j1, k) * (1.0 - tx) + g(i1, j1, k) * tx;
        let c01 = g(i, j, k1) * (1.0 - tx) + g(i1, j, k1) * tx;
        let c11 = g(i, j1, k1) * (1.0 - tx) + g(i1, j1, k1) * tx;
        let c0 = c00 * (1.0 - ty) + c10 * ty;
        let c1 = c01 * (1.0 - ty) + c11 * ty;
        c0 * (1.0 - tz) + c1 * tz
    }
}

/// Error function (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7).
pub fn erf(x: f64) -> f64 {
    let s = x.signum();
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    s * y
}

/// Normalised 1-D Gaussian kernel with standard deviation `sigma` (samples), radius 3σ.
pub fn gauss_kernel(sigma: f64) -> Vec<f32> {
    if sigma < 0.05 {
        return vec![1.0];
    }
    let r = (3.0 * sigma).ceil() as i64;
    let mut k: Vec<f32> = (-r..=r)
        .map(|i| (-(i as f64).powi(2) / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let s: f32 = k.iter().sum();
    for v in &mut k {
        *v /= s;
    }
    k
}

/// Convolve each row (length `nx`) of a `planes × ny × nx` buffer along x, then along y, with `k` (clamped borders).
pub fn blur_xy(buf: &mut [f32], planes: usize, ny: usize, nx: usize, k: &[f32]) {
    if k.len() <= 1 {
        return;
    }
    let r = (k.len() / 2) as i64;
    let mut tmp = vec![0f32; nx.max(ny)];
    for p in 0..planes {
        let plane = &mut buf[p * ny * nx..(p + 1) * ny * nx];
        for j in 0..ny {
            let row = &mut plane[j * nx..(j + 1) * nx];
            for (i, t) in tmp[..nx].iter_mut().enumerate() {
                let mut s = 0f32;
                for (o, &w) in k.iter().enumerate() {
                    let ii = (i as i64 + o as i64 - r).clamp(0, nx as i64 - 1) as usize;
                    s += w * row[ii];
                }
                *t = s;
            }
            row.copy_from_slice(&tmp[..nx]);
        }
        for i in 0..nx {
            for (j, t) in tmp[..ny].iter_mut().enumerate() {
                let mut s = 0f32;
                for (o, &w) in k.iter().enumerate() {
                    let jj = (j as i64 + o as i64 - r).clamp(0, ny as i64 - 1) as usize;
                    s += w * plane[jj * nx + i];
                }
                *t = s;
            }
            for j in 0..ny {
                plane[j * nx + i] = tmp[j];
            }
        }
    }
}
