//! Options from JavaScript: a small JSON object mapped onto the core's defaults.

use ct_triage_core::ingest::IngestOptions;
use ct_triage_core::pipeline::{AnalysisOptions, PatientOverrides};
use serde::Deserialize;

use crate::error::WasmError;

/// What a JavaScript caller may set; everything else keeps the defaults of
/// the native CLI, so the same input gives the same report.
///
/// ```json
/// {"series": "1.2.3…", "patient": {"age_years": 64, "female": true}, "keyImages": true}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AnalyzeOptions {
    /// Series to load (a series key or Series Instance UID) instead of the automatic choice.
    pub series: Option<String>,
    /// Patient information the DICOM header lacks (age, sex, history).
    pub patient: Option<PatientOverrides>,
    /// Render key images (default true).
    pub key_images: Option<bool>,
    /// Most findings reported (default 10).
    pub max_findings: Option<usize>,
    /// List every candidate in the report (`candidates.items`: channel, position,
    /// scale, classifier outputs, why it was kept or dropped). Default false.
    pub explain: Option<bool>,
}

impl AnalyzeOptions {
    /// Parse the JSON options (`None`, empty or `null` → defaults).
    pub fn parse(json: Option<&str>) -> Result<Self, WasmError> {
        match json.map(str::trim) {
            None | Some("") | Some("null") | Some("undefined") => Ok(Self::default()),
            Some(s) => {
                serde_json::from_str(s).map_err(|e| WasmError::invalid(format!("options: {e}")))
            }
        }
    }

    /// Ingest options for `inspect` (as the native `ct-triage inspect`).
    pub fn ingest_options(&self) -> IngestOptions {
        IngestOptions {
            series: self.series.clone(),
            ..IngestOptions::default()
        }
    }

    /// Pipeline options for `analyze` (as the native `ct-triage analyze`).
    pub fn analysis_options(&self) -> AnalysisOptions {
        let mut o = AnalysisOptions::default();
        if let Some(s) = &self.series {
            o.ingest.series = Some(s.clone());
        }
        if let Some(p) = &self.patient {
            o.patient = p.clone();
        }
        if let Some(k) = self.key_images {
            o.key_images = k;
        }
        if let Some(m) = self.max_findings {
            o.max_findings = m;
        }
        if let Some(e) = self.explain {
            o.explain = e;
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_core() {
        let o = AnalyzeOptions::parse(None).unwrap();
        assert_eq!(o.analysis_options(), AnalysisOptions::default());
        assert_eq!(AnalyzeOptions::parse(Some(" null ")).unwrap(), o);
    }

    #[test]
    fn fields_map_onto_the_core_options() {
        let o = AnalyzeOptions::parse(Some(
            r#"{"series":"1.2.3","keyImages":false,"maxFindings":3,"patient":{"age_years":70,"female":true}}"#,
        ))
        .unwrap()
        .analysis_options();
        assert_eq!(o.ingest.series.as_deref(), Some("1.2.3"));
        assert!(!o.key_images);
        assert_eq!(o.max_findings, 3);
        assert_eq!(o.patient.age_years, Some(70.0));
        assert_eq!(o.patient.female, Some(true));
    }

    #[test]
    fn bad_options_are_an_invalid_argument() {
        let e = AnalyzeOptions::parse(Some(r#"{"sieries":"x"}"#)).unwrap_err();
        assert_eq!(e.code, "invalid_argument");
        let e = AnalyzeOptions::parse(Some("{")).unwrap_err();
        assert_eq!(e.code, "invalid_argument");
    }
}
