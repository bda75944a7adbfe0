export * from './masterkey.js';
export * from './software.js';
export * from './envelope.js';
