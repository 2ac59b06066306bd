/**
 * `mse report`: from a results CSV alone, a markdown trade-off table per (dataset, victim, attack) —
 * defense × budget rows, attacker success and cost against defender utility, Pareto-optimal
 * defenses marked — and two figures per block: attacker accuracy vs budget per defense, and the
 * defender-accuracy / attacker-accuracy trade-off at the largest budget.
 */
import { ensureDir } from '../fs-util.js';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { ATTACKS } from '../attacks/registry.js';
import { formatStat, summarise, type Group } from '../runner/summary.js';
import { DEFENSES } from '../defenses/registry.js';
import { splitTopLevel, type ParamDecls } from '../params.js';
import type { TopLevelSpec } from 'vega-lite';
import { curveSpec, detectionSpec, renderSvg, svgToPng, tradeoffSpec, type DetectionPoint } from './figures.js';

const METRICS = [
  'surrogate_acc',
  'agreement_test',
  'queries',
  'attacker_cpu_s',
  'pow_s',
  'pow_ratio',
  'defended_acc',
  'perturbation_l1',
  'perturbation_kl',
  'victim_acc',
  'honest_slowdown',
  'kl_test',
  'transfer_fgsm_eps03',
  'transfer_pgd_eps03',
  'detected_at',
  'benign_fpr',
  'watermark_acc',
  'ownership_verified',
];

export interface ReportResult {
  markdown: string;
  files: string[];
}

/** "mad:argmax=true,eps=1,oracle=extreme,…" → "mad:argmax=true,eps=1": parameters at their defaults are left out. */
export function shortSpec(name: string, params: string, decls: ParamDecls | undefined): string {
  if (!params) return name;
  const kept = splitTopLevel(params, '+').map((part) =>
    splitTopLevel(part, ',')
      .filter((kv) => {
        const [k, v] = kv.split('=');
        const d = decls?.[k]?.default;
        return d === undefined || String(Array.isArray(d) ? d.join('/') : d) !== v;
      })
      .join(','),
  );
  return kept.some(Boolean) ? `${name}:${kept.join('+')}` : name;
}

/** A group's defense as a person would type it: parameters at their defaults left out. */
export const defenseLabel = (g: Group) =>
  shortSpec(
    g.key.defense,
    g.key.defense_params,
    g.key.defense.includes('+')
      ? undefined
      : DEFENSES.has(g.key.defense)
        ? DEFENSES.get(g.key.defense).params
        : undefined,
  );
/** A group's attack as a person would type it. */
export const attackLabel = (g: Group) =>
  shortSpec(
    g.key.attack,
    g.key.attack_params,
    ATTACKS.has(g.key.attack) ? ATTACKS.get(g.key.attack).params : undefined,
  );

/** Indices of the points no other point beats on both axes (higher defended accuracy, lower attacker accuracy). */
export function paretoFront(points: Array<{ defended: number; attacker: number }>): Set<number> {
  const out = new Set<number>();
  points.forEach((p, i) => {
    const dominated = points.some(
      (q, j) =>
        j !== i &&
        q.defended >= p.defended &&
        q.attacker <= p.attacker &&
        (q.defended > p.defended || q.attacker < p.attacker),
    );
    if (!dominated && Number.isFinite(p.defended) && Number.isFinite(p.attacker)) out.add(i);
  });
  return out;
}

function slug(s: string): string {
  return s
    .replace(/[^a-zA-Z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .toLowerCase();
}

export async function writeReport(
  rows: Array<Record<string, string>>,
  outDir: string,
  opts: { png?: boolean } = {},
): Promise<ReportResult> {
  ensureDir(outDir);
  const groups = summarise(rows, METRICS);
  const blocks = new Map<string, Group[]>();
  for (const g of groups) {
    const k = `${g.key.dataset} / ${g.key.victim} / ${attackLabel(g)}`;
    blocks.set(k, [...(blocks.get(k) ?? []), g]);
  }
  const md: string[] = [
    '# mse report',
    '',
    `${rows.length} rows, ${groups.length} cells. Values are means over seeds ± 95% CI where there are ≥ 2 seeds. ★ = Pareto-optimal at that budget (no other defense gives honest users higher accuracy and the attacker lower).`,
    '',
  ];
  const files: string[] = [];
  /** write a figure as SVG (and PNG) and link it from the markdown */
  const emit = async (name: string, svg: string): Promise<void> => {
    writeFileSync(path.join(outDir, `${name}.svg`), svg);
    files.push(path.join(outDir, `${name}.svg`));
    if (opts.png !== false) {
      writeFileSync(path.join(outDir, `${name}.png`), svgToPng(svg));
      files.push(path.join(outDir, `${name}.png`));
    }
    md.push(`![${name}](${name}.${opts.png !== false ? 'png' : 'svg'})`, '');
  };
  for (const [title, gs] of blocks) {
    const budgets = [...new Set(gs.map((g) => Number(g.key.budget)))].sort((a, b) => a - b);
    md.push(`## ${title}`, '');
    const victimAcc = gs[0].metrics.victim_acc.mean;
    if (Number.isFinite(victimAcc)) md.push(`Victim test accuracy: ${victimAcc.toFixed(4)}.`, '');
    // transferability columns only where it was measured (--transfer)
    const transfer = gs.some((g) => g.metrics.transfer_pgd_eps03.n > 0);
    md.push(
      `| defense | budget | attacker acc | agreement | KL(victim‖copy) | queries | attacker CPU (s) | PoW (s) | defended acc | L1 | KL | honest slowdown |${transfer ? ' FGSM ε0.3 transfer | PGD ε0.3 transfer |' : ''} Pareto |`,
      `|---|---|---|---|---|---|---|---|---|---|---|---|${transfer ? '---|---|' : ''}---|`,
    );
    const pareto = new Set<Group>();
    for (const b of budgets) {
      const at = gs.filter((g) => Number(g.key.budget) === b);
      const front = paretoFront(
        at.map((g) => ({ defended: g.metrics.defended_acc.mean, attacker: g.metrics.surrogate_acc.mean })),
      );
      at.forEach((g, i) => front.has(i) && pareto.add(g));
    }
    const sorted = [...gs].sort(
      (a, b) => defenseLabel(a).localeCompare(defenseLabel(b)) || Number(a.key.budget) - Number(b.key.budget),
    );
    for (const g of sorted) {
      const m = g.metrics;
      md.push(
        `| ${defenseLabel(g)} | ${g.key.budget} | ${formatStat(m.surrogate_acc)} | ${formatStat(m.agreement_test)} | ${formatStat(m.kl_test)} | ${formatStat(m.queries, 0)} | ${formatStat(m.attacker_cpu_s, 1)} | ${formatStat(m.pow_s, 2)} | ${formatStat(m.defended_acc)} | ${formatStat(m.perturbation_l1)} | ${formatStat(m.perturbation_kl)} | ${formatStat(m.honest_slowdown, 2)} |${transfer ? ` ${formatStat(m.transfer_fgsm_eps03)} | ${formatStat(m.transfer_pgd_eps03)} |` : ''} ${pareto.has(g) ? '★' : ''} |`,
      );
    }
    md.push('');
    const base = slug(title);
    const figures: Array<[string, Promise<string>]> = [];
    if (budgets.length > 1) {
      const points = gs.map((g) => {
        const s = g.metrics.surrogate_acc;
        return {
          defense: defenseLabel(g),
          budget: Number(g.key.budget),
          acc: s.mean,
          ...(Number.isFinite(s.ci) ? { lo: s.mean - s.ci, hi: s.mean + s.ci } : {}),
        };
      });
      figures.push([
        `${base}-curve`,
        renderSvg(
          curveSpec(
            `${title}: attacker accuracy vs budget`,
            points,
            Number.isFinite(victimAcc) ? victimAcc : undefined,
          ),
        ),
      ]);
    }
    const last = gs.filter((g) => Number(g.key.budget) === budgets[budgets.length - 1]);
    if (last.length > 1) {
      const pts = last.map((g) => ({
        defense: defenseLabel(g),
        defendedAcc: g.metrics.defended_acc.mean,
        attackerAcc: g.metrics.surrogate_acc.mean,
        pareto: pareto.has(g),
      }));
      figures.push([
        `${base}-tradeoff`,
        renderSvg(
          tradeoffSpec(`${title}: utility vs attacker accuracy at ${budgets[budgets.length - 1]} queries`, pts),
        ),
      ]);
    }
    for (const [name, svgP] of figures) {
      await emit(name, await svgP);
      if (name.endsWith('-curve') && Number.isFinite(victimAcc))
        md.push('The dashed line is the victim’s own test accuracy.', '');
    }
  }
  const detection = detectionSection(groups);
  md.push(...detection.lines);
  for (const [name, spec] of detection.figures) await emit(name, await renderSvg(spec));
  md.push(...watermarkSection(groups));
  const markdown = md.join('\n');
  writeFileSync(path.join(outDir, 'report.md'), markdown);
  files.unshift(path.join(outDir, 'report.md'));
  return { markdown, files };
}

/**
 * Where a detector watched the stream (rows with a benign false-positive rate): how soon each
 * attack was caught, in how many seeds, against how often honest clients were — the trade-off a
 * detector is chosen by. A Sybil attacker's accounts are part of its label (`jbda:accounts=16`).
 */
function detectionSection(groups: Group[]): { lines: string[]; figures: Array<[string, TopLevelSpec]> } {
  const watched = groups.filter((g) => g.metrics.benign_fpr.n > 0);
  if (!watched.length) return { lines: [], figures: [] };
  const out = [
    '## Detection',
    '',
    'Queries answered before the alarm (mean over the seeds it was raised in; “never” when it was not), and the share of honest streams alarmed (the test set in order, a shuffled test stream, a shuffled training stream, each its own client).',
    '',
    '| dataset / victim | defense | attack | budget | detected in | queries until detection | benign FPR | attacker acc |',
    '|---|---|---|---|---|---|---|---|',
  ];
  const sorted = [...watched].sort(
    (a, b) =>
      `${a.key.dataset}/${a.key.victim}`.localeCompare(`${b.key.dataset}/${b.key.victim}`) ||
      defenseLabel(a).localeCompare(defenseLabel(b)) ||
      attackLabel(a).localeCompare(attackLabel(b), 'en', { numeric: true }) ||
      Number(a.key.budget) - Number(b.key.budget),
  );
  for (const g of sorted) {
    const m = g.metrics;
    out.push(
      `| ${g.key.dataset} / ${g.key.victim} | ${defenseLabel(g)} | ${attackLabel(g)} | ${g.key.budget} | ${m.detected_at.n} of ${g.seeds} seeds | ${m.detected_at.n ? formatStat(m.detected_at, 0) : 'never'} | ${formatStat(m.benign_fpr, 2)} | ${formatStat(m.surrogate_acc)} |`,
    );
  }
  out.push('');
  // queries until detection vs Sybil accounts, per dataset / victim, where an attack was run with several
  const figures: Array<[string, TopLevelSpec]> = [];
  const byModel = new Map<string, Group[]>();
  for (const g of sorted) {
    const k = `${g.key.dataset} / ${g.key.victim}`;
    byModel.set(k, [...(byModel.get(k) ?? []), g]);
  }
  for (const [model, gs] of byModel) {
    const points: DetectionPoint[] = gs.map((g) => {
      const { label, accounts } = splitAccounts(attackLabel(g));
      const caught = g.metrics.detected_at.n > 0;
      return {
        series: `${defenseLabel(g)} vs ${label} @ ${g.key.budget}`,
        accounts,
        queries: caught ? g.metrics.detected_at.mean : Number(g.key.budget),
        caught,
      };
    });
    const sybil = new Set(
      points.filter((p) => points.some((q) => q.series === p.series && q.accounts !== p.accounts)).map((p) => p.series),
    );
    if (!sybil.size) continue;
    const name = `${slug(model)}-detection-accounts`;
    figures.push([
      name,
      detectionSpec(
        `${model}: queries until detection vs Sybil accounts`,
        points.filter((p) => sybil.has(p.series)),
      ),
    ]);
  }
  if (figures.length)
    out.push(
      'In the figure, a hollow triangle is an attacker never alarmed within its budget, plotted at the budget.',
      '',
    );
  return { lines: out, figures };
}

/** "jbda:accounts=16,epochs=5" → "jbda:epochs=5" and 16 (an attack without accounts=k uses one) */
export function splitAccounts(label: string): { label: string; accounts: number } {
  const i = label.indexOf(':');
  if (i < 0) return { label, accounts: 1 };
  let accounts = 1;
  const rest = splitTopLevel(label.slice(i + 1), ',').filter((kv) => {
    const m = /^accounts=(\d+)$/.exec(kv);
    if (m) accounts = Number(m[1]);
    return !m;
  });
  return { label: rest.length ? `${label.slice(0, i)}:${rest.join(',')}` : label.slice(0, i), accounts };
}

/** Where a watermarking defense recorded marks for the attacker: did the stolen copy carry them? */
function watermarkSection(groups: Group[]): string[] {
  const marked = groups.filter((g) => g.metrics.watermark_acc.n > 0);
  if (!marked.length) return [];
  const out = [
    '## Watermarks',
    '',
    'The surrogate’s agreement with the wrong labels the API recorded for the attacker, and in how many seeds ownership was verified (an independent model’s chance agreement, 1/k per mark, leaves the binomial tail below 1e-3).',
    '',
    '| dataset / victim | defense | attack | budget | watermark acc | verified in | attacker acc | defended acc |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const g of [...marked].sort(
    (a, b) =>
      `${a.key.dataset}/${a.key.victim}`.localeCompare(`${b.key.dataset}/${b.key.victim}`) ||
      defenseLabel(a).localeCompare(defenseLabel(b)) ||
      attackLabel(a).localeCompare(attackLabel(b), 'en', { numeric: true }) ||
      Number(a.key.budget) - Number(b.key.budget),
  )) {
    const m = g.metrics;
    const verified = Math.round(m.ownership_verified.mean * m.ownership_verified.n);
    out.push(
      `| ${g.key.dataset} / ${g.key.victim} | ${defenseLabel(g)} | ${attackLabel(g)} | ${g.key.budget} | ${formatStat(m.watermark_acc)} | ${verified} of ${m.ownership_verified.n} seeds | ${formatStat(m.surrogate_acc)} | ${formatStat(m.defended_acc)} |`,
    );
  }
  out.push('');
  return out;
}
