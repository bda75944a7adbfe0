/**
 * `kmipd decode` and `kmipd encode`, in process through commander's parseAsync, and once as the
 * real bin (`node bin/kmipd decode`) after making sure the build is there.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Command, CommanderError } from 'commander';
import { register } from '../../src/cli/codec.js';
import { REPO_ROOT } from '../helpers/requirements.js';

/**
 * KMIP 1.0 Use Case 3.1.2 step 2, the Create request (nlnetlabs-kmip-protocol vector), laid out
 * as a capture might be: line breaks and a stray space.
 */
const CREATE_HEX = `
42007801000001504200770100000038420069010000002042006A0200000004000000010000000042006B02000000040000000000000000
42000D0200000004000000010000000042000F010000010842005C0500000004000000010000000042007901000000F04200570500000004
000000020000000042009101000000D84200530100000028420055070000000954656D706C61746531000000000000004200540500000004
0000000100000000420008010000003042000A070000001743727970746F6772617068696320416C676F726974686D0042000B0500000004
0000000300000000420008010000003042000A070000001443727970746F67726170686963204C656E6774680000000042000B0200000004
0000008000000000420008010000003042000A070000001843727970746F67726170686963205573616765204D61736B42000B02 00000004
0000000C00000000
`;
const CREATE = CREATE_HEX.replace(/\s/g, '');

interface Run {
  out: string;
  err: string;
  code: number;
}

async function run(...args: string[]): Promise<Run> {
  let out = '';
  let err = '';
  const program = new Command('kmipd')
    .exitOverride()
    .configureOutput({ writeOut: (s) => void (out += s), writeErr: (s) => void (err += s) });
  register(program);
  try {
    await program.parseAsync(['node', 'kmipd', ...args]);
    return { out, err, code: 0 };
  } catch (e) {
    if (e instanceof CommanderError) return { out, err, code: e.exitCode };
    throw e;
  }
}

const dir = mkdtempSync(join(tmpdir(), 'kmipd-codec-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, content: string | Buffer): string => {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
};

t.test('decode hex: tree, XML and JSON', async (t) => {
  const hex = file('create.hex', CREATE_HEX);
  const tree = await run('decode', hex);
  t.equal(tree.code, 0);
  t.equal(tree.err, '');
  t.match(tree.out, /^RequestMessage Structure\n {2}RequestHeader Structure\n {4}ProtocolVersion Structure\n {6}ProtocolVersionMajor Integer 1\n/);
  t.match(tree.out, /\n {4}Operation Enumeration Create \(0x1\)\n/);
  t.match(tree.out, /AttributeName TextString "Cryptographic Algorithm"\n\s+AttributeValue Enumeration AES \(0x3\)\n/);
  t.match(tree.out, /AttributeValue Integer (Encrypt \| Decrypt|Decrypt \| Encrypt) \(0xC\)\n/);

  const xml = await run('decode', '--format', 'xml', hex);
  t.equal(xml.code, 0);
  t.match(xml.out, /^<RequestMessage>\n/);
  t.match(xml.out, /<AttributeValue type="Enumeration" value="AES"\/>/);

  const json = await run('decode', '--format', 'json', hex);
  t.equal(json.code, 0);
  t.match(json.out, /"tag": "RequestMessage"/);

  const bin = file('create.bin', Buffer.from(CREATE, 'hex'));
  t.equal((await run('decode', bin)).out, tree.out, 'binary input is detected and reads the same');
});

t.test('encode XML and JSON back to the same hex', async (t) => {
  const hex = file('create2.hex', CREATE_HEX);
  const want = CREATE + '\n';
  const xml = await run('decode', '--format', 'xml', hex);
  const fromXml = await run('encode', '--from', 'xml', file('create.xml', xml.out));
  t.equal(fromXml.code, 0);
  t.equal(fromXml.out, want);
  const json = await run('decode', '--format', 'json', hex);
  const fromJson = await run('encode', '--from', 'json', file('create.json', json.out));
  t.equal(fromJson.out, want);
  const doc = file('case.xml', `<KMIP>\n# TIME 0\n${xml.out}\n# TIME 1\n${xml.out}</KMIP>\n`);
  t.equal((await run('encode', '--from', 'xml', doc)).out, want + want, 'a test-case file gives one line per message');
});

t.test('errors say where, exit 1, no stack trace', async (t) => {
  const truncated = await run('decode', file('short.hex', CREATE.slice(0, -20)));
  t.equal(truncated.code, 1);
  t.equal(truncated.out, '');
  t.equal(
    truncated.err,
    'kmipd decode: Truncated at byte 4 (line 1, column 9 of the hex; tag path RequestMessage): length 336 exceeds the 326 bytes available\n',
  );

  // The Cryptographic Length's Attribute Value gets item type 0x0F, which does not exist.
  const at = CREATE.indexOf('42000B0200000004000000800') / 2;
  const badType = await run('decode', file('badtype.hex', CREATE.slice(0, at * 2) + '42000B0F' + CREATE.slice(at * 2 + 8)));
  t.equal(badType.code, 1);
  t.equal(
    badType.err,
    `kmipd decode: UnknownType at byte ${at + 3} (line 1, column ${at * 2 + 7} of the hex; ` +
      'tag path RequestMessage/BatchItem/RequestPayload/TemplateAttribute/Attribute/AttributeValue): unknown item type 0x0f\n',
  );
  t.notMatch(badType.err, /\n\s+at /, 'no stack trace');

  const badHex = await run('decode', file('bad.hex', '4200 78\n01 0G'));
  t.equal(badHex.code, 1);
  t.match(badHex.err, /bad hex input: 'G' is not a hex digit at line 2, column 5/);

  const badXml = await run('encode', '--from', 'xml', file('bad.xml', '<RequestMessage>\n  <Operation type="Enumeration" value="Crate"/>\n</RequestMessage>\n'));
  t.equal(badXml.code, 1);
  t.match(badXml.err, /kmipd encode: bad XML input: 'Crate' is not a value of Operation at line 2, column \d+ in RequestMessage\/Operation/);

  const badJson = await run('encode', '--from', 'json', file('bad.json', '{"tag":"RequestMessage","value":[{"tag":"BatchCount","type":"Integer","value":"x"}]}'));
  t.equal(badJson.code, 1);
  t.match(badJson.err, /bad JSON input: .* at \$\.value\[0\]\.value \(line 1, column \d+\) in RequestMessage\/BatchCount/);

  const missing = await run('decode', join(dir, 'nope.hex'));
  t.equal(missing.code, 1);
  t.match(missing.err, /kmipd decode: cannot read .*nope\.hex/);
});

t.test('decode two messages laid end to end; an error in the second names its offset', async (t) => {
  const one = CREATE;
  const two = await run('decode', file('two.hex', one + '\n' + one));
  t.equal(two.code, 0);
  t.equal(two.out.match(/^RequestMessage Structure$/gm)?.length, 2);
  const broken = await run('decode', file('two-broken.hex', one + one.slice(0, 40)));
  t.equal(broken.code, 1);
  t.match(broken.err, /^kmipd decode: Truncated at byte 348 \(line 1, column 697 of the hex; in message 2, which starts at byte 344; tag path RequestMessage\): /);
});

/** Builds dist/ when it is missing or older than the sources this test is about. */
function ensureBuild(): string | undefined {
  const built = resolve(REPO_ROOT, 'dist/src/cli/codec.js');
  const sources = ['src/cli/codec.ts', 'src/cli/commands.ts', 'src/codec/xml.ts', 'src/codec/json.ts', 'src/codec/textvalues.ts'];
  const stale = !existsSync(built) || sources.some((s) => statSync(resolve(REPO_ROOT, s)).mtimeMs > statSync(built).mtimeMs);
  if (stale) {
    // tsc emits even when some other part of the tree has type errors; the check below decides.
    plainNode([resolve(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json']);
  }
  return existsSync(built) ? undefined : 'the build (npx tsc -p tsconfig.build.json) did not produce dist/src/cli/codec.js';
}

/**
 * Runs node on `args` without the loader hooks that tap's process tracking adds to every child
 * node process through NODE_OPTIONS: the bin must run as users run it.
 */
function plainNode(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  return spawnSync('/bin/sh', ['-c', 'NODE_OPTIONS= exec "$0" "$@"', process.execPath, ...args], {
    cwd: REPO_ROOT,
    input,
    encoding: 'utf8',
    timeout: 240_000,
  });
}

t.test('node bin/kmipd decode, with the hex on stdin', (t) => {
  const problem = ensureBuild();
  if (problem) {
    t.fail(problem);
    t.end();
    return;
  }
  const ok = plainNode(['bin/kmipd', 'decode'], CREATE_HEX);
  t.equal(ok.status, 0, ok.stderr);
  t.match(ok.stdout, /^RequestMessage Structure\n/);
  const bad = plainNode(['bin/kmipd', 'decode', '--format', 'xml'], CREATE.slice(0, -20));
  t.equal(bad.status, 1);
  t.equal(bad.stdout, '');
  t.match(bad.stderr, /^kmipd decode: Truncated at byte 4 \(line 1, column 9 of the hex; tag path RequestMessage\)/);
  t.notMatch(bad.stderr, /\n\s+at /, 'no stack trace');
  t.end();
});
