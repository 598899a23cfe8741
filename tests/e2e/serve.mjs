// A tiny static file server for the browser tests: serves a folder on
// 127.0.0.1 and logs every request. `node serve.mjs <dir> [port]` to run it
// by hand; import { serve } from the tests.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ts': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.safetensors': 'application/octet-stream',
};

/**
 * Serve `root` on 127.0.0.1:`port` (0 = any free port). With `isolate`, send
 * COOP/COEP so the page is cross-origin isolated (SharedArrayBuffer → cancellation
 * without restarting the worker). Resolves to {url, log, close}.
 */
export function serve(root, { port = 0, isolate = false } = {}) {
  const log = [];
  const base = path.resolve(root);
  const server = http.createServer((req, res) => {
    log.push({ method: req.method, url: req.url });
    const u = new URL(req.url, 'http://127.0.0.1');
    let p = path.normalize(path.join(base, decodeURIComponent(u.pathname)));
    if (!p.startsWith(base)) { res.writeHead(403).end(); return; }
    if (fs.existsSync(p) && fs.statSync(p).isDirectory()) p = path.join(p, 'index.html');
    fs.readFile(p, (err, data) => {
      if (err) { res.writeHead(404, { 'content-type': 'text/plain' }).end('not found'); return; }
      const headers = {
        'content-type': TYPES[path.extname(p)] || 'application/octet-stream',
        'cache-control': 'no-cache',
        'x-content-type-options': 'nosniff',
      };
      if (isolate) {
        headers['cross-origin-opener-policy'] = 'same-origin';
        headers['cross-origin-embedder-policy'] = 'require-corp';
      }
      res.writeHead(200, headers).end(data);
    });
  });
  return new Promise((resolve) => {
    server.listen(port, '127.0.0.1', () => {
      const { port: p } = server.address();
      resolve({ url: `http://127.0.0.1:${p}/`, log, close: () => new Promise((r) => server.close(r)) });
    });
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [root = '.', port = '8080'] = process.argv.slice(2);
  const s = await serve(root, { port: Number(port), isolate: process.env.ISOLATE === '1' });
  console.log(`serving ${path.resolve(root)} on ${s.url}`);
}
