//! The DICOM writers on the real lung1 series with hand-built findings: the
//! objects parse back with dicom-rs, the SR tree holds every reported value,
//! the SEG frames decode to exactly the masks, the key images to exactly the
//! PNGs, output is deterministic, and de-identification removes what the
//! profile says. (External readers — dcmtk, highdicom, Orthanc — are in
//! `tests/tests/interop_dicom.rs`.)

mod dicom_fixture;

use std::io::Cursor;
use std::sync::OnceLock;

use ct_triage_core::measure::FindingMask;
use ct_triage_core::opacities;
use ct_triage_core::pipeline::Analysis;
use ct_triage_core::report::dicom::{
    self, ContentDateTime, DatePolicy, DeidOptions, ExportOptions, ObjectKind, SegOptions,
    SeriesOptions, SrOptions, UidMapper, codes, deid, sc, seg, sr,
};
use ct_triage_core::report::key_images;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use ndarray::s;

/// Crop a mask to the bounding box of its voxels (non-zero origin).
fn crop(m: FindingMask) -> FindingMask {
    let v = dicom_fixture::voxels(&m);
    let lo = [0, 1, 2].map(|a| v.iter().map(|p| p[a]).min().unwrap());
    let hi = [0, 1, 2].map(|a| v.iter().map(|p| p[a]).max().unwrap());
    let [ox, oy, oz] = m.origin_xyz;
    let mask = m
        .mask
        .slice(s![
            lo[2] - oz..=hi[2] - oz,
            lo[1] - oy..=hi[1] - oy,
            lo[0] - ox..=hi[0] - ox
        ])
        .to_owned();
    FindingMask {
        origin_xyz: lo,
        mask,
    }
}

fn fixture() -> &'static Analysis {
    static A: OnceLock<Analysis> = OnceLock::new();
    A.get_or_init(|| dicom_fixture::analysis_with(crop))
}

fn when() -> ContentDateTime {
    ContentDateTime::new("20240102", "030405").unwrap()
}

fn parse(bytes: &[u8]) -> DefaultDicomObject {
    OpenFileOptions::new()
        .from_reader(Cursor::new(bytes))
        .expect("parses back")
}

fn str_of(o: &InMemDicomObject, t: Tag) -> String {
    o.element(t)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches(['\0', ' '])
        .to_string()
}

fn items(o: &InMemDicomObject, t: Tag) -> &[InMemDicomObject] {
    o.element(t).ok().and_then(|e| e.items()).unwrap_or(&[])
}

fn code_of(o: &InMemDicomObject, t: Tag) -> (String, String) {
    let c = &items(o, t)[0];
    (
        str_of(c, tags::CODE_VALUE),
        str_of(c, tags::CODING_SCHEME_DESIGNATOR),
    )
}

fn name_is(o: &InMemDicomObject, c: &codes::Code) -> bool {
    !items(o, tags::CONCEPT_NAME_CODE_SEQUENCE).is_empty()
        && code_of(o, tags::CONCEPT_NAME_CODE_SEQUENCE) == (c.value.into(), c.scheme.into())
}

fn children(o: &InMemDicomObject) -> &[InMemDicomObject] {
    items(o, tags::CONTENT_SEQUENCE)
}

fn num_value(o: &InMemDicomObject) -> f64 {
    let mv = &items(o, tags::MEASURED_VALUE_SEQUENCE)[0];
    if let Ok(e) = mv.element(tags::FLOATING_POINT_VALUE) {
        return e.to_float64().unwrap();
    }
    str_of(mv, tags::NUMERIC_VALUE).parse().unwrap()
}

fn has_child_code(o: &InMemDicomObject, name: &codes::Code, value: &codes::Code) -> bool {
    children(o).iter().any(|c| {
        name_is(c, name)
            && code_of(c, tags::CONCEPT_CODE_SEQUENCE) == (value.value.into(), value.scheme.into())
    })
}

#[test]
fn sr_tree_holds_every_reported_value() {
    let a = fixture();
    let bytes = sr::measurement_report(a, &SrOptions::new().content(when())).unwrap();
    let obj = parse(&bytes);
    assert_eq!(str_of(&obj, tags::SOP_CLASS_UID), sr::SOP_CLASS_UID);
    assert_eq!(str_of(&obj, tags::MODALITY), "SR");
    assert_eq!(
        str_of(&obj, tags::STUDY_INSTANCE_UID),
        a.series.meta.study_instance_uid
    );
    assert_eq!(str_of(&obj, tags::CONTENT_DATE), "20240102");
    assert!(name_is(&obj, &codes::IMAGING_MEASUREMENT_REPORT));
    let tid = &items(&obj, tags::CONTENT_TEMPLATE_SEQUENCE)[0];
    assert_eq!(str_of(tid, tags::TEMPLATE_IDENTIFIER), "1500");

    let root = children(&obj);
    let library = root
        .iter()
        .find(|c| name_is(c, &codes::IMAGE_LIBRARY))
        .unwrap();
    let images = children(&children(library)[0])
        .iter()
        .filter(|c| str_of(c, tags::VALUE_TYPE) == "IMAGE")
        .count();
    assert_eq!(images, a.series.slices.len());

    let measurements = root
        .iter()
        .find(|c| name_is(c, &codes::IMAGING_MEASUREMENTS))
        .unwrap();
    let groups = children(measurements);
    // The findings' groups, then two opacity types and the pattern group.
    assert_eq!(groups.len(), a.report.findings.len() + 3);
    for (g, f) in groups.iter().zip(&a.report.findings) {
        let t = &items(g, tags::CONTENT_TEMPLATE_SEQUENCE)[0];
        assert_eq!(str_of(t, tags::TEMPLATE_IDENTIFIER), "1411");
        let kids = children(g);
        let uidref = kids
            .iter()
            .find(|c| name_is(c, &codes::TRACKING_UID))
            .unwrap();
        assert_eq!(str_of(uidref, tags::UID), f.tracking_uid);
        let num = |c: &codes::Code| -> Vec<f64> {
            kids.iter()
                .filter(|k| name_is(k, c))
                .map(num_value)
                .collect()
        };
        assert_eq!(num(&codes::LONG_AXIS), vec![f.long_axis_mm]);
        assert_eq!(num(&codes::SHORT_AXIS), vec![f.short_axis_mm]);
        assert_eq!(num(&codes::DIAMETER), vec![f.diameter_mm]);
        assert_eq!(num(&codes::VOLUME), vec![f.volume_mm3]);
        assert_eq!(num(&codes::ATTENUATION_COEFFICIENT), vec![f.mean_hu]);
        assert_eq!(
            num(&codes::CERTAINTY_OF_FINDING),
            vec![f.nodule_probability]
        );
        // Issue 12: the AI score and the Brock probability have their own
        // concept names; Brock keeps the standard "Probability of cancer".
        assert_eq!(
            num(&codes::PROBABILITY_OF_CANCER),
            vec![f.brock_probability]
        );
        assert_eq!(
            num(&codes::AI_MALIGNANCY_SCORE),
            vec![f.malignancy_probability]
        );
        // Every measurement names the algorithm that made it (TID 300 → TID 4019).
        for k in kids.iter().filter(|k| str_of(k, tags::VALUE_TYPE) == "NUM") {
            let algo: Vec<String> = children(k)
                .iter()
                .filter(|c| {
                    name_is(c, &codes::ALGORITHM_NAME) || name_is(c, &codes::ALGORITHM_VERSION)
                })
                .map(|c| str_of(c, tags::TEXT_VALUE))
                .collect();
            assert_eq!(
                algo.len(),
                2,
                "{:?}",
                code_of(k, tags::CONCEPT_NAME_CODE_SEQUENCE)
            );
        }
        let brock = kids
            .iter()
            .find(|k| name_is(k, &codes::PROBABILITY_OF_CANCER))
            .unwrap();
        assert!(has_child_code(
            brock,
            &codes::MEASUREMENT_METHOD,
            &codes::BROCK_MODEL
        ));
        let texts = |c: &codes::Code| -> Vec<String> {
            kids.iter()
                .filter(|k| name_is(k, c))
                .map(|k| str_of(k, tags::TEXT_VALUE))
                .collect()
        };
        assert_eq!(
            texts(&codes::SOURCE_IMAGE_LOCATION),
            vec![sr::image_location(f)]
        );
        assert!(sr::image_location(f).starts_with(&format!(
            "series {}, image {}",
            f.series_number.unwrap(),
            f.image_number.unwrap()
        )));
        let rads = kids
            .iter()
            .find(|k| name_is(k, &codes::ASSESSMENT_CATEGORY))
            .unwrap();
        let mgmt: Vec<String> = children(rads)
            .iter()
            .filter(|c| name_is(c, &codes::LUNG_RADS_MANAGEMENT))
            .map(|c| str_of(c, tags::TEXT_VALUE))
            .collect();
        assert_eq!(mgmt, vec![f.lung_rads_management.clone()]);
        assert_eq!(
            num(&codes::SOLID_COMPONENT_DIAMETER),
            f.solid_component_mm.into_iter().collect::<Vec<_>>()
        );
        assert!(has_child_code(
            g,
            &codes::FINDING,
            &codes::finding_kind(f.kind)
        ));
        assert!(has_child_code(
            g,
            &codes::NODULE_TYPE,
            &codes::nodule_type(f.nodule_type)
        ));
        assert!(has_child_code(
            g,
            &codes::ASSESSMENT_CATEGORY,
            &codes::lung_rads(Some(f.lung_rads))
        ));
        let want_site = codes::lobe(f.location.lobe).unwrap_or(codes::LUNG);
        let site = kids
            .iter()
            .find(|k| {
                name_is(k, &codes::FINDING_SITE)
                    && code_of(k, tags::CONCEPT_CODE_SEQUENCE).0 == want_site.value
            })
            .unwrap();
        assert!(has_child_code(
            site,
            &codes::LATERALITY,
            &codes::side(f.location.side)
        ));
        // The long axis polyline: a 2-D SCOORD only (OHIF reads the 3-D path
        // when a SCOORD3D is there too and then shows no values).
        let long = kids.iter().find(|k| name_is(k, &codes::LONG_AXIS)).unwrap();
        assert!(
            !children(long)
                .iter()
                .any(|k| str_of(k, tags::VALUE_TYPE) == "SCOORD3D")
        );
        // … and as a 2-D SCOORD on its slice (pixel column/row, origin at the
        // top left corner of the top left pixel, PS3.3 C.18.6.1.1): mapped
        // back through the slice geometry it lands on the same endpoints.
        let s2 = children(long)
            .iter()
            .find(|k| str_of(k, tags::VALUE_TYPE) == "SCOORD")
            .expect("a 2-D SCOORD for the long axis");
        assert_eq!(str_of(s2, tags::GRAPHIC_TYPE), "POLYLINE");
        let cr = s2
            .element(tags::GRAPHIC_DATA)
            .unwrap()
            .to_multi_float32()
            .unwrap();
        assert_eq!(cr.len(), 4);
        let g = &a.series.volume.geometry;
        for (n, end) in f.axes_lps_mm[0].iter().enumerate() {
            let ijk = [
                cr[2 * n] as f64 - 0.5,
                cr[2 * n + 1] as f64 - 0.5,
                f.slice_index as f64,
            ];
            let back = g.voxel_to_patient(ijk);
            for k in 0..3 {
                assert!(
                    (back[k] - end[k]).abs() < 0.05,
                    "endpoint {n}: {back:?} vs {end:?}"
                );
            }
        }
        let sel = &children(s2)[0];
        assert_eq!(str_of(sel, tags::RELATIONSHIP_TYPE), "SELECTED FROM");
        assert_eq!(
            str_of(
                &items(sel, tags::REFERENCED_SOP_SEQUENCE)[0],
                tags::REFERENCED_SOP_INSTANCE_UID
            ),
            a.series.slices[f.slice_index].sop_instance_uid
        );
        let img = children(long)
            .iter()
            .find(|k| str_of(k, tags::VALUE_TYPE) == "IMAGE")
            .unwrap();
        let r = &items(img, tags::REFERENCED_SOP_SEQUENCE)[0];
        assert_eq!(
            str_of(r, tags::REFERENCED_SOP_INSTANCE_UID),
            a.series.slices[f.slice_index].sop_instance_uid
        );
    }
    let evals = root
        .iter()
        .find(|c| name_is(c, &codes::QUALITATIVE_EVALUATIONS))
        .unwrap();
    assert!(has_child_code(
        evals,
        &codes::ASSESSMENT_CATEGORY,
        &codes::LUNG_RADS_4A
    ));
    assert!(has_child_code(
        evals,
        &codes::PRIORITY,
        &codes::TRIAGE_PRIORITY
    ));
    // The disclaimer and every stated limit are in the document.
    let texts = |c: &codes::Code| -> Vec<String> {
        children(evals)
            .iter()
            .filter(|k| name_is(k, c))
            .map(|k| str_of(k, tags::TEXT_VALUE))
            .collect()
    };
    assert!(texts(&codes::COMMENT).contains(&ct_triage_core::report::DISCLAIMER.to_string()));
    assert_eq!(texts(&codes::LIMITATION), a.report.limits);
    assert_eq!(a.report.limits.len(), ct_triage_core::report::LIMITS.len());
    // The private scheme is declared.
    let scheme = &items(&obj, tags::CODING_SCHEME_IDENTIFICATION_SEQUENCE)[0];
    assert_eq!(
        str_of(scheme, tags::CODING_SCHEME_DESIGNATOR),
        codes::PRIVATE_SCHEME
    );
}

#[test]
fn export_is_deterministic_and_links_sr_to_seg() {
    let a = fixture();
    let o = ExportOptions::new().content(when());
    let x = dicom::export(a, &o).unwrap();
    let y = dicom::export(a, &o).unwrap();
    assert_eq!(x, y, "same input and time, same bytes");
    // For manual inspection: CTT_DICOM_OUT=/some/dir keeps the objects.
    if let Some(dir) = std::env::var_os("CTT_DICOM_OUT") {
        let dir = std::path::PathBuf::from(dir);
        for e in &x {
            let p = dir.join(&e.file);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, &e.bytes).unwrap();
        }
        std::fs::write(dir.join("report.json"), a.report.to_json()).unwrap();
    }
    let files: Vec<&str> = x.iter().map(|e| e.file.as_str()).collect();
    assert_eq!(
        files,
        [
            "report.sr.dcm",
            "findings.seg.dcm",
            "key-images/finding-1.sc.dcm",
            "key-images/finding-1-zoom.sc.dcm",
            "key-images/finding-2.sc.dcm",
            "key-images/finding-2-zoom.sc.dcm",
            "key-images/opacities.sc.dcm",
            "key-objects.kos.dcm"
        ]
    );
    let seg_uid = &x
        .iter()
        .find(|e| e.kind == ObjectKind::Seg)
        .unwrap()
        .sop_instance_uid;
    let sr = parse(&x[0].bytes);
    let groups = children(
        children(&sr)
            .iter()
            .find(|c| name_is(c, &codes::IMAGING_MEASUREMENTS))
            .unwrap(),
    );
    // Findings 1, 2 and the two opacity types reference segments 1..=4; the
    // pattern group (last) references none.
    assert_eq!(groups.len(), 5);
    for (i, g) in groups[..4].iter().enumerate() {
        let seg_ref = children(g)
            .iter()
            .find(|c| name_is(c, &codes::REFERENCED_SEGMENT))
            .unwrap();
        let r = &items(seg_ref, tags::REFERENCED_SOP_SEQUENCE)[0];
        assert_eq!(&str_of(r, tags::REFERENCED_SOP_INSTANCE_UID), seg_uid);
        let n = r
            .element(tags::REFERENCED_SEGMENT_NUMBER)
            .unwrap()
            .to_int::<u16>()
            .unwrap();
        assert_eq!(n as usize, i + 1);
    }
    // Another content time: new instances.
    let z = dicom::export(
        a,
        &ExportOptions::new().content(ContentDateTime::new("20240102", "030406").unwrap()),
    )
    .unwrap();
    assert_ne!(x[0].sop_instance_uid, z[0].sop_instance_uid);
}

#[test]
fn seg_frames_decode_to_the_masks() {
    let a = fixture();
    let bytes = seg::segmentation(a, &SegOptions::new().content(when()))
        .unwrap()
        .unwrap();
    let obj = parse(&bytes);
    let g = &a.series.volume.geometry;
    let (cols, rows) = (g.size[0], g.size[1]);
    assert_eq!(str_of(&obj, tags::SEGMENTATION_TYPE), "BINARY");
    assert_eq!(
        obj.element(tags::ROWS).unwrap().to_int::<usize>().unwrap(),
        rows
    );
    let frames = items(&obj, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    let n: usize = str_of(&obj, tags::NUMBER_OF_FRAMES).parse().unwrap();
    assert_eq!(frames.len(), n);
    let pixels = obj
        .element(tags::PIXEL_DATA)
        .unwrap()
        .to_bytes()
        .unwrap()
        .to_vec();
    assert_eq!(
        pixels.len(),
        (n * rows * cols).div_ceil(8).next_multiple_of(2)
    );
    let opacity = seg::opacity_segments(a);
    assert_eq!(
        opacity
            .iter()
            .map(|o| (o.number, o.label))
            .collect::<Vec<_>>(),
        [(3, opacities::GROUND_GLASS), (4, opacities::CONSOLIDATION)]
    );
    let map = a.opacity_map.as_ref().unwrap();
    let label_at = |label: u8, [x, y, z]: [usize; 3]| map.label_image(z)[y * cols + x] == label;
    let mut seen = vec![std::collections::BTreeSet::new(); a.masks.len() + opacity.len()];
    for (fi, fr) in frames.iter().enumerate() {
        let seg_no = items(fr, tags::SEGMENT_IDENTIFICATION_SEQUENCE)[0]
            .element(tags::REFERENCED_SEGMENT_NUMBER)
            .unwrap()
            .to_int::<usize>()
            .unwrap();
        let pos: Vec<f64> = items(fr, tags::PLANE_POSITION_SEQUENCE)[0]
            .element(tags::IMAGE_POSITION_PATIENT)
            .unwrap()
            .to_multi_float64()
            .unwrap();
        let z = g.patient_to_voxel([pos[0], pos[1], pos[2]])[2].round() as usize;
        let src = &items(
            &items(fr, tags::DERIVATION_IMAGE_SEQUENCE)[0],
            tags::SOURCE_IMAGE_SEQUENCE,
        )[0];
        assert_eq!(
            str_of(src, tags::REFERENCED_SOP_INSTANCE_UID),
            a.series.slices[z].sop_instance_uid
        );
        let inside = |v: [usize; 3]| match a.masks.get(seg_no - 1) {
            Some(m) => m.contains(v),
            None => label_at(opacity[seg_no - 1 - a.masks.len()].label, v),
        };
        for y in 0..rows {
            for x in 0..cols {
                let b = fi * rows * cols + y * cols + x;
                let bit = pixels[b / 8] >> (b % 8) & 1 == 1;
                assert_eq!(bit, inside([x, y, z]), "segment {seg_no} voxel {x},{y},{z}");
            }
        }
        assert!(
            seen[seg_no - 1].insert(z),
            "one frame per segment and slice"
        );
    }
    for (i, m) in a.masks.iter().enumerate() {
        let zs: std::collections::BTreeSet<usize> =
            dicom_fixture::voxels(m).iter().map(|v| v[2]).collect();
        assert_eq!(
            seen[i],
            zs,
            "frames exactly on the slices of finding {}",
            i + 1
        );
    }
}

#[test]
fn key_images_carry_the_png_pixels() {
    let a = fixture();
    let objs = sc::key_image_objects(a, &sc::ScOptions::new().content(when())).unwrap();
    assert_eq!(
        objs.len(),
        2 * a.key_images.len(),
        "overview and zoom per finding"
    );
    for (pair, k) in objs.chunks(2).zip(&a.key_images) {
        for (o, panel) in pair.iter().zip(sc::Panel::ALL) {
            assert_eq!(o.file, panel.file(k));
            let obj = parse(&o.bytes);
            let (png, spacing) = match panel {
                sc::Panel::Overview => (&k.panels.overview_png, k.panels.overview_spacing_mm),
                sc::Panel::Zoom => (&k.panels.zoom_png, k.panels.zoom_spacing_mm),
            };
            let png = image::load_from_memory(png).unwrap().to_rgb8();
            assert_eq!(str_of(&obj, tags::PHOTOMETRIC_INTERPRETATION), "RGB");
            let px = obj.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
            assert_eq!(&px[..png.as_raw().len()], png.as_raw().as_slice());
            // The text is burned in; each panel has its own pixel spacing.
            assert_eq!(str_of(&obj, tags::BURNED_IN_ANNOTATION), "YES");
            let ps = obj
                .element(tags::PIXEL_SPACING)
                .unwrap()
                .to_multi_float64()
                .unwrap();
            assert!((ps[0] - spacing[0]).abs() < 1e-9 && (ps[1] - spacing[1]).abs() < 1e-9);
            let src = &items(&obj, tags::SOURCE_IMAGE_SEQUENCE)[0];
            let f = a
                .report
                .findings
                .iter()
                .find(|f| f.id == k.finding_id)
                .unwrap();
            assert_eq!(
                str_of(src, tags::REFERENCED_SOP_INSTANCE_UID),
                a.series.slices[f.slice_index].sop_instance_uid
            );
        }
        // The overview keeps the source pixel size; the inset is magnified.
        let g = &a.series.volume.geometry;
        assert_eq!(k.panels.overview_spacing_mm, [g.spacing[1], g.spacing[0]]);
        assert!(k.panels.zoom_spacing_mm[0] < g.spacing[1] / 2.0);
    }
}

/// The Key Object Selection (TID 2010) points to every finding's source
/// slice and both of its key images, with the same UIDs as those objects.
#[test]
fn key_object_selection_points_to_the_key_images() {
    let a = fixture();
    let objs = dicom::export(a, &ExportOptions::new().content(when())).unwrap();
    let kos = objs
        .iter()
        .find(|o| o.kind == ObjectKind::KeyObjectSelection)
        .unwrap();
    assert_eq!(kos.sop_class_uid, dicom::kos::SOP_CLASS_UID);
    let obj = parse(&kos.bytes);
    assert_eq!(str_of(&obj, tags::MODALITY), "KO");
    assert!(name_is(&obj, &codes::OF_INTEREST));
    let tid = &items(&obj, tags::CONTENT_TEMPLATE_SEQUENCE)[0];
    assert_eq!(str_of(tid, tags::TEMPLATE_IDENTIFIER), "2010");
    let refs: Vec<String> = children(&obj)
        .iter()
        .filter(|c| str_of(c, tags::VALUE_TYPE) == "IMAGE")
        .map(|c| {
            str_of(
                &items(c, tags::REFERENCED_SOP_SEQUENCE)[0],
                tags::REFERENCED_SOP_INSTANCE_UID,
            )
        })
        .collect();
    let mut want = Vec::new();
    for f in &a.report.findings {
        want.push(a.series.slices[f.slice_index].sop_instance_uid.clone());
        for o in objs.iter().filter(|o| {
            o.kind == ObjectKind::KeyImage
                && o.file.starts_with(&format!("key-images/finding-{}", f.id))
                && (o.file.ends_with(&format!("finding-{}.sc.dcm", f.id))
                    || o.file.ends_with(&format!("finding-{}-zoom.sc.dcm", f.id)))
        }) {
            want.push(o.sop_instance_uid.clone());
        }
    }
    // The opacities' most affected slice and its key image.
    want.push(
        a.series.slices[dicom_fixture::OPACITY_SLICE]
            .sop_instance_uid
            .clone(),
    );
    want.push(
        objs.iter()
            .find(|o| o.file == dicom::sc::OPACITY_FILE)
            .unwrap()
            .sop_instance_uid
            .clone(),
    );
    assert_eq!(refs, want);
    let desc = children(&obj)
        .iter()
        .find(|c| name_is(c, &codes::KEY_OBJECT_DESCRIPTION))
        .map(|c| str_of(c, tags::TEXT_VALUE))
        .unwrap();
    for f in &a.report.findings {
        assert!(desc.contains(&format!("Finding {}:", f.id)), "{desc}");
        assert!(desc.contains(&key_images::image_caption(f)), "{desc}");
    }
    assert!(desc.contains("Diffuse opacities"), "{desc}");
    // Every referenced instance is listed in the evidence sequence.
    let evidence: Vec<String> = items(&obj, tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE)
        .iter()
        .flat_map(|st| items(st, tags::REFERENCED_SERIES_SEQUENCE))
        .flat_map(|se| items(se, tags::REFERENCED_SOP_SEQUENCE))
        .map(|r| str_of(r, tags::REFERENCED_SOP_INSTANCE_UID))
        .collect();
    for r in &refs {
        assert!(evidence.contains(r), "{r} not in the evidence");
    }
}

/// Issue 16: the opacity section in the SR — one TID 1411 group per opacity
/// type referencing its SEG segment with the volume of both lungs and per lung
/// (volume, percent of the lung), and a TID 1501 pattern group with the CT
/// severity score, %LAA-950 and the distribution; every value the report's.
#[test]
fn sr_opacity_groups_hold_the_opacity_section() {
    let a = fixture();
    let op = a.report.opacities.as_ref().unwrap();
    let seg_ref = sr::SegmentationRef {
        sop_instance_uid: "1.2.3.4".into(),
        series_instance_uid: "1.2.3".into(),
    };
    let bytes =
        sr::measurement_report(a, &SrOptions::new().content(when()).segmentation(seg_ref)).unwrap();
    let obj = parse(&bytes);
    let root = children(&obj);
    let measurements = root
        .iter()
        .find(|c| name_is(c, &codes::IMAGING_MEASUREMENTS))
        .unwrap();
    let groups = &children(measurements)[a.report.findings.len()..];
    assert_eq!(groups.len(), 3);
    let template = |g: &InMemDicomObject| {
        str_of(
            &items(g, tags::CONTENT_TEMPLATE_SEQUENCE)[0],
            tags::TEMPLATE_IDENTIFIER,
        )
    };
    let segments = seg::opacity_segments(a);
    for (g, sg) in groups.iter().zip(&segments) {
        assert_eq!(template(g), "1411");
        let kids = children(g);
        assert!(has_child_code(g, &codes::FINDING, &sg.code));
        let tid: Vec<String> = kids
            .iter()
            .filter(|k| name_is(k, &codes::TRACKING_IDENTIFIER))
            .map(|k| str_of(k, tags::TEXT_VALUE))
            .collect();
        assert_eq!(tid, [sg.name]);
        let seg_item = kids
            .iter()
            .find(|k| name_is(k, &codes::REFERENCED_SEGMENT))
            .unwrap();
        let r = &items(seg_item, tags::REFERENCED_SOP_SEQUENCE)[0];
        assert_eq!(str_of(r, tags::REFERENCED_SOP_INSTANCE_UID), "1.2.3.4");
        assert_eq!(
            r.element(tags::REFERENCED_SEGMENT_NUMBER)
                .unwrap()
                .to_int::<u16>()
                .unwrap(),
            sg.number
        );
        let ggo = sg.label == opacities::GROUND_GLASS;
        let ml = |l: &ct_triage_core::report::LungOpacity| {
            if ggo {
                l.ground_glass_ml
            } else {
                l.consolidation_ml
            }
        };
        let pct = |l: &ct_triage_core::report::LungOpacity| {
            if ggo {
                l.ground_glass_percent
            } else {
                l.consolidation_percent
            }
        };
        // Volume: both lungs without a site, then right and left with their laterality.
        let volumes: Vec<(f64, Option<String>)> = kids
            .iter()
            .filter(|k| name_is(k, &codes::VOLUME))
            .map(|k| {
                let side = children(k)
                    .iter()
                    .find(|c| name_is(c, &codes::FINDING_SITE))
                    .map(|site| {
                        children(site)
                            .iter()
                            .find(|c| name_is(c, &codes::LATERALITY))
                            .map(|c| code_of(c, tags::CONCEPT_CODE_SEQUENCE).0)
                            .unwrap()
                    });
                let unit = code_of(
                    &items(k, tags::MEASURED_VALUE_SEQUENCE)[0],
                    tags::MEASUREMENT_UNITS_CODE_SEQUENCE,
                );
                assert_eq!(unit.0, "cm3");
                (num_value(k), side)
            })
            .collect();
        let total = ((ml(&op.right) + ml(&op.left)) * 1000.0).round() / 1000.0;
        assert_eq!(
            volumes,
            [
                (total, None),
                (ml(&op.right), Some(codes::RIGHT.value.to_string())),
                (ml(&op.left), Some(codes::LEFT.value.to_string())),
            ]
        );
        assert!(total > 0.0);
        let percents: Vec<f64> = kids
            .iter()
            .filter(|k| name_is(k, &codes::PERCENT_OF_LUNG))
            .map(num_value)
            .collect();
        assert_eq!(percents, [pct(&op.right), pct(&op.left)]);
    }
    let pattern = &groups[2];
    assert_eq!(template(pattern), "1501");
    assert!(has_child_code(pattern, &codes::FINDING, &codes::OPACITY));
    let kids = children(pattern);
    let num = |c: &codes::Code| -> Vec<f64> {
        kids.iter()
            .filter(|k| name_is(k, c))
            .map(num_value)
            .collect()
    };
    assert_eq!(
        num(&codes::CT_SEVERITY_SCORE),
        [op.ct_severity_score as f64]
    );
    assert_eq!(num(&codes::LAA950), [op.emphysema_laa950_percent]);
    let dist = kids
        .iter()
        .find(|k| name_is(k, &codes::OPACITY_DISTRIBUTION))
        .map(|k| str_of(k, tags::TEXT_VALUE))
        .unwrap();
    assert!(
        dist.contains("laterality bilateral") && dist.contains("predominant zone middle"),
        "{dist}"
    );
    // Every NUM of the opacity groups names its algorithm.
    for g in groups {
        for k in children(g)
            .iter()
            .filter(|k| str_of(k, tags::VALUE_TYPE) == "NUM")
        {
            assert!(
                children(k)
                    .iter()
                    .any(|c| name_is(c, &codes::ALGORITHM_NAME))
            );
        }
    }
    // Without a SEG the type groups are TID 1501 and reference no segment.
    let bytes = sr::measurement_report(a, &SrOptions::new().content(when())).unwrap();
    let obj = parse(&bytes);
    let root = children(&obj);
    let m = root
        .iter()
        .find(|c| name_is(c, &codes::IMAGING_MEASUREMENTS))
        .unwrap();
    for g in &children(m)[a.report.findings.len()..] {
        assert_eq!(template(g), "1501");
        assert!(
            !children(g)
                .iter()
                .any(|k| name_is(k, &codes::REFERENCED_SEGMENT))
        );
    }
}

/// An analysis with opacities and no finding still gets a SEG, with the
/// opacity segments numbered from 1, and an SR with the opacity groups.
#[test]
fn opacities_without_findings_give_a_seg_and_sr_groups() {
    let mut a = fixture().clone();
    a.report.findings.clear();
    a.masks.clear();
    a.key_images.clear();
    let segs = seg::opacity_segments(&a);
    assert_eq!(segs.iter().map(|s| s.number).collect::<Vec<_>>(), [1, 2]);
    let obj = parse(
        &seg::segmentation(&a, &SegOptions::new().content(when()))
            .unwrap()
            .expect("a SEG for the opacities"),
    );
    let described: Vec<(String, String)> = items(&obj, tags::SEGMENT_SEQUENCE)
        .iter()
        .map(|s| {
            (
                str_of(s, tags::SEGMENT_LABEL),
                code_of(s, tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE).0,
            )
        })
        .collect();
    assert_eq!(
        described,
        [
            (
                "Ground glass opacity".to_string(),
                codes::GROUND_GLASS_OPACITY.value.to_string()
            ),
            (
                "Consolidation".to_string(),
                codes::LUNG_CONSOLIDATION.value.to_string()
            ),
        ]
    );
    let out = dicom::export(&a, &ExportOptions::new().content(when())).unwrap();
    let files: Vec<&str> = out.iter().map(|e| e.file.as_str()).collect();
    assert_eq!(
        files,
        [
            "report.sr.dcm",
            "findings.seg.dcm",
            "key-images/opacities.sc.dcm",
            "key-objects.kos.dcm"
        ]
    );
}

#[test]
fn no_findings_gives_an_sr_and_no_seg() {
    let mut a = fixture().clone();
    a.report.findings.clear();
    a.masks.clear();
    a.key_images.clear();
    a.report.opacities = None;
    a.opacity_map = None;
    a.opacity_key_image = None;
    a.report.exam.lung_rads = Some(ct_triage_core::report::LungRads::Cat1);
    assert!(
        seg::segmentation(&a, &SegOptions::new().content(when()))
            .unwrap()
            .is_none()
    );
    let out = dicom::export(&a, &ExportOptions::new().content(when())).unwrap();
    assert_eq!(out.len(), 1);
    let sr = parse(&out[0].bytes);
    assert!(
        !children(&sr)
            .iter()
            .any(|c| name_is(c, &codes::IMAGING_MEASUREMENTS))
    );
}

/// A lung1 slice with identifying attributes added, nested and private ones included.
fn identifying_ct() -> Vec<u8> {
    let (_, bytes) = dicom_fixture::lung1_files().remove(0);
    let mut f = parse(&bytes);
    let put = |f: &mut DefaultDicomObject, t: Tag, vr: VR, v: &str| {
        f.put(DataElement::new(t, vr, PrimitiveValue::from(v)));
    };
    put(&mut f, tags::PATIENT_NAME, VR::PN, "Doe^Johnathan");
    put(&mut f, tags::PATIENT_BIRTH_DATE, VR::DA, "19580317");
    put(
        &mut f,
        tags::INSTITUTION_NAME,
        VR::LO,
        "Saint Example Hospital",
    );
    put(&mut f, tags::OPERATORS_NAME, VR::PN, "Tech^Tina");
    put(
        &mut f,
        tags::REFERRING_PHYSICIAN_NAME,
        VR::PN,
        "Referrer^Rita",
    );
    put(&mut f, tags::PATIENT_ADDRESS, VR::LO, "1 Main Street");
    put(
        &mut f,
        tags::SERIES_DESCRIPTION,
        VR::LO,
        "CHEST Johnathan 5mm",
    );
    put(&mut f, tags::DEVICE_SERIAL_NUMBER, VR::LO, "SN-12345");
    put(&mut f, Tag(0x0009, 0x0010), VR::LO, "ACME 1.0");
    put(&mut f, Tag(0x0009, 0x1001), VR::LO, "secret private value");
    let mut item = InMemDicomObject::new_empty();
    item.put(DataElement::new(
        tags::REFERENCED_SOP_CLASS_UID,
        VR::UI,
        PrimitiveValue::from("1.2.840.10008.5.1.4.1.1.2"),
    ));
    item.put(DataElement::new(
        tags::REFERENCED_SOP_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from("1.2.3.4.5.6"),
    ));
    item.put(DataElement::new(
        tags::PERSON_NAME,
        VR::PN,
        PrimitiveValue::from("Nested^Name"),
    ));
    f.put(DataElement::new(
        tags::REFERENCED_IMAGE_SEQUENCE,
        VR::SQ,
        dicom_core::value::DataSetSequence::from(vec![item]),
    ));
    let mut out = Vec::new();
    f.write_all(&mut out).unwrap();
    out
}

#[test]
fn deidentification_applies_the_profile() {
    let ct = identifying_ct();
    let original = parse(&ct);
    let mut m = UidMapper::new("test-salt");
    let (bytes, rec) = deid::deidentify_bytes(&ct, &DeidOptions::default(), &mut m).unwrap();
    let d = parse(&bytes);
    assert_eq!(str_of(&d, tags::PATIENT_IDENTITY_REMOVED), "YES");
    assert_eq!(str_of(&d, tags::PATIENT_NAME), "");
    assert!(str_of(&d, tags::PATIENT_ID).starts_with("ANON-"));
    assert_eq!(str_of(&d, tags::PATIENT_BIRTH_DATE), "");
    assert!(d.element(tags::PATIENT_ADDRESS).is_err());
    assert_eq!(str_of(&d, tags::INSTITUTION_NAME), "ANONYMIZED");
    assert_eq!(str_of(&d, tags::SERIES_DESCRIPTION), "CHEST [removed] 5mm");
    assert!(d.element(Tag(0x0009, 0x1001)).is_err(), "private removed");
    // UIDs mapped consistently, study date shifted by the recorded offset.
    let old_sop = str_of(&original, tags::SOP_INSTANCE_UID);
    assert_eq!(str_of(&d, tags::SOP_INSTANCE_UID), m.get(&old_sop).unwrap());
    assert_eq!(
        d.meta()
            .media_storage_sop_instance_uid()
            .trim_end_matches('\0'),
        m.get(&old_sop).unwrap()
    );
    assert_ne!(
        str_of(&d, tags::STUDY_INSTANCE_UID),
        str_of(&original, tags::STUDY_INSTANCE_UID)
    );
    let shift = rec.date_shift_days.unwrap();
    assert!((-3649..=-365).contains(&shift));
    assert_ne!(
        str_of(&d, tags::STUDY_DATE),
        str_of(&original, tags::STUDY_DATE)
    );
    let nested = &items(&d, tags::REFERENCED_IMAGE_SEQUENCE)[0];
    assert_eq!(
        str_of(nested, tags::REFERENCED_SOP_INSTANCE_UID),
        m.get("1.2.3.4.5.6").unwrap()
    );
    assert_eq!(str_of(nested, tags::PERSON_NAME), "ANONYMIZED");
    // Method codes and the record.
    let methods: Vec<String> = items(&d, tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE)
        .iter()
        .map(|c| str_of(c, tags::CODE_VALUE))
        .collect();
    assert_eq!(methods, ["113100", "113107", "113105", "113104"]);
    let json = serde_json::to_string(&rec).unwrap();
    for secret in [
        "Johnathan",
        "Saint Example",
        "SN-12345",
        "19580317",
        "Main Street",
        &old_sop,
    ] {
        assert!(!json.contains(secret), "record leaks {secret}");
    }
    assert!(
        rec.actions
            .iter()
            .any(|a| a.path == "(0009,1001)" && a.action == "X")
    );
    // Pixel data untouched.
    assert_eq!(
        d.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap(),
        original
            .element(tags::PIXEL_DATA)
            .unwrap()
            .to_bytes()
            .unwrap()
    );
}

#[test]
fn deidentified_export_keeps_references_consistent() {
    let a = fixture();
    let mut m = UidMapper::new("run-42");
    let d = DeidOptions::default().dates(DatePolicy::Modified {
        shift_days: Some(-100),
    });
    let (objs, recs) =
        dicom::export_deidentified(a, &ExportOptions::new().content(when()), &d, &mut m).unwrap();
    assert_eq!(objs.len(), recs.len());
    let sr = parse(&objs[0].bytes);
    let seg = parse(&objs[1].bytes);
    assert_eq!(
        str_of(&sr, tags::CONTENT_DATE),
        "20230924",
        "2024-01-02 minus 100 days"
    );
    assert_eq!(
        str_of(&sr, tags::STUDY_INSTANCE_UID),
        str_of(&seg, tags::STUDY_INSTANCE_UID)
    );
    assert_eq!(
        str_of(&sr, tags::STUDY_INSTANCE_UID),
        m.get(&a.series.meta.study_instance_uid).unwrap()
    );
    let groups = children(
        children(&sr)
            .iter()
            .find(|c| name_is(c, &codes::IMAGING_MEASUREMENTS))
            .unwrap(),
    );
    let r = &items(
        children(&groups[0])
            .iter()
            .find(|c| name_is(c, &codes::REFERENCED_SEGMENT))
            .unwrap(),
        tags::REFERENCED_SOP_SEQUENCE,
    )[0];
    assert_eq!(
        str_of(r, tags::REFERENCED_SOP_INSTANCE_UID),
        str_of(&seg, tags::SOP_INSTANCE_UID)
    );
    let tracking = children(&groups[0])
        .iter()
        .find(|c| name_is(c, &codes::TRACKING_UID))
        .unwrap();
    let seg_tracking = &items(&seg, tags::SEGMENT_SEQUENCE)[0];
    assert_eq!(
        str_of(tracking, tags::UID),
        str_of(seg_tracking, tags::TRACKING_UID)
    );
    // Text in the SR survives cleaning; numbers are untouched.
    let kids = children(&groups[0]);
    let tid = kids
        .iter()
        .find(|c| name_is(c, &codes::TRACKING_IDENTIFIER))
        .unwrap();
    assert_eq!(
        str_of(tid, tags::TEXT_VALUE),
        format!("{}Finding 1", sr::OHIF_TRACKING_PREFIX)
    );
    let long = kids.iter().find(|c| name_is(c, &codes::LONG_AXIS)).unwrap();
    assert_eq!(num_value(long), a.report.findings[0].long_axis_mm);
    // Without Clean Structured Content, free text becomes a dummy.
    let basic = DeidOptions::default().clean_structured_content(false);
    let (objs, _) =
        dicom::export_deidentified(a, &ExportOptions::new().content(when()), &basic, &mut m)
            .unwrap();
    let sr = parse(&objs[0].bytes);
    let groups = children(
        children(&sr)
            .iter()
            .find(|c| name_is(c, &codes::IMAGING_MEASUREMENTS))
            .unwrap(),
    );
    let tid = children(&groups[0])
        .iter()
        .find(|c| name_is(c, &codes::TRACKING_IDENTIFIER))
        .unwrap();
    assert_eq!(str_of(tid, tags::TEXT_VALUE), "ANONYMIZED");
}

#[test]
fn every_table_row_parses_and_standard_codes_fit() {
    assert!(deid::profile_table().len() >= 650);
    for c in codes::all() {
        assert!(!c.value.is_empty() && c.value.len() <= 16, "{c:?}");
        assert!(c.meaning.len() <= 64, "{c:?}");
    }
}

#[test]
fn character_set_follows_the_text() {
    for (name, charset) in [
        ("Anonymous^Lung1", None),
        ("Müller^Jörg", Some("ISO_IR 100")),
        ("李^雷", Some("ISO_IR 192")),
    ] {
        let mut a = fixture().clone();
        a.series.meta.patient_name = Some(name.into());
        // The SEG: its text is ASCII apart from the name (the SR's limits and
        // reasons always need UTF-8 for "≥").
        let obj = parse(
            &seg::segmentation(&a, &SegOptions::new().content(when()))
                .unwrap()
                .unwrap(),
        );
        assert_eq!(str_of(&obj, tags::PATIENT_NAME), name);
        let cs = obj
            .element(tags::SPECIFIC_CHARACTER_SET)
            .ok()
            .map(|e| e.to_str().unwrap().trim().to_string());
        assert_eq!(cs.as_deref(), charset, "{name}");
    }
}

#[test]
fn the_result_bundle_is_the_export_plus_the_report_and_deidentifies_both_with_one_key() {
    use dicom::{BundleOptions, DEID_FILE, REPORT_FILE};
    let a = fixture();
    let export = ExportOptions::new().content(when());

    // As analysed: the objects are `export`'s, the report is the analysis' own, last.
    let plain = dicom::bundle(a, &BundleOptions::new().export(export.clone())).unwrap();
    assert!(!plain.is_deidentified() && plain.dicom_error.is_none());
    assert_eq!(plain.objects, dicom::export(a, &export).unwrap());
    let files = plain.files();
    assert_eq!(files.last().unwrap().name, REPORT_FILE);
    assert_eq!(
        &files.last().unwrap().bytes[..],
        a.report.to_json().as_bytes()
    );
    assert_eq!(
        files.iter().filter(|f| f.name.ends_with(".png")).count(),
        a.key_images.len() + 1,
        "the findings' key images and the opacities'"
    );
    assert!(files.iter().all(|f| f.name != DEID_FILE));

    // De-identified: the same as `export_deidentified` + `deidentify_report`
    // with one mapper, and a log naming every file.
    let d = DeidOptions::default();
    let key = b"a bundle key of 24 bytes";
    let b = dicom::bundle(
        a,
        &BundleOptions::new()
            .export(export.clone())
            .deidentify(d.clone(), key),
    )
    .unwrap();
    let mut m = UidMapper::new(key);
    let (objs, _) = dicom::export_deidentified(a, &export, &d, &mut m).unwrap();
    let (report, _) = dicom::deidentify_report(&a.report, &d, &mut m);
    assert_eq!(b.objects, objs);
    assert_eq!(b.report, report);
    assert_ne!(b.report.input.patient_id, a.report.input.patient_id);
    let files = b.files();
    assert_eq!(files.last().map(|f| f.name), Some(REPORT_FILE));
    assert!(files.iter().any(|f| f.name == DEID_FILE));
    let log = b.deidentification.as_ref().unwrap();
    assert_eq!(log.files.len(), 1 + objs.len(), "report + every object");
    assert_eq!(log.files[0].file.as_deref(), Some(REPORT_FILE));

    // A short key is refused with a typed error, nothing half-written.
    let e = dicom::bundle(a, &BundleOptions::new().deidentify(d, b"short")).unwrap_err();
    assert!(
        matches!(e, ct_triage_core::Error::InvalidArgument(_)),
        "{e}"
    );
}
