/**
 * Keystore meta keys used by the operations tooling (KeyStore.getMeta / setMeta).
 *
 *   usage.<uid>          last use of an object: {"at": ISO date, "by": identity, "op": operation}
 *   health.probe.<host>  the readiness probe's write-then-read value
 *   backup.lastSuccess   ISO date of the last successful `kmipd backup` (when that command records it)
 */
export const USAGE_PREFIX = 'usage.';
export const PROBE_PREFIX = 'health.probe.';
export const META_LAST_BACKUP = 'backup.lastSuccess';
