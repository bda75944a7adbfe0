/** The OASIS corpus for KMIP 1.0-1.3 (see _full.ts). */
import t from 'tap';
import { fullRun } from './_full.js';

t.test('KMIP 1.0-1.3: every test case of the corpus passes, is skipped with a reason, or is out of scope', (t) => fullRun(t, ['1.0', '1.1', '1.2', '1.3']));
