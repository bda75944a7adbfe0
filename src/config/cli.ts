/**
 * `kmipd config`: the configuration of a data directory, as `kmipd serve` would use it.
 *
 *   kmipd config check --data DIR          every problem (each naming its key path), exit 1 on any
 *   kmipd config show  --data DIR [--json] every setting with its value and source; secrets redacted
 *
 * Both read kmipd.json and the KMIPD_* environment of the shell they run in; flags of `kmipd
 * serve` win over both when the server starts.
 */
import type { Command } from 'commander';
import { MANIFEST } from '../server/datadir.js';
import { describeStore } from '../server/store.js';
import { type ConfigReport, checkConfig, defaultDataDir } from './load.js';
import { redactManifest } from './manifest.js';
import type { SecretLocation } from './secrets.js';
import { SETTINGS, type Source, settingValue } from './settings.js';
import { writer } from '../cli/output.js';

const SOURCE_TEXT: Record<Source, string> = { flag: 'flag', env: 'environment', file: MANIFEST, default: 'default' };

function secretText(s: SecretLocation): string {
  const need = s.needed ? '' : ' (not needed by this data directory)';
  switch (s.source) {
    case 'env':
      return `from the environment variable ${s.where ?? ''}${need}`;
    case 'env-file':
      return `from the file ${s.where ?? ''} (named by an environment variable)${need}`;
    case 'credential':
      return `from the systemd credential ${s.where ?? ''}${need}`;
    case 'file':
      return `from the file ${s.where ?? ''} (named in ${MANIFEST})${need}`;
    default:
      return s.needed ? 'NOT SET' : 'not set (not needed by this data directory)';
  }
}

function display(v: unknown): string {
  if (v === undefined) return '-';
  if (Array.isArray(v)) return v.join(', ');
  return String(v);
}

/** The effective configuration: settings with sources, the manifest's other sections, secret sources. */
export function showText(r: ConfigReport): string {
  const lines = [`kmipd configuration of ${r.dir} (precedence: flag > KMIPD_* environment > ${MANIFEST} "server" > default)`];
  const l = r.loaded;
  if (l) {
    lines.push('settings:');
    const width = Math.max(...SETTINGS.map((s) => s.path.length));
    for (const s of SETTINGS) {
      lines.push(`  ${s.path.padEnd(width)}  ${display(settingValue(l.settings, s.path)).padEnd(20)}  ${SOURCE_TEXT[l.sources[s.path] ?? 'default']}  (${s.env}${s.flag ? `, ${s.flag}` : ''})`);
    }
    const m = l.raw;
    if (m) {
      const master = m.master as { kind?: string; file?: string; token?: string; keyLabel?: string; mode?: string } | undefined;
      lines.push(
        `master key: ${master?.kind === 'pkcs11' ? `PKCS#11 token "${master.token ?? '?'}", key "${master.keyLabel ?? '?'}" (${master.mode ?? 'root'} mode)` : `software, ${master?.file ?? '?'}`}`,
      );
      try {
        lines.push(`keystore: ${describeStore(m.keystore as Parameters<typeof describeStore>[0])}`);
      } catch {
        lines.push('keystore: ?');
      }
      const p = m.policy as { groups?: unknown[]; admins?: unknown[]; adminsMayReadKeyMaterial?: unknown; pykmipClients?: unknown[] } | undefined;
      lines.push(
        `policy: ${p?.groups?.length ?? 0} group(s); admins: ${p?.admins?.length ? p.admins.join(', ') : '-'}; adminsMayReadKeyMaterial: ${String(p?.adminsMayReadKeyMaterial ?? false)}` +
          (p?.pykmipClients?.length ? `; pykmipClients: ${p.pykmipClients.join(', ')}` : ''),
      );
      const a = m.auth as { username?: string } | undefined;
      lines.push(`auth: ${a ? `Username/Password required (user ${a.username ?? '?'}, password from a file)` : 'none (the client certificate only)'}`);
    }
  }
  lines.push('secrets (values never shown):');
  for (const s of r.secrets) lines.push(`  ${s.what}: ${secretText(s)}`);
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  for (const e of r.errors) lines.push(`error: ${e}`);
  return lines.join('\n') + '\n';
}

export function showJson(r: ConfigReport): unknown {
  return {
    dir: r.dir,
    settings: r.loaded?.settings,
    sources: r.loaded?.sources,
    manifest: r.loaded?.raw ? redactManifest(r.loaded.raw) : undefined,
    secrets: r.secrets,
    warnings: r.warnings,
    errors: r.errors,
  };
}

export function register(program: Command): void {
  const config = program.command('config').description(`the configuration of a data directory: ${MANIFEST} (with its "server" section), KMIPD_* variables, secrets`);
  config
    .command('check')
    .description('check the configuration as `kmipd serve` would use it; every problem names its key path, variable or flag; exit 1 on any error')
    .option('--data <dir>', 'kmipd data directory (default: KMIPD_DATA, else ./kmipd-data)')
    .action((opts: { data?: string }, cmd: Command) => {
      const r = checkConfig(opts.data ?? defaultDataDir());
      const out = writer(cmd);
      for (const w of r.warnings) out(`warning: ${w}\n`);
      if (r.errors.length > 0) {
        cmd.error(r.errors.map((e) => `kmipd config check: ${e}`).join('\n'), { exitCode: 1, code: 'kmipd.config' });
      }
      out(`kmipd config check: ${r.dir}: the configuration is valid${r.warnings.length ? ` (${r.warnings.length} warning(s))` : ''}\n`);
    });
  config
    .command('show')
    .description('every setting with its value and where it comes from; secrets are never shown')
    .option('--data <dir>', 'kmipd data directory (default: KMIPD_DATA, else ./kmipd-data)')
    .option('--json', 'JSON output')
    .action((opts: { data?: string; json?: boolean }, cmd: Command) => {
      const r = checkConfig(opts.data ?? defaultDataDir());
      writer(cmd)(opts.json ? JSON.stringify(showJson(r), null, 2) + '\n' : showText(r));
    });
}
