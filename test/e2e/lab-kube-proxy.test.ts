/** kube-proxy compatibility on the compat path (--fast-path=off); see test/helpers/kube-proxy-scenarios.ts. */
import { registerKubeProxy } from '../helpers/kube-proxy-scenarios.js';

registerKubeProxy('compat path:', false);
