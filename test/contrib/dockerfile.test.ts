/**
 * The Dockerfile, checked without Docker (no daemon here): its instructions are read, every file
 * it copies from the build context exists and passes .dockerignore, the runtime user is not root,
 * the native addons it rebuilds are those of the lock file, and its two stages are replayed on
 * this machine: the build stage's TypeScript build from exactly the files the context admits, the
 * runtime stage's COPY --from=build layout, whose entry point then runs.
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { REPO_ROOT } from '../helpers/requirements.js';

interface Instruction {
  stage: number;
  op: string;
  args: string;
  workdir: string;
}

function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  let workdir = '/';
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue; // a comment inside a continued instruction
    if (line.endsWith('\\')) {
      pending += line.slice(0, -1) + ' ';
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    const m = /^(\S+)\s*(.*)$/.exec(full);
    if (!m) continue;
    const op = m[1]!.toUpperCase();
    const args = m[2]!.replace(/\s+/g, ' ');
    if (op === 'FROM') {
      stage++;
      workdir = '/';
    }
    if (op === 'WORKDIR') workdir = posix.resolve(workdir, args);
    out.push({ stage, op, args, workdir });
  }
  return out;
}

/** COPY [--from=X] SRC... DEST, or the JSON form. */
function copyArgs(args: string): { from?: string; sources: string[]; dest: string } {
  const words = args.split(' ');
  let from: string | undefined;
  while (words[0]?.startsWith('--')) {
    const flag = words.shift()!;
    if (flag.startsWith('--from=')) from = flag.slice('--from='.length);
  }
  const dest = words.pop()!;
  return from !== undefined ? { from, sources: words, dest } : { sources: words, dest };
}

/** .dockerignore as an allow list: `*`, then `!path` lines (the only forms this repository uses). */
function readDockerignore(): string[] {
  return readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

function admitted(patterns: string[], path: string): boolean {
  let inside = true;
  for (const p of patterns) {
    const neg = p.startsWith('!');
    const pat = neg ? p.slice(1) : p;
    const hit = pat === '*' || path === pat || path.startsWith(pat + '/');
    if (hit) inside = neg;
  }
  return inside;
}

const text = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
const ins = parseDockerfile(text);
const ignore = readDockerignore();
const buildStage = ins.filter((i) => i.stage === 0);
const runtime = ins.filter((i) => i.stage === 1);

t.test('two stages on node:20-bookworm-slim; build: npm ci, the native addons, build, prune', async (t) => {
  t.match(text, /^ARG NODE_IMAGE=node:20-bookworm-slim$/m);
  t.same(
    ins.filter((i) => i.op === 'FROM').map((i) => i.args),
    ['${NODE_IMAGE} AS build', '${NODE_IMAGE}'],
  );
  const runs = buildStage.filter((i) => i.op === 'RUN').map((i) => i.args).join(' && ');
  t.match(runs, /npm ci --ignore-scripts/);
  t.match(runs, /npm run build/);
  t.match(runs, /npm prune --omit=dev/);
  // The addons rebuilt are exactly the packages with install scripts in the lock file.
  const lock = JSON.parse(readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { hasInstallScript?: boolean; dev?: boolean }> };
  const scripted = Object.entries(lock.packages)
    .filter(([k, v]) => k.startsWith('node_modules/') && v.hasInstallScript && !v.dev)
    .map(([k]) => k.slice('node_modules/'.length))
    .sort();
  const rebuilt = /npm rebuild ([\w@/ .-]+?)(?: &&|$)/.exec(runs)?.[1]?.trim().split(' ').sort();
  t.same(rebuilt, scripted);
});

t.test('every file copied from the context exists and passes .dockerignore', async (t) => {
  t.ok(ignore.every((p) => p === '*' || p.startsWith('!')), '.dockerignore uses only `*` and `!path`');
  const fromContext = ins.filter((i) => i.op === 'COPY' && copyArgs(i.args).from === undefined);
  t.ok(fromContext.length >= 4);
  for (const c of fromContext) {
    for (const src of copyArgs(c.args).sources) {
      t.ok(existsSync(join(REPO_ROOT, src)), `${src} exists`);
      t.ok(admitted(ignore, src.replace(/\/$/, '')), `${src} is in the build context`);
    }
  }
  t.notOk(admitted(ignore, 'node_modules'), 'node_modules stays out');
  t.notOk(admitted(ignore, 'dist'), 'dist stays out');
  t.notOk(admitted(ignore, 'kmipd-data'), 'data directories stay out');
  t.notOk(admitted(ignore, '.git'), '.git stays out');
});

t.test('runtime: a non-root user, the data volume, the ports, the entry point, the health check', async (t) => {
  const last = (op: string) => runtime.filter((i) => i.op === op).pop()?.args;
  t.equal(last('USER'), '10001:10001');
  const run = runtime.filter((i) => i.op === 'RUN').map((i) => i.args).join(' ');
  t.match(run, /useradd --system --uid 10001 --gid 10001 /);
  t.match(run, /install -d -o 10001 -g 10001 -m 0700 \/var\/lib\/kmipd/);
  t.equal(last('VOLUME'), '["/var/lib/kmipd"]');
  t.equal(last('EXPOSE'), '5696');
  t.match(last('ENV'), /KMIPD_DATA=\/var\/lib\/kmipd/);
  t.match(last('ENV'), /KMIPD_ADMIN_PORT=5697/, 'the admin listener the health check asks');
  t.equal(last('ENTRYPOINT'), '["node", "/opt/kmipd/bin/kmipd"]');
  t.equal(last('CMD'), '["serve", "--data", "/var/lib/kmipd"]');
  const hc = last('HEALTHCHECK') ?? '';
  t.match(hc, /CMD \["node", "\/opt\/kmipd\/contrib\/kmipd-ready\.cjs", "--url", "https:\/\/127\.0\.0\.1:5697\/readyz", "--ca", "\/var\/lib\/kmipd\/pki\/ca\.crt"/);
  t.notMatch(text, /\bcurl\b.*readyz|wget/, 'no curl or wget in the image');
});

t.test('the two stages, replayed here: the build from the context, then the runtime layout runs', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'kmipd-docker-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const ctx = (p: string) => join(root, 'stage0', p);
  // Build stage: its COPYs from the context into WORKDIR /src (node_modules: this checkout's, as
  // `npm ci` installs it from the same lock file).
  mkdirSync(ctx('.'), { recursive: true });
  for (const c of buildStage.filter((i) => i.op === 'COPY')) {
    const { sources, dest } = copyArgs(c.args);
    t.equal(c.workdir, '/src');
    for (const src of sources) {
      const to = dest.endsWith('/') ? join(ctx(dest), posix.basename(src)) : ctx(dest);
      cpSync(join(REPO_ROOT, src), to, { recursive: true });
    }
  }
  symlinkSync(join(REPO_ROOT, 'node_modules'), ctx('node_modules'));
  const tsc = spawnSync(process.execPath, [join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', ctx('tsconfig.build.json')], { encoding: 'utf8', timeout: 240_000 });
  t.equal(tsc.status, 0, `npm run build in the build stage: ${tsc.stdout}${tsc.stderr}`);

  // Runtime stage: COPY --from=build /src/X DEST (relative to WORKDIR /opt/kmipd), and the
  // context file.
  const rt = (p: string) => join(root, 'stage1', p);
  for (const c of runtime.filter((i) => i.op === 'COPY')) {
    const { from, sources, dest } = copyArgs(c.args);
    t.equal(c.workdir, '/opt/kmipd');
    for (const src of sources) {
      const to = rt(posix.relative('/opt/kmipd', posix.resolve(c.workdir, dest)));
      mkdirSync(dirname(to), { recursive: true });
      if (from === 'build') {
        t.ok(src.startsWith('/src/'), `${src} comes from the build stage's /src`);
        const built = ctx(src.slice('/src/'.length));
        t.ok(existsSync(built), `${src} exists after the build`);
        if (src === '/src/node_modules') symlinkSync(join(REPO_ROOT, 'node_modules'), to);
        else cpSync(built, to, { recursive: true });
      } else {
        cpSync(join(REPO_ROOT, src), to, { recursive: true });
      }
    }
  }
  t.ok(existsSync(rt('dist/src/cli/main.js')), "the compiled CLI bin/kmipd loads is in the image");
  t.ok(existsSync(rt('contrib/kmipd-ready.cjs')), 'the health check script is in the image');
  // ENTRYPOINT ["node", "/opt/kmipd/bin/kmipd"] with CMD-like arguments.
  const run = (args: string[]) => spawnSync('env', ['-u', 'NODE_OPTIONS', process.execPath, rt('bin/kmipd'), ...args], { encoding: 'utf8', timeout: 60_000 });
  const help = run(['doctor', '--help']);
  t.equal(help.status, 0, help.stderr);
  t.match(help.stdout, /--live <host:port>/);
  // CMD ["serve", "--data", "/var/lib/kmipd"]: it creates its data directory and listens.
  const data = join(root, 'volume');
  const child = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, rt('bin/kmipd'), 'serve', '--data', data, '--host', '127.0.0.1', '--port', '0', '--admin-port', 'off'], {
    env: { ...process.env, KMIPD_LOG_LEVEL: 'info', KMIPD_ADMIN_PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let log = '';
  const listening = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 60_000);
    const on = (b: Buffer) => {
      log += b.toString();
      if (log.includes('kmipd listening')) {
        clearTimeout(timer);
        resolve(true);
      }
    };
    child.stdout.on('data', on);
    child.stderr.on('data', on);
    void exited.then(() => resolve(false));
  });
  t.ok(listening, `the image's command serves: ${log.slice(-500)}`);
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM stops it cleanly');
  t.ok(existsSync(join(data, 'pki', 'ca.crt')), 'the CA to take out of the volume');
});
