export * from './desired.js';
export * from './ids.js';
export * from './diff.js';
