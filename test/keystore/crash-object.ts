import { createHash } from 'node:crypto';
import type { StoredObject } from '../../src/keystore/types.js';
import { T } from '../../src/ttlv/index.js';

/** The deterministic object number `i` of the crash test, so the parent knows what to expect. */
export function crashObject(i: number): StoredObject {
  const uid = `crash-${i.toString().padStart(8, '0')}`;
  return {
    uid,
    objectType: 2,
    state: 2,
    owner: 'crash-test',
    attributes: [
      { name: 'Name', index: 0, value: T.struct(0x420053, [T.text(0x420055, `name-${uid}`), T.enum(0x420054, 1)]) },
      { name: 'x-seq', index: 0, value: T.int(0x42000b, i) },
      { name: 'x-pad', index: 0, value: T.bytes(0x42000b, Buffer.alloc(200 + (i % 300), i & 0xff)) },
    ],
    material: { rootKeyId: 'rk-crash', blob: createHash('sha256').update(uid).digest() },
    revision: 0,
    createdAt: 1_700_000_000_000 + i,
    updatedAt: 1_700_000_000_000 + i,
  };
}
