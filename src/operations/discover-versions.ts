/**
 * Discover Versions (KMIP 1.1+, 1.4 §4.26, 2.1 §6.1.17).
 *
 * - No Protocol Version in the request: every version kmipd speaks, highest first.
 * - A list: the versions of that list kmipd speaks, in the client's order; none in common gives
 *   an empty payload (1.1 test case 16.1).
 *
 * vCenter opens every connection with this, an empty payload in a 1.1 message; the executor
 * answers in the request's version, so the header says 1.1 and the list holds 1.1.
 */
import { all, reqValue } from '../codec/node.js';
import { Enums, Tag, compareVersions, parseVersion, type KmipVersion } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/types.js';
import type { OperationContext, OperationHandler } from './context.js';

function versionNode(v: KmipVersion): TtlvNode {
  const [major, minor] = v.split('.').map(Number) as [number, number];
  return T.struct(Tag.ProtocolVersion, [T.int(Tag.ProtocolVersionMajor, major), T.int(Tag.ProtocolVersionMinor, minor)]);
}

export const discoverVersionsHandler: OperationHandler = {
  operation: Enums.Operation.DiscoverVersions,
  name: 'DiscoverVersions',
  since: '1.1',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const ours = ctx.server.versions;
    const asked = all(payload, Tag.ProtocolVersion, 'Structure');
    if (asked.length === 0) {
      return [...ours].sort((a, b) => compareVersions(b, a)).map(versionNode);
    }
    const out: KmipVersion[] = [];
    for (const pv of asked) {
      const v = parseVersion(reqValue(pv, Tag.ProtocolVersionMajor, 'Integer'), reqValue(pv, Tag.ProtocolVersionMinor, 'Integer'));
      if (v !== undefined && ours.includes(v) && !out.includes(v)) out.push(v);
    }
    return out.map(versionNode);
  },
};
