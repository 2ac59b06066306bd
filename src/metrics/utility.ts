/**
 * The defender's utility: what an honest user loses to the defense, measured on answers to
 * in-distribution queries — top-1 accuracy of the defended answers, their top-1 agreement with the
 * undefended victim, and (when the answers carry probabilities) the mean L1 distance and KL(y‖ỹ)
 * of the defended posteriors ỹ from the victim's y (Orekondy 2020 and Lee 2018 report these).
 * Batches are added in order; the sums run in that order, so the figures are reproducible bit for bit.
 */
export interface UtilityFigures {
  acc: number;
  agreement: number;
  /** mean ‖y − ỹ‖₁; undefined when some answer carried labels only */
  l1?: number;
  /** mean KL(y‖ỹ); undefined when some answer carried labels only */
  kl?: number;
}

export class UtilityMeter {
  private n = 0;
  private correct = 0;
  private agree = 0;
  private l1 = 0;
  private kl = 0;
  private probsSeen = true;

  constructor(private readonly k: number) {}

  /**
   * One batch of m answers: the victim's posteriors y [m·k], the true labels, and what the defended
   * API revealed (probabilities [m·k] and/or labels [m]).
   */
  add(
    y: ArrayLike<number>,
    truth: ArrayLike<number>,
    answer: { probs?: ArrayLike<number>; labels?: ArrayLike<number> },
    m: number,
  ): void {
    const k = this.k;
    const p = answer.probs;
    const labels = answer.labels;
    if (!p) this.probsSeen = false;
    for (let i = 0; i < m; i++) {
      let top = labels ? labels[i] : 0;
      if (p) {
        for (let j = 1; j < k; j++) if (p[i * k + j] > p[i * k + top]) top = j;
        for (let j = 0; j < k; j++) {
          const a = y[i * k + j];
          const b = p[i * k + j];
          this.l1 += Math.abs(a - b);
          if (a > 0) this.kl += a * Math.log(a / Math.max(b, 1e-12));
        }
      }
      if (top === truth[i]) this.correct++;
      let vtop = 0;
      for (let j = 1; j < k; j++) if (y[i * k + j] > y[i * k + vtop]) vtop = j;
      if (top === vtop) this.agree++;
    }
    this.n += m;
  }

  result(): UtilityFigures {
    const n = this.n;
    return {
      acc: this.correct / n,
      agreement: this.agree / n,
      l1: this.probsSeen ? this.l1 / n : undefined,
      kl: this.probsSeen ? Math.max(0, this.kl / n) : undefined,
    };
  }
}
