export * from './errors.js';
export * from './gojson.js';
export * from './net-conf.js';
export * from './flags.js';
