// UDP probes between namespaces, for recovery-time measurements.
//   node udp-probe.mjs server PORT
//       echoes every datagram back; prints "listening" once bound.
//   node udp-probe.mjs client IP PORT INTERVAL_MS DURATION_MS
//       sends a numbered datagram every INTERVAL_MS for at most DURATION_MS
//       (stopping 1 s after the first reply), then prints one JSON line:
//       { sent, received, firstReplyMs } (firstReplyMs: null if none came back).
import dgram from 'node:dgram';

const [mode, ...args] = process.argv.slice(2);

if (mode === 'server') {
  const sock = dgram.createSocket('udp4');
  sock.on('message', (msg, rinfo) => sock.send(msg, rinfo.port, rinfo.address));
  sock.bind(Number(args[0]), () => process.stdout.write('listening\n'));
} else if (mode === 'client') {
  const [ip, port, intervalMs, durationMs] = [args[0], Number(args[1]), Number(args[2]), Number(args[3])];
  const sock = dgram.createSocket('udp4');
  const t0 = Date.now();
  let sent = 0;
  let received = 0;
  let firstReplyMs = null;
  const finish = () => {
    clearInterval(timer);
    sock.close();
    process.stdout.write(`${JSON.stringify({ sent, received, firstReplyMs })}\n`);
  };
  sock.on('message', () => {
    received++;
    if (firstReplyMs === null) {
      firstReplyMs = Date.now() - t0;
      setTimeout(finish, 1000);
    }
  });
  const timer = setInterval(() => {
    if (Date.now() - t0 > durationMs) { if (firstReplyMs === null) finish(); return; }
    sock.send(Buffer.from(String(sent++)), port, ip);
  }, intervalMs);
} else {
  process.stderr.write('usage: udp-probe.mjs server PORT | client IP PORT INTERVAL_MS DURATION_MS\n');
  process.exit(2);
}
