/**
 * Figures as Vega-Lite specs, rendered headless by Vega to SVG and rasterised to PNG by resvg
 * (system fonts; DejaVu Sans on Debian). No hand-drawn SVG.
 */
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export interface CurvePoint {
  defense: string;
  budget: number;
  acc: number;
  lo?: number;
  hi?: number;
}

export interface TradeoffPoint {
  defense: string;
  defendedAcc: number;
  attackerAcc: number;
  pareto: boolean;
}

export interface DetectionPoint {
  /** the detector and the attack without its accounts, at a budget */
  series: string;
  accounts: number;
  /** queries until the first alarm (mean over the seeds it rose in), or the budget when it never rose */
  queries: number;
  caught: boolean;
}

const FONT = 'DejaVu Sans, Arial, sans-serif';
/** What every figure shares: schema, size, fonts. */
const BASE = { $schema: 'https://vega.github.io/schema/vega-lite/v5.json', width: 520, height: 320 } as const;
const CONFIG = {
  font: FONT,
  axis: { labelFontSize: 12, titleFontSize: 13 },
  legend: { labelFontSize: 12, titleFontSize: 13, labelLimit: 360, symbolOpacity: 1 },
  title: { fontSize: 14 },
};

/** Attacker accuracy vs query budget, one line per defense (log budget axis), with 95% CI bands when seeds allow. */
export function curveSpec(title: string, points: CurvePoint[], victimAcc?: number): TopLevelSpec {
  const layers: object[] = [{ mark: { type: 'line', point: true, strokeWidth: 2 } }];
  // 95% CI bands behind the lines; the legend keeps opaque swatches (config.legend.symbolOpacity)
  if (points.some((p) => p.lo !== undefined))
    layers.unshift({
      mark: { type: 'errorband', opacity: 0.12 },
      encoding: { y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } },
      transform: [{ filter: 'isValid(datum.lo)' }],
    });
  if (victimAcc !== undefined)
    layers.push({
      data: { values: [{ v: victimAcc }] },
      mark: { type: 'rule', strokeDash: [4, 4], color: '#555' },
      encoding: { y: { field: 'v', type: 'quantitative' }, color: { value: '#555' }, x: null },
    });
  return {
    ...BASE,
    title,
    config: CONFIG,
    data: { values: points },
    encoding: {
      x: { field: 'budget', type: 'quantitative', scale: { type: 'log', nice: false }, title: 'queries (budget)' },
      y: { field: 'acc', type: 'quantitative', scale: { domain: [0, 1] }, title: 'attacker (surrogate) test accuracy' },
      color: { field: 'defense', type: 'nominal', title: 'defense' },
    },
    layer: layers,
  } as TopLevelSpec;
}

/** Defender accuracy vs attacker accuracy (the prediction-poisoning paper's main plot), Pareto frontier drawn. */
export function tradeoffSpec(title: string, points: TradeoffPoint[]): TopLevelSpec {
  const frontier = points.filter((p) => p.pareto).sort((a, b) => a.defendedAcc - b.defendedAcc);
  return {
    ...BASE,
    title,
    config: CONFIG,
    layer: [
      {
        data: { values: frontier },
        mark: { type: 'line', color: '#888', strokeDash: [6, 3] },
        encoding: {
          x: { field: 'defendedAcc', type: 'quantitative' },
          y: { field: 'attackerAcc', type: 'quantitative' },
        },
      },
      {
        data: { values: points },
        mark: { type: 'point', filled: true, size: 90 },
        encoding: {
          x: {
            field: 'defendedAcc',
            type: 'quantitative',
            scale: { zero: false },
            title: 'defender accuracy (what honest users get)',
          },
          y: {
            field: 'attackerAcc',
            type: 'quantitative',
            scale: { zero: false },
            title: 'attacker (surrogate) test accuracy',
          },
          color: { field: 'defense', type: 'nominal', title: 'defense' },
          shape: { field: 'pareto', type: 'nominal', title: 'Pareto-optimal' },
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
  return {
    ...BASE,
    title,
    config: { ...CONFIG, legend: { ...CONFIG.legend, titleLimit: 360 } },
    data: { values: points.map((p) => ({ ...p, outcome: p.caught ? 'alarmed' : 'never alarmed (at its budget)' })) },
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
        title: 'queries answered before the first alarm',
      },
      color: { field: 'series', type: 'nominal', title: 'detector vs attack @ budget' },
    },
    layer: [
      { mark: { type: 'line', strokeWidth: 2 } },
      {
        mark: { type: 'point', size: 90, strokeWidth: 2, opacity: 1 },
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
