/**
 * KMIP requests as vCenter sends them (KMIP 1.1), for tests over a real TLS connection:
 * Discover Versions, Create of an AES-256 key, the triple Add Attribute of its tags, Get
 * Attributes, Activate.
 */
import { Enums, Tag } from '../../src/spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import type { ClientCreds } from './client.js';
import { KmipTestClient } from './client.js';
import { batchItems, itemResult, requestMessage, type ItemResult } from './engine.js';

const Op = Enums.Operation;

function attr(name: string, value: TtlvNode): StructureNode {
  return T.struct(Tag.Attribute, [T.text(Tag.AttributeName, name), value]);
}

async function one(c: KmipTestClient, operation: number, payload: TtlvNode[]): Promise<ItemResult> {
  const resp = await c.send(requestMessage([{ operation, payload }], { version: '1.1' }));
  const item = batchItems(resp)[0];
  if (!item) throw new Error('no batch item in the response');
  return itemResult(item);
}

function uidOf(r: ItemResult): string {
  const u = r.payload?.value.find((n) => n.tag === Tag.UniqueIdentifier);
  if (u?.type !== 'TextString') throw new Error(`no Unique Identifier (status ${r.status}, reason ${r.reason}, ${r.message})`);
  return u.value;
}

export async function discover(c: KmipTestClient): Promise<ItemResult> {
  return one(c, Op.DiscoverVersions, []);
}

/** Create as vCenter sends it: AES, 256 bits, Encrypt|Decrypt, no name. Returns the uid. */
export async function createAesKey(c: KmipTestClient): Promise<string> {
  const r = await one(c, Op.Create, [
    T.enum(Tag.ObjectType, Enums.ObjectType.SymmetricKey),
    T.struct(Tag.TemplateAttribute, [
      attr('Cryptographic Algorithm', T.enum(Tag.AttributeValue, Enums.CryptographicAlgorithm.AES)),
      attr('Cryptographic Usage Mask', T.int(Tag.AttributeValue, 12)),
      attr('Cryptographic Length', T.int(Tag.AttributeValue, 256)),
    ]),
  ]);
  if (r.status !== Enums.ResultStatus.Success) throw new Error(`Create failed: ${r.reason} ${r.message}`);
  return uidOf(r);
}

/** Several Add Attribute items in one message (vCenter sends three); throws unless all succeed. */
export async function addTextAttributes(c: KmipTestClient, uid: string, tags: Record<string, string>): Promise<void> {
  const items = Object.entries(tags).map(([name, value], i) => ({
    operation: Op.AddAttribute,
    id: Buffer.concat([Buffer.from('QLKC'), Buffer.from([i + 1, 0, 0, 0])]),
    payload: [T.text(Tag.UniqueIdentifier, uid), attr(name, T.text(Tag.AttributeValue, value))],
  }));
  const resp = await c.send(requestMessage(items, { version: '1.1' }));
  for (const item of batchItems(resp)) {
    const r = itemResult(item);
    if (r.status !== Enums.ResultStatus.Success) throw new Error(`AddAttribute failed: ${r.reason} ${r.message}`);
  }
}

export async function activate(c: KmipTestClient, uid: string): Promise<ItemResult> {
  return one(c, Op.Activate, [T.text(Tag.UniqueIdentifier, uid)]);
}

export async function get(c: KmipTestClient, uid: string): Promise<ItemResult> {
  return one(c, Op.Get, [T.text(Tag.UniqueIdentifier, uid)]);
}

/** The State the server reports through Get Attributes (1.1), or the failure. */
export async function stateOf(c: KmipTestClient, uid: string): Promise<number | ItemResult> {
  const r = await one(c, Op.GetAttributes, [T.text(Tag.UniqueIdentifier, uid), T.text(Tag.AttributeName, 'State')]);
  if (r.status !== Enums.ResultStatus.Success) return r;
  const a = r.payload?.value.find((n): n is StructureNode => n.tag === Tag.Attribute && n.type === 'Structure');
  const v = a?.value.find((n) => n.tag === Tag.AttributeValue);
  if (v?.type !== 'Enumeration') throw new Error('no State in the Get Attributes response');
  return v.value;
}

/**
 * Whether a client with `creds` is served: connects, sends Discover Versions and waits for the
 * answer. 'refused' when the handshake fails or the server closes without answering (TLS 1.3
 * clients learn of a refusal only after their handshake completed).
 */
export async function attempt(port: number, creds: ClientCreds, opts: { maxVersion?: 'TLSv1.2' | 'TLSv1.3' } = {}): Promise<'served' | 'refused'> {
  let c: KmipTestClient;
  try {
    c = await KmipTestClient.connect(port, creds, opts);
  } catch {
    return 'refused';
  }
  try {
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), 5000).unref());
    const r = await Promise.race([discover(c), timeout]);
    await c.close();
    return r.status === Enums.ResultStatus.Success ? 'served' : 'refused';
  } catch {
    c.socket.destroy();
    return 'refused';
  }
}

/** Polls `fn` every 100 ms until it returns true or `ms` pass; returns its last answer. */
export async function eventually(fn: () => Promise<boolean>, ms = 8000): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}
