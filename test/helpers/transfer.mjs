#!/usr/bin/env node
// TCP transfer with end-to-end integrity: the client sends N random bytes and
// prints their sha256, the server prints the sha256 of what it received.
//   node transfer.mjs server <port>                 → prints "listening", then {"bytes","sha256","ms"}
//   node transfer.mjs client <host> <port> <bytes> [bytes/s]  → prints {"bytes","sha256","ms"}
// With a rate the client paces itself (a long-running stream that spans an event under test).
import net from 'node:net';
import crypto from 'node:crypto';

const [mode, a, b, c] = process.argv.slice(2);

if (mode === 'server') {
  const srv = net.createServer((sock) => {
    const h = crypto.createHash('sha256');
    let bytes = 0;
    const t0 = process.hrtime.bigint();
    sock.on('data', (d) => { h.update(d); bytes += d.length; });
    sock.on('end', () => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      process.stdout.write(`${JSON.stringify({ bytes, sha256: h.digest('hex'), ms })}\n`);
      sock.end();
      srv.close();
    });
    sock.on('error', (e) => { process.stderr.write(`server: ${e.message}\n`); process.exit(1); });
  });
  srv.listen(Number(a), '0.0.0.0', () => process.stdout.write('listening\n'));
} else if (mode === 'client') {
  const total = Number(c);
  const rate = Number(process.argv[6] ?? 0);
  const h = crypto.createHash('sha256');
  const chunk = 256 * 1024;
  let sent = 0;
  const t0 = process.hrtime.bigint();
  const sock = net.connect(Number(b), a, () => {
    const pump = () => {
      while (sent < total) {
        if (rate > 0 && sent > rate * (Number(process.hrtime.bigint() - t0) / 1e9)) { setTimeout(pump, 5); return; }
        const n = Math.min(chunk, total - sent, rate > 0 ? Math.max(1024, Math.floor(rate / 100)) : chunk);
        const buf = crypto.randomBytes(n);
        h.update(buf);
        sent += n;
        if (!sock.write(buf)) { sock.once('drain', pump); return; }
      }
      sock.end();
    };
    pump();
  });
  sock.on('close', () => {
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    process.stdout.write(`${JSON.stringify({ bytes: sent, sha256: h.digest('hex'), ms })}\n`);
  });
  sock.setTimeout(60_000, () => { process.stderr.write('client: timeout\n'); process.exit(1); });
  sock.on('error', (e) => { process.stderr.write(`client: ${e.message}\n`); process.exit(1); });
} else {
  process.stderr.write('usage: transfer.mjs server <port> | client <host> <port> <bytes> [bytes/s]\n');
  process.exit(2);
}
