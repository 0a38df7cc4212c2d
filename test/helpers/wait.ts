/** Poll until `fn` returns a truthy value (or throw after `timeoutMs`, with the last value). */
export async function waitFor<T>(fn: () => T | Promise<T>, opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  let last: T | undefined;
  let lastErr: unknown;
  for (;;) {
    try {
      last = await fn();
      if (last) return last as NonNullable<T>;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${opts.what ?? 'a condition'} (last: ${JSON.stringify(last) ?? String(lastErr)})`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 50));
  }
}
