/** The lab end-to-end matrix (issue 4) for the vxlan backend; see test/helpers/lab-matrix.ts. */
import { registerLabMatrix } from '../helpers/lab-matrix.js';

registerLabMatrix('vxlan', 'vxlan');
