/**
 * What a running sweep says where there are no progress bars: stderr piped to a log or CI gets a
 * plain line at least every 30 s (cells done, each worker's cell and phase, an ETA), and `--json`
 * gets the same as JSON events, one per line, for tools. The ETA starts from the plan's cost model
 * (estimate.ts) and is rescaled by how the finished cells' times compared with their estimates.
 */
import type { AttackProgress } from '../attacks/types.js';
import { formatDuration } from '../runner/estimate.js';

interface Running {
  label: string;
  phase: string;
  done: number;
  total: number;
  detail?: string;
  startedAt: number;
}

export interface StatusEvent {
  event: 'status';
  elapsed_s: number;
  cells_done: number;
  cells_total: number;
  running: Array<{ cell: string; phase: string; done: number; total: number; detail?: string }>;
  eta_s?: number;
}

export class SweepStatus<C> {
  private readonly running = new Map<C, Running>();
  private readonly t0 = performance.now();
  private actual = 0;
  private expected = 0;
  private done: number;

  constructor(
    private readonly total: number,
    doneAtStart: number,
    /** the cost model's seconds per cell still to run */
    private readonly estimate: (c: C) => number,
    private readonly label: (c: C) => string,
    private readonly workers: number,
    private readonly queued: Set<C>,
  ) {
    this.done = doneAtStart;
  }

  start(c: C): void {
    this.queued.delete(c);
    this.running.set(c, { label: this.label(c), phase: 'start', done: 0, total: 0, startedAt: performance.now() });
  }

  progress(c: C, phase: string, p?: AttackProgress): void {
    const r = this.running.get(c);
    if (!r) return;
    r.phase = p ? (p.phase === 'train' ? 'training' : 'querying') : phase;
    r.done = p?.done ?? 0;
    r.total = p?.total ?? 0;
    r.detail = p?.label;
  }

  /** `ok`: the cell ran to the end (a failed or not-applicable one ends at once and says nothing of the rate) */
  finish(c: C, ok = true): void {
    const r = this.running.get(c);
    this.running.delete(c);
    this.queued.delete(c);
    this.done++;
    if (r && ok) {
      this.actual += (performance.now() - r.startedAt) / 1000;
      this.expected += this.estimate(c);
    }
  }

  /** Seconds left: the estimates of what is queued and running, scaled by what finished cells took against theirs. */
  eta(): number | undefined {
    const scale = this.expected > 0 ? this.actual / this.expected : 1;
    let left = 0;
    let longest = 0;
    const rest = (c: C, spent: number) => Math.max(this.estimate(c) * scale - spent, 0);
    for (const c of this.queued) {
      left += rest(c, 0);
      longest = Math.max(longest, rest(c, 0));
    }
    for (const [c, r] of this.running) {
      const x = rest(c, (performance.now() - r.startedAt) / 1000);
      left += x;
      longest = Math.max(longest, x);
    }
    // the workers share what is left, but no cell is split: the longest one left bounds it below
    const s = Math.max(left / Math.max(1, this.workers), longest);
    return Number.isFinite(s) ? s : undefined;
  }

  event(): StatusEvent {
    const eta = this.eta();
    return {
      event: 'status',
      elapsed_s: Math.round((performance.now() - this.t0) / 1000),
      cells_done: this.done,
      cells_total: this.total,
      running: [...this.running.values()].map((r) => ({
        cell: r.label,
        phase: r.phase,
        done: r.done,
        total: r.total,
        ...(r.detail ? { detail: r.detail } : {}),
      })),
      ...(eta !== undefined ? { eta_s: Math.round(eta) } : {}),
    };
  }

  /** "[2 min 30 s] 3/12 cells done; eta 9 min 10 s | knockoff mnist/cnn [mad] seed 1: training 1200/4000 (budget 5000, epoch 3/10)" */
  line(): string {
    const e = this.event();
    const workers = e.running.map(
      (r) => `${r.cell}: ${r.phase}${r.total ? ` ${r.done}/${r.total}` : ''}${r.detail ? ` (${r.detail})` : ''}`,
    );
    return `[${formatDuration(e.elapsed_s)}] ${e.cells_done}/${e.cells_total} cells done${e.eta_s !== undefined && e.cells_done < e.cells_total ? `; eta ${formatDuration(e.eta_s)}` : ''}${workers.length ? ` | ${workers.join(' | ')}` : ''}`;
  }
}

/** Seconds between status lines: 30, or MSE_STATUS_INTERVAL_S (tests use 1). */
export function statusInterval(): number {
  const v = Number(process.env.MSE_STATUS_INTERVAL_S);
  // setInterval treats more than 2^31 ms as 1 ms: an hour at most
  return Number.isFinite(v) && v > 0 ? Math.min(v, 3600) : 30;
}
