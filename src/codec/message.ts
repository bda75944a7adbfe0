import { Enums, Tag, enumValueByName, enumValueInVersion, parseVersion, type KmipVersion } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/types.js';
import { KmipError, REASON_1X_FALLBACK, type ResultReasonName } from './errors.js';
import { all, opt, optValue, req, reqValue } from './node.js';

/** Request messages: the header fixes the version, each batch item keeps its payload as a tree. */

export type BatchErrorContinuation = 'Stop' | 'Continue' | 'Undo';

export interface Credential {
  type: number;
  username?: string;
  password?: string;
  /** The raw Credential Value structure for types other than Username and Password. */
  raw: StructureNode;
}

export interface RequestHeader {
  major: number;
  minor: number;
  /** Undefined when kmipd does not speak the requested version. */
  version: KmipVersion | undefined;
  maximumResponseSize?: number;
  asynchronousIndicator?: boolean;
  credentials: Credential[];
  batchErrorContinuation: BatchErrorContinuation;
  batchOrder: boolean;
  batchCount: number;
  clientCorrelationValue?: string;
  serverCorrelationValue?: string;
  /** Attestation Capable Indicator, kept to answer Attestation Required where it matters. */
  attestationCapable?: boolean;
}

export interface RequestBatchItem {
  operation: number;
  uniqueBatchItemId?: Buffer;
  /** Absent payloads (DiscoverVersions from vCenter) read as an empty structure. */
  payload: StructureNode;
  /** Message Extension present: honoured only when not critical. */
  messageExtension?: StructureNode;
}

export interface RequestMessage {
  header: RequestHeader;
  items: RequestBatchItem[];
}

const CONTINUATION: Record<number, BatchErrorContinuation> = {
  [Enums.BatchErrorContinuationOption.Continue]: 'Continue',
  [Enums.BatchErrorContinuationOption.Stop]: 'Stop',
  [Enums.BatchErrorContinuationOption.Undo]: 'Undo',
};

/**
 * Reads the protocol version alone, so that even a request that fails later is answered in the
 * version it asked in. Returns undefined when the message has no readable version.
 */
export function peekProtocolVersion(msg: TtlvNode): { major: number; minor: number } | undefined {
  if (msg.type !== 'Structure' || msg.tag !== Tag.RequestMessage) return undefined;
  const header = msg.value.find((c) => c.tag === Tag.RequestHeader);
  if (!header || header.type !== 'Structure') return undefined;
  const pv = header.value.find((c) => c.tag === Tag.ProtocolVersion);
  if (!pv || pv.type !== 'Structure') return undefined;
  const major = pv.value.find((c) => c.tag === Tag.ProtocolVersionMajor);
  const minor = pv.value.find((c) => c.tag === Tag.ProtocolVersionMinor);
  if (major?.type !== 'Integer' || minor?.type !== 'Integer') return undefined;
  return { major: major.value, minor: minor.value };
}

function readCredential(c: StructureNode): Credential {
  const type = reqValue(c, Tag.CredentialType, 'Enumeration');
  const value = req(c, Tag.CredentialValue, 'Structure');
  const cred: Credential = { type, raw: value };
  if (type === Enums.CredentialType.UsernameAndPassword) {
    cred.username = reqValue(value, Tag.Username, 'TextString');
    const pw = optValue(value, Tag.Password, 'TextString');
    if (pw !== undefined) cred.password = pw;
  }
  return cred;
}

/** Throws KmipError('InvalidMessage') on a message whose header or batch items are malformed. */
export function decodeRequest(msg: TtlvNode): RequestMessage {
  if (msg.type !== 'Structure' || msg.tag !== Tag.RequestMessage) {
    throw new KmipError('InvalidMessage', 'not a Request Message');
  }
  try {
    const h = req(msg, Tag.RequestHeader, 'Structure');
    const pv = req(h, Tag.ProtocolVersion, 'Structure');
    const major = reqValue(pv, Tag.ProtocolVersionMajor, 'Integer');
    const minor = reqValue(pv, Tag.ProtocolVersionMinor, 'Integer');
    const header: RequestHeader = {
      major,
      minor,
      version: parseVersion(major, minor),
      credentials: [],
      batchErrorContinuation: 'Stop',
      batchOrder: true,
      batchCount: reqValue(h, Tag.BatchCount, 'Integer'),
    };
    const mrs = optValue(h, Tag.MaximumResponseSize, 'Integer');
    if (mrs !== undefined) header.maximumResponseSize = mrs;
    const ai = optValue(h, Tag.AsynchronousIndicator, 'Boolean');
    if (ai !== undefined) header.asynchronousIndicator = ai;
    const aci = optValue(h, Tag.AttestationCapableIndicator, 'Boolean');
    if (aci !== undefined) header.attestationCapable = aci;
    const auth = opt(h, Tag.Authentication, 'Structure');
    if (auth) header.credentials = all(auth, Tag.Credential, 'Structure').map(readCredential);
    const beco = optValue(h, Tag.BatchErrorContinuationOption, 'Enumeration');
    if (beco !== undefined) {
      const c = CONTINUATION[beco];
      if (!c) throw new KmipError('InvalidField', `unknown Batch Error Continuation Option ${beco}`);
      header.batchErrorContinuation = c;
    }
    const bo = optValue(h, Tag.BatchOrderOption, 'Boolean');
    if (bo !== undefined) header.batchOrder = bo;
    const ccv = optValue(h, Tag.ClientCorrelationValue, 'TextString');
    if (ccv !== undefined) header.clientCorrelationValue = ccv;
    const scv = optValue(h, Tag.ServerCorrelationValue, 'TextString');
    if (scv !== undefined) header.serverCorrelationValue = scv;

    const items: RequestBatchItem[] = all(msg, Tag.BatchItem, 'Structure').map((bi) => {
      const item: RequestBatchItem = {
        operation: reqValue(bi, Tag.Operation, 'Enumeration'),
        payload: opt(bi, Tag.RequestPayload, 'Structure') ?? T.struct(Tag.RequestPayload, []),
      };
      const id = optValue(bi, Tag.UniqueBatchItemID, 'ByteString');
      if (id !== undefined) item.uniqueBatchItemId = Buffer.from(id);
      const ext = opt(bi, Tag.MessageExtension, 'Structure');
      if (ext) item.messageExtension = ext;
      return item;
    });
    return { header, items };
  } catch (e) {
    // Any defect in the header or in the batch item envelope makes the whole message invalid.
    if (e instanceof KmipError) throw new KmipError('InvalidMessage', e.message);
    throw e;
  }
}

export type ResultStatus = 'Success' | 'OperationFailed' | 'OperationPending' | 'OperationUndone';

export interface ResponseBatchItem {
  operation?: number;
  uniqueBatchItemId?: Buffer;
  status: ResultStatus;
  reason?: ResultReasonName;
  message?: string;
  asynchronousCorrelationValue?: Buffer;
  /** Children of the Response Payload; undefined means no payload at all. */
  payload?: TtlvNode[];
}

export interface ResponseHeaderFields {
  major: number;
  minor: number;
  /** Seconds since the epoch. */
  timeStamp: bigint;
  clientCorrelationValue?: string;
  serverCorrelationValue?: string;
}

/** The Result Reason a client of `version` is sent for `reason`: itself, or its 1.x fallback. */
export function reasonNameFor(reason: ResultReasonName, version: KmipVersion): ResultReasonName {
  let name: ResultReasonName = reason;
  for (let i = 0; i < 3; i++) {
    const v = enumValueByName('ResultReason', name);
    if (v !== undefined && enumValueInVersion('ResultReason', v, version)) return name;
    name = REASON_1X_FALLBACK[name] ?? 'GeneralFailure';
  }
  return 'GeneralFailure';
}

/** The Result Reason value to send to a client of `version`, falling back for 1.x clients. */
export function reasonValue(reason: ResultReasonName, version: KmipVersion): number {
  return enumValueByName('ResultReason', reasonNameFor(reason, version)) ?? Enums.ResultReason.GeneralFailure;
}

export function responseItemNode(item: ResponseBatchItem, version: KmipVersion): StructureNode {
  const c: TtlvNode[] = [];
  if (item.operation !== undefined) c.push(T.enum(Tag.Operation, item.operation));
  if (item.uniqueBatchItemId) c.push(T.bytes(Tag.UniqueBatchItemID, item.uniqueBatchItemId));
  c.push(T.enum(Tag.ResultStatus, Enums.ResultStatus[item.status]));
  if (item.reason) c.push(T.enum(Tag.ResultReason, reasonValue(item.reason, version)));
  if (item.message !== undefined) c.push(T.text(Tag.ResultMessage, item.message));
  if (item.asynchronousCorrelationValue) c.push(T.bytes(Tag.AsynchronousCorrelationValue, item.asynchronousCorrelationValue));
  if (item.payload) c.push(T.struct(Tag.ResponsePayload, item.payload));
  return T.struct(Tag.BatchItem, c);
}

export function responseMessageNode(h: ResponseHeaderFields, items: StructureNode[]): StructureNode {
  const header: TtlvNode[] = [
    T.struct(Tag.ProtocolVersion, [T.int(Tag.ProtocolVersionMajor, h.major), T.int(Tag.ProtocolVersionMinor, h.minor)]),
    T.date(Tag.TimeStamp, h.timeStamp),
  ];
  if (h.clientCorrelationValue !== undefined) header.push(T.text(Tag.ClientCorrelationValue, h.clientCorrelationValue));
  if (h.serverCorrelationValue !== undefined) header.push(T.text(Tag.ServerCorrelationValue, h.serverCorrelationValue));
  header.push(T.int(Tag.BatchCount, items.length));
  return T.struct(Tag.ResponseMessage, [T.struct(Tag.ResponseHeader, header), ...items]);
}
