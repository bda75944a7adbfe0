/**
 * Which OASIS XML test-case files make which profile × protocol version, derived from the
 * folder and file names of the vectors corpus (../shared/kmip-vectors, see its SOURCES.md):
 *
 * - `cosmian-kmip/vX.Y/XML/{mandatory,optional}/` — the OASIS Profiles test cases (v1.0 for
 *   protocol 1.0-1.2, v1.3, v1.4, v2.0, v2.1; v3.0 is out of scope);
 * - `cosmian-kmip/website/kmip-profiles/...` — the three Profiles v2.0 csd01 files;
 * - `cosmian-kmip/website/{testcases,kmip-testcases}/vX.Y/STAGE/...` — the non-normative KMIP
 *   Test Cases notes (1.3, 1.4, 2.0, 2.1) in their draft stages;
 * - `ovh-kmip-go/kmiptest/testdata/v1.0..v1.4/` — OVH's 1.0-1.4 set (OASIS profile and Test
 *   Cases transcripts, some renamed `SKLC_M_1_10_SymmetricKeyLifecycle_1.xml`).
 *
 * A test-case id is the OASIS label: PREFIX-(M|O)-N-VV for profile tests (`SKLC-M-1-14`,
 * `SUITEB_128-M-1-14`), TC-NAME-N-VV for Test Cases (`TC-Q-CAP-1-14`, `TC-311-10`), where VV is
 * the protocol version (10 = 1.0 … 21 = 2.1).
 */
import { basename } from 'node:path';

export const VERSIONS = ['1.0', '1.1', '1.2', '1.3', '1.4', '2.0', '2.1', '3.0'] as const;
export type Version = (typeof VERSIONS)[number];

/** The rows of the report, in order. */
export const PROFILES = [
  { key: 'BL', label: 'Baseline' },
  { key: 'SKLC', label: 'Symmetric Key Lifecycle' },
  { key: 'SKFF', label: 'Symmetric Key Foundry' },
  { key: 'AKLC', label: 'Asymmetric Key Lifecycle' },
  { key: 'OMOS', label: 'Opaque Managed Object Store' },
  { key: 'CS-BC', label: 'Basic Cryptographic' },
  { key: 'CS-AC', label: 'Advanced Cryptographic' },
  { key: 'CS-RNG', label: 'RNG Cryptographic' },
  { key: 'TL', label: 'Tape Library' },
  { key: 'SASED', label: 'Storage Array with Self-Encrypting Drives' },
  { key: 'SUITEB', label: 'Suite B' },
  { key: 'AX', label: 'AX' },
  { key: 'QS', label: 'Quantum Safe' },
  { key: 'PKCS11', label: 'PKCS#11' },
  { key: 'MSGENC', label: 'Message encodings (replayed over TTLV)' },
  { key: 'QUERY', label: 'Query and Discover Versions (Test Cases)' },
  { key: 'TC', label: 'Test Cases (other)' },
] as const;
export type ProfileKey = (typeof PROFILES)[number]['key'];

export type Source = 'oasis-profiles' | 'oasis-testcases' | 'ovh';

export const SOURCE_LABELS: Record<Source, string> = {
  'oasis-profiles': 'OASIS Profiles test cases',
  'oasis-testcases': 'OASIS KMIP Test Cases notes (non-normative)',
  ovh: 'OVH 1.0-1.4 set',
};

/** M: mandatory, O: optional (profile tests); TC: a Test Cases note test (non-normative). */
export type Requirement = 'M' | 'O' | 'TC';

export interface TestCaseInfo {
  /** Path relative to the vectors folder, `/`-separated: the test case's unique key. */
  path: string;
  /** The OASIS label, e.g. SKLC-M-1-14; for a file without one, its base name. */
  id: string;
  /** From the id's version digits, else from the folder. */
  version: Version;
  profile: ProfileKey;
  requirement: Requirement;
  source: Source;
  /** The specification stage of the folder (os, cos01, csprd01, cnd02, …); `ovh` for the OVH set. */
  stage: string;
  /** What else is known about the file: an OVH variant, a reformatted copy, … */
  notes: string[];
}

const VERSION_DIGITS: Record<string, Version> = {
  '10': '1.0',
  '11': '1.1',
  '12': '1.2',
  '13': '1.3',
  '14': '1.4',
  '20': '2.0',
  '21': '2.1',
  '30': '3.0',
};

/** The stage of each OASIS Profiles folder, as SOURCES.md records it. */
const PROFILE_FOLDER_STAGE: Record<string, string> = {
  'v1.0': 'os',
  'v1.3': 'cos01',
  'v1.4': 'os',
  'v2.0': 'csprd01',
  'v2.1': 'os',
  'v3.0': 'csd01',
};

/** Later stages of one document supersede earlier ones. */
const STAGE_RANK: Record<string, number> = {
  csd01: 1,
  cnd01: 1,
  csprd01: 2,
  cnprd01: 2,
  cnd02: 3,
  cs01: 4,
  cos01: 4,
  cn01: 5,
  os: 6,
};

export function stageRank(stage: string): number {
  return STAGE_RANK[stage] ?? 0;
}

/**
 * Splits a file's base name into the OASIS label and what follows it. Separators may be `-` or
 * `_` (OVH: `SKFF_M_10_10_SymmetricKeyFoundryAdvanced_10`, `TC_311_10_Create_Destroy`).
 */
export function parseTestCaseName(file: string): { id: string; versionDigits?: string; rest: string } {
  const name = basename(file).replace(/\.xml$/i, '');
  const m = /^(.*?[A-Za-z].*?)[-_](\d+)[-_](1[0-4]|2[01]|30)(?=$|[-_])/.exec(name);
  if (!m) return { id: name, rest: '' };
  let prefix = m[1]!.replace(/_/g, '-');
  prefix = prefix.replace(/^SUITEB-(128|192)\b/, 'SUITEB_$1');
  return { id: `${prefix}-${m[2]}-${m[3]}`, versionDigits: m[3]!, rest: name.slice(m[0].length).replace(/^[-_]/, '') };
}

function profileOf(id: string): { profile: ProfileKey; requirement: Requirement } {
  const up = id.toUpperCase();
  if (up.startsWith('TC-')) {
    // Query / Discover Versions Test Cases: TC-Q-* (1.3+), §12.1/12.2 Query and §16.1 Discover
    // Versions of the 1.0-1.2 Test Cases (TC-121, TC-122, TC-161).
    if (/^TC-Q-/.test(up) || /^TC-(121|122|161)-/.test(up)) return { profile: 'QUERY', requirement: 'TC' };
    return { profile: 'TC', requirement: 'TC' };
  }
  const m = /^(.*?)-([MO])-/.exec(up);
  const requirement: Requirement = m?.[2] === 'O' ? 'O' : 'M';
  const head = m?.[1] ?? up;
  const table: [RegExp, ProfileKey][] = [
    [/^BL$/, 'BL'],
    [/^SKLC$/, 'SKLC'],
    [/^SKFF$/, 'SKFF'],
    [/^AKLC$/, 'AKLC'],
    [/^OMOS$/, 'OMOS'],
    [/^CS-BC\b/, 'CS-BC'],
    [/^CS-AC\b/, 'CS-AC'],
    [/^CS-RNG\b/, 'CS-RNG'],
    [/^TL$/, 'TL'],
    [/^SASED$/, 'SASED'],
    [/^SUITEB/, 'SUITEB'],
    [/^AX$/, 'AX'],
    [/^QS$/, 'QS'],
    [/^PKCS11$/, 'PKCS11'],
    [/^MSGENC\b/, 'MSGENC'],
  ];
  for (const [re, key] of table) if (re.test(head)) return { profile: key, requirement };
  return { profile: 'TC', requirement: 'TC' };
}

/** Classifies one file by its path relative to the vectors folder. */
export function classify(path: string): TestCaseInfo {
  const rel = path.replace(/\\/g, '/');
  const parts = rel.split('/');
  const file = parts[parts.length - 1]!;
  const parsed = parseTestCaseName(file);
  const notes: string[] = [];
  let source: Source;
  let stage: string;
  let folderVersion: string | undefined;

  if (parts[0] === 'ovh-kmip-go') {
    source = 'ovh';
    stage = 'ovh';
    folderVersion = parts.find((p) => /^v\d\.\d$/.test(p));
    if (/_okms/.test(file)) notes.push("OVH's modification for its own KMS");
    else if (/^TC-311-10-CREATE-DESTROY|^TC-SK-CREATE-ENCRYPT/.test(file)) notes.push('written by OVH, not OASIS');
    else if (parsed.rest !== '' && /^CS[-_]BC/.test(file)) notes.push('OVH reformatted copy');
  } else if (parts[0] === 'cosmian-kmip' && parts[1] === 'website') {
    const vi = parts.findIndex((p) => /^v\d\.\d$/.test(p));
    folderVersion = parts[vi];
    stage = parts[vi + 1] ?? '';
    source = /testcases/.test(parts[2] ?? '') ? 'oasis-testcases' : 'oasis-profiles';
  } else {
    source = 'oasis-profiles';
    folderVersion = parts[1];
    stage = PROFILE_FOLDER_STAGE[folderVersion ?? ''] ?? '';
  }

  const version: Version =
    (parsed.versionDigits ? VERSION_DIGITS[parsed.versionDigits] : undefined) ??
    ((folderVersion?.slice(1) as Version | undefined) && VERSIONS.includes(folderVersion!.slice(1) as Version)
      ? (folderVersion!.slice(1) as Version)
      : '1.0');
  const { profile, requirement } = profileOf(parsed.id);
  return { path: rel, id: parsed.id, version, profile, requirement, source, stage, notes };
}

/** The document a file belongs to, for finding later stages of the same file. */
function documentKey(info: TestCaseInfo): string | undefined {
  if (info.source === 'ovh') return undefined;
  const v = /\/(v\d\.\d)\//.exec(`/${info.path}`)?.[1] ?? '';
  return `${info.source}/${v}/${basename(info.path)}`;
}

/**
 * For each file that a later stage of the same OASIS document also holds, the path of the
 * latest such file (e.g. Test Cases v2.0 cnd01 -> cnd02 -> cn01).
 */
export function supersededBy(infos: readonly TestCaseInfo[]): Map<string, string> {
  const latest = new Map<string, TestCaseInfo>();
  for (const i of infos) {
    const k = documentKey(i);
    if (k === undefined) continue;
    const cur = latest.get(k);
    if (!cur || stageRank(i.stage) > stageRank(cur.stage)) latest.set(k, i);
  }
  const out = new Map<string, string>();
  for (const i of infos) {
    const k = documentKey(i);
    if (k === undefined) continue;
    const best = latest.get(k)!;
    if (best.path !== i.path && stageRank(best.stage) > stageRank(i.stage)) out.set(i.path, best.path);
  }
  return out;
}

export function profileLabel(key: ProfileKey): string {
  return PROFILES.find((p) => p.key === key)?.label ?? key;
}

/** A row of the report: a profile, split into mandatory and optional where it has both. */
export function rowLabel(info: Pick<TestCaseInfo, 'profile' | 'requirement'>): string {
  const base = profileLabel(info.profile);
  if (info.requirement === 'TC') return base;
  return `${base} (${info.requirement === 'M' ? 'mandatory' : 'optional'})`;
}

/** Does `pattern` (case-insensitive; `*` any run, `?` one character) match the whole of `s`? */
export function globMatch(pattern: string, s: string): boolean {
  const re = new RegExp(
    '^' +
      pattern
        .split('')
        .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
        .join('') +
      '$',
    'i',
  );
  return re.test(s);
}

/** A filter matches a test case by its id, its path, or its file name. */
export function matchesFilter(info: TestCaseInfo, pattern: string): boolean {
  return globMatch(pattern, info.id) || globMatch(pattern, info.path) || globMatch(pattern, basename(info.path));
}

/** `--profile`: the key (SKLC, CS-BC, QUERY) or a part of the label, case-insensitive. */
export function matchesProfile(info: TestCaseInfo, wanted: string): boolean {
  const w = wanted.toLowerCase();
  return info.profile.toLowerCase() === w || profileLabel(info.profile).toLowerCase().includes(w);
}

/**
 * Test cases that work on objects an earlier test case of the same folder leaves on the server
 * (the OASIS transcripts assume they run in order against one server): the dependent test case
 * runs in the same session right after its prerequisites.
 */
export const PREREQUISITES: readonly { dependent: RegExp; requires: (m: RegExpExecArray) => string[] }[] = [
  // Tape Library: TL-M-3 (read) locates the key TL-M-2 (write with a new key) created.
  { dependent: /^TL-M-3-(\d\d)$/, requires: (m) => [`TL-M-2-${m[1]}`] },
  // Storage Array: SASED-M-3 (retrieve) finds the key SASED-M-2 (register) registered.
  { dependent: /^SASED-M-3-(\d\d)$/, requires: (m) => [`SASED-M-2-${m[1]}`] },
  // Client registration: TC-CREG-2 and -3 locate the objects TC-CREG-1 registered.
  { dependent: /^TC-CREG-[23]-(\d\d)$/, requires: (m) => [`TC-CREG-1-${m[1]}`] },
  // One-time pad: TC-OTP-3 reads the metadata-only pad TC-OTP-SETUP-2 registers; the other
  // TC-OTP-n and the clean-up use the pad with key material of TC-OTP-SETUP-1.
  { dependent: /^TC-OTP-3-(\d\d)$/, requires: (m) => [`TC-OTP-SETUP-2-${m[1]}`] },
  { dependent: /^TC-OTP-(?:[0-24-9]|\d\d+|CLEANUP-\d+)-(\d\d)$/, requires: (m) => [`TC-OTP-SETUP-1-${m[1]}`] },
];

/**
 * The prerequisites of a test case, found in its own folder. `missing` names any the corpus
 * does not have there.
 */
export function prerequisitesOf(info: TestCaseInfo, all: readonly TestCaseInfo[]): { paths: string[]; missing: string[] } {
  const dir = info.path.slice(0, info.path.lastIndexOf('/'));
  const paths: string[] = [];
  const missing: string[] = [];
  for (const p of PREREQUISITES) {
    const m = p.dependent.exec(info.id);
    if (!m) continue;
    for (const id of p.requires(m)) {
      const found = all.find((i) => i.id === id && i.path.slice(0, i.path.lastIndexOf('/')) === dir);
      if (found) paths.push(found.path);
      else missing.push(id);
    }
  }
  return { paths, missing };
}
