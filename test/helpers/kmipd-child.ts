// Runs the kmipd CLI from source, for tests that need a real server process (kill -9, signals).
// Spawn with the test process's own execArgv so the TypeScript loader is the same.
import { run } from '../../src/cli/main.js';

await run(process.argv);
