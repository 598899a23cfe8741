//! The classifier's output for one candidate, typed.

use std::collections::BTreeMap;

/// What the classifier says of one candidate: the manifest's outputs as
/// probabilities ([`ModelManifest::probabilities`](super::ModelManifest::probabilities)).
/// The outputs ct-triage uses are fields; any other output of a bring-your-own
/// model stays reachable in [`other`](Self::other) and in the explain list.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Prediction {
    /// Probability of a true nodule (required by every manifest).
    pub nodule: f32,
    /// AI malignancy score (required by every manifest).
    pub malignancy: f32,
    /// Nodule type: solid.
    pub solid: Option<f32>,
    /// Nodule type: part-solid.
    pub part_solid: Option<f32>,
    /// Nodule type: ground glass.
    pub ground_glass: Option<f32>,
    /// Calcified.
    pub calcified: Option<f32>,
    /// Spiculated margin.
    pub spiculation: Option<f32>,
    /// Every other output, by its manifest key.
    pub other: BTreeMap<String, f32>,
}

impl Prediction {
    /// From `(key, probability)` pairs (as [`ModelManifest::probabilities`](super::ModelManifest::probabilities)
    /// gives them). A missing `nodule` or `malignancy` reads 0.
    pub fn from_outputs(outputs: impl IntoIterator<Item = (String, f32)>) -> Prediction {
        let mut p = Prediction::default();
        for (k, v) in outputs {
            match k.as_str() {
                "nodule" => p.nodule = v,
                "malignancy" => p.malignancy = v,
                "solid" => p.solid = Some(v),
                "part_solid" => p.part_solid = Some(v),
                "ground_glass" => p.ground_glass = Some(v),
                "calcified" => p.calcified = Some(v),
                "spiculation" => p.spiculation = Some(v),
                _ => {
                    p.other.insert(k, v);
                }
            }
        }
        p
    }

    /// The output named `key` (a manifest key), if the model has it.
    pub fn get(&self, key: &str) -> Option<f32> {
        match key {
            "nodule" => Some(self.nodule),
            "malignancy" => Some(self.malignancy),
            "solid" => self.solid,
            "part_solid" => self.part_solid,
            "ground_glass" => self.ground_glass,
            "calcified" => self.calcified,
            "spiculation" => self.spiculation,
            other => self.other.get(other).copied(),
        }
    }

    /// Every output by key, sorted (the report's explain list).
    pub fn to_map(&self) -> BTreeMap<String, f32> {
        let mut m = self.other.clone();
        m.insert("nodule".into(), self.nodule);
        m.insert("malignancy".into(), self.malignancy);
        for (k, v) in [
            ("solid", self.solid),
            ("part_solid", self.part_solid),
            ("ground_glass", self.ground_glass),
            ("calcified", self.calcified),
            ("spiculation", self.spiculation),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), v);
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_outputs_are_fields_and_unknown_ones_stay_reachable() {
        let p = Prediction::from_outputs([
            ("nodule".to_string(), 0.9),
            ("malignancy".to_string(), 0.3),
            ("spiculation".to_string(), 0.6),
            ("cavitation".to_string(), 0.2),
        ]);
        assert_eq!(
            (p.nodule, p.malignancy, p.spiculation),
            (0.9, 0.3, Some(0.6))
        );
        assert_eq!(p.solid, None);
        assert_eq!(p.get("cavitation"), Some(0.2));
        assert_eq!(p.get("solid"), None);
        let m = p.to_map();
        assert_eq!(
            m.keys().map(String::as_str).collect::<Vec<_>>(),
            ["cavitation", "malignancy", "nodule", "spiculation"]
        );
        assert_eq!(Prediction::from_outputs(m), p);
    }
}
