/**
 * `kmipd decode` and `kmipd encode`: read captured TTLV (hex or binary) and print it readably,
 * or turn the XML/JSON encodings back into TTLV hex. Operators read vCenter captures with
 * these, so every input error says where it is and exits non-zero, without a stack trace.
 */
import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { parseJsonMessages, toJson, JsonCodecError } from '../codec/json.js';
import { namingFor, siblingAttributeName, valueToText } from '../codec/textvalues.js';
import { readXmlDocument, toXml, xmlElementToTtlv, XmlCodecError } from '../codec/xml.js';
import { tagName } from '../spec/index.js';
import { decodeTtlv, peekItemSize } from '../ttlv/decode.js';
import { encodeTtlv } from '../ttlv/encode.js';
import { TtlvError } from '../ttlv/errors.js';
import { HexParseError, parseHex, toHex } from '../ttlv/hex.js';
import type { TtlvNode } from '../ttlv/types.js';
import { writer } from './output.js';

/** An input problem to report in one line: not a bug, so no stack trace. */
class InputError extends Error {}

async function readInput(file: string | undefined): Promise<Buffer> {
  if (file === undefined || file === '-') {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }
  try {
    return await readFile(file);
  } catch (e) {
    throw new InputError(`cannot read ${file}: ${(e as Error).message}`);
  }
}

/**
 * Hex text holds only printable ASCII and line breaks; binary TTLV always holds control bytes
 * (the zero bytes of its length fields), so any such byte means binary.
 */
export function looksLikeText(buf: Buffer): boolean {
  for (const b of buf) {
    if (b >= 0x20 && b < 0x7f) continue;
    if (b === 0x09 || b === 0x0a || b === 0x0d) continue;
    return false;
  }
  return true;
}

function describePath(path: readonly number[]): string {
  return path.map((t) => tagName(t)).join('/');
}

/**
 * Line and column, in hex text as parseHex reads it, of the first digit of byte `offset`, so
 * that an operator can find a bad byte in the capture.
 */
function hexPosition(text: string, offset: number): string | undefined {
  let digits = 0;
  let line = 1;
  let col = 0;
  let prev = '';
  for (const c of text) {
    col++;
    if (c === '\n') {
      line++;
      col = 0;
      continue;
    }
    if (/[0-9a-fA-F]/.test(c)) {
      if (digits === offset * 2) return `line ${line}, column ${col} of the hex`;
      digits++;
    } else if ((c === 'x' || c === 'X') && prev === '0' && digits % 2 === 1) {
      digits--; // the 0 of a 0x prefix was not a digit
    }
    prev = c;
  }
  return undefined;
}

/**
 * Decodes one or more TTLV messages laid end to end. Errors name the byte offset in the whole
 * input (and the place in the hex text, when given), the message, and the tag path by name.
 */
export function decodeMessages(bytes: Buffer, hexText?: string): TtlvNode[] {
  if (bytes.length === 0) throw new InputError('no input');
  const out: TtlvNode[] = [];
  let off = 0;
  while (off < bytes.length) {
    const rest = bytes.subarray(off);
    const size = peekItemSize(rest) ?? rest.length;
    try {
      out.push(decodeTtlv(rest.subarray(0, Math.min(size, rest.length))));
    } catch (e) {
      if (!(e instanceof TtlvError)) throw e;
      const at = off + e.offset;
      const inHex = hexText === undefined ? undefined : hexPosition(hexText, at);
      // TtlvError's message is "Kind: detail at byte N in 0x…/0x…"; the parts are said here by name.
      const detail = e.message.slice(e.kind.length + 2).replace(/ at byte \d+( in \S+)?$/, '');
      const where = [
        inHex,
        off > 0 ? `in message ${out.length + 1}, which starts at byte ${off}` : undefined,
        e.path.length ? `tag path ${describePath(e.path)}` : undefined,
      ].filter((x) => x !== undefined);
      throw new InputError(`${e.kind} at byte ${at}${where.length ? ` (${where.join('; ')})` : ''}: ${detail}`);
    }
    off += size;
  }
  return out;
}

/** The readable tree: one line per item with its name, type and value (enums and masks by name, dates ISO). */
export function toTree(node: TtlvNode, indent = ''): string {
  const lines: string[] = [];
  const walk = (n: TtlvNode, attributeName: string | undefined, pad: string): void => {
    const head = `${pad}${tagName(n.tag)} ${n.type}`;
    if (n.type === 'Structure') {
      lines.push(n.value.length ? head : `${head} (empty)`);
      const an = siblingAttributeName(n.value);
      for (const c of n.value) walk(c, an, pad + '  ');
      return;
    }
    const text = valueToText(n, namingFor(n.tag, attributeName), ' | ');
    let shown: string;
    switch (n.type) {
      case 'TextString':
        shown = JSON.stringify(text);
        break;
      case 'ByteString':
        shown = `${text} (${n.value.length} bytes)`;
        break;
      case 'Enumeration':
      case 'Integer':
        shown = text === String(n.value) ? text : `${text} (0x${(n.value >>> 0).toString(16).toUpperCase()})`;
        break;
      case 'DateTime':
      case 'DateTimeExtended':
        shown = `${text} (${n.value})`;
        break;
      default:
        shown = text;
    }
    lines.push(`${head} ${shown}`);
  };
  walk(node, undefined, indent);
  return lines.join('\n');
}

function reportable(e: unknown): string | undefined {
  if (e instanceof InputError) return e.message;
  if (e instanceof HexParseError) return `bad hex input: ${e.message}`;
  if (e instanceof XmlCodecError) return `bad XML input: ${e.message}`;
  if (e instanceof JsonCodecError) return `bad JSON input: ${e.message}`;
  if (e instanceof TtlvError) return `cannot encode: ${e.message}${e.path.length ? `; tag path ${describePath(e.path)}` : ''}`;
  return undefined;
}

/** Runs an action; input errors become one line on stderr and exit code 1 (commander's error()). */
function guarded<A extends unknown[]>(name: string, body: (cmd: Command, ...args: A) => Promise<void>) {
  return async function (this: Command, ...args: A): Promise<void> {
    try {
      await body(this, ...args);
    } catch (e) {
      const msg = reportable(e);
      if (msg === undefined) throw e;
      this.error(`kmipd ${name}: ${msg}`, { exitCode: 1, code: `kmipd.${name}` });
    }
  };
}

export function register(program: Command): void {
  program
    .command('decode')
    .description('print TTLV messages (hex, with any spaces, | and line breaks, or binary; FILE or stdin) readably')
    .argument('[file]', 'the capture to read (default: stdin)')
    .addOption(new Option('--format <format>', 'output format').choices(['tree', 'xml', 'json']).default('tree'))
    .showHelpAfterError(false)
    .action(
      guarded('decode', async (cmd, file: string | undefined, opts: { format: 'tree' | 'xml' | 'json' }) => {
        const input = await readInput(file);
        const text = looksLikeText(input) ? input.toString('latin1') : undefined;
        const nodes = decodeMessages(text === undefined ? input : parseHex(text), text);
        const print = opts.format === 'xml' ? toXml : opts.format === 'json' ? toJson : toTree;
        writer(cmd)(nodes.map((n) => print(n)).join('\n\n') + '\n');
      }),
    );

  program
    .command('encode')
    .description('encode messages in the KMIP XML or JSON encoding (FILE or stdin) as TTLV, printed as hex, one message a line')
    .argument('[file]', 'the XML or JSON to read (default: stdin); an OASIS test-case file gives all its messages')
    .addOption(new Option('--from <format>', 'input format').choices(['xml', 'json']).makeOptionMandatory())
    .showHelpAfterError(false)
    .action(
      guarded('encode', async (cmd, file: string | undefined, opts: { from: 'xml' | 'json' }) => {
        const text = (await readInput(file)).toString('utf8');
        const nodes =
          opts.from === 'xml' ? readXmlDocument(text).messages.map((m) => xmlElementToTtlv(m.element)) : parseJsonMessages(text);
        writer(cmd)(nodes.map((n) => toHex(encodeTtlv(n))).join('\n') + '\n');
      }),
    );
}
