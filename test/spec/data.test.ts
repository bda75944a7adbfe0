import t, { type Test } from 'tap';
import { loadData, VERSIONS } from '../../src/spec/generate.js';
import { ENUM_INFO, MASK_INFO, TAG_INFO, KMIP_VERSIONS, type EnumInfo } from '../../src/spec/index.js';

const vi = (v: string): number => (VERSIONS as readonly string[]).indexOf(v);
const inV = (x: { since: string; until?: string }, v: string): boolean =>
  vi(x.since) <= vi(v) && (x.until === undefined || vi(v) <= vi(x.until));

t.test('versions', (t) => {
  t.same([...KMIP_VERSIONS], [...VERSIONS]);
  t.end();
});

t.test('tags: numbers and names unique per version, ranges sane, enum/mask references resolve', (t) => {
  const enums = new Set(ENUM_INFO.map((e) => e.name));
  const masks = new Set(MASK_INFO.map((e) => e.name));
  const problems: string[] = [];
  for (const v of VERSIONS) {
    const inThis = TAG_INFO.filter((x) => inV(x, v));
    const nums = new Set(inThis.map((x) => x.tag));
    const names = new Set(inThis.map((x) => x.name));
    if (nums.size !== inThis.length) problems.push(`${v}: duplicate tag number`);
    if (names.size !== inThis.length) problems.push(`${v}: duplicate tag name`);
    t.comment(`KMIP ${v}: ${inThis.length} tags`);
  }
  const allNames = new Set<string>();
  for (const x of TAG_INFO) {
    if (allNames.has(x.name)) problems.push(`tag name ${x.name} used twice`);
    allNames.add(x.name);
    if (vi(x.since) < 0 || (x.until !== undefined && vi(x.until) < vi(x.since))) problems.push(`${x.name}: since/until`);
    if (x.tag < 0x420001 || x.tag > 0x42ffff) problems.push(`${x.name}: ${x.tag.toString(16)} outside 0x420001-0x42FFFF`);
    const types = x.type === undefined ? [] : typeof x.type === 'string' ? [x.type] : [...x.type];
    if (types.includes('Enumeration') && (x.enum === undefined || !enums.has(x.enum))) problems.push(`${x.name}: Enumeration without a known enum (${x.enum})`);
    if (x.enum !== undefined && !types.includes('Enumeration')) problems.push(`${x.name}: enum on a non-Enumeration tag`);
    if (x.mask !== undefined && (!masks.has(x.mask) || !types.includes('Integer'))) problems.push(`${x.name}: bad mask ${x.mask}`);
  }
  t.same(problems, [], 'no problems');
  t.end();
});

function checkEnums(t: Test, list: readonly EnumInfo[], kind: string, isMask: boolean): void {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const e of list) {
    if (seen.has(e.name)) problems.push(`${kind} ${e.name} twice`);
    seen.add(e.name);
    if (e.until !== undefined && vi(e.until) < vi(e.since)) problems.push(`${e.name}: since/until`);
    const names = new Set<string>();
    for (const x of e.values) {
      if (names.has(x.name)) problems.push(`${e.name}.${x.name}: name used twice`);
      names.add(x.name);
      if (vi(x.since) < 0 || (x.until !== undefined && vi(x.until) < vi(x.since))) problems.push(`${e.name}.${x.name}: since/until`);
      if (vi(x.since) < vi(e.since)) problems.push(`${e.name}.${x.name}: since ${x.since} before the enumeration (${e.since})`);
      if (isMask && (x.value === 0 || (x.value & (x.value - 1)) !== 0)) problems.push(`${e.name}.${x.name}: not a single bit`);
      if (!isMask && e.name !== 'Tag' && x.value >= 0x80000000) problems.push(`${e.name}.${x.name}: extension value listed`);
    }
    for (const v of VERSIONS) {
      const inThis = e.values.filter((x) => inV(x, v));
      if (new Set(inThis.map((x) => x.value)).size !== inThis.length) problems.push(`${e.name} ${v}: duplicate value`);
      if (new Set(inThis.map((x) => x.name)).size !== inThis.length) problems.push(`${e.name} ${v}: duplicate name`);
    }
  }
  t.same(problems, [], `${kind}: no problems`);
  for (const v of VERSIONS) {
    const es = list.filter((e) => inV(e, v));
    const n = es.reduce((s, e) => s + e.values.filter((x) => inV(x, v)).length, 0);
    t.comment(`KMIP ${v}: ${es.length} ${kind}, ${n} values`);
  }
}

t.test('enumerations: values unique within an enum per version, ranges sane', (t) => {
  checkEnums(t, ENUM_INFO, 'enumerations', false);
  t.end();
});

t.test('masks: single bits, unique per version', (t) => {
  checkEnums(t, MASK_INFO, 'masks', true);
  t.end();
});

t.test('the JSON is the source: TAG_INFO mirrors tags.json', (t) => {
  const data = loadData();
  t.equal(TAG_INFO.length, data.tags.length);
  t.equal(ENUM_INFO.length, data.enums.length);
  t.equal(MASK_INFO.length, data.masks.length);
  t.end();
});
