import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

/**
 * Paths pino removes from every log line. Key material never reaches a logger in the first
 * place; this is the second line of defence against a careless `log.info({ obj })`.
 */
export const REDACT_PATHS = [
  'password',
  'pin',
  '*.password',
  '*.pin',
  '*.passphrase',
  '*.secret',
  '*.keyMaterial',
  '*.material',
  '*.plaintext',
  '*.key',
  'req.headers.authorization',
];

export interface LogOptions {
  level?: string;
  /** Human-readable lines instead of JSON (default: when stdout is a terminal). */
  pretty?: boolean;
  destination?: DestinationStream;
}

export function createLogger(opts: LogOptions = {}): Logger {
  const base: LoggerOptions = {
    level: opts.level ?? process.env.KMIPD_LOG_LEVEL ?? 'info',
    base: { svc: 'kmipd' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (opts.destination) return pino(base, opts.destination);
  const pretty = opts.pretty ?? process.stdout.isTTY === true;
  if (pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:standard', ignore: 'pid,hostname,svc' } } });
  }
  return pino(base);
}

/** A logger that writes nothing (tests, library use). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
