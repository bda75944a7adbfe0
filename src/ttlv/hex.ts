/**
 * The hex notation of the KMIP documents and of operators' captures: hex digits with any
 * spaces, `|` separators and line breaks, optionally `0x`-prefixed groups.
 */
export class HexParseError extends Error {
  override readonly name = 'HexParseError';
  constructor(
    message: string,
    readonly line: number,
    readonly column: number,
  ) {
    super(`${message} at line ${line}, column ${column}`);
  }
}

export function parseHex(text: string): Buffer {
  const digits: string[] = [];
  let line = 1;
  let col = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    col++;
    if (c === '\n') {
      line++;
      col = 0;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r' || c === '|' || c === ',') continue;
    if ((c === 'x' || c === 'X') && digits.length % 2 === 1 && digits[digits.length - 1] === '0') {
      digits.pop(); // a 0x prefix
      continue;
    }
    if (!/[0-9a-fA-F]/.test(c)) throw new HexParseError(`'${c}' is not a hex digit`, line, col);
    digits.push(c);
  }
  if (digits.length % 2 !== 0) throw new HexParseError('odd number of hex digits', line, col);
  return Buffer.from(digits.join(''), 'hex');
}

export function toHex(buf: Uint8Array): string {
  return Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString('hex').toUpperCase();
}
