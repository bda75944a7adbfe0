export * from './types.js';
export { GENESIS, parseLine, canonicalBody, chainHash, selfConsistent } from './record.js';
export { ANCHOR_LABEL, deriveAnchorKey, anchorValid } from './anchor.js';
export { AuditLog, parseMetaAnchor, DEFAULT_ANCHOR_EVERY, DEFAULT_ANCHOR_INTERVAL_MS, DEFAULT_MAX_FILE_BYTES, type AuditLogOptions, type AuditTuning, type MetaAnchor } from './log.js';
export { auditFiles, auditDir, linesOf, type AuditFile, type RawLine } from './read.js';
export { verifyAuditTrail, type AuditProblem, type ProblemKind, type VerifyOptions, type VerifyReport } from './verify.js';
export { auditAdmin, adminIdentity, type AdminAuditEntry, type AdminAuditOptions } from './admin.js';
export { queryAudit, parseSince, type AuditFilter, type ShownRecord } from './query.js';
