/**
 * `kmipd cluster status [--data DIR] [--store URL] [--json]`: the nodes serving a keystore, from
 * their heartbeat rows (src/server/heartbeat.ts): id, host, kmipd version, schema, last
 * heartbeat, listen address, keystore and master key (HSM) state, and the server certificate
 * each presents.
 *
 * A node is stale when its last heartbeat is older than 3 of its intervals (judged by the
 * database's clock on PostgreSQL). vCenter trusts each KMS entry of a key provider by the
 * certificate the admin approved for it, so the command checks that every live node presents the
 * same server certificate. Exit status 1 when a live node is unhealthy or the live nodes present
 * different certificates; stale nodes are reported, not counted as failures.
 */
import type { Command } from 'commander';
import { defaultDataDir } from '../config/index.js';
import type { NodeRow } from '../keystore/nodes.js';
import { DEFAULT_HEARTBEAT_MS, STALE_INTERVALS, type NodeInfo } from '../server/heartbeat.js';
import { openSchemaTool } from './migrate.js';
import { writer } from './output.js';

export interface NodeStatus {
  nodeId: string;
  /** serving: heartbeat fresh; stale: no heartbeat for more than 3 intervals. */
  status: 'serving' | 'stale' | 'stopped';
  healthy: boolean;
  problems: string[];
  lastHeartbeat: string;
  /** Seconds since the last heartbeat. */
  ageSeconds: number;
  info?: NodeInfo;
}

export interface ClusterStatus {
  store: string;
  backend: string;
  time: string;
  nodes: NodeStatus[];
  /** Fingerprints presented by live nodes (one entry per distinct certificate). */
  certificates: { sha256: string; nodes: string[]; notAfter?: string }[];
  sameCertificate: boolean;
  warnings: string[];
  ok: boolean;
}

function parseInfo(raw: string): NodeInfo | undefined {
  try {
    const v = JSON.parse(raw) as unknown;
    return typeof v === 'object' && v !== null ? (v as NodeInfo) : undefined;
  } catch {
    return undefined;
  }
}

export const FINGERPRINT_WARNING =
  'the live nodes present different server certificates. vCenter trusts each KMS entry of a key provider by the certificate ' +
  'the admin approved for it ("Make vCenter Trust KMS"): a node whose certificate differs from the one approved is refused ' +
  'until it is approved again. Give every node the same server certificate (`kmipd node export --with-server-cert`, then ' +
  'join with it), or approve each node\'s certificate in vCenter';

/** Judges the node rows (pure: `now` is the store's clock). */
export function clusterStatus(store: string, backend: string, now: number, rows: readonly NodeRow[]): ClusterStatus {
  const nodes: NodeStatus[] = rows.map((r) => {
    const info = parseInfo(r.info);
    const interval = info !== undefined && Number.isFinite(info.intervalMs) && info.intervalMs > 0 ? info.intervalMs : DEFAULT_HEARTBEAT_MS;
    const age = now - r.heartbeatAt;
    const status: NodeStatus['status'] = r.state === 'stopped' ? 'stopped' : age > STALE_INTERVALS * interval ? 'stale' : 'serving';
    const problems: string[] = [];
    if (info === undefined) problems.push('unreadable heartbeat');
    else {
      if (!info.keystore?.ok) problems.push(`keystore: ${info.keystore?.error ?? 'not ok'}`);
      if (!info.master?.ok) problems.push(`master key (${info.master?.provider ?? '?'}): ${info.master?.error ?? 'not ok'}`);
      const c = info.certificate;
      if (c === undefined || 'error' in c) problems.push(`server certificate: ${c && 'error' in c ? c.error : 'unknown'}`);
      else if (new Date(c.notAfter).getTime() <= now) problems.push(`server certificate expired on ${c.notAfter}`);
    }
    const n: NodeStatus = {
      nodeId: r.nodeId,
      status,
      healthy: problems.length === 0,
      problems,
      lastHeartbeat: new Date(r.heartbeatAt).toISOString(),
      ageSeconds: Math.max(0, Math.round(age / 100) / 10),
    };
    if (info !== undefined) n.info = info;
    return n;
  });
  const live = nodes.filter((n) => n.status === 'serving');
  const byCert = new Map<string, { sha256: string; nodes: string[]; notAfter?: string }>();
  for (const n of live) {
    const c = n.info?.certificate;
    if (c === undefined || 'error' in c) continue;
    const e = byCert.get(c.sha256) ?? { sha256: c.sha256, nodes: [], notAfter: c.notAfter };
    e.nodes.push(n.nodeId);
    byCert.set(c.sha256, e);
  }
  const certificates = [...byCert.values()];
  const sameCertificate = certificates.length <= 1;
  const warnings: string[] = [];
  if (nodes.length === 0) warnings.push('no node has written a heartbeat to this keystore (no node serving, or all older than this kmipd)');
  for (const n of nodes.filter((x) => x.status === 'stale')) {
    warnings.push(`node ${n.nodeId}${n.info ? ` (${n.info.host})` : ''} is stale: no heartbeat for ${n.ageSeconds} s (it stopped without a clean shutdown, or cannot reach the keystore)`);
  }
  for (const n of live.filter((x) => !x.healthy)) warnings.push(`node ${n.nodeId}${n.info ? ` (${n.info.host})` : ''} is unhealthy: ${n.problems.join('; ')}`);
  if (!sameCertificate) warnings.push(FINGERPRINT_WARNING);
  const versions = new Set(live.map((n) => n.info?.version).filter((v) => v !== undefined));
  if (versions.size > 1) warnings.push(`the live nodes run different kmipd versions (${[...versions].join(', ')}): a rolling upgrade in progress?`);
  return {
    store,
    backend,
    time: new Date(now).toISOString(),
    nodes,
    certificates,
    sameCertificate,
    warnings,
    ok: live.every((n) => n.healthy) && sameCertificate,
  };
}

function check(c: { ok: boolean; error?: string } | undefined): string {
  if (c === undefined) return '?';
  return c.ok ? 'ok' : `FAIL (${c.error ?? 'not ok'})`;
}

export function clusterText(s: ClusterStatus): string {
  let out = `keystore ${s.store}: ${s.nodes.length} node${s.nodes.length === 1 ? '' : 's'} (${s.time})\n`;
  for (const n of s.nodes) {
    const i = n.info;
    out += `\n  ${n.nodeId}  ${n.status.toUpperCase()}${n.status === 'serving' && !n.healthy ? ', UNHEALTHY' : ''}\n`;
    out += `    last heartbeat  ${n.lastHeartbeat} (${n.ageSeconds} s ago${i ? `, every ${i.intervalMs / 1000} s` : ''})\n`;
    if (!i) continue;
    out += `    host            ${i.host}, pid ${i.pid}, kmipd ${i.version}, started ${i.startedAt}\n`;
    out += `    listening       ${i.listen.address}:${i.listen.port}\n`;
    out += `    schema          knows ${i.schema.known}, keystore at ${i.schema.current}\n`;
    out += `    keystore        ${i.keystore.backend}: ${check(i.keystore)}\n`;
    out += `    master key      ${i.master.provider}:${i.master.keyId}: ${check(i.master)}\n`;
    const c = i.certificate;
    out += 'error' in c ? `    certificate     ${c.error}\n` : `    certificate     SHA-256 ${c.sha256}, expires ${c.notAfter}\n`;
  }
  out += '\n';
  if (s.certificates.length === 1) out += `every live node presents the same server certificate (SHA-256 ${s.certificates[0]!.sha256})\n`;
  else if (s.certificates.length > 1) {
    out += 'server certificates presented by the live nodes:\n';
    for (const c of s.certificates) out += `  ${c.sha256}: ${c.nodes.join(', ')}\n`;
  }
  for (const w of s.warnings) out += `WARNING: ${w}\n`;
  return out;
}

export function register(program: Command): void {
  const cluster = program.command('cluster').description('the nodes sharing a keystore');
  cluster
    .command('status')
    .description('the nodes serving this keystore (from their heartbeats): versions, health, certificates; exit 1 when a live node is unhealthy or their certificates differ')
    .option('--data <dir>', 'kmipd data directory (default ./kmipd-data, or KMIPD_DATA)')
    .option('--store <store>', 'the keystore, when not the one in DIR/kmipd.json: postgres://USER@HOST:PORT/DB[?schema=...] or sqlite:FILE')
    .option('--json', 'JSON output')
    .action(async (opts: { data?: string; store?: string; json?: boolean }, cmd: Command) => {
      const dir = opts.data ?? defaultDataDir();
      let s: ClusterStatus;
      try {
        const tool = await openSchemaTool(dir, { readonly: true, ...(opts.store !== undefined ? { store: opts.store } : {}) });
        try {
          const { now, nodes } = await tool.listNodes();
          s = clusterStatus(tool.display, tool.backend, now, nodes);
        } finally {
          await tool.close();
        }
      } catch (e) {
        cmd.error(`kmipd cluster status: ${(e as Error).message}`, { exitCode: 1, code: 'kmipd.cluster' });
      }
      writer(cmd)(opts.json ? JSON.stringify(s, null, 2) + '\n' : clusterText(s));
      if (!s.ok) process.exitCode = 1;
    });
}
