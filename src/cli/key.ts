/**
 * `kmipd key`: the key inventory for the key server's admin. vCenter never revokes or destroys
 * keys and remembers only their IDs; the tags it adds (x-Name: the VM name or host address,
 * x-Component: "Virtual Machine" or "ESXi Server", x-Identifier: the VM BIOS UUID or host UUID)
 * say which key belongs to what.
 *
 *   kmipd key list    --data DIR [--json] [--component C] [--name N] [--state S] [--owner O]
 *                     [--unused-for D] [--used-by IDENTITY]
 *   kmipd key show    --data DIR UID [--json]
 *
 * Both show when the key was last fetched (Get or a cryptographic use) and when its attributes
 * were last read, and by which identity (src/admin/usage.ts; a running server writes these
 * every usage.flushSeconds).
 *   kmipd key activate|revoke|destroy --data DIR UID [--reason R]
 *
 * They open the data folder's keystore with the server's own code (openServerState), also while
 * the server runs (SQLite in WAL mode; writers wait for each other up to the busy timeout).
 * Listing reads the store; lifecycle changes run the real KMIP operation handlers through the
 * server's Executor in this process, as an admin identity, so the KMIP state machine decides
 * (e.g. an Active key cannot be destroyed; revoke it first).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { namingFor, valueToText } from '../codec/textvalues.js';
import type { StoredObject } from '../keystore/types.js';
import type { AccessPolicy } from '../operations/context.js';
import { applyTimeTransitions, stateName } from '../operations/lifecycle.js';
import { MANIFEST } from '../server/datadir.js';
import { silentLogger } from '../server/log.js';
import { type ServerState, buildExecutor, openServerState } from '../server/server.js';
import { Enums, Tag, enumValueByName, enumValueName, tagName } from '../spec/index.js';
import { T, decodeTtlv, encodeTtlv, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import { DEFAULT_DATA_DIR } from './cert.js';
import { type LastUse, lastAttributeRead, lastSeen, lastUse } from '../admin/usage.js';
import { RETIRE_PREFIX } from '../admin/meta-keys.js';
import { DurationError, parseDuration } from '../config/duration.js';
import { writer } from './output.js';

/** The identity the CLI's lifecycle operations run as (an admin of the in-process executor only). */
export const CLI_ADMIN_IDENTITY = 'kmipd-cli-admin';

/** vCenter's tags, in the order the inventory shows them. */
export const VCENTER_TAGS = ['x-Name', 'x-Component', 'x-Identifier'] as const;

export class KeyCliError extends Error {}

/** Opens the data folder like the server does; refuses a folder that is not one (no first run here). */
async function openData(dataDir: string): Promise<ServerState> {
  if (!existsSync(join(dataDir, MANIFEST))) {
    throw new KeyCliError(`no kmipd data folder at ${resolve(dataDir)} (no ${MANIFEST}); give --data, or run \`kmipd serve --data ${dataDir}\` once first`);
  }
  return openServerState(dataDir, { log: silentLogger() });
}

export async function withData<R>(dataDir: string, fn: (state: ServerState) => Promise<R>): Promise<R> {
  const state = await openData(dataDir);
  try {
    return await fn(state);
  } finally {
    await state.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Reading objects

/** A value as text: enumeration and mask names, ISO dates, hex bytes; structures as {Field=value, ...}. */
export function valueText(node: TtlvNode, attributeName?: string): string {
  if (node.type === 'Structure') {
    return `{${node.value.map((c) => `${tagName(c.tag)}=${valueText(c)}`).join(', ')}}`;
  }
  return valueToText(node, namingFor(node.tag, attributeName), '|');
}

function attrTexts(obj: StoredObject, name: string): string[] {
  return obj.attributes
    .filter((a) => a.name === name)
    .sort((a, b) => a.index - b.index)
    .map((a) => valueText(a.value, name));
}

function createdAt(obj: StoredObject): Date {
  const initial = obj.attributes.find((a) => a.name === 'Initial Date');
  if (initial?.value.type === 'DateTime') return new Date(Number(initial.value.value) * 1000);
  return new Date(obj.createdAt);
}

export function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The object as the server would see it now (Activation / Deactivation Date reached), not persisted. */
function current(obj: StoredObject): StoredObject {
  return applyTimeTransitions(obj, new Date()) ?? obj;
}

export interface KeyRow {
  uid: string;
  objectType: string;
  state: string;
  owner: string;
  created: string;
  'x-Name': string | null;
  'x-Component': string | null;
  'x-Identifier': string | null;
  /** KMIP Name attributes, if any. */
  names: string[];
  /** Last material fetch (Get) or cryptographic use: time, identity, operation; null if never (since tracking). */
  lastFetched: string | null;
  lastFetchedBy: string | null;
  lastFetchOp: string | null;
  /** Last Get Attributes / Get Attribute List: time and identity; null if never. */
  lastAttributesRead: string | null;
  lastAttributesReadBy: string | null;
}

function row(o: StoredObject, fetch: LastUse | undefined, read: LastUse | undefined): KeyRow {
  const tag = (n: string): string | null => {
    const v = attrTexts(o, n);
    return v.length ? v.join(', ') : null;
  };
  return {
    uid: o.uid,
    objectType: enumValueName('ObjectType', o.objectType) ?? String(o.objectType),
    state: stateName(o.state),
    owner: o.owner,
    created: isoSeconds(createdAt(o)),
    'x-Name': tag('x-Name'),
    'x-Component': tag('x-Component'),
    'x-Identifier': tag('x-Identifier'),
    names: o.attributes
      .filter((a) => a.name === 'Name')
      .map((a) => (a.value.type === 'Structure' ? a.value.value.find((c) => c.tag === Tag.NameValue) : undefined))
      .flatMap((v) => (v?.type === 'TextString' ? [v.value] : [])),
    lastFetched: fetch ? isoSeconds(fetch.at) : null,
    lastFetchedBy: fetch ? fetch.by : null,
    lastFetchOp: fetch ? (fetch.refused ? `${fetch.op} (refused: ${fetch.refused})` : fetch.op) : null,
    lastAttributesRead: read ? isoSeconds(read.at) : null,
    lastAttributesReadBy: read ? read.by : null,
  };
}

/** Folds a state or reason name for comparison: "Pre-Active", "pre_active", "PreActive" are one. */
function fold(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]/g, '');
}

function enumByLooseName(enumName: string, text: string): number | undefined {
  const exact = enumValueByName(enumName, text);
  if (exact !== undefined) return exact;
  const values = (Enums as unknown as Record<string, Record<string, number>>)[enumName] ?? {};
  for (const [name, v] of Object.entries(values)) if (fold(name) === fold(text)) return v;
  return undefined;
}

function enumNames(enumName: string): string[] {
  return Object.keys((Enums as unknown as Record<string, Record<string, number>>)[enumName] ?? {});
}

/** `*` matches any run of characters; otherwise the whole value must match. Case-insensitive. */
function matcher(pattern: string): (v: string | null) => boolean {
  const re = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 'i');
  return (v) => v !== null && v.split(', ').some((one) => re.test(one));
}

export interface ListFilter {
  component?: string;
  name?: string;
  state?: string;
  owner?: string;
  /** Only keys not fetched for this long (ms); a key never fetched counts from its creation. */
  unusedForMs?: number;
  /** Only keys last fetched by this identity (* matches anything). */
  usedBy?: string;
  /** "Now" for unusedForMs (tests). */
  now?: Date;
}

/** Whole ms since the key was last fetched, or since its creation when never fetched. */
export function idleMs(r: Pick<KeyRow, 'lastFetched' | 'created'>, now: Date): number {
  return now.getTime() - new Date(r.lastFetched ?? r.created).getTime();
}

/** Every object of the keystore (every owner), oldest first, filtered. */
export async function listKeys(state: ServerState, f: ListFilter = {}): Promise<KeyRow[]> {
  let wantState: number | undefined;
  if (f.state !== undefined) {
    wantState = enumByLooseName('State', f.state);
    if (wantState === undefined) throw new KeyCliError(`unknown state ${JSON.stringify(f.state)}; one of ${enumNames('State').join(', ')}`);
  }
  const comp = f.component !== undefined ? matcher(f.component) : undefined;
  const name = f.name !== undefined ? matcher(f.name) : undefined;
  const owner = f.owner !== undefined ? matcher(f.owner) : undefined;
  const usedBy = f.usedBy !== undefined ? matcher(f.usedBy) : undefined;
  const now = f.now ?? new Date();
  const rows: KeyRow[] = [];
  for (const uid of await state.store.locate({ filters: [] })) {
    const stored = await state.store.get(uid);
    if (!stored) continue; // removed meanwhile
    const o = current(stored);
    if (wantState !== undefined && o.state !== wantState) continue;
    const r = row(o, await lastUse(state.store, uid), await lastAttributeRead(state.store, uid));
    if (comp && !comp(r['x-Component'])) continue;
    if (name && !name(r['x-Name'])) continue;
    if (owner && !owner(r.owner)) continue;
    if (usedBy && !usedBy(r.lastFetchedBy)) continue;
    if (f.unusedForMs !== undefined && idleMs(r, now) < f.unusedForMs) continue;
    rows.push(r);
  }
  return rows;
}

function table(rows: readonly KeyRow[]): string {
  const lines = [
    ['UID', 'TYPE', 'STATE', 'OWNER', 'CREATED', 'LAST FETCHED', 'BY', 'ATTRS READ', 'X-NAME', 'X-COMPONENT', 'X-IDENTIFIER'],
    ...rows.map((r) => [
      r.uid,
      r.objectType,
      r.state,
      r.owner,
      r.created,
      r.lastFetched ?? 'never',
      r.lastFetchedBy ?? '-',
      r.lastAttributesRead ?? 'never',
      r['x-Name'] ?? '-',
      r['x-Component'] ?? '-',
      r['x-Identifier'] ?? '-',
    ]),
  ];
  const widths = lines[0]!.map((_, c) => Math.max(...lines.map((l) => (l[c] ?? '').length)));
  return lines.map((l) => l.map((cell, c) => (c === l.length - 1 ? cell : cell.padEnd(widths[c] ?? 0))).join('  ')).join('\n') + '\n';
}

function summary(rows: readonly KeyRow[]): string {
  const byState = new Map<string, number>();
  for (const r of rows) byState.set(r.state, (byState.get(r.state) ?? 0) + 1);
  const parts = [...byState].map(([s, n]) => `${n} ${s}`);
  return `${rows.length} object${rows.length === 1 ? '' : 's'}${parts.length ? ` (${parts.join(', ')})` : ''}\n`;
}

export interface KeyDetails {
  uid: string;
  objectType: string;
  state: string;
  owner: string;
  created: string;
  updated: string;
  revision: number;
  /** Whether key material is stored (never shown). */
  hasMaterial: boolean;
  /** Last material fetch (Get) or cryptographic use; null if never (since tracking). */
  lastFetched: UseText | null;
  /** Last Get Attributes / Get Attribute List; null if never. */
  lastAttributesRead: UseText | null;
  /** When the owner identity last sent any request; null if not seen (since tracking). */
  ownerLastSeen: string | null;
  /** When `kmipd key retire` deactivated it, if it did. */
  retired: { at: string; by: string; reason: string } | null;
  attributes: { name: string; index: number; value: string }[];
}

export interface UseText {
  at: string;
  by: string;
  op: string;
  refused?: string;
}

function useText(u: LastUse | undefined): UseText | null {
  if (!u) return null;
  const t: UseText = { at: isoSeconds(u.at), by: u.by, op: u.op };
  if (u.refused !== undefined) t.refused = u.refused;
  return t;
}

/** The `retire.<uid>` row `kmipd key retire` writes when it deactivates a key. */
export async function retiredRecord(state: ServerState, uid: string): Promise<{ at: Date; by: string; reason: string } | undefined> {
  const v = await state.store.getMeta(RETIRE_PREFIX + uid);
  if (v === undefined) return undefined;
  try {
    const o = JSON.parse(v) as { at?: unknown; by?: unknown; reason?: unknown };
    const at = typeof o.at === 'string' ? new Date(o.at) : undefined;
    if (!at || Number.isNaN(at.getTime())) return undefined;
    return { at, by: typeof o.by === 'string' ? o.by : '?', reason: typeof o.reason === 'string' ? o.reason : '' };
  } catch {
    return undefined;
  }
}

export async function showKey(state: ServerState, uid: string): Promise<KeyDetails> {
  const stored = await state.store.get(uid);
  if (!stored) throw new KeyCliError(`no object with Unique Identifier ${JSON.stringify(uid)}`);
  const o = current(stored);
  return {
    uid: o.uid,
    objectType: enumValueName('ObjectType', o.objectType) ?? String(o.objectType),
    state: stateName(o.state),
    owner: o.owner,
    created: isoSeconds(createdAt(o)),
    updated: isoSeconds(new Date(o.updatedAt)),
    revision: o.revision,
    hasMaterial: o.material !== null,
    lastFetched: useText(await lastUse(state.store, uid)),
    lastAttributesRead: useText(await lastAttributeRead(state.store, uid)),
    ownerLastSeen: await lastSeen(state.store, o.owner).then((s) => (s ? isoSeconds(s.at) : null)),
    retired: await retiredRecord(state, uid).then((r) => (r ? { at: isoSeconds(r.at), by: r.by, reason: r.reason } : null)),
    attributes: o.attributes.map((a) => ({ name: a.name, index: a.index, value: valueText(a.value, a.name) })),
  };
}

function useLine(u: UseText | null): string {
  if (!u) return 'never (since usage tracking)';
  return `${u.at} by ${u.by} (${u.op}${u.refused ? `, refused: ${u.refused}` : ''})`;
}

function detailsText(d: KeyDetails): string {
  const width = Math.max(...d.attributes.map((a) => a.name.length + (a.index > 0 ? 4 : 0)), 12);
  return [
    `uid:       ${d.uid}`,
    `type:      ${d.objectType}`,
    `state:     ${d.state}`,
    `owner:     ${d.owner}`,
    `created:   ${d.created}`,
    `changed:   ${d.updated} (revision ${d.revision})`,
    `material:  ${d.hasMaterial ? 'stored, wrapped (never shown)' : 'none'}`,
    `fetched:   ${useLine(d.lastFetched)}`,
    `attrs read: ${useLine(d.lastAttributesRead)}`,
    `owner seen: ${d.ownerLastSeen ?? 'never (since usage tracking)'}`,
    ...(d.retired ? [`retired:   ${d.retired.at} by ${d.retired.by}${d.retired.reason ? ` (${d.retired.reason})` : ''}`] : []),
    'attributes:',
    ...d.attributes.map((a) => `  ${`${a.name}${a.index > 0 ? ` [${a.index}]` : ''}:`.padEnd(width + 2)} ${a.value}`),
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Lifecycle changes through the KMIP handlers

interface OpOutcome {
  ok: boolean;
  reason?: string;
  message?: string;
}

function child(s: StructureNode, tag: number): TtlvNode | undefined {
  return s.value.find((c) => c.tag === tag);
}

/** Runs one KMIP 2.1 request through the server's Executor as the CLI admin. */
async function runOperation(state: ServerState, operation: number, payload: TtlvNode[]): Promise<OpOutcome> {
  // The CLI is an admin of its own executor only; the server's policy is untouched. A password
  // the manifest may require of network clients does not apply in-process.
  const base = state.manifest.policy;
  const policy: AccessPolicy = { ...base, admins: [...base.admins, CLI_ADMIN_IDENTITY] };
  const { auth: _auth, ...manifest } = state.manifest;
  void _auth;
  const log = silentLogger();
  const executor = buildExecutor({ ...state, manifest }, log, 1024 * 1024, policy);
  const request = T.struct(Tag.RequestMessage, [
    T.struct(Tag.RequestHeader, [
      T.struct(Tag.ProtocolVersion, [T.int(Tag.ProtocolVersionMajor, 2), T.int(Tag.ProtocolVersionMinor, 1)]),
      T.int(Tag.BatchCount, 1),
    ]),
    T.struct(Tag.BatchItem, [T.enum(Tag.Operation, operation), T.struct(Tag.RequestPayload, payload)]),
  ]);
  const r = await executor.execute(encodeTtlv(request), { name: CLI_ADMIN_IDENTITY }, log);
  const tree = decodeTtlv(r.response);
  if (tree.type !== 'Structure') throw new Error('internal: the response is not a structure');
  const item = tree.value.find((c): c is StructureNode => c.tag === Tag.BatchItem && c.type === 'Structure');
  if (!item) throw new Error('internal: the response has no batch item');
  const status = child(item, Tag.ResultStatus);
  if (status?.type === 'Enumeration' && status.value === Enums.ResultStatus.Success) return { ok: true };
  const reason = child(item, Tag.ResultReason);
  const message = child(item, Tag.ResultMessage);
  const out: OpOutcome = { ok: false };
  if (reason?.type === 'Enumeration') out.reason = enumValueName('ResultReason', reason.value) ?? String(reason.value);
  if (message?.type === 'TextString') out.message = message.value;
  return out;
}

type LifecycleOp = 'activate' | 'revoke' | 'destroy';

interface LifecycleOptions {
  data: string;
  reason?: string;
  message?: string;
}

function revocationCode(reason: string | undefined): number {
  if (reason === undefined) return Enums.RevocationReasonCode.Unspecified;
  const v = enumByLooseName('RevocationReasonCode', reason);
  if (v === undefined) {
    throw new KeyCliError(`unknown revocation reason ${JSON.stringify(reason)}; one of ${enumNames('RevocationReasonCode').join(', ')}`);
  }
  return v;
}

export async function changeLifecycle(
  state: ServerState,
  op: LifecycleOp,
  uid: string,
  opts: { reason?: string; message?: string } = {},
): Promise<{ before: string; after: string; reason?: string }> {
  const uidNode = T.text(Tag.UniqueIdentifier, uid);
  let operation: number;
  let payload: TtlvNode[];
  let reasonName: string | undefined;
  if (op === 'activate') {
    operation = Enums.Operation.Activate;
    payload = [uidNode];
  } else if (op === 'destroy') {
    operation = Enums.Operation.Destroy;
    payload = [uidNode];
  } else {
    const code = revocationCode(opts.reason);
    reasonName = enumValueName('RevocationReasonCode', code);
    operation = Enums.Operation.Revoke;
    const rr: TtlvNode[] = [T.enum(Tag.RevocationReasonCode, code)];
    if (opts.message !== undefined) rr.push(T.text(Tag.RevocationMessage, opts.message));
    payload = [uidNode, T.struct(Tag.RevocationReason, rr)];
  }
  const before = await state.store.get(uid);
  if (!before) throw new KeyCliError(`no object with Unique Identifier ${JSON.stringify(uid)}`);
  // A write by the running server between our read and write fails the optimistic check
  // (General Failure, "retry"): the operation is simply run again on the new revision.
  let r: OpOutcome = { ok: false };
  for (let attempt = 0; attempt < 3; attempt++) {
    r = await runOperation(state, operation, payload);
    if (r.ok || r.reason !== 'GeneralFailure') break;
  }
  if (!r.ok) throw new KeyCliError(`${r.message ?? 'failed'} (${r.reason ?? 'unknown reason'})`);
  const after = await state.store.get(uid);
  const out: { before: string; after: string; reason?: string } = {
    before: stateName(current(before).state),
    after: after ? stateName(after.state) : '?',
  };
  if (reasonName !== undefined) out.reason = reasonName;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Commands

/** A commander argument parser for durations (`180d`, `12h`): milliseconds. */
export function durationMs(v: string): number {
  try {
    return parseDuration(v);
  } catch (e) {
    if (e instanceof DurationError) throw new InvalidArgumentError(e.message);
    throw e;
  }
}

function fail(cmd: Command, what: string, e: unknown): never {
  cmd.error(`kmipd key ${what}: ${(e as Error).message}`, { exitCode: 1, code: 'kmipd.key' });
}

export function register(program: Command): void {
  const key = program.command('key').description("the keystore's keys for the admin: inventory with vCenter's tags, lifecycle");

  key
    .command('list')
    .description('every key with uid, state, owner, created date and vCenter\'s tags x-Name, x-Component, x-Identifier')
    .option('--data <dir>', 'kmipd data folder', DEFAULT_DATA_DIR)
    .option('--json', 'JSON output')
    .option('--component <c>', 'only keys whose x-Component matches (e.g. "Virtual Machine", "ESXi Server"; * matches anything; case-insensitive)')
    .option('--name <n>', 'only keys whose x-Name matches (the VM name or host address; * matches anything; case-insensitive)')
    .option('--state <s>', `only keys in this state (${enumNames('State').join(', ')})`)
    .option('--owner <identity>', 'only keys owned by this client identity (* matches anything)')
    .option('--unused-for <duration>', 'only keys not fetched (Get or a cryptographic use) for this long, e.g. 180d; a key never fetched counts from its creation', durationMs)
    .option('--used-by <identity>', 'only keys last fetched by this client identity (* matches anything)')
    .action(async (opts: { data: string; json?: boolean; component?: string; name?: string; state?: string; owner?: string; unusedFor?: number; usedBy?: string }, cmd: Command) => {
      let rows: KeyRow[];
      try {
        const f: ListFilter = {};
        if (opts.component !== undefined) f.component = opts.component;
        if (opts.name !== undefined) f.name = opts.name;
        if (opts.state !== undefined) f.state = opts.state;
        if (opts.owner !== undefined) f.owner = opts.owner;
        if (opts.unusedFor !== undefined) f.unusedForMs = opts.unusedFor;
        if (opts.usedBy !== undefined) f.usedBy = opts.usedBy;
        rows = await withData(opts.data, (s) => listKeys(s, f));
      } catch (e) {
        fail(cmd, 'list', e);
      }
      const out = writer(cmd);
      if (opts.json) out(JSON.stringify(rows, null, 2) + '\n');
      else out(table(rows) + summary(rows));
    });

  key
    .command('show')
    .description("one key's attributes (never its material)")
    .argument('<uid>', 'the Unique Identifier')
    .option('--data <dir>', 'kmipd data folder', DEFAULT_DATA_DIR)
    .option('--json', 'JSON output')
    .action(async (uid: string, opts: { data: string; json?: boolean }, cmd: Command) => {
      let d: KeyDetails;
      try {
        d = await withData(opts.data, (s) => showKey(s, uid));
      } catch (e) {
        fail(cmd, 'show', e);
      }
      writer(cmd)(opts.json ? JSON.stringify(d, null, 2) + '\n' : detailsText(d));
    });

  const lifecycle = (op: LifecycleOp, description: string, reasonHelp: string): void => {
    const c = key
      .command(op)
      .description(description)
      .argument('<uid>', 'the Unique Identifier')
      .option('--data <dir>', 'kmipd data folder', DEFAULT_DATA_DIR)
      .option('--reason <r>', reasonHelp);
    if (op === 'revoke') c.option('--message <text>', 'a Revocation Message recorded with the reason');
    c.action(async (uid: string, opts: LifecycleOptions, cmd: Command) => {
      let r: Awaited<ReturnType<typeof changeLifecycle>>;
      try {
        const o: { reason?: string; message?: string } = {};
        if (op === 'revoke' && opts.reason !== undefined) o.reason = opts.reason;
        if (opts.message !== undefined) o.message = opts.message;
        r = await withData(opts.data, (s) => changeLifecycle(s, op, uid, o));
      } catch (e) {
        fail(cmd, op, e);
      }
      const lines = [`${uid}: ${r.before} -> ${r.after}`];
      if (r.reason !== undefined) lines.push(`  revocation reason: ${r.reason}`);
      else if (opts.reason !== undefined) lines.push(`  reason: ${opts.reason}`);
      if (op === 'destroy') lines.push('  the key material is erased; its attributes remain');
      if (op === 'revoke') lines.push('  clients (vCenter) can no longer use it for new encryption; a VM whose key is not Active is reported locked');
      writer(cmd)(lines.join('\n') + '\n');
    });
  };
  lifecycle('activate', 'activate a Pre-Active key', 'a note shown with the result');
  lifecycle(
    'revoke',
    'revoke a key: Deactivated, or Compromised for KeyCompromise / CACompromise',
    `the KMIP Revocation Reason Code: ${enumNames('RevocationReasonCode').join(', ')} (default Unspecified)`,
  );
  lifecycle('destroy', 'destroy a key that is not Active (revoke it first): its material is erased', 'a note shown with the result');
}
