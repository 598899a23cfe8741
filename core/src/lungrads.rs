//! Lung-RADS v2022 categories for a baseline screening CT (per nodule and per exam).
//!
//! | category | solid | part-solid | ground-glass |
//! |---|---|---|---|
//! | 1 | no nodules, or benign calcification | | |
//! | 2 | < 6 mm | < 6 mm total | < 30 mm |
//! | 3 | 6 – < 8 mm | ≥ 6 mm total, solid part < 6 mm | ≥ 30 mm |
//! | 4A | 8 – < 15 mm | solid part 6 – < 8 mm | |
//! | 4B | ≥ 15 mm | solid part ≥ 8 mm | |
//! | 4X | category 3 or 4 with additional suspicious features (e.g. spiculation) | | |
//!
//! Sizes are mean diameters rounded to one decimal. The exam category is the
//! highest nodule category (1 without nodules).

use crate::report::{LungRads, NoduleType};

/// The inputs Lung-RADS needs for one nodule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoduleForRads {
    /// Attenuation type.
    pub nodule_type: NoduleType,
    /// Mean diameter (mm, rounded to 0.1).
    pub diameter_mm: f64,
    /// Mean diameter of the solid component (part-solid), mm.
    pub solid_component_mm: Option<f64>,
    /// Additional suspicious features present (spiculation).
    pub suspicious_features: bool,
}

/// Category of one nodule with the rule that decided it.
pub fn categorize(n: &NoduleForRads) -> (LungRads, String) {
    let d = (n.diameter_mm * 10.0).round() / 10.0;
    let (cat, why) = match n.nodule_type {
        NoduleType::Calcified => (LungRads::Cat1, "benign (calcified) nodule".to_string()),
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
            let s = n
                .solid_component_mm
                .map(|s| (s * 10.0).round() / 10.0)
                .unwrap_or(0.0);
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
    if n.suspicious_features && cat >= LungRads::Cat3 {
        return (LungRads::Cat4X, format!("{why}, with spiculation (4X)"));
    }
    (cat, why)
}

/// Exam category: the highest nodule category, 1 without nodules.
pub fn exam_category(cats: &[LungRads]) -> LungRads {
    cats.iter().copied().max().unwrap_or(LungRads::Cat1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use LungRads::*;
    use NoduleType::*;

    fn cat(t: NoduleType, d: f64, s: Option<f64>, x: bool) -> LungRads {
        categorize(&NoduleForRads {
            nodule_type: t,
            diameter_mm: d,
            solid_component_mm: s,
            suspicious_features: x,
        })
        .0
    }

    #[test]
    fn solid_boundaries() {
        assert_eq!(cat(Solid, 5.9, None, false), Cat2);
        assert_eq!(cat(Solid, 5.95, None, false), Cat3); // rounds to 6.0
        assert_eq!(cat(Solid, 6.0, None, false), Cat3);
        assert_eq!(cat(Solid, 7.9, None, false), Cat3);
        assert_eq!(cat(Solid, 8.0, None, false), Cat4A);
        assert_eq!(cat(Solid, 14.9, None, false), Cat4A);
        assert_eq!(cat(Solid, 15.0, None, false), Cat4B);
        assert_eq!(cat(Solid, 45.0, None, false), Cat4B);
    }

    #[test]
    fn part_solid_boundaries() {
        assert_eq!(cat(PartSolid, 5.9, Some(3.0), false), Cat2);
        assert_eq!(cat(PartSolid, 6.0, Some(5.9), false), Cat3);
        assert_eq!(cat(PartSolid, 12.0, None, false), Cat3);
        assert_eq!(cat(PartSolid, 12.0, Some(6.0), false), Cat4A);
        assert_eq!(cat(PartSolid, 12.0, Some(7.9), false), Cat4A);
        assert_eq!(cat(PartSolid, 12.0, Some(8.0), false), Cat4B);
    }

    #[test]
    fn ground_glass_and_calcified() {
        assert_eq!(cat(GroundGlass, 29.9, None, false), Cat2);
        assert_eq!(cat(GroundGlass, 30.0, None, false), Cat3);
        assert_eq!(cat(Calcified, 20.0, None, true), Cat1);
    }

    #[test]
    fn four_x_needs_category_three_or_four() {
        assert_eq!(cat(Solid, 5.0, None, true), Cat2);
        assert_eq!(cat(Solid, 6.0, None, true), Cat4X);
        assert_eq!(cat(Solid, 9.0, None, true), Cat4X);
        assert_eq!(cat(Solid, 20.0, None, true), Cat4X);
        assert_eq!(cat(GroundGlass, 31.0, None, true), Cat4X);
    }

    #[test]
    fn exam_is_highest() {
        assert_eq!(exam_category(&[]), Cat1);
        assert_eq!(exam_category(&[Cat2, Cat4A, Cat3]), Cat4A);
        assert_eq!(exam_category(&[Cat4B, Cat4X]), Cat4X);
    }
}
