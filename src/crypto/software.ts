/**
 * The software master key: 32 random bytes in a file readable by its owner only.
 *
 * It wraps root keys with AES-256 key wrap with padding (RFC 5649), the same format a PKCS#11
 * provider produces with CKM_AES_KEY_WRAP_PAD, so data can move between the two.
 */
import { createHmac, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { access, link, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { aesKeyUnwrapPad, aesKeyWrapPad, type MasterKeyProvider } from './masterkey.js';

export const MASTER_KEY_BYTES = 32;

/** The master key file is missing, has the wrong size, or is readable by others. */
export class MasterKeyFileError extends Error {
  override readonly name = 'MasterKeyFileError';
}

/**
 * A non-secret fingerprint: HMAC-SHA-256 keyed with the master key over a fixed label,
 * truncated to 64 bits. It identifies the key without revealing anything usable about it.
 */
function fingerprint(key: KeyObject): string {
  return 'sw-' + createHmac('sha256', key).update('kmipd master key id v1').digest('hex').slice(0, 16);
}

export class SoftwareMasterKey implements MasterKeyProvider {
  readonly kind = 'software';
  readonly keyId: string;
  readonly file: string;
  /**
   * The key lives in a KeyObject (native memory, outside the JS heap); Node offers no way to
   * zero it explicitly: it is released when the object is collected after close().
   */
  #key: KeyObject | null;

  /** Takes ownership of `key` (a copy is kept; the caller should zero its buffer). */
  constructor(key: Buffer, file: string) {
    if (key.length !== MASTER_KEY_BYTES) throw new RangeError(`a master key has ${MASTER_KEY_BYTES} bytes`);
    this.#key = createSecretKey(key);
    this.keyId = fingerprint(this.#key);
    this.file = file;
  }

  #k(): KeyObject {
    if (this.#key === null) throw new Error('master key is closed');
    return this.#key;
  }

  async wrap(plain: Buffer): Promise<Buffer> {
    return aesKeyWrapPad(this.#k(), plain);
  }

  async unwrap(wrapped: Buffer): Promise<Buffer> {
    return aesKeyUnwrapPad(this.#k(), wrapped);
  }

  async close(): Promise<void> {
    this.#key = null;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const h = await open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path, fsc.F_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Creates a new master key file (mode 0600) holding 32 random bytes, atomically: the key is
 * written and fsynced to a temporary file in the same directory, then linked into place, which
 * fails if `file` exists. Never overwrites an existing file.
 */
export async function createSoftwareMasterKey(file: string): Promise<SoftwareMasterKey> {
  const target = resolve(file);
  const dir = dirname(target);
  if (await exists(target)) {
    throw new MasterKeyFileError(`master key file ${target} exists already; refusing to overwrite it`);
  }
  const key = randomBytes(MASTER_KEY_BYTES);
  const tmp = join(dir, `.${basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const h = await open(tmp, 'wx', 0o600);
    try {
      await h.chmod(0o600); // whatever the umask
      await h.writeFile(key);
      await h.sync();
    } finally {
      await h.close();
    }
    try {
      await link(tmp, target); // atomic, and fails with EEXIST instead of replacing
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw new MasterKeyFileError(`master key file ${target} exists already; refusing to overwrite it`);
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw e;
      // A file system without hard links: check, then rename (a race here is only with ourselves).
      if (await exists(target)) throw new MasterKeyFileError(`master key file ${target} exists already; refusing to overwrite it`);
      await rename(tmp, target);
    }
    await fsyncDir(dir);
    return new SoftwareMasterKey(key, target);
  } finally {
    key.fill(0);
    await unlink(tmp).catch(() => undefined);
  }
}

/**
 * Loads a master key file. Refuses (MasterKeyFileError) a file that group or others may access
 * (mode & 0o077), that is not a regular file, or that does not hold exactly 32 bytes.
 */
export async function loadSoftwareMasterKey(file: string): Promise<SoftwareMasterKey> {
  const target = resolve(file);
  let h;
  try {
    h = await open(target, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new MasterKeyFileError(`master key file ${target} does not exist`);
    if (code === 'EACCES') throw new MasterKeyFileError(`master key file ${target} is not readable by this user`);
    throw e;
  }
  // Read with a spare byte to notice a file longer than it should be.
  const buf = Buffer.alloc(MASTER_KEY_BYTES + 1);
  try {
    const st = await h.stat();
    if (!st.isFile()) throw new MasterKeyFileError(`master key file ${target} is not a regular file`);
    if ((st.mode & 0o077) !== 0) {
      throw new MasterKeyFileError(
        `master key file ${target} is accessible by group or others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); ` +
          `refusing to use it: run chmod 600 ${target}`,
      );
    }
    let n = 0;
    for (;;) {
      const { bytesRead } = await h.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n === buf.length) break;
    }
    if (n !== MASTER_KEY_BYTES) {
      throw new MasterKeyFileError(`master key file ${target} must hold exactly ${MASTER_KEY_BYTES} bytes (found ${n > MASTER_KEY_BYTES ? 'more' : n})`);
    }
    return new SoftwareMasterKey(buf.subarray(0, MASTER_KEY_BYTES), target);
  } finally {
    buf.fill(0);
    await h.close();
  }
}
