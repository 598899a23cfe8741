//! The report contract, generated from the Rust types: one source for the JSON
//! Schema (`docs/report.schema.json`), the TypeScript declarations of the npm
//! module (`wasm/js/report.d.ts`) and the report schema embedded in the server's
//! OpenAPI document (`native-server/openapi.json`, `components.schemas.Report`).
//!
//! The schema comes from the `schemars` derives on [`Report`] and every type it
//! embeds, with the *serialize* contract: a field is required unless serde may
//! skip it (`skip_serializing_if`), and an `Option` without that is `null` when
//! absent, exactly as `serde_json` writes the report. The TypeScript is written
//! from that schema by [`typescript`], a small generator for the subset of JSON
//! Schema that schemars emits for these types (objects, string enums, tuples,
//! maps, nullable types, `$ref`); it panics on anything else, so a new construct
//! is noticed by the drift test rather than mistranslated.
//!
//! Why not ts-rs: it maps `usize`/`u64`/`i64` to `bigint`, which `JSON.parse`
//! never yields, so every count and index of the report would need a per-field
//! override, and the TypeScript could then disagree with the JSON Schema; taking
//! both from one schema keeps them identical by construction.
//!
//! `crates/analysis/tests/schema.rs` regenerates all three and fails when a
//! committed file differs; `CTT_WRITE_SCHEMA=1 cargo test -p ct-triage-analysis
//! --test schema` rewrites them.

use std::fmt::Write as _;

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

use super::{REPORT_SCHEMA, Report};

/// The command that rewrites the generated files (printed by the drift test).
pub const WRITE_COMMAND: &str = "CTT_WRITE_SCHEMA=1 cargo test -p ct-triage-analysis --test schema";

/// JSON Schema (draft 2020-12) of [`Report`] as serialised, definitions under `$defs`.
pub fn json_schema() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator();
    let schema = generator.into_root_schema_for::<Report>();
    let mut value = schema.to_value();
    plain_descriptions(&mut value);
    if let Value::Object(root) = &mut value {
        root.insert(
            "$id".into(),
            Value::String(format!(
                "https://ct-triage.invalid/schema/{REPORT_SCHEMA}.json"
            )),
        );
    }
    value
}

/// Rustdoc links (`` [`LIMITS`] ``) in the doc comments become plain code
/// spans in the schema's descriptions: outside rustdoc they link nowhere.
fn plain_descriptions(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(d)) = m.get_mut("description") {
                *d = d.replace("[`", "`").replace("`]", "`");
            }
            m.values_mut().for_each(plain_descriptions);
        }
        Value::Array(a) => a.iter_mut().for_each(plain_descriptions),
        _ => {}
    }
}

/// The schema as embedded in an OpenAPI 3.1 document at
/// `#/components/schemas/Report`: `$schema` and `$id` dropped, every
/// `#/$defs/X` reference rewritten to `#/components/schemas/Report/$defs/X`.
pub fn openapi_component(schema: &Value) -> Value {
    fn rewrite(v: &mut Value) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get_mut("$ref")
                    && let Some(name) = r.strip_prefix("#/$defs/")
                {
                    *r = format!("#/components/schemas/Report/$defs/{name}");
                }
                m.values_mut().for_each(rewrite);
            }
            Value::Array(a) => a.iter_mut().for_each(rewrite),
            _ => {}
        }
    }
    let mut v = schema.clone();
    if let Value::Object(m) = &mut v {
        m.remove("$schema");
        m.remove("$id");
    }
    rewrite(&mut v);
    v
}

/// Pretty JSON with object keys sorted and a final newline: the same text
/// whatever `serde_json`'s map order is (`preserve_order` or not).
pub fn canonical_json(v: &Value, indent: usize) -> String {
    let mut out = String::new();
    write_json(&mut out, v, indent);
    out
}

fn write_json(out: &mut String, v: &Value, level: usize) {
    let pad = |n: usize| "  ".repeat(n);
    match v {
        Value::Object(m) if !m.is_empty() => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push_str("{\n");
            for (i, k) in keys.iter().enumerate() {
                out.push_str(&pad(level + 1));
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push_str(": ");
                write_json(out, &m[k.as_str()], level + 1);
                out.push_str(if i + 1 < keys.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(level));
            out.push('}');
        }
        Value::Array(a) if !a.is_empty() => {
            out.push_str("[\n");
            for (i, x) in a.iter().enumerate() {
                out.push_str(&pad(level + 1));
                write_json(out, x, level + 1);
                out.push_str(if i + 1 < a.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(level));
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// TypeScript declarations of the report (`wasm/js/report.d.ts`) from
/// [`json_schema`]'s output: one exported `interface` per object definition,
/// one exported `type` per other definition, and `Report` itself.
///
/// Required properties are plain, the others `?:`; a nullable schema becomes
/// `T | null`; integers and numbers are `number`; fixed-length arrays are
/// tuples; maps are `Record<string, T>`. Descriptions become doc comments.
pub fn typescript(schema: &Value) -> String {
    let mut out = String::new();
    out.push_str(
        "// The report types (schema `ct-triage/report/v1`), generated from the Rust types of\n\
         // crates/analysis (src/report/schema.rs). Do not edit: rewrite with\n",
    );
    let _ = writeln!(out, "//   {WRITE_COMMAND}");
    out.push_str("// The same contract as JSON Schema: docs/report.schema.json.\n");
    let root = schema.as_object().expect("the schema is an object");
    let mut defs: Vec<(&str, &Value)> = vec![("Report", schema)];
    if let Some(Value::Object(d)) = root.get("$defs") {
        let mut names: Vec<&String> = d.keys().collect();
        names.sort();
        defs.extend(names.into_iter().map(|n| (n.as_str(), &d[n.as_str()])));
    }
    for (name, def) in defs {
        out.push('\n');
        doc(&mut out, def, "");
        let obj = def.as_object().expect("a definition is an object");
        if obj.get("type") == Some(&Value::String("object".into()))
            && obj.contains_key("properties")
        {
            let _ = writeln!(out, "export interface {name} {}", object_body(obj, ""));
        } else {
            let _ = writeln!(out, "export type {name} = {};", ts_type(def, ""));
        }
    }
    out
}

fn doc(out: &mut String, v: &Value, indent: &str) {
    let Some(d) = v.get("description").and_then(Value::as_str) else {
        return;
    };
    let d = d.replace("*/", "*\\/");
    let lines: Vec<&str> = d.lines().collect();
    if lines.len() == 1 {
        let _ = writeln!(out, "{indent}/** {} */", lines[0]);
    } else {
        let _ = writeln!(out, "{indent}/**");
        for l in lines {
            let _ = writeln!(out, "{indent} *{}{l}", if l.is_empty() { "" } else { " " });
        }
        let _ = writeln!(out, "{indent} */");
    }
}

fn object_body(obj: &Map<String, Value>, indent: &str) -> String {
    let props = obj["properties"]
        .as_object()
        .expect("properties is an object");
    let required: Vec<&str> = obj
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let inner = format!("{indent}  ");
    let mut keys: Vec<&String> = props.keys().collect();
    keys.sort();
    let mut s = String::from("{\n");
    for k in keys {
        let p = &props[k.as_str()];
        doc(&mut s, p, &inner);
        let opt = if required.contains(&k.as_str()) {
            ""
        } else {
            "?"
        };
        let _ = writeln!(s, "{inner}{k}{opt}: {};", ts_type(p, &inner));
    }
    s.push_str(indent);
    s.push('}');
    s
}

fn ts_type(v: &Value, indent: &str) -> String {
    let obj = match v {
        Value::Bool(true) => return "unknown".into(),
        Value::Object(o) => o,
        other => panic!("unsupported schema {other}"),
    };
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        let name = r
            .strip_prefix("#/$defs/")
            .unwrap_or_else(|| panic!("unsupported $ref {r}"));
        return name.to_string();
    }
    if let Some(c) = obj.get("const") {
        return c.to_string();
    }
    if let Some(Value::Array(e)) = obj.get("enum") {
        return union(e.iter().map(Value::to_string).collect());
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(Value::Array(alts)) = obj.get(key) {
            return union(alts.iter().map(|a| ts_type(a, indent)).collect());
        }
    }
    let types: Vec<&str> = match obj.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => panic!("unsupported schema {v}"),
    };
    union(
        types
            .into_iter()
            .map(|t| match t {
                "null" => "null".to_string(),
                "string" => "string".to_string(),
                "boolean" => "boolean".to_string(),
                "integer" | "number" => "number".to_string(),
                "array" => array_type(obj, indent),
                "object" if obj.contains_key("properties") => object_body(obj, indent),
                "object" => match obj.get("additionalProperties") {
                    Some(ap) => format!("Record<string, {}>", ts_type(ap, indent)),
                    None => "Record<string, unknown>".to_string(),
                },
                other => panic!("unsupported type {other}"),
            })
            .collect(),
    )
}

fn array_type(obj: &Map<String, Value>, indent: &str) -> String {
    let items = obj.get("items").expect("an array schema has items");
    let item = ts_type(items, indent);
    let fixed = match (obj.get("minItems"), obj.get("maxItems")) {
        (Some(a), Some(b)) if a == b => a.as_u64(),
        _ => None,
    };
    match fixed {
        Some(n) if n <= 8 => format!("[{}]", vec![item; n as usize].join(", ")),
        _ if item.contains(' ') => format!("Array<{item}>"),
        _ => format!("{item}[]"),
    }
}

fn union(mut parts: Vec<String>) -> String {
    // `null` last, as the hand-written declarations had it.
    parts.dedup();
    if let Some(i) = parts.iter().position(|p| p == "null")
        && parts.len() > 1
    {
        let n = parts.remove(i);
        parts.push(n);
    }
    parts.join(" | ")
}
