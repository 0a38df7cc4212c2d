/**
 * A lab node running the stock flanneld emulator (test/fixtures/stock-flannel.ts)
 * instead of our agent: mixed clusters, and the same reliability scenarios on
 * stock flannel for comparison.
 */
import path from 'node:path';
import type { ExternalNode } from '../../src/cli/lab/lab.js';
import { STOCK_FLANNEL_SCRIPT } from '../fixtures/stock-flannel.js';

export const stockNode: ExternalNode = {
  kind: 'stock-flannel',
  argv: (c) => [process.execPath, '--import', path.resolve('node_modules/tsx/dist/esm/index.mjs'), STOCK_FLANNEL_SCRIPT,
    `--etcd-endpoints=${c.etcd}`, '--etcd-prefix=/coreos.com/network', '--iface=eth0', `--subnet-file=${c.subnetFile}`, '--ip-masq'],
};
