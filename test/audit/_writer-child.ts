/**
 * A second process appending to a data folder's audit log: argv DATA_DIR COUNT IDENTITY
 * (durability.test.ts). Without arguments (`tap test/audit/` runs every file) it does nothing.
 */
import { AuditLog } from '../../src/audit/log.js';

const [dataDir, count, identity] = process.argv.slice(2);
if (!dataDir || !count || !identity) process.exit(0);
const log = new AuditLog({ dataDir, anchorIntervalMs: 0 });
const n = Number(count);
const all: Promise<void>[] = [];
for (let i = 0; i < n; i++) {
  all.push(log.record([{ kind: 'admin', identity, operation: 'child write', object: String(i), result: 'Success' }]));
  if (i % 7 === 0) await new Promise((r) => setImmediate(r));
}
await Promise.all(all);
await log.close();
process.stdout.write(`wrote ${n}\n`);
