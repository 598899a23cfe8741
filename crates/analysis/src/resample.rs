//! Stage 3 of 11 — resample a volume to isotropic spacing (trilinear).
//!
//! The output grid keeps the input's row and column directions and uses the
//! slice normal as its third axis, so a gantry-tilted (sheared) input comes out
//! as an ordinary orthogonal grid. For orthogonal inputs the interpolation is
//! separable (three 1-D passes, each parallel over slices); sheared inputs go
//! through a general affine trilinear path.

use ndarray::{Array3, Axis};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::progress::{Progress, Stage};
use crate::series::PADDING_HU;
use crate::volume::{Geometry, Volume, cross, norm};

/// Resample `vol` onto an isotropic grid of `spacing_mm`, covering the same extent.
///
/// Voxels outside the input are set to −1024 HU (air).
pub fn to_isotropic(vol: &Volume, spacing_mm: f64, progress: &dyn Progress) -> Result<Volume> {
    to_spacing(vol, [spacing_mm; 3], progress)
}

/// Resample `vol` onto a grid with the given `[x, y, z]` spacing in mm.
pub fn to_spacing(vol: &Volume, spacing: [f64; 3], progress: &dyn Progress) -> Result<Volume> {
    if spacing.iter().any(|&s| !(s.is_finite() && s > 0.01)) {
        return Err(Error::InvalidArgument(format!(
            "resample spacing {spacing:?}"
        )));
    }
    let g = &vol.geometry;
    if g.is_empty() {
        return Err(Error::InvalidArgument("resampling an empty volume".into()));
    }
    let normal = {
        let n = cross(g.direction[0], g.direction[1]);
        let l = norm(n);
        n.map(|x| x / l)
    };
    let sheared = (crate::volume::dot(normal, g.direction[2]) - 1.0).abs() > 1e-6;
    // Extent along each output axis. For sheared grids the z extent is the
    // projection of the stack on the normal.
    let z_extent = if sheared {
        let last = g.voxel_to_patient([0.0, 0.0, (g.size[2] - 1) as f64]);
        crate::volume::dot(
            [
                last[0] - g.origin[0],
                last[1] - g.origin[1],
                last[2] - g.origin[2],
            ],
            normal,
        )
        .abs()
    } else {
        g.extent_mm()[2]
    };
    let extent = [g.extent_mm()[0], g.extent_mm()[1], z_extent];
    let size = [0, 1, 2].map(|a| (extent[a] / spacing[a] + 1e-6).floor() as usize + 1);
    let out_geom = Geometry {
        size,
        spacing,
        origin: g.origin,
        direction: [g.direction[0], g.direction[1], normal],
    };
    let voxels = size.iter().map(|&s| s as u64).product::<u64>();
    if voxels > 2_000_000_000 {
        return Err(Error::InvalidArgument(format!(
            "resampled grid of {voxels} voxels is too large"
        )));
    }
    let hu = if sheared {
        affine_trilinear(vol, &out_geom, progress)?
    } else {
        separable(vol, &out_geom, progress)?
    };
    Ok(Volume {
        hu,
        geometry: out_geom,
    })
}

/// Precomputed 1-D linear interpolation: for each output index, the two input
/// indices and the weight of the second (None when outside the input).
fn axis_weights(
    n_in: usize,
    in_spacing: f64,
    n_out: usize,
    out_spacing: f64,
) -> Vec<Option<(usize, usize, f32)>> {
    (0..n_out)
        .map(|o| {
            let x = o as f64 * out_spacing / in_spacing;
            if x < -1e-6 || x > (n_in - 1) as f64 + 1e-6 {
                return None;
            }
            let x = x.clamp(0.0, (n_in - 1) as f64);
            let i0 = x.floor() as usize;
            let i1 = (i0 + 1).min(n_in - 1);
            Some((i0, i1, (x - i0 as f64) as f32))
        })
        .collect()
}

fn separable(vol: &Volume, out: &Geometry, progress: &dyn Progress) -> Result<Array3<i16>> {
    let g = &vol.geometry;
    let [nx, ny, nz] = g.size;
    let [ox, oy, oz] = out.size;
    let wx = axis_weights(nx, g.spacing[0], ox, out.spacing[0]);
    let wy = axis_weights(ny, g.spacing[1], oy, out.spacing[1]);
    let wz = axis_weights(nz, g.spacing[2], oz, out.spacing[2]);
    // Pass 1+2 per input slice: x then y, into f32 planes (oy × ox).
    let mut planes = vec![0f32; nz * oy * ox];
    let done = std::sync::atomic::AtomicUsize::new(0);
    planes
        .par_chunks_mut(oy * ox)
        .enumerate()
        .try_for_each(|(k, plane)| {
            let src = vol.hu.index_axis(Axis(0), k);
            if progress.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let mut rows_x = vec![0f32; ny * ox];
            for (j, src_row) in src.axis_iter(Axis(0)).enumerate() {
                let src_row = src_row
                    .to_slice()
                    .map(|s| s.to_vec())
                    .unwrap_or_else(|| src_row.to_vec());
                let dst = &mut rows_x[j * ox..(j + 1) * ox];
                for (d, w) in dst.iter_mut().zip(&wx) {
                    *d = match *w {
                        Some((a, b, t)) => src_row[a] as f32 * (1.0 - t) + src_row[b] as f32 * t,
                        None => PADDING_HU as f32,
                    };
                }
            }
            for (oj, w) in wy.iter().enumerate() {
                let dst = &mut plane[oj * ox..(oj + 1) * ox];
                match *w {
                    Some((a, b, t)) => {
                        let ra = &rows_x[a * ox..(a + 1) * ox];
                        let rb = &rows_x[b * ox..(b + 1) * ox];
                        for ((d, &va), &vb) in dst.iter_mut().zip(ra).zip(rb) {
                            *d = va * (1.0 - t) + vb * t;
                        }
                    }
                    None => dst.fill(PADDING_HU as f32),
                }
            }
            let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress.progress(Stage::Resample, 0.7 * d as f64 / nz as f64);
            Ok(())
        })?;
    // Pass 3: z.
    let mut data = vec![0i16; oz * oy * ox];
    data.par_chunks_mut(oy * ox)
        .zip(wz.par_iter())
        .for_each(|(dst, w)| match *w {
            Some((a, b, t)) => {
                let pa = &planes[a * oy * ox..(a + 1) * oy * ox];
                let pb = &planes[b * oy * ox..(b + 1) * oy * ox];
                for ((d, &va), &vb) in dst.iter_mut().zip(pa).zip(pb) {
                    *d = (va * (1.0 - t) + vb * t).round() as i16;
                }
            }
            None => dst.fill(PADDING_HU),
        });
    progress.progress(Stage::Resample, 1.0);
    Array3::from_shape_vec((oz, oy, ox), data).map_err(|e| Error::InvalidArgument(e.to_string()))
}

fn affine_trilinear(vol: &Volume, out: &Geometry, progress: &dyn Progress) -> Result<Array3<i16>> {
    let g = &vol.geometry;
    let [nx, ny, nz] = g.size;
    let [ox, oy, oz] = out.size;
    let hu = &vol.hu;
    let mut data = vec![0i16; oz * oy * ox];
    data.par_chunks_mut(oy * ox)
        .enumerate()
        .try_for_each(|(k, plane)| {
            if progress.is_cancelled() {
                return Err(Error::Cancelled);
            }
            for j in 0..oy {
                for i in 0..ox {
                    let p = out.voxel_to_patient([i as f64, j as f64, k as f64]);
                    let [x, y, z] = g.patient_to_voxel(p);
                    plane[j * ox + i] = sample(hu, [nx, ny, nz], x, y, z);
                }
            }
            Ok(())
        })?;
    Array3::from_shape_vec((oz, oy, ox), data).map_err(|e| Error::InvalidArgument(e.to_string()))
}

/// Trilinear sample at a continuous voxel index; −1024 HU outside.
pub fn sample(hu: &Array3<i16>, size: [usize; 3], x: f64, y: f64, z: f64) -> i16 {
    let [nx, ny, nz] = size;
    let inside = |v: f64, n: usize| v >= -1e-6 && v <= (n - 1) as f64 + 1e-6;
    if !(inside(x, nx) && inside(y, ny) && inside(z, nz)) {
        return PADDING_HU;
    }
    let (x, y, z) = (
        x.clamp(0.0, (nx - 1) as f64),
        y.clamp(0.0, (ny - 1) as f64),
        z.clamp(0.0, (nz - 1) as f64),
    );
    let (x0, y0, z0) = (x.floor() as usize, y.floor() as usize, z.floor() as usize);
    let (x1, y1, z1) = (
        (x0 + 1).min(nx - 1),
        (y0 + 1).min(ny - 1),
        (z0 + 1).min(nz - 1),
    );
    let (tx, ty, tz) = (x - x0 as f64, y - y0 as f64, z - z0 as f64);
    let v = |z: usize, y: usize, x: usize| hu[[z, y, x]] as f64;
    let c00 = v(z0, y0, x0) * (1.0 - tx) + v(z0, y0, x1) * tx;
    let c01 = v(z0, y1, x0) * (1.0 - tx) + v(z0, y1, x1) * tx;
    let c10 = v(z1, y0, x0) * (1.0 - tx) + v(z1, y0, x1) * tx;
    let c11 = v(z1, y1, x0) * (1.0 - tx) + v(z1, y1, x1) * tx;
    let c0 = c00 * (1.0 - ty) + c01 * ty;
    let c1 = c10 * (1.0 - ty) + c11 * ty;
    (c0 * (1.0 - tz) + c1 * tz).round() as i16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;

    fn ramp(size: [usize; 3], spacing: [f64; 3], direction: [[f64; 3]; 3]) -> Volume {
        let [nx, ny, nz] = size;
        // HU = linear function of patient position, which trilinear interpolation reproduces exactly.
        let geometry = Geometry {
            size,
            spacing,
            origin: [-10.0, 5.0, 100.0],
            direction,
        };
        let mut hu = Array3::zeros((nz, ny, nx));
        for ((k, j, i), v) in hu.indexed_iter_mut() {
            let p = geometry.voxel_to_patient([i as f64, j as f64, k as f64]);
            *v = (2.0 * (p[0] + 10.0) + 3.0 * (p[1] - 5.0) + 5.0 * (p[2] - 100.0)).round() as i16;
        }
        Volume { hu, geometry }
    }

    const AXIAL: [[f64; 3]; 3] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

    #[test]
    fn separable_reproduces_linear_field() {
        let v = ramp([20, 16, 8], [0.7, 0.7, 2.5], AXIAL);
        let r = to_isotropic(&v, 1.0, &NoProgress).unwrap();
        assert_eq!(r.geometry.size, [14, 11, 18]); // floor(13.3)+1, floor(10.5)+1, floor(17.5)+1
        for ((k, j, i), &hu) in r.hu.indexed_iter() {
            let p = r.geometry.voxel_to_patient([i as f64, j as f64, k as f64]);
            let want = 2.0 * (p[0] + 10.0) + 3.0 * (p[1] - 5.0) + 5.0 * (p[2] - 100.0);
            assert!(
                (hu as f64 - want).abs() <= 1.0,
                "{i},{j},{k}: {hu} vs {want}"
            );
        }
    }

    #[test]
    fn tilted_input_becomes_orthogonal() {
        let t = 10f64.to_radians();
        let dir = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, t.sin(), t.cos()]];
        let v = ramp([16, 24, 10], [1.0, 1.0, 2.0], dir);
        let r = to_isotropic(&v, 1.0, &NoProgress).unwrap();
        assert_eq!(r.geometry.direction[2], [0.0, 0.0, 1.0]);
        let mut checked = 0;
        for ((k, j, i), &hu) in r.hu.indexed_iter() {
            if hu == PADDING_HU {
                continue;
            }
            let p = r.geometry.voxel_to_patient([i as f64, j as f64, k as f64]);
            let want = 2.0 * (p[0] + 10.0) + 3.0 * (p[1] - 5.0) + 5.0 * (p[2] - 100.0);
            assert!((hu as f64 - want).abs() <= 1.0);
            checked += 1;
        }
        assert!(checked > 1000);
    }
}
