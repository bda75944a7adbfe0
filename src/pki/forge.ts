/**
 * node-forge is CommonJS and its index re-exports everything through one object, which Node's
 * ESM loader cannot see as named exports (and its typings have no default export), so it is
 * loaded with require here, typed by @types/node-forge.
 */
import { createRequire } from 'node:module';
import type * as Forge from 'node-forge';

const require = createRequire(import.meta.url);

export const forge = require('node-forge') as typeof Forge;
export type { Forge };
