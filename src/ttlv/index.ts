export * from './types.js';
export * from './errors.js';
export * from './decode.js';
export * from './encode.js';
export * from './framer.js';
export * from './hex.js';
