//! Test data for the DICOM writers: the real `sample-dicom/lung1` series,
//! ingested with the real ingest stage, plus two hand-built findings with
//! masks and the measurements derived from those masks.
//!
//! Finding 1 is the annotated lesion of lung1 (truth bounding box, voxels at
//! or above −300 HU: 860 voxels, close to the truth's 837); finding 2 is a
//! small sphere placed in the left lung to exercise a second group, the left
//! side, the lower zone, the part-solid type, an unknown lobe and the
//! juxtapleural site (finding 1 is given the right upper lobe). The
//! probabilities are set by hand: this is test data for writers, not a model
//! result. Two boxes of diffuse opacity (ground glass right, consolidation
//! left) exercise the opacity segments, measurement groups and key image. Shared by `core/tests/dicom_*.rs` and `tests/tests/interop_*.rs`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ct_triage_core::classify::ModelId;
use ct_triage_core::ingest::{self, IngestOptions, InputFile, LoadedSeries};
use ct_triage_core::measure::FindingMask;
use ct_triage_core::opacities::{CONSOLIDATION, GROUND_GLASS, OpacityMap, Run, SliceRuns};
use ct_triage_core::pipeline::{Analysis, KeyImage};
use ct_triage_core::progress::NoProgress;
use ct_triage_core::report::dicom::uid::hash_uid;
use ct_triage_core::report::{AffectedSlice, LungOpacity, Opacities, OpacityDistribution};
use ct_triage_core::report::{
    BrockDetail, Calcification, CalcificationPattern, CandidateSummary, DISCLAIMER, Exam, Finding,
    FindingKind, Generator, InputSummary, KeyImageRef, LIMITS, Lobe, Location, LungRads,
    NoduleType, PatientContext, Priority, REPORT_SCHEMA, Report, Side, Zone, key_images,
};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The lung1 files (path, bytes), sorted by name.
pub fn lung1_files() -> Vec<(String, Vec<u8>)> {
    let dir = repo_root().join("sample-dicom/lung1");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

/// lung1 as a loaded series.
pub fn lung1_series() -> LoadedSeries {
    let files = lung1_files();
    let inputs: Vec<InputFile> = files.iter().map(|(n, b)| InputFile::new(n, b)).collect();
    ingest::load(&inputs, &IngestOptions::default(), &NoProgress)
        .expect("lung1 loads")
        .1
}

/// A full-volume mask (origin 0) from a predicate on the voxel `[x, y, z]` and its HU.
fn full_mask(s: &LoadedSeries, keep: impl Fn([usize; 3], i16) -> bool) -> FindingMask {
    let mut mask = s.volume.hu.mapv(|_| false);
    for ((z, y, x), &hu) in s.volume.hu.indexed_iter() {
        if keep([x, y, z], hu) {
            mask[[z, y, x]] = true;
        }
    }
    FindingMask {
        origin_xyz: [0, 0, 0],
        mask,
    }
}

/// Voxels `[x, y, z]` of a mask (in source volume coordinates).
pub fn voxels(m: &FindingMask) -> Vec<[usize; 3]> {
    let [ox, oy, oz] = m.origin_xyz;
    m.mask
        .indexed_iter()
        .filter(|(_, v)| **v)
        .map(|((z, y, x), _)| [ox + x, oy + y, oz + z])
        .collect()
}

fn round(v: f64, d: i32) -> f64 {
    let f = 10f64.powi(d);
    (v * f).round() / f
}

/// Measurements of a mask the way the measure stage defines them (long axis:
/// longest in-plane diameter on the slice of largest area, edge to edge;
/// short axis: extent across it; mean diameter rounded to 0.1 mm).
struct Measured {
    center_voxel: [f64; 3],
    slice: usize,
    long: f64,
    short: f64,
    axes_voxel: [[[f64; 3]; 2]; 2],
    volume: f64,
    mean_hu: f64,
}

fn measure(s: &LoadedSeries, m: &FindingMask) -> Measured {
    let g = &s.volume.geometry;
    let vox = voxels(m);
    let n = vox.len() as f64;
    let mut c = [0.0; 3];
    let mut hu = 0.0;
    let mut per_slice: BTreeMap<usize, Vec<[usize; 3]>> = BTreeMap::new();
    for v in &vox {
        for a in 0..3 {
            c[a] += v[a] as f64 / n;
        }
        hu += s.volume.hu[[v[2], v[1], v[0]]] as f64 / n;
        per_slice.entry(v[2]).or_default().push(*v);
    }
    let (&slice, pts) = per_slice.iter().max_by_key(|(_, p)| p.len()).unwrap();
    let (sx, sy) = (g.spacing[0], g.spacing[1]);
    let d = |a: &[usize; 3], b: &[usize; 3]| {
        (((a[0] as f64 - b[0] as f64) * sx).powi(2) + ((a[1] as f64 - b[1] as f64) * sy).powi(2))
            .sqrt()
    };
    let (mut best, mut pa, mut pb) = (-1.0, pts[0], pts[0]);
    for i in 0..pts.len() {
        for j in i + 1..pts.len() {
            let dd = d(&pts[i], &pts[j]);
            if dd > best {
                (best, pa, pb) = (dd, pts[i], pts[j]);
            }
        }
    }
    // Unit vector perpendicular to the long axis, in mm.
    let (ux, uy) = (
        (pb[0] as f64 - pa[0] as f64) * sx,
        (pb[1] as f64 - pa[1] as f64) * sy,
    );
    let len = (ux * ux + uy * uy).sqrt().max(1e-9);
    let (px, py) = (-uy / len, ux / len);
    let proj = |p: &[usize; 3]| p[0] as f64 * sx * px + p[1] as f64 * sy * py;
    let lo = pts
        .iter()
        .min_by(|a, b| proj(a).total_cmp(&proj(b)))
        .unwrap();
    let hi = pts
        .iter()
        .max_by(|a, b| proj(a).total_cmp(&proj(b)))
        .unwrap();
    let short = proj(hi) - proj(lo) + sx.min(sy);
    let mid = |p: &[usize; 3]| [p[0] as f64, p[1] as f64, p[2] as f64];
    Measured {
        center_voxel: c,
        slice,
        long: round(best + sx.min(sy), 2),
        short: round(short, 2),
        axes_voxel: [[mid(&pa), mid(&pb)], [mid(lo), mid(hi)]],
        volume: round(n * g.voxel_volume_mm3(), 2),
        mean_hu: round(hu, 1),
    }
}

/// A finding from a mask and the hand-set classification.
#[allow(clippy::too_many_arguments)]
fn finding(
    s: &LoadedSeries,
    m: &FindingMask,
    id: u32,
    nodule_type: NoduleType,
    solid_component_mm: Option<f64>,
    side: Side,
    zone: Zone,
    lobe: Lobe,
    juxtapleural: bool,
    probs: [f64; 3],
    lung_rads: LungRads,
) -> Finding {
    let g = &s.volume.geometry;
    let me = measure(s, m);
    let to_lps = |v: [f64; 3]| g.voxel_to_patient(v).map(|x| round(x, 3));
    Finding {
        id,
        tracking_uid: hash_uid(&[b"fixture-finding", &id.to_le_bytes()]),
        kind: FindingKind::Nodule,
        channel: ct_triage_core::candidates::Channel::Solid,
        center_lps_mm: to_lps(me.center_voxel),
        center_voxel_xyz: me.center_voxel.map(|x| round(x, 3)),
        slice_index: me.slice,
        image_number: s.slices[me.slice].instance_number,
        series_number: s.meta.series_number,
        diameter_mm: round((me.long + me.short) / 2.0, 1),
        long_axis_mm: me.long,
        short_axis_mm: me.short,
        volume_mm3: me.volume,
        mean_hu: me.mean_hu,
        nodule_type,
        type_hu_fraction: Some(nodule_type),
        type_model: None,
        calcification: Some(Calcification {
            pattern: CalcificationPattern::Absent,
            benign: false,
            fraction: 0.0,
            foci: 0,
            centroid_radius: 0.0,
            reason: "fixture".into(),
        }),
        morphology: None,
        solid_component_mm,
        location: Location {
            side,
            zone,
            upper_lobe: lobe.is_upper() == Some(true),
            juxtapleural,
            lobe,
            lobe_method: "fixture".into(),
        },
        nodule_probability: probs[0],
        malignancy_probability: probs[1],
        spiculation_probability: None,
        brock_probability: probs[2],
        brock: Some(BrockDetail {
            diameter_mm: me.long,
            diameter_source: "long_axis".into(),
            upper_lobe: lobe.is_upper() == Some(true),
            upper_lobe_source: "fixture".into(),
            probability_if_upper_lobe: None,
            spiculation: false,
            nodule_count: 2,
        }),
        lung_rads,
        lung_rads_reason: "fixture".into(),
        lung_rads_management: ct_triage_core::lungrads::management(lung_rads).into(),
        triage_band: Some(Priority::Priority),
        triage_reasons: vec!["fixture".into()],
        suspicion: probs[1],
        axes_lps_mm: me.axes_voxel.map(|a| a.map(to_lps)),
    }
}

/// The constructed analysis; `shape_mask` may crop each full-volume mask
/// (core tests crop to a box to exercise non-zero mask origins).
pub fn analysis_with(shape_mask: impl Fn(FindingMask) -> FindingMask) -> Analysis {
    let s = lung1_series();
    // Finding 1: the lung1 lesion (truth bbox x 206..=229, y 347..=372, z 32..=34).
    let m1 = shape_mask(full_mask(&s, |[x, y, z], hu| {
        (206..=229).contains(&x) && (347..=372).contains(&y) && (32..=34).contains(&z) && hu >= -300
    }));
    // Finding 2: a sphere of radius 4 px (2.3 mm) on two slices in the left lung.
    let m2 = shape_mask(full_mask(&s, |[x, y, z], _| {
        let (dx, dy) = (x as f64 - 380.0, y as f64 - 250.0);
        (z == 8 || z == 9) && dx * dx + dy * dy <= 16.0
    }));
    let f1 = finding(
        &s,
        &m1,
        1,
        NoduleType::Solid,
        None,
        Side::Right,
        Zone::Upper,
        Lobe::RightUpper,
        false,
        [0.9312, 0.4125, 0.1234],
        LungRads::Cat4A,
    );
    let f2 = finding(
        &s,
        &m2,
        2,
        NoduleType::PartSolid,
        Some(2.0),
        Side::Left,
        Zone::Lower,
        Lobe::Unknown,
        true,
        [0.7777, 0.0567, 0.0211],
        LungRads::Cat3,
    );
    let findings = vec![f1, f2];
    let masks = vec![m1, m2];
    let mut key_imgs = Vec::new();
    let mut key_refs = Vec::new();
    for (f, m) in findings.iter().zip(&masks) {
        let file = format!("key-images/finding-{}.png", f.id);
        let panels = key_images::render_finding(&s.volume, f, m).unwrap();
        key_imgs.push(KeyImage {
            finding_id: f.id,
            file: file.clone(),
            png: panels.composite_png.clone(),
            panels,
        });
        key_refs.push(KeyImageRef {
            finding_id: f.id,
            file,
            slice_index: f.slice_index,
            image_number: f.image_number,
            sop_instance_uid: s.slices[f.slice_index].sop_instance_uid.clone(),
        });
    }
    let (opacities, map) = opacities(&s);
    let g = &s.volume.geometry;
    let meta = &s.meta;
    let report = Report {
        schema: REPORT_SCHEMA.into(),
        generator: Generator {
            name: "ct-triage".into(),
            version: "0.1.0".into(),
        },
        model: ModelId {
            name: "fixture-model".into(),
            version: "0".into(),
            sha256: "0".repeat(64),
            runtime: "none".into(),
        },
        input: InputSummary {
            study_instance_uid: meta.study_instance_uid.clone(),
            series_instance_uid: meta.series_instance_uid.clone(),
            series_key: s.series_key.clone(),
            modality: meta.modality.clone(),
            study_date: meta.study_date.clone(),
            accession_number: meta.accession_number.clone(),
            patient_id: meta.patient_id.clone(),
            files: s.slices.len(),
            skipped_files: 0,
            size_xyz: g.size,
            spacing_mm: g.spacing,
            slice_thickness_mm: s.slice_thickness_mm,
            transfer_syntaxes: s.transfer_syntaxes.clone(),
            manufacturer: meta.manufacturer.clone(),
            convolution_kernel: meta.convolution_kernel.clone(),
        },
        patient: PatientContext {
            age_years: 62.0,
            age_source: "default".into(),
            female: false,
            sex_source: "default".into(),
            family_history: false,
            emphysema: false,
            history_source: "default".into(),
        },
        warnings: vec![],
        lungs: None,
        opacities: Some(opacities),
        candidates: CandidateSummary {
            detected: 2,
            classified: 2,
            accepted: 2,
            threshold: 0.5,
            channels: vec![],
            items: None,
        },
        exam: Exam {
            lung_rads: Some(LungRads::Cat4A),
            lung_rads_reason: "highest nodule category 4A".into(),
            highest_nodule_category: Some(LungRads::Cat4A),
            management: ct_triage_core::lungrads::management(LungRads::Cat4A).into(),
            triage_priority: Priority::Priority,
            triage_score: 0.7125,
            triage_reasons: vec!["Lung-RADS: finding 1 is 4A".into()],
            triage_basis: vec!["lung_rads".into()],
            triage_rule_set: ct_triage_core::triage::TriageRules::default().describe(),
            nodule_count: findings.len(),
            inconclusive_reason: None,
            unresolved: Vec::new(),
        },
        findings,
        key_images: key_refs,
        timings_ms: BTreeMap::new(),
        disclaimer: DISCLAIMER.into(),
        limits: LIMITS.iter().map(|l| l.to_string()).collect(),
    };
    let opacity_key_image = Some(
        key_images::render_opacities(&s.volume, &map, OPACITY_SLICE, &["fixture".into()]).unwrap(),
    );
    Analysis {
        report,
        key_images: key_imgs,
        masks,
        series: s,
        opacity_map: Some(map),
        opacity_key_image,
    }
}

/// The slice the fixture's opacities are largest on.
pub const OPACITY_SLICE: usize = 22;

/// Hand-placed diffuse opacities: ground glass in a box of the right lung
/// (x 120..=170, y 250..=300, slices 20..=24) and consolidation in a box of the
/// left lung (x 340..=370, y 300..=330, slices 22..=23), every voxel of the box
/// labelled (test data for the writers: the HU is not looked at). The report
/// section is computed from those voxel counts, with invented lung volumes.
fn opacities(s: &LoadedSeries) -> (Opacities, OpacityMap) {
    let g = &s.volume.geometry;
    let boxes = [
        (GROUND_GLASS, 120u32..=170, 250u32..=300, 20usize..=24),
        (CONSOLIDATION, 340..=370, 300..=330, 22..=23),
    ];
    let slices = (0..g.size[2])
        .filter_map(|z| {
            let runs: Vec<Run> = boxes
                .iter()
                .filter(|b| b.3.contains(&z))
                .flat_map(|(label, xs, ys, _)| {
                    ys.clone().map(move |row| Run {
                        row,
                        col: *xs.start(),
                        len: xs.end() - xs.start() + 1,
                        label: *label,
                    })
                })
                .collect();
            let mut runs = runs;
            runs.sort_by_key(|r| (r.row, r.col));
            (!runs.is_empty()).then_some(SliceRuns { slice: z, runs })
        })
        .collect();
    let map = OpacityMap {
        size: g.size,
        slices,
    };
    let ml = |label| round(map.count(label) as f64 * g.voxel_volume_mm3() / 1000.0, 3);
    let lung = |lung_ml: f64, ggo: f64, con: f64| LungOpacity {
        lung_ml,
        ground_glass_ml: ggo,
        consolidation_ml: con,
        percent_of_lung: round(100.0 * (ggo + con) / lung_ml, 2),
        ground_glass_percent: round(100.0 * ggo / lung_ml, 2),
        consolidation_percent: round(100.0 * con / lung_ml, 2),
        zones: vec![],
    };
    let o = Opacities {
        right: lung(2500.0, ml(GROUND_GLASS), 0.0),
        left: lung(2300.0, 0.0, ml(CONSOLIDATION)),
        ct_severity_score: 2,
        lobes: vec![],
        lobe_method: "fixture: lobes not computed".into(),
        distribution: OpacityDistribution {
            laterality: "bilateral".into(),
            peripheral_share: 0.4,
            lung_peripheral_share: 0.5,
            peripheral_mm: 20.0,
            axial: "diffuse".into(),
            predominant_zone: Some(Zone::Middle),
        },
        emphysema_laa950_percent: 1.25,
        most_affected_slice: Some(AffectedSlice {
            slice_index: OPACITY_SLICE,
            image_number: s.slices[OPACITY_SLICE].instance_number,
            area_cm2: 0.0,
            key_image: Some(key_images::OPACITY_KEY_IMAGE_FILE.into()),
        }),
        method: "fixture".into(),
    };
    (o, map)
}

/// The constructed analysis with full-volume masks.
pub fn analysis() -> Analysis {
    analysis_with(|m| m)
}
