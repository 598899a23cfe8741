//! One parsed DICOM instance: identifiers, image layout and per-frame geometry.
//!
//! Classic single-frame CT and multi-frame Enhanced CT are both turned into a
//! list of [`FrameInfo`], so that grouping, ordering and decoding never care
//! which one the scanner wrote.

use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};

use super::parse::{
    fixed, float_of, floats_of, int_of, items_of, orientation, string_of, strings_of,
};
use super::{Limits, SkipReason, StudyMeta};
use crate::error::{Error, Result};
use ct_triage_analysis::volume::Vec3;

/// Layout of the stored pixel values of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelLayout {
    /// Rows per frame.
    pub rows: u32,
    /// Columns per frame.
    pub columns: u32,
    /// Number of frames in the instance.
    pub frames: u32,
    /// Bits allocated per sample (8 or 16).
    pub bits_allocated: u16,
    /// Bits stored per sample.
    pub bits_stored: u16,
    /// True when samples are two's complement (Pixel Representation 1).
    pub signed: bool,
    /// True for MONOCHROME1 (inverted grey scale).
    pub monochrome1: bool,
}

impl PixelLayout {
    /// Pixels per frame.
    pub fn frame_pixels(&self) -> usize {
        self.rows as usize * self.columns as usize
    }
    /// Bytes per frame of native pixel data.
    pub fn frame_bytes(&self) -> usize {
        self.frame_pixels() * (self.bits_allocated as usize).div_ceil(8)
    }
}

/// Geometry and modality LUT of one frame (one slice).
#[derive(Debug, Clone, PartialEq)]
pub struct FrameInfo {
    /// 0-based frame index inside its instance.
    pub frame: u32,
    /// ImagePositionPatient: LPS mm of the centre of the first pixel.
    pub position: Vec3,
    /// Row and column direction cosines (unit vectors).
    pub orientation: [Vec3; 2],
    /// PixelSpacing: `[row spacing (between rows, mm), column spacing (between columns, mm)]`.
    pub pixel_spacing: [f64; 2],
    /// Nominal slice thickness in mm, when recorded.
    pub thickness: Option<f64>,
    /// Rescale slope of the modality LUT.
    pub slope: f64,
    /// Rescale intercept of the modality LUT.
    pub intercept: f64,
    /// True when the frame is a localizer/scout.
    pub localizer: bool,
}

/// A parsed instance that carries an image we may analyse.
pub struct Instance {
    /// Name of the input buffer (path or file name).
    pub file: String,
    /// The parsed object (pixel data included).
    pub(crate) obj: DefaultDicomObject,
    /// SOP Class UID.
    pub sop_class_uid: String,
    /// SOP Instance UID.
    pub sop_instance_uid: String,
    /// Transfer Syntax UID.
    pub transfer_syntax: String,
    /// InstanceNumber (the image number PACS viewers show), when present and valid.
    pub instance_number: Option<i64>,
    /// Report attributes of the study/series.
    pub meta: StudyMeta,
    /// Image layout.
    pub layout: PixelLayout,
    /// PixelPaddingValue (stored value), if any.
    pub padding: Option<i64>,
    /// Frames of this instance.
    pub frames: Vec<FrameInfo>,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("file", &self.file)
            .field("sop_instance_uid", &self.sop_instance_uid)
            .field("layout", &self.layout)
            .field("frames", &self.frames.len())
            .finish()
    }
}

/// What reading one file produced: an analysable image, or a reason to skip it.
pub(crate) enum Parsed {
    Image(Box<Instance>),
    Skip(SkipReason),
}

/// Read the attributes of a parsed object. Non-image objects become a skip reason.
pub(crate) fn read_instance(
    file: &str,
    obj: DefaultDicomObject,
    limits: &Limits,
) -> Result<Parsed> {
    let mut inst = match read_image(file, obj, limits)? {
        Ok(inst) => inst,
        Err(skip) => return Ok(Parsed::Skip(skip)),
    };
    match read_frames(file, &inst.obj, &inst.layout)? {
        Ok(frames) => inst.frames = frames,
        Err(message) => {
            return Ok(Parsed::Skip(SkipReason {
                code: "no_geometry".into(),
                message,
            }));
        }
    }
    Ok(Parsed::Image(Box::new(inst)))
}

/// Read identifiers and pixel layout only (no geometry); `None` when there is no image.
pub(crate) fn read_instance_layout_only(
    file: &str,
    obj: DefaultDicomObject,
    limits: &Limits,
) -> Result<Option<Instance>> {
    Ok(read_image(file, obj, limits)?.ok())
}

/// Identifiers, report attributes and pixel layout; the frame list is left empty.
fn read_image(
    file: &str,
    obj: DefaultDicomObject,
    limits: &Limits,
) -> Result<std::result::Result<Instance, SkipReason>> {
    let ts = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_string();
    let ds: &InMemDicomObject = &obj;
    let sop_class_uid = string_of(ds, tags::SOP_CLASS_UID).unwrap_or_else(|| {
        obj.meta()
            .media_storage_sop_class_uid()
            .trim_end_matches('\0')
            .to_string()
    });
    let sop_instance_uid = string_of(ds, tags::SOP_INSTANCE_UID).unwrap_or_else(|| {
        obj.meta()
            .media_storage_sop_instance_uid()
            .trim_end_matches('\0')
            .to_string()
    });
    let modality = string_of(ds, tags::MODALITY).unwrap_or_default();
    let skip = |code: &str, message: String| {
        Ok(Err(SkipReason {
            code: code.to_string(),
            message,
        }))
    };
    if ds.get(tags::PIXEL_DATA).is_none() {
        let what = if modality.is_empty() {
            format!("SOP class {sop_class_uid}")
        } else {
            format!("modality {modality}, SOP class {sop_class_uid}")
        };
        return skip("not_an_image", format!("no pixel data ({what})"));
    }
    let samples = int_of(ds, tags::SAMPLES_PER_PIXEL, file, "SamplesPerPixel")?.unwrap_or(1);
    if samples != 1 {
        return skip(
            "not_greyscale",
            format!("{samples} samples per pixel: a colour image, not CT"),
        );
    }
    let layout = read_layout(file, ds, limits)?;
    let padding = int_of(ds, tags::PIXEL_PADDING_VALUE, file, "PixelPaddingValue")?;

    let study_date = string_of(ds, tags::STUDY_DATE);
    let birth = string_of(ds, tags::PATIENT_BIRTH_DATE);
    let age = string_of(ds, tags::PATIENT_AGE)
        .and_then(|a| parse_age(&a))
        .or_else(|| age_from_dates(birth.as_deref()?, study_date.as_deref()?));
    let meta = StudyMeta {
        patient_id: string_of(ds, tags::PATIENT_ID),
        patient_name: string_of(ds, tags::PATIENT_NAME),
        patient_sex: string_of(ds, tags::PATIENT_SEX).map(|s| s.to_ascii_uppercase()),
        patient_age_years: age,
        patient_birth_date: birth,
        study_instance_uid: string_of(ds, tags::STUDY_INSTANCE_UID).unwrap_or_default(),
        study_date,
        study_time: string_of(ds, tags::STUDY_TIME),
        study_id: string_of(ds, tags::STUDY_ID),
        study_description: string_of(ds, tags::STUDY_DESCRIPTION),
        accession_number: string_of(ds, tags::ACCESSION_NUMBER),
        referring_physician_name: string_of(ds, tags::REFERRING_PHYSICIAN_NAME),
        series_instance_uid: string_of(ds, tags::SERIES_INSTANCE_UID).unwrap_or_default(),
        series_number: int_of(ds, tags::SERIES_NUMBER, file, "SeriesNumber")
            .ok()
            .flatten(),
        series_description: string_of(ds, tags::SERIES_DESCRIPTION),
        modality,
        frame_of_reference_uid: string_of(ds, tags::FRAME_OF_REFERENCE_UID),
        manufacturer: string_of(ds, tags::MANUFACTURER),
        manufacturer_model: string_of(ds, tags::MANUFACTURER_MODEL_NAME),
        kvp: float_of(ds, tags::KVP, file, "KVP").ok().flatten(),
        convolution_kernel: string_of(ds, tags::CONVOLUTION_KERNEL),
        body_part: string_of(ds, tags::BODY_PART_EXAMINED),
        contrast_agent: string_of(ds, tags::CONTRAST_BOLUS_AGENT),
    };
    let instance_number = int_of(ds, tags::INSTANCE_NUMBER, file, "InstanceNumber")
        .ok()
        .flatten();
    Ok(Ok(Instance {
        file: file.to_string(),
        sop_class_uid,
        sop_instance_uid,
        transfer_syntax: ts,
        instance_number,
        meta,
        layout,
        padding,
        frames: Vec::new(),
        obj,
    }))
}

fn read_layout(file: &str, ds: &InMemDicomObject, limits: &Limits) -> Result<PixelLayout> {
    let need = |tag, kw: &str| -> Result<i64> {
        int_of(ds, tag, file, kw)?.ok_or_else(|| Error::attr(file, kw, "is missing"))
    };
    let rows = need(tags::ROWS, "Rows")?;
    let columns = need(tags::COLUMNS, "Columns")?;
    let bits_allocated = need(tags::BITS_ALLOCATED, "BitsAllocated")?;
    let bits_stored = int_of(ds, tags::BITS_STORED, file, "BitsStored")?.unwrap_or(bits_allocated);
    let pr = int_of(ds, tags::PIXEL_REPRESENTATION, file, "PixelRepresentation")?.unwrap_or(0);
    let frames = match string_of(ds, tags::NUMBER_OF_FRAMES) {
        None => 1,
        Some(s) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| Error::attr(file, "NumberOfFrames", format!("'{s}' is not an integer")))?,
    };
    for (v, kw) in [
        (rows, "Rows"),
        (columns, "Columns"),
        (frames, "NumberOfFrames"),
    ] {
        if v < 1 {
            return Err(Error::attr(file, kw, format!("is {v}")));
        }
    }
    if bits_allocated != 8 && bits_allocated != 16 {
        return Err(Error::Unsupported {
            file: file.to_string(),
            what: format!("BitsAllocated {bits_allocated} (CT uses 8 or 16)"),
        });
    }
    if bits_stored < 1 || bits_stored > bits_allocated {
        return Err(Error::attr(
            file,
            "BitsStored",
            format!("is {bits_stored} with BitsAllocated {bits_allocated}"),
        ));
    }
    let frame_pixels = rows as u64 * columns as u64;
    if frame_pixels > limits.max_frame_pixels {
        return Err(Error::LimitExceeded {
            file: file.to_string(),
            what: "rows × columns".into(),
            value: frame_pixels,
            limit: limits.max_frame_pixels,
        });
    }
    if frames as u64 > limits.max_frames {
        return Err(Error::LimitExceeded {
            file: file.to_string(),
            what: "NumberOfFrames".into(),
            value: frames as u64,
            limit: limits.max_frames,
        });
    }
    let photometric = string_of(ds, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default();
    Ok(PixelLayout {
        rows: rows as u32,
        columns: columns as u32,
        frames: frames as u32,
        bits_allocated: bits_allocated as u16,
        bits_stored: bits_stored as u16,
        signed: pr == 1,
        monochrome1: photometric.eq_ignore_ascii_case("MONOCHROME1"),
    })
}

/// Geometry of every frame. The inner `Err` is a skip reason (no spatial
/// information: not a cross-sectional image); the outer one a broken attribute.
fn read_frames(
    file: &str,
    ds: &InMemDicomObject,
    layout: &PixelLayout,
) -> Result<std::result::Result<Vec<FrameInfo>, String>> {
    let image_type = strings_of(ds, tags::IMAGE_TYPE);
    let localizer_top = image_type.iter().any(|t| t == "LOCALIZER");
    let shared = items_of(ds, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE).first();
    let per_frame = items_of(ds, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);

    // Top-level (classic) values, used when no functional group overrides them.
    let top = FrameGeom::read(ds, file)?;
    let shared_g = match shared {
        Some(s) => FrameGeom::read_groups(s, file)?,
        None => FrameGeom::default(),
    };
    let n = layout.frames as usize;
    if !per_frame.is_empty() && per_frame.len() != n {
        return Err(Error::attr(
            file,
            "PerFrameFunctionalGroupsSequence",
            format!("has {} items for {n} frames", per_frame.len()),
        ));
    }
    let mut frames = Vec::with_capacity(n);
    for f in 0..n {
        let pf = match per_frame.get(f) {
            Some(item) => FrameGeom::read_groups(item, file)?,
            None => FrameGeom::default(),
        };
        let g = pf.or(&shared_g).or(&top);
        let (Some(position), Some(orient)) = (g.position, g.orientation) else {
            return Ok(Err(
                "no ImagePositionPatient/ImageOrientationPatient: not a cross-sectional image"
                    .into(),
            ));
        };
        let spacing = g
            .spacing
            .ok_or_else(|| Error::attr(file, "PixelSpacing", "is missing"))?;
        if !(spacing[0] > 0.0 && spacing[1] > 0.0 && spacing[0] < 100.0 && spacing[1] < 100.0) {
            return Err(Error::attr(
                file,
                "PixelSpacing",
                format!("{spacing:?} is not a plausible spacing"),
            ));
        }
        let slope = g.slope.unwrap_or(1.0);
        if slope == 0.0 {
            return Err(Error::attr(file, "RescaleSlope", "is zero"));
        }
        frames.push(FrameInfo {
            frame: f as u32,
            position,
            orientation: orientation(orient, file)?,
            pixel_spacing: spacing,
            thickness: g.thickness,
            slope,
            intercept: g.intercept.unwrap_or(0.0),
            localizer: localizer_top || g.localizer,
        });
    }
    Ok(Ok(frames))
}

/// Geometry attributes found at one level (top, shared or per-frame groups).
#[derive(Debug, Default, Clone)]
struct FrameGeom {
    position: Option<Vec3>,
    orientation: Option<[f64; 6]>,
    spacing: Option<[f64; 2]>,
    thickness: Option<f64>,
    slope: Option<f64>,
    intercept: Option<f64>,
    localizer: bool,
}

impl FrameGeom {
    fn read(ds: &InMemDicomObject, file: &str) -> Result<Self> {
        Ok(FrameGeom {
            position: fixed::<3>(
                floats_of(
                    ds,
                    tags::IMAGE_POSITION_PATIENT,
                    file,
                    "ImagePositionPatient",
                )?,
                file,
                "ImagePositionPatient",
            )?,
            orientation: fixed::<6>(
                floats_of(
                    ds,
                    tags::IMAGE_ORIENTATION_PATIENT,
                    file,
                    "ImageOrientationPatient",
                )?,
                file,
                "ImageOrientationPatient",
            )?,
            spacing: fixed::<2>(
                floats_of(ds, tags::PIXEL_SPACING, file, "PixelSpacing")?,
                file,
                "PixelSpacing",
            )?,
            thickness: float_of(ds, tags::SLICE_THICKNESS, file, "SliceThickness")?,
            slope: float_of(ds, tags::RESCALE_SLOPE, file, "RescaleSlope")?,
            intercept: float_of(ds, tags::RESCALE_INTERCEPT, file, "RescaleIntercept")?,
            localizer: false,
        })
    }

    /// Read the functional-group macros of one item (shared or per-frame).
    fn read_groups(item: &InMemDicomObject, file: &str) -> Result<Self> {
        let mut g = FrameGeom::default();
        if let Some(p) = items_of(item, tags::PLANE_POSITION_SEQUENCE).first() {
            g.position = FrameGeom::read(p, file)?.position;
        }
        if let Some(o) = items_of(item, tags::PLANE_ORIENTATION_SEQUENCE).first() {
            g.orientation = FrameGeom::read(o, file)?.orientation;
        }
        if let Some(m) = items_of(item, tags::PIXEL_MEASURES_SEQUENCE).first() {
            let r = FrameGeom::read(m, file)?;
            g.spacing = r.spacing;
            g.thickness = r.thickness;
        }
        if let Some(t) = items_of(item, tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE).first() {
            let r = FrameGeom::read(t, file)?;
            g.slope = r.slope;
            g.intercept = r.intercept;
        }
        if let Some(t) = items_of(item, tags::CT_IMAGE_FRAME_TYPE_SEQUENCE).first() {
            g.localizer = strings_of(t, tags::FRAME_TYPE)
                .iter()
                .any(|x| x == "LOCALIZER");
        }
        Ok(g)
    }

    /// Fill what `self` lacks from `other`.
    fn or(&self, other: &FrameGeom) -> FrameGeom {
        FrameGeom {
            position: self.position.or(other.position),
            orientation: self.orientation.or(other.orientation),
            spacing: self.spacing.or(other.spacing),
            thickness: self.thickness.or(other.thickness),
            slope: self.slope.or(other.slope),
            intercept: self.intercept.or(other.intercept),
            localizer: self.localizer || other.localizer,
        }
    }
}

/// Parse a DICOM Age String (`062Y`, `006M`, `012W`, `030D`) into years.
pub fn parse_age(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.len() < 2 {
        return None;
    }
    let (num, unit) = s.split_at(s.len() - 1);
    let n: f64 = num.trim().parse().ok()?;
    let years = match unit.to_ascii_uppercase().as_str() {
        "Y" => n,
        "M" => n / 12.0,
        "W" => n * 7.0 / 365.25,
        "D" => n / 365.25,
        _ => return None,
    };
    (0.0..=150.0).contains(&years).then_some(years)
}

/// Whole years between two DICOM dates (YYYYMMDD).
pub fn age_from_dates(birth: &str, at: &str) -> Option<f64> {
    let ymd = |s: &str| -> Option<(i32, u32, u32)> {
        let s = s.trim();
        if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((
            s[0..4].parse().ok()?,
            s[4..6].parse().ok()?,
            s[6..8].parse().ok()?,
        ))
    };
    let (by, bm, bd) = ymd(birth)?;
    let (ay, am, ad) = ymd(at)?;
    let mut years = ay - by;
    if (am, ad) < (bm, bd) {
        years -= 1;
    }
    (0..=150).contains(&years).then_some(years as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(parse_age("062Y"), Some(62.0));
        assert_eq!(parse_age("006M"), Some(0.5));
        assert_eq!(parse_age("X"), None);
        assert_eq!(parse_age("999Q"), None);
        assert_eq!(age_from_dates("19600615", "20240614"), Some(63.0));
        assert_eq!(age_from_dates("19600615", "20240615"), Some(64.0));
        assert_eq!(age_from_dates("1960", "20240615"), None);
    }
}
