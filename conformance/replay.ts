/**
 * Replays one OASIS XML test case: each RequestMessage is sent (placeholders substituted) over
 * the connection of its client (`# [Client-A]`, `# [Client-B]`, …; A when none is named), and
 * the response is compared with the ResponseMessage that follows it. The first exchange that
 * differs fails the test case; the remaining ones are not sent.
 *
 * Placeholders in requests: `$NOW` and `$NOW±n` are the current time (± n seconds); `$…` bound
 * by an earlier response take the server's value; `$…RANDOM…` are client-chosen values the
 * runner makes up. Some OASIS transcripts name a value an earlier response returned without
 * marking it there (`$MAC_DATA` after a MAC response with a literal MAC Data, `$DATA_0` and
 * `$IV_COUNTER_NONCE` after an Encrypt): such a placeholder takes the server's latest value of
 * the same tag and type. Anything else unbound is a defect of the test file.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { xmlElementToTtlv, XmlCodecError, type XmlDocument, type XmlMessageSource } from '../src/codec/xml.js';
import type { PrimitiveTypeName, PrimitiveValue } from '../src/codec/textvalues.js';
import { enumValueName, Tag, tagName } from '../src/spec/index.js';
import type { StructureNode, TtlvNode } from '../src/ttlv/types.js';
import { ClientFailure, KmipConnection } from './client.js';
import {
  compareResponse,
  expectedFromXml,
  normalizeText,
  trackObjects,
  valuesEqual,
  type Difference,
  type Provenance,
  type Substitution,
  type TypedValue,
} from './compare.js';
import type { Session } from './target.js';

export interface ReplayOptions {
  /** How long to wait for each response. */
  timeoutMs: number;
  /** How far `$NOW` in a response may be outside the test case's run time, in seconds. */
  toleranceSeconds: number;
  /** Called with each exchange's differences and applied variations, for --verbose. */
  log?: (line: string) => void;
  /**
   * Which objects the server generated, shared with the test cases run before in the same
   * session (prerequisites); default a fresh record.
   */
  provenance?: Provenance;
  /** How long an exchange marked `# [REPEAT] until …` is retried until it matches (default 150 s). */
  repeatLimitMs?: number;
}

export type FailureKind =
  /** The response differs from the expected one beyond the permitted variations. */
  | 'difference'
  /** No response in time. */
  | 'timeout'
  /** The connection closed without a response. */
  | 'closed'
  /** An exception escaped the in-process server. */
  | 'crash'
  | 'connect'
  | 'protocol'
  /** The test file cannot be replayed as written (unbound placeholder, unreadable XML, no response to compare). */
  | 'test-file'
  /** A test case this one depends on failed (see PREREQUISITES in sets.ts). */
  | 'prerequisite';

export interface Failure {
  kind: FailureKind;
  /** The exchange (request/response pair) that failed, from 0. */
  exchange: number;
  /** Line of its request in the file. */
  line: number;
  /** The operation of the first batch item that differs (or of the request). */
  operation?: string;
  expectedStatus?: string;
  expectedReason?: string;
  actualStatus?: string;
  actualReason?: string;
  differences: Difference[];
  detail: string;
}

export interface ReplayResult {
  passed: boolean;
  /** Exchanges in the file, and how many completed as expected. */
  exchanges: number;
  completed: number;
  failure?: Failure;
  durationMs: number;
}

interface Exchange {
  request: XmlMessageSource;
  response: XmlMessageSource | undefined;
  client: string;
  /** `# [REPEAT] until …`: send again until the response matches (the transcript polls). */
  repeat: boolean;
}

class UnboundPlaceholder extends Error {
  constructor(readonly placeholder: string) {
    super(`the request uses ${placeholder}, which no earlier response bound`);
  }
}

function exchangesOf(doc: XmlDocument): { exchanges: Exchange[]; defect?: string } {
  const out: Exchange[] = [];
  let client = 'A';
  for (const m of doc.messages) {
    for (const n of m.notes) {
      const c = /\[Client-([A-Z])\]/.exec(n);
      if (c) client = c[1]!;
    }
    if (m.kind === 'RequestMessage') {
      out.push({ request: m, response: undefined, client, repeat: m.notes.some((n) => /\[REPEAT\]/i.test(n)) });
    } else if (m.kind === 'ResponseMessage') {
      const last = out[out.length - 1];
      if (!last || last.response) return { exchanges: out, defect: `the ResponseMessage at line ${m.line} follows no request` };
      last.response = m;
    } else {
      return { exchanges: out, defect: `<${m.kind}> at line ${m.line} is neither a request nor a response` };
    }
  }
  // `[REPEAT] until <state>`: where the next exchange sends the same request, it shows the
  // state polled for, so it is retried too (the 1.1 transcripts mark the first of the pair).
  for (let i = 0; i + 1 < out.length; i++) {
    if (out[i]!.repeat && xmlShape(out[i]!.request.element) === xmlShape(out[i + 1]!.request.element)) out[i + 1]!.repeat = true;
  }
  return { exchanges: out };
}

/** An element's names, attributes and children, without positions: for comparing two requests. */
function xmlShape(el: XmlMessageSource['element']): string {
  const kids = el.children.filter((c): c is XmlMessageSource['element'] => c.kind === 'element').map(xmlShape);
  return `<${el.name}${el.attributes.map((a) => ` ${a.name}=${JSON.stringify(a.value)}`).join('')}>${kids.join('')}</>`;
}

const NOW_RE = /^\$NOW(?:([-+])(\d+))?$/;

function randomValue(type: PrimitiveTypeName): PrimitiveValue | undefined {
  switch (type) {
    case 'TextString':
      return randomUUID();
    case 'ByteString':
      return randomBytes(16);
    case 'Integer':
      return randomBytes(4).readInt32BE() & 0x7fffffff;
    case 'LongInteger':
      return randomBytes(8).readBigInt64BE() & 0x7fffffffffffffffn;
    default:
      return undefined;
  }
}

function operationName(item: TtlvNode | undefined): string | undefined {
  if (!item || item.type !== 'Structure') return undefined;
  const op = item.value.find((c) => c.tag === Tag.Operation);
  return op?.type === 'Enumeration' ? (enumValueName('Operation', op.value) ?? `0x${op.value.toString(16)}`) : undefined;
}

function items(msg: TtlvNode | undefined): StructureNode[] {
  if (!msg || msg.type !== 'Structure') return [];
  return msg.value.filter((c): c is StructureNode => c.tag === Tag.BatchItem && c.type === 'Structure');
}

function enumChild(item: StructureNode | undefined, tag: number, enumName: string): string | undefined {
  const n = item?.value.find((c) => c.tag === tag);
  return n?.type === 'Enumeration' ? (enumValueName(enumName, n.value) ?? `0x${n.value.toString(16)}`) : undefined;
}

/** Walks a request: collapses transcription spaces, applies substitutions, records what the client sent. */
function prepareRequest(node: TtlvNode, subs: readonly Substitution[], dates: Set<bigint>, texts: Set<string>): TtlvNode {
  switch (node.type) {
    case 'Structure':
      return { ...node, value: node.value.map((c) => prepareRequest(c, subs, dates, texts)) };
    case 'TextString': {
      let v = normalizeText(node.value);
      for (const s of subs) if (s.type === 'TextString' && typeof s.from === 'string' && s.from === v) v = s.to as string;
      texts.add(v);
      return { ...node, value: v };
    }
    case 'ByteString':
    case 'BigInteger': {
      for (const s of subs) {
        if (s.type === node.type && valuesEqual(node.type, s.from, node.value)) return { ...node, value: s.to } as TtlvNode;
      }
      return node;
    }
    case 'DateTime':
      dates.add(node.value);
      return node;
    case 'DateTimeExtended':
      dates.add(node.value / 1_000_000n);
      return node;
    default:
      return node;
  }
}

/** The first batch item whose status or content differs, from the differences' paths. */
function failingItem(diffs: readonly Difference[]): number {
  const m = /BatchItem\[(\d+)\]/.exec(diffs[0]?.path ?? '');
  return m ? Number(m[1]) : 0;
}

export async function replay(doc: XmlDocument, session: Session, opts: ReplayOptions): Promise<ReplayResult> {
  const started = Date.now();
  const startSecs = BigInt(Math.floor(started / 1000));
  const { exchanges, defect } = exchangesOf(doc);
  const result = (passed: boolean, completed: number, failure?: Failure): ReplayResult => {
    const r: ReplayResult = { passed, exchanges: exchanges.length, completed, durationMs: Date.now() - started };
    if (failure) r.failure = failure;
    return r;
  };
  if (defect) return result(false, 0, { kind: 'test-file', exchange: exchanges.length, line: 0, differences: [], detail: defect });
  if (exchanges.length === 0) return result(false, 0, { kind: 'test-file', exchange: 0, line: 0, differences: [], detail: 'no request messages' });

  const bindings = new Map<string, TypedValue>();
  const substitutions: Substitution[] = [];
  const clientDates = new Set<bigint>();
  const clientTexts = new Set<string>();
  const prov: Provenance = opts.provenance ?? { generated: new Set(), algorithms: new Map(), paddings: new Map() };
  const connections = new Map<string, KmipConnection>();
  /** The latest value of each tag in the server's responses, for placeholders the transcript never bound. */
  const latest = new Map<number, TypedValue>();
  const remember = (n: TtlvNode): void => {
    if (n.type === 'Structure') n.value.forEach(remember);
    else latest.set(n.tag, { type: n.type, value: n.value });
  };

  const connection = async (label: string): Promise<KmipConnection> => {
    let c = connections.get(label);
    if (!c) {
      c = await KmipConnection.connect(session.host, session.port, await session.creds(label), opts.timeoutMs, session.servername);
      connections.set(label, c);
    }
    return c;
  };

  try {
    for (let k = 0; k < exchanges.length; k++) {
      const ex = exchanges[k]!;
      const fail = (f: Omit<Failure, 'exchange' | 'line'>) => result(false, k, { exchange: k, line: ex.request.line, ...f });
      if (!ex.response) return fail({ kind: 'test-file', differences: [], detail: `the request at line ${ex.request.line} has no ResponseMessage to compare with` });

      // The request, placeholders substituted.
      let request: TtlvNode;
      try {
        const sent = xmlElementToTtlv(ex.request.element, {
          placeholder: (name, type, tagPath) => {
            const now = NOW_RE.exec(name);
            if (now) {
              const secs = BigInt(Math.floor(Date.now() / 1000)) + (now[1] === '-' ? -1n : 1n) * BigInt(now[2] ?? '0');
              if (type === 'DateTime') return secs;
              if (type === 'DateTimeExtended') return secs * 1_000_000n;
              return undefined;
            }
            const b = bindings.get(name);
            if (b) {
              if (b.type === type) return b.value;
              throw new UnboundPlaceholder(`${name} (bound to a ${b.type}, used as a ${type})`);
            }
            if (/RANDOM/.test(name)) {
              const v = randomValue(type);
              if (v !== undefined) {
                bindings.set(name, { type, value: v });
                return v;
              }
            }
            const last = latest.get(tagPath[tagPath.length - 1] ?? -1);
            if (last && last.type === type) {
              bindings.set(name, last);
              opts.log?.(`    [${k}] ${name}: the transcript never bound it; taken as the ${tagName(tagPath[tagPath.length - 1]!)} of the last response`);
              return last.value;
            }
            throw new UnboundPlaceholder(name);
          },
        });
        request = prepareRequest(sent, substitutions, clientDates, clientTexts);
      } catch (e) {
        if (e instanceof UnboundPlaceholder || e instanceof XmlCodecError) {
          const op = xmlOperation(ex.request);
          return fail({ kind: 'test-file', ...(op ? { operation: op } : {}), differences: [], detail: e.message });
        }
        throw e;
      }
      const reqOp = operationName(items(request)[0]);

      let expected;
      try {
        expected = expectedFromXml(ex.response.element);
      } catch (e) {
        if (e instanceof XmlCodecError) return fail({ kind: 'test-file', ...(reqOp ? { operation: reqOp } : {}), differences: [], detail: `expected response: ${e.message}` });
        throw e;
      }

      // Send and wait: response, timeout, closed connection or a crash of the server. An
      // exchange marked [REPEAT] is sent again, once a second, until it matches.
      const repeatUntil = Date.now() + (opts.repeatLimitMs ?? 150_000);
      let actual: TtlvNode;
      let cmp: ReturnType<typeof compareResponse>;
      for (;;) {
        try {
          const conn = await connection(ex.client);
          actual = await Promise.race([conn.request(request, opts.timeoutMs), session.crashed]);
        } catch (e) {
          const base = reqOp ? { operation: reqOp } : {};
          if (e instanceof ClientFailure) return fail({ kind: e.kind, ...base, differences: [], detail: e.message });
          const err = e as Error;
          return fail({ kind: 'crash', ...base, differences: [], detail: `the server crashed: ${err.stack ?? err.message}` });
        }
        const nowSecs = BigInt(Math.ceil(Date.now() / 1000));
        const tol = BigInt(opts.toleranceSeconds);
        cmp = compareResponse(expected, actual, {
          bindings,
          request,
          now: { from: startSecs - tol, to: nowSecs + tol },
          clientDates,
          clientTexts,
          generated: prov.generated,
          algorithms: prov.algorithms,
          paddings: prov.paddings,
        });
        if (cmp.ok || !ex.repeat || Date.now() >= repeatUntil) break;
        await new Promise((r) => setTimeout(r, 1000));
      }
      trackObjects(request, actual, prov);
      remember(actual);
      for (const [name, v] of cmp.bound) bindings.set(name, v);
      substitutions.push(...cmp.substitutions);
      if (opts.log) {
        for (const v of cmp.variations) opts.log(`    [${k}] variation ${v}`);
        for (const d of cmp.differences) opts.log(`    [${k}] differs at ${d.path}: expected ${d.expected}, got ${d.actual}`);
      }
      if (!cmp.ok) {
        const i = failingItem(cmp.differences);
        const eItem = items(xmlElementToTtlvSafe(ex.response))[i];
        const aItem = items(actual)[i];
        const f: Omit<Failure, 'exchange' | 'line'> = { kind: 'difference', differences: cmp.differences, detail: '' };
        const op = operationName(eItem) ?? operationName(items(request)[i]) ?? reqOp;
        if (op) f.operation = op;
        const es = enumChild(eItem, Tag.ResultStatus, 'ResultStatus');
        const er = enumChild(eItem, Tag.ResultReason, 'ResultReason');
        if (er) f.expectedReason = er;
        const as = enumChild(aItem, Tag.ResultStatus, 'ResultStatus');
        const ar = enumChild(aItem, Tag.ResultReason, 'ResultReason');
        if (es) f.expectedStatus = es;
        if (as) f.actualStatus = as;
        if (ar) f.actualReason = ar;
        const d = cmp.differences[0];
        f.detail = d ? `${d.path}: expected ${d.expected}, got ${d.actual}` : 'differs';
        return fail(f);
      }
    }
    return result(true, exchanges.length);
  } finally {
    for (const c of connections.values()) c.close();
  }
}

/** The operation of the first batch item, read from the XML. */
function xmlOperation(m: XmlMessageSource): string | undefined {
  const find = (el: XmlMessageSource['element'], name: string) =>
    el.children.find((c): c is XmlMessageSource['element'] => c.kind === 'element' && c.name === name);
  const item = find(m.element, 'BatchItem');
  const op = item ? find(item, 'Operation') : undefined;
  return op?.attributes.find((a) => a.name === 'value')?.value;
}

/** The expected response as a plain tree (placeholders as dummies), for reading statuses. */
function xmlElementToTtlvSafe(m: XmlMessageSource): TtlvNode | undefined {
  try {
    return xmlElementToTtlv(m.element, {
      placeholder: (_n, type) => (type === 'TextString' ? '' : type === 'ByteString' ? new Uint8Array(0) : type === 'Boolean' ? false : type === 'Integer' || type === 'Enumeration' || type === 'Interval' ? 0 : 0n),
    });
  } catch {
    return undefined;
  }
}
