/**
 * What both keystores offer beyond the KeyStore interface for running several nodes: the schema
 * report (readiness, `kmipd migrate`) and the node heartbeat table (`kmipd cluster status`,
 * src/server/heartbeat.ts). The table `nodes` is created by migration 2 (migrations.ts).
 */
import type { SchemaReport } from './migrations.js';
import type { KeyStore } from './types.js';

export interface NodeRow {
  nodeId: string;
  state: 'serving' | 'stopped';
  /** ms since the epoch (the database's clock on PostgreSQL). */
  heartbeatAt: number;
  /** JSON written by the node (src/server/heartbeat.ts). */
  info: string;
}

export interface NodeRegistry {
  /** Inserts or replaces the row of `nodeId`, stamping it with the store's current time. */
  putNode(nodeId: string, state: NodeRow['state'], info: string): Promise<void>;
  removeNode(nodeId: string): Promise<void>;
  /** Every row, and the store's current time (to judge staleness without trusting local clocks). */
  listNodes(): Promise<{ now: number; nodes: NodeRow[] }>;
}

export interface SchemaAware {
  /** The schema as this build sees it (reads only). */
  schemaReport(): Promise<SchemaReport>;
}

export function isNodeRegistry(s: KeyStore): s is KeyStore & NodeRegistry {
  const r = s as Partial<NodeRegistry>;
  return typeof r.putNode === 'function' && typeof r.listNodes === 'function' && typeof r.removeNode === 'function';
}

export function isSchemaAware(s: KeyStore): s is KeyStore & SchemaAware {
  return typeof (s as Partial<SchemaAware>).schemaReport === 'function';
}
