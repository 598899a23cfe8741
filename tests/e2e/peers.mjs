// Real DICOMweb peers for the e2e tests (dicomweb.mjs, ohif.mjs): Orthanc with
// its DICOMweb plugin and nginx in front, each on a free 127.0.0.1 port, in a
// work folder of the test, started and stopped by the test itself. One place
// for how they are configured, started, waited for and stopped.
//
//   const peers = new Peers('ctt-x-');
//   const oh = await peers.orthanc('ctt-x-test');     // http://127.0.0.1:<port>
//   await peers.post(oh, 'slice.dcm');
//   const { origin, child } = await peers.nginx(`server { listen 127.0.0.1:${port}; … }`);
//   await peers.waitUp(`${origin}/`, child, 'nginx');
//   …
//   await peers.stop();                                // children stopped, folder removed
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import net from 'node:net';
import { spawn } from 'node:child_process';

/** Debian's orthanc, orthanc-dicomweb and nginx-light. */
export const ORTHANC = '/usr/sbin/Orthanc';
export const PLUGIN = '/usr/share/orthanc/plugins/libOrthancDicomWeb.so';
export const NGINX = '/usr/sbin/nginx';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A TCP port free on 127.0.0.1 right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

/** The peer programs a test needs, or exits 1 naming the missing ones. */
export function requireFiles(files, hint) {
  const missing = files.filter((f) => !fs.existsSync(f));
  if (missing.length) {
    console.log(`FAIL ${missing.join(', ')} missing (${hint})`);
    process.exit(1);
  }
}

/** The children of one test and their work folder. */
export class Peers {
  constructor(prefix) {
    this.work = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    this.children = [];
  }

  /** Start a child whose stderr goes to `log` in the work folder; stopped by stop(). */
  start(cmd, argv, log) {
    const c = spawn(cmd, argv, { stdio: ['ignore', 'ignore', fs.openSync(path.join(this.work, log), 'w')] });
    this.children.push(c);
    return c;
  }

  /** Wait until `url` answers 2xx; fails when the child exits or after 60 s. */
  async waitUp(url, child, what) {
    for (let i = 0; ; i++) {
      if (await fetch(url).then((r) => r.ok, () => false)) return;
      if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}: ${this.log(child.log)}`);
      if (i > 600) throw new Error(`${what} did not start (${url}: ${await fetch(url).then((r) => r.status, (e) => e.message)})`);
      await sleep(100);
    }
  }

  /** What a child wrote to its log so far ('' when none). */
  log(name) {
    try { return fs.readFileSync(path.join(this.work, name), 'utf8'); } catch { return ''; }
  }

  /** Orthanc with DICOMweb at /dicom-web/, storage in the work folder; its URL once it answers. */
  async orthanc(name) {
    const [httpPort, dicomPort] = [await freePort(), await freePort()];
    const config = path.join(this.work, 'orthanc.json');
    fs.writeFileSync(config, JSON.stringify({
      Name: name,
      StorageDirectory: path.join(this.work, 'db'),
      IndexDirectory: path.join(this.work, 'db'),
      HttpPort: httpPort,
      DicomPort: dicomPort,
      RemoteAccessAllowed: false,
      AuthenticationEnabled: false,
      Plugins: [PLUGIN],
      DicomWeb: { Enable: true, Root: '/dicom-web/' },
    }));
    const url = `http://127.0.0.1:${httpPort}`;
    const child = this.start(ORTHANC, [config], 'orthanc.log');
    child.log = 'orthanc.log';
    await this.waitUp(`${url}/system`, child, 'Orthanc');
    return url;
  }

  /** Store one DICOM file in Orthanc over its REST API. */
  async post(orthancUrl, file) {
    const r = await fetch(`${orthancUrl}/instances`, { method: 'POST', body: fs.readFileSync(file) });
    if (!r.ok) throw new Error(`storing ${file} in Orthanc: HTTP ${r.status} ${await r.text()}`);
  }

  /**
   * nginx (not daemonised, one worker, every path in the work folder) serving
   * `site` (one or more server blocks, included from nginx/site.conf) inside
   * its http block, with `http` (more http-block lines) before it. Returns the
   * child; wait for it with waitUp().
   */
  nginx(site, { http = '', workerConnections = 256 } = {}) {
    const dir = path.join(this.work, 'nginx');
    fs.mkdirSync(dir, { recursive: true });
    fs.chmodSync(this.work, 0o755); // nginx's workers (nobody) read files from here
    fs.writeFileSync(path.join(dir, 'site.conf'), site, { mode: 0o644 });
    const temps = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `${t}_temp_path ${dir}/${t};`).join('\n  ');
    fs.writeFileSync(path.join(dir, 'nginx.conf'), `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections ${workerConnections}; }
http {
  include /etc/nginx/mime.types;
  ${http}
  access_log ${dir}/access.log;
  ${temps}
  include ${dir}/site.conf;
}
`);
    const child = this.start(NGINX, ['-c', path.join(dir, 'nginx.conf'), '-p', dir], 'nginx.stderr');
    child.log = 'nginx.stderr';
    return child;
  }

  /** Stop every child (last started first), wait for each, remove the work folder. */
  async stop() {
    for (const c of this.children.reverse()) {
      if (c.exitCode === null && c.signalCode === null) {
        c.kill();
        await new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', r)));
      }
    }
    this.children = [];
    fs.rmSync(this.work, { recursive: true, force: true });
  }
}
