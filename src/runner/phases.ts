/**
 * Where a cell's wall time goes, phase by phase, so a slow sweep says what to fix:
 *   load      the dataset, the attacker's pool and seed set
 *   victim    the victim trained or loaded (a cache hit is a read)
 *   setup     the defenses' one-time preparation (MAD's proxy, AM's detector, SEAT's encoder)
 *   utility   the defender's utility and the benign false-positive streams through the defended API
 *   queries   the API answering the attack (the victim and the defenses, as the ledger times them)
 *   training  the attack's own work: everything in `attack.run` that is not the API answering
 *   eval      the surrogates measured against the victim (test and uniform sets, transfer, watermarks)
 * Recorded in each row's `phase_s` as `load=1.2;victim=0.3;…` (seconds, cumulative up to the row,
 * like `wall_s`), and summed by `mse bench` into one line at the end of a sweep.
 */
export const PHASES = ['load', 'victim', 'setup', 'utility', 'queries', 'training', 'eval'] as const;
export type Phase = (typeof PHASES)[number];
export type PhaseSeconds = Record<Phase, number>;

/** A stopwatch that is always in one phase; entering the next closes the current one. */
export class PhaseClock {
  private readonly seconds: PhaseSeconds = Object.fromEntries(PHASES.map((p) => [p, 0])) as PhaseSeconds;
  private current: Phase | undefined;
  private since = performance.now();

  enter(phase: Phase): void {
    this.flush();
    this.current = phase;
  }

  /** move seconds counted in one phase to another (the API's answering time, inside the attack's) */
  move(from: Phase, to: Phase, s: number): void {
    this.flush();
    const m = Math.max(0, Math.min(s, this.seconds[from]));
    this.seconds[from] -= m;
    this.seconds[to] += m;
  }

  /** the seconds so far, the current phase up to now included */
  snapshot(): PhaseSeconds {
    this.flush();
    return { ...this.seconds };
  }

  private flush(): void {
    const now = performance.now();
    if (this.current) this.seconds[this.current] += (now - this.since) / 1000;
    this.since = now;
  }
}

/** `load=1.234;victim=0.3;…`, every phase, milliseconds kept */
export function formatPhases(s: PhaseSeconds): string {
  return PHASES.map((p) => `${p}=${s[p].toFixed(3)}`).join(';');
}

/** the phases a `phase_s` value holds (an empty or foreign value holds none) */
export function parsePhases(text: string): Partial<PhaseSeconds> {
  const out: Partial<PhaseSeconds> = {};
  for (const part of text.split(';')) {
    const [k, v] = part.split('=');
    const n = Number(v);
    if ((PHASES as readonly string[]).includes(k) && v !== undefined && v.trim() !== '' && Number.isFinite(n) && n >= 0)
      out[k as Phase] = n;
  }
  return out;
}

/**
 * One line: where the cells' time went, summed over cells. A cell's rows are cumulative, so each
 * cell counts once, by its last row (the largest wall time).
 */
export function phaseSummary(rows: Array<Record<string, string>>): string | undefined {
  const last = new Map<string, Record<string, string>>();
  for (const r of rows) {
    const key = [r.dataset, r.victim, r.defense, r.defense_params, r.attack, r.attack_params, r.seed].join('|');
    const had = last.get(key);
    if (!had || Number(r.wall_s) > Number(had.wall_s)) last.set(key, r);
  }
  const total = Object.fromEntries(PHASES.map((p) => [p, 0])) as PhaseSeconds;
  let cells = 0;
  for (const r of last.values()) {
    const s = parsePhases(r.phase_s ?? '');
    if (!Object.keys(s).length) continue;
    cells++;
    for (const p of PHASES) total[p] += s[p] ?? 0;
  }
  const sum = PHASES.reduce((a, p) => a + total[p], 0);
  if (!cells || sum <= 0) return undefined;
  const parts = PHASES.filter((p) => total[p] > 0).map(
    (p) => `${p} ${total[p].toFixed(total[p] < 10 ? 1 : 0)} s (${Math.round((100 * total[p]) / sum)}%)`,
  );
  return `time by phase over ${cells} cell${cells > 1 ? 's' : ''} (${sum.toFixed(0)} s in all): ${parts.join(' · ')}`;
}
