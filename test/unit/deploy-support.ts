/**
 * Shared by test/unit/deploy-*.test.ts and docs-*.test.ts (not a test file itself): reading the deploy/
 * manifests, and offline validation of Kubernetes objects.
 *
 * - YAML: js-yaml, resolved from @kubernetes/client-node (a direct dependency that depends on js-yaml 4),
 *   so no YAML parser of our own is needed. client-node's loadAllYaml is not used: it deserialises into its
 *   typed models and silently drops unknown fields, which is what validation has to catch.
 * - Schemas: the npm package kubernetes-models (Kubernetes' OpenAPI schemas compiled to validators),
 *   loaded with a dynamic import so that a checkout without it type-checks and fails with the command to
 *   install it.
 * - Unknown fields (kubectl's strict validation; the OpenAPI validators allow additional properties):
 *   @kubernetes/client-node's generated models list every field of every type.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const MANIFEST = path.join(ROOT, 'deploy/kube-flannel-bpf.yml');
export const KUBERNETES_MODELS_INSTALL = 'npm install --save-dev kubernetes-models@4.5.1';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type Obj = { [k: string]: Json };

interface JsYaml { loadAll(text: string): unknown[]; load(text: string): unknown }
const requireFromClientNode = createRequire(path.join(ROOT, 'node_modules/@kubernetes/client-node/package.json'));
const jsYaml = requireFromClientNode('js-yaml') as JsYaml;

/** The agent's TypeScript sources (src/**) and the migration helper: what the image runs. */
export function runtimeSources(): string[] {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.endsWith('.ts')) files.push(p);
    }
  };
  walk(path.join(ROOT, 'src'));
  files.push(path.join(ROOT, 'deploy/flannel-cleanup.ts'));
  return files;
}

export function readText(rel: string): string {
  return fs.readFileSync(path.join(ROOT, rel), 'utf8');
}

/** Every non-empty YAML document of a file (or text). */
export function yamlDocs(text: string): Obj[] {
  return jsYaml.loadAll(text).filter((d): d is Obj => d !== null && d !== undefined) as Obj[];
}

export function yamlDoc(text: string): Obj {
  return jsYaml.load(text) as Obj;
}

export const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Get a nested value by dotted path ("spec.template.spec"); arrays by index. */
export function at(o: Json | undefined, dotted: string): Json | undefined {
  let cur: Json | undefined = o;
  for (const k of dotted.split('.')) {
    if (Array.isArray(cur)) cur = cur[Number(k)];
    else if (isObj(cur)) cur = cur[k];
    else return undefined;
  }
  return cur;
}

/* ------------------------------------------------------------ the manifest */

export interface Container extends Obj {
  name: string;
  image: string;
}

export interface Manifest {
  docs: Obj[];
  byKind(kind: string): Obj[];
  one(kind: string, name?: string): Obj;
  daemonSet: Obj;
  podSpec: Obj;
  containers: Container[];
  initContainers: Container[];
  /** The container that runs `flannel-bpf agent`. */
  agent: Container;
}

export function loadManifest(text = fs.readFileSync(MANIFEST, 'utf8')): Manifest {
  const docs = yamlDocs(text);
  const byKind = (kind: string): Obj[] => docs.filter((d) => d.kind === kind);
  const one = (kind: string, name?: string): Obj => {
    const found = byKind(kind).filter((d) => name === undefined || at(d, 'metadata.name') === name);
    if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
    return found[0] as Obj;
  };
  const daemonSet = one('DaemonSet');
  const podSpec = at(daemonSet, 'spec.template.spec') as Obj;
  const containers = (podSpec.containers ?? []) as Container[];
  const initContainers = (podSpec.initContainers ?? []) as Container[];
  const agents = containers.filter((c) => isAgent(c));
  if (agents.length !== 1) throw new Error(`expected one container running "flannel-bpf agent", found ${agents.length}`);
  return { docs, byKind, one, daemonSet, podSpec, containers, initContainers, agent: agents[0] as Container };
}

/** Does the container run `flannel-bpf agent` (explicit command, or the image's ENTRYPOINT)? */
export function isAgent(c: Obj): boolean {
  const cmd = (c.command ?? []) as string[];
  return cmd.length >= 2 && path.basename(cmd[0] ?? '') === 'flannel-bpf' && cmd[1] === 'agent';
}

/** The container's environment as the kubelet would give it, with downward-API fields filled in. */
export function containerEnv(c: Obj, fields: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of (c.env ?? []) as Obj[]) {
    const name = String(e.name);
    if (typeof e.value === 'string') env[name] = e.value;
    const fp = at(e, 'valueFrom.fieldRef.fieldPath');
    if (typeof fp === 'string') {
      const v = fields[fp];
      if (v === undefined) throw new Error(`no value for fieldRef ${fp} (env ${name})`);
      env[name] = v;
    }
  }
  return env;
}

/* ------------------------------------------------------------ kubernetes-models */

export interface KubeModel { validate(): void }
export type KubeModelClass = new (data: unknown) => KubeModel;

export class KubernetesModelsMissing extends Error {}

/** The kubernetes-models class for an apiVersion/kind ("apps/v1", "DaemonSet"). */
export async function kubeModel(apiVersion: string, kind: string): Promise<KubeModelClass> {
  const spec: string = `kubernetes-models/${apiVersion}/${kind}`;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(spec)) as Record<string, unknown>;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new KubernetesModelsMissing(`cannot load ${spec}: the dev dependency kubernetes-models is not installed (${KUBERNETES_MODELS_INSTALL})`);
    }
    if (code === 'ERR_PACKAGE_PATH_NOT_EXPORTED') throw new Error(`kubernetes-models has no model ${apiVersion}/${kind}`);
    throw err;
  }
  const cls = mod[kind] ?? (mod.default as Record<string, unknown> | undefined)?.[kind];
  if (typeof cls !== 'function') throw new Error(`kubernetes-models/${apiVersion}/${kind} exports no ${kind} class`);
  return cls as KubeModelClass;
}

/** Validate against the OpenAPI schema; returns the error text, or null when valid. */
export async function schemaErrors(obj: Obj): Promise<string | null> {
  const Model = await kubeModel(String(obj.apiVersion), String(obj.kind));
  try {
    new Model(JSON.parse(JSON.stringify(obj))).validate();
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

/* ------------------------------------------------------------ unknown fields */

type AttributeMap = Array<{ name: string; baseName: string; type: string }>;
interface ModelClass { getAttributeTypeMap(): AttributeMap }
const models = k8s as unknown as Record<string, ModelClass | undefined>;

/** client-node's model class name for an apiVersion/kind ("apps/v1", "DaemonSet" → "V1DaemonSet"). */
export function clientModelName(apiVersion: string, kind: string): string {
  const version = apiVersion.split('/').pop() ?? '';
  return `${version.charAt(0).toUpperCase()}${version.slice(1)}${kind}`;
}

/**
 * Fields the Kubernetes type does not have (what `kubectl apply --validate=strict` refuses), as JSON paths.
 * The OpenAPI validators accept unknown fields, so a typo such as `mountPropogation` would pass them.
 */
export function unknownFields(value: Json | undefined, type: string, at = ''): string[] {
  if (value === null || value === undefined) return [];
  const arr = /^Array<(.+)>$/.exec(type);
  if (arr) {
    if (!Array.isArray(value)) return [`${at}: expected a list (${type})`];
    return value.flatMap((v, i) => unknownFields(v, arr[1] ?? 'any', `${at}[${i}]`));
  }
  const dict = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (dict) {
    if (!isObj(value)) return [`${at}: expected a map (${type})`];
    return Object.entries(value).flatMap(([k, v]) => unknownFields(v, dict[1] ?? 'any', `${at}.${k}`));
  }
  const model = models[type];
  if (!model || typeof model.getAttributeTypeMap !== 'function') return []; /* string, number, IntOrString, any … */
  if (!isObj(value)) return [`${at}: expected an object (${type})`];
  const attrs = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  const out: string[] = [];
  for (const [k, v] of Object.entries(value)) {
    const t = attrs.get(k);
    if (t === undefined) out.push(`${at}.${k}: unknown field of ${type}`);
    else out.push(...unknownFields(v, t, `${at}.${k}`));
  }
  return out;
}

/* ------------------------------------------------------------ strategic merge (for the patch files) */

/** Lists merged by key in a strategic merge patch, for the paths our patches touch. */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name', initContainers: 'name', volumes: 'name', env: 'name', volumeMounts: 'mountPath', ports: 'containerPort',
};

/** A strategic merge patch, enough for the PodSpec fields of our patch files (other lists are replaced). */
export function strategicMerge(orig: Json | undefined, patch: Json): Json {
  if (!isObj(patch)) return JSON.parse(JSON.stringify(patch)) as Json;
  const out: Obj = isObj(orig) ? JSON.parse(JSON.stringify(orig)) as Obj : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) {
      delete out[k];
    } else if (Array.isArray(v) && MERGE_KEYS[k] !== undefined && Array.isArray(out[k])) {
      const key = MERGE_KEYS[k] as string;
      const list = [...(out[k] as Json[])];
      for (const item of v) {
        const i = list.findIndex((e) => isObj(e) && isObj(item) && e[key] === item[key]);
        if (i >= 0) list[i] = strategicMerge(list[i], item);
        else list.push(item);
      }
      out[k] = list;
    } else {
      out[k] = isObj(v) ? strategicMerge(out[k], v) : JSON.parse(JSON.stringify(v)) as Json;
    }
  }
  return out;
}
