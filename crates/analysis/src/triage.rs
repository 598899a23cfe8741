//! Stage 10 of 11 — triage: worklist priority and score from the findings.
//!
//! The priority comes from rules a radiologist can check; the AI malignancy
//! score — an unvalidated model output, trained on synthetic renderings of
//! LIDC-IDRI readers' ratings, with an AUC of 0.72 below 10 mm (model card) —
//! never decides it alone. Default rules (all in [`TriageRules`]):
//!
//! | band | a finding is in it when |
//! |---|---|
//! | `urgent` | Lung-RADS 4B or 4X; or a mass ≥ 30 mm |
//! | `priority` | Lung-RADS 4A; or Brock probability ≥ 10 % |
//! | `routine` | otherwise |
//!
//! The AI score then may raise a finding of at least 6 mm mean diameter with
//! a score ≥ 0.5 by **one** band, and by default **at most to `priority`**:
//! it never makes an exam urgent. Within a band it orders the findings and
//! the exams (the score below). [`AiRole`] switches this off or to ordering only.
//!
//! The exam takes the highest band of its findings. `inconclusive` when the
//! input cannot support a result (no lungs, too few slices), and when part of
//! the lungs was not covered and no finding in the covered part is urgent or
//! priority (a routine result would claim too much).
//!
//! The score sorts a worklist: urgent in [0.75, 1], priority in [0.5, 0.75),
//! inconclusive 0.45, routine in [0, 0.4]. Within a band it is
//! `band start + band width × (rule strength + AI score) / 2` of the strongest
//! finding, where the rule strength is the larger of the Lung-RADS weight
//! ([`rads_weight`]) and the Brock probability; with [`AiRole::Off`] the AI
//! score is left out.
//!
//! Sources: ACR Lung-RADS v2022 (4A suspicious, 4B/4X very suspicious: work-up
//! rather than interval LDCT); Brock ≥ 10 %: the British Thoracic Society
//! guideline for pulmonary nodules (Callister et al., Thorax 2015;70:ii1–ii54),
//! which moves nodules with a Brock risk ≥ 10 % on to PET-CT.

use serde::{Deserialize, Serialize};

use crate::report::{Exam, FindingKind, LungRads, Opacities, Priority};

/// What the AI malignancy score may do in triage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AiRole {
    /// Not used at all.
    Off,
    /// Orders findings and exams within a band only.
    OrderWithinBand,
    /// Also raises a large enough finding by one band (up to [`TriageRules::ai_raise_max`]).
    RaiseOneBand,
}

/// Configurable triage rules. Defaults are documented per field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriageRules {
    /// Diameter (mm) at or above which a mass is urgent. Default 30 mm.
    pub urgent_mass_mm: f64,
    /// Brock probability at or above which a finding is at least priority. Default 0.10 (BTS 2015).
    pub priority_brock: f64,
    /// Brock probability at or above which a finding is urgent. Default none.
    pub urgent_brock: Option<f64>,
    /// What the AI score may do. Default [`AiRole::RaiseOneBand`].
    pub ai: AiRole,
    /// AI malignancy score at or above which it may raise a finding. Default 0.5.
    pub ai_raise_malignancy: f64,
    /// Smallest mean diameter (mm) of a finding the AI may raise. Default 6 mm.
    pub ai_raise_min_diameter_mm: f64,
    /// Highest band the AI may raise a finding to. Default `priority` (never `urgent`).
    pub ai_raise_max: Priority,
    /// Rules on the diffuse-opacity pattern ([`PatternRules`]). Default: [`PatternRules::default`].
    #[serde(default)]
    pub pattern: PatternRules,
}

/// Triage rules on the diffuse-opacity pattern (`report.opacities`): they raise an
/// exam's band, never lower it, and name a pattern, never a disease.
///
/// | band | when |
/// |---|---|
/// | `urgent` | CT severity score ≥ `urgent_severity_score` (10 of 25) |
/// | `priority` | a lung with ground glass + consolidation ≥ `priority_percent` (5 %) of its volume, or consolidation ≥ `priority_consolidation_ml` (10 mL) in a lung |
///
/// Sources: the CT severity score of Pan et al. (Radiology 2020;295:715–721),
/// where 5 % is the boundary between lobe scores 1 and 2; a total of 10 means on
/// average 5–25 % involvement of every lobe (extensive, bilateral). These are
/// reading-order choices of this project, not validated cut-offs: Francone et
/// al. (Eur Radiol 2020;30:6808–6817) relate a score ≥ 18 to outcome, which is a
/// prognostic, not a triage, threshold. 10 mL of consolidation is about a 27 mm
/// cube — well beyond what the size rules leave of vessels and atelectasis on
/// the repository's normal scans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PatternRules {
    /// Apply these rules at all. Default true.
    pub enabled: bool,
    /// Involvement (percent of a lung) at or above which the exam is at least priority. Default 5 %.
    pub priority_percent: f64,
    /// Consolidation (mL, in one lung) at or above which the exam is at least priority. Default 10 mL.
    pub priority_consolidation_ml: f64,
    /// CT severity score (0–25) at or above which the exam is urgent. Default 10; `None`: never.
    pub urgent_severity_score: Option<u8>,
}

impl Default for PatternRules {
    fn default() -> Self {
        PatternRules {
            enabled: true,
            priority_percent: 5.0,
            priority_consolidation_ml: 10.0,
            urgent_severity_score: Some(10),
        }
    }
}

impl PatternRules {
    /// The rules in words.
    pub fn describe(&self) -> String {
        if !self.enabled {
            return "opacity pattern not used".into();
        }
        let urgent = match self.urgent_severity_score {
            Some(u) => format!("; CT severity score ≥ {u}/25 urgent"),
            None => String::new(),
        };
        format!(
            "opacity pattern: a lung ≥ {} % involved or ≥ {} mL consolidation priority{urgent}",
            self.priority_percent, self.priority_consolidation_ml
        )
    }

    /// The band the pattern asks for (`routine` when no rule fires) and the rules that fired.
    pub fn band(&self, o: &Opacities) -> (Priority, Vec<String>) {
        let mut band = Priority::Routine;
        let mut reasons = Vec::new();
        if !self.enabled {
            return (band, reasons);
        }
        if let Some(u) = self.urgent_severity_score
            && o.ct_severity_score >= u
        {
            band = Priority::Urgent;
            reasons.push(format!(
                "pattern: CT severity score {}/25 ≥ {u} (ground glass / consolidation, lobes \
                 approximated)",
                o.ct_severity_score
            ));
        }
        for (name, l) in [("right", &o.right), ("left", &o.left)] {
            if l.percent_of_lung >= self.priority_percent {
                if band == Priority::Routine {
                    band = Priority::Priority;
                }
                reasons.push(format!(
                    "pattern: {name} lung {:.1} % involved (ground glass {:.1} mL, consolidation \
                     {:.1} mL) ≥ {} %",
                    l.percent_of_lung, l.ground_glass_ml, l.consolidation_ml, self.priority_percent
                ));
            } else if l.consolidation_ml >= self.priority_consolidation_ml {
                if band == Priority::Routine {
                    band = Priority::Priority;
                }
                reasons.push(format!(
                    "pattern: {name} lung consolidation {:.1} mL ≥ {} mL",
                    l.consolidation_ml, self.priority_consolidation_ml
                ));
            }
        }
        (band, reasons)
    }
}

/// Raise `exam` by the opacity pattern ([`PatternRules`]): a higher band replaces
/// the exam's (with the pattern's reasons first and `pattern` in the basis); an
/// equal band adds the reasons; a lower one changes nothing. An exam that is
/// `inconclusive` for its input stays so; one that is `inconclusive` only for
/// partial coverage takes a pattern band (a positive result in the covered part,
/// as for focal findings). Focal-lesion rules are untouched.
pub fn escalate_pattern(mut exam: Exam, o: Option<&Opacities>, rules: &PatternRules) -> Exam {
    let Some(o) = o else {
        return exam;
    };
    let (band, reasons) = rules.band(o);
    if band == Priority::Routine {
        return exam;
    }
    let input_inconclusive = exam.triage_basis.iter().any(|b| b == "input");
    if exam.triage_priority == Priority::Inconclusive && input_inconclusive {
        return exam;
    }
    let current = if exam.triage_priority == Priority::Inconclusive {
        0
    } else {
        rank(exam.triage_priority)
    };
    let new = rank(band);
    if new > current {
        let (start, width) = band_range(band);
        let strength = match band {
            Priority::Urgent => f64::from(o.ct_severity_score) / 25.0,
            _ => (o.right.percent_of_lung.max(o.left.percent_of_lung) / 50.0).min(1.0),
        };
        let coverage: Vec<String> = exam
            .triage_reasons
            .iter()
            .filter(|r| r.starts_with("coverage:"))
            .cloned()
            .collect();
        exam.triage_priority = band;
        exam.triage_score = start + width * strength.clamp(0.0, 1.0);
        exam.inconclusive_reason = None;
        exam.triage_reasons = reasons;
        exam.triage_reasons.extend(coverage);
        exam.triage_basis = vec!["pattern".into()];
        if exam
            .triage_reasons
            .iter()
            .any(|r| r.starts_with("coverage:"))
        {
            exam.triage_basis.push("coverage".into());
        }
    } else if new == current {
        exam.triage_reasons.extend(reasons);
        if !exam.triage_basis.iter().any(|b| b == "pattern") {
            exam.triage_basis.push("pattern".into());
        }
    }
    exam
}

impl Default for TriageRules {
    fn default() -> Self {
        TriageRules {
            urgent_mass_mm: 30.0,
            priority_brock: 0.10,
            urgent_brock: None,
            ai: AiRole::RaiseOneBand,
            ai_raise_malignancy: 0.5,
            ai_raise_min_diameter_mm: 6.0,
            ai_raise_max: Priority::Priority,
            pattern: PatternRules::default(),
        }
    }
}

impl TriageRules {
    /// The rule set in words (written into every report).
    pub fn describe(&self) -> String {
        let brock = match self.urgent_brock {
            Some(u) => format!(
                "Brock ≥ {:.0} % priority, ≥ {:.0} % urgent",
                self.priority_brock * 100.0,
                u * 100.0
            ),
            None => format!("Brock ≥ {:.0} % priority", self.priority_brock * 100.0),
        };
        let ai = match self.ai {
            AiRole::Off => "AI score not used".to_string(),
            AiRole::OrderWithinBand => "AI score orders within a band only".to_string(),
            AiRole::RaiseOneBand => format!(
                "AI score orders within a band and may raise a finding ≥ {} mm with a score ≥ {} \
                 by one band, at most to {}",
                self.ai_raise_min_diameter_mm,
                self.ai_raise_malignancy,
                self.ai_raise_max.as_str()
            ),
        };
        format!(
            "bands from Lung-RADS v2022 (4B/4X urgent, 4A priority), size (mass ≥ {} mm urgent) \
             and {brock}; {ai}; {}",
            self.urgent_mass_mm,
            self.pattern.describe()
        )
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
    /// AI malignancy score.
    pub malignancy: f64,
    /// Brock probability.
    pub brock: f64,
    /// Lung-RADS category.
    pub lung_rads: LungRads,
}

/// Weight of a Lung-RADS category in scores (0/1: 0, 2: 0.1, 3: 0.3, 4A: 0.6, 4B: 0.85, 4X: 0.9).
pub fn rads_weight(c: LungRads) -> f64 {
    match c {
        LungRads::Cat0 | LungRads::Cat1 => 0.0,
        LungRads::Cat2 => 0.1,
        LungRads::Cat3 => 0.3,
        LungRads::Cat4A => 0.6,
        LungRads::Cat4B => 0.85,
        LungRads::Cat4X => 0.9,
    }
}

/// One rule that placed a finding in its band.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    /// Which rule family: `lung_rads`, `size`, `brock`, `ai`.
    pub basis: &'static str,
    /// The rule in words.
    pub reason: String,
}

/// A finding's band and the rules behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingBand {
    /// The band.
    pub band: Priority,
    /// The band from the rules alone (before the AI).
    pub rule_band: Priority,
    /// Rules that fired (rule bands first, then the AI raise).
    pub fired: Vec<Fired>,
    /// Score in [0, 1] for sorting (same scale as the exam score).
    pub score: f64,
}

fn rank(p: Priority) -> u8 {
    match p {
        Priority::Routine | Priority::Inconclusive => 0,
        Priority::Priority => 1,
        Priority::Urgent => 2,
    }
}

fn of_rank(r: u8) -> Priority {
    match r {
        0 => Priority::Routine,
        1 => Priority::Priority,
        _ => Priority::Urgent,
    }
}

/// Start and width of a band on the score scale.
fn band_range(p: Priority) -> (f64, f64) {
    match p {
        Priority::Urgent => (0.75, 0.25),
        Priority::Priority => (0.5, 0.2499),
        Priority::Routine => (0.0, 0.4),
        Priority::Inconclusive => (0.45, 0.0),
    }
}

/// The band of one finding under `rules`.
pub fn finding_band(f: &TriageFinding, rules: &TriageRules) -> FindingBand {
    let mut fired = Vec::new();
    let mut r = 0u8;
    let mut fire = |band: u8, basis: &'static str, reason: String, r: &mut u8| {
        *r = (*r).max(band);
        fired.push(Fired { basis, reason });
    };
    let id = f.id;
    match f.lung_rads {
        LungRads::Cat4B | LungRads::Cat4X => fire(
            2,
            "lung_rads",
            format!("Lung-RADS: finding {id} is {}", f.lung_rads.as_str()),
            &mut r,
        ),
        LungRads::Cat4A => fire(
            1,
            "lung_rads",
            format!("Lung-RADS: finding {id} is 4A"),
            &mut r,
        ),
        _ => {}
    }
    if f.kind == FindingKind::Mass && f.diameter_mm >= rules.urgent_mass_mm {
        fire(
            2,
            "size",
            format!("size: finding {id} is a mass of {:.1} mm", f.diameter_mm),
            &mut r,
        );
    }
    if let Some(u) = rules.urgent_brock
        && f.brock >= u
    {
        fire(
            2,
            "brock",
            format!(
                "Brock: finding {id} {:.1} % ≥ {:.0} %",
                f.brock * 100.0,
                u * 100.0
            ),
            &mut r,
        );
    } else if f.brock >= rules.priority_brock {
        fire(
            1,
            "brock",
            format!(
                "Brock: finding {id} {:.1} % ≥ {:.0} %",
                f.brock * 100.0,
                rules.priority_brock * 100.0
            ),
            &mut r,
        );
    }
    let rule_band = of_rank(r);
    let mut band = rule_band;
    if rules.ai == AiRole::RaiseOneBand
        && f.diameter_mm >= rules.ai_raise_min_diameter_mm
        && f.malignancy >= rules.ai_raise_malignancy
        && r < rank(rules.ai_raise_max)
    {
        band = of_rank(r + 1);
        fired.push(Fired {
            basis: "ai",
            reason: format!(
                "AI: finding {id} ({:.1} mm) malignancy score {:.2} ≥ {} raised it from {} to {} \
                 (one band at most, never to urgent by default)",
                f.diameter_mm,
                f.malignancy,
                rules.ai_raise_malignancy,
                rule_band.as_str(),
                band.as_str()
            ),
        });
    }
    let strength = rads_weight(f.lung_rads).max(f.brock).clamp(0.0, 1.0);
    let within = if rules.ai == AiRole::Off {
        strength
    } else {
        (strength + f.malignancy.clamp(0.0, 1.0)) / 2.0
    };
    let (start, width) = band_range(band);
    FindingBand {
        band,
        rule_band,
        fired,
        score: ((start + width * within) * 1e4).round() / 1e4,
    }
}

/// Decide the exam's priority and score. `inconclusive`: why the input cannot
/// support any result; `partial_coverage`: why part of the lungs was not
/// assessed (only urgent or priority findings then give a result).
/// `exam_rads` / `exam_rads_reason` are the exam category and its reason
/// (see [`crate::lungrads::exam_category`]).
pub fn triage(
    findings: &[TriageFinding],
    exam_rads: LungRads,
    exam_rads_reason: String,
    inconclusive: Option<String>,
    partial_coverage: Option<String>,
    rules: &TriageRules,
) -> Exam {
    let rule_set = rules.describe();
    let exam = |priority: Priority,
                score: f64,
                reasons: Vec<String>,
                basis: Vec<String>,
                why_inconclusive: Option<String>| Exam {
        lung_rads: Some(exam_rads),
        lung_rads_reason: exam_rads_reason.clone(),
        highest_nodule_category: findings.iter().map(|f| f.lung_rads).max(),
        management: crate::lungrads::management(exam_rads).to_string(),
        triage_priority: priority,
        triage_score: score,
        triage_reasons: reasons,
        triage_basis: basis,
        triage_rule_set: rule_set.clone(),
        nodule_count: findings.len(),
        inconclusive_reason: why_inconclusive,
        unresolved: Vec::new(),
    };
    if let Some(reason) = inconclusive {
        return exam(
            Priority::Inconclusive,
            0.45,
            vec![format!("input: {reason}")],
            vec!["input".into()],
            Some(reason),
        );
    }
    let bands: Vec<FindingBand> = findings.iter().map(|f| finding_band(f, rules)).collect();
    let top = bands.iter().map(|b| rank(b.band)).max().unwrap_or(0);
    let band = of_rank(top);
    let mut reasons = Vec::new();
    let mut basis: Vec<String> = Vec::new();
    for b in bands.iter().filter(|b| rank(b.band) == top && top > 0) {
        for f in &b.fired {
            reasons.push(f.reason.clone());
            if !basis.iter().any(|x| x == f.basis) {
                basis.push(f.basis.to_string());
            }
        }
    }
    if band == Priority::Routine {
        if let Some(reason) = partial_coverage {
            return exam(
                Priority::Inconclusive,
                0.45,
                vec![format!("coverage: {reason}")],
                vec!["coverage".into()],
                Some(reason),
            );
        }
        reasons.push(format!(
            "Lung-RADS: exam category {} ({}): no finding meets a priority or urgent rule",
            exam_rads.as_str(),
            exam_rads_reason
        ));
        basis.push("lung_rads".into());
    }
    if let Some(r) = partial_coverage {
        reasons.push(format!("coverage: {r}"));
        basis.push("coverage".into());
    }
    let score = bands
        .iter()
        .filter(|b| rank(b.band) == top)
        .map(|b| b.score)
        .fold(band_range(band).0, f64::max);
    exam(band, score, reasons, basis, None)
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

    fn f(kind: FindingKind, d: f64, m: f64, brock: f64, c: LungRads) -> TriageFinding {
        TriageFinding {
            id: 1,
            kind,
            diameter_mm: d,
            malignancy: m,
            brock,
            lung_rads: c,
        }
    }
    const N: FindingKind = FindingKind::Nodule;

    fn run(fs: &[TriageFinding], r: &TriageRules) -> Exam {
        let cats: Vec<LungRads> = fs.iter().map(|f| f.lung_rads).collect();
        let e = crate::lungrads::exam_category(&cats, None);
        triage(fs, e.category, e.reason, None, None, r)
    }

    /// Bands from the rules (Lung-RADS v2022: 4B/4X very suspicious, 4A
    /// suspicious; BTS 2015: Brock ≥ 10 % goes on to PET-CT; masses ≥ 30 mm).
    #[test]
    fn bands_follow_lung_rads_size_and_brock() {
        let r = TriageRules {
            ai: AiRole::Off,
            ..TriageRules::default()
        };
        let p = |fs: &[TriageFinding]| run(fs, &r).triage_priority;
        assert_eq!(p(&[]), Priority::Routine);
        assert_eq!(
            p(&[f(N, 7.0, 0.9, 0.02, LungRads::Cat3)]),
            Priority::Routine
        );
        assert_eq!(
            p(&[f(N, 9.0, 0.1, 0.02, LungRads::Cat4A)]),
            Priority::Priority
        );
        assert_eq!(
            p(&[f(N, 16.0, 0.1, 0.05, LungRads::Cat4B)]),
            Priority::Urgent
        );
        assert_eq!(
            p(&[f(N, 7.0, 0.1, 0.05, LungRads::Cat4X)]),
            Priority::Urgent
        );
        assert_eq!(
            p(&[f(N, 7.0, 0.1, 0.10, LungRads::Cat3)]),
            Priority::Priority
        );
        assert_eq!(
            p(&[f(N, 7.0, 0.1, 0.0999, LungRads::Cat3)]),
            Priority::Routine
        );
        let mass = f(FindingKind::Mass, 30.0, 0.1, 0.05, LungRads::Cat2);
        assert_eq!(p(&[mass]), Priority::Urgent);
        let e = run(&[f(N, 16.0, 0.1, 0.05, LungRads::Cat4B)], &r);
        assert_eq!(e.triage_basis, vec!["lung_rads"]);
        assert!(e.triage_reasons[0].starts_with("Lung-RADS: finding 1 is 4B"));
    }

    /// The issue-12 case: lung1's lower 26 slices gave a 3.8 mm Lung-RADS 2
    /// nodule with AI 0.52 and Brock 0.1 % → was urgent; the AI alone must not
    /// raise it (below 6 mm), and never to urgent by itself.
    #[test]
    fn ai_score_alone_never_makes_urgent() {
        let r = TriageRules::default();
        let small = f(N, 3.8, 0.52, 0.001, LungRads::Cat2);
        assert_eq!(run(&[small], &r).triage_priority, Priority::Routine);
        let certain_small = f(N, 5.9, 0.99, 0.01, LungRads::Cat2);
        assert_eq!(run(&[certain_small], &r).triage_priority, Priority::Routine);
        // ≥ 6 mm, routine by the rules: raised by one band to priority, not beyond.
        let e = run(&[f(N, 6.0, 0.99, 0.02, LungRads::Cat3)], &r);
        assert_eq!(e.triage_priority, Priority::Priority);
        assert!(e.triage_basis.contains(&"ai".to_string()));
        assert!(
            e.triage_reasons
                .iter()
                .any(|x| x.starts_with("AI: finding 1"))
        );
        // 4A is priority by the rules; the AI does not raise it to urgent by default.
        let e = run(&[f(N, 9.0, 0.99, 0.05, LungRads::Cat4A)], &r);
        assert_eq!(e.triage_priority, Priority::Priority);
        assert!(!e.triage_basis.contains(&"ai".to_string()));
        // Configurable: allow one band up to urgent.
        let up = TriageRules {
            ai_raise_max: Priority::Urgent,
            ..TriageRules::default()
        };
        assert_eq!(
            run(&[f(N, 9.0, 0.99, 0.05, LungRads::Cat4A)], &up).triage_priority,
            Priority::Urgent
        );
        // Even then, never two bands: routine → priority only.
        assert_eq!(
            run(&[f(N, 7.0, 0.99, 0.02, LungRads::Cat3)], &up).triage_priority,
            Priority::Priority
        );
        // And with the raise switched off, nothing moves.
        let order = TriageRules {
            ai: AiRole::OrderWithinBand,
            ..TriageRules::default()
        };
        assert_eq!(
            run(&[f(N, 7.0, 0.99, 0.02, LungRads::Cat3)], &order).triage_priority,
            Priority::Routine
        );
    }

    #[test]
    fn ai_orders_within_a_band() {
        let r = TriageRules::default();
        let s = |m| run(&[f(N, 9.0, m, 0.05, LungRads::Cat4A)], &r).triage_score;
        assert!(s(0.8) > s(0.2));
        assert!((0.5..0.75).contains(&s(0.8)) && (0.5..0.75).contains(&s(0.2)));
        let off = TriageRules {
            ai: AiRole::Off,
            ..TriageRules::default()
        };
        let s0 = |m| run(&[f(N, 9.0, m, 0.05, LungRads::Cat4A)], &off).triage_score;
        assert_eq!(s0(0.8), s0(0.2));
    }

    #[test]
    fn inconclusive_and_partial_coverage() {
        let r = TriageRules::default();
        let e = triage(
            &[],
            LungRads::Cat0,
            "incomplete: no lungs".into(),
            Some("no lungs".into()),
            None,
            &r,
        );
        assert_eq!(e.triage_priority, Priority::Inconclusive);
        assert_eq!(e.lung_rads, Some(LungRads::Cat0));
        assert_eq!(e.inconclusive_reason.as_deref(), Some("no lungs"));
        let e = triage(
            &[],
            LungRads::Cat0,
            "incomplete: cut".into(),
            None,
            Some("cut".into()),
            &r,
        );
        assert_eq!(e.triage_priority, Priority::Inconclusive);
        let big = f(N, 16.0, 0.7, 0.14, LungRads::Cat4B);
        let e = triage(
            &[big],
            LungRads::Cat0,
            "incomplete: cut".into(),
            None,
            Some("cut".into()),
            &r,
        );
        assert_eq!(e.triage_priority, Priority::Urgent);
        assert_eq!(e.highest_nodule_category, Some(LungRads::Cat4B));
        assert!(e.triage_reasons.iter().any(|x| x == "coverage: cut"));
        assert!(e.management.contains("prior chest CT"), "{}", e.management);
    }

    #[test]
    fn unresolved_findings_never_leave_an_exam_routine() {
        // Issue 11: "When the analysis saw something it could not resolve ... the
        // exam is not routine: it is at least priority or inconclusive with the
        // reason in plain words."
        let r = TriageRules::default();
        let why = vec!["right lung 410 mL vs left lung 1650 mL".to_string()];
        let e = escalate_unresolved(run(&[], &r), &why);
        assert_eq!(e.triage_priority, Priority::Priority);
        assert!(e.triage_reasons.iter().any(|x| x.contains("410 mL")));
        assert_eq!(e.unresolved, why);
        let urgent = run(&[f(N, 16.0, 0.1, 0.2, LungRads::Cat4B)], &r);
        let e = escalate_unresolved(urgent, &why);
        assert_eq!(
            e.triage_priority,
            Priority::Urgent,
            "an urgent exam stays urgent"
        );
        let e = escalate_unresolved(run(&[], &r), &[]);
        assert_eq!(
            e.triage_priority,
            Priority::Routine,
            "nothing unresolved: routine"
        );
    }

    #[test]
    fn score_bands_sort_the_worklist() {
        let r = TriageRules::default();
        let s = |fs: &[TriageFinding]| run(fs, &r).triage_score;
        let urgent = s(&[f(N, 16.0, 0.1, 0.14, LungRads::Cat4B)]);
        let prio = s(&[f(N, 9.0, 0.99, 0.05, LungRads::Cat4A)]);
        let routine = s(&[f(N, 7.0, 0.4, 0.05, LungRads::Cat3)]);
        let incon = triage(
            &[],
            LungRads::Cat0,
            String::new(),
            Some("x".into()),
            None,
            &r,
        )
        .triage_score;
        assert!((0.75..=1.0).contains(&urgent));
        assert!((0.5..0.75).contains(&prio));
        assert!(routine <= 0.4);
        assert!(urgent > prio && prio > incon && incon > routine);
        assert!(
            TriageRules::default()
                .describe()
                .contains("at most to priority")
        );
    }

    /// An opacity section with `right`/`left` involvement (percent of lung,
    /// consolidation mL) and a CT severity score.
    fn pattern(right: (f64, f64), left: (f64, f64), css: u8) -> Opacities {
        use crate::report::{LungOpacity, OpacityDistribution};
        let lung = |(p, c): (f64, f64)| LungOpacity {
            lung_ml: 2000.0,
            ground_glass_ml: 20.0 * p - c,
            consolidation_ml: c,
            percent_of_lung: p,
            ground_glass_percent: p - c / 20.0,
            consolidation_percent: c / 20.0,
            zones: Vec::new(),
        };
        Opacities {
            right: lung(right),
            left: lung(left),
            ct_severity_score: css,
            lobes: Vec::new(),
            lobe_method: String::new(),
            distribution: OpacityDistribution {
                laterality: "none".into(),
                peripheral_share: 0.0,
                lung_peripheral_share: 0.0,
                peripheral_mm: 20.0,
                axial: "none".into(),
                predominant_zone: None,
            },
            emphysema_laa950_percent: 0.0,
            most_affected_slice: None,
            method: String::new(),
        }
    }

    fn routine_exam() -> Exam {
        run(&[], &TriageRules::default())
    }

    /// Pattern rule 1 (Pan et al. 2020: 5 % is where a lobe's score goes from 1 to
    /// 2): a lung ≥ 5 % involved makes a routine exam priority; 4.9 % does not.
    #[test]
    fn pattern_involvement_5_percent_is_priority_pan_2020() {
        let rules = PatternRules::default();
        let e = escalate_pattern(
            routine_exam(),
            Some(&pattern((5.0, 0.0), (0.0, 0.0), 4)),
            &rules,
        );
        assert_eq!(e.triage_priority, Priority::Priority);
        assert_eq!(e.triage_basis, vec!["pattern"]);
        assert!(e.triage_reasons[0].starts_with("pattern: right lung 5.0 % involved"));
        let e = escalate_pattern(
            routine_exam(),
            Some(&pattern((4.9, 0.0), (0.0, 0.0), 4)),
            &rules,
        );
        assert_eq!(e.triage_priority, Priority::Routine);
    }

    /// Pattern rule 2 (project rule, PatternRules doc): ≥ 10 mL consolidation in a
    /// lung is priority even below 5 % involvement.
    #[test]
    fn pattern_consolidation_10_ml_is_priority() {
        let rules = PatternRules::default();
        let e = escalate_pattern(
            routine_exam(),
            Some(&pattern((0.0, 0.0), (1.0, 10.0), 2)),
            &rules,
        );
        assert_eq!(e.triage_priority, Priority::Priority);
        assert!(e.triage_reasons[0].contains("left lung consolidation 10.0 mL"));
        let e = escalate_pattern(
            routine_exam(),
            Some(&pattern((0.0, 0.0), (0.4, 9.9), 2)),
            &rules,
        );
        assert_eq!(e.triage_priority, Priority::Routine);
    }

    /// Pattern rule 3 (CT severity score of Pan et al. 2020, 0–25; cut-off 10 is
    /// this project's reading-order choice): ≥ 10 is urgent, 9 is not.
    #[test]
    fn pattern_severity_score_10_is_urgent_pan_2020() {
        let rules = PatternRules::default();
        let e = escalate_pattern(
            routine_exam(),
            Some(&pattern((20.0, 0.0), (20.0, 0.0), 10)),
            &rules,
        );
        assert_eq!(e.triage_priority, Priority::Urgent);
        assert!(e.triage_score >= 0.75);
        assert!(e.triage_reasons[0].starts_with("pattern: CT severity score 10/25"));
        let e = escalate_pattern(
            routine_exam(),
            Some(&pattern((20.0, 0.0), (20.0, 0.0), 9)),
            &rules,
        );
        assert_eq!(e.triage_priority, Priority::Priority);
        // Configurable: no urgent rule.
        let r = PatternRules {
            urgent_severity_score: None,
            ..PatternRules::default()
        };
        let e = escalate_pattern(
            routine_exam(),
            Some(&pattern((20.0, 0.0), (20.0, 0.0), 25)),
            &r,
        );
        assert_eq!(e.triage_priority, Priority::Priority);
    }

    /// The pattern never lowers a band, leaves an exam without opacities as it
    /// was, names no disease, and an input-inconclusive exam stays inconclusive;
    /// partial coverage alone gives way to a positive pattern (as to focal findings).
    #[test]
    fn pattern_only_raises_and_names_no_disease() {
        let rules = PatternRules::default();
        let urgent = run(
            &[f(N, 16.0, 0.1, 0.05, LungRads::Cat4B)],
            &TriageRules::default(),
        );
        let e = escalate_pattern(
            urgent.clone(),
            Some(&pattern((6.0, 0.0), (0.0, 0.0), 3)),
            &rules,
        );
        assert_eq!(e.triage_priority, Priority::Urgent);
        assert_eq!(e.triage_reasons[0], urgent.triage_reasons[0]);
        let none = escalate_pattern(
            urgent.clone(),
            Some(&pattern((0.0, 0.0), (0.0, 0.0), 0)),
            &rules,
        );
        assert_eq!(none, urgent);
        assert_eq!(escalate_pattern(urgent.clone(), None, &rules), urgent);
        let off = PatternRules {
            enabled: false,
            ..PatternRules::default()
        };
        let r0 = routine_exam();
        assert_eq!(
            escalate_pattern(
                r0.clone(),
                Some(&pattern((50.0, 30.0), (50.0, 0.0), 20)),
                &off
            ),
            r0
        );
        let e = escalate_pattern(r0, Some(&pattern((50.0, 30.0), (50.0, 0.0), 20)), &rules);
        for w in [
            "pneumonia",
            "covid",
            "infection",
            "cancer",
            "fibrosis",
            "edema",
        ] {
            assert!(!e.triage_reasons.join(" ").to_lowercase().contains(w));
        }
        let cats: Vec<LungRads> = vec![];
        let x = crate::lungrads::exam_category(&cats, None);
        let input = triage(
            &[],
            x.category,
            x.reason.clone(),
            Some("no lungs".into()),
            None,
            &TriageRules::default(),
        );
        assert_eq!(
            escalate_pattern(
                input.clone(),
                Some(&pattern((50.0, 30.0), (0.0, 0.0), 20)),
                &rules
            ),
            input
        );
        let partial = triage(
            &[],
            x.category,
            x.reason,
            None,
            Some("cut off".into()),
            &TriageRules::default(),
        );
        assert_eq!(partial.triage_priority, Priority::Inconclusive);
        let e = escalate_pattern(partial, Some(&pattern((6.0, 0.0), (0.0, 0.0), 2)), &rules);
        assert_eq!(e.triage_priority, Priority::Priority);
        assert_eq!(e.inconclusive_reason, None);
        assert!(e.triage_reasons.iter().any(|r| r.starts_with("coverage:")));
    }
}
