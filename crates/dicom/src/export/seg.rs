//! DICOM SEG: the finding masks as a BINARY Segmentation (PS3.3 A.51).
//!
//! One segment per finding (segment N = finding N of the report): label
//! "Finding N", algorithm type AUTOMATIC, property category (49755003, SCT,
//! "Morphologically Abnormal Structure"), property type Nodule (27925004, SCT)
//! or Mass (4147007, SCT), anatomic region Lung with the side as modifier, and
//! the finding's tracking identifier and UID.
//!
//! Then one segment per diffuse-opacity type that has voxels
//! ([`opacity_segments`]): "Ground glass opacity" (112120, DCM) and
//! "Consolidation" (95436008, SCT "Lung consolidation"), anatomic region Lung
//! (both lungs in one segment; the SR gives the volume per lung), from the
//! analysis' [`OpacityMap`](ct_triage_analysis::opacities::OpacityMap).
//!
//! Frames lie on the source slice grid (rows × columns of the source images)
//! and exist only where a segment has voxels. Each frame carries its plane
//! position, the source image it derives from (DerivationImageSequence >
//! SourceImageSequence) and its segment number; orientation and pixel spacing
//! are shared. Frames are ordered by segment, then by slice position, and are
//! indexed by the two dimensions (Referenced Segment Number, Image Position
//! Patient).

use std::collections::BTreeMap;

use dicom_core::VR;
use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, InMemDicomObject};

use super::build::{
    self, Obj, put_at, put_code, put_ds, put_is, put_seq, put_str, put_strs, put_us,
};
use super::codes;
use super::header::{SeriesHeader, series_options};
use super::{ContentDateTime, analysis_key, uid};
use crate::error::Result;
use ct_triage_analysis::opacities::{CONSOLIDATION, GROUND_GLASS};
use ct_triage_analysis::report::Analysis;

/// Segmentation Storage.
pub const SOP_CLASS_UID: &str = "1.2.840.10008.5.1.4.1.1.66.4";

/// Options of the SEG writer. Every field has a documented default; the
/// series header's builder methods come from
/// [`SeriesOptions`](super::SeriesOptions).
#[derive(Debug, Clone, PartialEq)]
pub struct SegOptions {
    /// Series header. Default Series Number 9002, Series Description
    /// "ct-triage AI nodule segmentation".
    pub header: SeriesHeader,
    /// Instance Number. Default 1.
    pub instance_number: i64,
    /// Content Label (CS, at most 16 characters). Default "NODULES".
    pub content_label: String,
    /// SOP Instance UID. Default none: derived from the analysis and content time.
    pub sop_instance_uid: Option<String>,
}

impl Default for SegOptions {
    fn default() -> Self {
        SegOptions {
            header: SeriesHeader::new(9002, "ct-triage AI nodule segmentation"),
            instance_number: 1,
            content_label: "NODULES".into(),
            sop_instance_uid: None,
        }
    }
}

series_options!(SegOptions);

impl SegOptions {
    /// Defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Use these Series and SOP Instance UIDs.
    pub fn uids(mut self, series: impl Into<String>, instance: impl Into<String>) -> Self {
        self.header.series_instance_uid = Some(series.into());
        self.sop_instance_uid = Some(instance.into());
        self
    }
}

/// Series and SOP Instance UID of the SEG these options produce.
pub fn uids(a: &Analysis, o: &SegOptions, when: &ContentDateTime) -> (String, String) {
    super::object_uids(
        a,
        "seg",
        o.header.series_instance_uid.as_ref(),
        o.sop_instance_uid.as_ref(),
        when,
    )
}

/// A diffuse-opacity segment of the SEG: its number, what it holds and how
/// the SR tracks it. One source for the SEG writer and the SR's references.
#[derive(Debug, Clone, PartialEq)]
pub struct OpacitySegment {
    /// Segment number (after the findings' segments).
    pub number: u16,
    /// [`GROUND_GLASS`] or [`CONSOLIDATION`] in the opacity map.
    pub label: u8,
    /// Segmented property type (and the SR's Finding).
    pub code: codes::Code,
    /// Segment label and Tracking Identifier.
    pub name: &'static str,
    /// Tracking UID (derived from the source series and the type, so the same
    /// series gives the same UID in every export).
    pub tracking_uid: String,
    /// Source voxels in the segment.
    pub voxels: u64,
}

/// The diffuse-opacity segments an analysis has (types without a voxel are left
/// out), numbered after the findings' segments.
pub fn opacity_segments(a: &Analysis) -> Vec<OpacitySegment> {
    let Some(map) = &a.opacity_map else {
        return Vec::new();
    };
    let mut next = a.report.findings.len() as u16;
    [
        (
            GROUND_GLASS,
            codes::GROUND_GLASS_OPACITY,
            "Ground glass opacity",
        ),
        (CONSOLIDATION, codes::LUNG_CONSOLIDATION, "Consolidation"),
    ]
    .into_iter()
    .filter_map(|(label, code, name)| {
        let voxels = map.count(label);
        (voxels > 0).then(|| {
            next += 1;
            OpacitySegment {
                number: next,
                label,
                code,
                name,
                tracking_uid: uid::hash_uid(&[
                    b"ct-triage/opacity-tracking",
                    a.series.meta.series_instance_uid.as_bytes(),
                    name.as_bytes(),
                ]),
                voxels,
            }
        })
    })
    .collect()
}

/// The SEG as Part 10 bytes; `None` when the analysis has neither a finding
/// nor an opacity (a SEG needs a segment).
pub fn segmentation(a: &Analysis, o: &SegOptions) -> Result<Option<Vec<u8>>> {
    match segmentation_object(a, o)? {
        Some(f) => build::to_bytes(&f, "findings.seg.dcm").map(Some),
        None => Ok(None),
    }
}

/// What a Segmentation Algorithm Identification item names.
struct Algorithm<'a> {
    family: &'a codes::Code,
    name: &'a str,
    version: &'a str,
    parameters: &'a str,
}

/// What one Segment Sequence item says; the findings' and the opacities'
/// segments differ only in these values.
struct Segment<'a> {
    number: u16,
    /// Segment Label and Tracking ID.
    label: &'a str,
    algorithm_name: &'a str,
    property_type: &'a codes::Code,
    /// The Anatomic Region Sequence item (Lung, with or without a laterality).
    region: Obj,
    tracking_uid: &'a str,
    cie_lab: [u16; 3],
    algorithm: &'a Algorithm<'a>,
}

/// A Segment Sequence item (PS3.3 C.8.20.4): AUTOMATIC, property category
/// Morphologically Abnormal Structure.
fn segment_item(g: Segment) -> Obj {
    let mut s = Obj::new_empty();
    put_us(&mut s, tags::SEGMENT_NUMBER, &[g.number]);
    put_str(&mut s, tags::SEGMENT_LABEL, VR::LO, g.label);
    put_str(&mut s, tags::SEGMENT_ALGORITHM_TYPE, VR::CS, "AUTOMATIC");
    put_str(
        &mut s,
        tags::SEGMENT_ALGORITHM_NAME,
        VR::LO,
        g.algorithm_name,
    );
    put_code(
        &mut s,
        tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE,
        &codes::MORPHOLOGICALLY_ABNORMAL_STRUCTURE,
    );
    put_code(
        &mut s,
        tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE,
        g.property_type,
    );
    put_seq(&mut s, tags::ANATOMIC_REGION_SEQUENCE, vec![g.region]);
    put_str(&mut s, tags::TRACKING_ID, VR::UT, g.label);
    put_str(&mut s, tags::TRACKING_UID, VR::UI, g.tracking_uid);
    put_us(&mut s, tags::RECOMMENDED_DISPLAY_CIE_LAB_VALUE, &g.cie_lab);
    let mut alg = Obj::new_empty();
    put_code(
        &mut alg,
        tags::ALGORITHM_FAMILY_CODE_SEQUENCE,
        g.algorithm.family,
    );
    put_str(&mut alg, tags::ALGORITHM_NAME, VR::LO, g.algorithm.name);
    put_str(
        &mut alg,
        tags::ALGORITHM_VERSION,
        VR::LO,
        g.algorithm.version,
    );
    put_str(
        &mut alg,
        tags::ALGORITHM_PARAMETERS,
        VR::LT,
        g.algorithm.parameters,
    );
    put_seq(
        &mut s,
        tags::SEGMENTATION_ALGORITHM_IDENTIFICATION_SEQUENCE,
        vec![alg],
    );
    s
}

/// One frame: a segment on one source slice, with the pixel indices it covers.
struct Frame {
    segment: u16,
    z: usize,
    pixels: Vec<u32>,
}

/// The SEG as an in-memory file object; `None` when the analysis has neither
/// a finding nor an opacity.
pub fn segmentation_object(
    a: &Analysis,
    o: &SegOptions,
) -> Result<Option<FileDicomObject<InMemDicomObject>>> {
    let what = "findings.seg.dcm";
    let r = &a.report;
    let opacity = opacity_segments(a);
    if r.findings.is_empty() && opacity.is_empty() {
        return Ok(None);
    }
    if a.masks.len() != r.findings.len() {
        return Err(build::output_err(
            what,
            format!("{} masks for {} findings", a.masks.len(), r.findings.len()),
        ));
    }
    let meta = &a.series.meta;
    let Some(for_uid) = meta.frame_of_reference_uid.clone() else {
        return Err(build::output_err(
            what,
            "the source series has no Frame of Reference UID",
        ));
    };
    let g = &a.series.volume.geometry;
    let (cols, rows, nz) = (g.size[0], g.size[1], g.size[2]);
    if rows > u16::MAX as usize || cols > u16::MAX as usize {
        return Err(build::output_err(what, "image too large for a SEG frame"));
    }

    // Frames: every (segment, slice) with at least one voxel.
    let mut frames: Vec<Frame> = Vec::new();
    for (i, m) in a.masks.iter().enumerate() {
        let (mz, my, mx) = m.mask.dim();
        let [ox, oy, oz] = m.origin_xyz;
        let before = frames.len();
        for kz in 0..mz {
            let z = oz + kz;
            if z >= nz {
                break;
            }
            let mut pixels = Vec::new();
            for ky in 0..my {
                for kx in 0..mx {
                    let (x, y) = (ox + kx, oy + ky);
                    if x < cols && y < rows && m.mask[[kz, ky, kx]] {
                        pixels.push((y * cols + x) as u32);
                    }
                }
            }
            if !pixels.is_empty() {
                frames.push(Frame {
                    segment: i as u16 + 1,
                    z,
                    pixels,
                });
            }
        }
        if frames.len() == before {
            return Err(build::output_err(
                what,
                format!("finding {} has an empty mask", r.findings[i].id),
            ));
        }
    }
    if let Some(map) = &a.opacity_map {
        if map.size != g.size {
            return Err(build::output_err(
                what,
                format!(
                    "opacity map {:?} and series {:?} differ in size",
                    map.size, g.size
                ),
            ));
        }
        for seg in &opacity {
            for sl in &map.slices {
                let pixels: Vec<u32> = sl
                    .runs
                    .iter()
                    .filter(|run| run.label == seg.label)
                    .flat_map(|run| {
                        let start = run.row as usize * cols + run.col as usize;
                        (start..start + run.len as usize).map(|p| p as u32)
                    })
                    .filter(|&p| (p as usize) < cols * rows)
                    .collect();
                if !pixels.is_empty() && sl.slice < nz {
                    frames.push(Frame {
                        segment: seg.number,
                        z: sl.slice,
                        pixels,
                    });
                }
            }
        }
    }
    // Position index: rank of the slice among all slices that carry a frame.
    let ranks: BTreeMap<usize, u32> = {
        let mut zs: Vec<usize> = frames.iter().map(|f| f.z).collect();
        zs.sort_unstable();
        zs.dedup();
        zs.into_iter()
            .enumerate()
            .map(|(i, z)| (z, i as u32 + 1))
            .collect()
    };

    let when = o.header.when();
    let (series_uid, sop_uid) = uids(a, o, &when);
    let key = analysis_key(a);
    let dim_uid = uid::hash_uid(&[b"ct-triage/seg-dimensions", &key, when.stamp().as_bytes()]);

    let mut ds = Obj::new_empty();
    build::put_sop_common(&mut ds, SOP_CLASS_UID, &sop_uid, &when);
    build::put_patient_study(&mut ds, meta);
    o.header.put_series(&mut ds, "SEG", &series_uid);
    put_str(&mut ds, tags::FRAME_OF_REFERENCE_UID, VR::UI, &for_uid);
    build::put_empty(&mut ds, tags::POSITION_REFERENCE_INDICATOR, VR::LO);
    let model = format!("{} {}", r.model.name, r.model.version);
    build::put_equipment(&mut ds, &o.header.manufacturer, &model, "1");
    put_is(&mut ds, tags::INSTANCE_NUMBER, o.instance_number);
    put_str(&mut ds, tags::CONTENT_DATE, VR::DA, when.date());
    put_str(&mut ds, tags::CONTENT_TIME, VR::TM, when.time());
    put_strs(
        &mut ds,
        tags::IMAGE_TYPE,
        VR::CS,
        &["DERIVED".into(), "PRIMARY".into()],
    );
    let label: String = o.content_label.to_uppercase().chars().take(16).collect();
    put_str(&mut ds, tags::CONTENT_LABEL, VR::CS, &label);
    put_str(
        &mut ds,
        tags::CONTENT_DESCRIPTION,
        VR::LO,
        match (r.findings.is_empty(), opacity.is_empty()) {
            (false, true) => "Lung nodules found by ct-triage",
            (true, false) => "Diffuse lung opacities found by ct-triage",
            _ => "Lung nodules and diffuse opacities found by ct-triage",
        },
    );
    build::put_empty(&mut ds, tags::CONTENT_CREATOR_NAME, VR::PN);
    put_str(&mut ds, tags::SEGMENTATION_TYPE, VR::CS, "BINARY");
    put_str(&mut ds, tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00");

    // Image pixel module.
    put_us(&mut ds, tags::SAMPLES_PER_PIXEL, &[1]);
    put_str(
        &mut ds,
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    );
    put_us(&mut ds, tags::ROWS, &[rows as u16]);
    put_us(&mut ds, tags::COLUMNS, &[cols as u16]);
    put_us(&mut ds, tags::BITS_ALLOCATED, &[1]);
    put_us(&mut ds, tags::BITS_STORED, &[1]);
    put_us(&mut ds, tags::HIGH_BIT, &[0]);
    put_us(&mut ds, tags::PIXEL_REPRESENTATION, &[0]);
    put_is(&mut ds, tags::NUMBER_OF_FRAMES, frames.len() as i64);

    // Segments.
    let nodule_algorithm = Algorithm {
        family: &codes::ARTIFICIAL_INTELLIGENCE,
        name: &r.model.name,
        version: &r.model.version,
        parameters: &format!("sha256={}", r.model.sha256),
    };
    let nodule_algorithm_name = format!("{} {}", r.generator.name, model);
    let mut segments: Vec<Obj> = r
        .findings
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let label = format!("Finding {}", f.id);
            let mut region = build::code_item(&codes::LUNG);
            put_code(
                &mut region,
                tags::ANATOMIC_REGION_MODIFIER_SEQUENCE,
                &codes::side(f.location.side),
            );
            segment_item(Segment {
                number: i as u16 + 1,
                label: &label,
                algorithm_name: &nodule_algorithm_name,
                property_type: &codes::finding_kind(f.kind),
                region,
                tracking_uid: &f.tracking_uid,
                // Orange (CIELab 70, 40, 70) scaled to 0..65535.
                cie_lab: [45875, 43176, 50886],
                algorithm: &nodule_algorithm,
            })
        })
        .collect();
    let opacity_parameters = r
        .opacities
        .as_ref()
        .map(|o| o.method.clone())
        .unwrap_or_default();
    let opacity_algorithm = Algorithm {
        family: &codes::MORPHOLOGICAL_OPERATIONS,
        name: "ct-triage opacities",
        version: &r.generator.version,
        parameters: &opacity_parameters,
    };
    let opacity_algorithm_name = format!("{} opacities (HU bands)", r.generator.name);
    segments.extend(opacity.iter().map(|seg| {
        segment_item(Segment {
            number: seg.number,
            label: seg.name,
            algorithm_name: &opacity_algorithm_name,
            property_type: &seg.code,
            region: build::code_item(&codes::LUNG),
            tracking_uid: &seg.tracking_uid,
            // Ground glass: light blue (CIELab 80, -10, -30); consolidation: magenta (55, 70, -30).
            cie_lab: if seg.label == GROUND_GLASS {
                [52428, 30326, 25186]
            } else {
                [36044, 45746, 25186]
            },
            algorithm: &opacity_algorithm,
        })
    }));
    put_seq(&mut ds, tags::SEGMENT_SEQUENCE, segments);

    // Shared functional groups: orientation and pixel measures.
    let [row_dir, col_dir, _] = g.direction;
    let mut measures = Obj::new_empty();
    put_ds(
        &mut measures,
        tags::PIXEL_SPACING,
        &[g.spacing[1], g.spacing[0]],
    );
    put_ds(
        &mut measures,
        tags::SLICE_THICKNESS,
        &[a.series.slice_thickness_mm.unwrap_or(g.spacing[2])],
    );
    put_ds(&mut measures, tags::SPACING_BETWEEN_SLICES, &[g.spacing[2]]);
    let mut orient = Obj::new_empty();
    put_ds(
        &mut orient,
        tags::IMAGE_ORIENTATION_PATIENT,
        &[
            row_dir[0], row_dir[1], row_dir[2], col_dir[0], col_dir[1], col_dir[2],
        ],
    );
    let mut shared = Obj::new_empty();
    put_seq(&mut shared, tags::PIXEL_MEASURES_SEQUENCE, vec![measures]);
    put_seq(&mut shared, tags::PLANE_ORIENTATION_SEQUENCE, vec![orient]);
    put_seq(
        &mut ds,
        tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
        vec![shared],
    );

    // Per-frame functional groups.
    let mut referenced: Vec<(String, String)> = Vec::new();
    let per_frame = frames
        .iter()
        .map(|fr| {
            let mut pf = Obj::new_empty();
            if let Some(src) = a.series.slices.get(fr.z) {
                let mut img = Obj::new_empty();
                put_str(
                    &mut img,
                    tags::REFERENCED_SOP_CLASS_UID,
                    VR::UI,
                    &src.sop_class_uid,
                );
                put_str(
                    &mut img,
                    tags::REFERENCED_SOP_INSTANCE_UID,
                    VR::UI,
                    &src.sop_instance_uid,
                );
                if let Some(n) = src.frame_number {
                    put_is(&mut img, tags::REFERENCED_FRAME_NUMBER, n as i64);
                }
                put_code(
                    &mut img,
                    tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
                    &codes::SOURCE_IMAGE_FOR_PROCESSING,
                );
                // Frames are on the source pixel grid.
                put_str(&mut img, tags::SPATIAL_LOCATIONS_PRESERVED, VR::CS, "YES");
                let mut der = Obj::new_empty();
                put_seq(&mut der, tags::SOURCE_IMAGE_SEQUENCE, vec![img]);
                put_code(
                    &mut der,
                    tags::DERIVATION_CODE_SEQUENCE,
                    &codes::SEGMENTATION_DERIVATION,
                );
                put_seq(&mut pf, tags::DERIVATION_IMAGE_SEQUENCE, vec![der]);
                let r = (src.sop_class_uid.clone(), src.sop_instance_uid.clone());
                if !referenced.contains(&r) {
                    referenced.push(r);
                }
            }
            let mut content = Obj::new_empty();
            build::put_ul(
                &mut content,
                tags::DIMENSION_INDEX_VALUES,
                &[fr.segment as u32, ranks[&fr.z]],
            );
            put_seq(&mut pf, tags::FRAME_CONTENT_SEQUENCE, vec![content]);
            let p = g.voxel_to_patient([0.0, 0.0, fr.z as f64]);
            let mut pos = Obj::new_empty();
            put_ds(&mut pos, tags::IMAGE_POSITION_PATIENT, &p);
            put_seq(&mut pf, tags::PLANE_POSITION_SEQUENCE, vec![pos]);
            let mut sid = Obj::new_empty();
            put_us(&mut sid, tags::REFERENCED_SEGMENT_NUMBER, &[fr.segment]);
            put_seq(&mut pf, tags::SEGMENT_IDENTIFICATION_SEQUENCE, vec![sid]);
            pf
        })
        .collect();
    put_seq(
        &mut ds,
        tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
        per_frame,
    );

    // Multi-frame dimensions.
    let mut org = Obj::new_empty();
    put_str(&mut org, tags::DIMENSION_ORGANIZATION_UID, VR::UI, &dim_uid);
    put_seq(&mut ds, tags::DIMENSION_ORGANIZATION_SEQUENCE, vec![org]);
    put_str(&mut ds, tags::DIMENSION_ORGANIZATION_TYPE, VR::CS, "3D");
    let dim = |pointer, group, label: &str| {
        let mut d = Obj::new_empty();
        put_str(&mut d, tags::DIMENSION_ORGANIZATION_UID, VR::UI, &dim_uid);
        put_at(&mut d, tags::DIMENSION_INDEX_POINTER, &[pointer]);
        put_at(&mut d, tags::FUNCTIONAL_GROUP_POINTER, &[group]);
        put_str(&mut d, tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, label);
        d
    };
    put_seq(
        &mut ds,
        tags::DIMENSION_INDEX_SEQUENCE,
        vec![
            dim(
                tags::REFERENCED_SEGMENT_NUMBER,
                tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                "Segment Number",
            ),
            dim(
                tags::IMAGE_POSITION_PATIENT,
                tags::PLANE_POSITION_SEQUENCE,
                "Image Position Patient",
            ),
        ],
    );

    // Common Instance Reference: the source instances the frames derive from.
    let instances = referenced
        .iter()
        .map(|(c, i)| {
            let mut o = Obj::new_empty();
            put_str(&mut o, tags::REFERENCED_SOP_CLASS_UID, VR::UI, c);
            put_str(&mut o, tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, i);
            o
        })
        .collect();
    let mut series = Obj::new_empty();
    put_str(
        &mut series,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        &meta.series_instance_uid,
    );
    put_seq(&mut series, tags::REFERENCED_INSTANCE_SEQUENCE, instances);
    put_seq(&mut ds, tags::REFERENCED_SERIES_SEQUENCE, vec![series]);

    // Pixel data: frames packed bit by bit, little-endian bit order, no padding between frames.
    let per = rows * cols;
    let mut bits = vec![0u8; (frames.len() * per).div_ceil(8)];
    for (fi, fr) in frames.iter().enumerate() {
        let base = fi * per;
        for &p in &fr.pixels {
            let b = base + p as usize;
            bits[b / 8] |= 1 << (b % 8);
        }
    }
    build::put_ob(&mut ds, tags::PIXEL_DATA, bits);
    build::to_file(ds, what).map(Some)
}
