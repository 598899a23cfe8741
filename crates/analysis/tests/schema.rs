//! The report contract has one source, the Rust types: this test regenerates the
//! JSON Schema (`docs/report.schema.json`), the TypeScript declarations
//! (`wasm/js/report.d.ts`) and the schema embedded in the server's OpenAPI
//! document (`native-server/openapi.json`, `components.schemas.Report`) and fails
//! when a committed file differs. `CTT_WRITE_SCHEMA=1 cargo test -p
//! ct-triage-analysis --test schema` rewrites them.
//!
//! It also validates reports as `serde_json` writes them against the schema.

use std::path::{Path, PathBuf};

use ct_triage_analysis::report::schema::{
    WRITE_COMMAND, canonical_json, json_schema, openapi_component, typescript,
};
use ct_triage_analysis::report::{
    CandidateDecision, CandidateMeasure, CandidateRecord, Channel, NoduleType, Report, TypeScores,
};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn writing() -> bool {
    std::env::var_os("CTT_WRITE_SCHEMA").is_some_and(|v| v == "1")
}

/// Compare `path` (relative to the repository) with `expected`, or write it.
fn check_or_write(rel: &str, expected: &str) {
    let path = repo().join(rel);
    if writing() {
        std::fs::write(&path, expected).unwrap_or_else(|e| panic!("write {rel}: {e}"));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == expected,
        "{rel} is not what the Rust report types generate; rewrite it with\n    {WRITE_COMMAND}"
    );
}

/// Where the generated `Report` entry sits in openapi.json: from its key to the
/// end of `components.schemas` (it is the last entry there).
const OPENAPI_KEY: &str = "\n      \"Report\": ";
const OPENAPI_SCHEMAS_END: &str = "\n    },\n    \"responses\": {";

fn openapi_text(current: &str, component: &Value) -> String {
    let entry = canonical_json(component, 3);
    let end = current
        .find(OPENAPI_SCHEMAS_END)
        .expect("openapi.json: components.schemas followed by responses");
    match current.find(OPENAPI_KEY) {
        Some(start) if start < end => format!(
            "{}{OPENAPI_KEY}{entry}{}",
            &current[..start],
            &current[end..]
        ),
        _ => format!(
            "{},{OPENAPI_KEY}{entry}{}",
            &current[..end],
            &current[end..]
        ),
    }
}

#[test]
fn generated_files_match_the_rust_types() {
    let schema = json_schema();
    check_or_write("docs/report.schema.json", &canonical_json(&schema, 0));
    check_or_write("wasm/js/report.d.ts", &typescript(&schema));

    let rel = "native-server/openapi.json";
    let current = std::fs::read_to_string(repo().join(rel)).expect("openapi.json");
    let component = openapi_component(&schema);
    check_or_write(rel, &openapi_text(&current, &component));

    // The served document stays valid JSON and its report answer uses the component.
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(repo().join(rel)).unwrap())
        .expect("openapi.json parses");
    assert_eq!(doc["components"]["schemas"]["Report"], component);
    assert_eq!(
        doc["paths"]["/v1/jobs/{id}/report"]["get"]["responses"]["200"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/Report"
    );
}

#[test]
fn typescript_follows_serde_nullability() {
    let ts = typescript(&json_schema());
    // An `Option` serde always writes is `T | null`, never optional…
    assert!(ts.contains("  image_number: number | null;"), "{ts}");
    assert!(ts.contains("  calcification: Calcification | null;"));
    // …one it skips when `None` is optional and never null.
    assert!(ts.contains("  items?: CandidateRecord[];"));
    assert!(ts.contains("  measured?: CandidateMeasure;"));
    // Counts and indices are JSON numbers, fixed arrays tuples.
    assert!(ts.contains("  size_xyz: [number, number, number];"));
    assert!(!ts.contains("bigint"));
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft202012::new(&json_schema()).expect("the generated schema is valid")
}

fn assert_valid(v: &jsonschema::Validator, json: &str) {
    let value: Value = serde_json::from_str(json).unwrap();
    let errors: Vec<String> = v
        .iter_errors(&value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "report does not match the schema:\n{}",
        errors.join("\n")
    );
}

/// A stored report (native-server/tests/data, from a lung1 run), read as the
/// current types read it and written again as they write it, validates; so does
/// the same report with every optional part filled in (the explain list, type
/// scores, a measured candidate) and with the optional parts absent.
#[test]
fn reports_as_written_validate_against_the_schema() {
    let v = validator();
    let stored = std::fs::read_to_string(repo().join("native-server/tests/data/report.json"))
        .expect("stored report");
    let report: Report = serde_json::from_str(&stored).expect("stored report parses");
    assert!(!report.findings.is_empty());
    assert_valid(&v, &report.to_json());

    let mut full = report.clone();
    let f = &mut full.findings[0];
    f.type_model = Some(TypeScores {
        solid: 0.7,
        part_solid: 0.1,
        ground_glass: 0.1,
        calcified: 0.1,
        top: NoduleType::Solid,
    });
    f.type_hu_fraction = Some(NoduleType::Solid);
    f.image_number = Some(42);
    f.series_number = Some(3);
    full.candidates.items = Some(vec![CandidateRecord {
        channel: Channel::Mass,
        center_lps_mm: [1.0, 2.0, 3.0],
        slice_index: 4,
        radius_mm: 5.0,
        response: 6.0,
        patch_scale: 2,
        outputs: [("nodule".to_string(), 0.9)].into_iter().collect(),
        decision: CandidateDecision::Finding,
        finding_id: Some(1),
        reason: "kept".into(),
        measured: Some(CandidateMeasure {
            diameter_mm: 10.0,
            nodule_type: NoduleType::PartSolid,
            interior_hu_sd: 30.0,
        }),
    }]);
    assert_valid(&v, &full.to_json());

    let mut bare = report;
    bare.lungs = None;
    bare.findings.clear();
    bare.key_images.clear();
    bare.exam.lung_rads = None;
    assert_valid(&v, &bare.to_json());

    // And the schema does reject what the types never write.
    let mut broken: Value = serde_json::from_str(&full.to_json()).unwrap();
    broken["findings"][0]["lung_rads"] = Value::String("5".into());
    assert!(!v.is_valid(&broken));
    let mut missing: Value = serde_json::from_str(&full.to_json()).unwrap();
    missing["exam"]
        .as_object_mut()
        .unwrap()
        .remove("triage_priority");
    assert!(!v.is_valid(&missing));
}
