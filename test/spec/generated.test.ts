import t from 'tap';
import { readFileSync } from 'node:fs';
import { generate, generatedPath } from '../../src/spec/generate.js';

t.test('src/spec/generated.ts is what generate() produces from src/spec/data/*.json', (t) => {
  const committed = readFileSync(generatedPath(), 'utf8');
  const fresh = generate();
  if (committed !== fresh) {
    const a = committed.split('\n');
    const b = fresh.split('\n');
    const i = a.findIndex((line, n) => line !== b[n]);
    t.fail(
      `generated.ts is stale: first difference at line ${i + 1}\n  committed: ${a[i] ?? '<eof>'}\n  generated: ${b[i] ?? '<eof>'}\nrun \`npm run gen:spec\``,
    );
  } else {
    t.pass(`generated.ts is up to date (${fresh.length} bytes)`);
  }
  t.end();
});
