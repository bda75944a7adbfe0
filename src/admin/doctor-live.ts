/**
 * `kmipd doctor --live HOST:PORT --ca FILE --cert FILE --key FILE`: replays what vCenter does
 * (../shared/VCENTER.md) against a running KMIP server, over mutual TLS, one report line a step.
 *
 * Every message is shaped as vCenter sends it: KMIP 1.1 headers with only Protocol Version and
 * Batch Count; DiscoverVersions with an empty payload and no Unique Batch Item ID opening every
 * connection; every other item with an 8-byte ID "QLKC" + a little-endian counter from 1 in each
 * message; one item per message except the three AddAttribute items. Like vCenter, each logical
 * step is its own short connection. The probe key it creates is tagged as kmipd doctor's (never
 * as VMware's), and revoked and destroyed at the end.
 *
 * Responses are checked, not only received: the response header's version (1.1), the Batch Count,
 * each item's Operation and echoed batch item ID, the Result Status, and the payload's shape. An
 * error answer is reported with its Result Reason and Result Message. Key material is read to
 * check its length and is then wiped; it is never printed.
 */
import { X509Certificate, createPrivateKey, randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { all, opt, optValue, req, reqValue } from '../codec/node.js';
import { certInfo, clientIdentityAllowed } from '../pki/info.js';
import { Enums, Tag, enumValueInfo } from '../spec/index.js';
import { FrameDecoder, T, decodeTtlv, encodeTtlv, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import { VERSION } from '../version.js';
import type { CheckStatus } from './doctor.js';

export const DEFAULT_LIVE_TIMEOUT_MS = 10_000;
const DAY_MS = 86_400_000;
/** Largest response accepted (a Query answer is a few KiB). */
const MAX_RESPONSE = 16 * 1024 * 1024;

export interface LiveTarget {
  host: string;
  port: number;
}

export interface LiveOptions extends LiveTarget {
  /** PEM texts (the CLI reads --ca, --cert and --key). */
  caPem: string;
  certPem: string;
  keyPem: string;
  /** Deadline of each connection and of each request; default 10 s. */
  timeoutMs?: number;
  now?: Date;
}

export interface LiveStep {
  name: string;
  status: CheckStatus;
  /** Milliseconds the step took (connection and DiscoverVersions included). */
  ms: number;
  detail: string;
  fix?: string;
}

export interface LiveReport {
  target: string;
  steps: LiveStep[];
  /** False when a step failed (a warning, e.g. a failed cleanup, keeps it true). */
  ok: boolean;
  /** The probe key's Unique Identifier, once created. */
  probeUid?: string;
  /** True when the probe key could not be removed. */
  probeLeft?: boolean;
}

/** "host:port", "[v6]:port", or a host alone (port 5696). */
export function parseLiveTarget(s: string): LiveTarget {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(s) ?? /^([^:]+)(?::(\d+))?$/.exec(s);
  const host = m?.[1];
  const port = m?.[2] === undefined ? 5696 : Number(m[2]);
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`--live: "${s}" is not HOST:PORT (e.g. kms.example.com:5696, 127.0.0.1:5696, [::1]:5696)`);
  }
  return { host, port };
}

/** A problem with a step; `fix` is what to do about it. */
class StepFailure extends Error {
  constructor(
    message: string,
    readonly fix?: string,
  ) {
    super(message);
  }
}

const TRUST_FIX =
  'make the server trust this client certificate: on a kmipd server `kmipd trust add-ca` (its issuing CA) or `kmipd trust add-cert FILE --name NAME` (this certificate), or issue one with `kmipd cert issue`';

/** A socket error in words an operator can act on. */
function socketProblem(e: Error, target: string, timeoutMs: number): StepFailure {
  if (e instanceof StepFailure) return e;
  const code = (e as NodeJS.ErrnoException).code ?? '';
  const alert = /ALERT_(.+)$/.exec(code)?.[1];
  switch (code) {
    case 'ECONNREFUSED':
      return new StepFailure(`nothing listens on ${target} (connection refused)`, 'start the server (`systemctl start kmipd`), or check the host and port (kmipd listens on 5696 by default)');
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new StepFailure(`the host name of ${target} does not resolve (${code})`, 'check the name, or give an address');
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ETIMEDOUT':
      return new StepFailure(`${target} cannot be reached (${code})`, 'check the network path and firewalls between here and the server (TCP 5696)');
    case 'ECONNRESET':
      return new StepFailure(`the server reset the connection (${e.message})`, `the server may have refused this client certificate (see its log); ${TRUST_FIX}`);
  }
  if (alert !== undefined) {
    const a = alert.replace(/^(SSLV3|TLSV1|TLSV13)_ALERT_/, '');
    if (/CERTIFICATE_REQUIRED/.test(a)) return new StepFailure(`the server requires a client certificate and did not accept the one sent (TLS alert: certificate required)`, TRUST_FIX);
    if (/CERTIFICATE_EXPIRED/.test(a)) return new StepFailure('the server says the client certificate has expired (TLS alert: certificate expired)', 'issue a new client certificate');
    if (/UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_UNKNOWN|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED/.test(a)) {
      return new StepFailure(`the server does not trust the client certificate (TLS alert: ${a.toLowerCase().replace(/_/g, ' ')})`, TRUST_FIX);
    }
    if (/HANDSHAKE_FAILURE|PROTOCOL_VERSION|INSUFFICIENT_SECURITY/.test(a)) {
      return new StepFailure(`no TLS version or cipher suite in common with the server (TLS alert: ${a.toLowerCase().replace(/_/g, ' ')})`, 'the server must offer TLS 1.2 or 1.3 (vCenter 7 negotiates TLS 1.2 with TLS_RSA_WITH_AES_128_CBC_SHA256 or ECDHE-GCM suites)');
    }
    return new StepFailure(`the server ended the handshake (TLS alert: ${a.toLowerCase().replace(/_/g, ' ')})`);
  }
  if (/timed? ?out/i.test(e.message)) return new StepFailure(`no answer from ${target} within ${timeoutMs} ms`);
  return new StepFailure(`${e.message}${code ? ` (${code})` : ''}`);
}

// ---- the connection ------------------------------------------------------------------------------

interface TlsFacts {
  protocol: string;
  cipher: string;
  authorized: boolean;
  authorizationError?: string;
  peer: X509Certificate | undefined;
}

/** One mutual-TLS connection: whole TTLV frames in, one request at a time. */
class LiveConnection {
  private readonly framer = new FrameDecoder({ maxMessageSize: MAX_RESPONSE });
  private readonly frames: Buffer[] = [];
  private waiter: { resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private failure: StepFailure | undefined;

  private constructor(
    private readonly socket: tls.TLSSocket,
    private readonly target: string,
    private readonly timeoutMs: number,
  ) {
    socket.on('data', (chunk: Buffer) => {
      let got: Buffer[];
      try {
        got = this.framer.push(chunk);
      } catch (e) {
        this.fail(new StepFailure(`the server sent a malformed TTLV frame: ${(e as Error).message}`));
        socket.destroy();
        return;
      }
      for (const f of got) {
        const w = this.waiter;
        this.waiter = undefined;
        if (w) w.resolve(f);
        else this.frames.push(f);
      }
    });
    socket.on('error', (e) => this.fail(socketProblem(e, target, timeoutMs)));
    socket.on('close', () => this.fail(new StepFailure('the server closed the connection before answering')));
  }

  private fail(e: StepFailure): void {
    this.failure ??= e;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(this.failure);
  }

  static open(o: LiveOptions, timeoutMs: number): Promise<{ conn: LiveConnection; facts: TlsFacts; ms: number }> {
    const target = targetText(o);
    const t0 = performance.now();
    return new Promise((resolve, reject) => {
      const socket = tls.connect({
        host: o.host,
        port: o.port,
        ca: o.caPem,
        cert: o.certPem,
        key: o.keyPem,
        minVersion: 'TLSv1.2',
        // Checked below and reported, rather than refused without a word.
        rejectUnauthorized: false,
        ...(isIP(o.host) === 0 ? { servername: o.host } : {}),
      });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new StepFailure(`no TLS handshake with ${target} within ${timeoutMs} ms`, 'check that this is a KMIP (TLS) port and the server is not overloaded'));
      }, timeoutMs);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        const cipher = socket.getCipher();
        const facts: TlsFacts = {
          protocol: socket.getProtocol() ?? '?',
          cipher: cipher.standardName ?? cipher.name,
          authorized: socket.authorized,
          peer: socket.getPeerX509Certificate(),
        };
        if (socket.authorizationError) facts.authorizationError = String(socket.authorizationError);
        resolve({ conn: new LiveConnection(socket, target, timeoutMs), facts, ms: performance.now() - t0 });
      });
      socket.once('error', (e) => {
        clearTimeout(timer);
        socket.destroy();
        reject(socketProblem(e, target, timeoutMs));
      });
    });
  }

  /** Sends one message and waits for its response frame. */
  request(bytes: Buffer): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    const queued = this.frames.shift();
    if (queued) return Promise.reject(new StepFailure('the server sent a message nobody asked for'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        this.socket.destroy();
        reject(new StepFailure(`no response within ${this.timeoutMs} ms`, 'the server may be overloaded, or its keystore or HSM slow: see its log and /readyz'));
      }, this.timeoutMs);
      this.waiter = {
        resolve: (b) => {
          clearTimeout(timer);
          resolve(b);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.socket.write(bytes);
    });
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
  }
}

function targetText(t: LiveTarget): string {
  return isIP(t.host) === 6 ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
}

// ---- messages ------------------------------------------------------------------------------------

const Op = Enums.Operation;

interface RequestItem {
  op: number;
  payload: TtlvNode[];
  /** DiscoverVersions goes without a Unique Batch Item ID, as vCenter sends it. */
  noId?: boolean;
}

interface SentItem {
  op: number;
  id?: Buffer;
}

function qlkc(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.write('QLKC', 0, 'latin1');
  b.writeUInt32LE(n, 4);
  return b;
}

function requestMessage(items: RequestItem[]): { bytes: Buffer; sent: SentItem[] } {
  const sent: SentItem[] = items.map((it, i) => (it.noId ? { op: it.op } : { op: it.op, id: qlkc(i + 1) }));
  const msg = T.struct(Tag.RequestMessage, [
    T.struct(Tag.RequestHeader, [
      T.struct(Tag.ProtocolVersion, [T.int(Tag.ProtocolVersionMajor, 1), T.int(Tag.ProtocolVersionMinor, 1)]),
      T.int(Tag.BatchCount, items.length),
    ]),
    ...items.map((it, i) => {
      const id = sent[i]?.id;
      return T.struct(Tag.BatchItem, [T.enum(Tag.Operation, it.op), ...(id ? [T.bytes(Tag.UniqueBatchItemID, id)] : []), T.struct(Tag.RequestPayload, it.payload)]);
    }),
  ]);
  return { bytes: encodeTtlv(msg), sent };
}

function textAttribute(name: string, value: string): TtlvNode {
  return T.struct(Tag.Attribute, [T.text(Tag.AttributeName, name), T.text(Tag.AttributeValue, value)]);
}

const DISCOVER_VERSIONS: RequestItem = { op: Op.DiscoverVersions, payload: [], noId: true };

interface ResponseItem {
  operation: number;
  status: number;
  reason?: number;
  message?: string;
  payload?: StructureNode;
}

function opName(op: number): string {
  return enumValueInfo('Operation', op)?.specName ?? `operation 0x${op.toString(16)}`;
}

/** Runs `fn` over a response tree; a missing or mistyped field becomes a step failure naming it. */
function shape<R>(what: string, fn: () => R): R {
  try {
    return fn();
  } catch (e) {
    if (e instanceof StepFailure) throw e;
    throw new StepFailure(`${what}: unexpected response shape: ${(e as Error).message}`);
  }
}

/** Decodes a response and checks its envelope against what was sent. */
function readResponse(frame: Buffer, sent: SentItem[], what: string): ResponseItem[] {
  let tree: TtlvNode;
  try {
    tree = decodeTtlv(frame);
  } catch (e) {
    throw new StepFailure(`${what}: the response is not valid TTLV: ${(e as Error).message}`);
  }
  if (tree.type !== 'Structure' || tree.tag !== Tag.ResponseMessage) throw new StepFailure(`${what}: the answer is not a KMIP Response Message`);
  return shape(what, () => {
    const h = req(tree, Tag.ResponseHeader, 'Structure');
    const pv = req(h, Tag.ProtocolVersion, 'Structure');
    const major = reqValue(pv, Tag.ProtocolVersionMajor, 'Integer');
    const minor = reqValue(pv, Tag.ProtocolVersionMinor, 'Integer');
    if (major !== 1 || minor !== 1) throw new StepFailure(`${what}: the response header says KMIP ${major}.${minor}; vCenter asks in 1.1 and needs 1.1 back`, 'the server must answer each request in the version it was asked in');
    req(h, Tag.TimeStamp, 'DateTime');
    const count = reqValue(h, Tag.BatchCount, 'Integer');
    const items = all(tree, Tag.BatchItem, 'Structure');
    if (count !== items.length) throw new StepFailure(`${what}: the response header's Batch Count is ${count} for ${items.length} batch item(s)`);
    if (items.length !== sent.length) throw new StepFailure(`${what}: ${items.length} batch item(s) answered ${sent.length} sent`);
    return items.map((bi, i) => {
      const s = sent[i]!;
      const operation = optValue(bi, Tag.Operation, 'Enumeration');
      if (operation !== s.op) throw new StepFailure(`${what}: batch item ${i + 1} answers ${operation === undefined ? 'without an Operation' : opName(operation)}, not ${opName(s.op)}`);
      const id = optValue(bi, Tag.UniqueBatchItemID, 'ByteString');
      if (s.id && (!id || !Buffer.from(id).equals(s.id))) throw new StepFailure(`${what}: batch item ${i + 1} does not echo its Unique Batch Item ID (vCenter matches answers by it)`);
      if (!s.id && id) throw new StepFailure(`${what}: batch item ${i + 1} carries a Unique Batch Item ID although none was sent`);
      const item: ResponseItem = { operation, status: reqValue(bi, Tag.ResultStatus, 'Enumeration') };
      const reason = optValue(bi, Tag.ResultReason, 'Enumeration');
      if (reason !== undefined) item.reason = reason;
      const message = optValue(bi, Tag.ResultMessage, 'TextString');
      if (message !== undefined) item.message = message;
      const payload = opt(bi, Tag.ResponsePayload, 'Structure');
      if (payload) item.payload = payload;
      return item;
    });
  });
}

/** The payload of a successful item; an error answer becomes a failure with its reason and message. */
function succeeded(item: ResponseItem, what: string): StructureNode {
  if (item.status !== Enums.ResultStatus.Success) {
    const status = enumValueInfo('ResultStatus', item.status)?.specName ?? String(item.status);
    const reason = item.reason === undefined ? '' : `, Result Reason ${enumValueInfo('ResultReason', item.reason)?.specName ?? item.reason}`;
    throw new StepFailure(`${what}: ${status}${reason}${item.message !== undefined ? `: ${item.message}` : ''}`);
  }
  if (!item.payload) throw new StepFailure(`${what}: Success without a Response Payload`);
  return item.payload;
}

function expectUid(payload: StructureNode, uid: string, what: string): void {
  const got = shape(what, () => reqValue(payload, Tag.UniqueIdentifier, 'TextString'));
  if (got !== uid) throw new StepFailure(`${what}: the answer names object ${got}, not ${uid}`);
}

/** One attribute of a 1.x GetAttributes answer (name, value node), or undefined. */
function attributeValue(payload: StructureNode, name: string, what: string): TtlvNode | undefined {
  return shape(what, () => {
    for (const a of all(payload, Tag.Attribute, 'Structure')) {
      if (reqValue(a, Tag.AttributeName, 'TextString') !== name) continue;
      const v = a.value.find((c) => c.tag === Tag.AttributeValue);
      if (!v) throw new StepFailure(`${what}: the attribute ${name} has no Attribute Value`);
      return v;
    }
    return undefined;
  });
}

// ---- the session ---------------------------------------------------------------------------------

/** What a step returns: its detail, and a warning when something deserves one. */
interface StepResult {
  detail: string;
  warn?: boolean;
  fix?: string;
  /** The step's own duration when it is not the wall time of its function. */
  ms?: number;
}

function expiryText(x: X509Certificate, now: Date): { text: string; days: number } {
  const end = new Date(x.validTo);
  const days = Math.floor((end.getTime() - now.getTime()) / DAY_MS);
  return { text: `valid until ${end.toISOString().replace(/\.\d{3}Z$/, 'Z')} (${days} days)`, days };
}

const VCENTER_OPERATIONS = [Op.DiscoverVersions, Op.Query, Op.Create, Op.GetAttributes, Op.AddAttribute, Op.Get, Op.Activate];

export async function runLiveDoctor(o: LiveOptions): Promise<LiveReport> {
  const timeoutMs = o.timeoutMs ?? DEFAULT_LIVE_TIMEOUT_MS;
  const now = o.now ?? new Date();
  const target = targetText(o);
  const steps: LiveStep[] = [];
  const report: LiveReport = { target, steps, ok: true };
  /** Why the remaining steps are skipped, once one failed. */
  let blocked: string | undefined;

  const step = async (name: string, fn: () => Promise<StepResult>, opts: { cleanup?: boolean } = {}): Promise<boolean> => {
    if (blocked !== undefined && !opts.cleanup) {
      steps.push({ name, status: 'skip', ms: 0, detail: blocked });
      return false;
    }
    const t0 = performance.now();
    try {
      const r = await fn();
      const s: LiveStep = { name, status: r.warn ? 'warn' : 'ok', ms: Math.round(r.ms ?? performance.now() - t0), detail: r.detail };
      if (r.fix !== undefined) s.fix = r.fix;
      steps.push(s);
      return true;
    } catch (e) {
      const f = e instanceof StepFailure ? e : new StepFailure((e as Error).message);
      // A cleanup that fails leaves a key behind: a warning naming it, not a failed check.
      const s: LiveStep = { name, status: opts.cleanup ? 'warn' : 'fail', ms: Math.round(performance.now() - t0), detail: f.message };
      if (f.fix !== undefined) s.fix = f.fix;
      steps.push(s);
      if (!opts.cleanup) blocked = `not run: "${name}" failed`;
      return false;
    }
  };

  // ---- the client's own certificate --------------------------------------------------------------
  await step('client certificate', async () => {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(o.certPem);
    } catch (e) {
      throw new StepFailure(`--cert is not a PEM certificate: ${(e as Error).message}`);
    }
    let key;
    try {
      key = createPrivateKey(o.keyPem);
    } catch (e) {
      throw new StepFailure(`--key is not a PEM private key (an encrypted key is not supported): ${(e as Error).message}`);
    }
    if (!cert.checkPrivateKey(key)) throw new StepFailure('--key is not the private key of --cert', 'give the key file issued with this certificate');
    try {
      new X509Certificate(o.caPem);
    } catch (e) {
      throw new StepFailure(`--ca is not a PEM certificate: ${(e as Error).message}`, "give the server's CA certificate, e.g. a kmipd server's DIR/pki/ca.crt");
    }
    const info = certInfo(cert.raw);
    if (now < info.notBefore) throw new StepFailure(`the client certificate is not valid before ${info.notBefore.toISOString()}`, 'check the clock here, or wait');
    if (now > info.notAfter) throw new StepFailure(`the client certificate expired on ${info.notAfter.toISOString()}`, 'issue a new client certificate (`kmipd cert issue`)');
    const id = clientIdentityAllowed(cert);
    if (!id.ok) throw new StepFailure(`a kmipd server would refuse it: ${id.reason}`, 'issue a client certificate with no extended key usage or one including clientAuth, and one common name (`kmipd cert issue`)');
    const exp = expiryText(cert, now);
    const ekus = info.ekus ? `EKU ${info.ekus.join(', ')}` : 'no EKU (as vCenter)';
    const detail = `${info.subject}, issuer ${info.issuer}, ${info.keyDescription}, ${ekus}, ${exp.text}`;
    if (exp.days < 30) return { detail, warn: true, fix: 'renew the client certificate before it expires' };
    return { detail };
  });

  // ---- registration: handshake, DiscoverVersions, Query on one connection -------------------------
  let first: LiveConnection | undefined;
  let dvAnswer: { frame: Buffer; sent: SentItem[]; ms: number } | undefined;
  try {
    await step('TLS handshake', async () => {
      const { conn, facts, ms } = await LiveConnection.open(o, timeoutMs);
      first = conn;
      const peer = facts.peer;
      if (!peer) throw new StepFailure('the server presented no certificate');
      const pi = certInfo(peer.raw);
      const exp = expiryText(peer, now);
      const server = `server certificate ${pi.subject}, issuer ${pi.issuer}, ${exp.text}, SHA-256 ${pi.sha256}`;
      if (!facts.authorized) {
        const why = facts.authorizationError ?? 'unknown reason';
        const expired = /EXPIRED/.test(why);
        throw new StepFailure(
          `${expired ? 'the server certificate has expired' : 'the server certificate does not chain to --ca'} (${why}); ${server}`,
          expired ? 'renew the server certificate (`kmipd cert rotate-server` on a kmipd server; vCenter must then re-approve it)' : "give the server's CA certificate as --ca (a kmipd server's DIR/pki/ca.crt; `kmipd cert server` shows the server certificate)",
        );
      }
      // vCenter opens every connection with DiscoverVersions. Its answer also shows that the server
      // kept the connection: with TLS 1.3 a server refuses a client certificate only after the
      // client considers the handshake done, so an alert or a close now is a handshake failure.
      const dv = requestMessage([DISCOVER_VERSIONS]);
      const t1 = performance.now();
      let frame: Buffer;
      try {
        frame = await conn.request(dv.bytes);
      } catch (e) {
        const f = e instanceof StepFailure ? e : socketProblem(e as Error, target, timeoutMs);
        if (/closed the connection before answering/.test(f.message)) {
          throw new StepFailure(`the server closed the connection right after the handshake (${facts.protocol}): it refused this client certificate`, `see the server's log ("client certificate refused"); ${TRUST_FIX}`);
        }
        throw new StepFailure(`${f.message} (${facts.protocol}, after the client's part of the handshake)`, f.fix);
      }
      dvAnswer = { frame, sent: dv.sent, ms: performance.now() - t1 };
      const names: string[] = [];
      const mismatch = tls.checkServerIdentity(o.host, peer.toLegacyObject());
      if (mismatch) names.push(`${o.host} is not among its names (${pi.sans.join(', ') || 'no subject alternative names'}): vCenter does not check names (it pins the certificate), clients that do will refuse it`);
      const detail = `${facts.protocol}, ${facts.cipher}; ${server}; chains to --ca${names.length ? `; ${names.join('; ')}` : ''}`;
      if (names.length > 0) return { detail, warn: true, fix: 'issue a server certificate with this name (`kmipd cert rotate-server --san NAME` on a kmipd server)', ms };
      if (exp.days < 30) return { detail, warn: true, fix: 'renew the server certificate before it expires (`kmipd cert rotate-server`; vCenter must then re-approve it)', ms };
      return { detail, ms };
    });

    await step('DiscoverVersions', async () => {
      if (!dvAnswer) throw new StepFailure('no answer');
      const [item] = readResponse(dvAnswer.frame, dvAnswer.sent, 'DiscoverVersions');
      const versions = discoveredVersions(succeeded(item!, 'DiscoverVersions'));
      if (!versions.includes('1.1')) throw new StepFailure(`the server offers ${versions.join(', ') || 'no version'}, not 1.1 (vCenter speaks only KMIP 1.1)`);
      return { detail: `answered in KMIP 1.1; the server speaks ${versions.join(', ')}`, ms: dvAnswer.ms };
    });

    await step('Query', async () => {
      const conn = first!;
      const send = async (items: RequestItem[], what: string): Promise<ResponseItem[]> => {
        const m = requestMessage(items);
        return readResponse(await conn.request(m.bytes), m.sent, what);
      };
      // vCenter registers a key server with this one query.
      const [info] = await send([{ op: Op.Query, payload: [T.enum(Tag.QueryFunction, Enums.QueryFunction.QueryServerInformation)] }], 'Query (Server Information)');
      const p = succeeded(info!, 'Query (Server Information)');
      const vendor = shape('Query (Server Information)', () => optValue(p, Tag.VendorIdentification, 'TextString'));
      if (vendor === undefined) throw new StepFailure('Query (Server Information): no Vendor Identification in the answer (vCenter needs it to register the server)');
      const serverInfo = shape('Query (Server Information)', () => opt(p, Tag.ServerInformation, 'Structure'));
      const infoText = serverInfo ? `; Server Information: ${serverInfo.value.filter((c) => c.type === 'TextString').map((c) => String(c.value)).join(' ') || 'present'}` : '';
      // What the rest of the session needs.
      const [caps] = await send(
        [{ op: Op.Query, payload: [T.enum(Tag.QueryFunction, Enums.QueryFunction.QueryOperations), T.enum(Tag.QueryFunction, Enums.QueryFunction.QueryObjects)] }],
        'Query (Operations, Objects)',
      );
      const cp = succeeded(caps!, 'Query (Operations, Objects)');
      const ops = shape('Query (Operations, Objects)', () => all(cp, Tag.Operation, 'Enumeration').map((n) => n.value));
      const objects = shape('Query (Operations, Objects)', () => all(cp, Tag.ObjectType, 'Enumeration').map((n) => n.value));
      const base = `Vendor Identification "${vendor}"${infoText}`;
      // vCenter itself asks only for Server Information: gaps in these lists are reported, and the
      // steps below show whether the operations really work.
      if (ops.length === 0 && objects.length === 0) return { detail: `${base}; the server lists no operations or object types`, warn: true };
      const gaps: string[] = [];
      const missing = VCENTER_OPERATIONS.filter((op) => !ops.includes(op)).map(opName);
      if (missing.length > 0) gaps.push(`the server does not list ${missing.join(', ')} among its operations`);
      if (!objects.includes(Enums.ObjectType.SymmetricKey)) {
        gaps.push(`the server does not list Symmetric Key among its object types (${objects.map((v) => enumValueInfo('ObjectType', v)?.specName ?? v).join(', ') || 'none'})`);
      }
      if (gaps.length > 0) return { detail: `${base}; ${ops.length} operations, ${objects.length} object types; ${gaps.join('; ')}`, warn: true, fix: 'a server should list what it supports in Query (Operations, Objects)' };
      return { detail: `${base}; ${ops.length} operations (every one vCenter uses), ${objects.length} object types (Symmetric Key among them)` };
    });
  } finally {
    (first as LiveConnection | undefined)?.close();
  }

  // ---- one key, as vCenter creates and tags it -----------------------------------------------------
  /** A new short connection that opens with DiscoverVersions, as vCenter's do. */
  const session = async <R>(fn: (send: (items: RequestItem[], what: string) => Promise<ResponseItem[]>) => Promise<R>): Promise<R> => {
    const { conn, facts } = await LiveConnection.open(o, timeoutMs);
    try {
      if (!facts.authorized) throw new StepFailure(`the server certificate no longer chains to --ca (${facts.authorizationError ?? '?'})`);
      const send = async (items: RequestItem[], what: string): Promise<ResponseItem[]> => {
        const m = requestMessage(items);
        return readResponse(await conn.request(m.bytes), m.sent, what);
      };
      const [dv] = await send([DISCOVER_VERSIONS], 'DiscoverVersions opening the connection');
      if (!discoveredVersions(succeeded(dv!, 'DiscoverVersions opening the connection')).includes('1.1')) throw new StepFailure('DiscoverVersions opening the connection: 1.1 is not offered');
      return await fn(send);
    } finally {
      conn.close();
    }
  };

  /** The probe key, once Create answered; `active` once Activate did. */
  const key: { uid?: string; active: boolean } = { active: false };
  const uidOf = (): string => {
    if (key.uid === undefined) throw new StepFailure('no probe key');
    return key.uid;
  };
  const getAbsent = (names: string[]) => async (): Promise<StepResult> =>
    session(async (send) => {
      for (const n of names) {
        const [r] = await send([{ op: Op.GetAttributes, payload: [T.text(Tag.UniqueIdentifier, uidOf()), T.text(Tag.AttributeName, n)] }], `GetAttributes(${n})`);
        const p = succeeded(r!, `GetAttributes(${n}) of an attribute the key does not have (vCenter needs success with no attribute)`);
        expectUid(p, uidOf(), `GetAttributes(${n})`);
        const got = shape(`GetAttributes(${n})`, () => all(p, Tag.Attribute, 'Structure'));
        if (got.length > 0) throw new StepFailure(`GetAttributes(${n}): the new key already has ${n}`);
      }
      return { detail: `${names.join(', ')}: each absent, answered with success and no attribute` };
    });
  const addAttributes = (pairs: [string, string][]) => async (): Promise<StepResult> =>
    session(async (send) => {
      const items = await send(
        pairs.map(([n, v]) => ({ op: Op.AddAttribute, payload: [T.text(Tag.UniqueIdentifier, uidOf()), textAttribute(n, v)] })),
        'AddAttribute',
      );
      items.forEach((it, i) => {
        const [n, v] = pairs[i]!;
        const p = succeeded(it, `AddAttribute(${n})`);
        expectUid(p, uidOf(), `AddAttribute(${n})`);
        const back = attributeValue(p, n, `AddAttribute(${n})`);
        if (back === undefined || back.value !== v) throw new StepFailure(`AddAttribute(${n}): the answer does not return the attribute as added`);
      });
      return { detail: `one message of ${pairs.length} items: ${pairs.map(([n, v]) => `${n}="${v}"`).join(', ')}` };
    });
  const checkState = (want: number, label: string) => async (): Promise<StepResult> =>
    session(async (send) => {
      const [r] = await send([{ op: Op.GetAttributes, payload: [T.text(Tag.UniqueIdentifier, uidOf()), T.text(Tag.AttributeName, 'State')] }], 'GetAttributes(State)');
      const p = succeeded(r!, 'GetAttributes(State)');
      expectUid(p, uidOf(), 'GetAttributes(State)');
      const v = attributeValue(p, 'State', 'GetAttributes(State)');
      if (!v) throw new StepFailure('GetAttributes(State): no State in the answer');
      if (v.type !== 'Enumeration') throw new StepFailure(`GetAttributes(State): the State is a ${v.type}, not an Enumeration`);
      const name = enumValueInfo('State', v.value)?.specName ?? String(v.value);
      if (v.value !== want) throw new StepFailure(`the key is ${name}, not ${label} (vCenter reports a VM whose key is not Active as locked)`);
      return { detail: name };
    });

  await step('Create', async () =>
    session(async (send) => {
      const [r] = await send(
        [
          {
            op: Op.Create,
            payload: [
              T.enum(Tag.ObjectType, Enums.ObjectType.SymmetricKey),
              T.struct(Tag.TemplateAttribute, [
                T.struct(Tag.Attribute, [T.text(Tag.AttributeName, 'Cryptographic Algorithm'), T.enum(Tag.AttributeValue, Enums.CryptographicAlgorithm.AES)]),
                T.struct(Tag.Attribute, [T.text(Tag.AttributeName, 'Cryptographic Usage Mask'), T.int(Tag.AttributeValue, 12)]),
                T.struct(Tag.Attribute, [T.text(Tag.AttributeName, 'Cryptographic Length'), T.int(Tag.AttributeValue, 256)]),
              ]),
            ],
          },
        ],
        'Create',
      );
      const p = succeeded(r!, 'Create');
      const type = shape('Create', () => reqValue(p, Tag.ObjectType, 'Enumeration'));
      const id = shape('Create', () => reqValue(p, Tag.UniqueIdentifier, 'TextString'));
      if (id === '') throw new StepFailure('Create: an empty Unique Identifier');
      key.uid = id;
      report.probeUid = id;
      if (type !== Enums.ObjectType.SymmetricKey) throw new StepFailure(`Create: the object made is a ${enumValueInfo('ObjectType', type)?.specName ?? type}, not a Symmetric Key`);
      return { detail: `AES-256 symmetric key (usage Encrypt|Decrypt, no name, as vCenter asks), UID ${id}` };
    }),
  );

  await step('GetAttributes x-Product_Version, x-Vendor, x-Product (absent)', getAbsent(['x-Product_Version', 'x-Vendor', 'x-Product']));
  await step(
    'AddAttribute x-Product_Version, x-Vendor, x-Product',
    addAttributes([
      ['x-Product_Version', `kmipd doctor ${VERSION}`],
      ['x-Vendor', 'kmipd'],
      ['x-Product', 'kmipd doctor'],
    ]),
  );

  await step('Get (Pre-Active)', async () =>
    session(async (send) => {
      const [r] = await send([{ op: Op.Get, payload: [T.text(Tag.UniqueIdentifier, uidOf())] }], 'Get');
      const p = succeeded(r!, 'Get (vCenter fetches the key while it is still Pre-Active)');
      expectUid(p, uidOf(), 'Get');
      return shape('Get', () => {
        const type = reqValue(p, Tag.ObjectType, 'Enumeration');
        if (type !== Enums.ObjectType.SymmetricKey) throw new StepFailure(`Get: Object Type ${enumValueInfo('ObjectType', type)?.specName ?? type}, not Symmetric Key`);
        const kb = req(req(p, Tag.SymmetricKey, 'Structure'), Tag.KeyBlock, 'Structure');
        const format = reqValue(kb, Tag.KeyFormatType, 'Enumeration');
        if (format !== Enums.KeyFormatType.Raw) throw new StepFailure(`Get: Key Format Type ${enumValueInfo('KeyFormatType', format)?.specName ?? format}, not Raw (vCenter reads a Raw key)`);
        const kv = opt(kb, Tag.KeyValue, 'Structure');
        if (!kv) throw new StepFailure('Get: the Key Value is not a plain structure (wrapped?); vCenter needs the key in clear over TLS');
        const material = reqValue(kv, Tag.KeyMaterial, 'ByteString');
        const bytes = material.length;
        material.fill(0); // read for its length only
        const alg = optValue(kb, Tag.CryptographicAlgorithm, 'Enumeration');
        const len = optValue(kb, Tag.CryptographicLength, 'Integer');
        if (alg !== Enums.CryptographicAlgorithm.AES) throw new StepFailure(`Get: the key block's Cryptographic Algorithm is ${alg === undefined ? 'missing' : (enumValueInfo('CryptographicAlgorithm', alg)?.specName ?? alg)}, not AES`);
        if (len !== 256) throw new StepFailure(`Get: the key block's Cryptographic Length is ${len ?? 'missing'}, not 256`);
        if (bytes !== 32) throw new StepFailure(`Get: ${bytes} bytes of key material for a 256-bit key`);
        return { detail: 'Raw key block, AES, 256 bits, 32 bytes of key material (not shown)' };
      });
    }),
  );

  await step('GetAttributes State (Pre-Active)', checkState(Enums.State.PreActive, 'Pre-Active'));
  await step('Activate', async () =>
    session(async (send) => {
      const [r] = await send([{ op: Op.Activate, payload: [T.text(Tag.UniqueIdentifier, uidOf())] }], 'Activate');
      expectUid(succeeded(r!, 'Activate'), uidOf(), 'Activate');
      key.active = true;
      return { detail: `${uidOf()} is Active` };
    }),
  );
  await step('GetAttributes x-Identifier, x-Component, x-Name (absent)', getAbsent(['x-Identifier', 'x-Component', 'x-Name']));
  await step(
    'AddAttribute x-Identifier, x-Component, x-Name',
    addAttributes([
      ['x-Identifier', randomUUID()],
      ['x-Component', 'kmipd doctor'],
      ['x-Name', 'kmipd-doctor probe'],
    ]),
  );
  await step('GetAttributes State (Active)', checkState(Enums.State.Active, 'Active'));

  // ---- cleanup: the probe key goes (vCenter itself never revokes or destroys) -----------------------
  if (key.uid !== undefined) {
    const probe = key.uid;
    const ok = await step(
      'cleanup: Revoke and Destroy the probe key',
      async () => {
        try {
          return await session(async (send) => {
            const notes: string[] = [];
            const [rv] = await send(
              [
                {
                  op: Op.Revoke,
                  payload: [
                    T.text(Tag.UniqueIdentifier, probe),
                    T.struct(Tag.RevocationReason, [T.enum(Tag.RevocationReasonCode, Enums.RevocationReasonCode.CessationOfOperation), T.text(Tag.RevocationMessage, 'kmipd doctor probe')]),
                  ],
                },
              ],
              'Revoke',
            );
            try {
              expectUid(succeeded(rv!, 'Revoke'), probe, 'Revoke');
              notes.push('revoked (Cessation of Operation)');
            } catch (e) {
              // A Pre-Active key (an earlier step failed) can be destroyed without it.
              if (key.active) throw e;
              notes.push(`not revoked (${(e as Error).message})`);
            }
            const [ds] = await send([{ op: Op.Destroy, payload: [T.text(Tag.UniqueIdentifier, probe)] }], 'Destroy');
            expectUid(succeeded(ds!, 'Destroy'), probe, 'Destroy');
            notes.push('destroyed');
            return { detail: `${probe} ${notes.join(', ')}` };
          });
        } catch (e) {
          const f = e instanceof StepFailure ? e : socketProblem(e as Error, target, timeoutMs);
          throw new StepFailure(
            `the probe key ${probe} (x-Name "kmipd-doctor probe" when tagged) is left on the server: ${f.message}`,
            `remove it by hand, e.g. on a kmipd server \`kmipd key revoke --data DIR ${probe} --reason CessationOfOperation\` then \`kmipd key destroy --data DIR ${probe}\``,
          );
        }
      },
      { cleanup: true },
    );
    if (!ok) report.probeLeft = true;
  }

  report.ok = steps.every((s) => s.status !== 'fail');
  return report;
}

function discoveredVersions(p: StructureNode): string[] {
  return shape('DiscoverVersions', () =>
    all(p, Tag.ProtocolVersion, 'Structure').map((pv) => `${reqValue(pv, Tag.ProtocolVersionMajor, 'Integer')}.${reqValue(pv, Tag.ProtocolVersionMinor, 'Integer')}`),
  );
}

const MARK: Record<CheckStatus, string> = { ok: '[ok]  ', warn: '[warn]', fail: '[FAIL]', skip: '[skip]' };

export function liveText(r: LiveReport): string {
  const lines = [`kmipd doctor --live ${r.target}: a vCenter-shaped KMIP 1.1 session`];
  for (const s of r.steps) {
    lines.push(`  ${MARK[s.status]} ${s.name} (${s.ms} ms): ${s.detail}`);
    if (s.fix !== undefined && s.status !== 'ok') lines.push(`         fix: ${s.fix}`);
  }
  const n = (st: CheckStatus): number => r.steps.filter((s) => s.status === st).length;
  lines.push(`${r.steps.length} steps: ${n('ok')} ok, ${n('warn')} warning(s), ${n('fail')} failure(s)${n('skip') ? `, ${n('skip')} skipped` : ''}`);
  return lines.join('\n') + '\n';
}
