/**
 * Private SoftHSM2 tokens for tests and benchmarks (see /work/shared/SOFTHSM.md).
 *
 * Nothing global is touched: one temporary directory per process holds a softhsm2.conf and a
 * token directory, selected through SOFTHSM2_CONF, and is removed when the process exits.
 * Each createSoftHsm() initialises one more token in it with pkcs11-tool.
 *
 * SoftHSM reads SOFTHSM2_CONF and scans its token directory only at C_Initialize. Tokens may
 * still be created at any time: the PKCS#11 provider re-initialises the module (C_Finalize +
 * C_Initialize) when it does not find its token label, and the providers already open re-open
 * their sessions transparently. The first createSoftHsm() sets process.env.SOFTHSM2_CONF, so
 * it must come before anything in the process initialises SoftHSM with another configuration.
 * Child processes (pass `env`) initialise SoftHSM themselves and see every token.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';
export const PKCS11_TOOL = '/usr/bin/pkcs11-tool';

export interface SoftHsmToken {
  /** The softhsm2.conf shared by every token of this process (also in process.env.SOFTHSM2_CONF). */
  conf: string;
  module: string;
  /** Token label. */
  token: string;
  /** User PIN. */
  pin: string;
  soPin: string;
  /** This token's own directory inside the token directory. */
  tokenDir: string;
  /** The token directory (holds every token of this process). */
  tokensDir: string;
  /** process.env plus SOFTHSM2_CONF, for child processes. */
  env: NodeJS.ProcessEnv;
  /** Deletes this token's files (close its providers first). */
  cleanup(): void;
}

interface Shared {
  dir: string;
  conf: string;
  tokens: string;
}

let shared: Shared | null = null;
let counter = 0;

function sharedHsm(): Shared {
  if (shared) return shared;
  const dir = mkdtempSync(join(tmpdir(), 'kmipd-softhsm-'));
  const tokens = join(dir, 'tokens');
  mkdirSync(tokens, { mode: 0o700 });
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(
    conf,
    [
      `directories.tokendir = ${tokens}`,
      'objectstore.backend = file',
      'log.level = ERROR',
      'slots.removable = false',
      'slots.mechanisms = ALL',
      'library.reset_on_fork = false',
      '',
    ].join('\n'),
  );
  process.env.SOFTHSM2_CONF = conf;
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  shared = { dir, conf, tokens };
  return shared;
}

export interface CreateSoftHsmOptions {
  label?: string;
  pin?: string;
  soPin?: string;
}

/** Initialises a new token (label, SO PIN, user PIN) in this process's private SoftHSM. */
export async function createSoftHsm(opts: CreateSoftHsmOptions = {}): Promise<SoftHsmToken> {
  const h = sharedHsm();
  const token = opts.label ?? `kmipd-test-${++counter}-${randomBytes(3).toString('hex')}`;
  const pin = opts.pin ?? '1234';
  const soPin = opts.soPin ?? '12345678';
  const env = { ...process.env, SOFTHSM2_CONF: h.conf };
  const before = new Set(readdirSync(h.tokens));
  // SoftHSM lists its initialised tokens, then one free slot: that one has index = token count.
  await run(
    PKCS11_TOOL,
    ['--module', SOFTHSM_MODULE, '--init-token', '--slot-index', String(before.size), '--label', token, '--so-pin', soPin, '--init-pin', '--pin', pin],
    { env },
  );
  const created = readdirSync(h.tokens).filter((d) => !before.has(d));
  const own = created[0];
  if (created.length !== 1 || own === undefined) throw new Error(`pkcs11-tool created ${created.length} token directories, expected 1`);
  const tokenDir = join(h.tokens, own);
  return {
    conf: h.conf,
    module: SOFTHSM_MODULE,
    token,
    pin,
    soPin,
    tokenDir,
    tokensDir: h.tokens,
    env,
    cleanup() {
      rmSync(tokenDir, { recursive: true, force: true });
    },
  };
}
