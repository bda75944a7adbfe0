/**
 * Stale keys and their retirement.
 *
 *   kmipd key stale  [--unused-for 180d] [--in-use FILE]            keys nobody fetched for that long
 *   kmipd key retire [--unused-for 180d] [--in-use FILE] [--grace 30d] [--yes] [UID...]
 *
 * Retirement has two steps, both through the KMIP handlers as `kmipd key revoke` / `destroy`
 * (the state machine decides, the executor writes the KMIP audit record; this module adds the
 * admin record):
 *
 * 1. Deactivate: stale Pre-Active / Active keys (or the UIDs given) are revoked with reason
 *    Cessation of Operation (→ Deactivated) and a `retire.<uid>` meta row records when.
 * 2. Destroy: a key retired by step 1 (or given by UID) that has been Deactivated for at least the
 *    grace period, and was not requested since (no fetch, cryptographic use, refused use or
 *    attribute read after its deactivation), is destroyed (its material erased).
 *
 * Keys named in the in-use list (the key IDs vCenter still references) are never touched. One
 * run never deactivates and destroys the same key: step 2 runs first, on keys already
 * Deactivated. Without --yes nothing changes: the plan is printed.
 */
import { readFileSync } from 'node:fs';
import { adminIdentity, auditAdmin } from '../audit/admin.js';
import { formatDuration } from '../config/duration.js';
import { type KeyRow, changeLifecycle, idleMs, isoSeconds, listKeys, retiredRecord } from '../cli/key.js';
import type { StoredObject } from '../keystore/types.js';
import type { ServerState } from '../server/server.js';
import { Enums } from '../spec/index.js';
import { RETIRE_PREFIX } from './meta-keys.js';
import { latest, lastAttributeRead, lastUse } from './usage.js';

const DAY = 86_400_000;
const REVOCABLE = new Set(['PreActive', 'Active']);
const plain = (state: string): string => state.replace(/[^A-Za-z]/g, '');

/** The revocation reason `key stale --revoke` and `key retire` use unless told otherwise. */
export const STALE_REVOCATION_REASON: keyof typeof Enums.RevocationReasonCode = 'CessationOfOperation';

// ---- the in-use list -------------------------------------------------------------------------------

/** Splits one CSV line (RFC 4180 quoting, as PowerShell's Export-Csv writes it). */
function csvFields(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out.map((f) => f.trim());
}

const KEY_ID_COLUMN = /^key_?id$/i;

/**
 * The key IDs of an in-use list: one ID per line (blank lines and `#` comments ignored), or a CSV
 * whose header has a column named KeyId / KeyID / key_id (any case), as `Export-Csv` writes it
 * (a `#TYPE ...` first line of Windows PowerShell is a comment; empty cells are skipped). UTF-8
 * with or without BOM, or UTF-16 LE with BOM (Windows PowerShell's default for `Out-File`).
 */
export function parseInUse(data: Buffer | string): Set<string> {
  let text: string;
  if (typeof data === 'string') text = data;
  else if (data[0] === 0xff && data[1] === 0xfe) text = data.subarray(2).toString('utf16le');
  else text = data.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  const ids = new Set<string>();
  const header = lines[0];
  if (header === undefined) return ids;
  const columns = csvFields(header);
  const col = columns.findIndex((c) => KEY_ID_COLUMN.test(c));
  if (col >= 0) {
    for (const line of lines.slice(1)) {
      const v = csvFields(line)[col];
      if (v) ids.add(v);
    }
    return ids;
  }
  if (columns.length > 1) {
    throw new Error(`the in-use list looks like a CSV (header ${JSON.stringify(header)}) but has no KeyId column; name the key ID column KeyId`);
  }
  for (const line of lines) ids.add(line.replace(/^"(.*)"$/, '$1'));
  return ids;
}

export function readInUseFile(path: string): Set<string> {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (e) {
    throw new Error(`cannot read the in-use list ${path}: ${(e as Error).message}`);
  }
  return parseInUse(data);
}

// ---- stale keys ------------------------------------------------------------------------------------

export interface StaleKey extends KeyRow {
  /** Same as lastFetched / lastFetchedBy (the names `key stale --json` has always printed). */
  lastUsed: string | null;
  lastUsedBy: string | null;
  /** Whole days since the last fetch, or since creation when never fetched. */
  idleDays: number;
}

export interface StaleResult {
  keys: StaleKey[];
  /** Stale keys left out because the in-use list names them. */
  excluded: StaleKey[];
}

/**
 * Keys (Pre-Active or Active: those still usable) whose last fetch, or creation when never
 * fetched, is at least `unusedForMs` before `now`; those named in `inUse` are set apart.
 */
export async function findStale(state: ServerState, unusedForMs: number, inUse: ReadonlySet<string> = new Set(), now: Date = new Date()): Promise<StaleResult> {
  const out: StaleResult = { keys: [], excluded: [] };
  for (const r of await listKeys(state, { unusedForMs, now })) {
    if (!REVOCABLE.has(plain(r.state))) continue;
    const k: StaleKey = { ...r, lastUsed: r.lastFetched, lastUsedBy: r.lastFetchedBy, idleDays: Math.floor(idleMs(r, now) / DAY) };
    (inUse.has(r.uid) ? out.excluded : out.keys).push(k);
  }
  return out;
}

/** The stale keys not in `inUse` (see findStale). */
export async function staleKeys(state: ServerState, unusedForMs: number, now: Date = new Date(), inUse: ReadonlySet<string> = new Set()): Promise<StaleKey[]> {
  return (await findStale(state, unusedForMs, inUse, now)).keys;
}

export interface RevokeOutcome {
  uid: string;
  ok: boolean;
  before?: string;
  after?: string;
  error?: string;
}

/** Revokes each key (the KMIP Revoke handler decides, as for `kmipd key revoke`). */
export async function revokeKeys(state: ServerState, uids: readonly string[], reason: string, message: string): Promise<RevokeOutcome[]> {
  const out: RevokeOutcome[] = [];
  for (const uid of uids) {
    try {
      const r = await changeLifecycle(state, 'revoke', uid, { reason, message });
      out.push({ uid, ok: true, before: r.before, after: r.after });
    } catch (e) {
      out.push({ uid, ok: false, error: (e as Error).message });
    }
  }
  return out;
}

// ---- retire ----------------------------------------------------------------------------------------

export interface RetireOptions {
  unusedForMs: number;
  graceMs: number;
  inUse?: ReadonlySet<string>;
  /** Only these keys instead of the stale selection. */
  uids?: readonly string[];
  now?: Date;
}

export interface RetireCandidate {
  uid: string;
  state: string;
  owner: string;
  'x-Name': string | null;
  'x-Component': string | null;
  lastFetched: string | null;
  lastFetchedBy: string | null;
  /** Deactivated keys: since when (the retire record, else the Deactivation Date). */
  deactivatedAt?: string;
  /** The last request (fetch, refused use or attribute read) after the deactivation. */
  requestedAt?: string;
  requestedBy?: string;
  /** Why the key is where it is in the plan. */
  note: string;
}

export interface RetirePlan {
  now: string;
  unusedFor: number;
  grace: number;
  /** Pre-Active / Active keys to deactivate. */
  deactivate: RetireCandidate[];
  /** Deactivated past the grace period and not requested since: to destroy. */
  destroy: RetireCandidate[];
  /** Deactivated but requested since the deactivation: kept. */
  requested: RetireCandidate[];
  /** Deactivated, grace period not over yet. */
  waiting: RetireCandidate[];
  /** Left alone because the in-use list names them. */
  inUse: RetireCandidate[];
  /** UIDs given that cannot be retired (unknown, destroyed, compromised...). */
  skipped: RetireCandidate[];
  /** Whether the keys were named (UIDs) instead of selected as stale. */
  named: boolean;
}

function candidate(r: KeyRow, note: string): RetireCandidate {
  return {
    uid: r.uid,
    state: r.state,
    owner: r.owner,
    'x-Name': r['x-Name'],
    'x-Component': r['x-Component'],
    lastFetched: r.lastFetched,
    lastFetchedBy: r.lastFetchedBy,
    note,
  };
}

function deactivationDate(o: StoredObject | undefined): Date | undefined {
  const a = o?.attributes.find((x) => x.name === 'Deactivation Date');
  return a?.value.type === 'DateTime' ? new Date(Number(a.value.value) * 1000) : undefined;
}

/** What a retire run would do now; reads only. */
export async function planRetire(state: ServerState, opts: RetireOptions): Promise<RetirePlan> {
  const now = opts.now ?? new Date();
  const inUse = opts.inUse ?? new Set<string>();
  const plan: RetirePlan = { now: isoSeconds(now), unusedFor: opts.unusedForMs, grace: opts.graceMs, deactivate: [], destroy: [], requested: [], waiting: [], inUse: [], skipped: [], named: opts.uids !== undefined };
  const all = await listKeys(state, { now });
  const byUid = new Map(all.map((r) => [r.uid, r]));
  const given = opts.uids ? new Set(opts.uids) : undefined;
  if (given) {
    for (const uid of given) if (!byUid.has(uid)) plan.skipped.push({ uid, state: '-', owner: '-', 'x-Name': null, 'x-Component': null, lastFetched: null, lastFetchedBy: null, note: 'no such key' });
  }
  for (const r of all) {
    if (given && !given.has(r.uid)) continue;
    const st = plain(r.state);
    if (st === 'Deactivated') {
      const retired = await retiredRecord(state, r.uid);
      if (!given && !retired) continue; // deactivated by someone else: not ours unless named
      if (inUse.has(r.uid)) {
        plan.inUse.push(candidate(r, 'in the in-use list'));
        continue;
      }
      const since = retired?.at ?? deactivationDate(await state.store.get(r.uid)) ?? new Date(r.created);
      const c = candidate(r, '');
      c.deactivatedAt = isoSeconds(since);
      const asked = latest(await lastUse(state.store, r.uid), await lastAttributeRead(state.store, r.uid));
      if (asked && asked.at.getTime() >= since.getTime()) {
        c.requestedAt = isoSeconds(asked.at);
        c.requestedBy = asked.by;
        c.note = `requested since its deactivation (${asked.op}${asked.refused ? ', refused' : ''} by ${asked.by}): kept`;
        plan.requested.push(c);
      } else if (now.getTime() - since.getTime() < opts.graceMs) {
        const left = Math.ceil((opts.graceMs - (now.getTime() - since.getTime())) / DAY);
        c.note = `grace period: ${left} day(s) left`;
        plan.waiting.push(c);
      } else {
        c.note = `Deactivated for ${Math.floor((now.getTime() - since.getTime()) / DAY)} day(s), not requested since`;
        plan.destroy.push(c);
      }
      continue;
    }
    if (REVOCABLE.has(st)) {
      const idle = idleMs(r, now);
      if (!given && idle < opts.unusedForMs) continue;
      const note = `${r.lastFetched ? 'not fetched' : 'never fetched, created'} ${Math.floor(idle / DAY)} day(s) ago`;
      if (inUse.has(r.uid)) plan.inUse.push(candidate(r, 'in the in-use list'));
      else plan.deactivate.push(candidate(r, note));
      continue;
    }
    if (given) plan.skipped.push(candidate(r, `${r.state}: neither usable nor Deactivated`));
  }
  return plan;
}

export interface RetireAction {
  uid: string;
  action: 'deactivate' | 'destroy';
  ok: boolean;
  before?: string;
  after?: string;
  error?: string;
}

/**
 * Carries out a plan: destroys first, then deactivates. Each action runs through the executor
 * (KMIP audit record) and gets an admin audit record `key retire` naming the key. Returns every
 * action, failed ones included.
 */
export async function applyRetire(state: ServerState, plan: RetirePlan, opts: { now?: Date; identity?: string } = {}): Promise<RetireAction[]> {
  const now = opts.now ?? new Date();
  const who = opts.identity ?? adminIdentity();
  const out: RetireAction[] = [];
  const record = async (a: RetireAction, reason: string): Promise<void> => {
    out.push(a);
    await auditAdmin(state.dir, { command: 'key retire', object: a.uid, result: a.ok ? 'Success' : 'Failed', reason: a.ok ? reason : `${reason}: ${a.error ?? 'failed'}` }, { state, identity: who });
  };
  for (const c of plan.destroy) {
    const a: RetireAction = { uid: c.uid, action: 'destroy', ok: false };
    try {
      const r = await changeLifecycle(state, 'destroy', c.uid);
      Object.assign(a, { ok: true, before: r.before, after: r.after });
    } catch (e) {
      a.error = (e as Error).message;
    }
    await record(a, `destroy: Deactivated since ${c.deactivatedAt ?? '?'}, grace ${formatDuration(plan.grace)} over, not requested since`);
  }
  for (const c of plan.deactivate) {
    const reason = plan.named ? `named on the command line, ${c.note}` : `unused for ${formatDuration(plan.unusedFor)}: ${c.note}`;
    const a: RetireAction = { uid: c.uid, action: 'deactivate', ok: false };
    try {
      const r = await changeLifecycle(state, 'revoke', c.uid, { reason: STALE_REVOCATION_REASON, message: `retired by kmipd key retire (${reason})` });
      Object.assign(a, { ok: true, before: r.before, after: r.after });
    } catch (e) {
      a.error = (e as Error).message;
    }
    if (a.ok) {
      try {
        await state.store.setMeta(RETIRE_PREFIX + c.uid, JSON.stringify({ at: now.toISOString(), by: who, reason }));
      } catch (e) {
        // Deactivated, but a later run will not destroy it unless its UID is given.
        a.ok = false;
        a.error = `deactivated, but the retire time could not be recorded: ${(e as Error).message}`;
      }
    }
    await record(a, `deactivate (${STALE_REVOCATION_REASON}): ${reason}`);
  }
  return out;
}
