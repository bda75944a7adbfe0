/**
 * An object's stored form (the TTLV the envelope sealed: a Key Block, a Template, a Split Key...)
 * opened for a handler, and wiped again when the handler is done with it.
 */
import { KmipError } from '../codec/errors.js';
import type { StoredObject } from '../keystore/types.js';
import { decodeTtlv, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import type { OperationContext } from './context.js';

/** Opens `obj`'s material and decodes it; the plaintext bytes are zeroed at once. Call wipeTree when done. */
export async function storedTree(ctx: OperationContext, obj: StoredObject): Promise<StructureNode> {
  const plain = await ctx.objects.material(obj);
  let n: TtlvNode;
  try {
    n = decodeTtlv(plain);
  } finally {
    plain.fill(0);
  }
  if (n.type !== 'Structure') {
    wipeTree(n);
    throw new KmipError('InternalServerError', 'the stored object is malformed');
  }
  return n;
}

/** Zeroes every byte string in a decoded tree (key material held in it). */
export function wipeTree(n: TtlvNode): void {
  if (n.type === 'Structure') for (const c of n.value) wipeTree(c);
  else if (n.type === 'ByteString') n.value.fill(0);
}
