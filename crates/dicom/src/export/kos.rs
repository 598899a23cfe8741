//! Key Object Selection document (PS3.3 A.35.4, TID 2010): the images worth
//! opening, as a PACS shows them in its key-image list.
//!
//! ```text
//! CONTAINER (113000, DCM, "Of Interest")                         TID 2010
//!  ├ HAS CONCEPT MOD  Language = en-US                            TID 1204
//!  ├ HAS OBS CONTEXT  Observer Type = Device, Device Observer UID/Name
//!  ├ CONTAINS TEXT    Key Object Description: one line per finding
//!  │                  (number, type, size, Lung-RADS, series/image number)
//!  └ CONTAINS IMAGE   per finding: the source CT slice it was measured on,
//!                     then its two Secondary Capture key images (overview, zoom)
//! ```
//!
//! The Current Requested Procedure Evidence Sequence lists every referenced
//! instance by study and series (the CT series and the key image series).

use dicom_core::VR;
use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, InMemDicomObject};

use super::build::{self, Obj, put_is, put_seq, put_str};
use super::codes;
use super::header::{SeriesHeader, series_options};
use super::sc::{self, Panel, ScOptions};
use super::sr::{
    CONTAINS, document_context, image, put_template, series_ref, slice_image, sop_ref, text,
};
use super::{ContentDateTime, object_uids};
use crate::error::Result;
use ct_triage_analysis::report::Analysis;
use ct_triage_analysis::report::key_images::image_caption;

/// Key Object Selection Document Storage.
pub const SOP_CLASS_UID: &str = "1.2.840.10008.5.1.4.1.1.88.59";

/// Options of the KOS writer: the series header only (default Series Number
/// 9004, Series Description "ct-triage key objects"); its builder methods
/// come from [`SeriesOptions`](super::SeriesOptions).
#[derive(Debug, Clone, PartialEq)]
pub struct KosOptions {
    /// Series header.
    pub header: SeriesHeader,
}

impl Default for KosOptions {
    fn default() -> Self {
        KosOptions {
            header: SeriesHeader::new(9004, "ct-triage key objects"),
        }
    }
}

series_options!(KosOptions);

impl KosOptions {
    /// Defaults.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Series and SOP Instance UID of the KOS (the Series Instance UID of the
/// options when set).
pub fn uids(a: &Analysis, o: &KosOptions, when: &ContentDateTime) -> (String, String) {
    object_uids(a, "kos", o.header.series_instance_uid.as_ref(), None, when)
}

/// The KOS referencing each finding's source slice and its key images written
/// with `sc` options (their UIDs must match the SC objects exported beside it);
/// `key_images`: whether the SC objects are written (else only the CT slices
/// are referenced), and the most affected slice of the diffuse opacities with
/// its key image. `None` when there is neither a finding nor an opacity.
pub fn key_object_selection(
    a: &Analysis,
    o: &KosOptions,
    sc_opts: &ScOptions,
    key_images: bool,
) -> Result<Option<FileDicomObject<InMemDicomObject>>> {
    let what = "key-objects.kos.dcm";
    let r = &a.report;
    let opacity = r
        .opacities
        .as_ref()
        .and_then(|o| o.most_affected_slice.as_ref().map(|m| (o, m)))
        .filter(|_| a.opacity_map.as_ref().is_some_and(|m| !m.is_empty()));
    if r.findings.is_empty() && opacity.is_none() {
        return Ok(None);
    }
    let when = o.header.when();
    let sc_when = sc_opts.header.when_or(&when);
    let (series_uid, sop_uid) = uids(a, o, &when);
    let meta = &a.series.meta;

    let mut ds = Obj::new_empty();
    build::put_sop_common(&mut ds, SOP_CLASS_UID, &sop_uid, &when);
    build::put_patient_study(&mut ds, meta);
    // Key Object Document Series.
    o.header.put_series(&mut ds, "KO", &series_uid);
    put_seq(
        &mut ds,
        tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE,
        vec![],
    );
    // General Equipment.
    put_str(&mut ds, tags::MANUFACTURER, VR::LO, &o.header.manufacturer);
    // Key Object Document.
    put_is(&mut ds, tags::INSTANCE_NUMBER, 1);
    put_str(&mut ds, tags::CONTENT_DATE, VR::DA, when.date());
    put_str(&mut ds, tags::CONTENT_TIME, VR::TM, when.time());

    // The referenced images, in finding order.
    let mut ct_refs: Vec<(String, String)> = Vec::new();
    let mut sc_refs: Vec<String> = Vec::new();
    let mut content = document_context(a);
    let mut lines = vec!["ct-triage AI findings (research software, not a diagnosis):".to_string()];
    let mut images = Vec::new();
    let mut sc_series = None;
    for f in &r.findings {
        lines.push(format!(
            "Finding {}: {} {:.1} mm, Lung-RADS {}, {}",
            f.id,
            f.nodule_type.as_str().replace('_', "-"),
            f.diameter_mm,
            f.lung_rads.as_str(),
            image_caption(f)
        ));
        source_slice(a, f.slice_index, &mut images, &mut ct_refs);
        if key_images && a.key_images.iter().any(|k| k.finding_id == f.id) {
            for panel in Panel::ALL {
                let (series, inst) = sc::uids(a, sc_opts, &sc_when, f.id, panel);
                images.push(image(CONTAINS, None, sc::SOP_CLASS_UID, &inst, None, None));
                sc_refs.push(inst);
                sc_series = Some(series);
            }
        }
    }
    if let Some((o, m)) = opacity {
        lines.push(format!(
            "Diffuse opacities (a pattern of attenuation): ground glass {:.1} mL, consolidation \
             {:.1} mL, CT severity score {}/25; most affected slice: image {}",
            o.right.ground_glass_ml + o.left.ground_glass_ml,
            o.right.consolidation_ml + o.left.consolidation_ml,
            o.ct_severity_score,
            m.image_number.map_or("?".to_string(), |n| n.to_string())
        ));
        source_slice(a, m.slice_index, &mut images, &mut ct_refs);
        if key_images && a.opacity_key_image.is_some() {
            let (series, inst) = sc::opacity_uids(a, sc_opts, &sc_when);
            images.push(image(CONTAINS, None, sc::SOP_CLASS_UID, &inst, None, None));
            sc_refs.push(inst);
            sc_series = Some(series);
        }
    }
    content.push(text(
        CONTAINS,
        &codes::KEY_OBJECT_DESCRIPTION,
        &lines.join("\n"),
    ));
    content.extend(images);

    // Current Requested Procedure Evidence: every referenced instance.
    let mut series = vec![series_ref(
        &meta.series_instance_uid,
        ct_refs.iter().map(|(c, i)| sop_ref(c, i)).collect(),
    )];
    if let Some(sc_series) = sc_series {
        series.push(series_ref(
            &sc_series,
            sc_refs
                .iter()
                .map(|i| sop_ref(sc::SOP_CLASS_UID, i))
                .collect(),
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
    put_seq(
        &mut ds,
        tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE,
        vec![study],
    );

    // SR Document Content.
    put_str(&mut ds, tags::VALUE_TYPE, VR::CS, "CONTAINER");
    build::put_code(
        &mut ds,
        tags::CONCEPT_NAME_CODE_SEQUENCE,
        &codes::OF_INTEREST,
    );
    put_str(&mut ds, tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE");
    put_template(&mut ds, "2010");
    put_seq(&mut ds, tags::CONTENT_SEQUENCE, content);
    build::to_file(ds, what).map(Some)
}

/// Reference source slice `z` from the KOS content (once per image item) and
/// list its instance once in the evidence.
fn source_slice(
    a: &Analysis,
    z: usize,
    images: &mut Vec<Obj>,
    ct_refs: &mut Vec<(String, String)>,
) {
    if let Some(s) = a.series.slices.get(z) {
        images.push(slice_image(CONTAINS, None, s));
        if !ct_refs.iter().any(|(_, i)| i == &s.sop_instance_uid) {
            ct_refs.push((s.sop_class_uid.clone(), s.sop_instance_uid.clone()));
        }
    }
}
