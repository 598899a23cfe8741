//! Lung-RADS v2022 categories for a baseline screening CT (per nodule and per
//! exam) and the v2022 management recommendation of each category.
//!
//! Source: ACR Lung-RADS v2022 (American College of Radiology, released
//! November 2022; summarised in Christensen J et al., *ACR Lung-RADS v2022:
//! Assessment Categories and Management Recommendations*, CHEST
//! 2024;165(3):738–753).
//!
//! | category | rule applied here (baseline exam) |
//! |---|---|
//! | 0 | part or all of the lungs cannot be evaluated (exam level) |
//! | 1 | no nodules; or benign calcification: complete, central, popcorn, concentric rings |
//! | 2 | solid < 6 mm; part-solid < 6 mm total; ground-glass < 30 mm; juxtapleural solid < 10 mm with smooth margins and oval, lentiform or triangular shape |
//! | 3 | solid 6 – < 8 mm; part-solid ≥ 6 mm total with solid part < 6 mm; ground-glass ≥ 30 mm |
//! | 4A | solid 8 – < 15 mm; part-solid with solid part 6 – < 8 mm |
//! | 4B | solid ≥ 15 mm; part-solid with solid part ≥ 8 mm |
//! | 4X | category 3 or 4 with additional features that increase suspicion (here: spiculation) |
//!
//! Sizes are mean diameters (mean of long and short axis) rounded to one
//! decimal, as v2022 asks. The exam category is the highest nodule category
//! (1 without nodules) — or 0 when part of the lungs was not evaluated; the
//! highest nodule category is then still reported.
//!
//! Not applied (stated in every report, see [`crate::report::LIMITS`]):
//! growth, stability and new-nodule rules (they need prior exams); fat-containing
//! nodules; endobronchial / airway nodules; atypical pulmonary cysts; the S modifier;
//! infectious/inflammatory category 0; perifissural location (fissures are not
//! segmented: only pleural contact is known).

use crate::calcification::CalcificationPattern;
use crate::report::{LungRads, NoduleType};

/// The inputs Lung-RADS needs for one nodule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoduleForRads {
    /// Attenuation type (`Calcified` only for a benign calcification pattern).
    pub nodule_type: NoduleType,
    /// Mean diameter (mm, rounded to 0.1).
    pub diameter_mm: f64,
    /// Mean diameter of the solid component (part-solid), mm.
    pub solid_component_mm: Option<f64>,
    /// Additional suspicious features present (spiculation).
    pub suspicious_features: bool,
    /// Calcification pattern, when one was assessed.
    pub calcification: Option<CalcificationPattern>,
    /// Touches the pleura (juxtapleural).
    pub juxtapleural: bool,
    /// Smooth margins and an oval, lentiform or triangular shape (see [`crate::morphology`]).
    pub benign_shape: bool,
}

impl NoduleForRads {
    /// A nodule of `nodule_type` and mean diameter `diameter_mm`, nothing else known.
    pub fn new(nodule_type: NoduleType, diameter_mm: f64) -> Self {
        NoduleForRads {
            nodule_type,
            diameter_mm,
            solid_component_mm: None,
            suspicious_features: false,
            calcification: None,
            juxtapleural: false,
            benign_shape: false,
        }
    }
}

/// Mean diameter below which a smooth juxtapleural solid nodule is category 2 (v2022: < 10 mm).
pub const JUXTAPLEURAL_MAX_MM: f64 = 10.0;

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Category of one nodule with the rule that decided it.
pub fn categorize(n: &NoduleForRads) -> (LungRads, String) {
    let d = round1(n.diameter_mm);
    let calc_note = match n.calcification {
        Some(p) if p != CalcificationPattern::Absent && !p.is_benign() => {
            format!(", {} calcification (not a benign pattern)", p.as_str())
        }
        _ => String::new(),
    };
    // v2022 category 1: benign calcification patterns.
    if n.nodule_type == NoduleType::Calcified
        || n.calcification.is_some_and(CalcificationPattern::is_benign)
    {
        let p = n
            .calcification
            .filter(|p| p.is_benign())
            .map_or("benign", CalcificationPattern::as_str);
        return (
            LungRads::Cat1,
            format!("{p} calcification: benign pattern (category 1)"),
        );
    }
    let (cat, why) = match n.nodule_type {
        // Returned above; kept total without a panic.
        NoduleType::Calcified => (LungRads::Cat1, "benign calcification".to_string()),
        NoduleType::Solid => {
            if d < 6.0 {
                (LungRads::Cat2, format!("solid {d} mm < 6 mm"))
            } else if d < 8.0 {
                (LungRads::Cat3, format!("solid {d} mm, 6 to < 8 mm"))
            } else if d < 15.0 {
                (LungRads::Cat4A, format!("solid {d} mm, 8 to < 15 mm"))
            } else {
                (LungRads::Cat4B, format!("solid {d} mm ≥ 15 mm"))
            }
        }
        NoduleType::PartSolid => {
            let s = n.solid_component_mm.map(round1).unwrap_or(0.0);
            if d < 6.0 {
                (LungRads::Cat2, format!("part-solid {d} mm total < 6 mm"))
            } else if s < 6.0 {
                (
                    LungRads::Cat3,
                    format!("part-solid {d} mm total ≥ 6 mm, solid part {s} mm < 6 mm"),
                )
            } else if s < 8.0 {
                (
                    LungRads::Cat4A,
                    format!("part-solid, solid part {s} mm, 6 to < 8 mm"),
                )
            } else {
                (
                    LungRads::Cat4B,
                    format!("part-solid, solid part {s} mm ≥ 8 mm"),
                )
            }
        }
        NoduleType::GroundGlass => {
            if d < 30.0 {
                (LungRads::Cat2, format!("ground-glass {d} mm < 30 mm"))
            } else {
                (LungRads::Cat3, format!("ground-glass {d} mm ≥ 30 mm"))
            }
        }
    };
    // v2022 category 2: juxtapleural solid < 10 mm, smooth, oval/lentiform/triangular
    // (it only changes the outcome where the size alone gives 3 or 4A).
    if n.nodule_type == NoduleType::Solid
        && cat > LungRads::Cat2
        && n.juxtapleural
        && n.benign_shape
        && !n.suspicious_features
        && d < JUXTAPLEURAL_MAX_MM
    {
        return (
            LungRads::Cat2,
            format!(
                "juxtapleural solid {d} mm < 10 mm with smooth margins and oval, lentiform or \
                 triangular shape (v2022 category 2; by size alone {}){calc_note}",
                cat.as_str()
            ),
        );
    }
    let why = format!("{why}{calc_note}");
    if n.suspicious_features && cat >= LungRads::Cat3 {
        return (LungRads::Cat4X, format!("{why}, with spiculation (4X)"));
    }
    (cat, why)
}

/// The exam-level category and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ExamCategory {
    /// The exam category (0 when part of the lungs was not evaluated).
    pub category: LungRads,
    /// The highest nodule category (`None` without nodules).
    pub highest_nodule: Option<LungRads>,
    /// Why this category.
    pub reason: String,
}

/// Exam category: 0 with the reason when part or all of the lungs cannot be
/// evaluated (`incomplete`); otherwise the highest nodule category, 1 without nodules.
pub fn exam_category(cats: &[LungRads], incomplete: Option<&str>) -> ExamCategory {
    let highest = cats.iter().copied().max();
    if let Some(why) = incomplete {
        let also = highest
            .map(|c| {
                format!(
                    "; the highest category among the nodules seen is {}",
                    c.as_str()
                )
            })
            .unwrap_or_default();
        return ExamCategory {
            category: LungRads::Cat0,
            highest_nodule: highest,
            reason: format!("incomplete: {why}{also}"),
        };
    }
    match highest {
        None => ExamCategory {
            category: LungRads::Cat1,
            highest_nodule: None,
            reason: "no lung nodules found".into(),
        },
        Some(c) => ExamCategory {
            category: c,
            highest_nodule: Some(c),
            reason: format!("highest nodule category {}", c.as_str()),
        },
    }
}

/// The v2022 management recommendation of a category at a baseline screening
/// exam (paraphrased from the ACR Lung-RADS v2022 table; not a substitute for it).
pub fn management(c: LungRads) -> &'static str {
    match c {
        LungRads::Cat0 => {
            "Incomplete: additional lung cancer screening CT imaging and/or comparison with \
             prior chest CT examinations is needed"
        }
        LungRads::Cat1 | LungRads::Cat2 => "Continue annual screening with LDCT in 12 months",
        LungRads::Cat3 => "6-month LDCT",
        LungRads::Cat4A => {
            "3-month LDCT; PET/CT may be considered if there is a solid nodule or solid \
             component ≥ 8 mm"
        }
        LungRads::Cat4B | LungRads::Cat4X => {
            "Diagnostic chest CT with or without contrast; PET/CT may be considered if there is \
             a solid nodule or solid component ≥ 8 mm; tissue sampling; and/or referral for \
             further clinical evaluation (depending on the probability of malignancy and \
             comorbidities)"
        }
    }
}

/// What the management text assumes, shown with it.
pub const MANAGEMENT_NOTE: &str = "Lung-RADS v2022 management for a baseline screening exam: \
growth, stability and new-nodule rules need prior exams, which this analysis does not see.";

#[cfg(test)]
mod tests {
    //! Every boundary of the ACR Lung-RADS v2022 baseline table (sizes are
    //! mean diameters to one decimal: "report mean nodule diameter to one
    //! decimal point").
    use super::*;
    use LungRads::*;
    use NoduleType::*;

    fn cat(t: NoduleType, d: f64, s: Option<f64>, x: bool) -> LungRads {
        categorize(&NoduleForRads {
            solid_component_mm: s,
            suspicious_features: x,
            ..NoduleForRads::new(t, d)
        })
        .0
    }

    /// v2022 solid: 2 "< 6 mm (< 113 mm³)"; 3 "≥ 6 to < 8 mm"; 4A "≥ 8 to < 15 mm"; 4B "≥ 15 mm".
    #[test]
    fn solid_boundaries() {
        assert_eq!(cat(Solid, 5.9, None, false), Cat2);
        assert_eq!(cat(Solid, 5.95, None, false), Cat3); // rounds to 6.0
        assert_eq!(cat(Solid, 5.94, None, false), Cat2); // rounds to 5.9
        assert_eq!(cat(Solid, 6.0, None, false), Cat3);
        assert_eq!(cat(Solid, 7.9, None, false), Cat3);
        assert_eq!(cat(Solid, 8.0, None, false), Cat4A);
        assert_eq!(cat(Solid, 14.9, None, false), Cat4A);
        assert_eq!(cat(Solid, 15.0, None, false), Cat4B);
        assert_eq!(cat(Solid, 45.0, None, false), Cat4B);
    }

    /// v2022 part-solid: 2 "< 6 mm total diameter"; 3 "≥ 6 mm total with solid
    /// component < 6 mm"; 4A "solid component ≥ 6 to < 8 mm"; 4B "solid component ≥ 8 mm".
    #[test]
    fn part_solid_boundaries() {
        assert_eq!(cat(PartSolid, 5.9, Some(3.0), false), Cat2);
        assert_eq!(cat(PartSolid, 6.0, Some(5.9), false), Cat3);
        assert_eq!(cat(PartSolid, 12.0, None, false), Cat3);
        assert_eq!(cat(PartSolid, 12.0, Some(6.0), false), Cat4A);
        assert_eq!(cat(PartSolid, 12.0, Some(7.9), false), Cat4A);
        assert_eq!(cat(PartSolid, 12.0, Some(8.0), false), Cat4B);
    }

    /// v2022 non-solid (GGN): 2 "< 30 mm (< 14 137 mm³)"; 3 "≥ 30 mm".
    #[test]
    fn ground_glass_boundaries() {
        assert_eq!(cat(GroundGlass, 29.9, None, false), Cat2);
        assert_eq!(cat(GroundGlass, 30.0, None, false), Cat3);
    }

    /// v2022 category 1: "nodule(s) with specific calcifications: complete,
    /// central, popcorn, concentric rings and fat-containing nodules". Other
    /// calcification (eccentric, stippled) does not make a nodule benign: the
    /// 14 mm solid nodule with an eccentric calcification is 4A by size.
    #[test]
    fn only_benign_calcification_patterns_are_category_1() {
        use CalcificationPattern as P;
        let with = |t, d, p, x| {
            categorize(&NoduleForRads {
                calcification: Some(p),
                suspicious_features: x,
                ..NoduleForRads::new(t, d)
            })
        };
        for p in [P::Complete, P::Central, P::Laminated, P::Popcorn] {
            assert_eq!(with(Calcified, 20.0, p, false).0, Cat1, "{p:?}");
            assert_eq!(with(Solid, 20.0, p, false).0, Cat1, "{p:?}");
        }
        let (c, why) = with(Solid, 14.0, P::Eccentric, false);
        assert_eq!(c, Cat4A, "{why}");
        assert!(
            why.contains("eccentric calcification (not a benign pattern)"),
            "{why}"
        );
        assert_eq!(with(Solid, 14.0, P::Stippled, false).0, Cat4A);
        assert_eq!(with(Solid, 16.0, P::Stippled, false).0, Cat4B);
        assert_eq!(with(Solid, 7.0, P::Eccentric, true).0, Cat4X);
        assert_eq!(with(Solid, 5.0, P::Eccentric, false).0, Cat2);
        assert_eq!(with(Solid, 14.0, P::Absent, false).0, Cat4A);
    }

    /// v2022 category 2: "juxtapleural nodule(s): < 10 mm (< 524 mm³) mean
    /// diameter at baseline or new, and: solid; smooth margins; and oval,
    /// lentiform or triangular shape". Otherwise the size rules apply.
    #[test]
    fn smooth_juxtapleural_solid_below_10_mm_is_category_2() {
        let j = |t, d, pleura, shape, spic| {
            categorize(&NoduleForRads {
                juxtapleural: pleura,
                benign_shape: shape,
                suspicious_features: spic,
                ..NoduleForRads::new(t, d)
            })
            .0
        };
        assert_eq!(j(Solid, 9.9, true, true, false), Cat2);
        assert_eq!(j(Solid, 9.94, true, true, false), Cat2); // rounds to 9.9
        assert_eq!(j(Solid, 6.5, true, true, false), Cat2);
        assert_eq!(j(Solid, 10.0, true, true, false), Cat4A);
        assert_eq!(j(Solid, 9.96, true, true, false), Cat4A); // rounds to 10.0
        assert_eq!(j(Solid, 9.0, false, true, false), Cat4A); // not at the pleura
        assert_eq!(j(Solid, 9.0, true, false, false), Cat4A); // irregular margins
        assert_eq!(j(Solid, 7.0, true, true, true), Cat4X); // spiculated: not smooth
        assert_eq!(j(PartSolid, 9.0, true, true, false), Cat3); // solid only
        assert_eq!(j(GroundGlass, 9.0, true, true, false), Cat2);
    }

    /// v2022 4X: "category 3 or 4 nodules with additional features or imaging
    /// findings that increase the suspicion for lung cancer".
    #[test]
    fn four_x_needs_category_three_or_four() {
        assert_eq!(cat(Solid, 5.0, None, true), Cat2);
        assert_eq!(cat(Solid, 6.0, None, true), Cat4X);
        assert_eq!(cat(Solid, 9.0, None, true), Cat4X);
        assert_eq!(cat(Solid, 20.0, None, true), Cat4X);
        assert_eq!(cat(GroundGlass, 31.0, None, true), Cat4X);
        assert_eq!(cat(GroundGlass, 20.0, None, true), Cat2);
    }

    /// v2022 category 0: "part or all of lungs cannot be evaluated"; the exam
    /// is otherwise coded by "the nodule with the highest degree of suspicion".
    #[test]
    fn exam_is_highest_or_zero_when_incomplete() {
        assert_eq!(exam_category(&[], None).category, Cat1);
        assert_eq!(exam_category(&[Cat2, Cat4A, Cat3], None).category, Cat4A);
        assert_eq!(exam_category(&[Cat4B, Cat4X], None).category, Cat4X);
        let e = exam_category(&[Cat4B, Cat2], Some("the lungs extend beyond the scan"));
        assert_eq!(e.category, Cat0);
        assert_eq!(e.highest_nodule, Some(Cat4B));
        assert!(
            e.reason
                .starts_with("incomplete: the lungs extend beyond the scan")
        );
        assert!(e.reason.contains("4B"), "{}", e.reason);
        let e = exam_category(&[], Some("no lungs found"));
        assert_eq!((e.category, e.highest_nodule), (Cat0, None));
        assert_eq!(LungRads::Cat0.as_str(), "0");
        assert!(Cat0 < Cat1);
    }

    /// v2022 management column (baseline): 1–2 "12-month screening LDCT",
    /// 3 "6-month LDCT", 4A "3-month LDCT; PET/CT may be considered …",
    /// 4B/4X "diagnostic chest CT with or without contrast; PET/CT …; tissue
    /// sampling; and/or referral for further clinical evaluation".
    #[test]
    fn management_text_per_category() {
        assert!(management(Cat0).contains("prior chest CT"));
        assert!(management(Cat1).contains("12 months"));
        assert_eq!(management(Cat1), management(Cat2));
        assert!(management(Cat3).starts_with("6-month LDCT"));
        assert!(management(Cat4A).starts_with("3-month LDCT"));
        assert!(management(Cat4A).contains("PET/CT"));
        for c in [Cat4B, Cat4X] {
            let m = management(c);
            assert!(
                m.contains("Diagnostic chest CT with or without contrast"),
                "{m}"
            );
            assert!(m.contains("PET/CT") && m.contains("tissue sampling"), "{m}");
        }
        assert!(MANAGEMENT_NOTE.contains("baseline"));
    }
}
