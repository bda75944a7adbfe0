/**
 * Keystore meta keys used by the operations tooling (KeyStore.getMeta / setMeta).
 *
 *   usage.<uid>          last material fetch of an object (Get, or a cryptographic operation with it):
 *                        {"at": ISO date, "by": identity, "op": operation[, "refused": reason]}
 *   read.<uid>           last attribute read of an object (Get Attributes, Get Attribute List):
 *                        {"at", "by", "op"}
 *   seen.<identity>      when a client identity last sent a request: {"at", "op"}
 *   clients.index        the identities that have a seen.<identity> row: a JSON array of names
 *   retire.<uid>         when `kmipd key retire` deactivated the object: {"at", "by", "reason"}
 *   health.probe.<host>  the readiness probe's write-then-read value
 *   backup.lastSuccess   ISO date of the last successful `kmipd backup` (when that command records it)
 */
export const USAGE_PREFIX = 'usage.';
export const ATTR_READ_PREFIX = 'read.';
export const SEEN_PREFIX = 'seen.';
export const CLIENTS_INDEX = 'clients.index';
export const RETIRE_PREFIX = 'retire.';
export const PROBE_PREFIX = 'health.probe.';
export const META_LAST_BACKUP = 'backup.lastSuccess';
