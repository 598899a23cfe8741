//! A `ct-triage serve` child process on loopback, and raw HTTP and DICOM
//! clients to attack it with.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ct_triage_native::dimse;
use dicom_ul::ClientAssociationOptions;
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};

/// The admin token of every test server.
pub const TOKEN: &str = "test-admin-token-0123456789";

/// The token of `reader`, a second caller with the role read-own.
pub const READER: &str = "test-reader-token-0123456789";

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `sample-dicom/lung1`, sorted.
pub fn lung1() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sample-dicom/lung1");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// A running server.
pub struct Server {
    child: Option<Child>,
    /// HTTP port.
    pub http: u16,
    /// DICOM port.
    pub dicom: u16,
    /// Its temporary folder: `data/`, `tokens`, `server.toml`, `server.log`.
    pub dir: tempfile::TempDir,
    config: String,
    /// Start-ups logged so far.
    starts: usize,
}

impl Server {
    /// Start a server; `extra` is appended to its TOML configuration.
    pub fn start(extra: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let (http, dicom) = (free_port(), free_port());
        std::fs::write(
            dir.path().join("tokens"),
            format!("admin:admin:{TOKEN}\nreader:read-own:{READER}\n"),
        )
        .unwrap();
        let mut config = format!(
            "listen = \"127.0.0.1:{http}\"\ntoken_file = \"{}\"\ndata_dir = \"{}\"\n\
             dicom_port = {dicom}\n{extra}\n",
            dir.path().join("tokens").display(),
            dir.path().join("data").display(),
        );
        if !extra.contains("quiet_seconds") {
            config.push_str("quiet_seconds = 3600\n");
        }
        let mut s = Server {
            child: None,
            http,
            dicom,
            dir,
            config,
            starts: 0,
        };
        s.spawn();
        s
    }

    /// Start the process again on the same folder and configuration.
    pub fn spawn(&mut self) {
        let cfg = self.dir.path().join("server.toml");
        std::fs::write(&cfg, &self.config).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ct-triage"))
            .args(["serve", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let before = self.log().matches("ct-triage server ready").count();
        self.starts = before;
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            // The listeners are bound before this line is logged.
            let ready = self.log().matches("ct-triage server ready").count();
            if ready > self.starts {
                self.starts = ready;
                break;
            }
            assert!(Instant::now() < end, "server did not start: {}", self.log());
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("server exited with {st}: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Replace `from` by `to` in the configuration (takes effect at the next [`Server::spawn`]).
    pub fn reconfigure(&mut self, from: &str, to: &str) {
        assert!(
            self.config.contains(from),
            "{from:?} not in the configuration"
        );
        self.config = self.config.replace(from, to);
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The data folder.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Peak resident memory of the process so far (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kb / 1024
    }

    /// `kill -9` the process and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// An HTTP/1.1 request on a fresh connection (`Connection: close`); the
/// status and body.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    read_response(&mut s)
}

/// Read an HTTP response until the peer closes: status and body.
pub fn read_response(s: &mut dyn Read) -> (u16, Vec<u8>) {
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| raw[i + 4..].to_vec())
        .unwrap_or_default();
    (status, body)
}

/// True when `GET /healthz` answers 200.
pub fn healthy(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    read_response(&mut s).0 == 200
}

/// `GET path` without a token.
pub fn get_plain(port: u16, path: &str) -> (u16, Vec<u8>) {
    http(port, "GET", path, &[], b"")
}

/// `GET path` with the admin token.
pub fn get(port: u16, path: &str) -> (u16, Vec<u8>) {
    http(
        port,
        "GET",
        path,
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        b"",
    )
}

/// True once the peer closed `s` (a read returns end of file or a reset)
/// within `limit`; false when it is still open then.
pub fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// An association with the server's SCP proposing CT Image Storage
/// (explicit VR little endian) and Verification. A rejection because the
/// SCP is at its association limit is retried for up to 10 s (a slot is
/// freed a moment after its connection closed).
pub fn associate(port: u16) -> dicom_ul::ClientAssociation<TcpStream> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        match try_associate(port) {
            Ok(a) => return a,
            Err(dicom_ul::association::Error::Rejected { .. }) if Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("association: {e}"),
        }
    }
}

/// One attempt of [`associate`].
pub fn try_associate(
    port: u16,
) -> Result<dicom_ul::ClientAssociation<TcpStream>, dicom_ul::association::Error> {
    ClientAssociationOptions::new()
        .calling_ae_title("ATTACKER")
        .called_ae_title("CTTRIAGE")
        .with_presentation_context("1.2.840.10008.5.1.4.1.1.2", vec!["1.2.840.10008.1.2.1"])
        .with_abstract_syntax(dimse::VERIFICATION)
        .read_timeout(Duration::from_secs(30))
        .establish_with(&format!("CTTRIAGE@127.0.0.1:{port}"))
}

/// The id of the accepted CT presentation context.
pub fn ct_context(a: &dicom_ul::ClientAssociation<TcpStream>) -> u8 {
    a.presentation_contexts()
        .iter()
        .find(|pc| pc.abstract_syntax.trim_end_matches('\0') == "1.2.840.10008.5.1.4.1.1.2")
        .unwrap()
        .id
}

/// Send a C-STORE-RQ and its data set (in PDVs of at most 16 KiB); the
/// response status, or `None` when the association ended instead.
pub fn c_store(
    a: &mut dicom_ul::ClientAssociation<TcpStream>,
    instance: &str,
    dataset: &[u8],
) -> Option<u16> {
    let pc = ct_context(a);
    let cmd = dimse::store_rq(1, "1.2.840.10008.5.1.4.1.1.2", instance).unwrap();
    a.send(&Pdu::PData {
        data: vec![PDataValue {
            presentation_context_id: pc,
            value_type: PDataValueType::Command,
            is_last: true,
            data: cmd,
        }],
    })
    .ok()?;
    let chunks: Vec<&[u8]> = if dataset.is_empty() {
        vec![&[][..]]
    } else {
        dataset.chunks(16 * 1024).collect()
    };
    let n = chunks.len();
    for (i, c) in chunks.into_iter().enumerate() {
        a.send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc,
                value_type: PDataValueType::Data,
                is_last: i + 1 == n,
                data: c.to_vec(),
            }],
        })
        .ok()?;
    }
    match a.receive().ok()? {
        Pdu::PData { data } => dimse::decode(&data[0].data).ok()?.status,
        _ => None,
    }
}

/// One explicit-VR little-endian element.
pub fn element(group: u16, elem: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(group.to_le_bytes());
    out.extend(elem.to_le_bytes());
    out.extend(vr);
    let long = matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT");
    if long {
        out.extend([0, 0]);
        out.extend((value.len() as u32).to_le_bytes());
    } else {
        out.extend((value.len() as u16).to_le_bytes());
    }
    out.extend(value);
    out
}

/// A UID value padded to even length.
pub fn uid(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    if v.len() % 2 == 1 {
        v.push(0);
    }
    v
}

/// A small CT data set (explicit VR LE) of one series.
pub fn tiny_ct(instance: &str, series: &str) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend(element(
        0x0008,
        0x0016,
        b"UI",
        &uid("1.2.840.10008.5.1.4.1.1.2"),
    ));
    d.extend(element(0x0008, 0x0018, b"UI", &uid(instance)));
    d.extend(element(0x0008, 0x0060, b"CS", b"CT"));
    d.extend(element(0x0020, 0x000D, b"UI", &uid("1.2.3.4")));
    d.extend(element(0x0020, 0x000E, b"UI", &uid(series)));
    d
}

/// The 120-byte attack: a data set whose private OB element declares
/// `declared` bytes (dicom-object zero-fills what an element declares).
pub fn length_bomb(instance: &str, declared: u32) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend(element(
        0x0008,
        0x0016,
        b"UI",
        &uid("1.2.840.10008.5.1.4.1.1.2"),
    ));
    d.extend(element(0x0008, 0x0018, b"UI", &uid(instance)));
    d.extend([0x09, 0x00, 0x10, 0x10, b'O', b'B', 0, 0]);
    d.extend(declared.to_le_bytes());
    d.extend([0u8; 16]);
    d
}

/// Every file under `dir` (recursive), relative.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}
