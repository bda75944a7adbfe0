/**
 * An in-process kmipd engine for operation tests: the real Executor with every handler, on a
 * real data directory (SQLite keystore, software master key, root keys) in a temp folder.
 * Requests are encoded to TTLV bytes and decoded back, exactly as over the wire.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KeyStore } from '../../src/keystore/types.js';
import type { AccessPolicy } from '../../src/operations/context.js';
import { buildExecutor, openServerState, type ServerState } from '../../src/server/server.js';
import { silentLogger } from '../../src/server/log.js';
import type { Executor } from '../../src/server/executor.js';
import type { AsyncLimits } from '../../src/server/async.js';
import { Tag, type KmipVersion } from '../../src/spec/index.js';
import { T, decodeTtlv, encodeTtlv, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';

export interface RequestOptions {
  /** Default '1.4'. */
  version?: KmipVersion;
  /** Default 'alice'. */
  identity?: string;
  /** Extra Request Header children (Batch Error Continuation Option, Maximum Response Size...). */
  header?: TtlvNode[];
}

export interface ItemResult {
  status: number;
  reason?: number;
  message?: string;
  payload?: StructureNode;
}

export interface Engine {
  request(items: { operation: number; payload: TtlvNode[]; id?: Buffer }[], opts?: RequestOptions): Promise<StructureNode>;
  call(operation: number, payload: TtlvNode[], opts?: RequestOptions): Promise<ItemResult>;
  /** Sends raw bytes through the executor (for malformed-message tests). */
  raw(bytes: Buffer, identity?: string): Promise<StructureNode>;
  executor: Executor;
  state: ServerState;
  store: KeyStore;
  dataDir: string;
  close(): Promise<void>;
}

export function requestMessage(items: { operation: number; payload: TtlvNode[]; id?: Buffer }[], opts: RequestOptions = {}): StructureNode {
  const [major, minor] = (opts.version ?? '1.4').split('.').map(Number) as [number, number];
  return T.struct(Tag.RequestMessage, [
    T.struct(Tag.RequestHeader, [
      T.struct(Tag.ProtocolVersion, [T.int(Tag.ProtocolVersionMajor, major), T.int(Tag.ProtocolVersionMinor, minor)]),
      ...(opts.header ?? []),
      T.int(Tag.BatchCount, items.length),
    ]),
    ...items.map((i) =>
      T.struct(Tag.BatchItem, [
        T.enum(Tag.Operation, i.operation),
        ...(i.id ? [T.bytes(Tag.UniqueBatchItemID, i.id)] : []),
        T.struct(Tag.RequestPayload, i.payload),
      ]),
    ),
  ]);
}

/** The fields of one response batch item. */
export function itemResult(item: StructureNode): ItemResult {
  const r: ItemResult = { status: -1 };
  for (const c of item.value) {
    if (c.tag === Tag.ResultStatus && c.type === 'Enumeration') r.status = c.value;
    else if (c.tag === Tag.ResultReason && c.type === 'Enumeration') r.reason = c.value;
    else if (c.tag === Tag.ResultMessage && c.type === 'TextString') r.message = c.value;
    else if (c.tag === Tag.ResponsePayload && c.type === 'Structure') r.payload = c;
  }
  return r;
}

export function batchItems(response: StructureNode): StructureNode[] {
  return response.value.filter((c): c is StructureNode => c.tag === Tag.BatchItem && c.type === 'Structure');
}

export async function startEngine(
  opts: {
    ticketLifetimeSeconds?: number;
    clock?: () => Date;
    upstreams?: string[];
    policy?: Partial<AccessPolicy>;
    auth?: { username: string; password: string };
    leaseTimeSeconds?: number;
    /** Asynchronous operation limits (src/server/async.ts), e.g. startDelayMs. */
    async?: Partial<AsyncLimits>;
    /** Use this data directory (kept on close) instead of a fresh temporary one: a restart. */
    dataDir?: string;
  } = {},
): Promise<Engine> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'kmipd-engine-'));
  const log = silentLogger();
  const state = await openServerState(dataDir, { log });
  const policy: AccessPolicy = { ...state.manifest.policy, ...opts.policy };
  if (opts.auth) {
    writeFileSync(join(dataDir, 'password'), opts.auth.password, { mode: 0o600 });
    state.manifest.auth = { username: opts.auth.username, passwordFile: 'password' };
  }
  const executor = buildExecutor(state, log, 1024 * 1024, policy, undefined, {
    ...(opts.leaseTimeSeconds !== undefined ? { leaseTimeSeconds: opts.leaseTimeSeconds } : {}),
    ...(opts.ticketLifetimeSeconds !== undefined ? { ticketLifetimeSeconds: opts.ticketLifetimeSeconds } : {}),
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.upstreams !== undefined ? { upstreams: opts.upstreams } : {}),
    ...(opts.async ? { async: opts.async } : {}),
  });
  const run = async (bytes: Buffer, identity: string): Promise<StructureNode> => {
    const r = await executor.execute(bytes, { name: identity }, log);
    const tree = decodeTtlv(r.response);
    if (tree.type !== 'Structure') throw new Error('response is not a structure');
    return tree;
  };
  const engine: Engine = {
    executor,
    state,
    store: state.store,
    dataDir,
    request: (items, o = {}) => run(encodeTtlv(requestMessage(items, o)), o.identity ?? 'alice'),
    raw: (bytes, identity = 'alice') => run(bytes, identity),
    async call(operation, payload, o = {}) {
      const resp = await engine.request([{ operation, payload }], o);
      const item = batchItems(resp)[0];
      if (!item) throw new Error('response has no batch item');
      return itemResult(item);
    },
    async close() {
      await executor.close();
      await state.close();
      if (opts.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return engine;
}
