//! Stage 8 — assess: from a measured, scored finding to what the report says
//! about it (lobe, Brock, Lung-RADS and its management, triage band), and the
//! exam-level category and priority.
//!
//! The rules live in their own modules, each with the source it follows:
//! [`crate::anatomy`] (lobe approximation), [`crate::risk`] (Brock, with the
//! long axis as the nodule size), [`crate::lungrads`] (v2022 categories and
//! management), [`crate::triage`] (bands; the AI score cannot escalate alone).

use std::collections::BTreeMap;

use crate::anatomy::{Lobe, LungAnatomy};
use crate::ingest::LoadedSeries;
use crate::lungrads::{self, NoduleForRads};
use crate::measure::Measurement;
use crate::report::{BrockDetail, Exam, Finding, NoduleType, PatientContext, TypeScores};
use crate::risk::{BrockInputs, brock_probability};
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

fn round3(v: [f64; 3]) -> [f64; 3] {
    v.map(|x| (x * 1000.0).round() / 1000.0)
}

fn round4(v: f64) -> f64 {
    (v * 1e4).round() / 1e4
}

/// Spiculation probability at or above which spiculation is present (Brock input, Lung-RADS 4X).
pub const SPICULATION_THRESHOLD: f64 = 0.5;

/// The report's finding for a measurement and its model outputs (`id` 0;
/// [`exam`] sets the triage reasons once the ids are known).
pub fn finding(m: &Measurement, probs: &BTreeMap<String, f32>, ctx: &Context) -> Finding {
    let p = |k: &str| probs.get(k).map(|&v| v as f64);
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
