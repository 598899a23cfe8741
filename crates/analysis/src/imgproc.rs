//! Image-processing kernels the stages share: parallel separable Gaussian
//! filtering, 2-D and 3-D Euclidean distance transforms and morphology, 2-D hole filling and
//! connected components, 2× downsampling.
//!
//! Hand-rolled where speed decides: `ndarray-ndimage` (used for 3-D labelling)
//! filters single-threaded in generic precision, while the candidate and lung
//! stages must filter ~40 M voxels several times within the 3 s budget; these
//! kernels are `f32`, rayon-parallel over slices and written so that the inner
//! loops run over contiguous rows (auto-vectorised).

use ndarray::{Array2, Array3, ArrayView2, Axis};
use rayon::prelude::*;

/// Normalised 1-D Gaussian kernel of standard deviation `sigma` (voxels), radius ⌈3σ⌉.
pub fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    if sigma <= 0.0 {
        return vec![1.0];
    }
    let r = (3.0 * sigma).ceil() as i32;
    let mut k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= s);
    k
}

/// Reflect an index into `0..n` (scipy's `reflect` mode: `d c b a | a b c d | d c b a`).
#[inline]
fn reflect(i: isize, n: isize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * n;
    let mut m = i.rem_euclid(period);
    if m >= n {
        m = period - 1 - m;
    }
    m as usize
}

/// Separable Gaussian filter of a `[z, y, x]` volume with per-axis sigma in voxels `[x, y, z]`.
pub fn gaussian3(src: &Array3<f32>, sigma_xyz: [f32; 3]) -> Array3<f32> {
    let (nz, ny, nx) = src.dim();
    let kx = gaussian_kernel(sigma_xyz[0]);
    let ky = gaussian_kernel(sigma_xyz[1]);
    let kz = gaussian_kernel(sigma_xyz[2]);
    let plane = ny * nx;
    let owned;
    let input: &[f32] = match src.as_slice() {
        Some(s) => s,
        None => {
            owned = src.iter().copied().collect::<Vec<f32>>();
            &owned
        }
    };
    // x and y passes per slice.
    let mut tmp = vec![0f32; nz * plane];
    tmp.par_chunks_mut(plane)
        .zip(input.par_chunks(plane))
        .for_each(|(dst, s)| {
            let mut rowbuf = vec![0f32; plane];
            filter_rows(s, &mut rowbuf, nx, ny, &kx);
            filter_cols(&rowbuf, dst, nx, ny, &ky);
        });
    // z pass: each output slice is a weighted sum of input slices.
    let rz = (kz.len() / 2) as isize;
    let mut out = vec![0f32; nz * plane];
    let slice = |kk: isize| {
        let kk = reflect(kk, nz as isize);
        &tmp[kk * plane..(kk + 1) * plane]
    };
    out.par_chunks_mut(plane).enumerate().for_each(|(k, dst)| {
        let k = k as isize;
        for (d, &v) in dst.iter_mut().zip(slice(k)) {
            *d = kz[rz as usize] * v;
        }
        for t in 1..=rz {
            let w = kz[(rz + t) as usize];
            for ((d, &a), &b) in dst.iter_mut().zip(slice(k - t)).zip(slice(k + t)) {
                *d += w * (a + b);
            }
        }
    });
    Array3::from_shape_vec((nz, ny, nx), out).expect("shape is preserved")
}

/// Filter each row (x direction) of a `ny × nx` plane.
///
/// Each row is copied once into a buffer padded by reflection, so the
/// convolution runs without bounds logic as `k.len()` shifted multiply-adds
/// over the whole row (auto-vectorised), folding the symmetric taps.
fn filter_rows(src: &[f32], dst: &mut [f32], nx: usize, ny: usize, k: &[f32]) {
    let r = k.len() / 2;
    let mut padded = vec![0f32; nx + 2 * r];
    for j in 0..ny {
        let s = &src[j * nx..(j + 1) * nx];
        let d = &mut dst[j * nx..(j + 1) * nx];
        for (p, v) in padded.iter_mut().enumerate() {
            *v = s[reflect(p as isize - r as isize, nx as isize)];
        }
        // Centre tap, then the pairs (r - t, r + t) sharing one weight.
        for (dv, &c) in d.iter_mut().zip(&padded[r..r + nx]) {
            *dv = k[r] * c;
        }
        for t in 1..=r {
            let w = k[r + t];
            let lo = &padded[r - t..r - t + nx];
            let hi = &padded[r + t..r + t + nx];
            for ((dv, &a), &b) in d.iter_mut().zip(lo).zip(hi) {
                *dv += w * (a + b);
            }
        }
    }
}

/// Filter each column (y direction) of a `ny × nx` plane, row-vectorised,
/// folding the symmetric taps.
fn filter_cols(src: &[f32], dst: &mut [f32], nx: usize, ny: usize, k: &[f32]) {
    let r = k.len() / 2;
    let row = |jj: isize| {
        let jj = reflect(jj, ny as isize);
        &src[jj * nx..(jj + 1) * nx]
    };
    for j in 0..ny {
        let d = &mut dst[j * nx..(j + 1) * nx];
        for (dv, &c) in d.iter_mut().zip(row(j as isize)) {
            *dv = k[r] * c;
        }
        for t in 1..=r {
            let w = k[r + t];
            let (lo, hi) = (row(j as isize - t as isize), row(j as isize + t as isize));
            for ((dv, &a), &b) in d.iter_mut().zip(lo).zip(hi) {
                *dv += w * (a + b);
            }
        }
    }
}

/// Average-pool a `[z, y, x]` volume by 2 along every axis (odd edges use the
/// available voxels).
pub fn downsample2(src: &Array3<f32>) -> Array3<f32> {
    let (nz, ny, nx) = src.dim();
    let (oz, oy, ox) = (nz.div_ceil(2), ny.div_ceil(2), nx.div_ceil(2));
    let mut out = Array3::<f32>::zeros((oz, oy, ox));
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(k, mut plane)| {
            for j in 0..oy {
                for i in 0..ox {
                    let mut s = 0.0;
                    let mut n = 0.0;
                    for dz in 0..2 {
                        for dy in 0..2 {
                            for dx in 0..2 {
                                let (z, y, x) = (2 * k + dz, 2 * j + dy, 2 * i + dx);
                                if z < nz && y < ny && x < nx {
                                    s += src[[z, y, x]];
                                    n += 1.0;
                                }
                            }
                        }
                    }
                    plane[[j, i]] = s / n;
                }
            }
        });
    out
}

/// 1-D squared distance transform of a sampled function (Felzenszwalb & Huttenlocher 2012).
fn dt1d(f: &[f32], d: &mut [f32], v: &mut [usize], z: &mut [f32]) {
    let n = f.len();
    if n == 0 {
        return;
    }
    let mut k = 0usize;
    v[0] = 0;
    z[0] = f32::NEG_INFINITY;
    z[1] = f32::INFINITY;
    for q in 1..n {
        let fq = f[q] + (q * q) as f32;
        loop {
            let p = v[k];
            let s = (fq - (f[p] + (p * p) as f32)) / (2.0 * q as f32 - 2.0 * p as f32);
            if s <= z[k] && k > 0 {
                k -= 1;
            } else {
                k += 1;
                v[k] = q;
                z[k] = s;
                z[k + 1] = f32::INFINITY;
                break;
            }
        }
    }
    k = 0;
    for (q, dq) in d.iter_mut().enumerate() {
        while z[k + 1] < q as f32 {
            k += 1;
        }
        let p = v[k];
        let diff = q as f32 - p as f32;
        *dq = diff * diff + f[p];
    }
}

/// Squared Euclidean distance (in pixels²) from every pixel to the nearest `true` pixel.
/// Pixels are assumed square. Without any `true` pixel every distance is `f32::MAX`.
pub fn edt2_sq(mask: ArrayView2<bool>) -> Array2<f32> {
    let (ny, nx) = mask.dim();
    let m: Vec<bool> = mask.iter().copied().collect();
    let g = edt2_sq_raw(&m, ny, nx);
    Array2::from_shape_vec((ny, nx), g).expect("shape is preserved")
}

/// [`edt2_sq`] on a row-major `ny × nx` buffer.
fn edt2_sq_raw(mask: &[bool], ny: usize, nx: usize) -> Vec<f32> {
    const BIG: f32 = 1e12;
    let mut g = vec![BIG; ny * nx];
    let n = nx.max(ny);
    let mut f = vec![0f32; n];
    let mut d = vec![0f32; n];
    let mut v = vec![0usize; n];
    let mut z = vec![0f32; n + 1];
    for i in 0..nx {
        for j in 0..ny {
            f[j] = if mask[j * nx + i] { 0.0 } else { BIG };
        }
        dt1d(&f[..ny], &mut d[..ny], &mut v, &mut z);
        for j in 0..ny {
            g[j * nx + i] = d[j];
        }
    }
    for j in 0..ny {
        let row = &mut g[j * nx..(j + 1) * nx];
        f[..nx].copy_from_slice(row);
        dt1d(&f[..nx], &mut d[..nx], &mut v, &mut z);
        for (r, &dv) in row.iter_mut().zip(&d[..nx]) {
            *r = if dv >= BIG * 0.5 { f32::MAX } else { dv };
        }
    }
    g
}

/// Squared Euclidean distance (in voxels², isotropic voxels) from every voxel to
/// the nearest `true` voxel of a 3-D mask `[z, y, x]`; `f32::MAX` without any.
/// Separable (one 1-D transform per axis), rayon-parallel over lines.
pub fn edt3_sq(mask: &Array3<bool>) -> Array3<f32> {
    const BIG: f32 = 1e12;
    let (nz, ny, nx) = mask.dim();
    let mut g = Array3::<f32>::from_shape_fn(
        (nz, ny, nx),
        |(k, j, i)| {
            if mask[[k, j, i]] { 0.0 } else { BIG }
        },
    );
    let n = nz.max(ny).max(nx);
    let scratch = || {
        (
            vec![0f32; n],
            vec![0f32; n],
            vec![0usize; n],
            vec![0f32; n + 1],
        )
    };
    // Along z: every (y, x) column, one y-row of columns per task.
    {
        let plane = ny * nx;
        let src: &[f32] = g.as_slice().expect("standard layout");
        let cols: Vec<Vec<f32>> = (0..ny)
            .into_par_iter()
            .map_init(scratch, |(f, d, v, z), j| {
                let mut out = vec![0f32; nz * nx];
                for i in 0..nx {
                    for k in 0..nz {
                        f[k] = src[k * plane + j * nx + i];
                    }
                    dt1d(&f[..nz], &mut d[..nz], v, z);
                    for k in 0..nz {
                        out[k * nx + i] = d[k];
                    }
                }
                out
            })
            .collect();
        let data = g.as_slice_mut().expect("standard layout");
        for (j, col) in cols.iter().enumerate() {
            for k in 0..nz {
                data[k * plane + j * nx..k * plane + (j + 1) * nx]
                    .copy_from_slice(&col[k * nx..(k + 1) * nx]);
            }
        }
    }
    // Along y and x within each slice.
    g.axis_iter_mut(Axis(0))
        .into_par_iter()
        .for_each_init(scratch, |(f, d, v, z), mut sl| {
            for i in 0..nx {
                for j in 0..ny {
                    f[j] = sl[[j, i]];
                }
                dt1d(&f[..ny], &mut d[..ny], v, z);
                for j in 0..ny {
                    sl[[j, i]] = d[j];
                }
            }
            for j in 0..ny {
                for i in 0..nx {
                    f[i] = sl[[j, i]];
                }
                dt1d(&f[..nx], &mut d[..nx], v, z);
                for i in 0..nx {
                    sl[[j, i]] = if d[i] >= BIG * 0.5 { f32::MAX } else { d[i] };
                }
            }
        });
    g
}

/// Morphological closing of a 3-D mask with a ball of `radius` voxels (two
/// distance transforms). Voxels beyond the array count as outside (`false`), so
/// the array should leave a margin of `radius` around the mask.
pub fn close3(mask: &Array3<bool>, radius: f32) -> Array3<bool> {
    let r2 = radius * radius;
    let outside = edt3_sq(mask).mapv(|d| d > r2);
    edt3_sq(&outside).mapv(|d| d > r2)
}

/// Morphological opening of a 3-D mask with a ball of `radius` voxels: the
/// union of all balls of that radius that fit inside the mask.
pub fn open3(mask: &Array3<bool>, radius: f32) -> Array3<bool> {
    let r2 = radius * radius;
    let inv = mask.mapv(|b| !b);
    let core = edt3_sq(&inv).mapv(|d| d > r2);
    let near = edt3_sq(&core);
    ndarray::Zip::from(&near)
        .and(mask)
        .map_collect(|&d, &m| m && d <= r2)
}

/// Morphological closing of a 2-D mask with a disk of `radius` pixels (via two
/// distance transforms), computed on the mask's bounding box plus the radius.
pub fn close2(mask: ArrayView2<bool>, radius: f32) -> Array2<bool> {
    let (ny, nx) = mask.dim();
    let mut out = Array2::from_elem((ny, nx), false);
    let (mut j0, mut j1, mut i0, mut i1) = (ny, 0, nx, 0);
    for ((j, i), &b) in mask.indexed_iter() {
        if b {
            j0 = j0.min(j);
            j1 = j1.max(j);
            i0 = i0.min(i);
            i1 = i1.max(i);
        }
    }
    if j1 < j0 {
        return out;
    }
    let pad = radius.ceil() as usize + 2;
    // Crop with a margin; pixels beyond the image are treated as outside (false).
    let (cj0, ci0) = (j0 as isize - pad as isize, i0 as isize - pad as isize);
    let (cny, cnx) = (j1 - j0 + 1 + 2 * pad, i1 - i0 + 1 + 2 * pad);
    let mut crop = vec![false; cny * cnx];
    for j in 0..cny {
        let sj = cj0 + j as isize;
        if sj < 0 || sj >= ny as isize {
            continue;
        }
        for i in 0..cnx {
            let si = ci0 + i as isize;
            if si >= 0 && si < nx as isize {
                crop[j * cnx + i] = mask[[sj as usize, si as usize]];
            }
        }
    }
    let r2 = radius * radius;
    let dil: Vec<bool> = edt2_sq_raw(&crop, cny, cnx)
        .iter()
        .map(|&d| d <= r2)
        .collect();
    let outside: Vec<bool> = dil.iter().map(|&b| !b).collect();
    let dist_out = edt2_sq_raw(&outside, cny, cnx);
    for j in 0..cny {
        let sj = cj0 + j as isize;
        if sj < 0 || sj >= ny as isize {
            continue;
        }
        for i in 0..cnx {
            let si = ci0 + i as isize;
            if si >= 0 && si < nx as isize && dist_out[j * cnx + i] > r2 {
                out[[sj as usize, si as usize]] = true;
            }
        }
    }
    out
}

/// Pixels of `mask` that are not reachable from the image border through `false`
/// pixels are set to `true` (2-D hole filling, 4-connectivity).
pub fn fill_holes2(mask: ArrayView2<bool>) -> Array2<bool> {
    let (ny, nx) = mask.dim();
    let m: Vec<bool> = match mask.as_slice() {
        Some(s) => s.to_vec(),
        None => mask.iter().copied().collect(),
    };
    let filled = fill_holes_raw(&m, ny, nx);
    Array2::from_shape_vec((ny, nx), filled).expect("shape is preserved")
}

/// [`fill_holes2`] on a row-major `ny × nx` buffer.
pub fn fill_holes_raw(m: &[bool], ny: usize, nx: usize) -> Vec<bool> {
    // `out` starts as "maybe inside"; flooding from the border clears what is outside.
    let mut outside = vec![false; ny * nx];
    let mut stack: Vec<u32> = Vec::with_capacity(1024);
    let push = |idx: usize, outside: &mut Vec<bool>, stack: &mut Vec<u32>| {
        if !m[idx] && !outside[idx] {
            outside[idx] = true;
            stack.push(idx as u32);
        }
    };
    if ny == 0 || nx == 0 {
        return Vec::new();
    }
    for i in 0..nx {
        push(i, &mut outside, &mut stack);
        push((ny - 1) * nx + i, &mut outside, &mut stack);
    }
    for j in 0..ny {
        push(j * nx, &mut outside, &mut stack);
        push(j * nx + nx - 1, &mut outside, &mut stack);
    }
    while let Some(idx) = stack.pop() {
        let idx = idx as usize;
        let (j, i) = (idx / nx, idx % nx);
        if j > 0 {
            push(idx - nx, &mut outside, &mut stack);
        }
        if j + 1 < ny {
            push(idx + nx, &mut outside, &mut stack);
        }
        if i > 0 {
            push(idx - 1, &mut outside, &mut stack);
        }
        if i + 1 < nx {
            push(idx + 1, &mut outside, &mut stack);
        }
    }
    outside.iter().map(|&o| !o).collect()
}

/// A connected component of a 2-D mask.
#[derive(Debug, Clone, PartialEq)]
pub struct Component2 {
    /// Label value in the label image (1-based).
    pub label: u32,
    /// Number of pixels.
    pub area: usize,
    /// Mean column index.
    pub cx: f64,
    /// Mean row index.
    pub cy: f64,
}

/// Label the 4-connected components of a 2-D mask. Returns the label image
/// (0 = background) and the components in label order.
pub fn label2(mask: ArrayView2<bool>) -> (Array2<u32>, Vec<Component2>) {
    let (ny, nx) = mask.dim();
    let mut labels = Array2::<u32>::zeros((ny, nx));
    let mut comps = Vec::new();
    let mut stack = Vec::new();
    for j0 in 0..ny {
        for i0 in 0..nx {
            if !mask[[j0, i0]] || labels[[j0, i0]] != 0 {
                continue;
            }
            let label = comps.len() as u32 + 1;
            labels[[j0, i0]] = label;
            stack.push((j0, i0));
            let (mut area, mut sx, mut sy) = (0usize, 0f64, 0f64);
            while let Some((j, i)) = stack.pop() {
                area += 1;
                sx += i as f64;
                sy += j as f64;
                let mut visit = |jj: usize, ii: usize| {
                    if mask[[jj, ii]] && labels[[jj, ii]] == 0 {
                        labels[[jj, ii]] = label;
                        stack.push((jj, ii));
                    }
                };
                if j > 0 {
                    visit(j - 1, i);
                }
                if j + 1 < ny {
                    visit(j + 1, i);
                }
                if i > 0 {
                    visit(j, i - 1);
                }
                if i + 1 < nx {
                    visit(j, i + 1);
                }
            }
            comps.push(Component2 {
                label,
                area,
                cx: sx / area as f64,
                cy: sy / area as f64,
            });
        }
    }
    (labels, comps)
}

/// The 6-neighbours of voxel `(k, j, i)` that lie inside a `(z, y, x)` grid
/// of `dim`, in the order −z, +z, −y, +y, −x, +x: the one neighbourhood of the
/// flood fills, region growing and 6-dilations.
#[inline]
pub fn neighbours6(
    dim: (usize, usize, usize),
    (k, j, i): (usize, usize, usize),
) -> impl Iterator<Item = (usize, usize, usize)> {
    let (nz, ny, nx) = dim;
    [
        (k.wrapping_sub(1), j, i),
        (k + 1, j, i),
        (k, j.wrapping_sub(1), i),
        (k, j + 1, i),
        (k, j, i.wrapping_sub(1)),
        (k, j, i + 1),
    ]
    .into_iter()
    .filter(move |&(a, b, c)| a < nz && b < ny && c < nx)
}

/// The 6-connected component reachable from `seed` (`(x, y, z)`) through
/// voxels for which `inside(x, y, z)` holds, in a `(z, y, x)` grid of `dim`;
/// the seed itself is always in it. A flood fill with an explicit stack (no
/// recursion depth to overflow on a large lesion).
pub fn flood6(
    dim: (usize, usize, usize),
    seed: (usize, usize, usize),
    inside: impl Fn(usize, usize, usize) -> bool,
) -> Array3<bool> {
    let (nz, ny, nx) = dim;
    let mut out = Array3::from_elem(dim, false);
    let (si, sj, sk) = seed;
    if si >= nx || sj >= ny || sk >= nz {
        return out;
    }
    out[[sk, sj, si]] = true;
    let mut stack = vec![(sk, sj, si)];
    while let Some(v) = stack.pop() {
        for (c, b, a) in neighbours6(dim, v) {
            if !out[[c, b, a]] && inside(a, b, c) {
                out[[c, b, a]] = true;
                stack.push((c, b, a));
            }
        }
    }
    out
}

/// The 4-neighbours of pixel `(i, j)` that are outside a 2-D mask (`inside`
/// says which pixels are in; what lies off the image is outside). A mask pixel
/// with any such neighbour is on the mask's edge: the one edge test of the
/// measurement (axes) and the key images (outline).
pub fn outside_neighbours4<F: Fn(i64, i64) -> bool>(
    inside: &F,
    i: i64,
    j: i64,
) -> impl Iterator<Item = (i64, i64)> + '_ {
    [(-1i64, 0i64), (1, 0), (0, -1), (0, 1)]
        .into_iter()
        .map(move |(di, dj)| (i + di, j + dj))
        .filter(move |&(a, b)| !inside(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_preserves_mass_and_constant() {
        let mut v = Array3::<f32>::zeros((9, 9, 9));
        v[[4, 4, 4]] = 1000.0;
        let g = gaussian3(&v, [1.0, 1.0, 1.0]);
        assert!((g.sum() - 1000.0).abs() < 1.0, "{}", g.sum());
        assert!(g[[4, 4, 4]] > g[[4, 4, 5]] && g[[4, 4, 5]] > g[[4, 4, 6]]);
        let c = Array3::<f32>::from_elem((5, 6, 7), -800.0);
        let gc = gaussian3(&c, [2.0, 1.5, 3.0]);
        assert!(gc.iter().all(|&x| (x + 800.0).abs() < 1e-2));
    }

    #[test]
    fn gaussian_matches_direct_convolution_with_reflection() {
        // Anisotropic sigmas, kernels wider than some axes (reflection twice).
        let (nz, ny, nx) = (4, 7, 11);
        let v = Array3::from_shape_fn((nz, ny, nx), |(k, j, i)| {
            ((k * 31 + j * 17 + i * 7) % 23) as f32 - 11.0
        });
        let sig = [1.3f32, 2.6, 0.8];
        let g = gaussian3(&v, sig);
        let (kx, ky, kz) = (
            gaussian_kernel(sig[0]),
            gaussian_kernel(sig[1]),
            gaussian_kernel(sig[2]),
        );
        let (rx, ry, rz) = (kx.len() / 2, ky.len() / 2, kz.len() / 2);
        for ((k, j, i), &got) in g.indexed_iter() {
            let mut want = 0f64;
            for (c, &wz) in kz.iter().enumerate() {
                let kk = reflect(k as isize + c as isize - rz as isize, nz as isize);
                for (b, &wy) in ky.iter().enumerate() {
                    let jj = reflect(j as isize + b as isize - ry as isize, ny as isize);
                    for (a, &wx) in kx.iter().enumerate() {
                        let ii = reflect(i as isize + a as isize - rx as isize, nx as isize);
                        want += (wz * wy * wx) as f64 * v[[kk, jj, ii]] as f64;
                    }
                }
            }
            assert!(
                (got as f64 - want).abs() < 1e-3,
                "({k},{j},{i}): {got} vs {want}"
            );
        }
    }

    #[test]
    fn edt_and_closing() {
        let mut m = Array2::from_elem((20, 20), false);
        m[[10, 10]] = true;
        let d = edt2_sq(m.view());
        assert_eq!(d[[10, 13]], 9.0);
        assert_eq!(d[[13, 14]], 25.0);
        // Two blocks with a 2-pixel gap are bridged by closing with radius 2.
        let mut b = Array2::from_elem((20, 30), false);
        for j in 5..15 {
            for i in 5..13 {
                b[[j, i]] = true;
            }
            for i in 15..25 {
                b[[j, i]] = true;
            }
        }
        let c = close2(b.view(), 2.0);
        assert!(c[[10, 13]] && c[[10, 14]]);
        assert!(!c[[2, 2]]);
    }

    #[test]
    fn holes_and_labels() {
        let mut ring = Array2::from_elem((9, 9), false);
        for j in 2..7 {
            for i in 2..7 {
                ring[[j, i]] = j == 2 || j == 6 || i == 2 || i == 6;
            }
        }
        let f = fill_holes2(ring.view());
        assert!(f[[4, 4]] && !f[[0, 0]]);
        let (lab, comps) = label2(ring.view());
        assert_eq!(comps.len(), 1);
        assert_eq!(comps[0].area, 16);
        assert_eq!(lab[[4, 4]], 0);
    }

    #[test]
    fn edt3_matches_brute_force_and_morphology_is_sane() {
        let (nz, ny, nx) = (7, 9, 11);
        let m = Array3::from_shape_fn((nz, ny, nx), |(k, j, i)| (k * 7 + j * 3 + i * 5) % 17 == 0);
        let d = edt3_sq(&m);
        for ((k, j, i), &got) in d.indexed_iter() {
            let mut best = f32::MAX;
            for ((a, b, c), &v) in m.indexed_iter() {
                if v {
                    let dd = (a as f32 - k as f32).powi(2)
                        + (b as f32 - j as f32).powi(2)
                        + (c as f32 - i as f32).powi(2);
                    best = best.min(dd);
                }
            }
            assert_eq!(got, best, "at {k} {j} {i}");
        }
        // A ball of radius 5 with a notch 2 voxels wide: closing r=3 fills the notch,
        // opening r=3 keeps the ball's core and drops a thin spur.
        let n = 21;
        let mut ball = Array3::from_shape_fn((n, n, n), |(k, j, i)| {
            let r =
                ((k as f32 - 10.0).powi(2) + (j as f32 - 10.0).powi(2) + (i as f32 - 10.0).powi(2))
                    .sqrt();
            r <= 5.0
        });
        for j in 9..=10 {
            for i in 10..=15 {
                ball[[10, j, i]] = false;
            }
        }
        let closed = close3(&ball, 3.0);
        assert!(closed[[10, 10, 12]], "notch filled");
        assert!(!closed[[10, 10, 18]], "nothing far outside");
        let mut spur = Array3::from_shape_fn((n, n, n), |(k, j, i)| {
            let r =
                ((k as f32 - 10.0).powi(2) + (j as f32 - 10.0).powi(2) + (i as f32 - 10.0).powi(2))
                    .sqrt();
            r <= 5.0
        });
        for i in 0..5 {
            spur[[10, 10, i]] = true;
        }
        let opened = open3(&spur, 3.0);
        assert!(opened[[10, 10, 10]], "core kept");
        assert!(!opened[[10, 10, 1]], "spur removed");
    }
}
