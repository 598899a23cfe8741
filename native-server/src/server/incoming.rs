//! DICOM instances received by the SCP: filed by series under `incoming/`,
//! turned into a job once the series is quiet, picked up again after a
//! restart.
//!
//! The life of a received series, and what a restart finds at each step:
//!
//! 1. An instance is checked (UIDs per PS3.5 §9.1, CT storage class, core's
//!    length guard before dicom-object reads its header), written to
//!    `incoming/.tmp/<uuid>` and synced, renamed to
//!    `incoming/<series>/<sop instance>.dcm` and the folder synced; only then
//!    is it acknowledged with Success. The first instance of a series also
//!    writes `incoming/<series>/.series.json` (series UID, sending peer).
//!    *Restart*: the folder is a pending series again, with its peer.
//! 2. Once quiet, the folder is renamed to `inputs/<uuid>` (synced) and a job
//!    is queued for it. *Restart between the two*: the `inputs/` folder that
//!    no job names but that holds `.series.json` is queued then (see
//!    [`Server::recover_inputs`](super::Server)).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ct_triage_core::ingest::{self, Limits};
use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Server;
use crate::dimse::{is_valid_uid, status, trim_uid};
use crate::error::{NativeError, Result};
use crate::private_fs;
use crate::scp::{ACCEPTED_SOP_CLASSES, InstanceSink, Peer, Received};

/// Deflated Explicit VR Little Endian.
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";

/// Name of the marker file of a received series (hidden: never read as input).
pub(super) const SERIES_MARKER: &str = ".series.json";

/// What [`SERIES_MARKER`] holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct SeriesMarker {
    /// Series Instance UID.
    pub series: String,
    /// The peer that sent the first instance (`ae:<AET>@<ip>`).
    pub peer: String,
}

impl SeriesMarker {
    /// Read the marker of a series folder.
    pub(super) fn read(dir: &Path) -> Option<SeriesMarker> {
        let text = std::fs::read_to_string(dir.join(SERIES_MARKER)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// A DICOM series being received.
#[derive(Debug)]
pub(super) struct Pending {
    last: Instant,
    count: usize,
    peer: String,
}

/// Instances (`*.dcm`) in a series folder.
pub(super) fn count_instances(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .filter(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    !n.starts_with('.') && n.ends_with(".dcm")
                })
                .count()
        })
        .unwrap_or(0)
}

impl Server {
    /// Register series folders left in `incoming/` by a previous run.
    pub(super) fn resume_incoming(&self) -> Result<()> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let rd = std::fs::read_dir(&self.dirs.incoming)
            .map_err(|e| NativeError::io(&self.dirs.incoming, e))?;
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !(entry.path().is_dir() && is_valid_uid(&name)) {
                continue;
            }
            let peer = SeriesMarker::read(&entry.path())
                .map_or_else(|| "ae:(unknown)".to_string(), |m| m.peer);
            pending.insert(
                name,
                Pending {
                    last: Instant::now(),
                    count: count_instances(&entry.path()),
                    peer,
                },
            );
        }
        let _ = std::fs::remove_dir_all(self.dirs.incoming.join(".tmp"));
        Ok(())
    }

    /// Turn every series that has been quiet long enough into a job.
    pub fn flush_quiet_series(&self, force: bool) {
        let quiet = Duration::from_secs_f64(self.cfg.quiet_seconds);
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let ready: Vec<String> = pending
            .iter()
            .filter(|(_, p)| force || p.last.elapsed() >= quiet)
            .map(|(k, _)| k.clone())
            .collect();
        for series in ready {
            let Some(p) = pending.remove(&series) else {
                continue;
            };
            let src = self.dirs.incoming.join(&series);
            let input = self.dirs.inputs.join(uuid::Uuid::new_v4().to_string());
            let moved = std::fs::rename(&src, &input)
                .map_err(|e| NativeError::io(&src, e))
                .and_then(|_| private_fs::sync_dir(&self.dirs.inputs))
                .and_then(|_| private_fs::sync_dir(&self.dirs.incoming));
            let submitted = moved.and_then(|_| {
                self.submit(
                    &input,
                    "dicom",
                    &p.peer,
                    Some(series.clone()),
                    json!({"series": series, "instances": p.count}),
                )
            });
            if let Err(e) = submitted {
                tracing::warn!(%series, "series not queued yet: {e}");
                if input.exists() {
                    let _ = std::fs::rename(&input, &src);
                }
                pending.insert(
                    series,
                    Pending {
                        last: Instant::now(),
                        ..p
                    },
                );
            }
        }
    }

    /// Check, store durably and register one received instance; the DIMSE
    /// status to answer with.
    fn store_instance(&self, peer: &Peer, inst: &Received) -> Result<u16> {
        let actor = format!("ae:{}@{}", peer.ae_title, peer.addr.ip());
        if !is_valid_uid(inst.sop_instance) {
            tracing::warn!(%actor, "instance refused: SOP Instance UID {:?} is not a valid UID", inst.sop_instance);
            return Ok(status::CANNOT_UNDERSTAND);
        }
        if !ACCEPTED_SOP_CLASSES.contains(&inst.sop_class) {
            tracing::warn!(%actor, "instance refused: SOP class {:?} is not CT", inst.sop_class);
            return Ok(status::SOP_CLASS_NOT_SUPPORTED);
        }
        // Core's length guard first: dicom-object zero-fills declared lengths.
        let limits = Limits::default().max_file_bytes(self.cfg.max_instance_bytes() as u64);
        let _inflating = (trim_uid(inst.transfer_syntax) == DEFLATED)
            .then(|| self.deflate_gate.lock().unwrap_or_else(|p| p.into_inner()));
        if let Err(e) = ingest::check_dataset(
            inst.sop_instance,
            inst.dataset,
            inst.transfer_syntax,
            &limits,
        ) {
            tracing::warn!(%actor, "instance refused: {e}");
            return Ok(status::CANNOT_UNDERSTAND);
        }
        let tmp_dir = self.dirs.incoming.join(".tmp");
        private_fs::create_dir(&tmp_dir)?;
        let tmp = tmp_dir.join(uuid::Uuid::new_v4().to_string());
        let discard = |st: u16| {
            let _ = std::fs::remove_file(&tmp);
            Ok(st)
        };
        {
            let mut f = private_fs::create_file(&tmp)?;
            inst.write_part10(&mut f)?;
            f.sync_all().map_err(|e| NativeError::io(&tmp, e))?;
        }
        let header = OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .open_file(&tmp);
        let obj = match header {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(%actor, "instance refused: unreadable data set: {e}");
                return discard(status::CANNOT_UNDERSTAND);
            }
        };
        let uid = |tag| {
            obj.element(tag)
                .ok()
                .and_then(|e| e.to_str().ok())
                .map(|s| trim_uid(&s).to_string())
                .unwrap_or_default()
        };
        let series = uid(tags::SERIES_INSTANCE_UID);
        let in_dataset = uid(tags::SOP_INSTANCE_UID);
        if !is_valid_uid(&series) {
            tracing::warn!(%actor, "instance refused: Series Instance UID {series:?} is not a valid UID");
            return discard(status::CANNOT_UNDERSTAND);
        }
        if in_dataset != inst.sop_instance {
            tracing::warn!(%actor, "instance refused: the data set's SOP Instance UID {in_dataset:?} is not the command's");
            return discard(status::DATA_SET_DOES_NOT_MATCH);
        }
        drop(obj);
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let dir = self.dirs.incoming.join(&series);
        let dest = dir.join(format!("{}.dcm", inst.sop_instance));
        let known = pending.contains_key(&series);
        let count = pending.get(&series).map_or(0, |p| p.count);
        let duplicate = known && dest.exists();
        if !duplicate && count >= self.cfg.max_instances {
            return discard(status::OUT_OF_RESOURCES);
        }
        if !dir.exists() {
            private_fs::create_dir(&dir)?;
            let marker = SeriesMarker {
                series: series.clone(),
                peer: actor.clone(),
            };
            let text =
                serde_json::to_vec(&marker).map_err(|e| NativeError::Output(e.to_string()))?;
            private_fs::write_synced(&dir.join(SERIES_MARKER), &text)?;
            private_fs::sync_dir(&self.dirs.incoming)?;
        }
        std::fs::rename(&tmp, &dest).map_err(|e| NativeError::io(&dest, e))?;
        private_fs::sync_dir(&dir)?;
        let entry = pending.entry(series).or_insert_with(|| Pending {
            last: Instant::now(),
            count: 0,
            peer: actor,
        });
        if !duplicate {
            entry.count += 1;
        }
        entry.last = Instant::now();
        self.metrics.instances_received.inc();
        Ok(status::SUCCESS)
    }
}

/// The SCP's sink: files instances by series under `incoming/`.
pub(super) struct Sink(pub(super) Arc<Server>);

impl InstanceSink for Sink {
    fn store(&self, peer: &Peer, instance: &Received) -> u16 {
        match self.0.store_instance(peer, instance) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(peer = %peer.ae_title, "instance not stored: {e}");
                status::OUT_OF_RESOURCES
            }
        }
    }

    fn association_closed(&self, peer: &Peer, stored: usize) {
        self.0.audit.log(
            &format!("ae:{}@{}", peer.ae_title, peer.addr.ip()),
            "dicom_store",
            None,
            "ok",
            json!({"instances": stored}),
        );
    }
}
