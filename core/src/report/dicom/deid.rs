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

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::sync::OnceLock;

use dicom_core::value::{DataSetSequence, Value};
use dicom_core::{DataElement, Length, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{FileDicomObject, InMemDicomObject, OpenFileOptions};
use serde::{Deserialize, Serialize};

use super::build::{self, Obj, put_seq, put_str, put_strs};
use super::codes::{self, Code};
use super::deid_table::TABLE_E1_1;
use super::uid::{self, UidMapper};
use super::{civil_from_days, days_from_civil, parse_da};
use crate::error::{Error, Result};

/// The tag type of [`profile_row`] (dicom-rs `Tag`, re-exported).
pub use dicom_core::Tag;

/// Edition of PS3.15 the table was taken from.
pub const TABLE_EDITION: &str = "2026d";

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
    /// New SOP Instance UID.
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
    let shift = match o.dates {
        DatePolicy::Modified {
            shift_days: Some(d),
        } => Some(d),
        DatePolicy::Modified { shift_days: None } => {
            let h = mapper.derive("date-shift", b"");
            let n = u64::from_le_bytes(h[..8].try_into().unwrap_or([0; 8]));
            Some(-(365 + (n % 3285) as i32))
        }
        _ => None,
    };
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
    let mut ctx = Ctx {
        o,
        enabled: o.enabled(),
        mapper,
        shift,
        identifiers: identifiers(f),
        actions: Vec::new(),
    };
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
    let mut method_codes = vec![code_text(&codes::DEID_BASIC_PROFILE)];
    for opt in &ctx.enabled {
        let c = opt.code();
        method.push(c.meaning.chars().take(64).collect());
        code_items.push(build::code_item(&c));
        method_codes.push(code_text(&c));
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

    let mut counts = BTreeMap::new();
    for a in &ctx.actions {
        *counts.entry(a.action.clone()).or_insert(0) += 1;
    }
    Ok(DeidRecord {
        file: None,
        profile: "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile".into(),
        table_edition: TABLE_EDITION.into(),
        options: ctx.enabled.clone(),
        method_codes,
        date_shift_days: shift,
        sop_instance_uid: sop,
        actions: ctx.actions,
        counts,
        warnings,
    })
}

fn code_text(c: &Code) -> String {
    format!("{} {} {}", c.value, c.scheme, c.meaning)
}

struct Ctx<'a> {
    o: &'a DeidOptions,
    enabled: Vec<ProfileOption>,
    mapper: &'a mut UidMapper,
    shift: Option<i32>,
    identifiers: Vec<String>,
    actions: Vec<AppliedAction>,
}

impl Ctx<'_> {
    fn record(&mut self, path: &str, name: &str, action: &str, rule: &str) {
        self.actions.push(AppliedAction {
            path: path.to_string(),
            name: name.to_string(),
            action: action.to_string(),
            rule: rule.to_string(),
        });
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
            let v = ctx.o.patient_id.clone().unwrap_or_else(|| {
                let h = ctx.mapper.derive("patient-id", original.as_bytes());
                format!("ANON-{}", &uid::hex(&h)[..12].to_uppercase())
            });
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
    let mut out = Vec::new();
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
        let Some(vals) = obj
            .get(t)
            .and_then(|e| e.to_multi_str().ok().map(|v| v.to_vec()))
        else {
            continue;
        };
        for v in vals {
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
