export * from './types.js';
export * from './backend-data.js';
export * from './etcd.js';
export * from './kube.js';
export * from './validate.js';
