/**
 * Every name the OASIS XML test corpus (KMIP 1.0-2.1; the v3.0 folders are skipped) uses for a
 * tag (element name), an enumeration value (type="Enumeration") or a mask bit (the symbolic form
 * of CryptographicUsageMask-like Integers) must be in the dictionary.
 *
 * The reader is tolerant on purpose: some files start with a "# ..." line, one has a duplicated
 * </KMIP>, "# TIME n" lines sit between elements, and values may be hex (0x...) or $PLACEHOLDERs.
 */
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { need, vectorsDir } from '../helpers/requirements.js';
import { enumInfo, maskInfo, tagByName, type EnumInfo } from '../../src/spec/index.js';

/** Elements of the XML encoding itself rather than KMIP tags. */
const CONTAINERS = new Set(['KMIP', 'KmipTestCase', 'TTLV']);

function xmlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name === 'v3.0') continue;
      out.push(...xmlFiles(p));
    } else if (e.name.endsWith('.xml')) {
      out.push(p);
    }
  }
  return out.sort();
}

interface Element {
  name: string;
  attrs: Map<string, string>;
}

const ELEMENT = /<([A-Za-z_][\w.-]*)((?:\s+[\w:]+\s*=\s*"[^"]*")*)\s*\/?>/g;
const ATTR = /([\w:]+)\s*=\s*"([^"]*)"/g;

function* elements(xml: string): Generator<Element> {
  const text = xml.replace(/<!--[\s\S]*?-->/g, '').replace(/<\?[\s\S]*?\?>/g, '');
  for (const m of text.matchAll(ELEMENT)) {
    const attrs = new Map<string, string>();
    for (const a of (m[2] ?? '').matchAll(ATTR)) attrs.set(a[1] ?? '', decode(a[2] ?? ''));
    yield { name: m[1] ?? '', attrs };
  }
}

function decode(s: string): string {
  return s
    .replace(/&#x([0-9a-fA-F]+);/g, (_, h: string) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCodePoint(parseInt(d, 10)))
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');
}

/** Hex numbers, decimal numbers and $PLACEHOLDERs are legal values but not names. */
function isName(v: string): boolean {
  return v !== '' && !/^(0x[0-9a-fA-F]+|-?\d+)$/.test(v) && !v.startsWith('$');
}

function valueNames(e: EnumInfo): Set<string> {
  const s = new Set<string>();
  for (const v of e.values) {
    s.add(v.name);
    for (const a of v.aliases ?? []) s.add(a);
  }
  return s;
}

/** Names used from the `aliases` list (recorded exceptions): reported, not failed. */
function primaryNames(e: EnumInfo): Set<string> {
  return new Set(e.values.map((v) => v.name));
}

t.test('every tag, enumeration value and mask bit name in the OASIS XML corpus is in the dictionary', (t) => {
  const v = vectorsDir();
  if (!need(t, v)) return;
  const files = xmlFiles(v.dir);
  t.ok(files.length > 1000, `${files.length} XML files of KMIP 1.0-2.1`);

  const missing = new Map<string, Set<string>>(); // problem -> files
  const aliasUses = new Map<string, number>();
  let elementCount = 0;
  let enumCount = 0;
  let maskCount = 0;
  const note = (problem: string, file: string): void => {
    let s = missing.get(problem);
    if (!s) missing.set(problem, (s = new Set()));
    s.add(relative(v.dir, file).split(sep).join('/'));
  };

  for (const file of files) {
    const xml = readFileSync(file, 'utf8');
    let attributeName: string | undefined; // sibling AttributeName of the next AttributeValue (1.x)
    for (const el of elements(xml)) {
      if (CONTAINERS.has(el.name)) continue;
      elementCount++;
      const tag = tagByName(el.name);
      if (!tag) {
        note(`unknown element <${el.name}>`, file);
        continue;
      }
      const type = el.attrs.get('type');
      const value = el.attrs.get('value') ?? '';
      if (el.name === 'AttributeName') attributeName = value;

      // Which enumeration / mask governs this value?
      let subject = tag;
      if (el.name === 'AttributeValue') {
        const attr = attributeName === undefined ? undefined : tagByName(attributeName);
        if (!attr) {
          // Custom ("x-"/"y-") and vendor attributes are not in the dictionary; their values may be numbers.
          if ((type === 'Enumeration' || type === 'Integer') && isName(value)) {
            note(`symbolic AttributeValue "${value}" for unknown attribute "${attributeName}"`, file);
          }
          continue;
        }
        subject = attr;
      }

      if (type === 'Enumeration' && isName(value)) {
        enumCount++;
        const e = subject.enum === undefined ? undefined : enumInfo(subject.enum);
        if (!e) {
          note(`<${el.name}> (${subject.name}) is an Enumeration but has no enumeration in the dictionary`, file);
        } else if (!valueNames(e).has(value)) {
          note(`${e.name}: unknown value "${value}"`, file);
        } else if (!primaryNames(e).has(value)) {
          aliasUses.set(`${e.name}.${value}`, (aliasUses.get(`${e.name}.${value}`) ?? 0) + 1);
        }
      } else if (type === 'Integer' && subject.mask !== undefined) {
        const m = maskInfo(subject.mask);
        const words = value.split(/\s+/).filter(isName);
        for (const w of words) {
          maskCount++;
          if (!m || !valueNames(m).has(w)) note(`${subject.mask}: unknown bit "${w}"`, file);
          else if (!primaryNames(m).has(w)) aliasUses.set(`${m.name}.${w}`, (aliasUses.get(`${m.name}.${w}`) ?? 0) + 1);
        }
      } else if (type === 'Integer' && isName(value.split(/\s+/)[0] ?? '')) {
        note(`<${el.name}> (${subject.name}) has symbolic Integer "${value}" but is not a mask`, file);
      }
    }
  }

  t.comment(`checked ${elementCount} elements, ${enumCount} enumeration values, ${maskCount} mask bit names`);
  for (const [k, n] of [...aliasUses].sort()) t.comment(`recorded exception (alias) used: ${k} x${n}`);
  const report = [...missing].map(([p, fs]) => `${p}  [${fs.size} file(s), e.g. ${[...fs][0]}]`).sort();
  for (const r of report) t.comment(r);
  t.same(report, [], 'no corpus name is missing from the dictionary');
  t.end();
});
