//! De-identification: the DICOM PS3.15 Annex E Basic Application Level
//! Confidentiality Profile, with options, for any data set.
//!
//! The rules are the profile's attribute table (Table E.1-1, in
//! [`profile_table`]), applied recursively into sequences:
//!
//! | action | what happens here |
//! |---|---|
//! | `X` | removed |
//! | `Z` | emptied (zero length; an empty sequence) |
//! | `D` | replaced by a dummy of the VR (`ANONYMIZED`, `19000101`, `000000`, `0`); UIDs are mapped; a sequence keeps its items, each de-identified, and free text in them (UT/LT/ST/PN not otherwise listed) is replaced by the dummy |
//! | `U` | each UID replaced through the run's [`UidMapper`] (consistent across objects) |
//! | `K` | kept (sequences are still de-identified inside) |
//! | `C` | cleaned: dates shifted by the run's offset (Modified Dates option), times kept, free text scrubbed of the identifying values found in the data set, sequences de-identified inside with free text scrubbed |
//! | `Z/D`, `X/D`, `X/Z/D` | `D` (valid whatever the attribute's type in its IOD); Patient ID gets a pseudonym `ANON-<hash>` that is the same for the same patient within the run |
//! | `X/Z` | `Z` |
//! | `X/Z/U*` | a sequence: kept with its UIDs mapped; otherwise `Z` |
//!
//! Options change a row's action when the row has an entry in that option's
//! column (`K` wins over `C`). Attributes not in the table are kept, except
//! private attributes (odd groups), which are removed, and UIDs (VR UI) that
//! are not DICOM well-known UIDs, which are mapped like `U`.
//!
//! The data set then gets Patient Identity Removed = YES, De-identification
//! Method, De-identification Method Code Sequence (113100 and the options)
//! and Longitudinal Temporal Information Modified; the file meta is rebuilt.
//! Every action is returned in a [`DeidRecord`] (paths and tags only, never
//! the original values). Pixel data are not examined: a warning is recorded
//! when Burned In Annotation is not NO.

mod table;

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::sync::OnceLock;

use dicom_core::value::{DataSetSequence, Value};
use dicom_core::{DataElement, Length, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{FileDicomObject, InMemDicomObject, OpenFileOptions};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::export::build::{self, Obj, put_seq, put_str, put_strs};
use crate::export::codes::{self, Code};
use crate::export::uid::{self, UidMapper};
use crate::export::{civil_from_days, days_from_civil, parse_da};
use crate::ingest::{Severity, Warning};
use ct_triage_analysis::report::Report;
use table::TABLE_E1_1;

/// The tag type of [`profile_row`] (dicom-rs `Tag`, re-exported).
pub use dicom_core::Tag;

/// Edition of PS3.15 the table was taken from.
pub const TABLE_EDITION: &str = "2026d";

/// The profile applied, as named in every [`DeidRecord`].
pub const PROFILE_NAME: &str =
    "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile";

/// Schema identifier of [`DeidentificationLog`]; bumped on incompatible changes.
pub const DEID_LOG_SCHEMA: &str = "ct-triage/deidentification/v1";

/// An action code of Table E.1-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// Replace with a dummy value.
    #[serde(rename = "D")]
    D,
    /// Replace with a zero-length value.
    #[serde(rename = "Z")]
    Z,
    /// Remove.
    #[serde(rename = "X")]
    X,
    /// Keep.
    #[serde(rename = "K")]
    K,
    /// Clean.
    #[serde(rename = "C")]
    C,
    /// Replace the UID.
    #[serde(rename = "U")]
    U,
    /// Z unless D is required.
    #[serde(rename = "Z/D")]
    ZD,
    /// X unless Z is required.
    #[serde(rename = "X/Z")]
    XZ,
    /// X unless D is required.
    #[serde(rename = "X/D")]
    XD,
    /// X unless Z or D is required.
    #[serde(rename = "X/Z/D")]
    XZD,
    /// X unless Z is required, or replace the UIDs in the sequence.
    #[serde(rename = "X/Z/U*")]
    XZUStar,
}

impl Action {
    fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "D" => Action::D,
            "Z" => Action::Z,
            "X" => Action::X,
            "K" => Action::K,
            "C" => Action::C,
            "U" => Action::U,
            "Z/D" => Action::ZD,
            "X/Z" => Action::XZ,
            "X/D" => Action::XD,
            "X/Z/D" => Action::XZD,
            "X/Z/U*" => Action::XZUStar,
            _ => return None,
        })
    }

    /// The code as printed in the standard.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::D => "D",
            Action::Z => "Z",
            Action::X => "X",
            Action::K => "K",
            Action::C => "C",
            Action::U => "U",
            Action::ZD => "Z/D",
            Action::XZ => "X/Z",
            Action::XD => "X/D",
            Action::XZD => "X/Z/D",
            Action::XZUStar => "X/Z/U*",
        }
    }
}

/// An option column of Table E.1-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileOption {
    /// Retain UIDs Option (113110).
    RetainUids,
    /// Retain Device Identity Option (113109).
    RetainDeviceIdentity,
    /// Retain Institution Identity Option (113112).
    RetainInstitutionIdentity,
    /// Retain Patient Characteristics Option (113108).
    RetainPatientCharacteristics,
    /// Retain Longitudinal Temporal Information with Full Dates Option (113106).
    RetainLongitudinalFullDates,
    /// Retain Longitudinal Temporal Information with Modified Dates Option (113107).
    RetainLongitudinalModifiedDates,
    /// Clean Descriptors Option (113105).
    CleanDescriptors,
    /// Clean Structured Content Option (113104).
    CleanStructuredContent,
    /// Clean Graphics Option (113103); never enabled here (overlays are removed).
    CleanGraphics,
}

impl ProfileOption {
    fn from_letter(c: char) -> Option<Self> {
        Some(match c {
            'U' => ProfileOption::RetainUids,
            'V' => ProfileOption::RetainDeviceIdentity,
            'I' => ProfileOption::RetainInstitutionIdentity,
            'P' => ProfileOption::RetainPatientCharacteristics,
            'F' => ProfileOption::RetainLongitudinalFullDates,
            'M' => ProfileOption::RetainLongitudinalModifiedDates,
            'D' => ProfileOption::CleanDescriptors,
            'S' => ProfileOption::CleanStructuredContent,
            'G' => ProfileOption::CleanGraphics,
            _ => return None,
        })
    }

    /// The CID 7050 code of the option.
    pub fn code(self) -> Code {
        match self {
            ProfileOption::RetainUids => codes::DEID_RETAIN_UIDS,
            ProfileOption::RetainDeviceIdentity => codes::DEID_RETAIN_DEVICE_IDENTITY,
            ProfileOption::RetainInstitutionIdentity => codes::DEID_RETAIN_INSTITUTION_IDENTITY,
            ProfileOption::RetainPatientCharacteristics => {
                codes::DEID_RETAIN_PATIENT_CHARACTERISTICS
            }
            ProfileOption::RetainLongitudinalFullDates => codes::DEID_RETAIN_FULL_DATES,
            ProfileOption::RetainLongitudinalModifiedDates => codes::DEID_RETAIN_MODIFIED_DATES,
            ProfileOption::CleanDescriptors => codes::DEID_CLEAN_DESCRIPTORS,
            ProfileOption::CleanStructuredContent => codes::DEID_CLEAN_STRUCTURED_CONTENT,
            ProfileOption::CleanGraphics => Code {
                value: "113103",
                scheme: "DCM",
                meaning: "Clean Graphics Option",
            },
        }
    }
}

/// One row of Table E.1-1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileRow {
    /// Tag as printed (`(gggg,eeee)`, `xx` for repeating groups).
    pub tag: String,
    /// Attribute name.
    pub name: &'static str,
    /// Basic Profile action.
    pub basic: Action,
    /// Option columns with an action.
    pub options: Vec<(ProfileOption, Action)>,
    #[serde(skip)]
    group: u16,
    #[serde(skip)]
    element: u16,
    #[serde(skip)]
    group_mask: u16,
    #[serde(skip)]
    element_mask: u16,
}

impl ProfileRow {
    fn matches(&self, t: Tag) -> bool {
        (t.group() & self.group_mask) == self.group
            && (t.element() & self.element_mask) == self.element
    }
}

fn parse_hex(s: &str) -> Option<(u16, u16)> {
    let mask = u16::from_str_radix(
        &s.replace(|c: char| c.is_ascii_hexdigit(), "F")
            .replace('x', "0"),
        16,
    )
    .ok()?;
    let value = u16::from_str_radix(&s.replace('x', "0"), 16).ok()?;
    Some((value, mask))
}

struct Profile {
    rows: Vec<ProfileRow>,
    exact: HashMap<Tag, usize>,
    patterns: Vec<usize>,
}

fn profile() -> &'static Profile {
    static P: OnceLock<Profile> = OnceLock::new();
    P.get_or_init(|| {
        let mut rows = Vec::with_capacity(TABLE_E1_1.len());
        for &(tag, basic, opts, name) in TABLE_E1_1 {
            let (g, e) = tag.split_once(',').expect("table tag");
            let ((group, group_mask), (element, element_mask)) = (
                parse_hex(g).expect("table group"),
                parse_hex(e).expect("table element"),
            );
            let options = opts
                .split_whitespace()
                .map(|o| {
                    let (l, a) = o.split_once(':').expect("table option");
                    (
                        ProfileOption::from_letter(l.chars().next().unwrap_or(' '))
                            .expect("option letter"),
                        Action::parse(a).expect("option action"),
                    )
                })
                .collect();
            rows.push(ProfileRow {
                tag: format!("({tag})"),
                name,
                basic: Action::parse(basic).expect("table action"),
                options,
                group,
                element,
                group_mask,
                element_mask,
            });
        }
        let mut exact = HashMap::new();
        let mut patterns = Vec::new();
        for (i, r) in rows.iter().enumerate() {
            if r.group_mask == 0xFFFF && r.element_mask == 0xFFFF {
                exact.insert(Tag(r.group, r.element), i);
            } else {
                patterns.push(i);
            }
        }
        Profile {
            rows,
            exact,
            patterns,
        }
    })
}

/// Table E.1-1 as typed rows (656 attributes and repeating groups).
pub fn profile_table() -> &'static [ProfileRow] {
    &profile().rows
}

/// The row of Table E.1-1 that applies to `tag`, if any.
pub fn profile_row(tag: Tag) -> Option<&'static ProfileRow> {
    let p = profile();
    p.exact
        .get(&tag)
        .or_else(|| p.patterns.iter().find(|&&i| p.rows[i].matches(tag)))
        .map(|&i| &p.rows[i])
}

/// How dates and times are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "policy")]
pub enum DatePolicy {
    /// Basic Profile only: dates and times removed, emptied or replaced by dummies.
    Remove,
    /// Retain Longitudinal Temporal Information with Modified Dates: every date
    /// shifted by the same number of days (times of day kept). `shift_days`
    /// `None` derives a shift between −365 and −3649 days from the run's salt.
    Modified {
        /// Days added to every date; `None`: derived from the salt.
        shift_days: Option<i32>,
    },
    /// Retain Longitudinal Temporal Information with Full Dates.
    Full,
}

/// Options of [`deidentify`]. Every field has a documented default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeidOptions {
    /// Dates. Default [`DatePolicy::Modified`] with the shift derived from the salt.
    pub dates: DatePolicy,
    /// Retain Patient Characteristics (sex, age, size, weight, …). Default false.
    pub retain_patient_characteristics: bool,
    /// Retain Device Identity. Default false.
    pub retain_device_identity: bool,
    /// Retain Institution Identity. Default false.
    pub retain_institution_identity: bool,
    /// Retain UIDs (no UID mapping). Default false.
    pub retain_uids: bool,
    /// Clean Descriptors: keep descriptions (series description, protocol, …)
    /// scrubbed of identifying values instead of removing them. Default true.
    pub clean_descriptors: bool,
    /// Clean Structured Content: keep SR content trees with free text scrubbed
    /// (needed to export an SR at all). Default true.
    pub clean_structured_content: bool,
    /// Replacement Patient ID. Default none: `ANON-` + 12 hex digits derived
    /// from the original ID and the salt (same patient, same pseudonym, in a run).
    pub patient_id: Option<String>,
    /// Replacement Patient's Name. Default none: emptied (Basic Profile `Z`).
    pub patient_name: Option<String>,
}

impl Default for DeidOptions {
    fn default() -> Self {
        DeidOptions {
            dates: DatePolicy::Modified { shift_days: None },
            retain_patient_characteristics: false,
            retain_device_identity: false,
            retain_institution_identity: false,
            retain_uids: false,
            clean_descriptors: true,
            clean_structured_content: true,
            patient_id: None,
            patient_name: None,
        }
    }
}

impl DeidOptions {
    /// Defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Set the date policy.
    pub fn dates(mut self, d: DatePolicy) -> Self {
        self.dates = d;
        self
    }
    /// Retain patient characteristics or not.
    pub fn retain_patient_characteristics(mut self, on: bool) -> Self {
        self.retain_patient_characteristics = on;
        self
    }
    /// Retain device identity or not.
    pub fn retain_device_identity(mut self, on: bool) -> Self {
        self.retain_device_identity = on;
        self
    }
    /// Retain institution identity or not.
    pub fn retain_institution_identity(mut self, on: bool) -> Self {
        self.retain_institution_identity = on;
        self
    }
    /// Retain UIDs or not.
    pub fn retain_uids(mut self, on: bool) -> Self {
        self.retain_uids = on;
        self
    }
    /// Clean descriptors or remove them.
    pub fn clean_descriptors(mut self, on: bool) -> Self {
        self.clean_descriptors = on;
        self
    }
    /// Clean structured content or replace it with dummies.
    pub fn clean_structured_content(mut self, on: bool) -> Self {
        self.clean_structured_content = on;
        self
    }
    /// Use this Patient ID.
    pub fn patient_id(mut self, id: impl Into<String>) -> Self {
        self.patient_id = Some(id.into());
        self
    }
    /// Use this Patient's Name.
    pub fn patient_name(mut self, name: impl Into<String>) -> Self {
        self.patient_name = Some(name.into());
        self
    }

    /// The option columns these options enable, in table order.
    pub fn enabled(&self) -> Vec<ProfileOption> {
        let mut v = Vec::new();
        if self.retain_uids {
            v.push(ProfileOption::RetainUids);
        }
        if self.retain_device_identity {
            v.push(ProfileOption::RetainDeviceIdentity);
        }
        if self.retain_institution_identity {
            v.push(ProfileOption::RetainInstitutionIdentity);
        }
        if self.retain_patient_characteristics {
            v.push(ProfileOption::RetainPatientCharacteristics);
        }
        match self.dates {
            DatePolicy::Full => v.push(ProfileOption::RetainLongitudinalFullDates),
            DatePolicy::Modified { .. } => v.push(ProfileOption::RetainLongitudinalModifiedDates),
            DatePolicy::Remove => {}
        }
        if self.clean_descriptors {
            v.push(ProfileOption::CleanDescriptors);
        }
        if self.clean_structured_content {
            v.push(ProfileOption::CleanStructuredContent);
        }
        v
    }

    /// The action of a table row under these options.
    pub fn action_of(&self, row: &ProfileRow) -> Action {
        effective(&self.enabled(), row)
    }
}

/// The action of `row` with the option columns `on` enabled (`K` wins over `C`).
fn effective(on: &[ProfileOption], row: &ProfileRow) -> Action {
    {
        let mut keep = false;
        let mut clean = false;
        for (opt, act) in &row.options {
            if on.contains(opt) {
                match act {
                    Action::K => keep = true,
                    Action::C => clean = true,
                    _ => {}
                }
            }
        }
        if keep {
            Action::K
        } else if clean {
            Action::C
        } else {
            row.basic
        }
    }
}

/// One action applied to one element.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedAction {
    /// Where: tags from the top level down, with item indices, e.g.
    /// `(0040,A730)[2]/(0040,A124)`.
    pub path: String,
    /// Attribute name (from the table, or the dictionary).
    pub name: String,
    /// What was done: `X` removed, `Z` emptied, `D` dummy, `U` UID mapped,
    /// `C` cleaned (date shifted or text scrubbed), `P` pseudonym.
    pub action: String,
    /// Why: the table action that applied (e.g. `X/Z/D`, `K` of an option),
    /// `private` or `uid`.
    pub rule: String,
}

/// What [`deidentify`] did to one object (JSON-serialisable; contains no
/// original values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeidRecord {
    /// Output file, when known (set by the exporter).
    pub file: Option<String>,
    /// `DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile`.
    pub profile: String,
    /// Edition of Table E.1-1 applied.
    pub table_edition: String,
    /// Options applied.
    pub options: Vec<ProfileOption>,
    /// De-identification Method Code Sequence written (`value scheme meaning`).
    pub method_codes: Vec<String>,
    /// Days every date was shifted by (Modified Dates option).
    pub date_shift_days: Option<i32>,
    /// New SOP Instance UID (empty for a report, see [`deidentify_report`]).
    pub sop_instance_uid: String,
    /// Every element changed.
    pub actions: Vec<AppliedAction>,
    /// Number of actions by kind.
    pub counts: BTreeMap<String, usize>,
    /// Things the profile could not guarantee (e.g. burned-in annotation).
    pub warnings: Vec<String>,
}

/// The text of a dummy value.
const DUMMY: &str = "ANONYMIZED";

/// Parse Part 10 bytes, de-identify, and write them back (same transfer syntax).
pub fn deidentify_bytes(
    bytes: &[u8],
    o: &DeidOptions,
    mapper: &mut UidMapper,
) -> Result<(Vec<u8>, DeidRecord)> {
    let has_preamble = bytes.len() >= 132 && &bytes[128..132] == b"DICM";
    let mut f = OpenFileOptions::new()
        .read_preamble(if has_preamble {
            ReadPreamble::Always
        } else {
            ReadPreamble::Never
        })
        .from_reader(Cursor::new(bytes))
        .map_err(|e| Error::NotDicom {
            file: "<deidentify>".into(),
            message: e.to_string(),
        })?;
    let rec = deidentify(&mut f, o, mapper)?;
    Ok((build::to_bytes(&f, "de-identified object")?, rec))
}

/// De-identify a DICOM file object in place with the Basic Profile and the
/// options in `o`, mapping UIDs with `mapper`; returns what was done.
pub fn deidentify(
    f: &mut FileDicomObject<InMemDicomObject>,
    o: &DeidOptions,
    mapper: &mut UidMapper,
) -> Result<DeidRecord> {
    let mut warnings = Vec::new();
    if build::string(f, tags::BURNED_IN_ANNOTATION).is_some_and(|v| v != "NO")
        || (f.get(tags::PIXEL_DATA).is_some()
            && build::string(f, tags::BURNED_IN_ANNOTATION).is_none()
            && build::string(f, tags::MODALITY).as_deref() != Some("CT"))
    {
        warnings.push(
            "pixel data may contain burned-in identifying text (Burned In Annotation is not NO); \
             the Clean Pixel Data option is not applied"
                .to_string(),
        );
    }
    let ids = identifiers(f);
    let mut ctx = Ctx::new(o, mapper, ids);
    let obj: &mut InMemDicomObject = f;
    process(obj, "", Mode::Normal, &mut ctx);

    // Attributes recording the de-identification.
    put_str(obj, tags::PATIENT_IDENTITY_REMOVED, VR::CS, "YES");
    let mut method = vec![
        "DICOM PS3.15 E.1 Basic Profile".to_string(),
        format!(
            "ct-triage {} (table {TABLE_EDITION})",
            env!("CARGO_PKG_VERSION")
        ),
    ];
    let mut code_items = vec![build::code_item(&codes::DEID_BASIC_PROFILE)];
    for opt in &ctx.enabled {
        let c = opt.code();
        method.push(c.meaning.chars().take(64).collect());
        code_items.push(build::code_item(&c));
    }
    put_strs(obj, tags::DEIDENTIFICATION_METHOD, VR::LO, &method);
    put_seq(obj, tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE, code_items);
    let temporal = match o.dates {
        DatePolicy::Remove => "REMOVED",
        DatePolicy::Modified { .. } => "MODIFIED",
        DatePolicy::Full => "UNMODIFIED",
    };
    put_str(
        obj,
        tags::LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED,
        VR::CS,
        temporal,
    );

    let sop = build::string(obj, tags::SOP_INSTANCE_UID).unwrap_or_default();
    let class = build::string(obj, tags::SOP_CLASS_UID).unwrap_or_default();
    f.update_meta(|m| {
        m.media_storage_sop_instance_uid = sop.clone();
        if !class.is_empty() {
            m.media_storage_sop_class_uid = class.clone();
        }
        m.implementation_class_uid = uid::implementation_class_uid();
        m.implementation_version_name = Some(uid::implementation_version_name());
        m.source_application_entity_title = None;
        m.sending_application_entity_title = None;
        m.receiving_application_entity_title = None;
        m.private_information_creator_uid = None;
        m.private_information = None;
    });

    Ok(ctx.into_record(sop, warnings))
}

fn code_text(c: &Code) -> String {
    format!("{} {} {}", c.value, c.scheme, c.meaning)
}

/// The De-identification Method Code Sequence as text (`value scheme meaning`).
fn method_codes(enabled: &[ProfileOption]) -> Vec<String> {
    std::iter::once(code_text(&codes::DEID_BASIC_PROFILE))
        .chain(enabled.iter().map(|o| code_text(&o.code())))
        .collect()
}

/// Days every date is shifted by under `o` (Modified Dates), derived from the
/// mapper's salt unless given.
fn date_shift(o: &DeidOptions, mapper: &UidMapper) -> Option<i32> {
    match o.dates {
        DatePolicy::Modified {
            shift_days: Some(d),
        } => Some(d),
        DatePolicy::Modified { shift_days: None } => {
            let h = mapper.derive("date-shift", b"");
            let n = u64::from_le_bytes(h[..8].try_into().unwrap_or([0; 8]));
            Some(-(365 + (n % 3285) as i32))
        }
        _ => None,
    }
}

/// The replacement Patient ID: the one of the options, or `ANON-` + 12 hex
/// digits derived from the original and the salt.
fn pseudonym(o: &DeidOptions, mapper: &UidMapper, original: &str) -> String {
    o.patient_id.clone().unwrap_or_else(|| {
        let h = mapper.derive("patient-id", original.as_bytes());
        format!("ANON-{}", &uid::hex(&h)[..12].to_uppercase())
    })
}

/// State of one de-identification run over an object ([`deidentify`]) or a
/// report ([`deidentify_report`]).
struct Ctx<'a> {
    o: &'a DeidOptions,
    enabled: Vec<ProfileOption>,
    mapper: &'a mut UidMapper,
    shift: Option<i32>,
    /// Words of the patient ID and accession number, scrubbed from free text.
    identifiers: Vec<String>,
    actions: Vec<AppliedAction>,
}

impl<'a> Ctx<'a> {
    fn new(o: &'a DeidOptions, mapper: &'a mut UidMapper, identifiers: Vec<String>) -> Self {
        let shift = date_shift(o, mapper);
        Ctx {
            o,
            enabled: o.enabled(),
            mapper,
            shift,
            identifiers,
            actions: Vec::new(),
        }
    }

    fn record(&mut self, path: &str, name: &str, action: &str, rule: &str) {
        self.actions.push(AppliedAction {
            path: path.to_string(),
            name: name.to_string(),
            action: action.to_string(),
            rule: rule.to_string(),
        });
    }

    /// What was done, for the object or report with this SOP Instance UID
    /// (empty for a report).
    fn into_record(self, sop_instance_uid: String, warnings: Vec<String>) -> DeidRecord {
        let mut counts = BTreeMap::new();
        for a in &self.actions {
            *counts.entry(a.action.clone()).or_insert(0) += 1;
        }
        DeidRecord {
            file: None,
            profile: PROFILE_NAME.into(),
            table_edition: TABLE_EDITION.into(),
            method_codes: method_codes(&self.enabled),
            options: self.enabled,
            date_shift_days: self.shift,
            sop_instance_uid,
            actions: self.actions,
            counts,
            warnings,
        }
    }
}

/// How free text not listed in the table is treated inside a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Top level or a kept sequence: kept.
    Normal,
    /// Inside a sequence replaced by dummies (`D`): replaced by the dummy.
    Dummy,
    /// Inside a cleaned sequence (`C`): scrubbed.
    Clean,
}

/// UIDs that identify standards, not instances, though they are not `1.2.840.10008.*`.
const KEEP_UI: [Tag; 3] = [
    tags::CODING_SCHEME_UID,
    tags::CONTEXT_UID,
    tags::MAPPING_RESOURCE_UID,
];

/// Attributes of coded entries: standard vocabulary, never free text.
fn is_code_attribute(t: Tag) -> bool {
    t.group() == 0x0008 && matches!(t.element(), 0x0100..=0x010F | 0x0117..=0x0124)
}

fn tag_str(t: Tag) -> String {
    format!("({:04X},{:04X})", t.group(), t.element())
}

fn dict_name(t: Tag) -> String {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
    dicom_dictionary_std::StandardDataDictionary
        .by_tag(t)
        .map(|e| e.alias().to_string())
        .unwrap_or_else(|| tag_str(t))
}

fn process(obj: &mut Obj, path: &str, mode: Mode, ctx: &mut Ctx) {
    let tag_list: Vec<Tag> = obj.tags().collect();
    for t in tag_list {
        let Some(elem) = obj.get(t) else { continue };
        let vr = elem.vr();
        let here = if path.is_empty() {
            tag_str(t)
        } else {
            format!("{path}/{}", tag_str(t))
        };
        // Private attributes: removed (the Retain Safe Private option is not offered).
        if t.group() % 2 == 1 {
            obj.remove_element(t);
            ctx.record(&here, "private attribute", "X", "private");
            continue;
        }
        if t == tags::PATIENT_ID && path.is_empty() {
            let original = build::string(obj, t).unwrap_or_default();
            let v = pseudonym(ctx.o, ctx.mapper, &original);
            put_str(obj, t, VR::LO, &v);
            ctx.record(&here, "Patient ID", "P", "Z/D");
            continue;
        }
        if t == tags::PATIENT_NAME
            && path.is_empty()
            && let Some(n) = ctx.o.patient_name.clone()
        {
            put_str(obj, t, VR::PN, &n);
            ctx.record(&here, "Patient's Name", "P", "Z");
            continue;
        }
        let (action, rule, name) = match profile_row(t) {
            Some(row) => {
                let a = effective(&ctx.enabled, row);
                let rule = if a == row.basic {
                    row.basic.as_str().to_string()
                } else {
                    format!("{} (option)", a.as_str())
                };
                (a, rule, row.name.to_string())
            }
            None if vr == VR::UI && !KEEP_UI.contains(&t) => {
                let all_known = elem
                    .to_multi_str()
                    .map(|v| {
                        v.iter()
                            .all(|u| uid::is_well_known(u.trim_end_matches('\0')))
                    })
                    .unwrap_or(true);
                if all_known || ctx.o.retain_uids {
                    (Action::K, String::new(), String::new())
                } else {
                    (Action::U, "uid".to_string(), dict_name(t))
                }
            }
            None => {
                let free_text =
                    matches!(vr, VR::UT | VR::LT | VR::ST | VR::PN) || t == tags::TEXT_VALUE;
                match mode {
                    Mode::Dummy if free_text && !is_code_attribute(t) => (
                        Action::D,
                        "free text in a D sequence".to_string(),
                        dict_name(t),
                    ),
                    Mode::Clean if free_text && !is_code_attribute(t) => (
                        Action::C,
                        "free text in a C sequence".to_string(),
                        dict_name(t),
                    ),
                    _ => (Action::K, String::new(), String::new()),
                }
            }
        };
        apply(obj, t, vr, action, &here, &rule, &name, mode, ctx);
    }
}

#[allow(clippy::too_many_arguments)]
fn apply(
    obj: &mut Obj,
    t: Tag,
    vr: VR,
    action: Action,
    path: &str,
    rule: &str,
    name: &str,
    mode: Mode,
    ctx: &mut Ctx,
) {
    let action = match action {
        Action::ZD | Action::XD | Action::XZD => Action::D,
        Action::XZ => Action::Z,
        Action::XZUStar if vr == VR::SQ => {
            // Keep the references, mapping the UIDs inside (the items' own rules do that).
            recurse(obj, t, path, mode, ctx);
            return;
        }
        Action::XZUStar => Action::Z,
        a => a,
    };
    match action {
        Action::X => {
            obj.remove_element(t);
            ctx.record(path, name, "X", rule);
        }
        Action::Z => {
            build::put_empty(obj, t, vr);
            ctx.record(path, name, "Z", rule);
        }
        Action::K if vr == VR::SQ => recurse(obj, t, path, mode, ctx),
        Action::U => {
            map_uids(obj, t, ctx);
            ctx.record(path, name, "U", rule);
        }
        Action::D => {
            if vr == VR::SQ {
                recurse(obj, t, path, Mode::Dummy, ctx);
            } else if vr == VR::UI {
                map_uids(obj, t, ctx);
            } else {
                dummy(obj, t, vr);
            }
            ctx.record(path, name, "D", rule);
        }
        Action::C => {
            if vr == VR::SQ {
                recurse(obj, t, path, Mode::Clean, ctx);
                ctx.record(path, name, "C", rule);
            } else if clean(obj, t, vr, ctx) {
                ctx.record(path, name, "C", rule);
            }
        }
        _ => {}
    }
}

/// De-identify the items of a sequence.
fn recurse(obj: &mut Obj, t: Tag, path: &str, mode: Mode, ctx: &mut Ctx) {
    let Some(elem) = obj.take(t) else { return };
    let Value::Sequence(seq) = elem.into_value() else {
        return;
    };
    let mut items = seq.into_items().into_vec();
    for (i, item) in items.iter_mut().enumerate() {
        process(item, &format!("{path}[{i}]"), mode, ctx);
    }
    obj.put(DataElement::new(
        t,
        VR::SQ,
        DataSetSequence::new(items, Length::UNDEFINED),
    ));
}

fn map_uids(obj: &mut Obj, t: Tag, ctx: &mut Ctx) {
    if ctx.o.retain_uids {
        return;
    }
    let vals = obj
        .get(t)
        .and_then(|e| e.to_multi_str().ok().map(|v| v.to_vec()))
        .unwrap_or_default();
    let mapped: Vec<String> = vals.iter().map(|u| ctx.mapper.map(u)).collect();
    put_strs(obj, t, VR::UI, &mapped);
}

fn dummy(obj: &mut Obj, t: Tag, vr: VR) {
    let v = match vr {
        VR::DA => PrimitiveValue::from("19000101"),
        VR::TM => PrimitiveValue::from("000000"),
        VR::DT => PrimitiveValue::from("19000101000000"),
        VR::AS => PrimitiveValue::from("000D"),
        VR::IS | VR::DS => PrimitiveValue::from("0"),
        VR::US => PrimitiveValue::U16(vec![0].into()),
        VR::SS => PrimitiveValue::I16(vec![0].into()),
        VR::UL => PrimitiveValue::U32(vec![0].into()),
        VR::SL => PrimitiveValue::I32(vec![0].into()),
        VR::FL => PrimitiveValue::F32(vec![0.0].into()),
        VR::FD => PrimitiveValue::F64(vec![0.0].into()),
        VR::OB | VR::OW | VR::UN | VR::OF | VR::OD | VR::OL | VR::OV => {
            PrimitiveValue::U8(vec![0u8, 0].into())
        }
        VR::CS => PrimitiveValue::from(DUMMY),
        _ => PrimitiveValue::from(DUMMY),
    };
    let vr = if matches!(vr, VR::OW | VR::UN | VR::OF | VR::OD | VR::OL | VR::OV) {
        VR::OB
    } else {
        vr
    };
    obj.put(DataElement::new(t, vr, v));
}

/// Clean one non-sequence element; true when something changed.
fn clean(obj: &mut Obj, t: Tag, vr: VR, ctx: &mut Ctx) -> bool {
    let Some(vals) = obj
        .get(t)
        .and_then(|e| e.to_multi_str().ok().map(|v| v.to_vec()))
    else {
        return false;
    };
    match vr {
        VR::DA | VR::DT => {
            let Some(days) = ctx.shift else { return false };
            let shifted: Vec<String> = vals
                .iter()
                .map(|v| shift_date(v.trim(), days).unwrap_or_default())
                .collect();
            put_strs(obj, t, vr, &shifted);
            true
        }
        VR::TM => false, // times of day are kept with the shifted dates
        VR::LO | VR::SH | VR::ST | VR::LT | VR::UT | VR::UC | VR::PN | VR::CS | VR::AE => {
            let cleaned: Vec<String> = vals.iter().map(|v| scrub(v, &ctx.identifiers)).collect();
            if cleaned != vals {
                put_strs(obj, t, vr, &cleaned);
            }
            true
        }
        _ => false,
    }
}

/// Shift a DA (`YYYYMMDD`) or the date part of a DT by `days`.
fn shift_date(v: &str, days: i32) -> Option<String> {
    let (y, m, d) = parse_da(v.get(0..8)?)?;
    let (y, m, d) = civil_from_days(days_from_civil(y, m, d) + days as i64);
    Some(format!("{y:04}{m:02}{d:02}{}", &v[8..]))
}

/// Identifying values of the data set, to scrub from free text.
fn identifiers(obj: &Obj) -> Vec<String> {
    let mut values = Vec::new();
    for t in [
        tags::PATIENT_NAME,
        tags::PATIENT_ID,
        Tag(0x0010, 0x1000), // Other Patient IDs (retired)
        tags::OTHER_PATIENT_NAMES,
        tags::PATIENT_BIRTH_NAME,
        tags::PATIENT_MOTHER_BIRTH_NAME,
        tags::PATIENT_BIRTH_DATE,
        tags::PATIENT_ADDRESS,
        tags::PATIENT_TELEPHONE_NUMBERS,
        Tag(0x0010, 0x1090), // Medical Record Locator (retired)
        tags::ACCESSION_NUMBER,
        tags::STUDY_ID,
        tags::INSTITUTION_NAME,
        tags::INSTITUTION_ADDRESS,
        tags::REFERRING_PHYSICIAN_NAME,
        tags::PERFORMING_PHYSICIAN_NAME,
        tags::OPERATORS_NAME,
        tags::PHYSICIANS_OF_RECORD,
        tags::NAME_OF_PHYSICIANS_READING_STUDY,
        tags::REQUESTING_PHYSICIAN,
    ] {
        if let Some(vals) = obj
            .get(t)
            .and_then(|e| e.to_multi_str().ok().map(|v| v.to_vec()))
        {
            values.extend(vals);
        }
    }
    identifier_words(values)
}

/// Identifying values and their parts (name components, words) of at least
/// three characters, longest first: what [`scrub`] looks for.
fn identifier_words(values: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    for v in values {
        let v = v.trim().to_string();
        if v.len() >= 3 {
            out.push(v.clone());
        }
        for part in v.split(['^', '=', ' ', ',']) {
            if part.trim().len() >= 3 {
                out.push(part.trim().to_string());
            }
        }
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

/// Replace whole-word, case-insensitive occurrences of any identifier.
fn scrub(text: &str, ids: &[String]) -> String {
    let mut s = text.to_string();
    for id in ids {
        let lower = s.to_lowercase();
        let needle = id.to_lowercase();
        if needle.is_empty() || lower.len() != s.len() {
            continue;
        }
        let mut out = String::with_capacity(s.len());
        let mut last = 0;
        let mut from = 0;
        while let Some(pos) = lower[from..].find(&needle) {
            let start = from + pos;
            let end = start + needle.len();
            let before = lower[..start]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_alphanumeric());
            let after = lower[end..]
                .chars()
                .next()
                .is_none_or(|c| !c.is_alphanumeric());
            if before && after {
                out.push_str(&s[last..start]);
                out.push_str("[removed]");
                last = end;
            }
            from = end;
        }
        out.push_str(&s[last..]);
        s = out;
    }
    s
}

// ---------------------------------------------------------------- the report

/// De-identify a [`Report`] as [`deidentify`] treats the DICOM objects written
/// from it: with the same options and a mapper with the same salt, the
/// report's UIDs, Patient ID and study date equal those of the de-identified
/// SR, SEG and key images (UID mapping, pseudonym and date shift depend only
/// on the salt, not on the order of the calls). Each field goes through the
/// row of Table E.1-1 of the attribute it was read from:
///
/// | field | default treatment |
/// |---|---|
/// | `input.study_instance_uid`, `input.series_instance_uid` (and the UID in `input.series_key`), `findings[].tracking_uid`, `key_images[].sop_instance_uid` | mapped with `mapper` (`U`; kept with Retain UIDs) |
/// | `input.patient_id` | the pseudonym Patient ID gets in the objects |
/// | `input.accession_number` | removed (`Z`) |
/// | `input.study_date` | shifted by the run's offset (`C`, Modified Dates); removed with [`DatePolicy::Remove`], kept with [`DatePolicy::Full`] |
/// | `warnings[].message`, `exam.inconclusive_reason`, `exam.triage_reasons[]` | scrubbed of the patient ID and accession number; UIDs in the text mapped |
/// | `patient.age_years` | whole years, 90 for 90 and above (exact with Retain Patient Characteristics) |
/// | everything else | kept: measurements, findings, model, manufacturer and kernel (not in the table), sex and history (inputs of the Brock probability the report gives) |
///
/// The report gets the `deidentified` warning (info). The returned record
/// names JSON paths (`input.patient_id`, `findings[0].tracking_uid`), has no
/// original value, and an empty `sop_instance_uid`; set its `file`.
pub fn deidentify_report(
    report: &Report,
    o: &DeidOptions,
    mapper: &mut UidMapper,
) -> (Report, DeidRecord) {
    let ids = identifier_words(
        [&report.input.patient_id, &report.input.accession_number]
            .into_iter()
            .flatten()
            .cloned(),
    );
    let mut c = Ctx::new(o, mapper, ids);
    let mut r = report.clone();

    let i = &mut r.input;
    c.uid(
        &mut i.study_instance_uid,
        tags::STUDY_INSTANCE_UID,
        "input.study_instance_uid",
    );
    let series = i.series_instance_uid.clone();
    c.uid(
        &mut i.series_instance_uid,
        tags::SERIES_INSTANCE_UID,
        "input.series_instance_uid",
    );
    if i.series_instance_uid != series {
        // `UID` or `UID#n` (a split series).
        let (uid_part, rest) = match i.series_key.split_once('#') {
            Some((u, n)) => (u.to_string(), format!("#{n}")),
            None => (i.series_key.clone(), String::new()),
        };
        i.series_key = format!("{}{rest}", c.mapper.map(&uid_part));
        c.record("input.series_key", "Series Instance UID", "U", "U");
    }
    if let Some(id) = &i.patient_id {
        i.patient_id = Some(pseudonym(o, c.mapper, id.trim_end_matches(['\0', ' '])));
        c.record("input.patient_id", "Patient ID", "P", "Z/D");
    }
    c.text_field(
        &mut i.accession_number,
        tags::ACCESSION_NUMBER,
        VR::SH,
        "input.accession_number",
    );
    c.text_field(
        &mut i.study_date,
        tags::STUDY_DATE,
        VR::DA,
        "input.study_date",
    );
    c.text_field(
        &mut i.manufacturer,
        tags::MANUFACTURER,
        VR::LO,
        "input.manufacturer",
    );
    c.text_field(
        &mut i.convolution_kernel,
        tags::CONVOLUTION_KERNEL,
        VR::SH,
        "input.convolution_kernel",
    );

    for (n, f) in r.findings.iter_mut().enumerate() {
        c.uid(
            &mut f.tracking_uid,
            tags::TRACKING_UID,
            &format!("findings[{n}].tracking_uid"),
        );
    }
    for (n, k) in r.key_images.iter_mut().enumerate() {
        c.uid(
            &mut k.sop_instance_uid,
            tags::REFERENCED_SOP_INSTANCE_UID,
            &format!("key_images[{n}].sop_instance_uid"),
        );
    }
    for (n, w) in r.warnings.iter_mut().enumerate() {
        c.free_text(&mut w.message, &format!("warnings[{n}].message"));
    }
    if let Some(reason) = &mut r.exam.inconclusive_reason {
        c.free_text(reason, "exam.inconclusive_reason");
    }
    for (n, t) in r.exam.triage_reasons.iter_mut().enumerate() {
        c.free_text(t, &format!("exam.triage_reasons[{n}]"));
    }

    let mut warnings = Vec::new();
    if !o.retain_patient_characteristics {
        let age = r.patient.age_years;
        r.patient.age_years = if age.is_finite() {
            age.floor().clamp(0.0, 90.0)
        } else {
            age
        };
        c.record("patient.age_years", "Patient's Age", "C", "X (P:K)");
        warnings.push(
            "the report keeps the patient's sex and age (whole years, 90 for 90 and above): \
             they are inputs of the Brock probability it gives"
                .to_string(),
        );
    }

    let options: Vec<&str> = c.enabled.iter().map(|p| p.code().meaning).collect();
    r.warnings.push(Warning::new(
        "deidentified",
        Severity::Info,
        format!(
            "de-identified with the {PROFILE_NAME} (table {TABLE_EDITION}){}",
            if options.is_empty() {
                String::new()
            } else {
                format!("; options: {}", options.join(", "))
            }
        ),
    ));

    let record = c.into_record(String::new(), warnings);
    (r, record)
}

/// The report's fields, treated as the attributes they come from.
impl Ctx<'_> {
    /// The action of the attribute `t` under the options (`K` when not in
    /// the table), with the alternatives resolved as [`deidentify`] does,
    /// the rule as recorded and the attribute name.
    fn action(&self, t: Tag) -> (Action, String, &'static str) {
        let Some(row) = profile_row(t) else {
            return (Action::K, String::new(), "");
        };
        let a = effective(&self.enabled, row);
        let rule = if a == row.basic {
            row.basic.as_str().to_string()
        } else {
            format!("{} (option)", a.as_str())
        };
        let a = match a {
            Action::ZD | Action::XD | Action::XZD => Action::D,
            Action::XZ | Action::XZUStar => Action::Z,
            a => a,
        };
        (a, rule, row.name)
    }

    /// A UID field: mapped unless the profile keeps it.
    fn uid(&mut self, v: &mut String, t: Tag, path: &str) {
        let (a, rule, name) = self.action(t);
        if matches!(a, Action::U | Action::D) && !self.o.retain_uids {
            *v = self.mapper.map(v);
            self.record(path, name, "U", &rule);
        }
    }

    /// A text, date or code field of attribute `t` (value representation `vr`).
    fn text_field(&mut self, v: &mut Option<String>, t: Tag, vr: VR, path: &str) {
        let Some(val) = v.clone() else { return };
        let (a, rule, name) = self.action(t);
        let done = match a {
            Action::X | Action::Z => {
                *v = None;
                a.as_str()
            }
            Action::D => {
                *v = Some(match vr {
                    VR::DA => "19000101".to_string(),
                    VR::UI => self.mapper.map(&val),
                    _ => DUMMY.to_string(),
                });
                "D"
            }
            Action::U if !self.o.retain_uids => {
                *v = Some(self.mapper.map(&val));
                "U"
            }
            Action::C if matches!(vr, VR::DA | VR::DT) => match self.shift {
                Some(days) => {
                    *v = shift_date(val.trim(), days).filter(|d| !d.is_empty());
                    "C"
                }
                None => return,
            },
            Action::C => {
                *v = Some(scrub(&val, &self.identifiers));
                "C"
            }
            _ => return,
        };
        self.record(path, name, done, &rule);
    }

    /// Generated text: identifying values scrubbed, UIDs mapped.
    fn free_text(&mut self, v: &mut String, path: &str) {
        let mut t = scrub(v, &self.identifiers);
        if !self.o.retain_uids {
            t = map_uids_in_text(&t, self.mapper);
        }
        if t != *v {
            *v = t;
            self.record(path, "free text", "C", "text");
        }
    }
}

/// Replace every UID in `text` (a run of at least four dot-separated numbers
/// that is not a well-known UID) through `mapper`.
fn map_uids_in_text(text: &str, mapper: &mut UidMapper) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String, mapper: &mut UidMapper| {
        let core = run.trim_matches('.');
        let parts: Vec<&str> = core.split('.').collect();
        if parts.len() >= 4 && parts.iter().all(|p| !p.is_empty()) && !uid::is_well_known(core) {
            let start = run.len() - run.trim_start_matches('.').len();
            out.push_str(&run[..start]);
            out.push_str(&mapper.map(core));
            out.push_str(&run[start + core.len()..]);
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for ch in text.chars() {
        if ch.is_ascii_digit() || ch == '.' {
            run.push(ch);
        } else {
            flush(&mut run, &mut out, mapper);
            out.push(ch);
        }
    }
    flush(&mut run, &mut out, mapper);
    out
}

/// The de-identification log of one result (`deidentification.json` of the
/// native adapter): what was done to each file, as [`DeidRecord`]s — tags,
/// JSON paths and actions, never an original value. The date shift is not
/// written (with the shifted dates it would give the original dates back).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeidentificationLog {
    /// [`DEID_LOG_SCHEMA`].
    pub schema: String,
    /// [`PROFILE_NAME`].
    pub profile: String,
    /// Edition of Table E.1-1 applied.
    pub table_edition: String,
    /// Options applied.
    pub options: Vec<ProfileOption>,
    /// `modified` (shifted by an undisclosed number of days, the same for
    /// every date of the run), `removed` or `unmodified`.
    pub dates: String,
    /// One record per file, in the order written; `date_shift_days` is `null`.
    pub files: Vec<DeidRecord>,
}

impl DeidentificationLog {
    /// The log of records made with the options `o`.
    pub fn new(o: &DeidOptions, records: Vec<DeidRecord>) -> Self {
        let dates = match o.dates {
            DatePolicy::Remove => "removed",
            DatePolicy::Modified { .. } => "modified",
            DatePolicy::Full => "unmodified",
        };
        DeidentificationLog {
            schema: DEID_LOG_SCHEMA.into(),
            profile: PROFILE_NAME.into(),
            table_edition: TABLE_EDITION.into(),
            options: o.enabled(),
            dates: dates.into(),
            files: records
                .into_iter()
                .map(|mut r| {
                    r.date_shift_days = None;
                    r
                })
                .collect(),
        }
    }

    /// The log as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_parses_and_finds_rows() {
        let t = profile_table();
        assert!(t.len() > 600);
        assert_eq!(profile_row(tags::PATIENT_NAME).unwrap().basic, Action::Z);
        assert_eq!(
            profile_row(tags::INSTITUTION_NAME).unwrap().basic,
            Action::XZD
        );
        assert_eq!(
            profile_row(Tag(0x6002, 0x3000)).unwrap().name,
            "Overlay Data"
        );
        assert_eq!(profile_row(Tag(0x5010, 0x0005)).unwrap().name, "Curve Data");
        assert!(profile_row(tags::ROWS).is_none());
        let o = DeidOptions::default();
        assert_eq!(
            o.action_of(profile_row(tags::STUDY_DATE).unwrap()),
            Action::C
        );
        assert_eq!(
            o.action_of(profile_row(tags::SERIES_DESCRIPTION).unwrap()),
            Action::C
        );
        assert_eq!(
            o.action_of(profile_row(tags::PATIENT_SEX).unwrap()),
            Action::Z
        );
        let keep = DeidOptions::default().retain_patient_characteristics(true);
        assert_eq!(
            keep.action_of(profile_row(tags::PATIENT_SEX).unwrap()),
            Action::K
        );
    }

    #[test]
    fn scrub_whole_words() {
        let ids = vec!["Lung1".to_string(), "ANON".to_string()];
        assert_eq!(
            scrub("Patient lung1 scanned", &ids),
            "Patient [removed] scanned"
        );
        assert_eq!(scrub("ANONYMIZED", &ids), "ANONYMIZED");
    }

    /// A report with identifying values everywhere the pipeline puts them.
    fn identifying_report() -> Report {
        let finding = serde_json::json!({
            "id": 1, "tracking_uid": "1.2.3.4.7", "kind": "nodule",
            "center_lps_mm": [1.0, 2.0, 3.0], "center_voxel_xyz": [10.0, 20.0, 5.0],
            "slice_index": 5, "diameter_mm": 8.0, "long_axis_mm": 9.0, "short_axis_mm": 7.0,
            "volume_mm3": 250.0, "mean_hu": 20.0, "type": "solid", "solid_component_mm": null,
            "location": {"side": "right", "zone": "upper", "upper_lobe": true, "juxtapleural": false},
            "nodule_probability": 0.9, "malignancy_probability": 0.3, "spiculation_probability": null,
            "brock_probability": 0.1, "lung_rads": "4A", "lung_rads_reason": "solid 8–15 mm",
            "suspicion": 0.5, "axes_lps_mm": [[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]
        });
        serde_json::from_value(serde_json::json!({
            "schema": ct_triage_analysis::report::REPORT_SCHEMA,
            "generator": {"name": "ct-triage", "version": "0"},
            "model": {"name": "m", "version": "1", "sha256": "00", "runtime": "test"},
            "input": {
                "study_instance_uid": "1.2.3.4.5", "series_instance_uid": "1.2.3.4.6",
                "series_key": "1.2.3.4.6#2", "modality": "CT", "study_date": "20200315",
                "accession_number": "ACC-999", "patient_id": "PAT-12345", "files": 3,
                "skipped_files": 0, "size_xyz": [2, 2, 3], "spacing_mm": [1.0, 1.0, 1.0],
                "slice_thickness_mm": 1.0, "transfer_syntaxes": ["1.2.840.10008.1.2.1"],
                "manufacturer": "ACME", "convolution_kernel": "B30f"
            },
            "patient": {"age_years": 93.6, "age_source": "dicom", "female": true,
                        "sex_source": "dicom", "family_history": false, "emphysema": false,
                        "history_source": "default"},
            "warnings": [{"code": "series_not_found", "severity": "warning",
                          "message": "requested series 1.2.3.4.6 (PAT-12345) is not in the input; 2.5 mm."}],
            "lungs": null,
            "candidates": {"detected": 1, "classified": 1, "accepted": 1, "threshold": 0.5},
            "findings": [finding],
            "exam": {"lung_rads": "4A", "triage_priority": "priority", "triage_score": 0.5,
                     "triage_reasons": ["Lung-RADS 4A"], "nodule_count": 1, "inconclusive_reason": null},
            "key_images": [{"finding_id": 1, "file": "key-images/finding-1.png", "slice_index": 5,
                            "sop_instance_uid": "1.2.3.4.8"}],
            "timings_ms": {},
            "disclaimer": ct_triage_analysis::report::DISCLAIMER
        }))
        .unwrap()
    }

    /// A data set with the report's identifying attributes, de-identified.
    fn deidentified_object(o: &DeidOptions, salt: &str) -> Obj {
        let mut obj = Obj::new_empty();
        put_str(
            &mut obj,
            tags::SOP_CLASS_UID,
            VR::UI,
            "1.2.840.10008.5.1.4.1.1.88.34",
        );
        put_str(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4.9");
        put_str(&mut obj, tags::PATIENT_ID, VR::LO, "PAT-12345");
        put_str(&mut obj, tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.4.5");
        put_str(&mut obj, tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.4.6");
        put_str(&mut obj, tags::STUDY_DATE, VR::DA, "20200315");
        put_str(&mut obj, tags::ACCESSION_NUMBER, VR::SH, "ACC-999");
        put_str(&mut obj, tags::TRACKING_UID, VR::UI, "1.2.3.4.7");
        let mut f = build::to_file(obj, "test").unwrap();
        deidentify(&mut f, o, &mut UidMapper::new(salt)).unwrap();
        f.into_inner()
    }

    #[test]
    fn report_is_deidentified_like_the_objects() {
        let report = identifying_report();
        let o = DeidOptions::default();
        let (r, rec) = deidentify_report(&report, &o, &mut UidMapper::new("salt"));
        // No original identifying value left anywhere in the JSON.
        let json = r.to_json();
        for secret in ["PAT-12345", "ACC-999", "1.2.3.4.", "20200315"] {
            assert!(
                !json.contains(secret),
                "report still contains {secret}:\n{json}"
            );
        }
        // The same values as the DICOM objects de-identified with the same salt.
        let obj = deidentified_object(&o, "salt");
        let s = |t| build::string(&obj, t);
        assert_eq!(r.input.patient_id, s(tags::PATIENT_ID));
        assert_eq!(
            Some(r.input.study_instance_uid.clone()),
            s(tags::STUDY_INSTANCE_UID)
        );
        assert_eq!(
            Some(r.input.series_instance_uid.clone()),
            s(tags::SERIES_INSTANCE_UID)
        );
        assert_eq!(
            r.input.series_key,
            format!("{}#2", r.input.series_instance_uid)
        );
        assert_eq!(r.input.study_date, s(tags::STUDY_DATE));
        assert_eq!(
            Some(r.findings[0].tracking_uid.clone()),
            s(tags::TRACKING_UID)
        );
        assert_eq!(r.input.accession_number, None);
        assert!(s(tags::ACCESSION_NUMBER).is_none_or(|v| v.is_empty()));
        assert_eq!(
            r.key_images[0].sop_instance_uid,
            UidMapper::new("salt").map("1.2.3.4.8")
        );
        // Text: UIDs mapped, identifiers scrubbed, other numbers kept.
        assert_eq!(
            r.warnings[0].message,
            format!(
                "requested series {} ([removed]) is not in the input; 2.5 mm.",
                r.input.series_instance_uid
            )
        );
        assert_eq!(r.warnings.last().unwrap().code, "deidentified");
        // Kept: measurements, findings, device; age coarsened.
        assert_eq!(r.findings[0].diameter_mm, 8.0);
        assert_eq!(r.input.manufacturer.as_deref(), Some("ACME"));
        assert_eq!(r.patient.age_years, 90.0);
        // The record names paths, never values.
        let rec_json = serde_json::to_string(&rec).unwrap();
        for secret in ["PAT-12345", "ACC-999", "1.2.3.4.", "20200315"] {
            assert!(!rec_json.contains(secret), "record contains {secret}");
        }
        let paths: Vec<&str> = rec.actions.iter().map(|a| a.path.as_str()).collect();
        for p in [
            "input.study_instance_uid",
            "input.series_key",
            "input.patient_id",
            "input.accession_number",
            "input.study_date",
            "findings[0].tracking_uid",
            "key_images[0].sop_instance_uid",
            "warnings[0].message",
        ] {
            assert!(paths.contains(&p), "{p} not recorded: {paths:?}");
        }
        // The log leaves the date shift out.
        assert!(rec.date_shift_days.is_some());
        let log = DeidentificationLog::new(&o, vec![rec]);
        assert!(log.files.iter().all(|r| r.date_shift_days.is_none()));
        assert_eq!(log.dates, "modified");
    }

    #[test]
    fn report_options_follow_the_profile() {
        let report = identifying_report();
        let o = DeidOptions::default()
            .dates(DatePolicy::Remove)
            .retain_uids(true)
            .retain_patient_characteristics(true);
        let (r, _) = deidentify_report(&report, &o, &mut UidMapper::new("x"));
        assert_eq!(r.input.study_date, None);
        assert_eq!(r.input.study_instance_uid, "1.2.3.4.5");
        assert_eq!(r.input.series_key, "1.2.3.4.6#2");
        assert_eq!(r.patient.age_years, 93.6);
        assert!(r.input.patient_id.as_deref().unwrap().starts_with("ANON-"));
        let full = DeidOptions::default().dates(DatePolicy::Full);
        let (r, _) = deidentify_report(&report, &full, &mut UidMapper::new("x"));
        assert_eq!(r.input.study_date.as_deref(), Some("20200315"));
        // Another salt, other UIDs and pseudonym.
        let (a, _) = deidentify_report(&report, &DeidOptions::default(), &mut UidMapper::new("x"));
        let (b, _) = deidentify_report(&report, &DeidOptions::default(), &mut UidMapper::new("y"));
        assert_ne!(a.input.study_instance_uid, b.input.study_instance_uid);
        assert_ne!(a.input.patient_id, b.input.patient_id);
    }

    #[test]
    fn uids_in_text_are_mapped() {
        let mut m = UidMapper::new("t");
        let x = m.map("1.2.3.4");
        assert_eq!(
            map_uids_in_text("a 1.2.3.4. b 1.2.840.10008.1.2 c 0.1.0 d 2.5", &mut m),
            format!("a {x}. b 1.2.840.10008.1.2 c 0.1.0 d 2.5")
        );
    }

    #[test]
    fn dates_shift() {
        assert_eq!(shift_date("20200101", -1).as_deref(), Some("20191231"));
        assert_eq!(
            shift_date("20200301120000", -1).as_deref(),
            Some("20200229120000")
        );
        assert_eq!(shift_date("2020", 1), None);
    }
}
