//! Risk — the Brock (PanCan) full model with spiculation.
//!
//! McWilliams A, et al. *Probability of cancer in pulmonary nodules detected
//! on first screening CT.* N Engl J Med 2013;369:910–919 (full model, Table 3):
//!
//! ```text
//! logit = −6.7892 + 0.0287·(age−62) + 0.6011·female + 0.2961·family history
//!       + 0.2953·emphysema − 5.3854·((d/10)^−0.5 − 1.58113883) + 0.377·part-solid
//!       − 0.1276·non-solid + 0.6581·upper lobe − 0.0824·(nodule count − 4)
//!       + 0.7729·spiculation
//! ```
//!
//! with d the nodule size in mm. In PanCan the nodule size is the nodule's
//! **longest diameter** (McWilliams et al. 2013; the British Thoracic Society
//! guideline, Callister et al., Thorax 2015;70 Suppl 2:ii1–ii54, enters the
//! maximum nodule diameter into the Brock model likewise). The pipeline
//! therefore passes the long axis, not the Lung-RADS mean diameter.

use serde::{Deserialize, Serialize};

use crate::report::NoduleType;

/// Inputs of the Brock model for one nodule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BrockInputs {
    /// Age in years.
    pub age_years: f64,
    /// Female sex.
    pub female: bool,
    /// Family history of lung cancer.
    pub family_history: bool,
    /// Emphysema on CT.
    pub emphysema: bool,
    /// Nodule size in mm: its longest diameter (the long axis), as in PanCan.
    pub diameter_mm: f64,
    /// Nodule type (part-solid and non-solid/ground-glass change the risk).
    pub nodule_type: NoduleType,
    /// Upper lobe location.
    pub upper_lobe: bool,
    /// Number of nodules in the scan.
    pub nodule_count: usize,
    /// Spiculation present.
    pub spiculation: bool,
}

/// The Brock logit.
pub fn brock_logit(x: &BrockInputs) -> f64 {
    let d = x.diameter_mm.max(0.5);
    let b = |v: bool| if v { 1.0 } else { 0.0 };
    -6.7892
        + 0.0287 * (x.age_years - 62.0)
        + 0.6011 * b(x.female)
        + 0.2961 * b(x.family_history)
        + 0.2953 * b(x.emphysema)
        - 5.3854 * ((d / 10.0).powf(-0.5) - 1.58113883)
        + 0.377 * b(x.nodule_type == NoduleType::PartSolid)
        - 0.1276 * b(x.nodule_type == NoduleType::GroundGlass)
        + 0.6581 * b(x.upper_lobe)
        - 0.0824 * (x.nodule_count as f64 - 4.0)
        + 0.7729 * b(x.spiculation)
}

/// The Brock probability of malignancy, in [0, 1].
pub fn brock_probability(x: &BrockInputs) -> f64 {
    1.0 / (1.0 + (-brock_logit(x)).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> BrockInputs {
        BrockInputs {
            age_years: 62.0,
            female: false,
            family_history: false,
            emphysema: false,
            diameter_mm: 10.0,
            nodule_type: NoduleType::Solid,
            upper_lobe: false,
            nodule_count: 4,
            spiculation: false,
        }
    }

    /// Hand-computed: at the reference point (62 y, male, 10 mm, 4 nodules) every
    /// term but the intercept vanishes ((10/10)^-0.5 − 1.58113883 = −0.58113883).
    #[test]
    fn reference_point() {
        let want = -6.7892 - 5.3854 * (1.0 - 1.58113883);
        assert!((brock_logit(&base()) - want).abs() < 1e-12);
        // −6.7892 + 3.12966… = −3.65954…; p = 1/(1+e^3.65954) = 0.02510…
        let p = brock_probability(&base());
        assert!((p - 0.025102).abs() < 1e-5, "{p}");
    }

    /// Hand-computed worst case: 70 y female, family history, emphysema, 25 mm
    /// part-solid spiculated upper-lobe single nodule.
    #[test]
    fn high_risk_case() {
        let x = BrockInputs {
            age_years: 70.0,
            female: true,
            family_history: true,
            emphysema: true,
            diameter_mm: 25.0,
            nodule_type: NoduleType::PartSolid,
            upper_lobe: true,
            nodule_count: 1,
            spiculation: true,
        };
        let size = -5.3854 * ((2.5f64).powf(-0.5) - 1.58113883);
        let want = -6.7892 + 0.0287 * 8.0 + 0.6011 + 0.2961 + 0.2953 + size + 0.377 + 0.6581
            - 0.0824 * -3.0
            + 0.7729;
        assert!((brock_logit(&x) - want).abs() < 1e-12);
        let p = brock_probability(&x);
        assert!((p - 1.0 / (1.0 + (-want).exp())).abs() < 1e-12);
        // size term 5.10903…; logit 1.79720…; p 0.85780…
        assert!((p - 0.857800).abs() < 1e-5, "{p}");
    }

    /// lung1 finding 1 (issue 12): long axis 17.0 mm, mean diameter 15.2 mm,
    /// solid, not spiculated, 2 nodules, 62-year-old man (defaults). With the
    /// mean diameter the pipeline gave 0.1395; with the long axis, as PanCan
    /// defines nodule size, it is 0.1706 (upper lobe) — hand-computed:
    /// size term −5.3854 × (1.7^−0.5 − 1.58113883) = 4.38465; logit
    /// −6.7892 + 4.38465 + 0.6581 − 0.0824 × (2 − 4) = −1.58165; p = 0.17056.
    /// Without the upper-lobe term (lobe unknown: the model's reference)
    /// logit −2.23975, p = 0.09624.
    #[test]
    fn lung1_finding_1_with_the_long_axis() {
        let x = |d: f64, upper: bool| BrockInputs {
            diameter_mm: d,
            upper_lobe: upper,
            nodule_count: 2,
            ..base()
        };
        let mean = brock_probability(&x(15.2, true));
        assert!((mean - 0.1395).abs() < 5e-5, "{mean}");
        let long = brock_probability(&x(17.0, true));
        assert!((brock_logit(&x(17.0, true)) - -1.581_648).abs() < 1e-5);
        assert!((long - 0.17056).abs() < 5e-5, "{long}");
        let unknown_lobe = brock_probability(&x(17.0, false));
        assert!((unknown_lobe - 0.09624).abs() < 5e-5, "{unknown_lobe}");
    }

    #[test]
    fn each_term_moves_the_logit_as_published() {
        let b = brock_logit(&base());
        let with = |f: &dyn Fn(&mut BrockInputs)| {
            let mut x = base();
            f(&mut x);
            brock_logit(&x) - b
        };
        assert!((with(&|x| x.female = true) - 0.6011).abs() < 1e-12);
        assert!((with(&|x| x.family_history = true) - 0.2961).abs() < 1e-12);
        assert!((with(&|x| x.emphysema = true) - 0.2953).abs() < 1e-12);
        assert!((with(&|x| x.nodule_type = NoduleType::PartSolid) - 0.377).abs() < 1e-12);
        assert!((with(&|x| x.nodule_type = NoduleType::GroundGlass) + 0.1276).abs() < 1e-12);
        assert!((with(&|x| x.upper_lobe = true) - 0.6581).abs() < 1e-12);
        assert!((with(&|x| x.spiculation = true) - 0.7729).abs() < 1e-12);
        assert!((with(&|x| x.nodule_count = 5) + 0.0824).abs() < 1e-12);
        assert!((with(&|x| x.age_years = 72.0) - 0.287).abs() < 1e-12);
        // Larger nodules are riskier.
        assert!(with(&|x| x.diameter_mm = 20.0) > 0.0);
        assert!(with(&|x| x.diameter_mm = 4.0) < 0.0);
    }
}
