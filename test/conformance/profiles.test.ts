/**
 * Query Profiles claims only what kmipd passes: for every profile and protocol version in
 * src/operations/query-profiles.ts, every mandatory OASIS test case of that set and version
 * passes against an in-process kmipd (one run over all of them, ~250 test cases).
 */
import t from 'tap';
import { listXmlFiles, runConformance } from '../../conformance/runner.js';
import { classify } from '../../conformance/sets.js';
import { PROFILE_CLAIMS } from '../../src/operations/query-profiles.js';
import { need, vectorsDir } from '../helpers/requirements.js';

t.test('every claimed profile passes its mandatory test cases', async (t) => {
  const v = vectorsDir();
  if (!need(t, v)) return;
  const claimed = (p: string, version: string) => PROFILE_CLAIMS.some((c) => c.set === p && (c.versions as readonly string[]).includes(version));
  const files = listXmlFiles(v.dir)
    .map(classify)
    .filter((i) => i.requirement === 'M' && claimed(i.profile, i.version))
    .map((i) => i.path);
  const s = await runConformance({ vectorsDir: v.dir, files, jobs: 4 });
  for (const claim of PROFILE_CLAIMS) {
    for (const version of claim.versions) {
      const run = s.records.filter((r) => r.info.profile === claim.set && r.info.version === version && (r.outcome === 'passed' || r.outcome === 'failed'));
      t.ok(run.length > 0, `${claim.set} ${version}: mandatory test cases exist`);
      t.same(
        run.filter((r) => r.outcome !== 'passed').map((r) => `${r.info.path}: ${r.result?.failure?.detail ?? ''}`),
        [],
        `${claim.name} ${version}: all ${run.length} mandatory test cases pass`,
      );
    }
  }
});
