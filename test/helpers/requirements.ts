/**
 * Tests that need something outside npm (a Debian package, the OASIS corpus in ../shared) ask
 * here first. Outside CI a missing part skips the test with a message naming what to install;
 * under CI=true it fails the test, because CI installs everything.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const IN_CI = process.env.CI === 'true' || process.env.CI === '1';

export interface Requirement {
  ok: boolean;
  /** What is missing and how to get it, when !ok. */
  why: string;
}

interface TapLike {
  fail(msg: string): unknown;
  skip?: unknown;
  comment(msg: string): unknown;
  end(): unknown;
}

/**
 * Returns true when the requirement holds. Otherwise fails (CI) or records a skip with the
 * reason (elsewhere) and returns false: the caller returns at once.
 */
export function need(t: TapLike & { plan?: unknown }, req: Requirement): boolean {
  if (req.ok) return true;
  if (IN_CI) {
    t.fail(`missing in CI: ${req.why}`);
  } else {
    t.comment(`SKIP (not installed here): ${req.why}`);
  }
  t.end();
  return false;
}

/** The OASIS/KMIP test-vector folder: $KMIP_VECTORS, or ../shared/kmip-vectors beside the checkout. */
export function vectorsDir(): Requirement & { dir: string } {
  const dir = process.env.KMIP_VECTORS ?? resolve(REPO_ROOT, '..', 'shared', 'kmip-vectors');
  const ok = existsSync(resolve(dir, 'INDEX.csv'));
  return { ok, dir, why: `the KMIP test vectors (set KMIP_VECTORS, or place them in ${dir})` };
}

export const PYTHON = '/usr/bin/python3';

export function pykmip(): Requirement {
  const ok = existsSync('/usr/lib/python3/dist-packages/kmip/__init__.py');
  return { ok, why: 'PyKMIP: apt-get install python3-pykmip' };
}

export function softhsm(): Requirement {
  const ok = existsSync('/usr/lib/softhsm/libsofthsm2.so') && existsSync('/usr/bin/pkcs11-tool');
  return { ok, why: 'SoftHSM2 and pkcs11-tool: apt-get install softhsm2 opensc' };
}

export function postgres(): Requirement & { bindir: string } {
  const bindir = '/usr/lib/postgresql/15/bin';
  const ok = existsSync(resolve(bindir, 'initdb')) && existsSync(resolve(bindir, 'postgres'));
  return { ok, bindir, why: 'PostgreSQL server: apt-get install postgresql' };
}

/** Newest modification time among the .ts files under `dir`. */
export function newestTs(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestTs(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** The openssl command line tool (to make files the way other tools do, e.g. a legacy PKCS#12). */
export function opensslCli(): Requirement {
  const ok = existsSync('/usr/bin/openssl');
  return { ok, why: 'the openssl command: apt-get install openssl' };
}
