/**
 * Query (KMIP 1.4 §4.25, 2.1 §6.1.37): what this server does, answered from what it implements.
 *
 * - Operations and Objects come from the handlers the executor serves (ServerInfo.handlers, or
 *   `allHandlers`), limited to what exists in the client's version: never a fixed list. Under a
 *   delegated ticket, Operations lists only what the ticket's Rights grant.
 * - Server Information: Vendor Identification always; in 2.x also the Server Information
 *   structure with its 2.x fields. 1.x defines no field for that structure ("vendor-specific"),
 *   so 1.x clients get Vendor Identification alone, which vCenter accepts.
 * - Application Namespaces, Extension List/Map, Attestation Types, Validations: kmipd has none,
 *   so nothing is returned (the spec allows an empty answer for each).
 * - RNGs: the DRBG behind node:crypto (OpenSSL 3's default CTR-DRBG over AES-256).
 * - Capabilities: no streaming; asynchronous operations (Locate, Archive, Recover answer Operation
 *   Pending when the client allows it, see src/server/executor.ts); no attestation; Batch Undo and
 *   Batch Continue (1.4+) as the executor implements them; Destroy deletes key material and keeps
 *   the metadata.
 * - Profiles: the server profiles whose mandatory OASIS test cases kmipd passes (query-profiles.ts),
 *   each for the protocol versions it was verified in, up to the client's version: 1.x as the
 *   versioned Profile Name (…KMIPV1_2), 2.x as the Profile Name with its Profile Version. Server
 *   Port is the KMIP port when the server knows it; no Server URI (kmipd serves TTLV over TLS,
 *   for which the profiles define no URI).
 * - Client Registration Methods: how a client's TLS credential comes to be trusted by kmipd:
 *   Server Pre-Generated (`kmipd cert issue` makes the key and certificate), Client Generated
 *   (the client makes its key, `kmipd cert sign` signs its CSR), Client Registered (the client's
 *   own certificate or CA is added with `kmipd trust add-cert` / `add-ca`). Not Server On-Demand:
 *   kmipd never issues credentials to a connecting client.
 * - Storage Protection Masks: the deployment's claim in ServerInfo; nothing when not configured.
 * - Defaults Information (2.x): the defaults the handlers declare.
 * A Query Function that does not exist in the client's version is an Invalid Field.
 */
import { KmipError } from '../codec/errors.js';
import { attributeTo2x, isV2, type KmipAttribute } from '../codec/attributes.js';
import { all } from '../codec/node.js';
import { Enums, Tag, compareVersions, enumValueByName, enumValueInVersion, tagInVersion, type KmipVersion } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/types.js';
import type { OperationContext, OperationHandler } from './context.js';
import { PROFILE_CLAIMS } from './query-profiles.js';

const F = Enums.QueryFunction;

/** The handlers the executor serves (it fills ServerInfo.handlers from its registry). */
async function servedHandlers(ctx: OperationContext): Promise<readonly OperationHandler[]> {
  return ctx.server.handlers ?? [];
}

function operations(ctx: OperationContext, handlers: readonly OperationHandler[]): TtlvNode[] {
  // Under a delegated ticket, the operations its Rights grant (TC-DLOGIN-1-20).
  const permitted = ctx.permittedOperations;
  const ops = handlers
    .filter((h) => compareVersions(h.since, ctx.version) <= 0 && enumValueInVersion('Operation', h.operation, ctx.version))
    .filter((h) => permitted === undefined || permitted.has(h.operation))
    .map((h) => h.operation);
  return [...new Set(ops)].sort((a, b) => a - b).map((op) => T.enum(Tag.Operation, op));
}

function objectTypes(ctx: OperationContext, handlers: readonly OperationHandler[]): TtlvNode[] {
  const types = new Set<number>();
  for (const h of handlers) {
    if (compareVersions(h.since, ctx.version) > 0) continue;
    for (const t of h.objectTypes ?? []) if (enumValueInVersion('ObjectType', t, ctx.version)) types.add(t);
  }
  return [...types].sort((a, b) => a - b).map((t) => T.enum(Tag.ObjectType, t));
}

function serverInformation(ctx: OperationContext): TtlvNode[] {
  const out: TtlvNode[] = [T.text(Tag.VendorIdentification, ctx.server.vendor)];
  if (isV2(ctx.version)) {
    out.push(T.struct(Tag.ServerInformation, [T.text(Tag.ProductName, ctx.server.product), T.text(Tag.ServerVersion, ctx.server.version)]));
  }
  return out;
}

function rngs(): TtlvNode[] {
  return [
    T.struct(Tag.RNGParameters, [
      T.enum(Tag.RNGAlgorithm, Enums.RNGAlgorithm.DRBG),
      T.enum(Tag.CryptographicAlgorithm, Enums.CryptographicAlgorithm.AES),
      T.int(Tag.CryptographicLength, 256),
      T.enum(Tag.DRBGAlgorithm, Enums.DRBGAlgorithm.CTR),
    ]),
  ];
}

function capabilities(ctx: OperationContext): TtlvNode[] {
  const c: TtlvNode[] = [
    T.bool(Tag.StreamingCapability, false),
    T.bool(Tag.AsynchronousCapability, true),
    T.bool(Tag.AttestationCapability, false),
  ];
  if (tagInVersion(Tag.BatchUndoCapability, ctx.version)) c.push(T.bool(Tag.BatchUndoCapability, true));
  if (tagInVersion(Tag.BatchContinueCapability, ctx.version)) c.push(T.bool(Tag.BatchContinueCapability, true));
  c.push(T.enum(Tag.DestroyAction, Enums.DestroyAction.KeyMaterialDeleted));
  return [T.struct(Tag.CapabilityInformation, c)];
}

/** Query Profiles: one Profile Information per claimed profile and verified version ≤ the client's. */
export function profileInformation(version: KmipVersion, port: number | undefined): TtlvNode[] {
  const v2 = isV2(version);
  const out: TtlvNode[] = [];
  for (const claim of PROFILE_CLAIMS) {
    for (const pv of claim.versions) {
      if (compareVersions(pv, version) > 0 || isV2(pv) !== v2) continue;
      const [major, minor] = pv.split('.').map(Number) as [number, number];
      const value = enumValueByName('ProfileName', v2 ? claim.name : `${claim.name}KMIPV${major}_${minor}`);
      if (value === undefined || !enumValueInVersion('ProfileName', value, version)) continue;
      const fields: TtlvNode[] = [T.enum(Tag.ProfileName, value)];
      if (port !== undefined && port > 0) fields.push(T.int(Tag.ServerPort, port));
      if (v2) fields.push(T.struct(Tag.ProfileVersion, [T.int(Tag.ProfileVersionMajor, major), T.int(Tag.ProfileVersionMinor, minor)]));
      out.push(T.struct(Tag.ProfileInformation, fields));
    }
  }
  return out;
}

/** How client credentials come to be trusted (see the header). */
export const CLIENT_REGISTRATION_METHODS: readonly number[] = [
  Enums.ClientRegistrationMethod.ServerPreGenerated,
  Enums.ClientRegistrationMethod.ClientGenerated,
  Enums.ClientRegistrationMethod.ClientRegistered,
];

function enumList(ctx: OperationContext, values: readonly number[] | undefined, enumName: string, tag: number): TtlvNode[] {
  return (values ?? []).filter((v) => enumValueInVersion(enumName, v, ctx.version)).map((v) => T.enum(tag, v));
}

function defaultsInformation(ctx: OperationContext, handlers: readonly OperationHandler[]): TtlvNode[] {
  const byType = new Map<number, KmipAttribute[]>();
  for (const h of handlers) {
    for (const d of h.objectDefaults ?? []) {
      if (!enumValueInVersion('ObjectType', d.objectType, ctx.version)) continue;
      const list = byType.get(d.objectType) ?? [];
      for (const a of d.attributes) if (!list.some((x) => x.name === a.name)) list.push(a);
      byType.set(d.objectType, list);
    }
  }
  if (byType.size === 0) return [];
  const objects = [...byType.entries()]
    .sort(([a], [b]) => a - b)
    .map(([type, attrs]) => T.struct(Tag.ObjectDefaults, [T.enum(Tag.ObjectType, type), T.struct(Tag.Attributes, attrs.map(attributeTo2x))]));
  return [T.struct(Tag.DefaultsInformation, objects)];
}

export const queryHandler: OperationHandler = {
  operation: Enums.Operation.Query,
  name: 'Query',
  since: '1.0',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const asked = all(payload, Tag.QueryFunction, 'Enumeration').map((n) => n.value);
    if (asked.length === 0) throw new KmipError('MissingData', 'Query needs at least one Query Function');
    for (const f of asked) {
      if (!enumValueInVersion('QueryFunction', f, ctx.version)) {
        throw new KmipError('InvalidField', `Query Function ${f} does not exist in KMIP ${ctx.version}`);
      }
    }
    const want = new Set(asked);
    const handlers = await servedHandlers(ctx);
    const s = ctx.server;
    // Response fields in the order of the spec's Query response payload table.
    const out: TtlvNode[] = [];
    if (want.has(F.QueryOperations)) out.push(...operations(ctx, handlers));
    if (want.has(F.QueryObjects)) out.push(...objectTypes(ctx, handlers));
    if (want.has(F.QueryServerInformation)) out.push(...serverInformation(ctx));
    // Application Namespaces, Extension List / Map (both asked: the Map answer only), Attestation
    // Types: kmipd supports none of them.
    if (want.has(F.QueryRNGs)) out.push(...rngs());
    if (want.has(F.QueryProfiles)) {
      out.push(...profileInformation(ctx.version, s.port));
    }
    // Validations: kmipd asserts no formal validation.
    if (want.has(F.QueryCapabilities)) out.push(...capabilities(ctx));
    if (want.has(F.QueryClientRegistrationMethods)) {
      out.push(...enumList(ctx, CLIENT_REGISTRATION_METHODS, 'ClientRegistrationMethod', Tag.ClientRegistrationMethod));
    }
    if (want.has(F.QueryDefaultsInformation)) out.push(...defaultsInformation(ctx, handlers));
    if (want.has(F.QueryStorageProtectionMasks) && s.protectionStorageMasks && s.protectionStorageMasks.length > 0) {
      out.push(T.struct(Tag.ProtectionStorageMasks, s.protectionStorageMasks.map((m) => T.int(Tag.ProtectionStorageMask, m))));
    }
    return out;
  },
};
