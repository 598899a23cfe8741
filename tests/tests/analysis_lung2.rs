//! Issue 11 acceptance on the real chest CT that once came out `routine, no
//! findings` (`tests/data/lung2`, held out from training): its 4.5 cm mass,
//! broad-based on the posterior chest wall beside the spine, is found,
//! measured as a mass and makes the exam urgent, Lung-RADS 4B; the candidate
//! list (explain) records every channel.

use std::sync::OnceLock;

use ct_triage_core::candidates::LARGE_RESERVE;
use ct_triage_core::classify::{ModelManifest, burn_net::BurnClassifier};
use ct_triage_core::pipeline::{self, AnalysisOptions};
use ct_triage_core::progress::NoProgress;
use ct_triage_core::report::{Channel, FindingKind, LungRads, Priority, Report};
use ct_triage_tests::{inputs, lung2_dir, lung2_truth, read_dir, repo_root};

fn model() -> &'static BurnClassifier {
    static M: OnceLock<BurnClassifier> = OnceLock::new();
    M.get_or_init(|| {
        let dir = repo_root().join("models");
        let manifest = ModelManifest::from_json(
            &std::fs::read_to_string(dir.join("ctt-nodule-v1.json")).expect("manifest"),
        )
        .expect("manifest parses");
        let weights = std::fs::read(dir.join("ctt-nodule-v1.safetensors")).expect("weights");
        BurnClassifier::from_bytes(manifest, &weights).expect("model loads")
    })
}

fn analyse() -> &'static Report {
    static R: OnceLock<Report> = OnceLock::new();
    R.get_or_init(|| {
        let files = read_dir(&lung2_dir());
        let opts = AnalysisOptions {
            explain: true,
            ..AnalysisOptions::default()
        };
        pipeline::analyze(&inputs(&files), &opts, model(), &NoProgress)
            .unwrap_or_else(|e| panic!("analysis failed: {e}"))
            .report
    })
}

#[test]
fn the_chest_wall_mass_is_found_measured_and_urgent() {
    let truth = lung2_truth();
    let lesion = &truth["lesions"][0];
    let c: Vec<f64> = lesion["centroid_lps_mm"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let volume = lesion["volume_mm3"].as_f64().unwrap();
    let r = analyse();
    let hit = r
        .findings
        .iter()
        .find(|f| {
            (0..3)
                .map(|a| (f.center_lps_mm[a] - c[a]).powi(2))
                .sum::<f64>()
                .sqrt()
                < 15.0
        })
        .unwrap_or_else(|| panic!("no finding at the mass; findings: {:#?}", r.findings));
    assert_eq!(hit.kind, FindingKind::Mass, "{hit:?}");
    assert!(hit.diameter_mm >= 35.0, "{hit:?}");
    // Its whole extent: the labelled mass is 48 mL.
    assert!(
        (hit.volume_mm3 - volume).abs() / volume < 0.3,
        "volume {:.0} mm³ vs labelled {volume:.0} mm³",
        hit.volume_mm3
    );
    assert_eq!(hit.lung_rads, LungRads::Cat4B);
    assert_eq!(r.exam.triage_priority, Priority::Urgent);
}

#[test]
fn the_explain_list_names_every_channel_and_decision() {
    let r = analyse();
    let items = r.candidates.items.as_ref().expect("explain list");
    assert_eq!(
        items.len(),
        r.candidates.detected + items.iter().filter(|c| c.outputs.is_empty()).count()
    );
    for ch in [Channel::Solid, Channel::Subsolid, Channel::Mass] {
        assert!(
            r.candidates
                .channels
                .iter()
                .any(|c| c.channel == ch && c.kept <= c.budget + LARGE_RESERVE)
        );
    }
    let findings = items
        .iter()
        .filter(|c| {
            c.finding_id.is_some()
                && c.decision == ct_triage_core::report::CandidateDecision::Finding
        })
        .count();
    assert_eq!(findings, r.findings.len());
    assert!(items.iter().all(|c| !c.reason.is_empty()));
}
