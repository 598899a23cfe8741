//! Key images as DICOM Secondary Capture (PS3.3 A.8.1): two RGB instances per
//! finding — the annotated overview of the source slice
//! (`key-images/finding-N.sc.dcm`) and the zoomed inset
//! (`key-images/finding-N-zoom.sc.dcm`) — in one series of the source study,
//! converted losslessly from the rendered panels, each with its own Pixel
//! Spacing and referencing the source slice it shows (SourceImageSequence,
//! purpose (121322, DCM)). The finding number, size, category, image number,
//! orientation letters and scale bar are drawn into the pixels, so Burned In
//! Annotation is YES. The diffuse opacities add one instance after them
//! (`key-images/opacities.sc.dcm`, [`opacity_key_image_object`]): the most
//! affected slice with ground glass and consolidation tinted.

use dicom_core::VR;
use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, InMemDicomObject};

use super::build::{self, Obj, put_code, put_ds, put_is, put_seq, put_str, put_strs, put_us};
use super::codes;
use super::header::{SeriesHeader, series_options};
use super::{ContentDateTime, analysis_key, uid};
use crate::error::Result;
use ct_triage_analysis::report::{Analysis, KeyImage};

/// Secondary Capture Image Storage.
pub const SOP_CLASS_UID: &str = "1.2.840.10008.5.1.4.1.1.7";

/// Options of the key image writer: the series header only (default Series
/// Number 9003, Series Description "ct-triage key images"); its builder
/// methods come from [`SeriesOptions`](super::SeriesOptions).
#[derive(Debug, Clone, PartialEq)]
pub struct ScOptions {
    /// Series header.
    pub header: SeriesHeader,
}

impl Default for ScOptions {
    fn default() -> Self {
        ScOptions {
            header: SeriesHeader::new(9003, "ct-triage key images"),
        }
    }
}

series_options!(ScOptions);

impl ScOptions {
    /// Defaults.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Which panel of a key image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Panel {
    /// The annotated source slice at its own pixel size.
    Overview,
    /// The zoomed inset.
    Zoom,
}

impl Panel {
    /// Both panels, in instance order.
    pub const ALL: [Panel; 2] = [Panel::Overview, Panel::Zoom];

    /// File name of the panel of key image `k` (`….sc.dcm`, `…-zoom.sc.dcm`).
    pub fn file(self, k: &KeyImage) -> String {
        let stem = k.file.trim_end_matches(".png");
        match self {
            Panel::Overview => format!("{stem}.sc.dcm"),
            Panel::Zoom => format!("{stem}-zoom.sc.dcm"),
        }
    }

    fn index(self) -> u32 {
        match self {
            Panel::Overview => 0,
            Panel::Zoom => 1,
        }
    }
}

/// A key image as a DICOM object.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyImageObject {
    /// The finding shown.
    pub finding_id: u32,
    /// File name relative to the output folder (`key-images/finding-N.sc.dcm`).
    pub file: String,
    /// SOP Instance UID.
    pub sop_instance_uid: String,
    /// Series Instance UID.
    pub series_instance_uid: String,
    /// Part 10 bytes.
    pub bytes: Vec<u8>,
}

/// Series UID of the key images, and the SOP Instance UID of finding `id`'s panel.
pub fn uids(
    a: &Analysis,
    o: &ScOptions,
    when: &ContentDateTime,
    finding_id: u32,
    panel: Panel,
) -> (String, String) {
    let key = analysis_key(a);
    let t = when.stamp();
    let series = o
        .header
        .series_instance_uid
        .clone()
        .unwrap_or_else(|| uid::hash_uid(&[b"ct-triage/sc-series", &key, t.as_bytes()]));
    let inst = match panel {
        Panel::Overview => uid::hash_uid(&[
            b"ct-triage/sc",
            &key,
            t.as_bytes(),
            &finding_id.to_le_bytes(),
        ]),
        Panel::Zoom => uid::hash_uid(&[
            b"ct-triage/sc-zoom",
            &key,
            t.as_bytes(),
            &finding_id.to_le_bytes(),
        ]),
    };
    (series, inst)
}

/// Every key image panel of the analysis as a Secondary Capture object.
pub fn key_image_objects(a: &Analysis, o: &ScOptions) -> Result<Vec<KeyImageObject>> {
    let when = o.header.when();
    let mut out = Vec::new();
    for k in &a.key_images {
        for panel in Panel::ALL {
            let file = panel.file(k);
            let obj = key_image_object(a, k, panel, o, &when)?;
            let (series, inst) = uids(a, o, &when, k.finding_id, panel);
            out.push(KeyImageObject {
                finding_id: k.finding_id,
                bytes: build::to_bytes(&obj, &file)?,
                file,
                sop_instance_uid: inst,
                series_instance_uid: series,
            });
        }
    }
    Ok(out)
}

/// One key image panel as a Secondary Capture file object.
pub fn key_image_object(
    a: &Analysis,
    k: &KeyImage,
    panel: Panel,
    o: &ScOptions,
    when: &ContentDateTime,
) -> Result<FileDicomObject<InMemDicomObject>> {
    let file = panel.file(k);
    let (png, spacing) = match panel {
        Panel::Overview => (&k.panels.overview_png, k.panels.overview_spacing_mm),
        Panel::Zoom => (&k.panels.zoom_png, k.panels.zoom_spacing_mm),
    };
    let finding = a.report.findings.iter().find(|f| f.id == k.finding_id);
    let (series_uid, sop_uid) = uids(a, o, when, k.finding_id, panel);
    let comment = finding.map(|f| {
        format!(
            "Finding {}: {} {:.1} mm, Lung-RADS {}, {} ({}; AI key image, not a diagnosis)",
            f.id,
            match f.kind {
                ct_triage_analysis::report::FindingKind::Nodule => "nodule",
                ct_triage_analysis::report::FindingKind::Mass => "mass",
            },
            f.diameter_mm,
            f.lung_rads.as_str(),
            ct_triage_analysis::report::key_images::image_caption(f),
            match panel {
                Panel::Overview => "overview",
                Panel::Zoom => "zoomed inset",
            }
        )
    });
    secondary_capture(
        a,
        o,
        when,
        Capture {
            file: &file,
            png,
            spacing,
            series_uid: &series_uid,
            sop_uid: &sop_uid,
            instance_number: 2 * k.finding_id as i64 - 1 + panel.index() as i64,
            derivation: match panel {
                Panel::Overview => {
                    "Axial source slice in lung window (C -600, W 1500) with the finding outlined, \
                     its long (orange) and short (cyan) axes, the inset box, orientation letters, \
                     a 50 mm scale bar and a caption drawn by ct-triage"
                }
                Panel::Zoom => {
                    "Zoomed inset of the axial source slice (bilinear, lung window C -600, W 1500) \
                     with the finding outlined, its long and short axes, orientation letters and a \
                     10 mm scale bar drawn by ct-triage"
                }
            },
            comment,
            source_slice: finding.map(|f| f.slice_index),
        },
    )
}

/// File name of the opacity key image's Secondary Capture.
pub const OPACITY_FILE: &str = "key-images/opacities.sc.dcm";

/// Series UID of the key images and SOP Instance UID of the opacity key image.
pub fn opacity_uids(a: &Analysis, o: &ScOptions, when: &ContentDateTime) -> (String, String) {
    let (series, _) = uids(a, o, when, 0, Panel::Overview);
    let key = analysis_key(a);
    let inst = uid::hash_uid(&[b"ct-triage/sc-opacities", &key, when.stamp().as_bytes()]);
    (series, inst)
}

/// The opacity key image (most affected slice) as a Secondary Capture in the
/// key image series, after the findings' panels; `None` without one.
pub fn opacity_key_image_object(
    a: &Analysis,
    o: &ScOptions,
    when: &ContentDateTime,
) -> Result<Option<FileDicomObject<InMemDicomObject>>> {
    let Some(k) = &a.opacity_key_image else {
        return Ok(None);
    };
    let (series_uid, sop_uid) = opacity_uids(a, o, when);
    let comment = a.report.opacities.as_ref().map(|op| {
        format!(
            "Diffuse opacities, most affected slice (index {}): ground glass R {:.1} mL L {:.1} mL, \
             consolidation R {:.1} mL L {:.1} mL, CT severity score {}/25 (AI key image, a \
             pattern of attenuation, not a diagnosis)",
            k.slice_index,
            op.right.ground_glass_ml,
            op.left.ground_glass_ml,
            op.right.consolidation_ml,
            op.left.consolidation_ml,
            op.ct_severity_score
        )
    });
    secondary_capture(
        a,
        o,
        when,
        Capture {
            file: OPACITY_FILE,
            png: &k.png,
            spacing: k.spacing_mm,
            series_uid: &series_uid,
            sop_uid: &sop_uid,
            instance_number: 2 * a.key_images.len() as i64 + 1,
            derivation: "Axial source slice in lung window (C -600, W 1500) with ground glass \
                         (light blue) and consolidation (magenta) tinted, orientation letters, a \
                         50 mm scale bar and a caption drawn by ct-triage",
            comment,
            source_slice: Some(k.slice_index),
        },
    )
    .map(Some)
}

/// What one Secondary Capture holds.
struct Capture<'a> {
    file: &'a str,
    png: &'a [u8],
    spacing: [f64; 2],
    series_uid: &'a str,
    sop_uid: &'a str,
    instance_number: i64,
    derivation: &'a str,
    comment: Option<String>,
    source_slice: Option<usize>,
}

fn secondary_capture(
    a: &Analysis,
    o: &ScOptions,
    when: &ContentDateTime,
    c: Capture<'_>,
) -> Result<FileDicomObject<InMemDicomObject>> {
    let what = c.file;
    let img = image::load_from_memory_with_format(c.png, image::ImageFormat::Png)
        .map_err(|e| build::output_err(what, format!("key image PNG: {e}")))?
        .to_rgb8();
    let (w, h) = img.dimensions();
    if w > u16::MAX as u32 || h > u16::MAX as u32 {
        return Err(build::output_err(what, "key image too large"));
    }
    let meta = &a.series.meta;
    let g = &a.series.volume.geometry;

    let mut ds = Obj::new_empty();
    build::put_sop_common(&mut ds, SOP_CLASS_UID, c.sop_uid, when);
    build::put_patient_study(&mut ds, meta);
    o.header.put_series(&mut ds, "OT", c.series_uid);
    // General Series: Laterality (Type 2C) is required for paired body parts
    // only; naming the (unpaired) body part makes its absence explicit.
    put_str(&mut ds, tags::BODY_PART_EXAMINED, VR::CS, "CHEST");
    put_str(&mut ds, tags::MANUFACTURER, VR::LO, &o.header.manufacturer);
    put_str(&mut ds, tags::CONVERSION_TYPE, VR::CS, "WSD");
    put_is(&mut ds, tags::INSTANCE_NUMBER, c.instance_number);
    put_strs(
        &mut ds,
        tags::PATIENT_ORIENTATION,
        VR::CS,
        &[
            build::orientation_letters(g.direction[0]),
            build::orientation_letters(g.direction[1]),
        ],
    );
    put_str(&mut ds, tags::CONTENT_DATE, VR::DA, when.date());
    put_str(&mut ds, tags::CONTENT_TIME, VR::TM, when.time());
    put_str(
        &mut ds,
        tags::DATE_OF_SECONDARY_CAPTURE,
        VR::DA,
        when.date(),
    );
    put_str(
        &mut ds,
        tags::TIME_OF_SECONDARY_CAPTURE,
        VR::TM,
        when.time(),
    );
    put_strs(
        &mut ds,
        tags::IMAGE_TYPE,
        VR::CS,
        &["DERIVED".into(), "SECONDARY".into()],
    );
    put_str(&mut ds, tags::DERIVATION_DESCRIPTION, VR::ST, c.derivation);
    put_ds(&mut ds, tags::PIXEL_SPACING, &c.spacing);
    if let Some(comment) = &c.comment {
        put_str(&mut ds, tags::IMAGE_COMMENTS, VR::LT, comment);
    }
    if let Some(src) = c.source_slice.and_then(|z| a.series.slices.get(z)) {
        let mut s = Obj::new_empty();
        put_str(
            &mut s,
            tags::REFERENCED_SOP_CLASS_UID,
            VR::UI,
            &src.sop_class_uid,
        );
        put_str(
            &mut s,
            tags::REFERENCED_SOP_INSTANCE_UID,
            VR::UI,
            &src.sop_instance_uid,
        );
        if let Some(n) = src.frame_number {
            put_is(&mut s, tags::REFERENCED_FRAME_NUMBER, n as i64);
        }
        put_code(
            &mut s,
            tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
            &codes::SOURCE_IMAGE_FOR_PROCESSING,
        );
        put_seq(&mut ds, tags::SOURCE_IMAGE_SEQUENCE, vec![s]);
    }
    put_str(&mut ds, tags::BURNED_IN_ANNOTATION, VR::CS, "YES");
    put_str(&mut ds, tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00");
    put_us(&mut ds, tags::SAMPLES_PER_PIXEL, &[3]);
    put_str(&mut ds, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "RGB");
    put_us(&mut ds, tags::PLANAR_CONFIGURATION, &[0]);
    put_us(&mut ds, tags::ROWS, &[h as u16]);
    put_us(&mut ds, tags::COLUMNS, &[w as u16]);
    put_us(&mut ds, tags::BITS_ALLOCATED, &[8]);
    put_us(&mut ds, tags::BITS_STORED, &[8]);
    put_us(&mut ds, tags::HIGH_BIT, &[7]);
    put_us(&mut ds, tags::PIXEL_REPRESENTATION, &[0]);
    build::put_ob(&mut ds, tags::PIXEL_DATA, img.into_raw());
    build::to_file(ds, what)
}
