//! Stage 9 of 11 — assess: from a measured, scored finding to what the report says
//! about it (lobe, Brock, Lung-RADS and its management, triage band), and the
//! exam-level category and priority.
//!
//! The rules live in their own modules, each with the source it follows:
//! [`crate::anatomy`] (lobe approximation), [`crate::risk`] (Brock, with the
//! long axis as the nodule size), [`crate::lungrads`] (v2022 categories and
//! management), [`crate::triage`] (bands; the AI score cannot escalate alone).

use crate::anatomy::{Lobe, LungAnatomy};
use crate::classify::Prediction;
use crate::lungrads::{self, NoduleForRads};
use crate::measure::Measurement;
use crate::report::{BrockDetail, Exam, Finding, NoduleType, PatientContext, TypeScores};
use crate::risk::{BrockInputs, brock_probability};
use crate::series::LoadedSeries;
use crate::triage::{self, TriageFinding, TriageRules};

/// What every finding of one exam is assessed against.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Patient inputs of the risk model.
    pub patient: &'a PatientContext,
    /// Landmarks for the lobe approximation.
    pub anatomy: &'a LungAnatomy,
    /// The source series (image and series numbers).
    pub series: &'a LoadedSeries,
    /// Triage rules.
    pub rules: &'a TriageRules,
    /// Number of findings in the exam (the Brock nodule count).
    pub nodule_count: usize,
}

/// `v` rounded to 3 decimals (µm for LPS millimetres), as reports write positions.
pub fn round3(v: [f64; 3]) -> [f64; 3] {
    v.map(|x| (x * 1000.0).round() / 1000.0)
}

/// `v` rounded to 4 decimals, as reports write probabilities.
pub fn round4(v: f64) -> f64 {
    (v * 1e4).round() / 1e4
}

/// Spiculation probability at or above which spiculation is present (Brock input, Lung-RADS 4X).
pub const SPICULATION_THRESHOLD: f64 = 0.5;

/// The report's finding for a measurement and its model outputs (`id` 0;
/// [`exam`] sets the triage reasons once the ids are known).
pub fn finding(
    m: &Measurement,
    prediction: &Prediction,
    channel: crate::candidates::Channel,
    ctx: &Context,
) -> Finding {
    let p = |k: &str| prediction.get(k).map(|v| v as f64);
    let malignancy = p("malignancy").unwrap_or(0.0);
    let spic = p("spiculation");
    let spiculated = spic.is_some_and(|v| v >= SPICULATION_THRESHOLD);
    let nodule_p = p("nodule").unwrap_or(0.0);

    // Lobe (approximation) and the Brock "upper lobe" input.
    let lobe = ctx.anatomy.lobe_at(m.location.side, m.center_lps_mm);
    let mut location = m.location.clone();
    location.lobe = lobe.lobe;
    location.lobe_method = lobe.method.clone();
    location.upper_lobe = lobe.lobe.is_upper().unwrap_or(false);

    // Brock with the long axis (PanCan: nodule size = longest diameter).
    let pt = ctx.patient;
    let inputs = |upper: bool| BrockInputs {
        age_years: pt.age_years,
        female: pt.female,
        family_history: pt.family_history,
        emphysema: pt.emphysema,
        diameter_mm: m.long_axis_mm,
        nodule_type: m.nodule_type,
        upper_lobe: upper,
        nodule_count: ctx.nodule_count,
        spiculation: spiculated,
    };
    let brock = brock_probability(&inputs(location.upper_lobe));
    let brock_detail = BrockDetail {
        diameter_mm: m.long_axis_mm,
        diameter_source: "long_axis".into(),
        upper_lobe: location.upper_lobe,
        upper_lobe_source: if lobe.lobe == Lobe::Unknown {
            "default (lobe unknown)".into()
        } else {
            "lobe approximation".into()
        },
        probability_if_upper_lobe: (lobe.lobe == Lobe::Unknown)
            .then(|| round4(brock_probability(&inputs(true)))),
        spiculation: spiculated,
        nodule_count: ctx.nodule_count,
    };

    // Lung-RADS v2022.
    let (rads, why) = lungrads::categorize(&NoduleForRads {
        nodule_type: m.nodule_type,
        diameter_mm: m.diameter_mm,
        solid_component_mm: m.solid_component_mm,
        suspicious_features: spiculated,
        calcification: Some(m.calcification.pattern),
        juxtapleural: m.location.juxtapleural,
        benign_shape: m.morphology.is_benign_shape(),
    });

    let type_model = match (
        p("solid"),
        p("part_solid"),
        p("ground_glass"),
        p("calcified"),
    ) {
        (Some(s), Some(ps), Some(g), Some(c)) => {
            let all = [
                (s, NoduleType::Solid),
                (ps, NoduleType::PartSolid),
                (g, NoduleType::GroundGlass),
                (c, NoduleType::Calcified),
            ];
            let top = all
                .iter()
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map_or(NoduleType::Solid, |x| x.1);
            Some(TypeScores {
                solid: round4(s),
                part_solid: round4(ps),
                ground_glass: round4(g),
                calcified: round4(c),
                top,
            })
        }
        _ => None,
    };

    let band = triage::finding_band(
        &TriageFinding {
            id: 0,
            kind: m.kind,
            diameter_mm: m.diameter_mm,
            malignancy,
            brock,
            lung_rads: rads,
        },
        ctx.rules,
    );
    let slice = ctx.series.slices.get(m.slice_index);
    Finding {
        id: 0,
        tracking_uid: String::new(),
        kind: m.kind,
        channel,
        center_lps_mm: round3(m.center_lps_mm),
        center_voxel_xyz: round3(m.center_voxel_xyz),
        slice_index: m.slice_index,
        image_number: slice.and_then(|s| s.instance_number),
        series_number: ctx.series.meta.series_number,
        diameter_mm: m.diameter_mm,
        long_axis_mm: m.long_axis_mm,
        short_axis_mm: m.short_axis_mm,
        volume_mm3: m.volume_mm3.round(),
        mean_hu: m.mean_hu,
        nodule_type: m.nodule_type,
        type_hu_fraction: Some(m.type_hu_fraction),
        type_model,
        calcification: Some(m.calcification.clone()),
        morphology: Some(m.morphology.clone()),
        solid_component_mm: m.solid_component_mm,
        location,
        nodule_probability: round4(nodule_p),
        malignancy_probability: round4(malignancy),
        spiculation_probability: spic.map(round4),
        brock_probability: round4(brock),
        brock: Some(brock_detail),
        lung_rads: rads,
        lung_rads_reason: why,
        lung_rads_management: lungrads::management(rads).to_string(),
        triage_band: Some(band.band),
        triage_reasons: Vec::new(),
        suspicion: band.score,
        axes_lps_mm: m.axes_lps_mm.map(|a| a.map(round3)),
    }
}

/// The exam: category (0 with its reason when `incomplete`), priority and
/// score; also fills each finding's triage band and reasons (ids must be set).
pub fn exam(
    findings: &mut [Finding],
    inconclusive: Option<String>,
    partial_coverage: Option<String>,
    rules: &TriageRules,
) -> Exam {
    let tf: Vec<TriageFinding> = findings
        .iter()
        .map(|f| TriageFinding {
            id: f.id,
            kind: f.kind,
            diameter_mm: f.diameter_mm,
            malignancy: f.malignancy_probability,
            brock: f.brock_probability,
            lung_rads: f.lung_rads,
        })
        .collect();
    for (f, t) in findings.iter_mut().zip(&tf) {
        let b = triage::finding_band(t, rules);
        f.triage_band = Some(b.band);
        f.triage_reasons = b.fired.into_iter().map(|x| x.reason).collect();
    }
    let cats: Vec<_> = findings.iter().map(|f| f.lung_rads).collect();
    let incomplete = inconclusive.as_deref().or(partial_coverage.as_deref());
    let e = lungrads::exam_category(&cats, incomplete);
    triage::triage(
        &tf,
        e.category,
        e.reason,
        inconclusive,
        partial_coverage,
        rules,
    )
}

#[cfg(test)]
mod tests {
    //! Phantoms through the real measurement stage and the assessment: the
    //! issue-12 cases. Sources: ACR Lung-RADS v2022 (category 1 only for
    //! complete, central, popcorn and concentric calcification; category 2 for
    //! smooth juxtapleural solid nodules < 10 mm; otherwise by size).
    use super::*;
    use crate::anatomy::LungAnatomy;
    use crate::lungs::{LungMasks, RIGHT};
    use crate::measure::{self, MeasureOptions};
    use crate::report::{LungRads, LungSummary};
    use crate::series::{SliceRef, StudyMeta};
    use crate::volume::{Geometry, Volume};
    use ndarray::Array3;

    const SP: [f64; 3] = [0.7, 0.7, 1.25];
    const N: [usize; 3] = [90, 90, 40];

    /// Lung (−850 HU) inside x < 80 voxels, chest wall (40 HU) beyond; a nodule
    /// from `hu(x, y, z)` (mm from `centre`), `None` outside it.
    fn phantom(
        centre_vox: [f64; 3],
        hu: impl Fn(f64, f64, f64) -> Option<f64>,
    ) -> (Volume, LungMasks) {
        let [nx, ny, nz] = N;
        let mut vol = Array3::<i16>::from_elem((nz, ny, nx), -850);
        let mut region = Array3::<u8>::zeros((nz, ny, nx));
        for k in 0..nz {
            for j in 0..ny {
                for i in 0..nx {
                    if i >= 80 {
                        vol[[k, j, i]] = 40;
                        continue;
                    }
                    region[[k, j, i]] = RIGHT;
                    let d = [
                        (i as f64 - centre_vox[0]) * SP[0],
                        (j as f64 - centre_vox[1]) * SP[1],
                        (k as f64 - centre_vox[2]) * SP[2],
                    ];
                    if let Some(h) = hu(d[0], d[1], d[2]) {
                        vol[[k, j, i]] = h as i16;
                    }
                }
            }
        }
        let geometry = Geometry {
            size: N,
            spacing: SP,
            origin: [-30.0, -30.0, -25.0],
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        };
        let lungs = LungMasks {
            aerated: region.clone(),
            region,
            summary: LungSummary {
                right_ml: 1000.0,
                left_ml: 1000.0,
                extent_mm: 50.0,
                truncated: true,
                laa950_fraction: 0.0,
            },
            inconclusive: None,
            z_range: Some((0, nz - 1)),
        };
        (Volume { hu: vol, geometry }, lungs)
    }

    fn assess_phantom(
        centre_vox: [f64; 3],
        radius: f64,
        hu: impl Fn(f64, f64, f64) -> Option<f64>,
    ) -> Finding {
        let (vol, lungs) = phantom(centre_vox, hu);
        let c = vol.geometry.voxel_to_patient(centre_vox);
        let m = measure::measure(
            &vol,
            &vol,
            &lungs,
            c,
            radius,
            measure::LesionHint::Solid,
            &MeasureOptions::default(),
        )
        .expect("the phantom is measured");
        let series = crate::series::LoadedSeries {
            slices: (0..N[2])
                .map(|k| SliceRef {
                    sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
                    sop_instance_uid: format!("1.2.3.{k}"),
                    frame_number: None,
                    instance_number: Some(100 + k as i64),
                })
                .collect(),
            meta: StudyMeta {
                series_number: Some(7),
                ..StudyMeta::default()
            },
            series_key: "phantom".into(),
            slice_thickness_mm: Some(1.25),
            transfer_syntaxes: vec![],
            warnings: vec![],
            volume: vol.clone(),
        };
        let patient = PatientContext {
            age_years: 62.0,
            age_source: "default".into(),
            female: false,
            sex_source: "default".into(),
            family_history: false,
            emphysema: false,
            history_source: "default".into(),
        };
        let anatomy = LungAnatomy::estimate(&vol, &lungs);
        let rules = TriageRules::default();
        let ctx = Context {
            patient: &patient,
            anatomy: &anatomy,
            series: &series,
            rules: &rules,
            nodule_count: 1,
        };
        let prediction = Prediction::from_outputs([
            ("nodule".to_string(), 0.9f32),
            ("malignancy".to_string(), 0.3),
        ]);
        finding(&m, &prediction, crate::candidates::Channel::Solid, &ctx)
    }

    fn sphere(
        r: f64,
        calcium: impl Fn(f64, f64, f64) -> bool,
    ) -> impl Fn(f64, f64, f64) -> Option<f64> {
        move |x, y, z| {
            (x * x + y * y + z * z <= r * r).then(|| if calcium(x, y, z) { 350.0 } else { 40.0 })
        }
    }

    /// The issue-12 case: a 14 mm solid nodule with an eccentric calcification
    /// was category 1 (≥ 25 % of voxels ≥ 200 HU); by size it is 4A.
    #[test]
    fn eccentric_calcification_is_categorised_by_size() {
        let f = assess_phantom(
            [40.0, 45.0, 20.0],
            7.0,
            sphere(7.0, |x, y, z| {
                (x - 3.6).powi(2) + y * y + z * z <= 3.2f64.powi(2)
            }),
        );
        let c = f.calcification.as_ref().unwrap();
        assert_eq!(
            c.pattern,
            crate::calcification::CalcificationPattern::Eccentric,
            "{c:?}"
        );
        assert_eq!(
            f.lung_rads,
            LungRads::Cat4A,
            "{} ({} mm)",
            f.lung_rads_reason,
            f.diameter_mm
        );
        assert_eq!(f.nodule_type, NoduleType::Solid);
        // The image number is the slice's InstanceNumber, the series number the series'.
        assert_eq!(f.image_number, Some(100 + f.slice_index as i64));
        assert_eq!(f.series_number, Some(7));
        assert!(f.lung_rads_management.starts_with("3-month LDCT"));
    }

    #[test]
    fn central_calcification_is_category_1() {
        let f = assess_phantom(
            [40.0, 45.0, 20.0],
            7.0,
            sphere(7.0, |x, y, z| x * x + y * y + z * z <= 2.6f64.powi(2)),
        );
        assert_eq!(
            f.calcification.as_ref().unwrap().pattern,
            crate::calcification::CalcificationPattern::Central
        );
        assert_eq!(f.lung_rads, LungRads::Cat1, "{}", f.lung_rads_reason);
        assert_eq!(f.nodule_type, NoduleType::Calcified);
        assert_eq!(f.type_hu_fraction, Some(NoduleType::Solid));
    }

    /// v2022 category 2: a smooth lentiform 8 mm solid nodule on the pleura;
    /// the same nodule away from the pleura is category 4A by size.
    #[test]
    fn smooth_juxtapleural_nodule_is_category_2() {
        let lens = |x: f64, y: f64, z: f64| {
            ((x / 2.6).powi(2) + (y / 5.0).powi(2) + (z / 4.0).powi(2) <= 1.0).then_some(40.0)
        };
        // Centre 3 voxels (2.1 mm) from the wall at x = 80 voxels.
        let f = assess_phantom([76.5, 45.0, 20.0], 4.5, lens);
        assert!(f.location.juxtapleural, "{:?}", f.location);
        assert!(
            f.diameter_mm >= 6.0 && f.diameter_mm < 10.0,
            "{}",
            f.diameter_mm
        );
        assert_eq!(
            f.lung_rads,
            LungRads::Cat2,
            "{} {:?}",
            f.lung_rads_reason,
            f.morphology
        );
        let f = assess_phantom([40.0, 45.0, 20.0], 4.5, lens);
        assert!(!f.location.juxtapleural);
        assert!(f.lung_rads >= LungRads::Cat3, "{}", f.lung_rads_reason);
    }

    /// Brock uses the long axis and, with the lobe unknown (partial coverage),
    /// the reference category with the upper-lobe value beside it.
    #[test]
    fn brock_uses_the_long_axis_and_states_the_lobe_default() {
        let f = assess_phantom([40.0, 45.0, 20.0], 7.0, sphere(7.0, |_, _, _| false));
        let b = f.brock.as_ref().unwrap();
        assert_eq!(b.diameter_mm, f.long_axis_mm);
        assert_eq!(b.upper_lobe_source, "default (lobe unknown)");
        assert!(b.probability_if_upper_lobe.unwrap() > f.brock_probability);
        assert_eq!(f.volume_mm3, f.volume_mm3.round());
    }
}
