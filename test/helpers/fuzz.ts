/**
 * fast-check settings shared by the property tests: one seed per run (random,
 * or FC_SEED to replay), FC_RUNS runs per property (default 4,000).
 */
import type { ExecutionContext } from 'ava';
import fc from 'fast-check';

export const SEED = process.env.FC_SEED ? Number(process.env.FC_SEED) : Date.now() ^ (Math.random() * 0x7fffffff);
export const RUNS = Number(process.env.FC_RUNS ?? 4000);
const params = { seed: SEED, numRuns: RUNS, includeErrorInReport: true };

/** fc.assert with the run's seed; the seed is logged, and fast-check reports it with the counterexample on failure. */
export function check<Ts extends [unknown, ...unknown[]]>(t: ExecutionContext, property: fc.IRawProperty<Ts>, extra: Partial<fc.Parameters<Ts>> = {}): void {
  t.log(`FC_SEED=${SEED}`);
  fc.assert(property, { ...params, ...extra } as fc.Parameters<Ts>);
  t.pass();
}
