/**
 * Helpers for the audit tests: an in-process engine (the real Executor on a temp data
 * directory, like test/helpers/engine.ts) whose audit log can be tuned (anchors every few
 * records, small files), and readers of the audit files.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditTuning } from '../../src/audit/log.js';
import type { AuditRecord } from '../../src/audit/types.js';
import type { ClientIdentity } from '../../src/operations/context.js';
import { silentLogger } from '../../src/server/log.js';
import { buildExecutor, openServerState, type ServerState } from '../../src/server/server.js';
import type { Executor } from '../../src/server/executor.js';
import { Enums, Tag, type KmipVersion } from '../../src/spec/index.js';
import { T, decodeTtlv, encodeTtlv, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import { batchItems, itemResult, requestMessage, type ItemResult } from '../helpers/engine.js';

export const OP = Enums.Operation;
export const OK = Enums.ResultStatus.Success;

export interface AuditEngine {
  dataDir: string;
  state: ServerState;
  executor: Executor;
  call(operation: number, payload: TtlvNode[], who?: string | ClientIdentity, version?: KmipVersion): Promise<ItemResult>;
  /** Closes the state (which writes the closing anchor); keeps the folder. */
  close(): Promise<void>;
  /** Closes and removes the folder. */
  dispose(): Promise<void>;
}

export async function startAuditEngine(opts: { audit?: AuditTuning; dataDir?: string } = {}): Promise<AuditEngine> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'kmipd-audit-'));
  const log = silentLogger();
  const state = await openServerState(dataDir, { log, audit: { anchorIntervalMs: 0, ...opts.audit } });
  const executor = buildExecutor(state, log, 1024 * 1024);
  let closed = false;
  const engine: AuditEngine = {
    dataDir,
    state,
    executor,
    async call(operation, payload, who = 'alice', version = '1.4') {
      const identity = typeof who === 'string' ? { name: who } : who;
      const r = await executor.execute(encodeTtlv(requestMessage([{ operation, payload }], { version })), identity, log);
      const tree = decodeTtlv(r.response);
      if (tree.type !== 'Structure') throw new Error('response is not a structure');
      const item = batchItems(tree)[0];
      if (!item) throw new Error('no batch item');
      return itemResult(item);
    },
    async close() {
      if (closed) return;
      closed = true;
      await state.close();
    },
    async dispose() {
      await engine.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return engine;
}

export function uidOf(r: ItemResult): string {
  const u = r.payload?.value.find((n) => n.tag === Tag.UniqueIdentifier);
  if (u?.type !== 'TextString') throw new Error(`no Unique Identifier (status ${r.status}, reason ${r.reason}, ${r.message})`);
  return u.value;
}

function attr(name: string, value: TtlvNode): StructureNode {
  return T.struct(Tag.Attribute, [T.text(Tag.AttributeName, name), value]);
}

export function createPayload(): TtlvNode[] {
  return [
    T.enum(Tag.ObjectType, Enums.ObjectType.SymmetricKey),
    T.struct(Tag.TemplateAttribute, [
      attr('Cryptographic Algorithm', T.enum(Tag.AttributeValue, Enums.CryptographicAlgorithm.AES)),
      attr('Cryptographic Usage Mask', T.int(Tag.AttributeValue, 12)),
      attr('Cryptographic Length', T.int(Tag.AttributeValue, 256)),
    ]),
  ];
}

/** Register of an AES key with the given bytes (1.4 shape). */
export function registerPayload(key: Buffer): TtlvNode[] {
  return [
    T.enum(Tag.ObjectType, Enums.ObjectType.SymmetricKey),
    T.struct(Tag.TemplateAttribute, [attr('Cryptographic Usage Mask', T.int(Tag.AttributeValue, 12))]),
    T.struct(Tag.SymmetricKey, [
      T.struct(Tag.KeyBlock, [
        T.enum(Tag.KeyFormatType, Enums.KeyFormatType.Raw),
        T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, key)]),
        T.enum(Tag.CryptographicAlgorithm, Enums.CryptographicAlgorithm.AES),
        T.int(Tag.CryptographicLength, key.length * 8),
      ]),
    ]),
  ];
}

export const uidNode = (uid: string): TtlvNode => T.text(Tag.UniqueIdentifier, uid);

export async function createKey(e: AuditEngine, who: string | ClientIdentity = 'alice'): Promise<string> {
  const r = await e.call(OP.Create, createPayload(), who);
  if (r.status !== OK) throw new Error(`Create failed: ${r.reason} ${r.message}`);
  return uidOf(r);
}

export const auditPath = (dataDir: string): string => join(dataDir, 'audit', 'audit.log');

export function readLines(dataDir: string, file = 'audit.log'): string[] {
  const text = readFileSync(join(dataDir, 'audit', file), 'utf8');
  return text.split('\n').slice(0, -1);
}

export function records(dataDir: string): AuditRecord[] {
  return readLines(dataDir).map((l) => JSON.parse(l) as AuditRecord);
}

export function writeLines(dataDir: string, lines: readonly string[], file = 'audit.log'): void {
  writeFileSync(join(dataDir, 'audit', file), lines.map((l) => l + '\n').join(''));
}
