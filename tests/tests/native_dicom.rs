//! DICOM networking of the native server against real peers: dcmtk's
//! `storescu` sends lung1 to our C-STORE SCP; our C-STORE SCU sends to dcmtk's
//! `storescp`; and our SCU and SCP talk to each other. Stored objects are
//! byte-for-byte the data sets that were sent.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ct_triage_core::ingest::{self, IngestOptions};
use ct_triage_core::progress::NoProgress;
use ct_triage_native::dimse::status;
use ct_triage_native::scp::{self, InstanceSink, Peer, Received, ScpOptions};
use ct_triage_native::scu::{self, Destination};
use ct_triage_tests::{inputs, lung1_dir, run_tool};

/// Keeps what the SCP received: (peer AE, SOP instance UID, Part 10 bytes).
#[derive(Default)]
struct Collect(Mutex<Vec<(String, String, Vec<u8>)>>, Mutex<usize>);

impl InstanceSink for Collect {
    fn store(&self, peer: &Peer, i: &Received) -> u16 {
        let bytes = i.to_part10().unwrap();
        self.0
            .lock()
            .unwrap()
            .push((peer.ae_title.clone(), i.sop_instance.to_string(), bytes));
        status::SUCCESS
    }
    fn association_closed(&self, _peer: &Peer, stored: usize) {
        *self.1.lock().unwrap() += stored;
    }
}

fn start_scp() -> (u16, Arc<Collect>, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink = Arc::new(Collect::default());
    let stop = Arc::new(AtomicBool::new(false));
    let opts = ScpOptions {
        ae_title: "CTTRIAGE".into(),
        ..ScpOptions::default()
    };
    let (s, st) = (sink.clone() as Arc<dyn InstanceSink>, stop.clone());
    std::thread::spawn(move || scp::serve(listener, opts, s, st).unwrap());
    (port, sink, stop)
}

fn lung1_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(lung1_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

#[test]
fn storescu_sends_lung1_to_our_scp() {
    let (port, sink, _stop) = start_scp();
    let files = lung1_files();
    let mut args: Vec<String> = vec![
        "-aet".into(),
        "STORESCU".into(),
        "-aec".into(),
        "CTTRIAGE".into(),
        "127.0.0.1".into(),
        port.to_string(),
    ];
    args.extend(files.iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_tool("storescu", &args);
    assert!(wait_until(Duration::from_secs(10), || *sink
        .1
        .lock()
        .unwrap()
        == 48));
    let got = sink.0.lock().unwrap();
    assert_eq!(got.len(), 48);
    for (ae, uid, bytes) in got.iter() {
        assert_eq!(ae, "STORESCU");
        // The sample files are named by SOP Instance UID; the data set bytes
        // after the file meta group arrive unchanged.
        let original = std::fs::read(lung1_dir().join(format!("{uid}.dcm"))).unwrap();
        let tail = 4096.min(original.len());
        assert_eq!(
            &bytes[bytes.len() - tail..],
            &original[original.len() - tail..]
        );
    }
    // What we stored loads in the core as the same 48-slice volume.
    let named: Vec<(String, Vec<u8>)> = got
        .iter()
        .map(|(_, uid, b)| (uid.clone(), b.clone()))
        .collect();
    let (_, series) =
        ingest::load(&inputs(&named), &IngestOptions::default(), &NoProgress).unwrap();
    assert_eq!(series.slices.len(), 48);
}

#[test]
fn scp_refuses_a_wrong_called_ae_title() {
    let (port, sink, _stop) = start_scp();
    let f = lung1_files()[0].display().to_string();
    let out = Command::new("storescu")
        .args(["-aec", "SOMEONE", "127.0.0.1", &port.to_string(), &f])
        .output()
        .expect("storescu is installed");
    assert!(!out.status.success());
    assert!(sink.0.lock().unwrap().is_empty());
}

struct Storescp(Child);

impl Drop for Storescp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|r| r.count()).unwrap_or(0)
}

#[test]
fn our_scu_sends_to_dcmtk_storescp() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new("storescp")
        .args([
            "-aet",
            "PACS",
            "-od",
            &dir.path().display().to_string(),
            &port.to_string(),
        ])
        .spawn()
        .expect("storescp (dcmtk) is installed");
    let _guard = Storescp(child);
    let dest = Destination {
        host: "127.0.0.1".into(),
        port,
        ae_title: "PACS".into(),
    };
    let files = lung1_files();
    let mut sent = None;
    assert!(wait_until(Duration::from_secs(10), || {
        sent = scu::send(&files, &dest, "CTTRIAGE").ok();
        sent.is_some()
    }));
    let sent = sent.unwrap();
    assert_eq!(sent.stored, 48, "failed: {:?}", sent.failed);
    assert!(wait_until(Duration::from_secs(10), || count_files(
        dir.path()
    ) == 48));
}

#[test]
fn our_scu_to_our_scp_and_bad_files_are_reported() {
    let (port, sink, _stop) = start_scp();
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.dcm");
    std::fs::write(&junk, b"not dicom").unwrap();
    let mut files = lung1_files()[..5].to_vec();
    files.push(junk.clone());
    let dest: Destination = format!("127.0.0.1:{port}:CTTRIAGE").parse().unwrap();
    let sent = scu::send(&files, &dest, "FORWARDER").unwrap();
    assert_eq!(sent.stored, 5);
    assert_eq!(sent.failed.len(), 1);
    assert_eq!(sent.failed[0].0, junk.display().to_string());
    assert!(wait_until(Duration::from_secs(5), || *sink
        .1
        .lock()
        .unwrap()
        == 5));
    assert!(
        sink.0
            .lock()
            .unwrap()
            .iter()
            .all(|(ae, _, _)| ae == "FORWARDER")
    );
    // Nobody listening: an error, not a panic.
    let nobody: Destination = format!("127.0.0.1:{}:X", free_port()).parse().unwrap();
    assert!(scu::send(&files[..1], &nobody, "FORWARDER").is_err());
    assert!("no-port:AE".parse::<Destination>().is_err());
}
