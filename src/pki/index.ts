/** kmipd's PKI: its CA, the server and client certificates it issues, and client identity. */
export { type CaMaterial, type IssuedCert, createCA, DEFAULT_CA_DAYS } from './ca.js';
export { issueServerCert, issueClientCert, normalizeSans, DEFAULT_SERVER_DAYS, DEFAULT_CLIENT_DAYS } from './issue.js';
export { signCsr, verifyCsr, CsrError } from './csr.js';
export { certInfo, clientIdentityAllowed, formatName, type CertInfo, type ClientIdentity } from './info.js';
export {
  ensureServerPki,
  loadCa,
  pkiPaths,
  defaultServerSans,
  writeFileAtomic,
  ensurePrivateDir,
  type ServerPki,
  type PkiPaths,
} from './store.js';
export { type KeyType, describeKey } from './keys.js';
