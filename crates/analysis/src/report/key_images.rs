//! Key images: for each finding, two panels a radiologist can read without
//! opening the viewer, and the PNG that shows them side by side.
//!
//! - **overview**: the source axial slice at its own pixel size, lung window,
//!   the finding outlined (yellow) with its long (orange) and short (cyan)
//!   axes, a box where the inset is taken from, the patient orientation
//!   letters at the four edges, a 50 mm scale bar and a caption (finding
//!   number, series and image number, size, type, Lung-RADS);
//! - **zoom**: a square inset around the finding (at least 30 mm, at least
//!   2.5 × its long axis), enlarged to 512 × 512 pixels by bilinear
//!   interpolation of the HU, with the outline and the axes, orientation
//!   letters, a 10 mm scale bar and the magnification.
//!
//! The text is burned in (an 8 × 8 bitmap font, ASCII) — the Secondary
//! Capture objects say so (Burned In Annotation YES) and carry each panel's
//! own pixel spacing.

use image::{ImageBuffer, Rgb, RgbImage};
use ndarray::Axis;

use crate::error::{Error, Result};
use crate::imgproc::outside_neighbours4;
use crate::measure::FindingMask;
use crate::report::Finding;
use crate::volume::{Vec3, Volume};

/// Lung window: centre −600 HU, width 1500 HU.
pub const LUNG_WINDOW: (f64, f64) = (-600.0, 1500.0);

/// Side of the zoomed inset in pixels.
pub const ZOOM_PX: u32 = 512;

const OUTLINE: Rgb<u8> = Rgb([255, 214, 0]);
const LONG_AXIS: Rgb<u8> = Rgb([255, 120, 0]);
const SHORT_AXIS: Rgb<u8> = Rgb([0, 200, 255]);
const TEXT: Rgb<u8> = Rgb([255, 255, 255]);
const MARKER: Rgb<u8> = Rgb([255, 235, 120]);

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

fn put(img: &mut RgbImage, x: i64, y: i64, c: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, c);
    }
}

/// Draw a line between two pixel positions, `width` pixels wide.
fn line(img: &mut RgbImage, a: [f64; 2], b: [f64; 2], color: Rgb<u8>, width: i64) {
    let steps = ((b[0] - a[0]).abs().max((b[1] - a[1]).abs()).ceil() as usize).max(1) * 2;
    for s in 0..=steps {
        let t = s as f64 / steps as f64;
        let (x, y) = (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t);
        let (x, y) = (x.round() as i64, y.round() as i64);
        for d in 0..width {
            for e in 0..width {
                put(img, x + d - width / 2, y + e - width / 2, color);
            }
        }
    }
}

/// Draw ASCII text with the 8 × 8 font at `scale`, on a dark box; returns its width.
fn text(img: &mut RgbImage, x: i64, y: i64, s: &str, scale: i64, color: Rgb<u8>) -> i64 {
    let w = s.chars().count() as i64 * 8 * scale;
    let h = 8 * scale;
    for yy in y - 2..y + h + 2 {
        for xx in x - 2..x + w + 2 {
            if xx >= 0 && yy >= 0 && (xx as u32) < img.width() && (yy as u32) < img.height() {
                let p = img.get_pixel_mut(xx as u32, yy as u32);
                for v in p.0.iter_mut() {
                    *v /= 4;
                }
            }
        }
    }
    for (n, ch) in s.chars().enumerate() {
        let code = if ch.is_ascii() {
            ch as usize
        } else {
            b'?' as usize
        };
        let glyph = font8x8::legacy::BASIC_LEGACY[code];
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) != 0 {
                    for dy in 0..scale {
                        for dx in 0..scale {
                            put(
                                img,
                                x + (n as i64 * 8 + col) * scale + dx,
                                y + row as i64 * scale + dy,
                                color,
                            );
                        }
                    }
                }
            }
        }
    }
    w
}

/// Patient direction letter of a unit vector (its dominant LPS axis).
fn letter(d: Vec3) -> char {
    let (i, v) = d
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        .map(|(i, v)| (i, *v))
        .unwrap_or((0, 1.0));
    match (i, v >= 0.0) {
        (0, true) => 'L',
        (0, false) => 'R',
        (1, true) => 'P',
        (1, false) => 'A',
        (_, true) => 'H',
        (_, false) => 'F',
    }
}

/// Orientation letters at the left, right, top and bottom edge of an axial image.
fn orientation(img: &mut RgbImage, vol: &Volume, scale: i64) {
    let [row, col, _] = vol.geometry.direction;
    let neg = |d: Vec3| d.map(|v| -v);
    let (w, h) = (img.width() as i64, img.height() as i64);
    let ch = 8 * scale;
    let mid_y = h / 2 - ch / 2;
    let mid_x = w / 2 - ch / 2;
    text(img, 4, mid_y, &letter(neg(row)).to_string(), scale, MARKER);
    text(
        img,
        w - ch - 4,
        mid_y,
        &letter(row).to_string(),
        scale,
        MARKER,
    );
    text(img, mid_x, 4, &letter(neg(col)).to_string(), scale, MARKER);
    text(
        img,
        mid_x,
        h - ch - 4,
        &letter(col).to_string(),
        scale,
        MARKER,
    );
}

/// A scale bar of `mm` millimetres at the bottom right (`px_mm` mm per pixel).
fn scale_bar(img: &mut RgbImage, px_mm: f64, mm: f64, scale: i64) {
    let len = (mm / px_mm).round() as i64;
    let (w, h) = (img.width() as i64, img.height() as i64);
    let x1 = w - 16;
    let x0 = x1 - len;
    let y = h - 14 - 8 * scale;
    line(img, [x0 as f64, y as f64], [x1 as f64, y as f64], TEXT, 3);
    for x in [x0, x1] {
        line(
            img,
            [x as f64, (y - 6) as f64],
            [x as f64, (y + 6) as f64],
            TEXT,
            2,
        );
    }
    let label = format!("{mm:.0} mm");
    let lw = label.len() as i64 * 8 * scale;
    text(img, x1 - lw, y + 8, &label, scale, TEXT);
}

/// The two panels and the side-by-side PNG of one finding's key image.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedKeyImage {
    /// Overview and zoom side by side (what `key-images/finding-N.png` holds).
    pub composite_png: Vec<u8>,
    /// The full slice with the annotations, at the source pixel size.
    pub overview_png: Vec<u8>,
    /// Pixel spacing `[row, column]` (mm) of the overview.
    pub overview_spacing_mm: [f64; 2],
    /// The zoomed inset.
    pub zoom_png: Vec<u8>,
    /// Pixel spacing `[row, column]` (mm) of the zoomed inset.
    pub zoom_spacing_mm: [f64; 2],
}

/// Series/image caption of a finding (`Se 2 Im 35`, `?` when unknown).
pub fn image_caption(f: &Finding) -> String {
    let n = |v: Option<i64>| v.map_or("?".to_string(), |v| v.to_string());
    format!("Se {} Im {}", n(f.series_number), n(f.image_number))
}

/// Render the key image of finding `f` with its mask.
pub fn render_finding(vol: &Volume, f: &Finding, mask: &FindingMask) -> Result<RenderedKeyImage> {
    let g = &vol.geometry;
    let slice = f.slice_index.min(vol.hu.dim().0.saturating_sub(1));
    let (sx, sy) = (g.spacing[0], g.spacing[1]);
    let to_px = |p: Vec3| {
        let v = g.patient_to_voxel(p);
        [v[0], v[1]]
    };
    let axes = f.axes_lps_mm.map(|a| a.map(to_px));
    let plane_mask = {
        let [_, _, oz] = mask.origin_xyz;
        (slice >= oz && slice - oz < mask.mask.dim().0)
            .then(|| mask.mask.index_axis(Axis(0), slice - oz).to_owned())
    };
    let in_mask = |i: i64, j: i64| -> bool {
        let [ox, oy, _] = mask.origin_xyz;
        let Some(p) = &plane_mask else { return false };
        let (li, lj) = (i - ox as i64, j - oy as i64);
        let (ny, nx) = p.dim();
        li >= 0
            && lj >= 0
            && (li as usize) < nx
            && (lj as usize) < ny
            && p[[lj as usize, li as usize]]
    };

    // Zoom window: square around the finding centre.
    let c = g.patient_to_voxel(f.center_lps_mm);
    let side_mm = (2.5 * f.long_axis_mm).max(30.0);
    let side_px = side_mm / sx.min(sy);
    let (cx0, cy0) = (c[0] - side_px / 2.0, c[1] - side_px / 2.0); // voxel coords of the left/top edge
    let z = ZOOM_PX as f64 / side_px;

    // Overview.
    let mut ov = render_slice(vol, slice, LUNG_WINDOW);
    let (nx, ny) = (ov.width() as i64, ov.height() as i64);
    for j in 0..ny {
        for i in 0..nx {
            if in_mask(i, j) {
                for (a, b) in outside_neighbours4(&in_mask, i, j) {
                    put(&mut ov, a, b, OUTLINE);
                }
            }
        }
    }
    line(&mut ov, axes[0][0], axes[0][1], LONG_AXIS, 1);
    line(&mut ov, axes[1][0], axes[1][1], SHORT_AXIS, 1);
    let (bx0, by0, bx1, by1) = (
        cx0 - 0.5,
        cy0 - 0.5,
        cx0 + side_px - 0.5,
        cy0 + side_px - 0.5,
    );
    for (a, b) in [
        ([bx0, by0], [bx1, by0]),
        ([bx1, by0], [bx1, by1]),
        ([bx1, by1], [bx0, by1]),
        ([bx0, by1], [bx0, by0]),
    ] {
        line(&mut ov, a, b, MARKER, 1);
    }
    let scale = if nx >= 400 { 2 } else { 1 };
    orientation(&mut ov, vol, scale);
    scale_bar(&mut ov, sx, 50.0, scale);
    let lines = [
        format!("#{}  {}", f.id, image_caption(f)),
        format!(
            "{:.1} mm {}",
            f.diameter_mm,
            f.nodule_type.as_str().replace('_', "-")
        ),
        format!("{:.1} x {:.1} mm", f.long_axis_mm, f.short_axis_mm),
        format!("Lung-RADS {}", f.lung_rads.as_str()),
    ];
    let line_h = 8 * scale + 6;
    for (n, l) in lines.iter().enumerate() {
        text(&mut ov, 6, 6 + n as i64 * line_h, l, scale, TEXT);
    }
    text(&mut ov, 6, ny - 14, "AI result - not a diagnosis", 1, TEXT);

    // Zoom: bilinear HU.
    let hu = vol.hu.index_axis(Axis(0), slice);
    let (hny, hnx) = hu.dim();
    let sample = |x: f64, y: f64| -> f64 {
        let x = x.clamp(0.0, (hnx - 1) as f64);
        let y = y.clamp(0.0, (hny - 1) as f64);
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(hnx - 1), (y0 + 1).min(hny - 1));
        let (fx, fy) = (x - x0 as f64, y - y0 as f64);
        let v = |i: usize, j: usize| hu[[j, i]] as f64;
        (v(x0, y0) * (1.0 - fx) + v(x1, y0) * fx) * (1.0 - fy)
            + (v(x0, y1) * (1.0 - fx) + v(x1, y1) * fx) * fy
    };
    // Voxel coordinate of zoom pixel u (centre): cx0 + (u + 0.5) / z − 0.5 (voxel centres at integers).
    let vox = |u: f64, o: f64| o + (u + 0.5) / z - 0.5;
    let mut zm: RgbImage = ImageBuffer::from_fn(ZOOM_PX, ZOOM_PX, |u, v| {
        let gv = window(sample(vox(u as f64, cx0), vox(v as f64, cy0)), LUNG_WINDOW);
        Rgb([gv, gv, gv])
    });
    let zmask = |u: i64, v: i64| -> bool {
        let i = vox(u as f64, cx0).round() as i64;
        let j = vox(v as f64, cy0).round() as i64;
        in_mask(i, j)
    };
    for v in 0..ZOOM_PX as i64 {
        for u in 0..ZOOM_PX as i64 {
            if zmask(u, v) {
                for (a, b) in outside_neighbours4(&zmask, u, v) {
                    put(&mut zm, a, b, OUTLINE);
                    put(&mut zm, 2 * a - u, 2 * b - v, OUTLINE);
                }
            }
        }
    }
    let to_zoom = |p: [f64; 2]| [(p[0] - cx0 + 0.5) * z - 0.5, (p[1] - cy0 + 0.5) * z - 0.5];
    line(
        &mut zm,
        to_zoom(axes[0][0]),
        to_zoom(axes[0][1]),
        LONG_AXIS,
        3,
    );
    line(
        &mut zm,
        to_zoom(axes[1][0]),
        to_zoom(axes[1][1]),
        SHORT_AXIS,
        3,
    );
    orientation(&mut zm, vol, 2);
    let zoom_spacing = [sy / z, sx / z];
    scale_bar(&mut zm, zoom_spacing[1], 10.0, 2);
    text(
        &mut zm,
        6,
        6,
        &format!("#{}  zoom x{:.1}", f.id, z),
        2,
        TEXT,
    );
    text(
        &mut zm,
        6,
        6 + 22,
        &format!("long {:.1} mm", f.long_axis_mm),
        2,
        LONG_AXIS,
    );
    text(
        &mut zm,
        6,
        6 + 44,
        &format!("short {:.1} mm", f.short_axis_mm),
        2,
        SHORT_AXIS,
    );

    // Side by side.
    let (w, h) = (ov.width() + ZOOM_PX, ov.height().max(ZOOM_PX));
    let mut comp: RgbImage = ImageBuffer::from_pixel(w, h, Rgb([0, 0, 0]));
    image::imageops::replace(&mut comp, &ov, 0, 0);
    image::imageops::replace(&mut comp, &zm, ov.width() as i64, 0);
    for y in 0..h {
        comp.put_pixel(ov.width(), y, Rgb([80, 80, 80]));
    }
    Ok(RenderedKeyImage {
        composite_png: encode_png(&comp)?,
        overview_png: encode_png(&ov)?,
        overview_spacing_mm: [sy, sx],
        zoom_png: encode_png(&zm)?,
        zoom_spacing_mm: zoom_spacing,
    })
}

/// File name of the opacity key image in the result folder.
pub const OPACITY_KEY_IMAGE_FILE: &str = "key-images/opacities.png";

/// Ground glass tint of the opacity key image (light blue).
pub const GROUND_GLASS_TINT: [u8; 3] = [80, 170, 255];
/// Consolidation tint of the opacity key image (magenta).
pub const CONSOLIDATION_TINT: [u8; 3] = [255, 60, 200];

/// The key image of the diffuse opacities: the most affected source slice,
/// lung window, ground glass tinted light blue and consolidation magenta
/// (45 % over the grey value), orientation letters, a 50 mm scale bar and a
/// caption.
#[derive(Debug, Clone, PartialEq)]
pub struct OpacityKeyImage {
    /// File name relative to the output folder ([`OPACITY_KEY_IMAGE_FILE`]).
    pub file: String,
    /// Source slice shown (0-based, stack order).
    pub slice_index: usize,
    /// PNG bytes, at the source pixel size.
    pub png: Vec<u8>,
    /// Pixel spacing `[row, column]` (mm).
    pub spacing_mm: [f64; 2],
}

/// Render the opacity key image of source slice `slice` with the labels of
/// `map` and the caption lines (ASCII).
pub fn render_opacities(
    vol: &Volume,
    map: &crate::opacities::OpacityMap,
    slice: usize,
    caption: &[String],
) -> Result<OpacityKeyImage> {
    use crate::opacities::{CONSOLIDATION, GROUND_GLASS};
    let slice = slice.min(vol.hu.dim().0.saturating_sub(1));
    let mut img = render_slice(vol, slice, LUNG_WINDOW);
    let (w, h) = (img.width() as usize, img.height() as usize);
    let labels = map.label_image(slice);
    if labels.len() == w * h {
        for (n, &l) in labels.iter().enumerate() {
            let tint = match l {
                GROUND_GLASS => GROUND_GLASS_TINT,
                CONSOLIDATION => CONSOLIDATION_TINT,
                _ => continue,
            };
            let p = img.get_pixel_mut((n % w) as u32, (n / w) as u32);
            for (v, t) in p.0.iter_mut().zip(tint) {
                *v = (0.55 * *v as f64 + 0.45 * t as f64).round() as u8;
            }
        }
    }
    let scale = if w >= 400 { 2 } else { 1 };
    orientation(&mut img, vol, scale);
    let g = &vol.geometry;
    scale_bar(&mut img, g.spacing[0], 50.0, scale);
    let line_h = 8 * scale + 6;
    for (n, l) in caption.iter().enumerate() {
        text(&mut img, 6, 6 + n as i64 * line_h, l, scale, TEXT);
    }
    let key_y = 6 + caption.len() as i64 * line_h;
    let swatch = |img: &mut RgbImage, y: i64, c: [u8; 3], label: &str| {
        for dy in 0..8 * scale {
            for dx in 0..8 * scale {
                put(img, 6 + dx, y + dy, Rgb(c));
            }
        }
        text(img, 6 + 12 * scale, y, label, scale, TEXT);
    };
    swatch(&mut img, key_y, GROUND_GLASS_TINT, "ground glass");
    swatch(
        &mut img,
        key_y + line_h,
        CONSOLIDATION_TINT,
        "consolidation",
    );
    text(
        &mut img,
        6,
        h as i64 - 14,
        "AI result - not a diagnosis",
        1,
        TEXT,
    );
    Ok(OpacityKeyImage {
        file: OPACITY_KEY_IMAGE_FILE.to_string(),
        slice_index: slice,
        png: encode_png(&img)?,
        spacing_mm: [g.spacing[1], g.spacing[0]],
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Geometry;

    #[test]
    fn orientation_letters_follow_the_direction_cosines() {
        // Standard axial: rows run to the patient's left, columns posterior.
        assert_eq!(letter([1.0, 0.0, 0.0]), 'L');
        assert_eq!(letter([-1.0, 0.0, 0.0]), 'R');
        assert_eq!(letter([0.0, 1.0, 0.0]), 'P');
        assert_eq!(letter([0.0, -1.0, 0.0]), 'A');
        let vol = Volume {
            hu: ndarray::Array3::zeros((1, 100, 100)),
            geometry: Geometry {
                size: [100, 100, 1],
                spacing: [1.0, 1.0, 1.0],
                origin: [0.0; 3],
                direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            },
        };
        let mut img = render_slice(&vol, 0, LUNG_WINDOW);
        let before = img.clone();
        orientation(&mut img, &vol, 1);
        // Something is drawn near each edge's midpoint.
        let changed = |x0: u32, y0: u32| {
            (x0..x0 + 8)
                .any(|x| (y0..y0 + 8).any(|y| img.get_pixel(x, y) != before.get_pixel(x, y)))
        };
        assert!(changed(4, 46) && changed(88, 46) && changed(46, 4) && changed(46, 88));
    }
}
