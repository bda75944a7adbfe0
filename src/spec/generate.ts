/**
 * Generates src/spec/generated.ts from the dictionary data in src/spec/data/*.json.
 *
 * `generate()` is pure apart from reading the JSON files: it returns the TypeScript source. Run as
 * a program (`npm run gen:spec`, i.e. `node dist/src/spec/generate.js` after the build) it writes
 * src/spec/generated.ts. test/spec/generated.test.ts fails when the committed file is stale.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isItemTypeName } from '../ttlv/types.js';

export const VERSIONS = ['1.0', '1.1', '1.2', '1.3', '1.4', '2.0', '2.1'] as const;
type Version = (typeof VERSIONS)[number];

interface RawTag {
  name: string;
  specName: string;
  tag: string;
  type?: string | string[];
  since: string;
  until?: string;
  deprecated?: string;
  enum?: string;
  mask?: string;
  ref?: string;
  note?: string;
}

interface RawValue {
  name: string;
  specName: string;
  value: string;
  since: string;
  until?: string;
  deprecated?: string;
  aliases?: string[];
  specAliases?: string[];
  note?: string;
}

interface RawEnum {
  name: string;
  specName: string;
  since: string;
  until?: string;
  ref?: string;
  note?: string;
  /** "tags": the values are the tags of tags.json (the 2.x Tag enumeration). */
  valuesFrom?: 'tags';
  values?: RawValue[];
}

export interface SpecData {
  tags: RawTag[];
  enums: RawEnum[];
  masks: RawEnum[];
}

/** The repository root: the nearest directory above this module with a package.json (works from src/ and dist/src/). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(resolve(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

export function dataDir(): string {
  return resolve(repoRoot(), 'src', 'spec', 'data');
}

export function loadData(dir = dataDir()): SpecData {
  const read = <T>(f: string, key: string): T => {
    const doc = JSON.parse(readFileSync(resolve(dir, f), 'utf8')) as Record<string, unknown>;
    const v = doc[key];
    if (!Array.isArray(v)) throw new Error(`${f}: missing array "${key}"`);
    return v as T;
  };
  return {
    tags: read<RawTag[]>('tags.json', 'tags'),
    enums: read<RawEnum[]>('enums.json', 'enums'),
    masks: read<RawEnum[]>('masks.json', 'masks'),
  };
}

// ---------------------------------------------------------------------------------------------
// Validation: the generator refuses malformed data rather than emitting something odd.

function version(v: string | undefined, what: string): Version | undefined {
  if (v === undefined) return undefined;
  if (!(VERSIONS as readonly string[]).includes(v)) throw new Error(`${what}: bad version ${JSON.stringify(v)}`);
  return v as Version;
}

function hex(s: string, digits: number, what: string): number {
  if (!new RegExp(`^0x[0-9A-F]{${digits}}$`).test(s)) throw new Error(`${what}: bad number ${JSON.stringify(s)}`);
  return parseInt(s.slice(2), 16);
}

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function key(name: string): string {
  return IDENT.test(name) ? name : q(name);
}

function q(s: string): string {
  return "'" + s.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n') + "'";
}

function h(n: number): string {
  return '0x' + n.toString(16).toUpperCase();
}

function opt(fields: [string, string | undefined][]): string {
  return fields
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ');
}

function strList(xs: readonly string[] | undefined): string | undefined {
  return xs === undefined || xs.length === 0 ? undefined : '[' + xs.map(q).join(', ') + ']';
}

interface Value {
  name: string;
  specName: string;
  value: number;
  since: Version;
  until?: Version;
  deprecated?: Version;
  aliases?: string[];
  specAliases?: string[];
  note?: string;
}

interface Enum {
  name: string;
  specName: string;
  since: Version;
  until?: Version;
  ref?: string;
  note?: string;
  values: Value[];
}

function checkValues(e: RawEnum, vs: RawValue[], isMask: boolean): Value[] {
  return vs.map((v) => {
    const what = `${e.name}.${v.name}`;
    const value = hex(v.value, 8, what);
    if (isMask && (value === 0 || (value & (value - 1)) !== 0)) throw new Error(`${what}: mask value is not a single bit`);
    return {
      name: v.name,
      specName: v.specName,
      value,
      since: version(v.since, what) as Version,
      until: version(v.until, what),
      deprecated: version(v.deprecated, what),
      aliases: v.aliases,
      specAliases: v.specAliases,
      note: v.note,
    };
  });
}

function resolveEnums(data: SpecData): { enums: Enum[]; masks: Enum[] } {
  const tagValues = (): Value[] =>
    data.tags
      .filter((t) => t.until === undefined || VERSIONS.indexOf(t.until as Version) >= VERSIONS.indexOf('2.0'))
      .map((t) => ({
        name: t.name,
        specName: t.specName,
        value: hex(t.tag, 6, t.name),
        since: VERSIONS.indexOf(t.since as Version) < VERSIONS.indexOf('2.0') ? '2.0' : (t.since as Version),
        until: version(t.until, t.name),
      }));
  const conv = (e: RawEnum, isMask: boolean): Enum => ({
    name: e.name,
    specName: e.specName,
    since: version(e.since, e.name) as Version,
    until: version(e.until, e.name),
    ref: e.ref,
    note: e.note,
    values: e.valuesFrom === 'tags' ? tagValues() : checkValues(e, e.values ?? [], isMask),
  });
  return { enums: data.enums.map((e) => conv(e, false)), masks: data.masks.map((e) => conv(e, true)) };
}

// ---------------------------------------------------------------------------------------------

export function generate(data: SpecData = loadData()): string {
  const { enums, masks } = resolveEnums(data);
  const out: string[] = [];
  const w = (s = ''): void => {
    out.push(s);
  };

  w('// GENERATED FILE - DO NOT EDIT.');
  w('// Generated by src/spec/generate.ts from src/spec/data/tags.json, enums.json and masks.json.');
  w('// Edit the JSON, then run `npm run gen:spec`; test/spec/generated.test.ts fails when this file is stale.');
  w("import type { EnumInfo, TagInfo } from './index.js';");
  w();
  w(`export type KmipVersion = ${VERSIONS.map(q).join(' | ')};`);
  w();
  w('/** The KMIP versions this dictionary covers, oldest first. */');
  w(`export const KMIP_VERSIONS: readonly KmipVersion[] = [${VERSIONS.map(q).join(', ')}];`);
  w();

  // Tag constants
  const seenTagNames = new Set<string>();
  const seenTags = new Set<number>();
  w('/** Normalised tag name to tag number, for every tag defined in any of KMIP 1.0-2.1. */');
  w('export const Tag = {');
  for (const t of data.tags) {
    const n = hex(t.tag, 6, t.name);
    if (seenTagNames.has(t.name)) throw new Error(`duplicate tag name ${t.name}`);
    if (seenTags.has(n)) throw new Error(`duplicate tag ${t.tag}`);
    seenTagNames.add(t.name);
    seenTags.add(n);
    w(`  ${key(t.name)}: ${h(n)},`);
  }
  w('} as const;');
  w();
  w('export type TagName = keyof typeof Tag;');
  w();

  const constObject = (title: string, constName: string, list: Enum[]): void => {
    w(`/** ${title} */`);
    w(`export const ${constName} = {`);
    for (const e of list) {
      w(`  ${key(e.name)}: {`);
      const names = new Set<string>();
      for (const v of e.values) {
        if (names.has(v.name)) throw new Error(`${e.name}: duplicate value name ${v.name}`);
        names.add(v.name);
        w(`    ${key(v.name)}: ${h(v.value)},`);
      }
      w('  },');
    }
    w('} as const;');
    w();
  };
  constObject('Enumeration name to value name to value (normalised names; every value of any version).', 'Enums', enums);
  w('export type EnumName = keyof typeof Enums;');
  w('export type EnumValueName<E extends EnumName> = keyof (typeof Enums)[E] & string;');
  w();
  constObject('Bit mask name to bit name to bit value (normalised names; every bit of any version).', 'Masks', masks);
  w('export type MaskName = keyof typeof Masks;');
  w('export type MaskBitName<M extends MaskName> = keyof (typeof Masks)[M] & string;');
  w();

  // TAG_INFO
  w('export const TAG_INFO: readonly TagInfo[] = [');
  for (const t of data.tags) {
    let type: string | undefined;
    if (t.type !== undefined) {
      const types = Array.isArray(t.type) ? t.type : [t.type];
      for (const x of types) if (!isItemTypeName(x)) throw new Error(`${t.name}: bad item type ${x}`);
      type = Array.isArray(t.type) ? strList(t.type) : q(t.type);
    }
    w(
      '  { ' +
        opt([
          ['tag', h(hex(t.tag, 6, t.name))],
          ['name', q(t.name)],
          ['specName', q(t.specName)],
          ['type', type],
          ['since', q(version(t.since, t.name) as string)],
          ['until', version(t.until, t.name) && q(t.until as string)],
          ['deprecated', version(t.deprecated, t.name) && q(t.deprecated as string)],
          ['enum', t.enum === undefined ? undefined : q(t.enum)],
          ['mask', t.mask === undefined ? undefined : q(t.mask)],
          ['ref', t.ref === undefined ? undefined : q(t.ref)],
          ['note', t.note === undefined ? undefined : q(t.note)],
        ]) +
        ' },',
    );
  }
  w('];');
  w();

  const infoList = (constName: string, list: Enum[]): void => {
    w(`export const ${constName}: readonly EnumInfo[] = [`);
    for (const e of list) {
      w('  {');
      w(
        '    ' +
          opt([
            ['name', q(e.name)],
            ['specName', q(e.specName)],
            ['since', q(e.since)],
            ['until', e.until && q(e.until)],
            ['ref', e.ref === undefined ? undefined : q(e.ref)],
            ['note', e.note === undefined ? undefined : q(e.note)],
          ]) +
          ',',
      );
      w('    values: [');
      for (const v of e.values) {
        w(
          '      { ' +
            opt([
              ['name', q(v.name)],
              ['specName', q(v.specName)],
              ['value', h(v.value)],
              ['since', q(v.since)],
              ['until', v.until && q(v.until)],
              ['deprecated', v.deprecated && q(v.deprecated)],
              ['aliases', strList(v.aliases)],
              ['specAliases', strList(v.specAliases)],
              ['note', v.note === undefined ? undefined : q(v.note)],
            ]) +
            ' },',
        );
      }
      w('    ],');
      w('  },');
    }
    w('];');
    w();
  };
  infoList('ENUM_INFO', enums);
  infoList('MASK_INFO', masks);

  return out.join('\n');
}

export function generatedPath(): string {
  return resolve(repoRoot(), 'src', 'spec', 'generated.ts');
}

const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const path = generatedPath();
  writeFileSync(path, generate());
  process.stdout.write(`wrote ${path}\n`);
}
