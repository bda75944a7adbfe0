/**
 * PKCS#11 master key on SoftHSM2: seal+open of a 32-byte key's material per second in
 *  - root-key mode: a RootKeyring whose root key the HSM unwrapped at start-up; every seal
 *    and open is AES-256-GCM in process memory, the HSM is not involved;
 *  - direct mode: every seal and open is a C_Encrypt/C_Decrypt (AES-GCM) inside the HSM.
 *
 * The run.ts harness measures synchronous functions; the direct mode is asynchronous (the
 * PKCS#11 calls run on libuv's thread pool), so this module times its asynchronous cases
 * itself, with the same warm-up and duration, and prints them after its synchronous rows
 * (on stderr under --json, so the JSON stays valid). The root-key mode is measured both ways.
 *
 * Skipped, with a message, when SoftHSM2 or pkcs11-tool is not installed.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RootKeyring } from '../../src/crypto/envelope.js';
import { openPkcs11DirectSealer, openPkcs11MasterKey } from '../../src/crypto/pkcs11.js';
import { openSqliteStore } from '../../src/keystore/sqlite.js';
import type { WrappedMaterial } from '../../src/keystore/types.js';
import { softhsm } from '../helpers/requirements.js';
import { createSoftHsm, type SoftHsmToken } from '../helpers/softhsm.js';
import type { BenchContext, BenchModule } from './run.js';

const MATERIAL_BYTES = 32;
const IN_FLIGHT = 16;

function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Runs `fn` sequentially, `parallel` at a time, for `ms`; returns completed calls per second. */
async function rate(fn: () => Promise<unknown>, ms: number, parallel = 1): Promise<number> {
  let done = 0;
  const start = now();
  const worker = async () => {
    while (now() - start < ms) {
      await fn();
      done++;
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return (done / (now() - start)) * 1000;
}

function fmt(n: number): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: 0 });
}

const hsm: BenchModule = {
  name: 'hsm',
  async run(ctx: BenchContext) {
    const say = process.argv.includes('--json') ? console.error : console.log;
    const req = softhsm();
    if (!req.ok) {
      say(`hsm: skipped, ${req.why}`);
      return;
    }
    const cases = {
      ringSync: 'root-key mode: seal+open in memory (sync)',
      ringAsync: 'root-key mode: seal+open via async sealer',
      direct: 'direct mode: seal+open in the HSM',
      directParallel: `direct mode: seal+open in the HSM, ${IN_FLIGHT} in flight`,
    };
    if (!Object.values(cases).some((c) => ctx.wants(c))) return;

    let token: SoftHsmToken;
    try {
      token = await createSoftHsm({ label: 'kmipd-bench' });
    } catch (e) {
      say(`hsm: skipped, cannot create a SoftHSM token: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'kmipd-bench-hsm-'));
    const base = { module: token.module, token: token.token, pin: token.pin, keyLabel: 'bench-master', create: true };
    const material = randomBytes(MATERIAL_BYTES);
    const lines: string[] = [];
    try {
      // Root-key mode: the HSM is used at start-up only.
      let t0 = now();
      const master = await openPkcs11MasterKey(base);
      const store = await openSqliteStore(join(dir, 'keys.db'));
      const ring = await RootKeyring.open(store, master);
      const startup = now() - t0;
      const ringOnce = (): Buffer => ring.open('uid-1', ring.seal('uid-1', material));
      if (!ringOnce().equals(material)) throw new Error('root-key mode round trip failed');
      const rowSync = ctx.measure(cases.ringSync, ringOnce, { bytesPerOp: MATERIAL_BYTES, notes: 'AES-256-GCM, root key unwrapped by the HSM at start-up' });
      let ringAsync: number | undefined;
      if (ctx.wants(cases.ringAsync)) {
        // What the server's MaterialSealer over a RootKeyring does: the same work behind a promise.
        const sealer = {
          seal: async (uid: string, pt: Buffer): Promise<WrappedMaterial> => ring.seal(uid, pt),
          open: async (uid: string, w: WrappedMaterial): Promise<Buffer> => ring.open(uid, w),
        };
        const once = async () => sealer.open('uid-1', await sealer.seal('uid-1', material));
        await rate(once, ctx.warmupMs);
        ringAsync = await rate(once, ctx.durationMs);
      }

      // Direct mode: every seal and open is a PKCS#11 call.
      t0 = now();
      const direct = await openPkcs11DirectSealer(base);
      const directStartup = now() - t0;
      const directOnce = async () => direct.open('uid-1', await direct.seal('uid-1', material));
      if (!(await directOnce()).equals(material)) throw new Error('direct mode round trip failed');
      let directSeq: number | undefined;
      let directPar: number | undefined;
      if (ctx.wants(cases.direct)) {
        await rate(directOnce, ctx.warmupMs);
        directSeq = await rate(directOnce, ctx.durationMs);
      }
      if (ctx.wants(cases.directParallel)) {
        await rate(directOnce, ctx.warmupMs, IN_FLIGHT);
        directPar = await rate(directOnce, ctx.durationMs, IN_FLIGHT);
      }

      lines.push(`hsm: SoftHSM2 token "${token.token}", ${MATERIAL_BYTES}-byte material, one seal + one open per operation`);
      lines.push(`hsm:   start-up, root-key mode (open master key + self-test, unwrap/create root key): ${startup.toFixed(1)} ms`);
      lines.push(`hsm:   start-up, direct mode (open key + self-test): ${directStartup.toFixed(1)} ms`);
      if (rowSync) lines.push(`hsm:   ${cases.ringSync}: ${fmt(rowSync.opsPerSec)} ops/s (in the table)`);
      if (ringAsync !== undefined) lines.push(`hsm:   ${cases.ringAsync}: ${fmt(ringAsync)} ops/s`);
      if (directSeq !== undefined) lines.push(`hsm:   ${cases.direct}: ${fmt(directSeq)} ops/s`);
      if (directPar !== undefined) lines.push(`hsm:   ${cases.directParallel}: ${fmt(directPar)} ops/s (calls are serialised per module)`);
      const ref = ringAsync ?? rowSync?.opsPerSec;
      if (ref !== undefined && directSeq !== undefined) {
        lines.push(`hsm:   root-key mode is ${(ref / directSeq).toFixed(1)}× direct mode`);
      }
      say(lines.join('\n') + '\n');

      await direct.close();
      ring.close();
      await store.close();
      await master.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
      token.cleanup();
    }
  },
};

export default hsm;
