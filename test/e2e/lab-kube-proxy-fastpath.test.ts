/** kube-proxy compatibility with the conntrack-gated fast path on; see test/helpers/kube-proxy-scenarios.ts. */
import { registerKubeProxy } from '../helpers/kube-proxy-scenarios.js';

registerKubeProxy('fast path:', true);
