/**
 * Cleanup for benchmarks that create namespaces, labs, processes and pins:
 * register an undo step as soon as a thing exists; run() undoes everything
 * in reverse order, once, even when a step fails, and also on SIGINT/SIGTERM
 * and on an uncaught error. Steps are synchronous so they also run from
 * process 'exit'.
 */

export interface CleanupStep {
  label: string;
  fn: () => void;
}

export class Cleanup {
  #steps: CleanupStep[] = [];
  #ran = false;
  #installed = false;

  constructor(private readonly say: (line: string) => void = (l) => process.stderr.write(`${l}\n`)) {}

  /** Register an undo step; returns a function that runs it now (and unregisters it). */
  add(label: string, fn: () => void): () => void {
    const step = { label, fn };
    this.#steps.push(step);
    return () => {
      const i = this.#steps.indexOf(step);
      if (i < 0) return;
      this.#steps.splice(i, 1);
      this.#runStep(step);
    };
  }

  #runStep(s: CleanupStep): void {
    try {
      s.fn();
    } catch (err) {
      this.say(`cleanup: ${s.label} failed: ${(err as Error).message}`);
    }
  }

  /** Undo everything still registered, newest first. Idempotent. */
  run(): void {
    if (this.#ran) return;
    this.#ran = true;
    for (const s of this.#steps.reverse()) this.#runStep(s);
    this.#steps = [];
  }

  /** Run the cleanup on SIGINT/SIGTERM/SIGHUP (then exit 130/143/129) and on process exit. */
  installHandlers(): void {
    if (this.#installed) return;
    this.#installed = true;
    const onSignal = (sig: NodeJS.Signals, code: number): void => {
      this.say(`\n${sig}: cleaning up`);
      this.run();
      process.exit(code);
    };
    process.once('SIGINT', () => onSignal('SIGINT', 130));
    process.once('SIGTERM', () => onSignal('SIGTERM', 143));
    process.once('SIGHUP', () => onSignal('SIGHUP', 129));
    process.once('exit', () => this.run());
  }
}
