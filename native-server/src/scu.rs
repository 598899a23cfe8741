//! DICOM C-STORE SCU (dicom-ul): sends result objects (and optionally the
//! received instances) to a PACS, one association per batch of files.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dicom_dictionary_std::uids;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::OpenFileOptions;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_ul::ClientAssociationOptions;
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};

use crate::dimse::{self, status, trim_uid};
use crate::error::{NativeError, Result};

/// A DICOM destination `HOST:PORT:AET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Called AE title.
    pub ae_title: String,
}

impl std::str::FromStr for Destination {
    type Err = NativeError;

    /// Parse `HOST:PORT:AET`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || NativeError::Config(format!("destination {s:?} is not HOST:PORT:AET"));
        let (rest, ae) = s.rsplit_once(':').ok_or_else(bad)?;
        let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() || ae.is_empty() || ae.len() > 16 {
            return Err(bad());
        }
        Ok(Destination {
            host: host.to_string(),
            port,
            ae_title: ae.to_string(),
        })
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.host, self.port, self.ae_title)
    }
}

/// One file ready to send.
struct Outgoing {
    path: PathBuf,
    sop_class: String,
    sop_instance: String,
    transfer_syntax: String,
}

fn inspect(path: &Path) -> Result<Outgoing> {
    let obj = OpenFileOptions::new()
        .read_until(dicom_dictionary_std::tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| NativeError::Input(format!("{}: {e}", path.display())))?;
    let meta = obj.meta();
    Ok(Outgoing {
        path: path.to_path_buf(),
        sop_class: trim_uid(meta.media_storage_sop_class_uid()).to_string(),
        sop_instance: trim_uid(meta.media_storage_sop_instance_uid()).to_string(),
        transfer_syntax: trim_uid(meta.transfer_syntax()).to_string(),
    })
}

/// The data set of a file in transfer syntax `ts`: the bytes after the file
/// meta group when `ts` is the file's own, otherwise re-encoded (native
/// syntaxes only).
fn dataset_bytes(o: &Outgoing, ts: &str) -> Result<Vec<u8>> {
    let err = |e: String| NativeError::Input(format!("{}: {e}", o.path.display()));
    let obj = dicom_object::open_file(&o.path).map_err(|e| err(e.to_string()))?;
    let target = TransferSyntaxRegistry
        .get(ts)
        .ok_or_else(|| err(format!("unknown transfer syntax {ts}")))?;
    if ts != o.transfer_syntax {
        let source_native = TransferSyntaxRegistry
            .get(&o.transfer_syntax)
            .is_some_and(|s| !s.is_encapsulated_pixel_data());
        if !source_native || target.is_encapsulated_pixel_data() {
            return Err(err(format!(
                "cannot transcode {} to {ts}",
                o.transfer_syntax
            )));
        }
    }
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, target)
        .map_err(|e| err(e.to_string()))?;
    Ok(out)
}

/// What a forward did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    /// Instances stored by the peer.
    pub stored: usize,
    /// Instances refused or not sendable: (file, reason).
    pub failed: Vec<(String, String)>,
}

/// Send `files` (DICOM Part 10) to `dest` with C-STORE, calling as `calling_ae`.
/// Files that cannot be sent are reported in [`Sent::failed`]; a failure to
/// associate at all is an error.
pub fn send(files: &[PathBuf], dest: &Destination, calling_ae: &str) -> Result<Sent> {
    let mut sent = Sent::default();
    let mut outgoing = Vec::new();
    for f in files {
        match inspect(f) {
            Ok(o) => outgoing.push(o),
            Err(e) => sent.failed.push((f.display().to_string(), e.to_string())),
        }
    }
    if outgoing.is_empty() {
        return Ok(sent);
    }
    // One presentation context per SOP class: the files' own syntaxes, then
    // explicit and implicit little endian.
    let mut by_class: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for o in &outgoing {
        let list = by_class.entry(&o.sop_class).or_default();
        for ts in [
            o.transfer_syntax.as_str(),
            uids::EXPLICIT_VR_LITTLE_ENDIAN,
            uids::IMPLICIT_VR_LITTLE_ENDIAN,
        ] {
            if !list.iter().any(|t| t == ts) {
                list.push(ts.to_string());
            }
        }
    }
    let mut options = ClientAssociationOptions::new()
        .calling_ae_title(calling_ae)
        .called_ae_title(dest.ae_title.as_str())
        .max_pdu_length(65_536)
        .connection_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .write_timeout(Duration::from_secs(60));
    for (class, tss) in &by_class {
        options =
            options.with_presentation_context(*class, tss.iter().map(String::as_str).collect());
    }
    let addr = format!("{}:{}", dest.host, dest.port);
    let mut assoc = options
        .establish_with(&format!("{}@{addr}", dest.ae_title))
        .map_err(|e| NativeError::Network(format!("association with {dest}: {e}")))?;
    let pcs = assoc.presentation_contexts().to_vec();
    for (i, o) in outgoing.iter().enumerate() {
        let name = o.path.display().to_string();
        let accepted: Vec<_> = pcs
            .iter()
            .filter(|pc| trim_uid(&pc.abstract_syntax) == o.sop_class)
            .collect();
        let Some(pc) = accepted
            .iter()
            .find(|pc| trim_uid(&pc.transfer_syntax) == o.transfer_syntax)
            .or_else(|| accepted.first())
        else {
            sent.failed.push((
                name,
                format!("{dest} accepts no context for {}", o.sop_class),
            ));
            continue;
        };
        let data = match dataset_bytes(o, trim_uid(&pc.transfer_syntax)) {
            Ok(d) => d,
            Err(e) => {
                sent.failed.push((name, e.to_string()));
                continue;
            }
        };
        let message_id = (i % 65_535) as u16 + 1;
        let cmd = dimse::store_rq(message_id, &o.sop_class, &o.sop_instance)?;
        assoc
            .send(&Pdu::PData {
                data: vec![PDataValue {
                    presentation_context_id: pc.id,
                    value_type: PDataValueType::Command,
                    is_last: true,
                    data: cmd,
                }],
            })
            .map_err(|e| NativeError::Network(format!("{dest}: {e}")))?;
        {
            let mut w = assoc.send_pdata(pc.id);
            w.write_all(&data)
                .map_err(|e| NativeError::Network(format!("{dest}: {e}")))?;
        }
        let rsp = assoc
            .receive()
            .map_err(|e| NativeError::Network(format!("{dest}: {e}")))?;
        let st = match rsp {
            Pdu::PData { data } => data
                .first()
                .map(|pv| dimse::decode(&pv.data))
                .transpose()?
                .and_then(|c| c.status),
            other => {
                return Err(NativeError::Network(format!(
                    "{dest}: unexpected {}",
                    other.short_description()
                )));
            }
        };
        match st {
            Some(status::SUCCESS) | Some(0x0001) | Some(0x0107) | Some(0x0116) => sent.stored += 1,
            Some(s) if (0xB000..=0xBFFF).contains(&s) => sent.stored += 1,
            other => sent
                .failed
                .push((name, format!("{dest} answered status {other:04X?}"))),
        }
    }
    let _ = assoc.release();
    Ok(sent)
}
