import type { OperationHandler } from './context.js';
import { addAttributeHandler } from './add-attribute.js';
import { deleteAttributeHandler } from './delete-attribute.js';
import { discoverVersionsHandler } from './discover-versions.js';
import { getAttributeListHandler } from './get-attribute-list.js';
import { getAttributesHandler } from './get-attributes.js';
import { locateHandler } from './locate.js';
import { modifyAttributeHandler } from './modify-attribute.js';
import { queryHandler } from './query.js';
import { setAttributeHandler } from './set-attribute.js';
import { activateHandler } from './activate.js';
import { certifyHandler, recertifyHandler } from './certify.js';
import { checkHandler } from './check.js';
import { obtainLeaseHandler } from './obtain-lease.js';
import { getUsageAllocationHandler } from './get-usage-allocation.js';
import { createHandler } from './create.js';
import { createKeyPairHandler } from './create-key-pair.js';
import { destroyHandler } from './destroy.js';
import { getHandler } from './get.js';
import { registerHandler } from './register.js';
import { rekeyHandler } from './rekey.js';
import { rekeyKeyPairHandler } from './rekey-key-pair.js';
import { revokeHandler } from './revoke.js';
import { encryptHandler } from './encrypt.js';
import { decryptHandler } from './decrypt.js';
import { signHandler } from './sign.js';
import { signatureVerifyHandler } from './signature-verify.js';
import { macHandler } from './mac.js';
import { macVerifyHandler } from './mac-verify.js';
import { hashHandler } from './hash.js';
import { rngRetrieveHandler } from './rng-retrieve.js';
import { rngSeedHandler } from './rng-seed.js';
import { deriveKeyHandler } from './derive-key.js';
import { interopHandler } from './interop.js';
import { createSplitKeyHandler, joinSplitKeyHandler } from './split-key.js';
import { delegatedLoginHandler, loginHandler, logoutHandler } from './login.js';
import { logHandler } from './log.js';
import { notifyHandler } from './notify.js';
import { putHandler } from './put.js';
import { exportHandler } from './export.js';
import { importHandler } from './import.js';
import { adjustAttributeHandler } from './adjust-attribute.js';
import { setEndpointRoleHandler } from './set-endpoint-role.js';
import { getConstraintsHandler, setConstraintsHandler } from './constraints.js';
import { archiveHandler, recoverHandler } from './archive.js';
import { cancelHandler, pollHandler } from './poll-cancel.js';
import { validateHandler } from './validate.js';

/**
 * Every operation kmipd implements, one module each. The executor answers any other
 * operation with Operation Not Supported.
 */
export const allHandlers: readonly OperationHandler[] = [
  discoverVersionsHandler,
  queryHandler,
  locateHandler,
  getAttributesHandler,
  getAttributeListHandler,
  addAttributeHandler,
  modifyAttributeHandler,
  deleteAttributeHandler,
  setAttributeHandler,
  createHandler,
  registerHandler,
  getHandler,
  activateHandler,
  revokeHandler,
  destroyHandler,
  rekeyHandler,
  checkHandler,
  obtainLeaseHandler,
  getUsageAllocationHandler,
  createKeyPairHandler,
  rekeyKeyPairHandler,
  certifyHandler,
  recertifyHandler,
  encryptHandler,
  decryptHandler,
  signHandler,
  signatureVerifyHandler,
  macHandler,
  macVerifyHandler,
  hashHandler,
  rngRetrieveHandler,
  rngSeedHandler,
  deriveKeyHandler,
  interopHandler,
  createSplitKeyHandler,
  joinSplitKeyHandler,
  loginHandler,
  logoutHandler,
  delegatedLoginHandler,
  logHandler,
  // Server-to-client operations, accepted from trusted upstream key servers only (upstream.ts).
  notifyHandler,
  putHandler,
  exportHandler,
  importHandler,
  adjustAttributeHandler,
  setEndpointRoleHandler,
  setConstraintsHandler,
  getConstraintsHandler,
  archiveHandler,
  recoverHandler,
  pollHandler,
  cancelHandler,
  validateHandler,
];
