/**
 * The server's PKI on disk, in DATA/pki/:
 *
 *   ca.crt  ca.key (0600)  server.crt  server.key (0600)
 *
 * First run: the four files are made in a temporary folder beside `pki` and that folder is
 * renamed to `pki` in one step, so a crash leaves either no PKI or a whole one, and of two
 * processes starting at once only one rename succeeds (the other loads the winner's files).
 * Every file is also written atomically (temp file, fsync, rename), mode set explicitly. Later runs load and check the files and never regenerate them: vCenter pins
 * the server certificate. If only the server pair is missing (deleted to get a new one, e.g.
 * with other SANs), it is issued again from the existing CA.
 */
import { X509Certificate, createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fchmodSync,
  fsyncSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { ipBytes, isDnsName } from './build.js';
import { type CaMaterial, createCA, prepareCa } from './ca.js';
import { certInfo } from './info.js';
import { issueServerCert, normalizeSans } from './issue.js';

export interface PkiPaths {
  dir: string;
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
}

export interface ServerPki {
  caCertPem: string;
  caKeyPem: string;
  serverCertPem: string;
  serverKeyPem: string;
  paths: PkiPaths;
  /** True when this call created the CA (first run). */
  created: boolean;
}

export function pkiPaths(dataDir: string): PkiPaths {
  const dir = join(dataDir, 'pki');
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
  };
}

function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // some file systems cannot fsync a directory; the rename is still atomic
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Writes `data` to `path` atomically: a temporary file in the same folder with `mode` (set
 * explicitly, whatever the umask), fsync, rename over `path`, fsync the folder.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode: number): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', mode);
  try {
    try {
      fchmodSync(fd, mode);
      const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(dir);
}

/** Creates `dir` (and parents) with mode 0700 when missing; leaves an existing one alone. */
export function ensurePrivateDir(dir: string): void {
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new Error(`${dir} exists and is not a folder`);
    return;
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

function readPem(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${what} ${path}: ${(e as Error).message}`);
  }
}

function keyMatchesCert(keyPem: string, certPem: string): boolean {
  const fromKey = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
  return fromKey.equals(new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' }));
}

function warnLooseMode(path: string, log: (msg: string) => void): void {
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077) log(`warning: ${path} has mode 0${mode.toString(8)}; a private key should be 0600 (chmod 600 ${path})`);
}

/**
 * Loads the CA of a data folder (DATA/pki/ca.crt and ca.key) for issuing certificates.
 * Throws, naming `kmipd serve --data DATA`, when there is none yet.
 */
export function loadCa(dataDir: string): CaMaterial {
  const p = pkiPaths(dataDir);
  const missing = [p.caCert, p.caKey].filter((f) => !existsSync(f));
  if (missing.length > 0) {
    throw new Error(
      `no kmipd CA in ${dataDir} (missing ${missing.join(', ')}); run \`kmipd serve --data ${dataDir}\` once first: it creates the CA and the server certificate`,
    );
  }
  const ca: CaMaterial = { certPem: readPem(p.caCert, 'the CA certificate'), keyPem: readPem(p.caKey, 'the CA key') };
  try {
    prepareCa(ca);
  } catch (e) {
    throw new Error(`the CA in ${p.dir} is not usable: ${(e as Error).message}`);
  }
  return ca;
}

/** The SANs kmipd puts in its server certificate by default, plus `extra`. */
export function defaultServerSans(extra: readonly string[] = [], log: (msg: string) => void = () => {}): string[] {
  const sans = ['localhost', '127.0.0.1', '::1'];
  const host = hostname();
  if (isDnsName(host)) sans.push(host);
  else log(`the host name ${JSON.stringify(host)} is not a valid DNS name; it is left out of the server certificate`);
  return normalizeSans([...sans, ...extra]);
}

function serverCommonName(): string {
  const host = hostname();
  return isDnsName(host) && host.length <= 64 ? host : 'kmipd';
}

async function makeCa(): Promise<CaMaterial> {
  const host = hostname().slice(0, 32) || 'kmipd';
  // a random suffix keeps the CA names of separate installations apart
  return createCA({ commonName: `kmipd CA ${host} ${randomBytes(4).toString('hex')}` });
}

async function makeServer(ca: CaMaterial, sans: string[]): Promise<{ certPem: string; keyPem: string }> {
  return issueServerCert(ca, { commonName: serverCommonName(), sans });
}

function describe(label: string, certPem: string): string {
  const i = certInfo(certPem);
  return `${label} ${i.subject} (${i.keyDescription}, until ${i.notAfter.toISOString()}); SHA-1 ${i.sha1}; SHA-256 ${i.sha256}`;
}

/**
 * Makes sure DATA/pki holds a CA and a server certificate and returns them. Creates them on the
 * first run (DATA is created with mode 0700 if missing); later runs only load and check them.
 */
export async function ensureServerPki(
  dataDir: string,
  opts: { sans?: string[]; log?: (msg: string) => void } = {},
): Promise<ServerPki> {
  const log = opts.log ?? (() => {});
  const paths = pkiPaths(dataDir);
  const sans = defaultServerSans(opts.sans ?? [], log);
  ensurePrivateDir(dataDir);
  let created = false;

  const present = (f: string): boolean => existsSync(f);
  const anyPkiFile = (): boolean => [paths.caCert, paths.caKey, paths.serverCert, paths.serverKey].some(present);

  if (!anyPkiFile()) {
    const ca = await makeCa();
    const server = await makeServer(ca, sans);
    // Key generation yielded: look again. From here on everything is synchronous, so
    // callers in this process cannot interleave; other processes are handled by the rename.
    if (!anyPkiFile()) {
      const pkiEmpty = !existsSync(paths.dir) || readdirSync(paths.dir).length === 0;
      if (pkiEmpty) {
        // build the whole folder aside, then rename it into place in one step
        const tmp = mkdtempSync(join(dataDir, '.pki-new-'));
        try {
          writeFileAtomic(join(tmp, 'ca.key'), ca.keyPem, 0o600);
          writeFileAtomic(join(tmp, 'ca.crt'), ca.certPem, 0o644);
          writeFileAtomic(join(tmp, 'server.key'), server.keyPem, 0o600);
          writeFileAtomic(join(tmp, 'server.crt'), server.certPem, 0o644);
          renameSync(tmp, paths.dir);
          fsyncDir(dataDir);
          created = true;
        } catch (e) {
          rmSync(tmp, { recursive: true, force: true });
          const code = (e as NodeJS.ErrnoException).code;
          // another process created the PKI at the same moment: use theirs
          if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
        }
      } else {
        // a pki folder with other things in it: write the files in place
        writeFileAtomic(paths.caKey, ca.keyPem, 0o600);
        writeFileAtomic(paths.caCert, ca.certPem, 0o644);
        writeFileAtomic(paths.serverKey, server.keyPem, 0o600);
        writeFileAtomic(paths.serverCert, server.certPem, 0o644);
        created = true;
      }
      if (created) {
        log(describe(`created the CA ${paths.caCert}:`, ca.certPem));
        log(describe(`created the server certificate ${paths.serverCert}:`, server.certPem));
      }
    }
  }

  if (!present(paths.caCert) || !present(paths.caKey)) {
    const missing = [paths.caCert, paths.caKey].filter((f) => !present(f));
    throw new Error(
      `the kmipd PKI in ${paths.dir} is incomplete: ${missing.join(' and ')} missing. Restore it from a backup, or move ${paths.dir} away to create a new CA (clients must then trust the new one)`,
    );
  }
  const ca = loadCa(dataDir);

  if (!present(paths.serverCert)) {
    // the server pair was removed (or a crash came between its two files): issue a new one
    const server = await makeServer(ca, sans);
    if (!present(paths.serverCert)) {
      writeFileAtomic(paths.serverKey, server.keyPem, 0o600);
      writeFileAtomic(paths.serverCert, server.certPem, 0o644);
      log(describe(`issued a new server certificate ${paths.serverCert}:`, server.certPem));
    }
  } else if (!present(paths.serverKey)) {
    throw new Error(
      `${paths.serverKey} is missing but ${paths.serverCert} exists; restore the key, or delete ${paths.serverCert} to issue a new server certificate (clients that pinned the old one must trust the new one)`,
    );
  }

  const serverCertPem = readPem(paths.serverCert, 'the server certificate');
  const serverKeyPem = readPem(paths.serverKey, 'the server key');
  let serverCert: X509Certificate;
  try {
    serverCert = new X509Certificate(serverCertPem);
  } catch (e) {
    throw new Error(`the server certificate ${paths.serverCert} cannot be read: ${(e as Error).message}`);
  }
  const caCert = new X509Certificate(ca.certPem);
  if (!serverCert.checkIssued(caCert) || !serverCert.verify(caCert.publicKey)) {
    throw new Error(`the server certificate ${paths.serverCert} was not issued by the CA ${paths.caCert}`);
  }
  let matches = false;
  try {
    matches = keyMatchesCert(serverKeyPem, serverCertPem);
  } catch (e) {
    throw new Error(`the server key ${paths.serverKey} cannot be read: ${(e as Error).message}`);
  }
  if (!matches) throw new Error(`the server key ${paths.serverKey} does not belong to ${paths.serverCert}`);

  warnLooseMode(paths.caKey, log);
  warnLooseMode(paths.serverKey, log);
  const info = certInfo(serverCertPem);
  const missingSans = sans.filter((s) => !info.sans.some((have) => sameSan(have, s)));
  if (missingSans.length > 0) {
    log(
      `warning: the server certificate lacks ${missingSans.join(', ')}; delete ${paths.serverCert} and ${paths.serverKey} to issue a new one (clients that pinned it must then trust the new one)`,
    );
  }
  const daysLeft = (info.notAfter.getTime() - Date.now()) / 86_400_000;
  if (daysLeft < 0) log(`warning: the server certificate expired on ${info.notAfter.toISOString()}`);
  else if (daysLeft < 30) log(`warning: the server certificate expires on ${info.notAfter.toISOString()}`);

  return { caCertPem: ca.certPem, caKeyPem: ca.keyPem, serverCertPem, serverKeyPem, paths, created };
}

function sameSan(have: string, want: string): boolean {
  if (have.startsWith('DNS:')) return !isIP(want) && have.slice(4).toLowerCase() === want.toLowerCase();
  if (have.startsWith('IP:') && isIP(want)) return ipBytes(have.slice(3)).equals(ipBytes(want));
  return false;
}
