/**
 * Create Split Key / Join Split Key / Register of Split Key parts: XOR, Polynomial Sharing
 * GF(2^8) and Prime Field. The parts the server makes are recombined here by an independent
 * implementation (bitwise GF(2^8) multiplication, BigInt Lagrange interpolation); the OASIS
 * TC-SJ-3 parts join to their registered key; too few parts, mixed splits and bad parameters
 * are refused with their Result Reasons.
 */
import t from 'tap';
import type { KmipAttribute } from '../../src/codec/attributes.js';
import { Enums, Tag, type KmipVersion } from '../../src/spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import { startEngine, type Engine } from '../helpers/engine.js';
import { FAILED, OK, OP, alg, attrValue, expectedReason, get, keyBytes, len, mask, stored, template, text } from './_keys.js';
import { ALG, OT, hex, registerSymmetric } from './_crypto.js';

const SKM = Enums.SplitKeyMethod;
const KEY = hex('0102030405060708090a0b0c0d0e0f10');

/** GF(2^8) multiplication modulo x^8+x^4+x^3+x^2+1, bit by bit. */
function mul(a: number, b: number): number {
  let r = 0;
  while (b) {
    if (b & 1) r ^= a;
    b >>= 1;
    a <<= 1;
    if (a & 0x100) a ^= 0x11d;
  }
  return r;
}
function inv(a: number): number {
  for (let x = 1; x < 256; x++) if (mul(a, x) === 1) return x;
  throw new Error('no inverse');
}
function lagrangeGf(points: { x: number; y: Buffer }[]): string {
  const out = Buffer.alloc(points[0]!.y.length);
  for (let i = 0; i < out.length; i++) {
    let s = 0;
    for (const p of points) {
      let num = 1;
      let den = 1;
      for (const q of points) if (q !== p) (num = mul(num, q.x)), (den = mul(den, q.x ^ p.x));
      s ^= mul(p.y[i]!, mul(num, inv(den)));
    }
    out[i] = s;
  }
  return out.toString('hex');
}
function lagrangePrime(points: { x: number; y: Buffer }[], p: bigint): bigint {
  const m = (a: bigint) => ((a % p) + p) % p;
  const pow = (b: bigint, e: bigint): bigint => {
    let r = 1n;
    b = m(b);
    while (e > 0n) {
      if (e & 1n) r = m(r * b);
      b = m(b * b);
      e >>= 1n;
    }
    return r;
  };
  let s = 0n;
  for (const a of points) {
    let num = 1n;
    let den = 1n;
    for (const b of points) if (b !== a) (num = m(num * BigInt(b.x))), (den = m(den * BigInt(b.x - a.x)));
    s = m(s + BigInt(`0x${a.y.toString('hex')}`) * num * pow(den, p - 2n));
  }
  return s;
}

interface SplitOptions {
  parts: number;
  threshold: number;
  method: number;
  prime?: bigint;
  version?: KmipVersion;
  attrs?: KmipAttribute[];
}

function split(engine: Engine, uid: string, o: SplitOptions) {
  const version = o.version ?? '1.4';
  const payload: TtlvNode[] = [
    T.enum(Tag.ObjectType, OT.SplitKey),
    T.text(Tag.UniqueIdentifier, uid),
    T.int(Tag.SplitKeyParts, o.parts),
    T.int(Tag.SplitKeyThreshold, o.threshold),
    T.enum(Tag.SplitKeyMethod, o.method),
  ];
  if (o.prime !== undefined) payload.push(T.big(Tag.PrimeFieldSize, o.prime));
  payload.push(...template(version, o.attrs ?? []));
  return engine.call(OP.CreateSplitKey, payload, { version });
}

function join(engine: Engine, uids: string[], version: KmipVersion = '1.4', objectType: number = OT.SymmetricKey) {
  return engine.call(OP.JoinSplitKey, [T.enum(Tag.ObjectType, objectType), ...uids.map((u) => T.text(Tag.UniqueIdentifier, u)), ...template(version, [alg(ALG.AES), len(128), mask(12)])], { version });
}

const uidsOf = (p: StructureNode | undefined) => (p?.value ?? []).flatMap((c) => (c.tag === Tag.UniqueIdentifier && c.type === 'TextString' ? [c.value] : []));

async function part(engine: Engine, uid: string, version: KmipVersion = '1.4'): Promise<{ x: number; y: Buffer; obj: StructureNode }> {
  const g = await get(engine, uid, version);
  const obj = g.payload?.value.find((c) => c.tag === Tag.SplitKey) as StructureNode;
  const id = obj.value.find((c) => c.tag === Tag.KeyPartIdentifier);
  return { x: id?.type === 'Integer' ? id.value : -1, y: keyBytes(g.payload, Tag.SplitKey)!, obj };
}

t.test('Split keys', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const base = await registerSymmetric(engine, KEY, ALG.AES);

  await t.test('XOR 3 of 3: the parts XOR to the key; all are needed', async (t) => {
    const r = await split(engine, base, { parts: 3, threshold: 3, method: SKM.XOR });
    t.equal(r.status, OK, r.message ?? '');
    const uids = uidsOf(r.payload);
    t.equal(uids.length, 3);
    const parts = await Promise.all(uids.map((u) => part(engine, u)));
    t.same(parts.map((p) => p.x), [1, 2, 3], 'Key Part Identifiers 1..n in response order');
    const x = Buffer.alloc(16);
    for (const p of parts) for (let i = 0; i < 16; i++) x[i]! ^= p.y[i]!;
    t.equal(x.toString('hex'), KEY.toString('hex'));
    const j = await join(engine, [uids[2]!, uids[0]!, uids[1]!]);
    t.equal(j.status, OK);
    t.equal(keyBytes((await get(engine, text(j.payload, Tag.UniqueIdentifier)!)).payload)?.toString('hex'), KEY.toString('hex'));
    const few = await join(engine, uids.slice(0, 2));
    t.equal(few.reason, expectedReason('1.4', 'CryptographicFailure', 'CryptographicFailure'), 'two of three XOR parts');
  });

  await t.test('GF(2^8) 3 of 5: any three parts interpolate to the key, two do not suffice', async (t) => {
    const r = await split(engine, base, { parts: 5, threshold: 3, method: SKM.PolynomialSharingGF2_8, attrs: [mask(12)] });
    t.equal(r.status, OK, r.message ?? '');
    const uids = uidsOf(r.payload);
    const parts = await Promise.all(uids.map((u) => part(engine, u)));
    t.equal(lagrangeGf([parts[0]!, parts[2]!, parts[4]!]), KEY.toString('hex'), 'parts 1, 3, 5 (interpolated here)');
    t.equal(lagrangeGf([parts[1]!, parts[3]!, parts[4]!]), KEY.toString('hex'), 'parts 2, 4, 5');
    t.not(lagrangeGf([parts[0]!, parts[1]!]), KEY.toString('hex'), 'two parts give something else');
    const first = parts[0]!.obj;
    const f = (tag: number) => first.value.find((c) => c.tag === tag);
    t.same([f(Tag.SplitKeyParts), f(Tag.SplitKeyThreshold), f(Tag.SplitKeyMethod)].map((n) => (n && 'value' in n ? n.value : undefined)), [5, 3, SKM.PolynomialSharingGF2_8]);
    const s = await stored(engine, uids[0]!);
    t.equal(s.objectType, OT.SplitKey);
    t.equal(attrValue(s, 'Cryptographic Algorithm')?.type === 'Enumeration' ? (attrValue(s, 'Cryptographic Algorithm') as { value: number }).value : -1, ALG.AES, "the base's algorithm");
    t.notOk(s.material!.blob.includes(parts[0]!.y), 'the part is sealed at rest');
    const j = await join(engine, [uids[3]!, uids[1]!, uids[0]!], '2.1');
    t.equal(j.status, OK, j.message ?? '');
    t.equal(keyBytes((await get(engine, text(j.payload, Tag.UniqueIdentifier)!, '2.1')).payload)?.toString('hex'), KEY.toString('hex'));
    const two = await join(engine, [uids[0]!, uids[1]!]);
    t.equal(two.status, FAILED);
    t.equal(two.reason, expectedReason('1.4', 'CryptographicFailure', 'CryptographicFailure'), 'below the threshold');
  });

  await t.test('Prime field (2^127-1) 2 of 3', async (t) => {
    const p = 2n ** 127n - 1n;
    const r = await split(engine, base, { parts: 3, threshold: 2, method: SKM.PolynomialSharingPrimeField, prime: p });
    t.equal(r.status, OK, r.message ?? '');
    const uids = uidsOf(r.payload);
    const parts = await Promise.all(uids.map((u) => part(engine, u)));
    t.equal(lagrangePrime([parts[1]!, parts[2]!], p), BigInt(`0x${KEY.toString('hex')}`));
    const j = await join(engine, [uids[2]!, uids[0]!]);
    t.equal(j.status, OK, j.message ?? '');
    t.equal(keyBytes((await get(engine, text(j.payload, Tag.UniqueIdentifier)!)).payload)?.toString('hex'), KEY.toString('hex'));
    const big = await registerSymmetric(engine, hex('ff'.repeat(16)), ALG.AES);
    const tooBig = await split(engine, big, { parts: 3, threshold: 2, method: SKM.PolynomialSharingPrimeField, prime: p });
    t.equal(tooBig.reason, expectedReason('1.4', 'InvalidField', 'InvalidField'), 'a key not below the prime');
  });

  await t.test('Register of the OASIS TC-SJ-3 parts, joined by kmipd', async (t) => {
    const reg = async (id: number, material: string) => {
      const obj = T.struct(Tag.SplitKey, [
        T.int(Tag.SplitKeyParts, 4),
        T.int(Tag.KeyPartIdentifier, id),
        T.int(Tag.SplitKeyThreshold, 2),
        T.enum(Tag.SplitKeyMethod, SKM.PolynomialSharingGF2_8),
        T.struct(Tag.KeyBlock, [T.enum(Tag.KeyFormatType, Enums.KeyFormatType.Raw), T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, hex(material))])]),
      ]);
      const r = await engine.call(OP.Register, [T.enum(Tag.ObjectType, OT.SplitKey), ...template('1.4', []), obj], { version: '1.4' });
      t.equal(r.status, OK, r.message ?? '');
      return text(r.payload, Tag.UniqueIdentifier)!;
    };
    const a = await reg(1, '66C46A7754F94DE420C7B1A7FFF5EC56');
    const b = await reg(2, 'CF93D1E2A7E593CD5B8D6247F4E5D49C');
    const j = await join(engine, [a, b]);
    t.equal(j.status, OK, j.message ?? '');
    t.equal(keyBytes((await get(engine, text(j.payload, Tag.UniqueIdentifier)!)).payload)?.toString('hex'), KEY.toString('hex'));
    t.equal(lagrangeGf([{ x: 1, y: hex('66C46A7754F94DE420C7B1A7FFF5EC56') }, { x: 2, y: hex('CF93D1E2A7E593CD5B8D6247F4E5D49C') }]), KEY.toString('hex'), 'the same here');
    const bad = await engine.call(
      OP.Register,
      [T.enum(Tag.ObjectType, OT.SplitKey), ...template('1.4', []), T.struct(Tag.SplitKey, [T.int(Tag.SplitKeyParts, 2), T.int(Tag.KeyPartIdentifier, 3), T.int(Tag.SplitKeyThreshold, 2), T.enum(Tag.SplitKeyMethod, SKM.XOR), T.struct(Tag.KeyBlock, [T.enum(Tag.KeyFormatType, Enums.KeyFormatType.Raw), T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, hex('00'))])])])],
      { version: '1.4' },
    );
    t.equal(bad.reason, expectedReason('1.4', 'InvalidField', 'InvalidField'), 'Key Part Identifier beyond Split Key Parts');
  });

  await t.test('refusals', async (t) => {
    const cases: [string, SplitOptions, string][] = [
      ['threshold above parts', { parts: 2, threshold: 3, method: SKM.PolynomialSharingGF2_8 }, 'InvalidField'],
      ['XOR with a threshold below the parts', { parts: 3, threshold: 2, method: SKM.XOR }, 'InvalidField'],
      ['GF(2^16), not implemented', { parts: 3, threshold: 2, method: SKM.PolynomialSharingGF2_16 }, 'FeatureNotSupported'],
      ['prime field without a prime', { parts: 3, threshold: 2, method: SKM.PolynomialSharingPrimeField }, 'MissingData'],
      ['more than 255 parts', { parts: 256, threshold: 2, method: SKM.PolynomialSharingGF2_8 }, 'InvalidField'],
    ];
    for (const [what, o, why] of cases) {
      const r = await split(engine, base, o);
      t.equal(r.status, FAILED, what);
      t.equal(r.reason, expectedReason('1.4', why, why), `${what}: ${why}`);
    }
    // Parts of two different splits.
    const a = uidsOf((await split(engine, base, { parts: 3, threshold: 2, method: SKM.PolynomialSharingGF2_8 })).payload);
    const b = uidsOf((await split(engine, base, { parts: 4, threshold: 2, method: SKM.PolynomialSharingGF2_8 })).payload);
    const mixed = await join(engine, [a[0]!, b[1]!]);
    t.equal(mixed.reason, expectedReason('1.4', 'InvalidField', 'InvalidField'), 'parts of different splits');
    const notPart = await join(engine, [base, a[0]!], '2.1');
    t.equal(notPart.reason, expectedReason('2.1', 'IllegalObjectType', 'IllegalOperation'), 'a symmetric key is not a part');
    const other = await engine.call(OP.CreateSplitKey, [T.enum(Tag.ObjectType, OT.SplitKey), T.text(Tag.UniqueIdentifier, base), T.int(Tag.SplitKeyParts, 2), T.int(Tag.SplitKeyThreshold, 2), T.enum(Tag.SplitKeyMethod, SKM.XOR)], { version: '1.4', identity: 'mallory' });
    t.equal(other.reason, expectedReason('1.4', 'ItemNotFound', 'ItemNotFound'), "another identity's key is not found");
    const old = await split(engine, base, { parts: 2, threshold: 2, method: SKM.XOR, version: '1.1' });
    t.equal(old.reason, expectedReason('1.1', 'OperationNotSupported', 'OperationNotSupported'), 'Create Split Key is a 1.2 operation');
  });
});
