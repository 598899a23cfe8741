//! Patch extraction: the one function that turns a resampled volume and a
//! centre into network input, used at inference and by the training-data
//! generator alike.

use crate::series::PADDING_HU;
use crate::volume::Volume;

use super::manifest::Normalization;

/// Extract a `[z, y, x]` cube centred on the voxel nearest to `center_xyz`
/// (continuous voxel index of `iso`, which must already be at the model's spacing),
/// normalised for the network. Outside the volume counts as air (−1024 HU).
///
/// The output is row-major `z, y, x` (`patch[0] * patch[1] * patch[2]` values).
pub fn extract_patch(
    iso: &Volume,
    center_xyz: [f64; 3],
    patch_zyx: [usize; 3],
    norm: &Normalization,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(patch_zyx.iter().product());
    extract_patch_into(iso, center_xyz, patch_zyx, norm, &mut out);
    out
}

/// As [`extract_patch`], appending to `out` (to fill a batch without copies).
pub fn extract_patch_into(
    iso: &Volume,
    center_xyz: [f64; 3],
    patch_zyx: [usize; 3],
    norm: &Normalization,
    out: &mut Vec<f32>,
) {
    let [nz, ny, nx] = {
        let s = iso.hu.shape();
        [s[0] as i64, s[1] as i64, s[2] as i64]
    };
    let [pz, py, px] = patch_zyx.map(|v| v as i64);
    // Start so that the centre voxel sits at index size/2.
    let c = center_xyz.map(|v| v.round() as i64);
    let (x0, y0, z0) = (c[0] - px / 2, c[1] - py / 2, c[2] - pz / 2);
    let air = norm.apply(PADDING_HU as f32);
    for z in z0..z0 + pz {
        for y in y0..y0 + py {
            if z < 0 || z >= nz || y < 0 || y >= ny {
                out.extend(std::iter::repeat_n(air, px as usize));
                continue;
            }
            let row = iso.hu.slice(ndarray::s![z as usize, y as usize, ..]);
            for x in x0..x0 + px {
                out.push(if x < 0 || x >= nx {
                    air
                } else {
                    norm.apply(row[x as usize] as f32)
                });
            }
        }
    }
}

/// The scale at which a candidate is shown to the classifier: 1 (the model's
/// spacing) unless it is a mass-channel candidate whose diameter, with a 40 %
/// margin, exceeds the patch; then the smallest integer factor (at most 4)
/// whose patch holds it. Shared by inference and the training-data generator.
pub fn patch_scale(
    c: &crate::candidates::Candidate,
    patch_zyx: [usize; 3],
    spacing_mm: f64,
) -> usize {
    if c.channel != crate::candidates::Channel::Mass {
        return 1;
    }
    let edge_mm = patch_zyx.iter().copied().min().unwrap_or(32) as f64 * spacing_mm;
    ((2.0 * c.radius_mm * 1.4) / edge_mm).ceil().clamp(1.0, 4.0) as usize
}

/// As [`extract_patch_into`], at `factor` times the volume's spacing: each
/// patch voxel is the mean of a `factor`³ block of `iso` (box anti-aliasing), so
/// a lesion larger than the patch is seen whole, as a smaller one would be.
/// `factor` 1 is exactly [`extract_patch_into`].
pub fn extract_patch_scaled_into(
    iso: &Volume,
    center_xyz: [f64; 3],
    patch_zyx: [usize; 3],
    factor: usize,
    norm: &Normalization,
    out: &mut Vec<f32>,
) {
    if factor <= 1 {
        return extract_patch_into(iso, center_xyz, patch_zyx, norm, out);
    }
    let [nz, ny, nx] = {
        let s = iso.hu.shape();
        [s[0] as i64, s[1] as i64, s[2] as i64]
    };
    let f = factor as i64;
    let [pz, py, px] = patch_zyx.map(|v| v as i64);
    let c = center_xyz.map(|v| v.round() as i64);
    // Block (0,0,0) starts so that the centre voxel sits in block size/2.
    let (x0, y0, z0) = (
        c[0] - (px / 2) * f - f / 2,
        c[1] - (py / 2) * f - f / 2,
        c[2] - (pz / 2) * f - f / 2,
    );
    let inv = 1.0 / (f * f * f) as f32;
    for bz in 0..pz {
        for by in 0..py {
            for bx in 0..px {
                let mut sum = 0f32;
                for z in z0 + bz * f..z0 + (bz + 1) * f {
                    for y in y0 + by * f..y0 + (by + 1) * f {
                        for x in x0 + bx * f..x0 + (bx + 1) * f {
                            sum += if z < 0 || z >= nz || y < 0 || y >= ny || x < 0 || x >= nx {
                                PADDING_HU as f32
                            } else {
                                iso.hu[[z as usize, y as usize, x as usize]] as f32
                            };
                        }
                    }
                }
                out.push(norm.apply(sum * inv));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Geometry;
    use ndarray::Array3;

    #[test]
    fn centred_and_padded() {
        let mut hu = Array3::from_elem((10, 10, 10), -1000i16);
        hu[[5, 5, 5]] = 400;
        let iso = Volume {
            hu,
            geometry: Geometry {
                size: [10, 10, 10],
                spacing: [1.0; 3],
                origin: [0.0; 3],
                direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            },
        };
        let n = Normalization {
            hu_window: [-1000.0, 400.0],
            offset: -1000.0,
            scale: 1400.0,
        };
        let p = extract_patch(&iso, [5.2, 4.8, 5.0], [4, 4, 4], &n);
        assert_eq!(p.len(), 64);
        assert_eq!(p[2 * 16 + 2 * 4 + 2], 1.0); // centre voxel at size/2
        assert_eq!(p.iter().filter(|&&v| v == 1.0).count(), 1);
        // A corner patch reads air outside.
        let q = extract_patch(&iso, [0.0, 0.0, 0.0], [4, 4, 4], &n);
        assert!(q.iter().all(|&v| v == 0.0));
    }
}
