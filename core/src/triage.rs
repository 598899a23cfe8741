//! Triage — worklist priority and score from the findings and the exam category.
//!
//! Default rules (all thresholds in [`TriageRules`]):
//! - `urgent`: exam Lung-RADS 4B or 4X, any mass ≥ 30 mm, or a finding with AI
//!   malignancy probability ≥ 0.5;
//! - `priority`: exam 4A, or malignancy ≥ 0.2;
//! - `routine`: Lung-RADS 1–3 otherwise;
//! - `inconclusive`: the input cannot support a result (no lungs, too few
//!   slices, or partial lung coverage without an urgent/priority finding).
//!
//! The score sorts a worklist: urgent in [0.75, 1], priority in [0.5, 0.75),
//! inconclusive 0.45, routine in [0, 0.4]; within a band it grows with the
//! strongest finding (max of malignancy probability and a category weight).

use serde::{Deserialize, Serialize};

use crate::report::{Exam, FindingKind, LungRads, Priority};

/// Configurable triage thresholds. Defaults are documented per field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriageRules {
    /// Malignancy probability at or above which a finding is urgent. Default 0.5.
    pub urgent_malignancy: f64,
    /// Malignancy probability at or above which a finding is priority. Default 0.2.
    pub priority_malignancy: f64,
    /// Diameter (mm) at or above which a mass is urgent. Default 30 mm.
    pub urgent_mass_mm: f64,
}

impl Default for TriageRules {
    fn default() -> Self {
        TriageRules {
            urgent_malignancy: 0.5,
            priority_malignancy: 0.2,
            urgent_mass_mm: 30.0,
        }
    }
}

/// What triage needs to know about one finding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TriageFinding {
    /// Finding id (for the reasons).
    pub id: u32,
    /// Nodule or mass.
    pub kind: FindingKind,
    /// Mean diameter, mm.
    pub diameter_mm: f64,
    /// AI malignancy probability.
    pub malignancy: f64,
    /// Lung-RADS category.
    pub lung_rads: LungRads,
}

/// Weight of a Lung-RADS category in scores (1: 0, 2: 0.1, 3: 0.3, 4A: 0.6, 4B: 0.85, 4X: 0.9).
pub fn rads_weight(c: LungRads) -> f64 {
    match c {
        LungRads::Cat1 => 0.0,
        LungRads::Cat2 => 0.1,
        LungRads::Cat3 => 0.3,
        LungRads::Cat4A => 0.6,
        LungRads::Cat4B => 0.85,
        LungRads::Cat4X => 0.9,
    }
}

/// Decide priority and score. `inconclusive` is a reason the input cannot
/// support any result; `partial_coverage` one that only allows raising the priority.
pub fn triage(
    findings: &[TriageFinding],
    exam_rads: LungRads,
    inconclusive: Option<String>,
    partial_coverage: Option<String>,
    rules: &TriageRules,
) -> Exam {
    if let Some(reason) = inconclusive {
        return Exam {
            lung_rads: None,
            triage_priority: Priority::Inconclusive,
            triage_score: 0.45,
            triage_reasons: vec![reason.clone()],
            nodule_count: findings.len(),
            inconclusive_reason: Some(reason),
            unresolved: Vec::new(),
        };
    }
    let mut urgent = Vec::new();
    let mut priority = Vec::new();
    if matches!(exam_rads, LungRads::Cat4B | LungRads::Cat4X) {
        urgent.push(format!("exam Lung-RADS {}", exam_rads.as_str()));
    }
    if exam_rads == LungRads::Cat4A {
        priority.push("exam Lung-RADS 4A".to_string());
    }
    let mut strongest: f64 = rads_weight(exam_rads);
    for f in findings {
        if f.kind == FindingKind::Mass && f.diameter_mm >= rules.urgent_mass_mm {
            urgent.push(format!("finding {}: mass of {:.1} mm", f.id, f.diameter_mm));
            strongest = 1.0;
        }
        if f.malignancy >= rules.urgent_malignancy {
            urgent.push(format!(
                "finding {}: malignancy probability {:.2} ≥ {}",
                f.id, f.malignancy, rules.urgent_malignancy
            ));
        } else if f.malignancy >= rules.priority_malignancy {
            priority.push(format!(
                "finding {}: malignancy probability {:.2} ≥ {}",
                f.id, f.malignancy, rules.priority_malignancy
            ));
        }
        strongest = strongest.max(f.malignancy).max(rads_weight(f.lung_rads));
    }
    let strongest = strongest.clamp(0.0, 1.0);
    let (p, score, mut reasons) = if !urgent.is_empty() {
        (Priority::Urgent, 0.75 + 0.25 * strongest, urgent)
    } else if !priority.is_empty() {
        (Priority::Priority, 0.5 + 0.2499 * strongest, priority)
    } else if let Some(reason) = partial_coverage.clone() {
        return Exam {
            lung_rads: Some(exam_rads),
            triage_priority: Priority::Inconclusive,
            triage_score: 0.45,
            triage_reasons: vec![reason.clone()],
            nodule_count: findings.len(),
            inconclusive_reason: Some(reason),
            unresolved: Vec::new(),
        };
    } else {
        (
            Priority::Routine,
            0.4 * strongest,
            vec![format!("exam Lung-RADS {}", exam_rads.as_str())],
        )
    };
    if let Some(r) = partial_coverage {
        reasons.push(r);
    }
    Exam {
        lung_rads: Some(exam_rads),
        triage_priority: p,
        triage_score: (score * 1e4).round() / 1e4,
        triage_reasons: reasons,
        nodule_count: findings.len(),
        inconclusive_reason: None,
        unresolved: Vec::new(),
    }
}

/// No silent routine: when the analysis saw something it could not resolve
/// (`unresolved`, each a reason in plain words — see
/// `pipeline::AnalysisOptions::unresolved`), an exam that would be `routine`
/// becomes `priority`, with those reasons; any other priority keeps its band
/// and gets the reasons added. For triage a miss is worse than a false alarm.
pub fn escalate_unresolved(mut exam: Exam, unresolved: &[String]) -> Exam {
    if unresolved.is_empty() {
        return exam;
    }
    if exam.triage_priority == Priority::Routine {
        exam.triage_priority = Priority::Priority;
        exam.triage_score = 0.5;
        exam.triage_reasons.clear();
    }
    exam.triage_reasons
        .extend(unresolved.iter().map(|u| format!("unresolved: {u}")));
    exam.unresolved = unresolved.to_vec();
    exam
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(kind: FindingKind, d: f64, m: f64, c: LungRads) -> TriageFinding {
        TriageFinding {
            id: 1,
            kind,
            diameter_mm: d,
            malignancy: m,
            lung_rads: c,
        }
    }
    const N: FindingKind = FindingKind::Nodule;

    #[test]
    fn priorities_follow_the_rules() {
        let r = TriageRules::default();
        let t = |fs: &[TriageFinding], c| triage(fs, c, None, None, &r).triage_priority;
        assert_eq!(t(&[], LungRads::Cat1), Priority::Routine);
        assert_eq!(
            t(&[f(N, 7.0, 0.1, LungRads::Cat3)], LungRads::Cat3),
            Priority::Routine
        );
        assert_eq!(
            t(&[f(N, 9.0, 0.1, LungRads::Cat4A)], LungRads::Cat4A),
            Priority::Priority
        );
        assert_eq!(
            t(&[f(N, 5.0, 0.2, LungRads::Cat2)], LungRads::Cat2),
            Priority::Priority
        );
        assert_eq!(
            t(&[f(N, 5.0, 0.19, LungRads::Cat2)], LungRads::Cat2),
            Priority::Routine
        );
        assert_eq!(
            t(&[f(N, 5.0, 0.5, LungRads::Cat2)], LungRads::Cat2),
            Priority::Urgent
        );
        assert_eq!(
            t(&[f(N, 16.0, 0.1, LungRads::Cat4B)], LungRads::Cat4B),
            Priority::Urgent
        );
        assert_eq!(
            t(&[f(N, 7.0, 0.1, LungRads::Cat4X)], LungRads::Cat4X),
            Priority::Urgent
        );
        let mass = f(FindingKind::Mass, 30.0, 0.1, LungRads::Cat2);
        assert_eq!(t(&[mass], LungRads::Cat2), Priority::Urgent);
    }

    #[test]
    fn inconclusive_and_partial_coverage() {
        let r = TriageRules::default();
        let e = triage(&[], LungRads::Cat1, Some("no lungs".into()), None, &r);
        assert_eq!(e.triage_priority, Priority::Inconclusive);
        assert_eq!(e.lung_rads, None);
        let e = triage(&[], LungRads::Cat1, None, Some("cut".into()), &r);
        assert_eq!(e.triage_priority, Priority::Inconclusive);
        let big = f(N, 16.0, 0.7, LungRads::Cat4B);
        let e = triage(&[big], LungRads::Cat4B, None, Some("cut".into()), &r);
        assert_eq!(e.triage_priority, Priority::Urgent);
        assert!(e.triage_reasons.iter().any(|x| x == "cut"));
    }

    #[test]
    fn unresolved_findings_never_leave_an_exam_routine() {
        // Issue 11: "When the analysis saw something it could not resolve ... the
        // exam is not routine: it is at least priority or inconclusive with the
        // reason in plain words."
        let r = TriageRules::default();
        let why = vec!["right lung 410 mL vs left lung 1650 mL".to_string()];
        let e = escalate_unresolved(triage(&[], LungRads::Cat1, None, None, &r), &why);
        assert_eq!(e.triage_priority, Priority::Priority);
        assert!(e.triage_reasons.iter().any(|x| x.contains("410 mL")));
        assert_eq!(e.unresolved, why);
        let urgent = triage(
            &[f(N, 16.0, 0.1, LungRads::Cat4B)],
            LungRads::Cat4B,
            None,
            None,
            &r,
        );
        let e = escalate_unresolved(urgent, &why);
        assert_eq!(
            e.triage_priority,
            Priority::Urgent,
            "an urgent exam stays urgent"
        );
        let e = escalate_unresolved(triage(&[], LungRads::Cat1, None, None, &r), &[]);
        assert_eq!(
            e.triage_priority,
            Priority::Routine,
            "nothing unresolved: routine"
        );
    }

    #[test]
    fn score_bands_sort_the_worklist() {
        let r = TriageRules::default();
        let s = |fs: &[TriageFinding], c| triage(fs, c, None, None, &r).triage_score;
        let urgent = s(&[f(N, 16.0, 0.9, LungRads::Cat4B)], LungRads::Cat4B);
        let prio = s(&[f(N, 9.0, 0.3, LungRads::Cat4A)], LungRads::Cat4A);
        let routine = s(&[f(N, 7.0, 0.05, LungRads::Cat3)], LungRads::Cat3);
        let incon = triage(&[], LungRads::Cat1, Some("x".into()), None, &r).triage_score;
        assert!((0.75..=1.0).contains(&urgent));
        assert!((0.5..0.75).contains(&prio));
        assert!(routine <= 0.4);
        assert!(urgent > prio && prio > incon && incon > routine);
    }
}
