//! Stage 8 of 11 — findings: which classified and measured candidates the
//! report lists, which it drops, and why.
//!
//! In: the classified candidates ([`Scored`]) and their measurements; out: the
//! kept measurements (one per lesion) and a [`Fate`] for every candidate — the
//! decision and its reason, the explain list of the report. The rules are
//! [`AcceptRules`] (per channel, and the mass rule for large structures the
//! classifier did not accept) and [`UnresolvedRules`] (what was seen but not
//! resolved, which keeps an exam from a silent `routine`).
//!
//! ```
//! use ct_triage_analysis::candidates::{Candidate, Channel};
//! use ct_triage_analysis::classify::Prediction;
//! use ct_triage_analysis::findings::{AcceptRules, Plan, Scored};
//!
//! let at = |channel, nodule: f32| Scored {
//!     cand: Candidate {
//!         center_xyz: [10.0, 10.0, 10.0],
//!         radius_mm: 4.0,
//!         response: 100.0,
//!         blobness: 0.8,
//!         channel,
//!     },
//!     prediction: Prediction::from_outputs([("nodule".to_string(), nodule)]),
//! };
//! let scored = [at(Channel::Solid, 0.2), at(Channel::Solid, 0.9), at(Channel::Mass, 0.1)];
//! let plan = Plan::new(&scored, 0.32, &AcceptRules::default());
//! // Measured: the accepted one, then the mass-channel one for the mass rule.
//! assert_eq!(plan.order, vec![1, 2]);
//! assert_eq!(plan.by_classifier, 1);
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::candidates::{Candidate, Channel, Detection};
use crate::classify::Prediction;
use crate::lungs::{LEFT, LungMasks, RIGHT};
use crate::measure::Measurement;
use crate::report::{CandidateDecision, CandidateMeasure, LungSummary};
use crate::volume::{Geometry, Vec3, Volume};

/// A candidate with its classifier outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The detected candidate.
    pub cand: Candidate,
    /// What the classifier said of it.
    pub prediction: Prediction,
}

/// What became of one candidate: the decision, the candidate (or finding) it
/// refers to, and the reason in plain words.
#[derive(Debug, Clone, PartialEq)]
pub struct Fate {
    /// The decision.
    pub decision: CandidateDecision,
    /// For a duplicate: the candidate index it duplicates (after
    /// [`Accepted::name_duplicates`], the finding id).
    pub of: Option<usize>,
    /// Why, in plain words.
    pub reason: String,
}

/// Acceptance rules applied per channel after the classifier and the measure
/// stage. Chosen on the insertion harness's lung1 cases (lung1 is in the
/// training data; lung2, reported separately, is not). Defaults documented per field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcceptRules {
    /// Nodule probability a subsolid-channel candidate must reach (the model's
    /// threshold when that is higher). Ground-glass candidates are low-contrast
    /// and many (partial volume at vessel branchings and the mediastinum).
    /// Default 0.9.
    pub subsolid_min_probability: f64,
    /// Smallest diameter (mm) a subsolid-channel finding is reported at. Default 6 mm.
    pub subsolid_min_diameter_mm: f64,
    /// Largest standard deviation (HU) of a mass-channel finding's soft-tissue
    /// interior: a lesion is one tissue; a hilum or mediastinal border is
    /// vessels, fat and bronchial walls. Default 100 HU.
    pub mass_max_hu_sd: f64,
    /// Smallest distance (mm) of a mass-channel finding's centre from the midline
    /// between the two lungs (the mean of their centroids' x): nearer, it is in
    /// the mediastinum (aorta, heart, lymph nodes). Default 25 mm.
    pub mass_min_midline_mm: f64,
    /// The mass rule: a mass-channel structure whose measured long axis reaches
    /// this (mm) is reported as a finding even when the classifier's nodule
    /// probability is below the threshold — when it is also homogeneous solid
    /// soft tissue ([`rule_mass_max_hu_sd`](Self::rule_mass_max_hu_sd)) and
    /// passes the mass-channel rules above. A lesion over 3 cm is a mass by
    /// definition (Fleischner Society glossary, Hansell et al., Radiology 2008),
    /// whatever an unvalidated score says: for triage a missed mass is worse
    /// than a false alarm. Default 30 mm.
    pub rule_mass_min_long_axis_mm: f64,
    /// Largest interior standard deviation (HU) of a structure the mass rule
    /// reports (which must also be solid and free of calcified foci: calcium in a
    /// structure the classifier turned down is the heart, the aorta or bone): one tissue, well below the [`mass_max_hu_sd`](Self::mass_max_hu_sd)
    /// a classifier-accepted mass may have (vessels, fat and bronchial walls at a
    /// hilum or the diaphragm's dome give 60–250 HU on lung1 and lung2).
    /// Default 50 HU.
    pub rule_mass_max_hu_sd: f64,
}

impl Default for AcceptRules {
    fn default() -> Self {
        AcceptRules {
            subsolid_min_probability: 0.9,
            subsolid_min_diameter_mm: 6.0,
            mass_max_hu_sd: 100.0,
            mass_min_midline_mm: 25.0,
            rule_mass_min_long_axis_mm: 30.0,
            rule_mass_max_hu_sd: 50.0,
        }
    }
}

impl AcceptRules {
    /// Why a measured mass-channel structure is not a mass by the mass rule
    /// ([`rule_mass_min_long_axis_mm`](Self::rule_mass_min_long_axis_mm),
    /// [`rule_mass_max_hu_sd`](Self::rule_mass_max_hu_sd)); `None` when it is.
    /// The mass-channel rules (interior SD, midline) apply on top.
    pub fn mass_rule_misses(&self, m: &Measurement) -> Option<String> {
        if m.long_axis_mm < self.rule_mass_min_long_axis_mm {
            Some(format!(
                "not a mass by the mass rule: long axis {:.0} mm < {} mm",
                m.long_axis_mm, self.rule_mass_min_long_axis_mm
            ))
        } else if m.interior_hu_sd > self.rule_mass_max_hu_sd {
            Some(format!(
                "not a mass by the mass rule: interior SD {:.0} HU > {} HU (mixed tissue)",
                m.interior_hu_sd, self.rule_mass_max_hu_sd
            ))
        } else if m.nodule_type != crate::report::NoduleType::Solid {
            Some(format!(
                "not a mass by the mass rule: {} rather than solid soft tissue",
                m.nodule_type.as_str()
            ))
        } else if m.calcification.foci > 0 {
            Some(format!(
                "not a mass by the mass rule: calcified foci ({}) — the heart, the aorta or bone beside the lung rather than plain soft tissue",
                m.calcification.foci
            ))
        } else {
            None
        }
    }
}

/// What the analysis reports as seen but not resolved — each rule, when it
/// fires, adds a reason in plain words to the exam and makes a `routine` exam
/// `priority` ([`crate::triage::escalate_unresolved`]). Defaults are documented per field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnresolvedRules {
    /// A mass-channel candidate (a soft-tissue structure of 30 mm or more in the
    /// lung region) that the classifier neither accepted nor clearly rejected:
    /// nodule probability at or above this share of the threshold. Default 0.5.
    pub uncertain_mass_share: f64,
    /// Larger over smaller lung volume above which the lungs are called
    /// asymmetric (collapse, effusion, a large lesion replacing lung, surgery).
    /// Default 2.5 (lung1: 1.6, lung2: 1.5).
    pub max_lung_volume_ratio: f64,
    /// Radius (mm) at or above which a blob-like candidate (blobness ≥ 0.5) that
    /// its channel's budget left out is reported. Default 10 mm (a 20 mm structure).
    pub dropped_min_radius_mm: f64,
}

impl Default for UnresolvedRules {
    fn default() -> Self {
        UnresolvedRules {
            uncertain_mass_share: 0.5,
            max_lung_volume_ratio: 2.5,
            dropped_min_radius_mm: 10.0,
        }
    }
}

/// Which candidates the measure stage segments, in this order: those the
/// classifier accepted (by descending nodule probability), then the
/// mass-channel ones it did not, for the mass rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Every candidate's fate before measuring (below the threshold, with it).
    pub fates: Vec<Fate>,
    /// Candidate indices to measure.
    pub order: Vec<usize>,
    /// How many of `order` the classifier accepted (the rest: mass rule only).
    pub by_classifier: usize,
}

impl Plan {
    /// The plan for `scored` at the model's `threshold`.
    pub fn new(scored: &[Scored], threshold: f64, rules: &AcceptRules) -> Plan {
        let fates = scored
            .iter()
            .map(|s| Fate {
                decision: CandidateDecision::BelowThreshold,
                of: None,
                reason: format!(
                    "nodule probability {:.2} < threshold {:.2}",
                    s.prediction.nodule,
                    accept_threshold(s, threshold, rules)
                ),
            })
            .collect();
        let mut order: Vec<usize> = (0..scored.len())
            .filter(|&i| {
                scored[i].prediction.nodule as f64 >= accept_threshold(&scored[i], threshold, rules)
            })
            .collect();
        order.sort_by(|&a, &b| {
            scored[b]
                .prediction
                .nodule
                .total_cmp(&scored[a].prediction.nodule)
        });
        let by_classifier = order.len();
        let rest: Vec<usize> = (0..scored.len())
            .filter(|&i| scored[i].cand.channel == Channel::Mass && !order.contains(&i))
            .collect();
        order.extend(rest);
        Plan {
            fates,
            order,
            by_classifier,
        }
    }
}

/// The outcome of acceptance: one measurement per lesion, and every fate.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// Every candidate's fate.
    pub fates: Vec<Fate>,
    /// Kept measurements with their candidate index, in plan order.
    pub kept: Vec<(usize, Measurement)>,
    /// Candidates kept by the mass rule rather than the classifier.
    pub by_rule: Vec<usize>,
    /// What was measured of each measured candidate (the explain list).
    pub measured: BTreeMap<usize, CandidateMeasure>,
}

/// Apply the acceptance rules to the plan's measurements (`measured[k]` is
/// that of `plan.order[k]`, `None` when nothing could be segmented) and drop
/// duplicates of the same lesion (a measurement containing another's centre).
/// `midline_x`: [`lungs_midline_x`] on `geometry`, the grid of the lung masks.
pub fn accept(
    scored: &[Scored],
    plan: Plan,
    measured: Vec<Option<Measurement>>,
    midline_x: Option<f64>,
    geometry: &Geometry,
    rules: &AcceptRules,
) -> Accepted {
    let Plan {
        mut fates,
        order,
        by_classifier,
    } = plan;
    let mut kept: Vec<(usize, Measurement)> = Vec::new();
    let mut by_rule = Vec::new();
    let mut measured_of = BTreeMap::new();
    let midline_mm = |m: &Measurement| {
        midline_x.map(|mx| {
            let v = geometry.patient_to_voxel(m.center_lps_mm);
            (v[0] - mx).abs() * geometry.spacing[0]
        })
    };
    for (n, (&i, m)) in order.iter().zip(measured).enumerate() {
        let classifier_accepted = n < by_classifier;
        let Some(m) = m else {
            if classifier_accepted {
                fates[i] = Fate {
                    decision: CandidateDecision::NotSegmented,
                    of: None,
                    reason: "accepted by the classifier; no lesion could be segmented around it"
                        .into(),
                };
            }
            continue;
        };
        if classifier_accepted {
            measured_of.insert(
                i,
                CandidateMeasure {
                    diameter_mm: m.diameter_mm,
                    nodule_type: m.nodule_type,
                    interior_hu_sd: m.interior_hu_sd,
                },
            );
            if let Some(why) = rule_rejects(scored[i].cand.channel, &m, midline_mm(&m), rules) {
                fates[i] = Fate {
                    decision: CandidateDecision::RejectedByRule,
                    of: None,
                    reason: why,
                };
                continue;
            }
        } else {
            // Below the classifier's threshold: reported only by the mass rule.
            if let Some(why) = rules.mass_rule_misses(&m) {
                fates[i].reason = format!("{}; {why}", fates[i].reason);
                continue;
            }
            if let Some(why) = rule_rejects(Channel::Mass, &m, midline_mm(&m), rules) {
                fates[i].reason =
                    format!("{}; not a mass by the mass rule: {why}", fates[i].reason);
                continue;
            }
        }
        match duplicate_of(&kept, &m) {
            Some(d) => {
                fates[i] = Fate {
                    decision: CandidateDecision::Duplicate,
                    of: Some(kept[d].0),
                    reason: String::new(),
                }
            }
            None => {
                if !classifier_accepted {
                    by_rule.push(i);
                }
                kept.push((i, m));
            }
        }
    }
    Accepted {
        fates,
        kept,
        by_rule,
        measured: measured_of,
    }
}

impl Accepted {
    /// Candidate `i` measured `diameter_mm` with `suspicion` but is beyond the
    /// `max` findings reported.
    pub fn mark_beyond(&mut self, i: usize, diameter_mm: f64, suspicion: f64, max: usize) {
        self.fates[i] = Fate {
            decision: CandidateDecision::BeyondMaxFindings,
            of: None,
            reason: format!(
                "{diameter_mm:.1} mm, suspicion {suspicion:.2}: beyond the {max} findings reported"
            ),
        };
    }

    /// Candidate `i` is reported as finding `id` (long axis `long_axis_mm`);
    /// the reason says when the mass rule rather than the classifier kept it.
    pub fn mark_reported(&mut self, scored: &[Scored], i: usize, id: u32, long_axis_mm: f64) {
        let why = if self.by_rule.contains(&i) {
            format!(
                " (nodule probability {:.2} below the threshold; reported by the mass rule: a homogeneous soft-tissue structure with a {long_axis_mm:.0} mm long axis)",
                scored[i].prediction.nodule
            )
        } else {
            String::new()
        };
        self.fates[i] = Fate {
            decision: CandidateDecision::Finding,
            of: None,
            reason: format!("finding {id}{why}"),
        };
    }

    /// Once the findings have ids (`finding_of`: candidate index → id), point
    /// each duplicate at the finding it duplicates.
    pub fn name_duplicates(&mut self, finding_of: &BTreeMap<usize, u32>) {
        for f in &mut self.fates {
            if f.decision == CandidateDecision::Duplicate {
                let id = f.of.and_then(|o| finding_of.get(&o).copied());
                f.reason = match id {
                    Some(id) => format!("inside the segmentation of finding {id}"),
                    None => "inside the segmentation of another accepted candidate".into(),
                };
                f.of = id.map(|v| v as usize);
            }
        }
    }
}

/// The nodule-probability threshold a candidate must reach: the model's, or the
/// subsolid channel's own when that is higher ([`AcceptRules`]).
pub fn accept_threshold(s: &Scored, threshold: f64, rules: &AcceptRules) -> f64 {
    if s.cand.channel == Channel::Subsolid {
        threshold.max(rules.subsolid_min_probability)
    } else {
        threshold
    }
}

/// The midline between the lungs: the mean of the two aerated lungs' centroid
/// columns (voxel x on the resampled grid), `None` without both lungs.
pub fn lungs_midline_x(l: &LungMasks) -> Option<f64> {
    let (mut sr, mut nr, mut sl, mut nl) = (0f64, 0usize, 0f64, 0usize);
    for ((_, _, i), &v) in l.aerated.indexed_iter() {
        match v {
            RIGHT => {
                sr += i as f64;
                nr += 1;
            }
            LEFT => {
                sl += i as f64;
                nl += 1;
            }
            _ => {}
        }
    }
    (nr > 0 && nl > 0).then(|| (sr / nr as f64 + sl / nl as f64) / 2.0)
}

/// The kept measurement that `m` duplicates: either contains the other's centre.
pub fn duplicate_of(kept: &[(usize, Measurement)], m: &Measurement) -> Option<usize> {
    let voxel = |v: Vec3| v.map(|x| x.round().max(0.0) as usize);
    kept.iter().position(|(_, k)| {
        k.mask.contains(voxel(m.center_voxel_xyz)) || m.mask.contains(voxel(k.center_voxel_xyz))
    })
}

/// Why a measured candidate of a channel is not a finding, if it is not
/// ([`AcceptRules`]).
pub fn rule_rejects(
    ch: Channel,
    m: &Measurement,
    midline_mm: Option<f64>,
    rules: &AcceptRules,
) -> Option<String> {
    match ch {
        Channel::Subsolid if m.diameter_mm < rules.subsolid_min_diameter_mm => Some(format!(
            "subsolid {:.1} mm < {} mm: the subsolid channel reports nodules from {} mm (smaller ground glass is Lung-RADS 2)",
            m.diameter_mm, rules.subsolid_min_diameter_mm, rules.subsolid_min_diameter_mm
        )),
        Channel::Mass if m.interior_hu_sd > rules.mass_max_hu_sd => Some(format!(
            "mixed attenuation inside (SD {:.0} HU > {}: vessels, fat, bronchial walls), as at a hilum or the mediastinum, not one lesion",
            m.interior_hu_sd, rules.mass_max_hu_sd
        )),
        Channel::Mass if midline_mm.is_some_and(|d| d < rules.mass_min_midline_mm) => {
            Some(format!(
                "centre {:.0} mm from the midline between the lungs (< {} mm): the mediastinum, not the lung",
                midline_mm.unwrap_or(0.0),
                rules.mass_min_midline_mm
            ))
        }
        _ => None,
    }
}

/// The unresolved-analysis reasons (see [`UnresolvedRules`]).
pub fn unresolved_reasons(
    scored: &[Scored],
    fates: &[Fate],
    detection: &Detection,
    lungs: &LungSummary,
    threshold: f64,
    rules: &UnresolvedRules,
    iso: &Volume,
) -> Vec<String> {
    let mut out = Vec::new();
    let at = |c: &Candidate| {
        let p = iso.geometry.voxel_to_patient(c.center_xyz);
        format!("at LPS ({:.0}, {:.0}, {:.0}) mm", p[0], p[1], p[2])
    };
    for (s, f) in scored.iter().zip(fates) {
        let d = &f.decision;
        if s.cand.channel != Channel::Mass {
            continue;
        }
        let p = s.prediction.nodule as f64;
        let unsure =
            *d == CandidateDecision::BelowThreshold && p >= rules.uncertain_mass_share * threshold;
        let lost = *d == CandidateDecision::NotSegmented;
        if unsure || lost {
            out.push(format!(
                "a soft-tissue structure of about {:.0} mm {} was {} (nodule probability {p:.2})",
                2.0 * s.cand.radius_mm,
                at(&s.cand),
                if lost {
                    "accepted but could not be measured"
                } else {
                    "neither accepted nor clearly rejected"
                }
            ));
        }
    }
    let (r, l) = (lungs.right_ml, lungs.left_ml);
    if r.min(l) > 0.0 && r.max(l) / r.min(l) > rules.max_lung_volume_ratio {
        out.push(format!(
            "the lungs are asymmetric: right {r:.0} mL, left {l:.0} mL of aerated lung (collapse, effusion, a large lesion or surgery?)"
        ));
    }
    for c in &detection.dropped {
        if c.radius_mm >= rules.dropped_min_radius_mm && c.blobness >= 0.5 {
            out.push(format!(
                "a {} candidate of about {:.0} mm {} was left out by the channel's budget",
                c.channel.as_str(),
                2.0 * c.radius_mm,
                at(c)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(channel: Channel, nodule: f32) -> Scored {
        Scored {
            cand: Candidate {
                center_xyz: [10.0, 10.0, 10.0],
                radius_mm: 4.0,
                response: 100.0,
                blobness: 0.8,
                channel,
            },
            prediction: Prediction::from_outputs([("nodule".to_string(), nodule)]),
        }
    }

    #[test]
    fn the_subsolid_channel_needs_its_own_probability_and_order_is_by_probability() {
        let s = [
            scored(Channel::Subsolid, 0.5),
            scored(Channel::Solid, 0.5),
            scored(Channel::Subsolid, 0.95),
        ];
        let plan = Plan::new(&s, 0.32, &AcceptRules::default());
        assert_eq!(plan.order, vec![2, 1]);
        assert_eq!(plan.by_classifier, 2);
        assert!(
            plan.fates[0].reason.contains("threshold 0.90"),
            "{}",
            plan.fates[0].reason
        );
        assert!(plan.fates[1].reason.contains("threshold 0.32"));
    }

    #[test]
    fn an_accepted_candidate_that_cannot_be_measured_is_said_so() {
        let s = [scored(Channel::Solid, 0.9), scored(Channel::Mass, 0.1)];
        let plan = Plan::new(&s, 0.32, &AcceptRules::default());
        assert_eq!(plan.order, vec![0, 1]);
        let geometry = Geometry {
            size: [20, 20, 20],
            spacing: [1.0; 3],
            origin: [0.0; 3],
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        };
        let acc = accept(
            &s,
            plan,
            vec![None, None],
            None,
            &geometry,
            &AcceptRules::default(),
        );
        assert_eq!(acc.fates[0].decision, CandidateDecision::NotSegmented);
        // Below the threshold and nothing measured: the mass rule has nothing to report.
        assert_eq!(acc.fates[1].decision, CandidateDecision::BelowThreshold);
        assert!(acc.kept.is_empty() && acc.by_rule.is_empty());
    }

    #[test]
    fn duplicates_point_at_the_finding_and_rule_findings_say_so() {
        let s = [scored(Channel::Mass, 0.14), scored(Channel::Solid, 0.9)];
        let mut acc = Accepted {
            fates: vec![
                Fate {
                    decision: CandidateDecision::BelowThreshold,
                    of: None,
                    reason: String::new(),
                },
                Fate {
                    decision: CandidateDecision::Duplicate,
                    of: Some(0),
                    reason: String::new(),
                },
            ],
            kept: Vec::new(),
            by_rule: vec![0],
            measured: BTreeMap::new(),
        };
        acc.mark_reported(&s, 0, 1, 33.0);
        assert!(
            acc.fates[0].reason.contains("reported by the mass rule"),
            "{}",
            acc.fates[0].reason
        );
        acc.name_duplicates(&BTreeMap::from([(0, 1)]));
        assert_eq!(acc.fates[1].of, Some(1));
        assert_eq!(acc.fates[1].reason, "inside the segmentation of finding 1");
        acc.mark_beyond(1, 5.0, 0.1, 10);
        assert_eq!(acc.fates[1].decision, CandidateDecision::BeyondMaxFindings);
    }
}
