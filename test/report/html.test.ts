/**
 * The report page in a real browser: Debian's chromium (or MSE_CHROMIUM) driven by playwright-core,
 * no browser download. Fails on any console error; checks that every figure drew marks, that a
 * table sorts when its header is clicked, that the selector hides the other blocks and that a
 * tooltip shows the metrics; saves a screenshot beside the run's report. Where no browser can be
 * had the browser test reports itself skipped, with the reason in its name.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeReport } from '../../src/report/report.js';
import { compareReport } from '../../src/report/compare-page.js';
import { renderHtml } from '../../src/report/html.js';
import { compareResults } from '../../src/runner/compare.js';

function findChromium(): { path?: string; why: string } {
  const candidates = [process.env.MSE_CHROMIUM, 'chromium', 'chromium-browser', 'google-chrome'].filter(
    (c): c is string => !!c,
  );
  for (const c of candidates) {
    try {
      const p = c.includes('/')
        ? c
        : execFileSync('which', [c], { stdio: ['ignore', 'pipe', 'ignore'] })
            .toString()
            .trim();
      if (p && existsSync(p)) return { path: p, why: '' };
    } catch {
      // not on PATH
    }
  }
  return { why: 'no chromium on PATH (apt-get install chromium, or set MSE_CHROMIUM)' };
}

/** A run as `mse bench` writes it: two seeds, two attacks (soft and argmax), four defenses, a priced one, a detector. */
function runRows(): Array<Record<string, string>> {
  const rows: Array<Record<string, string>> = [];
  const add = (
    defense: string,
    params: string,
    attack: string,
    aparams: string,
    budget: number,
    seed: number,
    acc: number,
    extra: Record<string, string> = {},
  ) =>
    rows.push({
      dataset: 'mnist',
      victim: 'cnn',
      victim_acc: '0.9768',
      defense,
      defense_params: params,
      attack,
      attack_params: aparams,
      budget: String(budget),
      seed: String(seed),
      surrogate_acc: String(acc + seed / 200),
      agreement_test: String(acc + seed / 200 + 0.01),
      queries: String(budget),
      attacker_cpu_s: '3',
      pow_s: '0',
      defended_acc: defense === 'noise' ? '0.951' : '0.9767',
      perturbation_l1: defense === 'none' ? '0' : '0.9',
      perturbation_kl: '0.1',
      honest_slowdown: '1',
      status: 'ok',
      ...extra,
    });
  for (const seed of [1, 2])
    for (const [budget, f] of [
      [1000, 0.8],
      [5000, 1],
    ] as const) {
      add('none', '', 'knockoff', '', budget, seed, 0.85 * f);
      add('none', '', 'knockoff', 'labels=top1', budget, seed, 0.8 * f);
      add('mad', 'argmax=true,eps=2', 'knockoff', '', budget, seed, 0.03);
      add('mad', 'argmax=true,eps=2', 'knockoff', 'labels=top1', budget, seed, 0.78 * f);
      add('noise', 'sigma=0.5', 'knockoff', '', budget, seed, 0.6 * f);
      add('pow', '', 'knockoff', '', budget, seed, 0.85 * f, {
        pow_s: '250',
        pow_ratio: String(120 + seed),
        honest_slowdown: '1.16',
      });
      add('prada', '', 'jbda', '', budget, seed, 0.5 * f, { detected_at: seed === 1 ? '140' : '', benign_fpr: '0' });
    }
  return rows;
}

const dir = path.resolve('results/html-report-test');
const reportDir = path.join(dir, 'report');
const page = path.join(reportDir, 'index.html');
const comparePage = path.join(dir, 'compare.html');

beforeAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const manifest = {
    run_id: 'html-test',
    command: ['/x/bin/mse.js', 'bench', '--defense', 'mad:eps=2,argmax=true', '-d', 'mnist'],
    git_commit: 'abc123',
    versions: { mse: '0.1.0', node: process.versions.node },
    backend: { name: 'wasm', tf_backend: 'wasm', label: 'wasm+openblas', threads: 2, native: '' },
  };
  writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
  await writeReport(runRows(), reportDir, { png: false, manifest, csvHref: '../results.csv' });
  // run B: the noise defense got weaker for the attacker, one cell left out
  const b = runRows()
    .filter((r) => !(r.defense === 'pow' && r.budget === '1000'))
    .map((r) => (r.defense === 'noise' ? { ...r, surrogate_acc: String(Number(r.surrogate_acc) + 0.2) } : r));
  writeFileSync(
    comparePage,
    renderHtml(compareReport(compareResults(runRows(), b), 'a/results.csv', 'b/results.csv', 0.01), {
      title: 'mse compare',
      runs: [
        { label: 'A', manifest, csvHref: 'a/results.csv' },
        { label: 'B', csvHref: 'b/results.csv' },
      ],
    }),
  );
}, 60_000);

describe('report page (index.html)', () => {
  it('is one self-contained file: the libraries inlined, nothing fetched from elsewhere', () => {
    const html = readFileSync(page, 'utf8');
    expect(html).not.toMatch(/<script[^>]+src=/i);
    expect(html).not.toMatch(/<link[^>]+href=/i);
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//i);
    expect(html).toContain('vegaEmbed');
    // the provenance: command, commit, backend, and the CSV it came from
    expect(html).toContain('mse bench --defense mad:eps=2,argmax=true -d mnist');
    expect(html).toContain('abc123');
    expect(html).toContain('wasm+openblas');
    expect(html).toContain('href="../results.csv"');
  });

  it('names the strongest attacker per defense and flags a single attacker', () => {
    const html = readFileSync(page, 'utf8');
    // the strongest-attacker table's rows, as cells
    const section = html.slice(html.indexOf('-strongest"'), html.indexOf('</table>', html.indexOf('-strongest"')));
    const rows = [...section.matchAll(/<tr[^>]*>(.*?)<\/tr>/g)].map((m) =>
      [...m[1].matchAll(/<t[dh][^>]*>(.*?)<\/t[dh]>/g)].map((c) => c[1]),
    );
    const row = (defense: string, budget: string) => rows.find((r) => r[0] === defense && r[1] === budget);
    // MAD-argmax eps=2 leaves soft-label Knockoff at 0.04: the argmax attacker is its worst case
    expect(row('mad:argmax=true,eps=2', '5000')?.slice(2, 4)).toEqual(['knockoff:labels=top1', '0.788 ± 0.032']);
    expect(row('mad:argmax=true,eps=2', '5000')?.[8]).toBe('2');
    expect(row('noise:sigma=0.5', '5000')?.[8]).toBe('1 (single attacker)');
    // the frontier is drawn against the strongest attacker: MAD-argmax's 0.04 does not put it there,
    // PRADA's one (weak) attacker does, and the row says it is a single attacker's figure
    expect(row('prada', '5000')?.slice(8)).toEqual(['1 (single attacker)', '★']);
    expect(row('mad:argmax=true,eps=2', '5000')?.[9]).toBe('');
    expect(row('none', '5000')?.[9]).toBe('');
  });

  it('prints only manifest fields of the types mse writes, and links a run whatever its name', () => {
    const report = { intro: 'x', sections: [] };
    const odd = renderHtml(report, {
      manifest: { command: [1, null, { a: 'x' }], versions: 'abc', backend: [], git_commit: 'c0ffee' },
      csvHref: '../h#a?b%20/results.csv',
    });
    expect(odd).not.toContain('[object Object]');
    expect(odd).not.toMatch(/undefined threads|0 a, 1 b/);
    expect(odd).toContain('c0ffee');
    expect(odd).toContain('href="../h%23a%3Fb%2520/results.csv"');
    const none = renderHtml(report, { manifestProblem: 'manifest.json beside the CSV is not a JSON object' });
    expect(none).toContain('manifest.json beside the CSV is not a JSON object: provenance unknown.');
  });

  const chromium = findChromium();
  it.skipIf(!chromium.path)(
    `renders in headless Chromium: every figure drawn, tables sort, no console error${chromium.path ? '' : ` (skipped: ${chromium.why})`}`,
    async () => {
      const { chromium: pw } = await import('playwright-core');
      const browser = await pw.launch({ executablePath: chromium.path, args: ['--no-sandbox'] });
      try {
        const tab = await browser.newPage({ viewport: { width: 1280, height: 900 } });
        const errors: string[] = [];
        tab.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
        tab.on('pageerror', (e) => errors.push(e.message));
        await tab.goto(pathToFileURL(page).href);
        const figures = await tab.locator('.figure').count();
        expect(figures).toBeGreaterThanOrEqual(4); // trade-off, cost, two learning curves…
        // every figure an SVG with marks: points or lines drawn from data
        // (a page expression: the test's types have no DOM)
        await tab.waitForFunction(
          `[...document.querySelectorAll('.figure')].filter((f) => f.querySelectorAll('svg g.mark-symbol path, svg g.mark-line path').length > 0).length === ${figures}`,
          undefined,
          { timeout: 20_000 },
        );
        // sort the strongest-attacker table by attacker accuracy, both ways
        const table = tab.locator('section[id$="-strongest"] table');
        const column = async () =>
          (await table.locator('tbody tr td:nth-child(4)').allTextContents()).map((t) => Number(t.split(' ')[0]));
        const head = table.locator('th', { hasText: 'attacker acc' });
        await head.click();
        const up = await column();
        expect(up).toEqual([...up].sort((a, b) => a - b));
        await head.click();
        const down = await column();
        expect(down).toEqual([...up].reverse());
        expect(await head.getAttribute('aria-sort')).toBe('descending');
        // a tooltip with the metrics over a point of the trade-off figure
        const point = tab.locator('.figure[id$="-tradeoff"] g.mark-symbol path').first();
        await point.hover({ force: true });
        await tab.waitForSelector('#vg-tooltip-element.visible', { timeout: 5000 });
        expect(await tab.locator('#vg-tooltip-element').textContent()).toMatch(/attacker acc/);
        await tab.screenshot({ path: path.join(reportDir, 'screenshot.png'), fullPage: true });
        // the selector shows one block
        await tab.selectOption('#block', { label: 'Detection' });
        expect(await tab.locator('section.block:not([hidden])').count()).toBe(1);
        // mse compare's page: the moved metrics, significant under a paired t-test, its figure drawn
        await tab.goto(pathToFileURL(comparePage).href);
        await tab.waitForFunction(`document.querySelectorAll('.figure svg g.mark-symbol path').length > 0`, undefined, {
          timeout: 20_000,
        });
        const moved = await tab.locator('#deltas tbody tr').allTextContents();
        // the same +0.2 in both seeds: no variance, so |t| is unbounded and the change significant
        expect(moved.some((r) => /noise.*surrogate_acc.*\+0\.2.*\|t\| > 1000, p < 0\.05/.test(r))).toBe(true);
        expect(await tab.locator('#only tbody tr').allTextContents()).toEqual([expect.stringMatching(/^A .*pow/)]);
        await tab.screenshot({ path: path.join(dir, 'compare.png'), fullPage: true });
        expect(errors).toEqual([]);
      } finally {
        await browser.close();
      }
    },
    60_000,
  );
});
