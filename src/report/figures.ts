/**
 * Figures as Vega-Lite specs, rendered headless by Vega to SVG and rasterised to PNG by resvg
 * (system fonts; DejaVu Sans on Debian). No hand-drawn SVG.
 */
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/**
 * Every metric of a point as the report prints it ("0.915 ± 0.064"), keyed by its column title:
 * the interactive page's tooltip shows them all; the static SVG ignores them.
 */
export type Tip = Record<string, string>;

export interface CurvePoint {
  defense: string;
  budget: number;
  acc: number;
  lo?: number;
  hi?: number;
  tip?: Tip;
}

export interface TradeoffPoint {
  defense: string;
  defendedAcc: number;
  attackerAcc: number;
  pareto: boolean;
  /** the strongest attack at this defense (the maximum over the run's attacks) */
  attack?: string;
  tip?: Tip;
}

export interface CostPoint {
  /** defense vs attack */
  series: string;
  /** honest users' time with the defense ÷ without it */
  honestSlowdown: number;
  /** the attacker's proof-of-work per query ÷ the honest user's */
  powRatio: number;
  tip?: Tip;
}

export interface DetectionPoint {
  /** the detector and the attack without its accounts, at a budget */
  series: string;
  accounts: number;
  /** queries until the first alarm (mean over the seeds it rose in), or the budget when it never rose */
  queries: number;
  caught: boolean;
  tip?: Tip;
}

const FONT = 'DejaVu Sans, Arial, sans-serif';
/** What every figure shares: schema, size, fonts. */
const BASE = { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', width: 520, height: 320 } as const;
const CONFIG = {
  font: FONT,
  axis: { labelFontSize: 12, titleFontSize: 13 },
  legend: { labelFontSize: 12, titleFontSize: 13, labelLimit: 360, symbolOpacity: 1 },
  title: { fontSize: 14 },
};
const REFERENCE = '#555';

/**
 * The smallest span an accuracy axis is drawn over: a difference of no consequence (0.0002 in
 * honest accuracy) must look like none, not fill the axis.
 */
export const MIN_ACC_SPAN = 0.05;

/** An accuracy axis's domain: the values (and reference) with a little room, never narrower than `minSpan`. */
export function accuracyDomain(values: number[], minSpan = MIN_ACC_SPAN): [number, number] {
  const v = values.filter(Number.isFinite);
  if (!v.length) return [0, 1];
  const lo = Math.min(...v);
  const hi = Math.max(...v);
  const pad = Math.max((hi - lo) * 0.05, 0.002);
  let top = Math.min(1, hi + pad);
  let bottom = Math.max(0, lo - pad);
  if (top - bottom < minSpan) {
    // widen downward first: accuracy near 1 has no room above
    bottom = Math.max(0, top - minSpan);
    top = Math.min(1, bottom + minSpan);
  }
  return [round4(bottom), round4(top)];
}

const round4 = (x: number) => Math.round(x * 1e4) / 1e4;

/** The points with their tooltip fields flattened (`tip_0`, …) and the matching tooltip encoding. */
function withTips<T extends { tip?: Tip }>(
  points: T[],
  lead: Array<{ field: string; title: string; type?: string; format?: string }>,
): { values: object[]; tooltip: object[] } {
  const titles = [...new Set(points.flatMap((p) => Object.keys(p.tip ?? {})))];
  const values = points.map(({ tip, ...p }) => ({
    ...p,
    ...Object.fromEntries(titles.map((t, i) => [`tip_${i}`, tip?.[t] ?? '–'])),
  }));
  const tooltip = [
    ...lead.map((l) => ({ type: 'nominal', ...l })),
    ...titles.map((t, i) => ({ field: `tip_${i}`, type: 'nominal', title: t })),
  ];
  return { values, tooltip };
}

/** Clicking a legend entry highlights its series (shift-click adds more); the others fade. */
const legendToggle = (field: string) => ({
  params: [{ name: 'pick', select: { type: 'point', fields: [field] }, bind: 'legend' }],
  opacity: { condition: { param: 'pick', value: 1 }, value: 0.15 },
});

/** Attacker accuracy vs query budget, one line per defense (log budget axis), with 95% CI bands when seeds allow. */
export function curveSpec(title: string, points: CurvePoint[], victimAcc?: number): TopLevelSpec {
  const { values, tooltip } = withTips(points, [
    { field: 'defense', title: 'defense' },
    { field: 'budget', title: 'budget', type: 'quantitative', format: ',d' },
  ]);
  const toggle = legendToggle('defense');
  const layers: object[] = [
    {
      params: toggle.params,
      mark: { type: 'line', point: true, strokeWidth: 2 },
      encoding: { opacity: toggle.opacity, tooltip },
    },
  ];
  // 95% CI bands behind the lines; the legend keeps opaque swatches (config.legend.symbolOpacity)
  if (points.some((p) => p.lo !== undefined))
    layers.unshift({
      mark: { type: 'errorband', opacity: 0.12 },
      encoding: { y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } },
      transform: [{ filter: 'isValid(datum.lo)' }],
    });
  if (victimAcc !== undefined) layers.push(...victimRule('y', victimAcc));
  return {
    ...BASE,
    title,
    config: CONFIG,
    data: { values },
    encoding: {
      x: { field: 'budget', type: 'quantitative', scale: { type: 'log', nice: false }, title: 'queries (budget)' },
      y: { field: 'acc', type: 'quantitative', scale: { domain: [0, 1] }, title: 'attacker (surrogate) test accuracy' },
      color: { field: 'defense', type: 'nominal', title: 'defense' },
    },
    layer: layers,
  } as TopLevelSpec;
}

/** The victim's own test accuracy as a dashed reference line across (y) or along (x) the plot, labelled. */
function victimRule(channel: 'x' | 'y', acc: number): object[] {
  const other = channel === 'x' ? 'y' : 'x';
  return [
    {
      data: { values: [{ v: acc }] },
      mark: { type: 'rule', strokeDash: [4, 4], color: REFERENCE },
      encoding: { [channel]: { field: 'v', type: 'quantitative' }, color: { value: REFERENCE }, [other]: null },
    },
    {
      data: { values: [{ v: acc, label: `victim ${acc.toFixed(3)}` }] },
      mark:
        channel === 'x'
          ? {
              type: 'text',
              angle: 270,
              align: 'left',
              baseline: 'bottom',
              dx: 4,
              dy: -3,
              color: REFERENCE,
              fontSize: 11,
            }
          : { type: 'text', align: 'left', baseline: 'bottom', dy: -3, color: REFERENCE, fontSize: 11 },
      encoding: {
        [channel]: { field: 'v', type: 'quantitative' },
        // along the plot's bottom (x rule, reading upward) or left (y rule) edge, away from the points
        ...(channel === 'x' ? { y: { value: BASE.height } } : { x: { value: 4 } }),
        text: { field: 'label' },
        color: { value: REFERENCE },
      },
    },
  ];
}

/**
 * Defender accuracy vs attacker accuracy at one budget (the prediction-poisoning paper's main
 * plot). The attacker's axis is [0, 1]; the defender's never spans less than MIN_ACC_SPAN, with
 * the victim's own accuracy as a reference line, so a defense that costs honest users 0.0002 sits
 * on that line. The Pareto frontier is drawn as a step: for any honest accuracy you demand, the
 * lowest attacker accuracy some defense gives at or above it.
 */
export function tradeoffSpec(title: string, points: TradeoffPoint[], victimAcc?: number): TopLevelSpec {
  const frontier = points.filter((p) => p.pareto).sort((a, b) => a.defendedAcc - b.defendedAcc);
  const xDomain = accuracyDomain([
    ...points.map((p) => p.defendedAcc),
    ...(victimAcc === undefined ? [] : [victimAcc]),
  ]);
  const { values, tooltip } = withTips(
    points.map((p) => ({ ...p, attack: p.attack ?? '', frontier: p.pareto ? 'on the frontier' : 'dominated' })),
    [
      { field: 'defense', title: 'defense' },
      ...(points.some((p) => p.attack) ? [{ field: 'attack', title: 'strongest attack' }] : []),
    ],
  );
  const toggle = legendToggle('defense');
  const x = {
    field: 'defendedAcc',
    type: 'quantitative',
    scale: { domain: xDomain, nice: false, zero: false },
    title: 'defender accuracy (what honest users get)',
  };
  const y = {
    field: 'attackerAcc',
    type: 'quantitative',
    scale: { domain: [0, 1] },
    title: 'attacker (surrogate) test accuracy',
  };
  return {
    ...BASE,
    title,
    config: CONFIG,
    layer: [
      {
        data: { values: frontier },
        // step-before: at each frontier point the line rises to the next one's attacker accuracy
        mark: { type: 'line', color: '#888', strokeDash: [6, 3], interpolate: 'step-before' },
        encoding: { x, y },
      },
      ...(victimAcc === undefined ? [] : victimRule('x', victimAcc)),
      {
        data: { values },
        params: toggle.params,
        mark: { type: 'point', filled: true, size: 90 },
        encoding: {
          x,
          y,
          color: { field: 'defense', type: 'nominal', title: 'defense' },
          shape: {
            field: 'frontier',
            type: 'nominal',
            title: 'Pareto',
            scale: { domain: ['on the frontier', 'dominated'], range: ['square', 'circle'] },
          },
          opacity: toggle.opacity,
          tooltip,
        },
      },
    ],
  } as TopLevelSpec;
}

/**
 * What a priced defense (proof-of-work) costs each side at one budget: the honest users' slowdown
 * (x, from 1 = free, never narrower than 1–2×) against the attacker's proof-of-work per query over
 * the honest user's (y, log; 1 = the attacker pays no more than an honest user).
 */
export function costSpec(title: string, points: CostPoint[]): TopLevelSpec {
  const { values, tooltip } = withTips(points, [{ field: 'series', title: 'defense vs attack' }]);
  const slow = points.map((p) => p.honestSlowdown).filter(Number.isFinite);
  const ratio = points.map((p) => p.powRatio).filter((v) => Number.isFinite(v) && v > 0);
  const xTop = Math.max(2, ...slow.map((v) => v * 1.05));
  const yTop = Math.max(10, ...ratio.map((v) => v * 2));
  const yBottom = Math.min(0.5, ...ratio.map((v) => v / 2));
  const toggle = legendToggle('series');
  return {
    ...BASE,
    title,
    config: { ...CONFIG, legend: { ...CONFIG.legend, titleLimit: 360 } },
    layer: [
      {
        data: { values: [{ v: 1 }] },
        mark: { type: 'rule', strokeDash: [4, 4], color: REFERENCE },
        encoding: { y: { field: 'v', type: 'quantitative', scale: { type: 'log' } } },
      },
      {
        data: { values },
        params: toggle.params,
        mark: { type: 'point', filled: true, size: 90 },
        encoding: {
          x: {
            field: 'honestSlowdown',
            type: 'quantitative',
            scale: { domain: [1, Math.round(xTop * 100) / 100], nice: false, zero: false },
            title: 'honest users’ slowdown (× their time without the defense)',
          },
          y: {
            field: 'powRatio',
            type: 'quantitative',
            scale: { type: 'log', domain: [yBottom, yTop] },
            // two lines: one would be taller than the plot and push it down under the title
            title: ['attacker’s PoW per query', '÷ the honest user’s'],
          },
          color: { field: 'series', type: 'nominal', title: 'defense vs attack' },
          opacity: toggle.opacity,
          tooltip,
        },
      },
    ],
  } as TopLevelSpec;
}

/**
 * Queries until a per-client detector's first alarm against the number of Sybil accounts the
 * attacker spreads them over (both axes log 2 / log 10): the honest way to report a per-client
 * defense. A hollow mark at the budget is an attacker never caught within it.
 */
export function detectionSpec(title: string, points: DetectionPoint[]): TopLevelSpec {
  const never = points.some((p) => !p.caught);
  const { values, tooltip } = withTips(
    points.map((p) => ({ ...p, outcome: p.caught ? 'alarmed' : 'never alarmed (at its budget)' })),
    [
      { field: 'series', title: 'detector vs attack' },
      { field: 'accounts', title: 'accounts', type: 'quantitative' },
      { field: 'outcome', title: 'outcome' },
    ],
  );
  const toggle = legendToggle('series');
  return {
    ...BASE,
    title,
    config: { ...CONFIG, legend: { ...CONFIG.legend, titleLimit: 360 } },
    data: { values },
    encoding: {
      x: {
        field: 'accounts',
        type: 'quantitative',
        scale: { type: 'log', base: 2, nice: false },
        axis: { tickMinStep: 1, format: 'd' },
        title: 'Sybil accounts (accounts=k)',
      },
      y: {
        field: 'queries',
        type: 'quantitative',
        scale: { type: 'log' },
        axis: { format: ',d' },
        title: ['queries answered', 'before the first alarm'],
      },
      color: { field: 'series', type: 'nominal', title: 'detector vs attack @ budget' },
      opacity: toggle.opacity,
    },
    layer: [
      { mark: { type: 'line', strokeWidth: 2 } },
      {
        params: toggle.params,
        mark: { type: 'point', size: 90, strokeWidth: 2 },
        encoding: {
          // a hollow triangle: never alarmed within the budget
          ...(never
            ? {
                shape: {
                  field: 'outcome',
                  type: 'nominal',
                  scale: { range: ['circle', 'triangle-up'] },
                  legend: null, // the report's caption says what a hollow triangle is
                },
              }
            : {}),
          fill: { condition: { test: 'datum.caught', field: 'series', type: 'nominal' }, value: 'white' },
          tooltip,
        },
      },
    ],
  } as TopLevelSpec;
}

export interface ComparePoint {
  cell: string;
  a: number;
  b: number;
  /** significant / not significant / beyond tolerance / within tolerance */
  verdict: string;
  tip?: Tip;
}

/** One metric in run A (x) against run B (y) per cell, both on [0, 1], the diagonal "no change". */
export function compareSpec(title: string, points: ComparePoint[]): TopLevelSpec {
  const { values, tooltip } = withTips(points, [
    { field: 'cell', title: 'cell' },
    { field: 'a', title: 'A', type: 'quantitative', format: '.4f' },
    { field: 'b', title: 'B', type: 'quantitative', format: '.4f' },
  ]);
  const toggle = legendToggle('verdict');
  const axis = (field: string, t: string) => ({
    field,
    type: 'quantitative',
    scale: { domain: [0, 1] },
    title: t,
  });
  return {
    ...BASE,
    width: 420,
    height: 420,
    title,
    config: CONFIG,
    layer: [
      {
        data: { values: [{ v: 0 }, { v: 1 }] },
        mark: { type: 'line', strokeDash: [4, 4], color: REFERENCE },
        encoding: { x: axis('v', 'run A'), y: axis('v', 'run B') },
      },
      {
        data: { values },
        params: toggle.params,
        mark: { type: 'point', filled: true, size: 70 },
        encoding: {
          x: axis('a', 'run A'),
          y: axis('b', 'run B'),
          color: { field: 'verdict', type: 'nominal', title: 'the change' },
          opacity: toggle.opacity,
          tooltip,
        },
      },
    ],
  } as TopLevelSpec;
}

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export function svgToPng(svg: string, scale = 2): Buffer {
  const r = new Resvg(svg, {
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
    fitTo: { mode: 'zoom', value: scale },
    background: 'white',
  });
  return Buffer.from(r.render().asPng());
}
