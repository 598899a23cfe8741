//! Key images: for each finding, the source axial slice in lung window with
//! the finding outlined and its long (orange) and short (cyan) axes drawn.

use image::{ImageBuffer, Rgb, RgbImage};
use ndarray::Axis;

use crate::error::{Error, Result};
use crate::measure::FindingMask;
use crate::volume::{Vec3, Volume};

/// Lung window: centre −600 HU, width 1500 HU.
pub const LUNG_WINDOW: (f64, f64) = (-600.0, 1500.0);

/// Grey value of a HU under a window `(centre, width)`.
pub fn window(hu: f64, (center, width): (f64, f64)) -> u8 {
    let lo = center - width / 2.0;
    (((hu - lo) / width).clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Render one axial slice of `vol` in the given window as RGB.
pub fn render_slice(vol: &Volume, slice: usize, win: (f64, f64)) -> RgbImage {
    let plane = vol
        .hu
        .index_axis(Axis(0), slice.min(vol.hu.dim().0.saturating_sub(1)));
    let (ny, nx) = plane.dim();
    ImageBuffer::from_fn(nx as u32, ny as u32, |x, y| {
        let g = window(plane[[y as usize, x as usize]] as f64, win);
        Rgb([g, g, g])
    })
}

/// Draw a line between two pixel positions.
fn line(img: &mut RgbImage, a: [f64; 2], b: [f64; 2], color: Rgb<u8>) {
    let steps = ((b[0] - a[0]).abs().max((b[1] - a[1]).abs()).ceil() as usize).max(1) * 2;
    for s in 0..=steps {
        let t = s as f64 / steps as f64;
        let (x, y) = (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t);
        let (x, y) = (x.round(), y.round());
        if x >= 0.0 && y >= 0.0 && (x as u32) < img.width() && (y as u32) < img.height() {
            img.put_pixel(x as u32, y as u32, color);
        }
    }
}

/// The key image of one finding as PNG bytes.
pub fn finding_png(
    vol: &Volume,
    slice: usize,
    mask: &FindingMask,
    axes_lps: &[[Vec3; 2]; 2],
) -> Result<Vec<u8>> {
    let mut img = render_slice(vol, slice, LUNG_WINDOW);
    let outline = Rgb([255, 214, 0]);
    let [ox, oy, oz] = mask.origin_xyz;
    if slice >= oz && slice - oz < mask.mask.dim().0 {
        let plane = mask.mask.index_axis(Axis(0), slice - oz);
        let (ny, nx) = plane.dim();
        for ((j, i), &m) in plane.indexed_iter() {
            if !m {
                continue;
            }
            let edge = i == 0
                || j == 0
                || i + 1 == nx
                || j + 1 == ny
                || !plane[[j, i - 1]]
                || !plane[[j, i + 1]]
                || !plane[[j - 1, i]]
                || !plane[[j + 1, i]];
            if edge {
                // draw the outline one pixel outside the lesion so its edge stays visible
                for (dx, dy) in [(-1i64, 0i64), (1, 0), (0, -1), (0, 1)] {
                    let (x, y) = ((ox + i) as i64 + dx, (oy + j) as i64 + dy);
                    let inside_mask = {
                        let (li, lj) = (i as i64 + dx, j as i64 + dy);
                        li >= 0
                            && lj >= 0
                            && (li as usize) < nx
                            && (lj as usize) < ny
                            && plane[[lj as usize, li as usize]]
                    };
                    if !inside_mask
                        && x >= 0
                        && y >= 0
                        && (x as u32) < img.width()
                        && (y as u32) < img.height()
                    {
                        img.put_pixel(x as u32, y as u32, outline);
                    }
                }
            }
        }
    }
    let g = &vol.geometry;
    let to_px = |p: Vec3| {
        let v = g.patient_to_voxel(p);
        [v[0], v[1]]
    };
    line(
        &mut img,
        to_px(axes_lps[0][0]),
        to_px(axes_lps[0][1]),
        Rgb([255, 120, 0]),
    );
    line(
        &mut img,
        to_px(axes_lps[1][0]),
        to_px(axes_lps[1][1]),
        Rgb([0, 200, 255]),
    );
    encode_png(&img)
}

/// Encode an RGB image as PNG.
pub fn encode_png(img: &RgbImage) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .map_err(|e| Error::Output {
            what: "key image".into(),
            message: e.to_string(),
        })?;
    Ok(out)
}
