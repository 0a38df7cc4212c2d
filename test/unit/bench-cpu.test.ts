/** The benchmark's machine CPU figure: busy = CPUs × wall − exact idle (pure arithmetic and the /proc/stat reader). */
import test from 'ava';
import { machineCpuSample, machineBusyPct } from '../../bench/lib/proc.js';

test('busy share is one minus idle CPU-seconds over CPUs × wall seconds', (t) => {
  const a = { idleSec: 100, wallSec: 1000 };
  t.is(machineBusyPct(a, { idleSec: 101, wallSec: 1001 }, 2), 50);
  t.is(machineBusyPct(a, { idleSec: 102, wallSec: 1001 }, 2), 0);
  t.is(machineBusyPct(a, { idleSec: 100, wallSec: 1002 }, 2), 100);
  t.is(machineBusyPct(a, { idleSec: 101.5, wallSec: 1001 }, 4), 62.5);
});

test('idle that outruns the wall clock (sampling jitter) is clamped, an empty window is NaN', (t) => {
  const a = { idleSec: 100, wallSec: 1000 };
  t.is(machineBusyPct(a, { idleSec: 103, wallSec: 1001 }, 2), 0);
  t.true(Number.isNaN(machineBusyPct(a, a, 2)));
});

test('the sampler reads idle CPU-seconds that grow no faster than the CPUs × wall time', async (t) => {
  const a = machineCpuSample();
  await new Promise((r) => setTimeout(r, 300));
  const b = machineCpuSample();
  const dWall = b.wallSec - a.wallSec;
  t.true(dWall >= 0.29, `wall ${dWall}`);
  t.true(b.idleSec >= a.idleSec, 'idle never decreases');
  /* /proc/stat counts in USER_HZ (10 ms) per CPU: allow one unit per CPU of rounding. */
  const busy = machineBusyPct(a, b);
  t.true(busy >= 0 && busy <= 100, `busy ${busy}`);
});
