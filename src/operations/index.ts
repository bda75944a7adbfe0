import type { OperationHandler } from './context.js';

/**
 * Every operation kmipd implements, one module each. The executor answers any other
 * operation with Operation Not Supported.
 */
export const allHandlers: readonly OperationHandler[] = [];
