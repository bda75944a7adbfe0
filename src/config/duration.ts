/**
 * Durations as operators type them: `90s`, `15m`, `12h`, `30d`, `2w` (one number, one unit).
 */

const UNIT_MS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

export class DurationError extends Error {
  override readonly name = 'DurationError';
}

/** Milliseconds of `text` (`30d`, `12h`, ...); throws DurationError naming the accepted forms. */
export function parseDuration(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$/i.exec(text);
  const n = m?.[1];
  const unit = m?.[2]?.toLowerCase();
  const per = unit !== undefined ? UNIT_MS[unit] : undefined;
  if (n === undefined || per === undefined) {
    throw new DurationError(`${JSON.stringify(text)} is not a duration; write a number and a unit: 90s, 15m, 12h, 30d, 2w`);
  }
  const ms = Number(n) * per;
  if (!Number.isFinite(ms) || ms > 100 * 365 * UNIT_MS.d!) throw new DurationError(`${JSON.stringify(text)} is too long`);
  return Math.round(ms);
}

/** A short human form of a duration in ms: `180d`, `12h`, `90s`. */
export function formatDuration(ms: number): string {
  for (const [unit, per] of [
    ['d', UNIT_MS.d!],
    ['h', UNIT_MS.h!],
    ['m', UNIT_MS.m!],
  ] as const) {
    if (ms >= per && ms % per === 0) return `${ms / per}${unit}`;
  }
  return `${Math.round(ms / 1000)}s`;
}
