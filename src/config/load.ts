/**
 * Loading and checking the configuration of a data directory: kmipd.json (with its "server"
 * section), the KMIPD_* environment, the flags, and where each secret would come from.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { MANIFEST, readManifest } from '../server/datadir.js';
import { readRawManifest, type RawManifest, unknownManifestKeys } from './manifest.js';
import { SECRETS, type SecretLocation, checkSecretFile, locateSecret } from './secrets.js';
import { ConfigError, type Resolved, resolveSettings, unknownEnv } from './settings.js';

export const DEFAULT_DATA_DIR = './kmipd-data';

/** The data directory when --data is not given: KMIPD_DATA, else ./kmipd-data. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  const d = env.KMIPD_DATA;
  return d !== undefined && d !== '' ? d : DEFAULT_DATA_DIR;
}

export interface LoadedConfig extends Resolved {
  dir: string;
  /** The manifest as JSON; undefined before the first run. */
  raw: RawManifest | undefined;
  /** Things worth a log line that do not stop the server. */
  warnings: string[];
}

/**
 * The server settings of data directory `dir` (flag > env > kmipd.json > default). Throws
 * ConfigError (every problem, each naming its key path, variable or flag).
 */
export function loadServerConfig(dir: string, opts: { env?: NodeJS.ProcessEnv; flags?: Record<string, unknown> } = {}): LoadedConfig {
  const env = opts.env ?? process.env;
  let raw: RawManifest | undefined;
  try {
    raw = readRawManifest(dir);
  } catch (e) {
    throw new ConfigError([(e as Error).message]);
  }
  const input: Parameters<typeof resolveSettings>[0] = { env, fileName: MANIFEST };
  if (raw?.server !== undefined) input.file = raw.server;
  if (opts.flags) input.flags = opts.flags;
  const resolved = resolveSettings(input);
  const warnings = [
    ...(raw ? unknownManifestKeys(raw).map((k) => `${MANIFEST}: ${k}`) : []),
    ...unknownEnv(env).map((k) => `${k}: not a kmipd setting (ignored)`),
  ];
  return { ...resolved, dir: resolve(dir), raw, warnings };
}

export interface ConfigReport {
  dir: string;
  errors: string[];
  warnings: string[];
  loaded?: LoadedConfig;
  secrets: SecretLocation[];
}

/** Everything `kmipd config check` looks at; no error means `kmipd serve` will accept the configuration. */
export function checkConfig(dirArg: string, env: NodeJS.ProcessEnv = process.env): ConfigReport {
  const dir = resolve(dirArg);
  const report: ConfigReport = { dir, errors: [], warnings: [], secrets: [] };
  if (!existsSync(join(dir, MANIFEST))) {
    report.errors.push(`no ${MANIFEST} in ${dir}: not a kmipd data directory (run \`kmipd serve --data ${dirArg}\` once to create one)`);
    return report;
  }
  try {
    readManifest(dir);
  } catch (e) {
    report.errors.push((e as Error).message);
  }
  let raw: RawManifest | undefined;
  try {
    raw = readRawManifest(dir);
  } catch (e) {
    report.errors.push((e as Error).message);
    return report;
  }
  if (raw) report.errors.push(...unknownManifestKeys(raw).map((k) => `${MANIFEST}: ${k}`));
  try {
    const input: Parameters<typeof resolveSettings>[0] = { env, fileName: MANIFEST };
    if (raw?.server !== undefined) input.file = raw.server;
    const r = resolveSettings(input);
    report.loaded = { ...r, dir, raw, warnings: [] };
    const logFile = r.settings.logFile;
    if (logFile !== undefined && !existsSync(dirname(resolve(logFile)))) {
      report.errors.push(`the log file's folder ${dirname(resolve(logFile))} does not exist (server.logFile / KMIPD_LOG_FILE / --log-file)`);
    }
  } catch (e) {
    if (e instanceof ConfigError) report.errors.push(...e.problems);
    else throw e;
  }
  report.warnings.push(...unknownEnv(env).map((k) => `${k}: not a kmipd setting (ignored)`));
  for (const spec of SECRETS) {
    const loc = locateSecret(spec, dir, raw, env);
    report.secrets.push(loc);
    for (const p of checkSecretFile(loc)) (p.level === 'error' ? report.errors : report.warnings).push(p.message);
    if (loc.needed && loc.source === 'none') {
      report.errors.push(
        `the ${spec.what} is not set: put it in ${spec.env}, in a file named by ${spec.fileEnv}, in the systemd credential ${spec.credential}, or name a file with "${spec.manifestKey}" in ${MANIFEST}`,
      );
    }
  }
  const auth = raw?.auth as { passwordFile?: unknown } | undefined;
  if (auth && typeof auth.passwordFile === 'string') {
    const f = resolve(dir, auth.passwordFile);
    try {
      if (!statSync(f).isFile()) report.errors.push(`auth.passwordFile ${f} is not a regular file`);
      else if ((statSync(f).mode & 0o077) !== 0) report.warnings.push(`auth.passwordFile ${f} is readable by others; chmod 600 ${f}`);
    } catch (e) {
      report.errors.push(`auth.passwordFile ${f} cannot be read: ${(e as Error).message}`);
    }
  }
  return report;
}
