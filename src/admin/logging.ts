/**
 * The server's logger from its settings: standard output (the journal, under systemd), or a
 * file that SIGHUP reopens (after logrotate moved it away).
 */
import { pino, type Logger } from 'pino';
import type { ServerSettings } from '../config/settings.js';
import { createLogger } from '../server/log.js';
import type { Reopenable } from './reload.js';

export type LogFile = ReturnType<typeof pino.destination> & Reopenable;

export interface Logging {
  log: Logger;
  /** The log file, when logging to one (a SonicBoom: 'ready' once open). */
  destination?: LogFile;
}

export function openLogging(s: Pick<ServerSettings, 'logLevel' | 'logFile'>): Logging {
  if (s.logFile === undefined) return { log: createLogger({ level: s.logLevel }) };
  const destination = pino.destination({ dest: s.logFile, mkdir: true, sync: false });
  return { log: createLogger({ level: s.logLevel, destination }), destination };
}
