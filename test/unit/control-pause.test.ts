/** The agent's periodic pause: resolves on time or on abort, and leaves no listener behind on the long-lived signal. */
import test from 'ava';
import { getEventListeners } from 'node:events';
import { pause, sleep, AbortedError } from '../../src/control/subnet/util.js';

test('a pause that runs out removes its abort listener (one pause a second for days must not pile them up)', async (t) => {
  const ac = new AbortController();
  for (let i = 0; i < 25; i++) await pause(1, ac.signal);
  t.is(getEventListeners(ac.signal, 'abort').length, 0);
});

test('a pause ends early, without an error, when the signal aborts', async (t) => {
  const ac = new AbortController();
  const t0 = performance.now();
  setTimeout(() => ac.abort(), 20);
  await pause(10_000, ac.signal);
  t.true(performance.now() - t0 < 5_000);
  await pause(10_000, ac.signal); /* already aborted: returns at once */
  t.true(performance.now() - t0 < 5_000);
});

test('sleep still rejects on abort (the lease loops rely on it)', async (t) => {
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 10);
  await t.throwsAsync(sleep(10_000, ac.signal), { instanceOf: AbortedError });
});
