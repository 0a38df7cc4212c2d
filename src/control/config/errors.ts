/**
 * ConfigError: a configuration value (net-conf.json key, command-line flag or
 * FLANNELD_* variable) that flannel-bpf cannot use. It names where the value
 * came from, the field (`Backend.VNI`, `--max-peers`, `FLANNELD_MAX_PEERS`),
 * the bad value, what is accepted, and a remedy.
 */
import { FlannelBpfError } from '../../loader/errors.js';

/** Where a configuration value came from. */
export type ConfigOrigin = 'net-conf' | 'command line' | 'environment' | 'annotation prefix';

export interface ConfigErrorInit {
  /** Where the value came from. */
  origin: ConfigOrigin;
  /** Human label of the document, e.g. "/etc/kube-flannel/net-conf.json" or "etcd key /coreos.com/network/config". */
  document?: string;
  /** Field path (`Backend.VNI`), flag (`--max-peers`) or variable (`FLANNELD_MAX_PEERS`). */
  field: string;
  /** The offending value (undefined when the field is missing). */
  value?: unknown;
  /** What is wrong. For flannel's own checks this is flannel's exact error text. */
  problem: string;
  /** What would be accepted instead. */
  accepted: string;
  /** What the operator can do; defaults to "set <field> to <accepted>". */
  remedy?: string;
}

export function describeValue(v: unknown): string {
  if (v === undefined) return '(missing)';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'bigint') return `${v}`;
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

export class ConfigError extends FlannelBpfError {
  readonly origin: ConfigOrigin;
  readonly document: string | undefined;
  readonly field: string;
  readonly value: unknown;
  readonly problem: string;
  readonly accepted: string;

  constructor(init: ConfigErrorInit) {
    const where = init.document ?? init.origin;
    const shown = init.value === undefined ? '' : ` = ${describeValue(init.value)}`;
    super(
      `${where}: ${init.field}${shown}: ${init.problem} (accepted: ${init.accepted})`,
      init.remedy ?? `set ${init.field} to ${init.accepted}`,
    );
    this.origin = init.origin;
    this.document = init.document;
    this.field = init.field;
    this.value = init.value;
    this.problem = init.problem;
    this.accepted = init.accepted;
  }
}
