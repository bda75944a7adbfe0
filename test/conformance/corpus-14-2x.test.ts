/** The OASIS corpus for KMIP 1.4, 2.0 and 2.1 (see _full.ts). */
import t from 'tap';
import { fullRun } from './_full.js';

t.test('KMIP 1.4, 2.0, 2.1: every test case of the corpus passes, is skipped with a reason, or is out of scope', (t) => fullRun(t, ['1.4', '2.0', '2.1']));
