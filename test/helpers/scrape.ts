/**
 * HTTP from inside a lab node's namespace (a node process there, no curl
 * needed): /metrics scrapes parsed into samples, /readyz.
 */
import { execFileSync } from 'node:child_process';
import type { LabNode } from '../../src/cli/lab/lab.js';

/** GET a URL from inside a namespace; status 0 with the error code when it could not connect. */
export function nsFetch(ns: string, url: string): { status: number; body: string } {
  const script = 'fetch(process.argv[1], { signal: AbortSignal.timeout(5000) }).then(async (r) => process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() })), (e) => process.stdout.write(JSON.stringify({ status: 0, body: String(e.cause?.code ?? e) })))';
  return JSON.parse(execFileSync('nsenter', [`--net=/run/netns/${ns}`, '--', process.execPath, '-e', script, url], { encoding: 'utf8', timeout: 15_000, maxBuffer: 64 << 20 })) as { status: number; body: string };
}

export type Labels = Record<string, string>;
export type Sample = { name: string; labels: Labels; value: number };

export function parseScrape(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || line.startsWith('#')) continue;
    const labels: Labels = {};
    for (const lm of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]!] = lm[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** Scrape a lab node's agent. */
export function scrape(n: Pick<LabNode, 'ns' | 'ip' | 'metricsPort' | 'name'>): Sample[] {
  const r = nsFetch(n.ns, `http://${n.ip}:${n.metricsPort}/metrics`);
  if (r.status !== 200) throw new Error(`scrape of ${n.name}: HTTP ${r.status} ${r.body}`);
  return parseScrape(r.body);
}

/** The value of one sample (labels matched as a subset), undefined when absent. */
export function metric(samples: readonly Sample[], name: string, labels: Labels = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

/** GET /readyz on a lab node's metrics address. */
export function readyz(n: Pick<LabNode, 'ns' | 'ip' | 'metricsPort'>): { status: number; body: string } {
  return nsFetch(n.ns, `http://${n.ip}:${n.metricsPort}/readyz`);
}
