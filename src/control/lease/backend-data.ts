/**
 * Backend attributes carried in a lease: flannel's BackendType and
 * BackendData, shared by the etcd value and the Kubernetes annotations.
 *
 * vxlan BackendData is exactly `{"VNI":<n>,"VtepMAC":"<mac>"}` (compact, VNI
 * first, VtepMAC last): flannel's GetStoredMacAddresses finds the MAC by
 * splitting that text, so any other layout loses the VtepMAC on restart.
 */
import { parseMac, formatMac, AddressError } from '../../maps/addr.js';
import type { BackendType } from '../../maps/config.js';
import { goField, isJsonObject, type JsonValue } from '../config/gojson.js';
import { reject, type Rejection } from './types.js';

/** What this node publishes about itself. */
export interface OwnLeaseAttrs {
  /** Public IP to publish (host-arithmetic u32). */
  publicIp: number;
  backendType: BackendType;
  /** vxlan only. */
  vni?: number;
  /** vxlan only: our VtepMAC. */
  vtepMac?: string;
}

/** The BackendType string flannel stores: the udp backend leaves it empty. */
export function storedBackendType(t: BackendType | string): string {
  return t === 'udp' ? '' : t;
}

/** The BackendType read from a store: empty means the udp backend. */
export function leaseBackendType(stored: string): string {
  return stored === '' ? 'udp' : stored;
}

/** `{"VNI":1,"VtepMAC":"0e:2a:…"}`, byte for byte as flannel's json.Marshal writes it. */
export function vxlanBackendData(vni: number, vtepMac: string): string {
  if (!Number.isInteger(vni) || vni < 0 || vni > 0xffffffff) throw new RangeError(`VNI ${vni} is not a uint32`);
  const mac = formatMac(parseMac(vtepMac));
  return `{"VNI":${vni},"VtepMAC":"${mac}"}`;
}

/**
 * BackendData as JSON text for our own lease, or null when the backend has
 * none (host-gw, udp). Throws when a vxlan lease lacks its VNI or VtepMAC.
 */
export function ownBackendData(attrs: OwnLeaseAttrs): string | null {
  if (attrs.backendType !== 'vxlan') return null;
  if (attrs.vni === undefined || attrs.vtepMac === undefined) {
    throw new TypeError('a vxlan lease needs vni and vtepMac');
  }
  return vxlanBackendData(attrs.vni, attrs.vtepMac);
}

export interface VxlanAttrs {
  vtepMac: string;
  vni?: number;
}

/**
 * Decode a peer's vxlan BackendData (already JSON-decoded). Keys are matched
 * case-insensitively as Go does. A missing VNI is left undefined (flannel
 * never reads it); a missing or invalid VtepMAC is a rejection.
 */
export function decodeVxlanData(key: string, what: string, data: JsonValue | undefined): VxlanAttrs | Rejection {
  if (data === undefined || data === null) {
    return reject(key, 'malformed_json', `${what}: vxlan lease without BackendData (flannel: "error decoding subnet lease JSON")`);
  }
  if (!isJsonObject(data)) {
    return reject(key, 'malformed_json', `${what}: vxlan BackendData is not a JSON object: ${JSON.stringify(data)}`);
  }
  const vniRaw = goField(data, 'VNI');
  let vni: number | undefined;
  if (vniRaw !== undefined && vniRaw !== null) {
    if (typeof vniRaw !== 'number' || !Number.isInteger(vniRaw) || vniRaw < 0 || vniRaw > 0xffffffff) {
      return reject(key, 'malformed_json', `${what}: BackendData.VNI ${JSON.stringify(vniRaw)} is not a uint32`);
    }
    vni = vniRaw;
  }
  const macRaw = goField(data, 'VtepMAC');
  if (macRaw === undefined || macRaw === null) {
    return reject(key, 'bad_vtep_mac', `${what}: vxlan BackendData has no VtepMAC`);
  }
  try {
    const vtepMac = formatMac(parseMac(macRaw));
    return vni === undefined ? { vtepMac } : { vtepMac, vni };
  } catch (err) {
    return reject(key, 'bad_vtep_mac', `${what}: ${err instanceof AddressError ? err.message : String(err)}`);
  }
}

export function isRejection(x: object): x is Rejection {
  return 'reason' in x && 'leaseKey' in x;
}
