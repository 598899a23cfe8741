//! The DICOM objects of `ct_triage_core::report::dicom` checked by real,
//! independent readers (CI installs them; a missing tool fails the test):
//!
//! - dcmtk `dsrdump` parses the SR (strict relationship checks), shows TID 1500
//!   and every measurement value; `dsr2xml` output, parsed with Python's XML
//!   parser, gives back exactly the values of `report.json`;
//! - highdicom reads the SR as a TID 1500 Measurement Report and every
//!   TID 1411 group with its measurements, evaluations and SEG reference, and
//!   pydicom's code dictionary knows every standard code used;
//! - dicom3tools `dciodvfy` (the IOD validator) finds no Error in the SR,
//!   the SEG, every Secondary Capture and the Key Object Selection;
//! - highdicom reads the KOS and every image it references is a source
//!   slice of a finding or one of the exported key images;
//! - highdicom reads the SEG: segments, frames, source instances and plane
//!   positions match the findings' slices (positions compared with the source
//!   files read by pydicom) and pixel counts match the masks;
//! - `dcmdump` of de-identified objects shows no profile attribute with an
//!   identifying value, and none of the original identifying values; the
//!   same for a result folder written by the native writer with
//!   de-identification on (objects, `report.json`, `deidentification.json`);
//! - Orthanc (started here on 127.0.0.1 with a temporary storage) stores the
//!   source CT, the SR, the SEG and the key images, before and after
//!   de-identification, as one study each.
//!
//! The analysis is lung1 with hand-built findings (see
//! `core/tests/dicom_fixture`); the same checks also run on a real analysis
//! with the trained model of `models/` (`real_model_objects_pass_the_readers`).

#[path = "../../core/tests/dicom_fixture/mod.rs"]
mod dicom_fixture;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ct_triage_core::pipeline::Analysis;
use ct_triage_core::report::dicom::{
    self, ContentDateTime, DeidOptions, ExportOptions, ExportedObject, ObjectKind, UidMapper, deid,
};

fn fixture() -> &'static Analysis {
    static A: OnceLock<Analysis> = OnceLock::new();
    A.get_or_init(dicom_fixture::analysis)
}

fn when() -> ContentDateTime {
    ContentDateTime::new("20240102", "030405").unwrap()
}

fn python() -> String {
    std::env::var("CTT_PYTHON").unwrap_or_else(|_| {
        let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python");
        if Path::new(venv).exists() {
            venv.into()
        } else {
            "python3".into()
        }
    })
}

/// Run a program; panic with its output unless it succeeds. Returns (stdout, stderr).
fn run(program: &str, args: &[&str]) -> (String, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} is not installed ({e}); CI installs it"));
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{so}\n{se}"
    );
    (so, se)
}

/// Write the exported objects and `report.json` into `dir`.
fn write_objects(dir: &Path, a: &Analysis, objs: &[ExportedObject]) {
    for o in objs {
        let p = dir.join(&o.file);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, &o.bytes).unwrap();
    }
    std::fs::write(dir.join("report.json"), a.report.to_json()).unwrap();
}

/// The finding masks as the readers should see them: voxel count and the
/// SOP Instance UIDs of the slices with voxels, per finding.
fn expected_masks(a: &Analysis) -> String {
    let v: Vec<serde_json::Value> = a
        .masks
        .iter()
        .map(|m| {
            let vox = dicom_fixture::voxels(m);
            let slices: BTreeSet<String> = vox
                .iter()
                .map(|v| a.series.slices[v[2]].sop_instance_uid.clone())
                .collect();
            serde_json::json!({"voxels": vox.len(), "instances": slices})
        })
        .chain(dicom::seg::opacity_segments(a).into_iter().map(|sg| {
            let map = a
                .opacity_map
                .as_ref()
                .expect("opacity segments come from the map");
            let slices: BTreeSet<String> = map
                .slices
                .iter()
                .filter(|s| s.count(sg.label) > 0)
                .map(|s| a.series.slices[s.slice].sop_instance_uid.clone())
                .collect();
            serde_json::json!({"voxels": sg.voxels, "instances": slices,
                               "label": sg.name, "code": sg.code.value})
        }))
        .collect();
    serde_json::Value::Array(v).to_string()
}

const CHECK_SR_XML: &str = r#"
import json, sys, xml.etree.ElementTree as ET
xml_path, report_path = sys.argv[1], sys.argv[2]
rep = json.load(open(report_path))
root = ET.parse(xml_path).getroot()
def code(el):
    c = el.find('concept')
    return (c.findtext('value'), c.findtext('scheme/designator')) if c is not None else None
def name(el): return code(el)
groups = []
def walk(el):
    for child in el:
        if child.tag == 'container' and name(child) == ('125007', 'DCM'):
            groups.append(child)
        walk(child)
walk(root)
op = rep.get('opacities')
def tid_of(g): return [t.findtext('value') for t in g.findall('text') if name(t) == ('112039', 'DCM')]
ogroups = groups[len(rep['findings']):]
groups = groups[:len(rep['findings'])]
assert all(tid_of(g)[0].startswith('Cornerstone3DTools') for g in groups)
# Issue 16: per opacity type with voxels a group, then the pattern group.
assert (op is None) == (len(ogroups) == 0), len(ogroups)
ochecked = 0
for g in ogroups:
    tid = tid_of(g)[0]
    vals = {}
    for n in g.findall('num'):
        vals.setdefault(name(n), []).append(float(n.find('value').text))
    if tid == 'Diffuse lung opacities':
        assert vals[('CTSS', '99CTT')] == [op['ct_severity_score']], vals
        assert vals[('LAA950', '99CTT')] == [op['emphysema_laa950_percent']], vals
        ochecked += 2
        continue
    k = {'Ground glass opacity': 'ground_glass', 'Consolidation': 'consolidation'}[tid]
    r, l = op['right'], op['left']
    want = [round(r[k + '_ml'] + l[k + '_ml'], 3), r[k + '_ml'], l[k + '_ml']]
    assert vals[('118565006', 'SCT')] == want, (tid, vals, want)
    assert vals[('LUNGPCT', '99CTT')] == [r[k + '_percent'], l[k + '_percent']], (tid, vals)
    ochecked += 5
assert op is None or tid_of(ogroups[-1]) == ['Diffuse lung opacities']
def nums(g):
    out = {}
    for n in g.findall('num'):
        key = name(n)
        method = [c.find('value') for c in n.findall('code') if name(c) == ('370129005', 'SCT')]
        if method: key = key + ('method',)
        out.setdefault(key, []).append(float(n.find('value').text))
    return out
checked = 0
for g, f in zip(groups, rep['findings']):
    tid = [t.findtext('value') for t in g.findall('text') if name(t) == ('112039', 'DCM')]
    # The Cornerstone3D prefix OHIF needs (SrOptions::tracking_identifier_prefix).
    assert tid == ['Cornerstone3DTools@^0.1.0:Bidirectional:Finding %d' % f['id']], tid
    uid = [u.findtext('value') for u in g.findall('uidref') if name(u) == ('112040', 'DCM')]
    assert uid == [f['tracking_uid']], uid
    n = nums(g)
    want = {
        ('103339001', 'SCT'): [f['long_axis_mm']],
        ('103340004', 'SCT'): [f['short_axis_mm']],
        ('81827009', 'SCT'): [f['diameter_mm']],
        ('118565006', 'SCT'): [f['volume_mm3']],
        ('112031', 'DCM'): [f['mean_hu']],
        ('111012', 'DCM'): [f['nodule_probability']],
        # The AI score has its own concept; Probability of cancer is only the Brock model's.
        ('AIMALIG', '99CTT'): [f['malignancy_probability']],
        ('111047', 'DCM', 'method'): [f['brock_probability']],
    }
    assert ('111047', 'DCM') not in n, 'a Probability of cancer without its method'
    # Every measurement names its algorithm (TID 300 / TID 4019).
    for m in g.findall('num'):
        algo = [t for t in m.findall('text') if name(t) in (('111001', 'DCM'), ('111003', 'DCM'))]
        assert len(algo) == 2, (name(m), len(algo))
    if f['solid_component_mm'] is not None:
        want[('SOLIDCOMP', '99CTT')] = [f['solid_component_mm']]
    for k, v in want.items():
        got = n.get(k)
        assert got is not None and len(got) == len(v), (k, got, v)
        for a, b in zip(got, v):
            assert abs(a - b) <= 1e-9 * max(1.0, abs(b)), (k, a, b)
            checked += 1
print('dsr2xml: %d finding groups, %d measurement values equal report.json; %d opacity groups, %d values equal'
      % (len(groups), checked, len(ogroups), ochecked))
"#;

const CHECK_SR_HIGHDICOM: &str = r#"
import json, sys
import highdicom as hd
from pydicom.sr.coding import Code
from pydicom.sr._concepts_dict import concepts
sr_path, report_path, seg_uid = sys.argv[1], sys.argv[2], sys.argv[3]
rep = json.load(open(report_path))
sr = hd.sr.srread(sr_path)
mr = sr.content
assert isinstance(mr, hd.sr.MeasurementReport), type(mr)
groups = mr.get_volumetric_roi_measurement_groups()
# Issue 16: the opacity types' TID 1411 groups follow the findings'.
ogroups = [g for g in groups if not g.tracking_identifier.startswith('Cornerstone3DTools')]
groups = [g for g in groups if g.tracking_identifier.startswith('Cornerstone3DTools')]
assert len(groups) == len(rep['findings'])
OPAC = {'Ground glass opacity': ('112120', 'ground_glass'), 'Consolidation': ('95436008', 'consolidation')}
op = rep.get('opacities')
for k, g in enumerate(ogroups):
    code, key = OPAC[g.tracking_identifier]
    assert g.finding_type.value == code, g.finding_type
    assert g.reference_type == Code('121191', 'DCM', ''), g.reference_type
    seg_item = g.referenced_segment[0]
    assert seg_item.referenced_sop_instance_uid == seg_uid
    nums = list(seg_item.referenced_segment_numbers) if not isinstance(seg_item.referenced_segment_numbers, int) else [seg_item.referenced_segment_numbers]
    assert nums == [len(rep['findings']) + k + 1], nums
    vols = [m for m in g.get_measurements(name=Code('118565006', 'SCT', ''))]
    assert len(vols) == 3 and vols[0].unit == Code('cm3', 'UCUM', '')
    assert abs(vols[0].value - (op['right'][key + '_ml'] + op['left'][key + '_ml'])) < 1e-6
mixed = [g.tracking_identifier for g in ogroups]
assert len(set(mixed)) == len(mixed), mixed
C = lambda v, s, m='': Code(v, s, m)
KIND = {'nodule': C('27925004', 'SCT'), 'mass': C('4147007', 'SCT')}
LOBE = {'right_upper': '45653009', 'left_upper': '45653009', 'right_middle': '72481006',
        'right_lower': '90572001', 'left_lower': '90572001', 'unknown': '39607008'}
SIDE = {'right': '24028007', 'left': '7771000'}
RADS = {'0': 'LR0', '1': 'LR1', '2': 'LR2', '3': 'LR3', '4A': 'LR4A', '4B': 'LR4B', '4X': 'LR4X'}
def close(a, b): return abs(a - b) <= 1e-9 * max(1.0, abs(b))
for i, (g, f) in enumerate(zip(groups, rep['findings'])):
    assert g.tracking_uid == f['tracking_uid'] and g.tracking_identifier == 'Cornerstone3DTools@^0.1.0:Bidirectional:Finding %d' % f['id']
    assert g.finding_type == KIND[f['kind']], g.finding_type
    site = g.finding_sites[0]
    assert site.value.value == LOBE[f['location']['lobe']] and site.laterality.value == SIDE[f['location']['side']]
    assert g.reference_type == C('121191', 'DCM'), g.reference_type
    ref = g.referenced_segment
    seg_item = ref[0]
    assert seg_item.referenced_sop_instance_uid == seg_uid
    assert list(seg_item.referenced_segment_numbers) == [i + 1] or seg_item.referenced_segment_numbers == i + 1
    def one(code, with_method=False):
        ms = [m for m in g.get_measurements(name=code) if (m.method is not None) == with_method]
        assert len(ms) == 1, (code, len(ms))
        return ms[0]
    long_ = one(C('103339001', 'SCT'))
    assert close(long_.value, f['long_axis_mm']) and long_.unit == C('mm', 'UCUM')
    assert close(one(C('103340004', 'SCT')).value, f['short_axis_mm'])
    d = one(C('81827009', 'SCT'))
    assert close(d.value, f['diameter_mm']) and d.derivation == C('373098007', 'SCT')
    assert close(one(C('118565006', 'SCT')).value, f['volume_mm3'])
    hu = one(C('112031', 'DCM'))
    assert close(hu.value, f['mean_hu']) and hu.unit == C("[hnsf'U]", 'UCUM')
    assert close(one(C('111012', 'DCM')).value, f['nodule_probability'])
    # Each probability under its own concept name: the AI score and the Brock model.
    ai = one(C('AIMALIG', '99CTT'))
    assert close(ai.value, f['malignancy_probability']) and ai.name.meaning == 'AI malignancy score'
    assert not [m for m in g.get_measurements(name=C('111047', 'DCM')) if m.method is None]
    brock = one(C('111047', 'DCM'), with_method=True)
    assert close(brock.value, f['brock_probability']) and brock.method == C('BROCK', '99CTT')
    names = [m.name.meaning for m in g.get_measurements()]
    assert len(names) == len(set(names)), names
    # The long axis polyline on the image it was measured on (2-D SCOORD, SELECTED FROM the slice).
    coords = [c for c in long_[0].ContentSequence if c.ValueType == 'SCOORD']
    assert coords[0].GraphicType == 'POLYLINE' and len(coords[0].GraphicData) == 4
    assert coords[0].ContentSequence[0].RelationshipType == 'SELECTED FROM'
    assert not [c for c in long_[0].ContentSequence if c.ValueType == 'SCOORD3D']
    evals = {(q.name.value, q.name.scheme_designator): q.value.value for q in g.get_qualitative_evaluations()}
    assert evals[('111005', 'DCM')] == RADS[f['lung_rads']], evals
    assert ('NODTYPE', '99CTT') in evals
# Exam-level evaluations (TID 1500 row 12).
qe = [c for c in mr[0].ContentSequence if c.name == C('C0034375', 'UMLS')]
assert len(qe) == 1
items = {(c.name.value, c.name.scheme_designator): c for c in qe[0].ContentSequence}
rads = rep['exam']['lung_rads']
assert items[('111005', 'DCM')].value.value == (RADS[rads] if rads else 'LR0')
assert items[('260870009', 'SCT')].value.value == rep['exam']['triage_priority'].upper()
# The category's reason and management, the disclaimer and every limit.
props = {(c.name.value): c.value for c in items[('111005', 'DCM')].ContentSequence if c.ValueType == 'TEXT'}
assert props['LRREASON'] == rep['exam']['lung_rads_reason'], props
assert props['LRMGMT'] == rep['exam']['management'], props
texts = [(c.name.value, c.value) for c in qe[0].ContentSequence if c.ValueType == 'TEXT']
assert ('121106', rep['disclaimer']) in texts
assert [v for k, v in texts if k == 'LIMIT'] == rep['limits'] and len(rep['limits']) >= 8
# Every standard code is in the DICOM code dictionaries shipped with pydicom.
known = {}
for scheme, by_name in concepts.items():
    for kw, entries in by_name.items():
        for value, (meaning, cids) in entries.items():
            known[(scheme, value)] = meaning
def codes_in(ds, out):
    for el in ds:
        if el.VR == 'SQ':
            for it in el.value:
                if 'CodeValue' in it and 'CodingSchemeDesignator' in it:
                    out.add((it.CodingSchemeDesignator, it.CodeValue, it.CodeMeaning))
                codes_in(it, out)
used = set()
codes_in(sr, used)
# One SNOMED CT concept outside the DICOM context groups, by decision (codes.rs:
# LUNG_CONSOLIDATION): no CID has consolidation.
known[('SCT', '95436008')] = 'Lung consolidation'
missing = [c for c in used if c[0] in ('DCM', 'SCT', 'LN', 'UCUM') and (c[0], c[1]) not in known]
assert not missing, missing
private = sorted({c[1] for c in used if c[0] == '99CTT'})
declared = [s.CodingSchemeDesignator for s in sr.CodingSchemeIdentificationSequence]
assert '99CTT' in declared
print('highdicom: TID 1500 with %d finding and %d opacity TID 1411 groups; %d codes used, %d standard codes all in pydicom (+ Lung consolidation), private 99CTT: %s'
      % (len(groups), len(ogroups), len(used), len([c for c in used if c[0] in ('DCM','SCT','LN','UCUM')]), ' '.join(private)))
"#;

const CHECK_SEG: &str = r#"
import json, sys, glob
import numpy as np
import highdicom as hd
import pydicom
seg_path, report_path, expected_json, source_dir = sys.argv[1:5]
rep = json.load(open(report_path))
expected = json.loads(open(expected_json).read())
seg = hd.seg.segread(seg_path)
assert seg.segmentation_type.value == 'BINARY'
nums = list(seg.segment_numbers)
# The findings' segments, then one per opacity type with voxels (issue 16).
assert nums == list(range(1, len(expected) + 1)), (nums, len(expected))
for i, e in enumerate(expected[len(rep['findings']):]):
    desc = seg.get_segment_description(len(rep['findings']) + i + 1)
    assert desc.segment_label == e['label'], (desc.segment_label, e['label'])
    assert desc.segmented_property_type.value == e['code'], desc.segmented_property_type
src = {}
for p in glob.glob(source_dir + '/*.dcm'):
    d = pydicom.dcmread(p, stop_before_pixels=True)
    src[d.SOPInstanceUID] = [float(v) for v in d.ImagePositionPatient]
for i, f in enumerate(rep['findings']):
    desc = seg.get_segment_description(i + 1)
    assert desc.segment_label == 'Finding %d' % f['id'], desc.segment_label
    assert desc.tracking_uid == f['tracking_uid']
    assert desc.algorithm_type.value == 'AUTOMATIC'
    kind = {'nodule': '27925004', 'mass': '4147007'}[f['kind']]
    assert desc.segmented_property_type.value == kind
# Frames: source instance, plane position = the source image's position.
frames = {}
for fr in seg.PerFrameFunctionalGroupsSequence:
    n = fr.SegmentIdentificationSequence[0].ReferencedSegmentNumber
    uid = fr.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
    pos = [float(v) for v in fr.PlanePositionSequence[0].ImagePositionPatient]
    assert np.allclose(pos, src[uid], atol=1e-3), (pos, src[uid])
    frames.setdefault(n, set()).add(uid)
uids = sorted(src)
# Every lung1 instance; those without a frame must come back empty.
px = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=nums,
                                      assert_missing_frames_are_empty=True)
for i, e in enumerate(expected):
    assert frames[i + 1] == set(e['instances']), (i + 1, sorted(frames[i + 1]), e['instances'])
    count = int(px[..., i].sum())
    assert count == e['voxels'], (i + 1, count, e['voxels'])
    with_voxels = {u for j, u in enumerate(uids) if px[j, ..., i].any()}
    assert with_voxels == set(e['instances'])
print('highdicom: SEG %d segments, %d frames; frames on the segments\' slices at the source positions; pixel counts %s match the masks and opacity map'
      % (len(nums), seg.NumberOfFrames, [e['voxels'] for e in expected]))
"#;

const CHECK_KOS: &str = r#"
import json, sys, glob, os
import highdicom as hd, pydicom
kos_path, report_path, out_dir, source_dir = sys.argv[1:5]
rep = json.load(open(report_path))
ko = hd.ko.KeyObjectSelectionDocument.from_dataset(pydicom.dcmread(kos_path))
assert ko.ConceptNameCodeSequence[0].CodeValue == '113000', ko.ConceptNameCodeSequence
assert ko.ContentTemplateSequence[0].TemplateIdentifier == '2010'
refs = [r.referenced_sop_instance_uid for r in ko.content.get_references()]
sc = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID
      for p in glob.glob(os.path.join(out_dir, 'key-images', '*.sc.dcm'))}
src = {}
for p in glob.glob(source_dir + '/*.dcm'):
    d = pydicom.dcmread(p, stop_before_pixels=True)
    src[d.SOPInstanceUID] = int(d.InstanceNumber)
want_ct = {k['sop_instance_uid'] for k in rep['key_images']}
# Issue 16: the opacities' most affected slice and its key image.
ms = (rep.get('opacities') or {}).get('most_affected_slice')
if ms:
    by_number = {n: u for u, n in src.items()}
    want_ct.add(by_number[ms['image_number']])
assert set(refs) == want_ct | sc, (sorted(set(refs) ^ (want_ct | sc)))
assert len(sc) == 2 * len(rep['findings']) + (1 if ms and ms.get('key_image') else 0), len(sc)
for f in rep['findings']:
    k = [k for k in rep['key_images'] if k['finding_id'] == f['id']][0]
    # The image number in the report is the source file's InstanceNumber.
    assert src[k['sop_instance_uid']] == f['image_number'] == k['image_number'], f['id']
print('highdicom: KOS references %d images (%d source slices, %d key images); image numbers = InstanceNumber'
      % (len(refs), len(want_ct), len(sc)))
"#;

/// dicom3tools' IOD validator on every DICOM object in `dir`: the Error lines.
fn dciodvfy_errors(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for e in walk_dcm(dir) {
        let res = Command::new("dciodvfy")
            .arg(&e)
            .output()
            .unwrap_or_else(|err| {
                panic!("dciodvfy is not installed ({err}); apt-get install dicom3tools")
            });
        let text = String::from_utf8_lossy(&res.stderr).into_owned()
            + &String::from_utf8_lossy(&res.stdout);
        let errors: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("Error"))
            .map(str::to_string)
            .collect();
        let warnings = text.lines().filter(|l| l.starts_with("Warning")).count();
        eprintln!(
            "dciodvfy {}: {} error(s), {warnings} warning(s)",
            e.strip_prefix(dir).unwrap_or(&e).display(),
            errors.len()
        );
        out.insert(e.display().to_string(), errors);
    }
    out
}

/// Every `*.dcm` below `dir`, sorted.
fn walk_dcm(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "dcm") {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

fn script(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

/// Every check of the SR and the SEG against the external readers, on one analysis.
fn check_sr_and_seg(a: &Analysis, dir: &Path) {
    let objs = dicom::export(a, &ExportOptions::new().content(when())).unwrap();
    write_objects(dir, a, &objs);
    let sr = dir.join("report.sr.dcm").display().to_string();
    let report = dir.join("report.json").display().to_string();

    // dsrdump: strict parse, template and every measurement value shown.
    let (out, err) = run("dsrdump", &["+Pt", "+Pc", "+Pl", &sr]);
    // dcmtk 3.6.7 cannot VR-check UTF-8 text (written when a reason has a
    // non-Latin-1 character such as "≥"); that notice is not a finding.
    let complaints: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("E:") || l.starts_with("W:"))
        .filter(|l| !l.contains("VR checker does not support this Specific Character Set"))
        .collect();
    assert!(complaints.is_empty(), "dsrdump complained:\n{err}");
    assert!(out.contains("Imaging Measurement Report"), "{out}");
    assert!(
        out.contains("TID 1500 (DCMR)"),
        "template identification not shown:\n{out}"
    );
    assert!(out.contains("TID 1411 (DCMR)"));
    for f in &a.report.findings {
        for v in [
            f.long_axis_mm,
            f.short_axis_mm,
            f.diameter_mm,
            f.volume_mm3,
            f.mean_hu,
        ] {
            let s = format!("\"{}\"", ct_ds(v));
            assert!(out.contains(&s), "dsrdump does not show {s}");
        }
    }
    eprintln!(
        "dsrdump: {} lines, TID 1500 and 1411 shown, no warning",
        out.lines().count()
    );

    // dsr2xml: values read back equal report.json.
    let (xml, err) = run("dsr2xml", &[&sr]);
    assert!(!err.contains("E:"), "dsr2xml complained:\n{err}");
    let xml_path = dir.join("report.sr.xml");
    std::fs::write(&xml_path, xml).unwrap();
    let (o, _) = run(
        &python(),
        &[
            &script(dir, "check_sr_xml.py", CHECK_SR_XML),
            &xml_path.display().to_string(),
            &report,
        ],
    );
    eprint!("{o}");

    // highdicom: TID 1500 / 1411 structure, values and codes.
    let seg_uid = objs
        .iter()
        .find(|o| o.kind == ObjectKind::Seg)
        .unwrap()
        .sop_instance_uid
        .clone();
    let (o, _) = run(
        &python(),
        &[
            &script(dir, "check_sr.py", CHECK_SR_HIGHDICOM),
            &sr,
            &report,
            &seg_uid,
        ],
    );
    eprint!("{o}");

    // dciodvfy: no Error in any object (SR, SEG, SC, KOS).
    let kinds: BTreeSet<ObjectKind> = objs.iter().map(|o| o.kind).collect();
    assert_eq!(kinds.len(), 4, "SR, SEG, SC and KOS exported: {kinds:?}");
    let errors = dciodvfy_errors(dir);
    assert_eq!(errors.len(), objs.len());
    for (file, e) in &errors {
        assert!(e.is_empty(), "dciodvfy {file}:\n{}", e.join("\n"));
    }

    // highdicom: the KOS points to the source slices and the key images.
    let kos = objs
        .iter()
        .find(|o| o.kind == ObjectKind::KeyObjectSelection)
        .unwrap();
    let source_dir = dicom_fixture::repo_root().join("sample-dicom/lung1");
    let (o, _) = run(
        &python(),
        &[
            &script(dir, "check_kos.py", CHECK_KOS),
            &dir.join(&kos.file).display().to_string(),
            &report,
            &dir.display().to_string(),
            &source_dir.display().to_string(),
        ],
    );
    eprint!("{o}");

    // highdicom + pydicom: the SEG against the masks and the source files.
    let expected = dir.join("expected_masks.json");
    std::fs::write(&expected, expected_masks(a)).unwrap();
    let (o, _) = run(
        &python(),
        &[
            &script(dir, "check_seg.py", CHECK_SEG),
            &dir.join("findings.seg.dcm").display().to_string(),
            &report,
            &expected.display().to_string(),
            &source_dir.display().to_string(),
        ],
    );
    eprint!("{o}");
}

/// The DS text the writer uses for a value (what dsrdump prints).
fn ct_ds(v: f64) -> String {
    let s = format!("{v}");
    if s.len() <= 16 {
        s
    } else {
        format!("{v:.10}").trim_end_matches('0').to_string()
    }
}

#[test]
fn sr_and_seg_pass_dcmtk_and_highdicom() {
    let dir = tempfile::tempdir().unwrap();
    check_sr_and_seg(fixture(), dir.path());
}

/// The trained model shipped in `models/`: a missing model is a failure.
#[test]
fn real_model_objects_pass_the_readers() {
    let root = dicom_fixture::repo_root();
    let manifest = root.join("models/ctt-nodule-v1.json");
    let weights = root.join("models/ctt-nodule-v1.safetensors");
    for p in [&manifest, &weights] {
        assert!(
            p.is_file(),
            "{} is missing: the model is part of the repository",
            p.display()
        );
    }
    real_model::check(&manifest, &weights);
}

mod real_model {
    use super::*;

    pub fn check(manifest: &Path, weights: &Path) {
        use ct_triage_core::pipeline::{AnalysisOptions, analyze_series};
        use ct_triage_core::progress::NoProgress;
        let m = std::fs::read(manifest).unwrap();
        let w = std::fs::read(weights).unwrap();
        let classifier = load_classifier(&m, &w);
        let series = dicom_fixture::lung1_series();
        let a = analyze_series(
            series,
            &AnalysisOptions::default(),
            classifier.as_ref(),
            &NoProgress,
        )
        .expect("analysis with the real model");
        eprintln!("real model: {} findings", a.report.findings.len());
        let dir = tempfile::tempdir().unwrap();
        if a.report.findings.is_empty() {
            let objs = dicom::export(&a, &ExportOptions::new().content(when())).unwrap();
            write_objects(dir.path(), &a, &objs);
            run(
                "dsrdump",
                &[&dir.path().join("report.sr.dcm").display().to_string()],
            );
        } else {
            check_sr_and_seg(&a, dir.path());
        }
    }

    /// The built-in burn classifier (the core's `burn` feature is on in test
    /// builds: the native crate, a dev-dependency, enables it).
    fn load_classifier(m: &[u8], w: &[u8]) -> Box<dyn ct_triage_core::classify::Classifier> {
        let manifest =
            ct_triage_core::classify::ModelManifest::from_json(std::str::from_utf8(m).unwrap())
                .unwrap();
        Box::new(
            ct_triage_core::classify::burn_net::BurnClassifier::from_bytes(manifest, w).unwrap(),
        )
    }
}

/// One dcmdump line: tag, VR, value text (`None` for "no value available").
fn dcmdump_elements(path: &Path) -> Vec<(String, String, Option<String>)> {
    let (out, _) = run("dcmdump", &["-q", "+L", "-Un", &path.display().to_string()]);
    out.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let rest = l.strip_prefix('(')?;
            let tag = rest.get(0..9)?.to_uppercase();
            let vr = rest.get(11..13)?.to_string();
            let value = rest.get(14..)?.split(" #").next()?.trim().to_string();
            let value = if value.starts_with("(no value") {
                None
            } else {
                Some(
                    value
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_string(),
                )
            };
            Some((tag, vr, value))
        })
        .collect()
}

/// A lung1 slice with many identifying attributes added (including nested
/// and private ones), written with dcmodify-free means: pydicom.
const MAKE_IDENTIFYING: &str = r#"
import sys, pydicom
from pydicom.dataset import Dataset
src, dst = sys.argv[1], sys.argv[2]
d = pydicom.dcmread(src)
d.PatientName = 'Doe^Johnathan'; d.PatientBirthDate = '19580317'; d.PatientAge = '065Y'
d.OtherPatientIDs = 'MRN-998877'; d.PatientAddress = '1 Main Street'; d.InstitutionName = 'Saint Example Hospital'
d.InstitutionAddress = 'Hospital Road 5'; d.ReferringPhysicianName = 'Referrer^Rita'; d.OperatorsName = 'Tech^Tina'
d.PerformingPhysicianName = 'Perf^Paul'; d.StationName = 'CTSTATION7'; d.DeviceSerialNumber = 'SN-12345'
d.AcquisitionDate = '20200101'; d.SeriesDate = '20200101'; d.ContentDate = '20200101'; d.AcquisitionTime = '081500'
d.StudyDescription = 'CT CHEST Johnathan'; d.ImageComments = 'call Dr Referrer'; d.RequestingPhysician = 'Req^Rob'
it = Dataset(); it.ReferencedSOPClassUID = '1.2.840.10008.5.1.4.1.1.2'; it.ReferencedSOPInstanceUID = '1.2.3.4.5.6.7'
d.ReferencedImageSequence = [it]
d.add_new(0x00091010, 'LO', 'ACME'); d.add_new(0x00091011, 'LO', 'private Johnathan')
d.save_as(dst)
"#;

#[test]
fn deidentified_objects_show_no_profile_attribute_in_dcmdump() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (name, _) = dicom_fixture::lung1_files().remove(0);
    let ct = d.join("identifying-ct.dcm");
    run(
        &python(),
        &[
            &script(d, "make.py", MAKE_IDENTIFYING),
            &name,
            &ct.display().to_string(),
        ],
    );
    let a = fixture();
    let objs = dicom::export(a, &ExportOptions::new().content(when())).unwrap();
    let opts = DeidOptions::default();
    let mut mapper = UidMapper::new("interop-run");
    let mut inputs: Vec<(String, Vec<u8>)> =
        vec![("identifying-ct.dcm".into(), std::fs::read(&ct).unwrap())];
    inputs.extend(
        objs.iter()
            .map(|o| (o.file.replace('/', "_"), o.bytes.clone())),
    );
    let secrets = [
        "Doe",
        "Johnathan",
        "19580317",
        "MRN-998877",
        "Main Street",
        "Saint Example",
        "Hospital Road",
        "Referrer",
        "Tech^Tina",
        "Perf^Paul",
        "CTSTATION7",
        "SN-12345",
        "ANON-LUNG1",
        "ACC-LUNG1",
        "Anonymous^Lung1",
        "1.2.3.4.5.6.7",
        "ACME",
    ];
    let mut records = Vec::new();
    for (file, bytes) in &inputs {
        let orig_path = d.join(format!("orig-{file}"));
        std::fs::write(&orig_path, bytes).unwrap();
        let (out, rec) = deid::deidentify_bytes(bytes, &opts, &mut mapper).unwrap();
        let path = d.join(format!("deid-{file}"));
        std::fs::write(&path, &out).unwrap();
        // Original values, tag by tag, as dcmdump shows them.
        let mut original: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (tag, _, v) in dcmdump_elements(&orig_path) {
            original.entry(tag).or_default().extend(v);
        }
        let mut checked = 0;
        for (tag, vr, value) in dcmdump_elements(&path) {
            let t = ct_triage_core_tag(&tag);
            if t.0 % 2 == 1 {
                panic!("{file}: private attribute {tag} left");
            }
            let Some(row) = deid::profile_row(t) else {
                continue;
            };
            let action = opts.action_of(row);
            use deid::Action::*;
            checked += 1;
            match action {
                X => panic!(
                    "{file}: {tag} {} must be removed, dcmdump shows {value:?}",
                    row.name
                ),
                Z => assert!(
                    value.is_none() || vr == "SQ",
                    "{file}: {tag} {} must be empty: {value:?}",
                    row.name
                ),
                K => {}
                _ => {
                    if let Some(v) = &value
                        && vr != "SQ"
                        && vr != "na"
                    {
                        let same = original.get(&tag).is_some_and(|o| o.contains(v));
                        let dummy = v == "ANONYMIZED" || v.starts_with("ANON-");
                        // C keeps cleaned text (no identifying value left: checked
                        // below on the whole dump) and times of day; dates must move.
                        let cleaned_text = action == C && !matches!(vr.as_str(), "DA" | "DT");
                        assert!(
                            !same || dummy || cleaned_text,
                            "{file}: {tag} {} ({}) still has its original value {v:?}",
                            row.name,
                            action.as_str()
                        );
                    }
                }
            }
        }
        let (dump, _) = run("dcmdump", &["-q", "+L", &path.display().to_string()]);
        for s in secrets {
            assert!(!dump.contains(s), "{file}: dcmdump still shows {s:?}");
        }
        assert!(
            dump.contains("(0012,0062) CS [YES]"),
            "{file}: PatientIdentityRemoved"
        );
        assert!(dump.contains("113100"), "{file}: method code");
        eprintln!(
            "dcmdump {file}: {checked} profile attributes present, all de-identified; {} actions recorded",
            rec.actions.len()
        );
        records.push(rec);
    }
    // The record is JSON and carries no original value.
    let json = serde_json::to_string_pretty(&records).unwrap();
    for s in secrets {
        assert!(!json.contains(s), "record leaks {s}");
    }
}

/// The result folder `ct-triage analyze --deidentify` writes (the native
/// writer, `output::write_analysis`, with a de-identification key): no
/// attribute of the profile keeps an identifying value in any `.dcm`
/// (dcmdump), no original identifying value is left in the objects,
/// `report.json` or `deidentification.json`, and the report has the UIDs and
/// pseudonym of the objects.
#[test]
fn deidentified_result_folder_keeps_no_original_phi() {
    use ct_triage_native::output::{self, DeidKey, OutputOptions};
    let a = fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let key = DeidKey::load_or_create(&dir.path().join("deid.key")).unwrap();
    let opts = OutputOptions {
        deidentify: Some(key),
    };
    let written = output::write_analysis(&out, a, &opts).unwrap();
    let files: Vec<String> = written
        .dicom
        .iter()
        .map(|p| p.strip_prefix(&out).unwrap().display().to_string())
        .collect();
    assert!(
        files.contains(&"report.sr.dcm".to_string())
            && files.contains(&"findings.seg.dcm".to_string())
            && files.iter().any(|f| f.ends_with(".sc.dcm")),
        "{files:?}"
    );

    // Every identifying value of the input that the objects or the report carry.
    let m = &a.series.meta;
    let mut secrets: Vec<String> = [
        m.patient_id.clone(),
        m.patient_name.clone(),
        m.patient_birth_date.clone(),
        m.accession_number.clone(),
        m.referring_physician_name.clone(),
        m.frame_of_reference_uid.clone(),
        Some(m.study_instance_uid.clone()),
        Some(m.series_instance_uid.clone()),
    ]
    .into_iter()
    .flatten()
    .filter(|v| v.len() >= 3)
    .collect();
    secrets.extend(a.series.slices.iter().map(|s| s.sop_instance_uid.clone()));
    secrets.extend(a.report.findings.iter().map(|f| f.tracking_uid.clone()));
    // (The study date is checked where it is written: a shifted date of
    // today could meet it by chance elsewhere.)
    for must in ["ANON-LUNG1", "ACC-LUNG1", "Anonymous^Lung1"] {
        assert!(
            secrets.iter().any(|s| s == must),
            "{must} not in {secrets:?}"
        );
    }

    let opts = DeidOptions::default();
    let mut sr_dump = String::new();
    let mut seg_dump = String::new();
    let mut patient_ids = BTreeSet::new();
    let mut study_uids = BTreeSet::new();
    for (path, file) in written.dicom.iter().zip(&files) {
        let mut checked = 0;
        for (tag, vr, value) in dcmdump_elements(path) {
            let t = ct_triage_core_tag(&tag);
            assert!(
                t.0.is_multiple_of(2),
                "{file}: private attribute {tag} left"
            );
            match tag.as_str() {
                "0010,0020" => patient_ids.extend(value.clone()),
                "0020,000D" => study_uids.extend(value.clone()),
                _ => {}
            }
            let Some(row) = deid::profile_row(t) else {
                continue;
            };
            checked += 1;
            use deid::Action::*;
            match opts.action_of(row) {
                X => panic!(
                    "{file}: {tag} {} must be removed, dcmdump shows {value:?}",
                    row.name
                ),
                Z => assert!(
                    value.is_none() || vr == "SQ",
                    "{file}: {tag} {} must be empty: {value:?}",
                    row.name
                ),
                _ => {}
            }
        }
        let (dump, _) = run("dcmdump", &["-q", "+L", &path.display().to_string()]);
        for s in &secrets {
            assert!(
                !dump.contains(s.as_str()),
                "{file}: dcmdump still shows {s:?}"
            );
        }
        assert!(
            dump.contains("(0012,0062) CS [YES]"),
            "{file}: PatientIdentityRemoved"
        );
        assert!(dump.contains("113100"), "{file}: method code");
        eprintln!("dcmdump {file}: {checked} profile attributes present, none identifying");
        match file.as_str() {
            "report.sr.dcm" => sr_dump = dump,
            "findings.seg.dcm" => seg_dump = dump,
            _ => {}
        }
    }

    // report.json: no original value; the objects' UIDs and pseudonym.
    let text = std::fs::read_to_string(&written.report).unwrap();
    for s in &secrets {
        assert!(
            !text.contains(s.as_str()),
            "report.json still contains {s:?}"
        );
    }
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    let input = &report["input"];
    let pid = input["patient_id"].as_str().unwrap();
    assert!(pid.starts_with("ANON-"), "{pid}");
    assert_eq!(patient_ids, BTreeSet::from([pid.to_string()]));
    let study = input["study_instance_uid"].as_str().unwrap();
    assert_eq!(study_uids, BTreeSet::from([study.to_string()]));
    assert!(input["accession_number"].is_null());
    let shifted = input["study_date"].as_str().unwrap();
    assert_ne!(Some(shifted), m.study_date.as_deref());
    assert!(sr_dump.contains(&format!("(0008,0020) DA [{shifted}]")));
    let series = input["series_instance_uid"].as_str().unwrap();
    assert!(sr_dump.contains(series) && seg_dump.contains(series));
    for f in report["findings"].as_array().unwrap() {
        let t = f["tracking_uid"].as_str().unwrap();
        assert!(
            sr_dump.contains(t) && seg_dump.contains(t),
            "tracking UID {t}"
        );
    }
    for k in report["key_images"].as_array().unwrap() {
        let u = k["sop_instance_uid"].as_str().unwrap();
        assert!(
            sr_dump.contains(u),
            "key image source {u} not referenced by the SR"
        );
    }
    assert!(
        report["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["code"] == "deidentified")
    );

    // deidentification.json: one record per file, no original value, no date shift.
    let log_path = written.deidentification.clone().unwrap();
    assert_eq!(log_path, out.join("deidentification.json"));
    let log_text = std::fs::read_to_string(&log_path).unwrap();
    for s in &secrets {
        assert!(
            !log_text.contains(s.as_str()),
            "deidentification.json leaks {s:?}"
        );
    }
    let log: serde_json::Value = serde_json::from_str(&log_text).unwrap();
    let mut logged: Vec<String> = log["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert!(r["date_shift_days"].is_null(), "date shift disclosed");
            assert!(!r["actions"].as_array().unwrap().is_empty());
            r["file"].as_str().unwrap().to_string()
        })
        .collect();
    logged.sort();
    let mut expected = files.clone();
    expected.push("report.json".into());
    expected.sort();
    assert_eq!(logged, expected);
    eprintln!(
        "result folder: {} objects, report.json and deidentification.json free of {} original values",
        files.len(),
        secrets.len()
    );
}

/// `GGGG,EEEE` as a tag (the type re-exported by the core's deid module).
fn ct_triage_core_tag(s: &str) -> deid::Tag {
    let g = u16::from_str_radix(&s[0..4], 16).unwrap();
    let e = u16::from_str_radix(&s[5..9], 16).unwrap();
    deid::Tag(g, e)
}

// ---- Orthanc ----

/// An Orthanc server on 127.0.0.1 with a temporary storage, killed on drop.
struct Orthanc {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Orthanc {
    fn start() -> Orthanc {
        let bin = std::env::var("CTT_ORTHANC").unwrap_or_else(|_| "/usr/sbin/Orthanc".into());
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = serde_json::json!({
            "Name": "ct-triage-test",
            "StorageDirectory": dir.path().join("storage"),
            "IndexDirectory": dir.path().join("index"),
            "HttpPort": port,
            "HttpServerEnabled": true,
            "RemoteAccessAllowed": false,
            "AuthenticationEnabled": false,
            "DicomServerEnabled": false,
            "Plugins": [],
            "ConcurrentJobs": 1,
            "HttpThreadsCount": 2
        });
        let cfg_path = dir.path().join("orthanc.json");
        std::fs::write(&cfg_path, cfg.to_string()).unwrap();
        let child = Command::new(&bin)
            .arg(&cfg_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{bin} is not installed ({e}); CI installs it"));
        let o = Orthanc {
            child,
            port,
            _dir: dir,
        };
        let t0 = Instant::now();
        loop {
            if o.request("GET", "/system", &[])
                .map(|(s, _)| s == 200)
                .unwrap_or(false)
            {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "Orthanc did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        o
    }

    /// A plain HTTP/1.1 request; (status, body).
    fn request(&self, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/dicom\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        s.write_all(body)?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp)?;
        let text = String::from_utf8_lossy(&resp).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_string()
        };
        Ok((status, body))
    }

    fn json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.request("GET", path, &[]).unwrap();
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    fn store(&self, name: &str, bytes: &[u8]) -> String {
        let (status, body) = self.request("POST", "/instances", bytes).unwrap();
        assert_eq!(status, 200, "POST /instances {name}: {status} {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["Status"], "Success", "{name}: {body}");
        v["ID"].as_str().unwrap().to_string()
    }
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dechunk(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some((len, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

#[test]
fn orthanc_stores_everything() {
    let a = fixture();
    let orthanc = Orthanc::start();
    let objs = dicom::export(a, &ExportOptions::new().content(when())).unwrap();
    let mut ids = BTreeMap::new();
    for (name, bytes) in dicom_fixture::lung1_files() {
        orthanc.store(&name, &bytes);
    }
    for o in &objs {
        ids.insert(o.file.clone(), orthanc.store(&o.file, &o.bytes));
    }
    // De-identified: the CT and our objects, one mapper for the run.
    let mut mapper = UidMapper::new("orthanc-run");
    let d = DeidOptions::default();
    for (name, bytes) in dicom_fixture::lung1_files() {
        let (b, _) = deid::deidentify_bytes(&bytes, &d, &mut mapper).unwrap();
        orthanc.store(&name, &b);
    }
    let (dobjs, _) =
        dicom::export_deidentified(a, &ExportOptions::new().content(when()), &d, &mut mapper)
            .unwrap();
    for o in &dobjs {
        orthanc.store(&format!("de-identified {}", o.file), &o.bytes);
    }
    let instances = orthanc.json("/instances");
    let n_ct = dicom_fixture::lung1_files().len();
    assert_eq!(instances.as_array().unwrap().len(), 2 * (n_ct + objs.len()));
    let studies = orthanc.json("/studies");
    assert_eq!(
        studies.as_array().unwrap().len(),
        2,
        "original and de-identified study"
    );
    for s in studies.as_array().unwrap() {
        let study = orthanc.json(&format!("/studies/{}", s.as_str().unwrap()));
        let series = study["Series"].as_array().unwrap();
        let mut modalities: Vec<String> = series
            .iter()
            .map(|id| orthanc.json(&format!("/series/{}", id.as_str().unwrap()))["MainDicomTags"]["Modality"].as_str().unwrap().to_string())
            .collect();
        modalities.sort();
        assert_eq!(
            modalities,
            ["CT", "KO", "OT", "SEG", "SR"],
            "one study, five series"
        );
    }
    for (file, id) in &ids {
        let tags = orthanc.json(&format!("/instances/{id}/simplified-tags"));
        let o = objs.iter().find(|o| &o.file == file).unwrap();
        assert_eq!(tags["SOPInstanceUID"], o.sop_instance_uid.as_str());
        eprintln!("orthanc: {file} stored as {id} ({})", tags["SOPClassUID"]);
    }
    eprintln!(
        "orthanc: {} instances in {} studies",
        instances.as_array().unwrap().len(),
        studies.as_array().unwrap().len()
    );
}

#[test]
fn objects_are_deterministic_for_a_fixed_content_time() {
    let a = fixture();
    let x = dicom::export(a, &ExportOptions::new().content(when())).unwrap();
    let y = dicom::export(a, &ExportOptions::new().content(when())).unwrap();
    assert_eq!(x, y);
}
