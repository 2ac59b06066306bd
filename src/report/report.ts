/**
 * `mse report`: from a results CSV alone, per model (dataset / victim) a table of each defense at
 * each budget against the strongest attacker the run measured (strongest.ts), with the Pareto
 * frontier and the utility / attacker trade-off figure drawn from it; per attack, the defense ×
 * budget table (attacker success and cost against defender utility) and its learning curves; then
 * detection and watermark tables where those were measured. Written as markdown with SVG/PNG
 * figures and as one self-contained interactive page (html.ts).
 */
import { ensureDir } from '../fs-util.js';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { ATTACKS } from '../attacks/registry.js';
import { formatStat, summarise, type Group } from '../runner/summary.js';
import { DEFENSES } from '../defenses/registry.js';
import { splitTopLevel, type ParamDecls } from '../params.js';
import type { TopLevelSpec } from 'vega-lite';
import {
  costSpec,
  curveSpec,
  detectionSpec,
  renderSvg,
  svgToPng,
  tradeoffSpec,
  type DetectionPoint,
  type Tip,
} from './figures.js';
import { renderHtml } from './html.js';
import { modelKey, strongestAttackers, type WorstCase } from './strongest.js';

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

/** Column titles of the metrics a tooltip shows, in the tables' order and format. */
const TIP_METRICS: Array<[string, string, number]> = [
  ['surrogate_acc', 'attacker acc', 3],
  ['agreement_test', 'agreement', 3],
  ['kl_test', 'KL(victim‖copy)', 3],
  ['queries', 'queries', 0],
  ['attacker_cpu_s', 'attacker CPU (s)', 1],
  ['pow_s', 'PoW (s)', 2],
  ['pow_ratio', 'PoW ratio', 1],
  ['defended_acc', 'defended acc', 3],
  ['perturbation_l1', 'L1', 3],
  ['perturbation_kl', 'KL', 3],
  ['honest_slowdown', 'honest slowdown', 2],
  ['transfer_fgsm_eps03', 'FGSM ε0.3 transfer', 3],
  ['transfer_pgd_eps03', 'PGD ε0.3 transfer', 3],
  ['detected_at', 'queries until detection', 0],
  ['benign_fpr', 'benign FPR', 2],
  ['watermark_acc', 'watermark acc', 3],
];

/** Every metric a cell measured, formatted as in the tables (mean ± 95% CI), for a figure's tooltip. */
export function tipOf(g: Group): Tip {
  const tip: Tip = { seeds: String(g.seeds) };
  for (const [m, title, digits] of TIP_METRICS) if (g.metrics[m]?.n) tip[title] = formatStat(g.metrics[m], digits);
  return tip;
}

export interface Table {
  header: string[];
  rows: string[][];
}

export interface Figure {
  name: string;
  spec: TopLevelSpec;
  caption?: string;
}

/** One part of the report: a heading, what to read it by, a table and figures. */
export interface Section {
  id: string;
  title: string;
  /** what the section is a part of (a model's sections share it), for the page's selector */
  group: string;
  text: string[];
  table?: Table;
  figures: Figure[];
  /** a figure's caption printed once after the figures */
  after?: string[];
}

export interface Report {
  intro: string;
  sections: Section[];
}

const INTRO =
  'Values are means over seeds ± 95% CI where there are ≥ 2 seeds. ★ = Pareto-optimal at that budget against the strongest attacker in the run (no other defense gives honest users higher accuracy and that attacker lower).';

/** The report's sections from result rows: what `writeReport` renders as markdown and HTML. */
export function buildReport(rows: Array<Record<string, string>>): Report {
  const groups = summarise(rows, METRICS);
  const sections: Section[] = [];
  const byModel = new Map<string, Group[]>();
  for (const g of groups) byModel.set(modelKey(g), [...(byModel.get(modelKey(g)) ?? []), g]);
  // two variants of one dataset / victim (other data, another model file) are told apart by name
  const plain = (g: Group) => `${g.key.dataset} / ${g.key.victim}`;
  const variants = new Map<string, number>();
  for (const gs of byModel.values()) variants.set(plain(gs[0]), (variants.get(plain(gs[0])) ?? 0) + 1);
  for (const gs of byModel.values()) {
    const k = gs[0].key;
    const model =
      (variants.get(plain(gs[0])) ?? 0) > 1
        ? `${plain(gs[0])} (${[k.dataset_variant, k.victim_variant].filter(Boolean).join(', ') || 'no variant'})`
        : plain(gs[0]);
    const worst = worstCaseSection(model, gs);
    if (worst) sections.push(worst);
    const blocks = new Map<string, Group[]>();
    for (const g of gs) blocks.set(attackLabel(g), [...(blocks.get(attackLabel(g)) ?? []), g]);
    for (const [attack, bs] of blocks) sections.push(attackSection(model, attack, bs));
  }
  sections.push(...detectionSection(groups), ...watermarkSection(groups));
  // rows that did not finish leave dashes in the tables: say so, and which
  const unfinished = rows.filter((r) => !String(r.status ?? '').startsWith('ok'));
  if (unfinished.length)
    sections.push({
      id: 'unfinished',
      title: 'Rows that did not finish',
      group: 'unfinished',
      text: [
        'These rows carry no figures (a dash in the tables above): the cell failed, or the attack does not apply to that victim or budget. `mse bench` with the same grid re-runs failed cells once their cause is fixed.',
      ],
      table: {
        header: ['dataset / victim', 'defense', 'attack', 'budget', 'seed', 'status'],
        rows: unfinished.map((r) => [
          `${r.dataset} / ${r.victim}`,
          r.defense_params ? `${r.defense}:${r.defense_params}` : r.defense,
          r.attack_params ? `${r.attack}:${r.attack_params}` : r.attack,
          r.budget,
          r.seed,
          r.status || '(empty)',
        ]),
      },
      figures: [],
    });
  const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;
  return {
    intro: `${plural(rows.length, 'row')}, ${plural(groups.length, 'cell')}${unfinished.length ? `; ${plural(unfinished.length, 'row')} did not finish (listed at the end)` : ''}. ${INTRO}`,
    sections,
  };
}

/**
 * Per model: each defense at each budget against the strongest attacker the run measured there,
 * the Pareto frontier from those, and the utility / attacker trade-off figure at the largest
 * budget (plus the cost figure where a defense priced queries).
 */
function worstCaseSection(model: string, gs: Group[]): Section | undefined {
  const worst = strongestAttackers(gs, attackLabel);
  if (!worst.length) return undefined;
  const attacks = [...new Set(gs.filter((g) => g.metrics.surrogate_acc.n).map(attackLabel))];
  const victimAcc = gs[0].metrics.victim_acc.mean;
  const budgets = [...new Set(worst.map((w) => Number(w.group.key.budget)))].sort((a, b) => a - b);
  const pareto = new Set<WorstCase>();
  for (const b of budgets) {
    const at = worst.filter((w) => Number(w.group.key.budget) === b);
    const front = paretoFront(
      at.map((w) => ({ defended: w.group.metrics.defended_acc.mean, attacker: w.group.metrics.surrogate_acc.mean })),
    );
    at.forEach((w, i) => front.has(i) && pareto.add(w));
  }
  const sorted = [...worst].sort(
    (a, b) =>
      defenseLabel(a.group).localeCompare(defenseLabel(b.group)) ||
      Number(a.group.key.budget) - Number(b.group.key.budget),
  );
  const single = worst.some((w) => w.attacks.length === 1);
  const text = [
    attacks.length > 1
      ? `The strongest of the ${attacks.length} attacks in this run (${attacks.join(', ')}) at each defense and budget: a defense is as good as the best attacker measured against it.${single ? ' “single attacker”: the defense was measured against one attack only, so its attacker accuracy is a lower bound.' : ''}`
      : `One attack in this run (${attacks[0]}): every row is “single attacker”, a lower bound on what an attacker gets. Run more attacks (e.g. \`knockoff:labels=top1\` beside \`knockoff\`) to see the worst case.`,
  ];
  if (Number.isFinite(victimAcc)) text.push(`Victim test accuracy: ${victimAcc.toFixed(4)}.`);
  const table: Table = {
    header: [
      'defense',
      'budget',
      'strongest attack',
      'attacker acc',
      'agreement',
      'defended acc',
      'L1',
      'honest slowdown',
      'attacks measured',
      'Pareto',
    ],
    rows: sorted.map((w) => {
      const m = w.group.metrics;
      return [
        defenseLabel(w.group),
        w.group.key.budget,
        w.attacks[0],
        formatStat(m.surrogate_acc),
        formatStat(m.agreement_test),
        formatStat(m.defended_acc),
        formatStat(m.perturbation_l1),
        formatStat(m.honest_slowdown, 2),
        w.attacks.length > 1 ? String(w.attacks.length) : '1 (single attacker)',
        pareto.has(w) ? '★' : '',
      ];
    }),
  };
  const figures: Figure[] = [];
  // the largest budget at which two or more defenses can be compared
  const top = [...budgets].reverse().find((b) => worst.filter((w) => Number(w.group.key.budget) === b).length > 1);
  const last = worst.filter((w) => Number(w.group.key.budget) === top);
  const base = slug(model);
  if (last.length > 1)
    figures.push({
      name: `${base}-tradeoff`,
      spec: tradeoffSpec(
        `${model}: utility vs the strongest attacker at ${top} queries`,
        last.map((w) => ({
          defense: defenseLabel(w.group),
          defendedAcc: w.group.metrics.defended_acc.mean,
          attackerAcc: w.group.metrics.surrogate_acc.mean,
          pareto: pareto.has(w),
          attack: w.attacks[0],
          tip: { ...tipOf(w.group), 'attacks measured': String(w.attacks.length) },
        })),
        Number.isFinite(victimAcc) ? victimAcc : undefined,
      ),
      caption:
        'The x axis spans at least 5 accuracy points, with the victim’s own accuracy dashed: a defense on that line costs honest users nothing. The grey step is the Pareto frontier: the lowest attacker accuracy a defense gives at or above each honest accuracy.',
    });
  // what a priced defense costs each side: every attack at the largest budget it ran
  const priced = gs.filter((g) => g.metrics.pow_ratio.n > 0 && g.metrics.honest_slowdown.n > 0);
  if (priced.length) {
    const pricedTop = Math.max(...priced.map((g) => Number(g.key.budget)));
    figures.push({
      name: `${base}-cost`,
      spec: costSpec(
        `${model}: what the price costs each side at ${pricedTop} queries`,
        priced
          .filter((g) => Number(g.key.budget) === pricedTop)
          .map((g) => ({
            series: `${defenseLabel(g)} vs ${attackLabel(g)}`,
            honestSlowdown: g.metrics.honest_slowdown.mean,
            powRatio: g.metrics.pow_ratio.mean,
            tip: tipOf(g),
          })),
      ),
      caption:
        'Honest users’ slowdown against the attacker’s proof-of-work per query over the honest user’s; the dashed line is parity (the attacker pays what an honest user pays).',
    });
  }
  return {
    id: `${base}-strongest`,
    title: `${model} / strongest attacker`,
    group: model,
    text,
    table,
    figures,
  };
}

/** One attack on one model: each defense at each budget, and the learning curves. */
function attackSection(model: string, attack: string, gs: Group[]): Section {
  const title = `${model} / ${attack}`;
  const budgets = [...new Set(gs.map((g) => Number(g.key.budget)))].sort((a, b) => a - b);
  const victimAcc = gs[0].metrics.victim_acc.mean;
  const text = Number.isFinite(victimAcc) ? [`Victim test accuracy: ${victimAcc.toFixed(4)}.`] : [];
  // transferability columns only where it was measured (--transfer)
  const transfer = gs.some((g) => g.metrics.transfer_pgd_eps03.n > 0);
  const sorted = [...gs].sort(
    (a, b) => defenseLabel(a).localeCompare(defenseLabel(b)) || Number(a.key.budget) - Number(b.key.budget),
  );
  const table: Table = {
    header: [
      'defense',
      'budget',
      'attacker acc',
      'agreement',
      'KL(victim‖copy)',
      'queries',
      'attacker CPU (s)',
      'PoW (s)',
      'defended acc',
      'L1',
      'KL',
      'honest slowdown',
      ...(transfer ? ['FGSM ε0.3 transfer', 'PGD ε0.3 transfer'] : []),
    ],
    rows: sorted.map((g) => {
      const m = g.metrics;
      return [
        defenseLabel(g),
        g.key.budget,
        formatStat(m.surrogate_acc),
        formatStat(m.agreement_test),
        formatStat(m.kl_test),
        formatStat(m.queries, 0),
        formatStat(m.attacker_cpu_s, 1),
        formatStat(m.pow_s, 2),
        formatStat(m.defended_acc),
        formatStat(m.perturbation_l1),
        formatStat(m.perturbation_kl),
        formatStat(m.honest_slowdown, 2),
        ...(transfer ? [formatStat(m.transfer_fgsm_eps03), formatStat(m.transfer_pgd_eps03)] : []),
      ];
    }),
  };
  const figures: Figure[] = [];
  if (budgets.length > 1) {
    const points = gs.map((g) => {
      const s = g.metrics.surrogate_acc;
      return {
        defense: defenseLabel(g),
        budget: Number(g.key.budget),
        acc: s.mean,
        // an accuracy's interval stays inside [0, 1] (the t-interval of 3 seeds can leave it)
        ...(Number.isFinite(s.ci) ? { lo: Math.max(0, s.mean - s.ci), hi: Math.min(1, s.mean + s.ci) } : {}),
        tip: tipOf(g),
      };
    });
    figures.push({
      name: `${slug(title)}-curve`,
      spec: curveSpec(
        `${title}: attacker accuracy vs budget`,
        points,
        Number.isFinite(victimAcc) ? victimAcc : undefined,
      ),
      caption: Number.isFinite(victimAcc) ? 'The dashed line is the victim’s own test accuracy.' : undefined,
    });
  }
  return { id: slug(title), title, group: model, text, table, figures };
}

/** Markdown previewers render inline HTML: data (names from a CSV) must not become markup or break a table. */
const md = (s: string) => s.replace(/</g, '&lt;').replace(/>/g, '&gt;');
const cell = (s: string) => md(s).replace(/\|/g, '\\|');

/** The report as markdown, figures linked as `<name>.png` (or `.svg`). */
export function renderMarkdown(r: Report, figureExt: 'png' | 'svg'): string {
  const out = ['# mse report', '', md(r.intro), ''];
  for (const s of r.sections) {
    out.push(`## ${md(s.title)}`, '');
    for (const t of s.text) out.push(md(t), '');
    if (s.table) {
      out.push(`| ${s.table.header.map(cell).join(' | ')} |`, `|${s.table.header.map(() => '---|').join('')}`);
      for (const row of s.table.rows) out.push(`| ${row.map(cell).join(' | ')} |`);
      out.push('');
    }
    for (const f of s.figures) {
      out.push(`![${f.name}](${f.name}.${figureExt})`, '');
      if (f.caption) out.push(f.caption, '');
    }
    for (const t of s.after ?? []) out.push(t, '');
  }
  return out.join('\n');
}

export interface ReportResult {
  markdown: string;
  files: string[];
}

/**
 * Write `report.md` with its figures (SVG, and PNG unless `png: false`) and, unless `html: false`,
 * the self-contained interactive `index.html` (html.ts) into `outDir`.
 */
export async function writeReport(
  rows: Array<Record<string, string>>,
  outDir: string,
  opts: { png?: boolean; html?: boolean; manifest?: unknown; manifestProblem?: string; csvHref?: string } = {},
): Promise<ReportResult> {
  ensureDir(outDir);
  const report = buildReport(rows);
  const files: string[] = [];
  const png = opts.png !== false;
  const svgs = await Promise.all(report.sections.flatMap((s) => s.figures.map((f) => renderSvg(f.spec))));
  let i = 0;
  for (const s of report.sections)
    for (const f of s.figures) {
      const svg = svgs[i++];
      writeFileSync(path.join(outDir, `${f.name}.svg`), svg);
      files.push(path.join(outDir, `${f.name}.svg`));
      if (png) {
        writeFileSync(path.join(outDir, `${f.name}.png`), svgToPng(svg));
        files.push(path.join(outDir, `${f.name}.png`));
      }
    }
  const markdown = renderMarkdown(report, png ? 'png' : 'svg');
  writeFileSync(path.join(outDir, 'report.md'), markdown);
  files.unshift(path.join(outDir, 'report.md'));
  if (opts.html !== false) {
    const file = path.join(outDir, 'index.html');
    writeFileSync(
      file,
      renderHtml(report, { manifest: opts.manifest, manifestProblem: opts.manifestProblem, csvHref: opts.csvHref }),
    );
    files.splice(1, 0, file);
  }
  return { markdown, files };
}

/** Table order across models: model, defense, attack (accounts numerically), budget. */
const byModelDefenseAttack = (a: Group, b: Group): number =>
  `${a.key.dataset}/${a.key.victim}`.localeCompare(`${b.key.dataset}/${b.key.victim}`) ||
  defenseLabel(a).localeCompare(defenseLabel(b)) ||
  attackLabel(a).localeCompare(attackLabel(b), 'en', { numeric: true }) ||
  Number(a.key.budget) - Number(b.key.budget);

/**
 * Where a detector watched the stream (rows with a benign false-positive rate): how soon each
 * attack was caught, in how many seeds, against how often honest clients were — the trade-off a
 * detector is chosen by. A Sybil attacker's accounts are part of its label (`jbda:accounts=16`).
 */
function detectionSection(groups: Group[]): Section[] {
  const watched = groups.filter((g) => g.metrics.benign_fpr.n > 0);
  if (!watched.length) return [];
  const sorted = [...watched].sort(byModelDefenseAttack);
  const table: Table = {
    header: [
      'dataset / victim',
      'defense',
      'attack',
      'budget',
      'detected in',
      'queries until detection',
      'benign FPR',
      'attacker acc',
    ],
    rows: sorted.map((g) => {
      const m = g.metrics;
      return [
        `${g.key.dataset} / ${g.key.victim}`,
        defenseLabel(g),
        attackLabel(g),
        g.key.budget,
        `${m.detected_at.n} of ${g.seeds} seeds`,
        m.detected_at.n ? formatStat(m.detected_at, 0) : 'never',
        formatStat(m.benign_fpr, 2),
        formatStat(m.surrogate_acc),
      ];
    }),
  };
  // queries until detection vs Sybil accounts, per dataset / victim, where an attack was run with several
  const figures: Figure[] = [];
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
        tip: { ...tipOf(g), 'detected in': `${g.metrics.detected_at.n} of ${g.seeds} seeds` },
      };
    });
    const sybil = new Set(
      points.filter((p) => points.some((q) => q.series === p.series && q.accounts !== p.accounts)).map((p) => p.series),
    );
    if (!sybil.size) continue;
    figures.push({
      name: `${slug(model)}-detection-accounts`,
      spec: detectionSpec(
        `${model}: queries until detection vs Sybil accounts`,
        points.filter((p) => sybil.has(p.series)),
      ),
    });
  }
  return [
    {
      id: 'detection',
      title: 'Detection',
      group: 'detection',
      text: [
        'Queries answered before the alarm (mean over the seeds it was raised in; “never” when it was not), and the share of honest streams alarmed (the test set in order, a shuffled test stream, a shuffled training stream, each its own client).',
      ],
      table,
      figures,
      after: figures.length
        ? ['In the figure, a hollow triangle is an attacker never alarmed within its budget, plotted at the budget.']
        : [],
    },
  ];
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
function watermarkSection(groups: Group[]): Section[] {
  const marked = groups.filter((g) => g.metrics.watermark_acc.n > 0);
  if (!marked.length) return [];
  const sorted = [...marked].sort(byModelDefenseAttack);
  return [
    {
      id: 'watermarks',
      title: 'Watermarks',
      group: 'watermarks',
      text: [
        'The surrogate’s agreement with the wrong labels the API recorded for the attacker, and in how many seeds ownership was verified (an independent model’s chance agreement, 1/k per mark, leaves the binomial tail below 1e-3).',
      ],
      table: {
        header: [
          'dataset / victim',
          'defense',
          'attack',
          'budget',
          'watermark acc',
          'verified in',
          'attacker acc',
          'defended acc',
        ],
        rows: sorted.map((g) => {
          const m = g.metrics;
          const verified = Math.round(m.ownership_verified.mean * m.ownership_verified.n);
          return [
            `${g.key.dataset} / ${g.key.victim}`,
            defenseLabel(g),
            attackLabel(g),
            g.key.budget,
            formatStat(m.watermark_acc),
            `${verified} of ${m.ownership_verified.n} seeds`,
            formatStat(m.surrogate_acc),
            formatStat(m.defended_acc),
          ];
        }),
      },
      figures: [],
    },
  ];
}
