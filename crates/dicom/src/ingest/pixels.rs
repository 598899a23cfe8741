//! Pixel data: stored values of a frame (any transfer syntax) and the HU lookup.
//!
//! Native (uncompressed) pixel data is read in place. Encapsulated pixel data
//! goes through the dicom-rs codec registry (JPEG, RLE, JPEG 2000 via openjp2),
//! except JPEG-LS and 12-bit JPEG extended, which `ct-triage-codecs` decodes
//! (pure Rust, also in wasm32). Stored values are then mapped to HU through a lookup table
//! that applies BitsStored masking, sign, padding and the rescale in one step.

use std::borrow::Cow;

use dicom_core::value::Value as DicomValue;
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_encoding::transfer_syntax::Codec;
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::instance::{Instance, PixelLayout};
use super::parse::chain;
use crate::error::{Error, Result};

pub use ct_triage_analysis::series::PADDING_HU;

/// JPEG Extended (processes 2 & 4): 12-bit lossy CT, which the pure-Rust
/// `jpeg-decoder` used by dicom-rs refuses; decoded by [`ct_triage_codecs::jpeg12`].
const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";

/// JPEG-LS transfer syntaxes (lossless and near-lossless), decoded by our own
/// pure-Rust decoder: the dicom-rs registry's JPEG-LS codec (CharLS) is C++ and
/// does not build for the browser.
const JPEG_LS: [&str; 2] = ["1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"];

/// Raw little-endian bytes of one frame, `layout.frame_bytes()` long.
pub(crate) fn frame_bytes(inst: &Instance, frame: u32) -> Result<Cow<'_, [u8]>> {
    let file = inst.file.as_str();
    let layout = &inst.layout;
    let want = layout.frame_bytes();
    let ts = TransferSyntaxRegistry
        .get(&inst.transfer_syntax)
        .ok_or_else(|| Error::Unsupported {
            file: file.to_string(),
            what: format!("transfer syntax {}", inst.transfer_syntax),
        })?;
    let elem = inst
        .obj
        .get(tags::PIXEL_DATA)
        .ok_or_else(|| Error::pixels(file, "no Pixel Data element"))?;
    match elem.value() {
        DicomValue::Primitive(p) => {
            let bytes = p.to_bytes();
            let start = want * frame as usize;
            let end = start + want;
            if bytes.len() < end {
                return Err(Error::pixels(
                    file,
                    format!(
                        "truncated: {} bytes of pixel data, {} needed for {} frame(s) of {}×{}×{} bits",
                        bytes.len(),
                        want * layout.frames as usize,
                        layout.frames,
                        layout.rows,
                        layout.columns,
                        layout.bits_allocated
                    ),
                ));
            }
            Ok(match bytes {
                Cow::Borrowed(b) => Cow::Borrowed(&b[start..end]),
                Cow::Owned(b) => Cow::Owned(b[start..end].to_vec()),
            })
        }
        DicomValue::PixelSequence(seq) => {
            let decodable = matches!(ts.codec(), Codec::EncapsulatedPixelData(Some(_), _));
            if inst.transfer_syntax == JPEG_EXTENDED {
                let code =
                    frame_fragments(seq.offset_table(), seq.fragments(), layout.frames, frame)
                        .map_err(|m| Error::pixels(file, m))?;
                let img = ct_triage_codecs::jpeg12::decode(&code, layout.frame_pixels() as u64)
                    .map_err(|e| Error::pixels(file, e.to_string()))?;
                return samples_to_native(
                    file,
                    "JPEG",
                    img.width,
                    img.height,
                    &img.samples,
                    layout,
                );
            }
            if JPEG_LS.contains(&inst.transfer_syntax.as_str()) {
                let code =
                    frame_fragments(seq.offset_table(), seq.fragments(), layout.frames, frame)
                        .map_err(|m| Error::pixels(file, m))?;
                return decode_jpeg_ls(file, &code, layout);
            }
            if !decodable {
                return Err(Error::Unsupported {
                    file: file.to_string(),
                    what: format!("no decoder for {} ({})", ts.name(), inst.transfer_syntax),
                });
            }
            let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                inst.obj.decode_pixel_data_frame(frame)
            }))
            .map_err(|_| Error::pixels(file, "codec panicked on a corrupt codestream"))?
            .map_err(|e| Error::pixels(file, chain(&e)))?;
            let data = decoded.data();
            if data.len() < want {
                return Err(Error::pixels(
                    file,
                    format!(
                        "frame {frame} decoded to {} bytes, {want} expected",
                        data.len()
                    ),
                ));
            }
            Ok(Cow::Owned(data[..want].to_vec()))
        }
        DicomValue::Sequence(_) => Err(Error::pixels(file, "Pixel Data is a sequence")),
    }
}

/// The encoded bytes of one frame of encapsulated pixel data.
///
/// One fragment per frame is the common case; a single frame may span several
/// fragments; otherwise the Basic Offset Table tells where each frame starts.
pub(crate) fn frame_fragments<'a, F: AsRef<[u8]>>(
    offsets: &[u32],
    fragments: &'a [F],
    frames: u32,
    frame: u32,
) -> std::result::Result<Cow<'a, [u8]>, String> {
    let frames = frames as usize;
    let frame = frame as usize;
    if fragments.is_empty() {
        return Err("encapsulated pixel data has no fragment".into());
    }
    if fragments.len() == frames {
        return Ok(Cow::Borrowed(fragments[frame].as_ref()));
    }
    if frames == 1 {
        return Ok(Cow::Owned(
            fragments
                .iter()
                .flat_map(|f| f.as_ref().iter().copied())
                .collect(),
        ));
    }
    if offsets.len() != frames {
        return Err(format!(
            "{} fragments for {frames} frames and no usable Basic Offset Table",
            fragments.len()
        ));
    }
    // Byte offset of each fragment item (8-byte item header + value) from the first.
    let mut out = Vec::new();
    let start = offsets[frame] as u64;
    let end = offsets
        .get(frame + 1)
        .map(|&o| o as u64)
        .unwrap_or(u64::MAX);
    let mut pos = 0u64;
    for f in fragments {
        if pos >= start && pos < end {
            out.extend_from_slice(f.as_ref());
        }
        pos += 8 + f.as_ref().len() as u64;
    }
    if out.is_empty() {
        return Err(format!(
            "Basic Offset Table points frame {frame} at no fragment"
        ));
    }
    Ok(Cow::Owned(out))
}

/// Decode one JPEG-LS frame with the pure-Rust decoder ([`ct_triage_codecs::jpegls`]).
fn decode_jpeg_ls(file: &str, code: &[u8], layout: &PixelLayout) -> Result<Cow<'static, [u8]>> {
    let img = ct_triage_codecs::jpegls::decode(code, layout.frame_pixels() as u64)
        .map_err(|e| Error::pixels(file, e.to_string()))?;
    samples_to_native(file, "JPEG-LS", img.width, img.height, &img.samples, layout)
}

/// Check a decoded frame against the header and lay it out as native little-endian samples.
fn samples_to_native(
    file: &str,
    codec: &str,
    width: u32,
    height: u32,
    samples: &[u16],
    layout: &PixelLayout,
) -> Result<Cow<'static, [u8]>> {
    if width != layout.columns || height != layout.rows || samples.len() != layout.frame_pixels() {
        return Err(Error::pixels(
            file,
            format!(
                "{codec} frame is {width}×{height}, the header says {}×{}",
                layout.columns, layout.rows
            ),
        ));
    }
    Ok(Cow::Owned(if layout.bits_allocated == 8 {
        samples.iter().map(|&v| v as u8).collect()
    } else {
        samples.iter().flat_map(|v| v.to_le_bytes()).collect()
    }))
}

/// Interpret one raw sample as a stored value: keep the BitsStored low bits and
/// sign-extend them when Pixel Representation is 1.
#[inline]
pub fn stored_value(raw: u16, bits_stored: u16, signed: bool) -> i32 {
    let bs = bits_stored.clamp(1, 16) as u32;
    let v = if bs == 16 {
        raw as u32
    } else {
        raw as u32 & ((1u32 << bs) - 1)
    };
    if signed && (v >> (bs - 1)) & 1 == 1 {
        v as i32 - (1i32 << bs)
    } else {
        v as i32
    }
}

/// The modality LUT of one frame, as a table from raw sample to HU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct HuMapping {
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub signed: bool,
    pub slope: f64,
    pub intercept: f64,
    pub padding: Option<i64>,
}

impl HuMapping {
    /// Build the raw-sample → HU table (256 or 65536 entries).
    pub fn table(&self) -> Vec<i16> {
        let n = if self.bits_allocated == 8 { 256 } else { 65536 };
        (0..n)
            .map(|raw| {
                let s = stored_value(raw as u16, self.bits_stored, self.signed);
                if self.padding == Some(s as i64) {
                    return PADDING_HU;
                }
                let hu = (s as f64 * self.slope + self.intercept).round();
                hu.clamp(i16::MIN as f64, i16::MAX as f64) as i16
            })
            .collect()
    }

    /// A hashable identity of the table (rescale values compared bit-exactly).
    pub fn key(&self) -> (u16, u16, bool, u64, u64, Option<i64>) {
        (
            self.bits_allocated,
            self.bits_stored,
            self.signed,
            self.slope.to_bits(),
            self.intercept.to_bits(),
            self.padding,
        )
    }
}

/// Map raw little-endian samples to HU through a table made by [`HuMapping::table`].
pub(crate) fn apply_table(raw: &[u8], bits_allocated: u16, table: &[i16], out: &mut [i16]) {
    if bits_allocated == 8 {
        for (o, &b) in out.iter_mut().zip(raw) {
            *o = table[b as usize];
        }
    } else {
        for (o, c) in out.iter_mut().zip(raw.chunks_exact(2)) {
            *o = table[u16::from_le_bytes([c[0], c[1]]) as usize];
        }
    }
}

/// The stored pixel values of a whole instance, as a DICOM toolkit reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPixels {
    /// Image layout.
    pub layout: PixelLayout,
    /// Stored values, frame after frame, row-major.
    pub values: Vec<i32>,
}

impl StoredPixels {
    /// Little-endian bytes in the sample type of the image (u8, u16 or i16),
    /// which is how pydicom and most toolkits hand out the array.
    pub fn le_bytes(&self) -> Vec<u8> {
        match (self.layout.bits_allocated, self.layout.signed) {
            (8, false) => self.values.iter().map(|&v| v as u8).collect(),
            (8, true) => self.values.iter().map(|&v| v as i8 as u8).collect(),
            (_, false) => self
                .values
                .iter()
                .flat_map(|&v| (v as u16).to_le_bytes())
                .collect(),
            (_, true) => self
                .values
                .iter()
                .flat_map(|&v| (v as i16).to_le_bytes())
                .collect(),
        }
    }
}

/// Decode every frame of an instance to stored values.
pub(crate) fn stored_pixels(inst: &Instance) -> Result<StoredPixels> {
    let l = inst.layout;
    let mut values = Vec::new();
    values
        .try_reserve_exact(l.frame_pixels() * l.frames as usize)
        .map_err(|_| Error::pixels(&inst.file, "out of memory for the pixel data"))?;
    for f in 0..l.frames {
        let raw = frame_bytes(inst, f)?;
        if l.bits_allocated == 8 {
            values.extend(
                raw.iter()
                    .map(|&b| stored_value(b as u16, l.bits_stored, l.signed)),
            );
        } else {
            values.extend(
                raw.chunks_exact(2).map(|c| {
                    stored_value(u16::from_le_bytes([c[0], c[1]]), l.bits_stored, l.signed)
                }),
            );
        }
    }
    Ok(StoredPixels { layout: l, values })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_mask_and_sign_extend() {
        assert_eq!(stored_value(0x0FFF, 12, false), 4095);
        assert_eq!(stored_value(0x0FFF, 12, true), -1);
        assert_eq!(stored_value(0xF800, 12, true), -2048);
        assert_eq!(stored_value(0xFFFF, 16, true), -1);
        assert_eq!(stored_value(0xFFFF, 16, false), 65535);
        assert_eq!(stored_value(0x1FFF, 13, true), -1);
    }

    #[test]
    fn table_applies_rescale_and_padding() {
        let m = HuMapping {
            bits_allocated: 16,
            bits_stored: 12,
            signed: false,
            slope: 1.0,
            intercept: -1024.0,
            padding: Some(0),
        };
        let t = m.table();
        assert_eq!(t[0], PADDING_HU);
        assert_eq!(t[1024], 0);
        assert_eq!(t[4095], 3071);
        let mut out = [0i16; 2];
        apply_table(&[0x00, 0x04, 0xFF, 0x0F], 16, &t, &mut out);
        assert_eq!(out, [0, 3071]);
        let half = HuMapping {
            slope: 0.5,
            intercept: -1000.0,
            padding: None,
            signed: true,
            bits_stored: 16,
            ..m
        };
        assert_eq!(half.table()[2001], 1); // 1000.5 - 1000 rounds away from zero
    }
}
