/**
 * The whole OASIS corpus (what `npm run conformance` runs) for some protocol versions, against an
 * in-process kmipd: no test case fails, skips stay under 10 % of the counted test cases, and every
 * profile that Query Profiles claims (src/operations/query-profiles.ts) passes all its mandatory
 * test cases in the versions it is claimed for. Split by version over two test files so that
 * each stays well inside tap's per-file timeout and the two run side by side.
 */
import type { Test } from 'tap';
import { runConformance } from '../../conformance/runner.js';
import { PROFILE_CLAIMS } from '../../src/operations/query-profiles.js';
import { need, vectorsDir } from '../helpers/requirements.js';

export async function fullRun(t: Test, versions: readonly string[]): Promise<void> {
  const v = vectorsDir();
  if (!need(t, v)) return;
  const wanted = new Set(versions);
  const runs = await Promise.all(versions.map((version) => runConformance({ vectorsDir: v.dir, version, jobs: 2 })));
  const records = runs.flatMap((s) => s.records).filter((r) => wanted.has(r.info.version));
  const count = (o: string) => records.filter((r) => r.outcome === o).length;
  t.ok(count('passed') > 0, `${count('passed')} test cases passed`);
  t.same(
    records.filter((r) => r.outcome === 'failed').map((r) => `${r.info.path}: ${r.result?.failure?.detail ?? ''}`),
    [],
    `no test case of KMIP ${versions.join(', ')} fails`,
  );
  const counted = count('passed') + count('failed') + count('skipped');
  t.ok(count('skipped') < counted * 0.1, `skips under 10 %: ${count('skipped')} of ${counted}`);
  for (const r of records.filter((x) => x.outcome === 'skipped' || x.outcome === 'out-of-scope')) t.ok(r.reason, `${r.info.path}: ${r.outcome} with a reason`);
  for (const claim of PROFILE_CLAIMS) {
    for (const version of claim.versions.filter((x) => wanted.has(x))) {
      const mandatory = records.filter((r) => r.info.profile === claim.set && r.info.version === version && r.info.requirement === 'M' && (r.outcome === 'passed' || r.outcome === 'failed'));
      t.ok(mandatory.length > 0, `${claim.set} ${version}: mandatory test cases exist`);
      t.ok(
        mandatory.every((r) => r.outcome === 'passed'),
        `${claim.name} ${version} (claimed by Query Profiles): all ${mandatory.length} mandatory test cases pass`,
      );
    }
  }
}
