/**
 * Choosing the decap engine (DESIGN.md §2, `--decap=auto|xdp|kernel|tc`).
 *
 * `auto` picks XDP only where it pays: physical NICs whose drivers run XDP
 * natively (XDP strips the outer headers before GRO). On veth and virtual
 * NICs native XDP makes the driver copy every frame, so the kernel's own
 * VXLAN decap (tunnel GRO) wins there. The UDP backend has no kernel decap:
 * its engines are xdp or tc.
 */
import { FlannelBpfError } from './errors.js';
import type { BackendType } from '../maps/config.js';

export type EngineRequest = 'auto' | 'xdp' | 'kernel' | 'tc';
export type Engine = 'xdp' | 'kernel' | 'tc';

/** Drivers with native XDP on physical NICs (kernel drivers/net/ethernet with ndo_bpf). */
export const NATIVE_XDP_PHYSICAL_DRIVERS: readonly string[] = [
  'mlx5_core', 'mlx4_en', 'mlx4_core', 'i40e', 'ice', 'ixgbe', 'ixgbevf', 'igb', 'igc', 'bnxt_en', 'nfp', 'qede',
  'ena', 'sfc', 'thunder-nicvf', 'mvneta', 'mvpp2', 'stmmac', 'fec', 'tsnep', 'lan966x-switch', 'cpsw', 'octeontx2-nicpf',
  'hns3', 'txgbe', 'ngbe', 'idpf', 'gve', 'atlantic', 'bcmgenet',
];

export class EngineError extends FlannelBpfError {}

export interface UplinkDriver {
  /** Kernel driver name (as ethtool -i reports it), e.g. "veth", "virtio_net", "mlx5_core". */
  driver: string;
}

/** Resolve the engine for a backend on an uplink; explains refusals. */
export function resolveEngine(request: EngineRequest, backend: BackendType, uplink: UplinkDriver, fastPath = false): Engine {
  const physicalXdp = NATIVE_XDP_PHYSICAL_DRIVERS.includes(uplink.driver);
  if (backend === 'host-gw') {
    /* No tunnel to decapsulate: the TC step on the uplink only steers. */
    return request === 'auto' || request === 'kernel' ? 'tc' : request;
  }
  if (backend === 'udp') {
    if (request === 'kernel') {
      throw new EngineError('the kernel decap engine needs a VXLAN device; the udp backend has none',
        'use --decap=auto, --decap=xdp or --decap=tc with the udp backend');
    }
    if (request === 'auto') return physicalXdp ? 'xdp' : 'tc';
    return request;
  }
  if (request === 'auto') return physicalXdp ? 'xdp' : fastPath ? 'tc' : 'kernel';
  return request;
}
