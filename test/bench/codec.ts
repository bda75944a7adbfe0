/**
 * TTLV codec throughput on one thread: decode and encode of typical messages, and the stream
 * framer. Goal: at least 200,000 Get-request decodes per second.
 *
 * The messages are embedded or built here: the benchmark needs no test-vector folder.
 */
import {
  decodeTtlv,
  encodeTtlv,
  FrameDecoder,
  parseHex,
  T,
  type TtlvNode,
} from '../../src/ttlv/index.js';
import type { BenchContext, BenchModule } from './run.js';

export const GET_DECODE_GOAL = 200_000;

/** KMIP 1.1 test case 17.1, time 0: Create a symmetric key with six template attributes. */
export const CREATE_REQUEST_HEX =
  '42007801000001F04200770100000038420069010000002042006A0200000004000000010000000042006B02000000040000000100000000' +
  '42000D0200000004000000010000000042000F01000001A842005C05000000040000000100000000420079010000019042005705000000' +
  '0400000002000000004200910100000178420008010000003042000A070000001743727970746F6772617068696320416C676F726974686D' +
  '0042000B05000000040000000300000000420008010000003042000A070000001443727970746F67726170686963204C656E677468000000' +
  '0042000B02000000040000010000000000420008010000003042000A070000001843727970746F67726170686963205573616765204D6173' +
  '6B42000B02000000040000000C00000000420008010000004042000A07000000044E616D650000000042000B0100000028420055070000000D' +
  '4669727374546573744E616D6500000042005405000000040000000100000000420008010000004042000A07000000044E616D6500000000' +
  '42000B0100000028420055070000000E5365636F6E64546573744E616D65000042005405000000040000000100000000420008010000003842' +
  '000A0700000013436F6E7461637420496E666F726D6174696F6E000000000042000B070000000F61646D696E406C6F63616C686F737400';

const UUID = '28c7bad1-bc9b-41df-b439-1ba04a6fd982';

function protocolVersion(major: number, minor: number): TtlvNode {
  return T.struct(0x420069, [T.int(0x42006a, major), T.int(0x42006b, minor)]); // Protocol Version {Major, Minor}
}

/** Request Message { Request Header { Protocol Version 1.1, Batch Count 1 }, Batch Item { Get { Unique Identifier } } } */
export function getRequest(): TtlvNode {
  return T.struct(0x420078, [
    T.struct(0x420077, [protocolVersion(1, 1), T.int(0x42000d, 1)]),
    T.struct(0x42000f, [
      T.enum(0x42005c, 10), // Operation: Get
      T.struct(0x420079, [T.text(0x420094, UUID)]), // Request Payload { Unique Identifier }
    ]),
  ]);
}

function responseHeader(batchCount: number): TtlvNode {
  // Response Header { Protocol Version, Time Stamp, Batch Count }
  return T.struct(0x42007a, [protocolVersion(1, 1), T.date(0x420092, 1_335_514_341n), T.int(0x42000d, batchCount)]);
}

/** Response Message carrying a 256-bit AES key in a Raw Key Block. */
export function getResponse(): TtlvNode {
  return T.struct(0x42007b, [
    responseHeader(1),
    T.struct(0x42000f, [
      T.enum(0x42005c, 10), // Operation: Get
      T.enum(0x42007f, 0), // Result Status: Success
      T.struct(0x42007c, [
        T.enum(0x420057, 2), // Object Type: Symmetric Key
        T.text(0x420094, UUID),
        T.struct(0x42008f, [
          // Symmetric Key { Key Block { Key Format Type Raw, Key Value { Key Material }, Algorithm AES, Length 256 } }
          T.struct(0x420040, [
            T.enum(0x420042, 1),
            T.struct(0x420045, [T.bytes(0x420043, Buffer.alloc(32, 0x5a))]),
            T.enum(0x420028, 3),
            T.int(0x42002a, 256),
          ]),
        ]),
      ]),
    ]),
  ]);
}

/** Response Message: Locate found 50 objects (50 Unique Identifiers). */
export function locateResponse(n = 50): TtlvNode {
  const uids = Array.from({ length: n }, (_, i) => T.text(0x420094, `${i.toString(16).padStart(8, '0')}-bc9b-41df-b439-1ba04a6fd982`));
  return T.struct(0x42007b, [
    responseHeader(1),
    T.struct(0x42000f, [
      T.enum(0x42005c, 8), // Operation: Locate
      T.enum(0x42007f, 0), // Result Status: Success
      T.struct(0x42007c, uids),
    ]),
  ]);
}

function run(ctx: BenchContext): void {
  const cases: [string, Buffer][] = [
    ['Create request', parseHex(CREATE_REQUEST_HEX)],
    ['Get request', encodeTtlv(getRequest())],
    ['Get response (32-byte key)', encodeTtlv(getResponse())],
    ['Locate response (50 ids)', encodeTtlv(locateResponse())],
  ];
  let getDecodes: number | undefined;
  for (const [label, bytes] of cases) {
    const node = decodeTtlv(bytes);
    const row = ctx.measure(`decode ${label}`, () => decodeTtlv(bytes), {
      bytesPerOp: bytes.length,
      notes: `${bytes.length} bytes`,
    });
    if (label === 'Get request') getDecodes = row?.opsPerSec;
    ctx.measure(`encode ${label}`, () => encodeTtlv(node), { bytesPerOp: bytes.length, notes: `${bytes.length} bytes` });
  }

  // The framer: a stream of Get requests arriving as 16 KiB TLS records, and one per read.
  const get = encodeTtlv(getRequest());
  const perRecord = Math.floor(16384 / get.length);
  const stream = Buffer.concat(Array.from({ length: perRecord * 8 }, () => get));
  const records: Buffer[] = [];
  for (let p = 0; p < stream.length; p += 16384) records.push(stream.subarray(p, p + 16384));
  const framesPerPass = perRecord * 8;
  const framer = new FrameDecoder();
  ctx.measure(
    'FrameDecoder, 16 KiB chunks',
    () => {
      let n = 0;
      for (const r of records) n += framer.push(r).length;
      return n;
    },
    { opsPerCall: framesPerPass, bytesPerOp: get.length, notes: `${get.length}-byte messages, ops = frames` },
  );
  const framer2 = new FrameDecoder();
  ctx.measure('FrameDecoder, one message per chunk', () => framer2.push(get), {
    bytesPerOp: get.length,
    notes: 'ops = frames',
  });
  const framer3 = new FrameDecoder();
  ctx.measure(
    'frame + decode Get request, 16 KiB chunks',
    () => {
      let n = 0;
      for (const r of records) for (const f of framer3.push(r)) n += decodeTtlv(f).tag;
      return n;
    },
    { opsPerCall: framesPerPass, bytesPerOp: get.length, notes: 'the server’s receive path' },
  );

  if (getDecodes !== undefined) ctx.goal('Get-request decodes per second', getDecodes, GET_DECODE_GOAL, 'decodes/s');
}

const codec: BenchModule = { name: 'codec', run };
export default codec;
