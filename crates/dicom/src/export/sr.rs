//! DICOM SR: a Comprehensive 3D SR document with the TID 1500 Measurement Report.
//!
//! ```text
//! CONTAINER (126000, DCM, "Imaging Measurement Report")  TID 1500
//!  ├ HAS CONCEPT MOD  Language = en-US                          TID 1204
//!  ├ HAS OBS CONTEXT  Observer Type = Device, Device Observer UID/Name/
//!  │                  Manufacturer/Model Name                     TID 1002/1004
//!  ├ HAS CONCEPT MOD  Procedure reported = (24627-2, LN, "CT Chest")
//!  ├ CONTAINS Image Library > Image Library Group                TID 1600
//!  │            (Modality CT, Target Region Chest, Frame of Reference UID,
//!  │             one IMAGE per source instance/frame)
//!  ├ CONTAINS Imaging Measurements
//!  │   └ CONTAINS Measurement Group (one per finding)            TID 1411
//!  │       ├ Tracking Identifier "…:Bidirectional:Finding N" (the prefix OHIF
//!  │       │   needs, see SrOptions), Tracking Unique Identifier (TID 4108)
//!  │       ├ Finding category = Morphologically abnormal structure
//!  │       ├ Finding = Nodule | Mass
//!  │       ├ Finding Site = Upper / Middle / Lower lobe of lung (the landmark
//!  │       │   approximation) or Lung when the lobe is unknown (+ Laterality);
//!  │       │   Subpleural (+ Laterality) when juxtapleural
//!  │       ├ Algorithm Name / Version / Parameters (sha256, runtime, pipeline),
//!  │       │   Algorithm Family = Artificial Intelligence       TID 4019
//!  │       ├ Referenced Segment (SEG segment N) + Source series for segmentation,
//!  │       │   or, without a SEG, Volume Surface (SCOORD3D POINT at the centre)
//!  │       ├ NUM Long Axis, Short Axis [mm], each INFERRED FROM the axis as a
//!  │       │   2-D SCOORD POLYLINE edge to edge (pixel column/row, SELECTED FROM
//!  │       │   its slice; SCOORD3D only when the slice is unknown) and the
//!  │       │   source image it was measured on
//!  │       ├ NUM Diameter (Derivation Mean) [mm], Volume [mm3],
//!  │       │   Attenuation Coefficient (Derivation Mean) [[hnsf'U]],
//!  │       │   Solid component mean diameter [mm] (part-solid only, 99CTT)
//!  │       ├ NUM Certainty of Finding [1] (model nodule probability)
//!  │       ├ NUM AI malignancy score [1] (99CTT: its own concept, never
//!  │       │   "Probability of cancer")
//!  │       ├ NUM Probability of cancer [1], Measurement Method = Brock (99CTT),
//!  │       │   with the model's inputs as Algorithm Parameters
//!  │       │   (every NUM: Algorithm Name + Version of what made it, TID 300 → TID 4019)
//!  │       ├ CODE Nodule attenuation type (99CTT name; values Solid, Part-solid
//!  │       │   (99CTT), Ground glass opacity (DCM), Calcified (SCT))
//!  │       ├ CODE Calcification pattern (99CTT) + the reason
//!  │       ├ CODE Assessment Category = Lung-RADS v2022 category (99CTT values)
//!  │       │   + reason, v2022 management, Algorithm Name/Version of the rules
//!  │       ├ TEXT Source series and image number ("series 2, image 35 …")
//!  │       └ CODE Priority = the finding's triage band + the rules that set it
//!  │   ├ CONTAINS Measurement Group per diffuse-opacity type   TID 1411
//!  │   │   (TID 1501 without a SEG): Tracking Identifier "Ground glass
//!  │   │   opacity" | "Consolidation", Finding = Ground glass opacity (DCM) |
//!  │   │   Lung consolidation (SCT), Finding Site = Lung, Algorithm
//!  │   │   (Morphological Operations), Referenced Segment, NUM Volume [cm3]
//!  │   │   of both lungs, per lung (Finding Site Lung + Laterality) NUM
//!  │   │   Volume [cm3] and Percent of lung volume [%] (99CTT)
//!  │   └ CONTAINS Measurement Group "Diffuse lung opacities"     TID 1501
//!  │       Finding = Opacity (DCM), NUM CT severity score (Pan 2020, 99CTT)
//!  │       with the lobe method, NUM %LAA-950 (99CTT), TEXT distribution;
//!  │       every opacity NUM INFERRED FROM a 2-D SCOORD POINT inside the
//!  │       opacity on its most affected slice (OHIF needs a coordinate per
//!  │       group); groups without an opacity voxel are left out
//!  └ CONTAINS Qualitative Evaluations (C0034375, UMLS)
//!      ├ CODE Assessment Category = exam Lung-RADS (0 when part of the lungs
//!      │   was not evaluated) + reason, management and the baseline-only note
//!      ├ CODE Priority = Urgent | Priority | Routine | Inconclusive (99CTT values)
//!      │   └ HAS PROPERTIES Triage score [1], Triage reason (TEXT, one per
//!      │     rule), Triage rule set (TEXT)
//!      ├ TEXT Comment = the disclaimer
//!      ├ TEXT Diffuse opacity distribution (99CTT): the opacity section in words
//!      ├ TEXT Limitation of this analysis (one per stated limit)
//!      └ TEXT Analysis warning (one per warning)
//! ```
//!
//! All codes and their sources are in [`super::codes`].

use dicom_core::VR;
use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, InMemDicomObject};

use super::build::{self, Obj, put_code, put_ds, put_fd, put_fl, put_is, put_seq, put_str};
use super::codes::{self, Code};
use super::header::{SeriesHeader, series_options};
use super::{ContentDateTime, seg, uid};
use crate::error::Result;
use ct_triage_analysis::report::Analysis;
use ct_triage_analysis::report::{DISCLAIMER, Finding, NoduleType, Side};
use ct_triage_analysis::series::SliceRef;

/// Comprehensive 3D SR Storage.
pub const SOP_CLASS_UID: &str = "1.2.840.10008.5.1.4.1.1.88.34";

/// The SEG whose segments the measurement groups reference (segment N = finding N).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentationRef {
    /// SOP Instance UID of the SEG.
    pub sop_instance_uid: String,
    /// Series Instance UID of the SEG.
    pub series_instance_uid: String,
}

/// Options of the SR writer. Every field has a documented default; the
/// series header's builder methods come from
/// [`SeriesOptions`](super::SeriesOptions).
#[derive(Debug, Clone, PartialEq)]
pub struct SrOptions {
    /// Series header. Default Series Number 9001, Series Description
    /// "ct-triage AI lung nodule report" (the Manufacturer is also the device
    /// observer manufacturer).
    pub header: SeriesHeader,
    /// Instance Number. Default 1.
    pub instance_number: i64,
    /// Institution Name. Default none (not written).
    pub institution_name: Option<String>,
    /// The SEG to reference from each measurement group. Default none: each
    /// group then carries a Volume Surface point at the finding centre.
    pub segmentation: Option<SegmentationRef>,
    /// Write the Image Library (every source instance). Default true.
    pub image_library: bool,
    /// SOP Instance UID. Default none: derived from the analysis and content time.
    pub sop_instance_uid: Option<String>,
    /// Written before `Finding N` in each group's Tracking Identifier.
    /// Default [`OHIF_TRACKING_PREFIX`]: OHIF (dcmjs' Cornerstone3D adapters)
    /// lists an SR's measurements in its panel only when the identifier names
    /// the tool that draws them; other readers show it as text. `""` writes
    /// plain `Finding N`.
    pub tracking_identifier_prefix: String,
}

/// The Tracking Identifier prefix OHIF 3 needs to show a measurement group
/// as a bidirectional (long and short axis) measurement.
pub const OHIF_TRACKING_PREFIX: &str = "Cornerstone3DTools@^0.1.0:Bidirectional:";

impl Default for SrOptions {
    fn default() -> Self {
        SrOptions {
            header: SeriesHeader::new(9001, "ct-triage AI lung nodule report"),
            instance_number: 1,
            institution_name: None,
            segmentation: None,
            image_library: true,
            sop_instance_uid: None,
            tracking_identifier_prefix: OHIF_TRACKING_PREFIX.into(),
        }
    }
}

series_options!(SrOptions);

impl SrOptions {
    /// Defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Set the Instance Number.
    pub fn instance_number(mut self, n: i64) -> Self {
        self.instance_number = n;
        self
    }
    /// Set the Institution Name.
    pub fn institution_name(mut self, s: impl Into<String>) -> Self {
        self.institution_name = Some(s.into());
        self
    }
    /// Reference this SEG from the measurement groups.
    pub fn segmentation(mut self, seg: SegmentationRef) -> Self {
        self.segmentation = Some(seg);
        self
    }
    /// Write the Image Library or not.
    pub fn image_library(mut self, on: bool) -> Self {
        self.image_library = on;
        self
    }
    /// Use these Series and SOP Instance UIDs.
    pub fn uids(mut self, series: impl Into<String>, instance: impl Into<String>) -> Self {
        self.header.series_instance_uid = Some(series.into());
        self.sop_instance_uid = Some(instance.into());
        self
    }
}

/// Series and SOP Instance UID of the SR these options produce.
pub fn uids(a: &Analysis, o: &SrOptions, when: &ContentDateTime) -> (String, String) {
    super::object_uids(
        a,
        "sr",
        o.header.series_instance_uid.as_ref(),
        o.sop_instance_uid.as_ref(),
        when,
    )
}

/// The SR as Part 10 bytes.
pub fn measurement_report(a: &Analysis, o: &SrOptions) -> Result<Vec<u8>> {
    build::to_bytes(&measurement_report_object(a, o)?, "report.sr.dcm")
}

/// The SR as an in-memory file object.
pub fn measurement_report_object(
    a: &Analysis,
    o: &SrOptions,
) -> Result<FileDicomObject<InMemDicomObject>> {
    let what = "report.sr.dcm";
    let when = o.header.when();
    let (series_uid, sop_uid) = uids(a, o, &when);
    let r = &a.report;
    let meta = &a.series.meta;
    let for_uid = meta.frame_of_reference_uid.clone();
    if for_uid.is_none() && !r.findings.is_empty() {
        return Err(build::output_err(
            what,
            "the source series has no Frame of Reference UID; spatial coordinates cannot be written",
        ));
    }
    let for_uid = for_uid.unwrap_or_default();

    let mut ds = Obj::new_empty();
    build::put_sop_common(&mut ds, SOP_CLASS_UID, &sop_uid, &when);
    build::put_patient_study(&mut ds, meta);
    o.header.put_series(&mut ds, "SR", &series_uid);
    put_seq(
        &mut ds,
        tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE,
        vec![],
    );
    let model_name = format!("{} {}", r.model.name, r.model.version);
    build::put_equipment(&mut ds, &o.header.manufacturer, &model_name, "1");
    if let Some(inst) = &o.institution_name {
        put_str(&mut ds, tags::INSTITUTION_NAME, VR::LO, inst);
    }
    put_is(&mut ds, tags::INSTANCE_NUMBER, o.instance_number);
    put_str(&mut ds, tags::COMPLETION_FLAG, VR::CS, "COMPLETE");
    put_str(&mut ds, tags::VERIFICATION_FLAG, VR::CS, "UNVERIFIED");
    put_str(&mut ds, tags::CONTENT_DATE, VR::DA, when.date());
    put_str(&mut ds, tags::CONTENT_TIME, VR::TM, when.time());
    put_seq(&mut ds, tags::PERFORMED_PROCEDURE_CODE_SEQUENCE, vec![]);
    put_seq(
        &mut ds,
        tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE,
        vec![evidence(a, o.segmentation.as_ref())],
    );
    build::put_private_scheme(&mut ds);

    // Root content item.
    put_str(&mut ds, tags::VALUE_TYPE, VR::CS, "CONTAINER");
    put_code(
        &mut ds,
        tags::CONCEPT_NAME_CODE_SEQUENCE,
        &codes::IMAGING_MEASUREMENT_REPORT,
    );
    put_str(&mut ds, tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE");
    put_template(&mut ds, "1500");
    let mut root = document_context(a);
    root.extend([
        text(
            HAS_OBS_CONTEXT,
            &codes::DEVICE_OBSERVER_MANUFACTURER,
            &o.header.manufacturer,
        ),
        text(
            HAS_OBS_CONTEXT,
            &codes::DEVICE_OBSERVER_MODEL_NAME,
            &model_name,
        ),
        code(
            HAS_CONCEPT_MOD,
            &codes::PROCEDURE_REPORTED,
            &codes::CT_CHEST,
        ),
    ]);
    if o.image_library {
        root.push(image_library(a, &for_uid));
    }
    let mut groups = r
        .findings
        .iter()
        .enumerate()
        .map(|(i, f)| measurement_group(a, f, i, o, &for_uid))
        .collect::<Result<Vec<_>>>()?;
    groups.extend(opacity_groups(a, o));
    if !groups.is_empty() {
        root.push(container(
            CONTAINS,
            &codes::IMAGING_MEASUREMENTS,
            None,
            groups,
        ));
    }
    root.push(exam_evaluations(a));
    put_seq(&mut ds, tags::CONTENT_SEQUENCE, root);
    build::to_file(ds, what)
}

/// The opening content items of every document ct-triage writes (SR, KOS):
/// Language of Content (TID 1204), Observer Type = Device with its UID and
/// name (TID 1002/1004).
pub(crate) fn document_context(a: &Analysis) -> Vec<Obj> {
    vec![
        code(
            HAS_CONCEPT_MOD,
            &codes::LANGUAGE_OF_CONTENT,
            &codes::ENGLISH_US,
        ),
        code(HAS_OBS_CONTEXT, &codes::OBSERVER_TYPE, &codes::DEVICE),
        uidref(HAS_OBS_CONTEXT, &codes::DEVICE_OBSERVER_UID, &device_uid(a)),
        text(
            HAS_OBS_CONTEXT,
            &codes::DEVICE_OBSERVER_NAME,
            &a.report.generator.name,
        ),
    ]
}

/// The device observer UID: the pipeline version and the model weights.
pub(crate) fn device_uid(a: &Analysis) -> String {
    let r = &a.report;
    uid::hash_uid(&[
        b"ct-triage/device",
        r.generator.name.as_bytes(),
        r.generator.version.as_bytes(),
        r.model.sha256.as_bytes(),
    ])
}

/// CurrentRequestedProcedureEvidenceSequence item: the source instances (and the SEG).
fn evidence(a: &Analysis, seg: Option<&SegmentationRef>) -> Obj {
    let meta = &a.series.meta;
    let mut sops = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for s in &a.series.slices {
        if seen.insert(s.sop_instance_uid.clone()) {
            sops.push(sop_ref(&s.sop_class_uid, &s.sop_instance_uid));
        }
    }
    let mut series = vec![series_ref(&meta.series_instance_uid, sops)];
    if let Some(sg) = seg {
        series.push(series_ref(
            &sg.series_instance_uid,
            vec![sop_ref(seg::SOP_CLASS_UID, &sg.sop_instance_uid)],
        ));
    }
    let mut study = Obj::new_empty();
    put_str(
        &mut study,
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        &meta.study_instance_uid,
    );
    put_seq(&mut study, tags::REFERENCED_SERIES_SEQUENCE, series);
    study
}

pub(crate) fn series_ref(uid: &str, sops: Vec<Obj>) -> Obj {
    let mut o = Obj::new_empty();
    put_str(&mut o, tags::SERIES_INSTANCE_UID, VR::UI, uid);
    put_seq(&mut o, tags::REFERENCED_SOP_SEQUENCE, sops);
    o
}

pub(crate) fn sop_ref(class: &str, inst: &str) -> Obj {
    let mut o = Obj::new_empty();
    put_str(&mut o, tags::REFERENCED_SOP_CLASS_UID, VR::UI, class);
    put_str(&mut o, tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, inst);
    o
}

/// TID 1600 Image Library with one entry per source instance (and frame).
fn image_library(a: &Analysis, for_uid: &str) -> Obj {
    let mut group = vec![
        code(
            HAS_ACQ_CONTEXT,
            &codes::MODALITY,
            &codes::COMPUTED_TOMOGRAPHY,
        ),
        code(HAS_ACQ_CONTEXT, &codes::TARGET_REGION, &codes::CHEST),
    ];
    if !for_uid.is_empty() {
        group.push(uidref(
            HAS_ACQ_CONTEXT,
            &codes::FRAME_OF_REFERENCE_UID,
            for_uid,
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for s in &a.series.slices {
        if seen.insert((s.sop_instance_uid.clone(), s.frame_number)) {
            group.push(slice_image(CONTAINS, None, s));
        }
    }
    container(
        CONTAINS,
        &codes::IMAGE_LIBRARY,
        None,
        vec![container(
            CONTAINS,
            &codes::IMAGE_LIBRARY_GROUP,
            None,
            group,
        )],
    )
}

/// TID 1411 measurement group of finding `i`.
fn measurement_group(
    a: &Analysis,
    f: &Finding,
    i: usize,
    o: &SrOptions,
    for_uid: &str,
) -> Result<Obj> {
    let r = &a.report;
    let mut items = vec![
        text(
            HAS_OBS_CONTEXT,
            &codes::TRACKING_IDENTIFIER,
            &format!("{}Finding {}", o.tracking_identifier_prefix, f.id),
        ),
        uidref(HAS_OBS_CONTEXT, &codes::TRACKING_UID, &f.tracking_uid),
        code(
            CONTAINS,
            &codes::FINDING_CATEGORY,
            &codes::MORPHOLOGICALLY_ABNORMAL_STRUCTURE,
        ),
        code(CONTAINS, &codes::FINDING, &codes::finding_kind(f.kind)),
    ];
    // Finding site: the lobe when the approximation gives one, else the lung;
    // each with its laterality, and Subpleural for juxtapleural findings.
    let laterality = codes::side(f.location.side);
    let site = codes::lobe(f.location.lobe).unwrap_or(codes::LUNG);
    items.push(with_children(
        code(HAS_CONCEPT_MOD, &codes::FINDING_SITE, &site),
        vec![code(HAS_CONCEPT_MOD, &codes::LATERALITY, &laterality)],
    ));
    if f.location.juxtapleural {
        items.push(with_children(
            code(HAS_CONCEPT_MOD, &codes::FINDING_SITE, &codes::SUBPLEURAL),
            vec![code(HAS_CONCEPT_MOD, &codes::LATERALITY, &laterality)],
        ));
    }
    // TID 4019 for the group: the model that found and scored it.
    items.push(text(HAS_CONCEPT_MOD, &codes::ALGORITHM_NAME, &r.model.name));
    items.push(text(
        HAS_CONCEPT_MOD,
        &codes::ALGORITHM_VERSION,
        &r.model.version,
    ));
    for p in [
        format!("sha256={}", r.model.sha256),
        format!("runtime={}", r.model.runtime),
        format!("pipeline={} {}", r.generator.name, r.generator.version),
    ] {
        items.push(text(HAS_CONCEPT_MOD, &codes::ALGORITHM_PARAMETERS, &p));
    }
    items.push(code(
        HAS_CONCEPT_MOD,
        &codes::ALGORITHM_FAMILY,
        &codes::ARTIFICIAL_INTELLIGENCE,
    ));

    // The region: the SEG segment, or a point at the centre.
    let source_series = uidref(
        CONTAINS,
        &codes::SOURCE_SERIES_FOR_SEGMENTATION,
        &a.series.meta.series_instance_uid,
    );
    match &o.segmentation {
        Some(sg) => {
            items.push(image(
                CONTAINS,
                Some(&codes::REFERENCED_SEGMENT),
                seg::SOP_CLASS_UID,
                &sg.sop_instance_uid,
                None,
                Some(i as u16 + 1),
            ));
            items.push(source_series);
        }
        None => {
            items.push(scoord3d(
                CONTAINS,
                &codes::VOLUME_SURFACE,
                "POINT",
                &[f.center_lps_mm],
                for_uid,
            ));
            items.push(source_series);
        }
    }

    // Measurements.
    let slice = a.series.slices.get(f.slice_index);
    let geometry = &a.series.volume.geometry;
    let axis_sources = |axis: [[f64; 3]; 2]| -> Vec<Obj> {
        let mut v = Vec::new();
        if let Some(s) = slice {
            // The axis on its slice in pixel coordinates (2-D SCOORD, TID 320):
            // what viewers draw. Only the 2-D one: a SCOORD3D beside it makes
            // OHIF 3.13 read the 3-D path, where it finds no image and shows no
            // values; the slice's geometry places the 2-D points in 3-D.
            let points = axis.map(|p| {
                let [x, y, _] = geometry.patient_to_voxel(p);
                pixel_point(x, y)
            });
            v.push(scoord_on_image(INFERRED_FROM, "POLYLINE", &points, s));
        } else {
            v.push(scoord3d(
                INFERRED_FROM,
                &codes::SOURCE,
                "POLYLINE",
                &axis,
                for_uid,
            ));
        }
        if let Some(s) = slice {
            v.push(slice_image(
                INFERRED_FROM,
                Some(&codes::SOURCE_OF_MEASUREMENT),
                s,
            ));
        }
        v
    };
    // Per measurement (TID 300): the algorithm that made it (TID 4019).
    let measured = || algorithm(MEASURE_ALGORITHM, &r.generator.version, &[]);
    let model = || {
        let mut v = algorithm(&r.model.name, &r.model.version, &[]);
        v.push(code(
            HAS_CONCEPT_MOD,
            &codes::ALGORITHM_FAMILY,
            &codes::ARTIFICIAL_INTELLIGENCE,
        ));
        v
    };
    let mean = || {
        let mut v = vec![code(HAS_CONCEPT_MOD, &codes::DERIVATION, &codes::MEAN)];
        v.extend(measured());
        v
    };
    let with_axis = |axis: [[f64; 3]; 2]| {
        let mut v = measured();
        v.extend(axis_sources(axis));
        v
    };
    items.push(with_children(
        num(CONTAINS, &codes::LONG_AXIS, f.long_axis_mm, &codes::UNIT_MM),
        with_axis(f.axes_lps_mm[0]),
    ));
    items.push(with_children(
        num(
            CONTAINS,
            &codes::SHORT_AXIS,
            f.short_axis_mm,
            &codes::UNIT_MM,
        ),
        with_axis(f.axes_lps_mm[1]),
    ));
    items.push(with_children(
        num(CONTAINS, &codes::DIAMETER, f.diameter_mm, &codes::UNIT_MM),
        mean(),
    ));
    items.push(with_children(
        num(CONTAINS, &codes::VOLUME, f.volume_mm3, &codes::UNIT_MM3),
        measured(),
    ));
    items.push(with_children(
        num(
            CONTAINS,
            &codes::ATTENUATION_COEFFICIENT,
            f.mean_hu,
            &codes::UNIT_HU,
        ),
        mean(),
    ));
    if let (NoduleType::PartSolid, Some(s)) = (f.nodule_type, f.solid_component_mm) {
        items.push(with_children(
            num(
                CONTAINS,
                &codes::SOLID_COMPONENT_DIAMETER,
                s,
                &codes::UNIT_MM,
            ),
            measured(),
        ));
    }
    items.push(with_children(
        num(
            CONTAINS,
            &codes::CERTAINTY_OF_FINDING,
            f.nodule_probability,
            &codes::UNIT_ONE,
        ),
        model(),
    ));
    // The AI score under its own concept; the Brock probability under the
    // standard "Probability of cancer" with the Brock model as method.
    items.push(with_children(
        num(
            CONTAINS,
            &codes::AI_MALIGNANCY_SCORE,
            f.malignancy_probability,
            &codes::UNIT_ONE,
        ),
        model(),
    ));
    let yes = |v: bool| if v { "yes" } else { "no" };
    let p = &r.patient;
    let mut brock_params = Vec::new();
    if let Some(b) = &f.brock {
        brock_params.extend([
            format!("nodule size = {} {} mm", b.diameter_source, b.diameter_mm),
            format!(
                "upper lobe = {} ({})",
                yes(b.upper_lobe),
                b.upper_lobe_source
            ),
            format!("nodule count = {}", b.nodule_count),
            format!("spiculation = {}", yes(b.spiculation)),
        ]);
    }
    brock_params.extend([
        format!("age = {} ({})", p.age_years, p.age_source),
        format!("female = {} ({})", yes(p.female), p.sex_source),
        format!(
            "family history = {} ({})",
            yes(p.family_history),
            p.history_source
        ),
        format!("emphysema = {}", yes(p.emphysema)),
    ]);
    if let Some(alt) = f.brock.as_ref().and_then(|b| b.probability_if_upper_lobe) {
        brock_params.push(format!("probability if upper lobe = {alt}"));
    }
    let mut brock_children = vec![code(
        HAS_CONCEPT_MOD,
        &codes::MEASUREMENT_METHOD,
        &codes::BROCK_MODEL,
    )];
    brock_children.extend(algorithm(BROCK_ALGORITHM, BROCK_VERSION, &brock_params));
    items.push(with_children(
        num(
            CONTAINS,
            &codes::PROBABILITY_OF_CANCER,
            f.brock_probability,
            &codes::UNIT_ONE,
        ),
        brock_children,
    ));

    // Qualitative evaluations.
    items.push(code(
        CONTAINS,
        &codes::NODULE_TYPE,
        &codes::nodule_type(f.nodule_type),
    ));
    if let Some(c) = &f.calcification {
        items.push(with_children(
            code(
                CONTAINS,
                &codes::CALCIFICATION_PATTERN,
                &codes::calcification(c.pattern),
            ),
            vec![text(HAS_PROPERTIES, &codes::COMMENT, &c.reason)],
        ));
    }
    let mut rads_children = vec![
        text(
            HAS_PROPERTIES,
            &codes::LUNG_RADS_REASON,
            &f.lung_rads_reason,
        ),
        text(
            HAS_PROPERTIES,
            &codes::LUNG_RADS_MANAGEMENT,
            &f.lung_rads_management,
        ),
    ];
    rads_children.extend(algorithm(RADS_ALGORITHM, &r.generator.version, &[]));
    items.push(with_children(
        code(
            CONTAINS,
            &codes::ASSESSMENT_CATEGORY,
            &codes::lung_rads(Some(f.lung_rads)),
        ),
        rads_children,
    ));
    items.push(text(
        CONTAINS,
        &codes::SOURCE_IMAGE_LOCATION,
        &image_location(f),
    ));
    let reasons = f
        .triage_reasons
        .iter()
        .map(|t| text(HAS_PROPERTIES, &codes::TRIAGE_REASON, t))
        .collect();
    if let Some(band) = f.triage_band {
        items.push(with_children(
            code(CONTAINS, &codes::PRIORITY, &codes::priority(band)),
            reasons,
        ));
    }

    Ok(container(
        CONTAINS,
        &codes::MEASUREMENT_GROUP,
        Some("1411"),
        items,
    ))
}

/// Name of the opacity stage (TID 4019 on its measurements).
pub const OPACITY_ALGORITHM: &str = "ct-triage opacities";

/// The diffuse-opacity measurement groups (none when the opacity stage did
/// not run):
///
/// - per opacity type with voxels, a TID 1411 group (TID 1501 without a SEG)
///   "Ground glass opacity" / "Consolidation": Finding = that type, Finding
///   Site = Lung, the SEG segment ([`seg::opacity_segments`]), NUM Volume
///   [cm3] of both lungs, and per lung (Finding Site Lung + Laterality on the
///   NUM) its Volume [cm3] and Percent of lung volume [%];
/// - one TID 1501 group "Diffuse lung opacities": Finding = Opacity, the CT
///   severity score (Pan 2020, 0-25), %LAA-950 and the distribution in words.
///
/// Every value is the report's (`report.opacities`); every NUM names the
/// algorithm that made it.
fn opacity_groups(a: &Analysis, o: &SrOptions) -> Vec<Obj> {
    let (Some(op), Some(map)) = (&a.report.opacities, &a.opacity_map) else {
        return Vec::new();
    };
    let r = &a.report;
    // Each NUM is INFERRED FROM a point inside the opacity on its most affected
    // slice (TID 300 → TID 320, SELECTED FROM that image): viewers place the
    // values there, and OHIF 3.13 needs a coordinate in every measurement
    // group (a group without one stops its viewer).
    let anchor = |label: Option<u8>| {
        map.anchor(label).and_then(|(z, x, y)| {
            a.series.slices.get(z).map(|s| {
                scoord_on_image(
                    INFERRED_FROM,
                    "POINT",
                    &[pixel_point(x as f64, y as f64)],
                    s,
                )
            })
        })
    };
    let alg = || algorithm(OPACITY_ALGORITHM, &r.generator.version, &[]);
    let family = || {
        code(
            HAS_CONCEPT_MOD,
            &codes::ALGORITHM_FAMILY,
            &codes::MORPHOLOGICAL_OPERATIONS,
        )
    };
    let lung_site = || code(HAS_CONCEPT_MOD, &codes::FINDING_SITE, &codes::LUNG);
    let measured = |name: &Code, value: f64, unit: &Code, side: Option<Side>, at: &Obj| {
        let mut children = Vec::new();
        if let Some(side) = side {
            children.push(with_children(
                lung_site(),
                vec![code(
                    HAS_CONCEPT_MOD,
                    &codes::LATERALITY,
                    &codes::side(side),
                )],
            ));
        }
        children.extend(alg());
        children.push(at.clone());
        with_children(num(CONTAINS, name, value, unit), children)
    };
    let mut out = Vec::new();
    for sg in seg::opacity_segments(a) {
        let Some(at) = anchor(Some(sg.label)) else {
            continue;
        };
        let ggo = sg.label == ct_triage_analysis::opacities::GROUND_GLASS;
        let ml = |l: &ct_triage_analysis::report::LungOpacity| {
            if ggo {
                l.ground_glass_ml
            } else {
                l.consolidation_ml
            }
        };
        let pct = |l: &ct_triage_analysis::report::LungOpacity| {
            if ggo {
                l.ground_glass_percent
            } else {
                l.consolidation_percent
            }
        };
        let mut items = vec![
            text(HAS_OBS_CONTEXT, &codes::TRACKING_IDENTIFIER, sg.name),
            uidref(HAS_OBS_CONTEXT, &codes::TRACKING_UID, &sg.tracking_uid),
            code(
                CONTAINS,
                &codes::FINDING_CATEGORY,
                &codes::MORPHOLOGICALLY_ABNORMAL_STRUCTURE,
            ),
            code(CONTAINS, &codes::FINDING, &sg.code),
            lung_site(),
        ];
        items.extend(algorithm(
            OPACITY_ALGORITHM,
            &r.generator.version,
            std::slice::from_ref(&op.method),
        ));
        items.push(family());
        let template = if let Some(s) = &o.segmentation {
            items.push(image(
                CONTAINS,
                Some(&codes::REFERENCED_SEGMENT),
                seg::SOP_CLASS_UID,
                &s.sop_instance_uid,
                None,
                Some(sg.number),
            ));
            items.push(uidref(
                CONTAINS,
                &codes::SOURCE_SERIES_FOR_SEGMENTATION,
                &a.series.meta.series_instance_uid,
            ));
            "1411"
        } else {
            "1501"
        };
        items.push(measured(
            &codes::VOLUME,
            round3(ml(&op.right) + ml(&op.left)),
            &codes::UNIT_CM3,
            None,
            &at,
        ));
        for (side, lung) in [(Side::Right, &op.right), (Side::Left, &op.left)] {
            items.push(measured(
                &codes::VOLUME,
                ml(lung),
                &codes::UNIT_CM3,
                Some(side),
                &at,
            ));
            items.push(measured(
                &codes::PERCENT_OF_LUNG,
                pct(lung),
                &codes::UNIT_PERCENT,
                Some(side),
                &at,
            ));
        }
        out.push(container(
            CONTAINS,
            &codes::MEASUREMENT_GROUP,
            Some(template),
            items,
        ));
    }
    // The pattern as a whole (where there is an opacity to anchor it).
    let Some(at) = anchor(None) else {
        return out;
    };
    let mut items = vec![
        text(
            HAS_OBS_CONTEXT,
            &codes::TRACKING_IDENTIFIER,
            "Diffuse lung opacities",
        ),
        uidref(
            HAS_OBS_CONTEXT,
            &codes::TRACKING_UID,
            &uid::hash_uid(&[
                b"ct-triage/opacity-tracking",
                a.series.meta.series_instance_uid.as_bytes(),
                b"pattern",
            ]),
        ),
        code(CONTAINS, &codes::FINDING, &codes::OPACITY),
        lung_site(),
    ];
    items.extend(algorithm(OPACITY_ALGORITHM, &r.generator.version, &[]));
    items.push(family());
    let mut css = vec![text(HAS_CONCEPT_MOD, &codes::COMMENT, &op.lobe_method)];
    css.extend(algorithm(
        OPACITY_ALGORITHM,
        &r.generator.version,
        &["Pan et al., Radiology 2020;295:715-721: 0-5 per lobe by percent involvement".into()],
    ));
    css.push(at.clone());
    items.push(with_children(
        num(
            CONTAINS,
            &codes::CT_SEVERITY_SCORE,
            op.ct_severity_score as f64,
            &codes::UNIT_ONE,
        ),
        css,
    ));
    items.push(measured(
        &codes::LAA950,
        op.emphysema_laa950_percent,
        &codes::UNIT_PERCENT,
        None,
        &at,
    ));
    items.push(text(
        CONTAINS,
        &codes::OPACITY_DISTRIBUTION,
        &distribution_text(op),
    ));
    out.push(container(
        CONTAINS,
        &codes::MEASUREMENT_GROUP,
        Some("1501"),
        items,
    ));
    out
}

/// The diffuse-opacity pattern in words: the exam-level summary and the
/// pattern group's distribution.
pub fn distribution_text(op: &ct_triage_analysis::report::Opacities) -> String {
    let d = &op.distribution;
    let zone = d
        .predominant_zone
        .map_or("none".to_string(), |z| format!("{z:?}").to_lowercase());
    format!(
        "ground glass R {:.1} mL, L {:.1} mL; consolidation R {:.1} mL, L {:.1} mL; CT severity \
         score {}/25 (Pan 2020); laterality {}; axial {} ({:.0} % of the opacity within {} mm of \
         the pleura, {:.0} % of the lung); predominant zone {zone}",
        op.right.ground_glass_ml,
        op.left.ground_glass_ml,
        op.right.consolidation_ml,
        op.left.consolidation_ml,
        op.ct_severity_score,
        d.laterality,
        d.axial,
        d.peripheral_share * 100.0,
        d.peripheral_mm,
        d.lung_peripheral_share * 100.0
    )
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// TID 1500 row 12: the exam-level Lung-RADS (with its reason and management),
/// the triage priority (score, reasons, rule set), the disclaimer, every
/// stated limit and every warning.
fn exam_evaluations(a: &Analysis) -> Obj {
    let r = &a.report;
    let e = &r.exam;
    let mut props = vec![num(
        HAS_PROPERTIES,
        &codes::TRIAGE_SCORE,
        e.triage_score,
        &codes::UNIT_ONE,
    )];
    for reason in e.triage_reasons.iter().chain(e.inconclusive_reason.iter()) {
        props.push(text(HAS_PROPERTIES, &codes::TRIAGE_REASON, reason));
    }
    props.push(text(
        HAS_PROPERTIES,
        &codes::TRIAGE_RULE_SET,
        &e.triage_rule_set,
    ));
    let mut rads = vec![text(
        HAS_PROPERTIES,
        &codes::LUNG_RADS_REASON,
        &e.lung_rads_reason,
    )];
    if !e.management.is_empty() {
        rads.push(text(
            HAS_PROPERTIES,
            &codes::LUNG_RADS_MANAGEMENT,
            &e.management,
        ));
    }
    rads.push(text(
        HAS_PROPERTIES,
        &codes::COMMENT,
        ct_triage_analysis::lungrads::MANAGEMENT_NOTE,
    ));
    let mut items = vec![
        with_children(
            code(
                CONTAINS,
                &codes::ASSESSMENT_CATEGORY,
                &codes::lung_rads(e.lung_rads),
            ),
            rads,
        ),
        with_children(
            code(
                CONTAINS,
                &codes::PRIORITY,
                &codes::priority(e.triage_priority),
            ),
            props,
        ),
        text(CONTAINS, &codes::COMMENT, DISCLAIMER),
    ];
    if let Some(op) = &r.opacities {
        items.push(text(
            CONTAINS,
            &codes::OPACITY_DISTRIBUTION,
            &format!("Diffuse opacities: {}", distribution_text(op)),
        ));
    }
    for l in &r.limits {
        items.push(text(CONTAINS, &codes::LIMITATION, l));
    }
    for w in &r.warnings {
        let sev = match w.severity {
            crate::ingest::Severity::Info => "info",
            crate::ingest::Severity::Warning => "warning",
        };
        items.push(text(
            CONTAINS,
            &codes::ANALYSIS_WARNING,
            &format!("[{sev}] {}: {}", w.code, w.message),
        ));
    }
    container(CONTAINS, &codes::QUALITATIVE_EVALUATIONS, None, items)
}

/// Name of the measurement algorithm (TID 4019 per measurement).
pub const MEASURE_ALGORITHM: &str = "ct-triage measure";
/// Name of the Lung-RADS rules (TID 4019 on each category).
pub const RADS_ALGORITHM: &str = "ct-triage Lung-RADS v2022 rules";
/// Name of the Brock model (TID 4019 on each Brock probability).
pub const BROCK_ALGORITHM: &str = "Brock University (PanCan) full model with spiculation";
/// Version of the Brock model: the publication it comes from.
pub const BROCK_VERSION: &str = "McWilliams et al., N Engl J Med 2013;369:910-919";

/// TID 4019 items: Algorithm Name, Version and Parameters.
fn algorithm(name: &str, version: &str, params: &[String]) -> Vec<Obj> {
    let mut v = vec![
        text(HAS_CONCEPT_MOD, &codes::ALGORITHM_NAME, name),
        text(HAS_CONCEPT_MOD, &codes::ALGORITHM_VERSION, version),
    ];
    for p in params {
        v.push(text(HAS_CONCEPT_MOD, &codes::ALGORITHM_PARAMETERS, p));
    }
    v
}

/// "series S, image N" of a finding (what PACS shows), with the 0-based slice index.
pub fn image_location(f: &Finding) -> String {
    let series = f
        .series_number
        .map_or("series ?".to_string(), |n| format!("series {n}"));
    let image = f
        .image_number
        .map_or("image ?".to_string(), |n| format!("image {n}"));
    format!("{series}, {image} (slice index {})", f.slice_index)
}

// ---- content items ----

pub(crate) const CONTAINS: &str = "CONTAINS";
pub(crate) const HAS_CONCEPT_MOD: &str = "HAS CONCEPT MOD";
pub(crate) const HAS_OBS_CONTEXT: &str = "HAS OBS CONTEXT";
const HAS_ACQ_CONTEXT: &str = "HAS ACQ CONTEXT";
const HAS_PROPERTIES: &str = "HAS PROPERTIES";
const INFERRED_FROM: &str = "INFERRED FROM";
const SELECTED_FROM: &str = "SELECTED FROM";

pub(crate) fn put_template(o: &mut Obj, tid: &str) {
    let mut t = Obj::new_empty();
    put_str(&mut t, tags::MAPPING_RESOURCE, VR::CS, "DCMR");
    put_str(&mut t, tags::TEMPLATE_IDENTIFIER, VR::CS, tid);
    put_seq(o, tags::CONTENT_TEMPLATE_SEQUENCE, vec![t]);
}

pub(crate) fn item(rel: &str, value_type: &str, name: Option<&Code>) -> Obj {
    let mut o = Obj::new_empty();
    put_str(&mut o, tags::RELATIONSHIP_TYPE, VR::CS, rel);
    put_str(&mut o, tags::VALUE_TYPE, VR::CS, value_type);
    if let Some(n) = name {
        put_code(&mut o, tags::CONCEPT_NAME_CODE_SEQUENCE, n);
    }
    o
}

pub(crate) fn with_children(mut o: Obj, children: Vec<Obj>) -> Obj {
    if !children.is_empty() {
        put_seq(&mut o, tags::CONTENT_SEQUENCE, children);
    }
    o
}

pub(crate) fn container(rel: &str, name: &Code, template: Option<&str>, children: Vec<Obj>) -> Obj {
    let mut o = item(rel, "CONTAINER", Some(name));
    put_str(&mut o, tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE");
    if let Some(t) = template {
        put_template(&mut o, t);
    }
    with_children(o, children)
}

pub(crate) fn text(rel: &str, name: &Code, value: &str) -> Obj {
    let mut o = item(rel, "TEXT", Some(name));
    put_str(&mut o, tags::TEXT_VALUE, VR::UT, value);
    o
}

pub(crate) fn code(rel: &str, name: &Code, value: &Code) -> Obj {
    let mut o = item(rel, "CODE", Some(name));
    put_code(&mut o, tags::CONCEPT_CODE_SEQUENCE, value);
    o
}

pub(crate) fn uidref(rel: &str, name: &Code, value: &str) -> Obj {
    let mut o = item(rel, "UIDREF", Some(name));
    put_str(&mut o, tags::UID, VR::UI, value);
    o
}

/// A NUM item; the value is written as DS and, when DS cannot hold it
/// exactly, also as FloatingPointValue (FD).
fn num(rel: &str, name: &Code, value: f64, unit: &Code) -> Obj {
    let mut mv = Obj::new_empty();
    put_code(&mut mv, tags::MEASUREMENT_UNITS_CODE_SEQUENCE, unit);
    put_ds(&mut mv, tags::NUMERIC_VALUE, &[value]);
    if build::format_ds(value).parse::<f64>().ok() != Some(value) {
        put_fd(&mut mv, tags::FLOATING_POINT_VALUE, &[value]);
    }
    let mut o = item(rel, "NUM", Some(name));
    put_seq(&mut o, tags::MEASURED_VALUE_SEQUENCE, vec![mv]);
    o
}

pub(crate) fn image(
    rel: &str,
    name: Option<&Code>,
    class: &str,
    inst: &str,
    frame: Option<u32>,
    segment: Option<u16>,
) -> Obj {
    let mut r = sop_ref(class, inst);
    if let Some(f) = frame {
        put_is(&mut r, tags::REFERENCED_FRAME_NUMBER, f as i64);
    }
    if let Some(s) = segment {
        build::put_us(&mut r, tags::REFERENCED_SEGMENT_NUMBER, &[s]);
    }
    let mut o = item(rel, "IMAGE", name);
    put_seq(&mut o, tags::REFERENCED_SOP_SEQUENCE, vec![r]);
    o
}

/// An IMAGE item referencing one source slice (its instance, and its frame
/// when the source is multi-frame).
pub(crate) fn slice_image(rel: &str, name: Option<&Code>, s: &SliceRef) -> Obj {
    image(
        rel,
        name,
        &s.sop_class_uid,
        &s.sop_instance_uid,
        s.frame_number,
        None,
    )
}

/// SCOORD (2-D) Graphic Data of a continuous voxel position (pixel centres at
/// integer indices): column/row with (0, 0) at the top left corner of the top
/// left pixel (PS3.3 C.18.6.1.1), so a pixel centre is at +0.5.
pub(crate) fn pixel_point(x: f64, y: f64) -> [f64; 2] {
    [x + 0.5, y + 0.5]
}

/// A 2-D SCOORD on one source image (its SELECTED FROM child).
fn scoord_on_image(rel: &str, graphic_type: &str, points: &[[f64; 2]], on: &SliceRef) -> Obj {
    let mut o = item(rel, "SCOORD", None);
    put_graphic(&mut o, graphic_type, points);
    with_children(o, vec![slice_image(SELECTED_FROM, None, on)])
}

fn scoord3d(rel: &str, name: &Code, graphic_type: &str, points: &[[f64; 3]], for_uid: &str) -> Obj {
    let mut o = item(rel, "SCOORD3D", Some(name));
    put_str(
        &mut o,
        tags::REFERENCED_FRAME_OF_REFERENCE_UID,
        VR::UI,
        for_uid,
    );
    put_graphic(&mut o, graphic_type, points);
    o
}

/// Graphic Type and Graphic Data (FL, the points' coordinates in order) of a
/// SCOORD or SCOORD3D item.
fn put_graphic<const N: usize>(o: &mut Obj, graphic_type: &str, points: &[[f64; N]]) {
    put_str(o, tags::GRAPHIC_TYPE, VR::CS, graphic_type);
    let data: Vec<f32> = points
        .iter()
        .flat_map(|p| p.iter().map(|&v| v as f32))
        .collect();
    put_fl(o, tags::GRAPHIC_DATA, &data);
}
