import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { paretoFront, shortSpec, splitAccounts, writeReport } from '../../src/report/report.js';
import { DEFENSES } from '../../src/defenses/registry.js';

describe('report', () => {
  it('marks the Pareto frontier: higher defended accuracy and lower attacker accuracy', () => {
    const front = paretoFront([
      { defended: 0.98, attacker: 0.95 }, // none: best utility
      { defended: 0.98, attacker: 0.75 }, // dominates none
      { defended: 0.97, attacker: 0.78 }, // dominated by the one above
      { defended: 0.5, attacker: 0.1 }, // worst utility, best protection
    ]);
    expect([...front].sort()).toEqual([1, 3]);
  });

  it('labels leave out parameters at their defaults', () => {
    expect(shortSpec('mad', 'argmax=true,eps=0.5,oracle=extreme,proxy=auto,ydist=l1', DEFENSES.get('mad').params)).toBe(
      'mad:argmax=true',
    );
    expect(shortSpec('reverse-sigmoid', 'beta=1,gamma=0.1', DEFENSES.get('reverse-sigmoid').params)).toBe(
      'reverse-sigmoid',
    );
    expect(shortSpec('none', '', DEFENSES.get('none').params)).toBe('none');
  });

  it('writes markdown tables and rendered figures (SVG with axis titles, PNG)', async () => {
    const row = (defense: string, params: string, budget: number, seed: number, acc: number, dacc: number) => ({
      dataset: 'mnist',
      victim: 'cnn',
      victim_acc: '0.98',
      defense,
      defense_params: params,
      attack: 'knockoff',
      attack_params: '',
      budget: String(budget),
      seed: String(seed),
      surrogate_acc: String(acc),
      agreement_test: String(acc),
      queries: String(budget),
      attacker_cpu_s: '1',
      pow_s: '0',
      defended_acc: String(dacc),
      perturbation_l1: '0',
      perturbation_kl: '0',
      honest_slowdown: '1',
      status: 'ok',
    });
    const rows = [1, 2].flatMap((s) => [
      row('none', '', 1000, s, 0.7 + s / 100, 0.98),
      row('none', '', 5000, s, 0.9 + s / 100, 0.98),
      row('top1', '', 1000, s, 0.5, 0.98),
      row('top1', '', 5000, s, 0.8, 0.98),
    ]);
    const out = mkdtempSync(path.join(os.tmpdir(), 'mse-report-'));
    const r = await writeReport(rows, out);
    expect(r.markdown).toMatch(/## mnist \/ cnn \/ knockoff/);
    expect(r.markdown).toMatch(/\| none \| 5000 \| 0\.915 ± 0\.064 \|/);
    // against the strongest (here the only) attacker: top1 is on the frontier, flagged single attacker
    expect(r.markdown).toMatch(/## mnist \/ cnn \/ strongest attacker/);
    expect(r.markdown).toMatch(/\| top1 \| 5000 \| knockoff \| 0\.800 ± 0\.000 \|.*\| 1 \(single attacker\) \| ★ \|/);
    expect(r.markdown).toMatch(/\| none \| 5000 \| knockoff \| 0\.915 ± 0\.064 \|.*\| 1 \(single attacker\) \|  \|/);
    const svg = readFileSync(path.join(out, 'mnist-cnn-knockoff-curve.svg'), 'utf8');
    expect(svg).toContain('<svg');
    expect(svg).toContain('queries (budget)');
    expect(svg).toContain('attacker (surrogate) test accuracy');
    const png = readFileSync(path.join(out, 'mnist-cnn-tradeoff.png'));
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    expect(existsSync(path.join(out, 'report.md'))).toBe(true);
  });
});

describe('report: detection', () => {
  it('a detector in the stack adds the detection table: seeds caught, queries until the alarm, benign FPR', async () => {
    const row = (attack: string, params: string, seed: number, detected: string, fpr: string) => ({
      dataset: 'mnist',
      victim: 'cnn',
      victim_acc: '0.98',
      defense: 'prada',
      defense_params: 'class-min=10,clients=64,delta=0.9,every=10,min=100,set-size=2000',
      attack,
      attack_params: params,
      budget: '5000',
      seed: String(seed),
      surrogate_acc: '0.5',
      agreement_test: '0.5',
      queries: '5000',
      attacker_cpu_s: '1',
      pow_s: '0',
      defended_acc: '0.98',
      perturbation_l1: '0',
      perturbation_kl: '0',
      honest_slowdown: '1',
      detected_at: detected,
      benign_fpr: fpr,
      status: detected ? 'ok-detected' : 'ok',
    });
    const rows = [
      row('jbda', 'accounts=16', 1, '1900', '0'),
      row('jbda', 'accounts=16', 2, '2100', '0'),
      row('jbda', 'accounts=2', 1, '230', '0'),
      row('jbda', 'accounts=2', 2, '250', '0'),
      row('knockoff', '', 1, '', '0'),
      row('knockoff', '', 2, '4000', '0'),
    ];
    const r = await writeReport(rows, mkdtempSync(path.join(os.tmpdir(), 'mse-report-')), { png: false });
    const table = r.markdown.slice(r.markdown.indexOf('## Detection'));
    expect(table).toMatch(
      /\| mnist \/ cnn \| prada \| jbda:accounts=2 \| 5000 \| 2 of 2 seeds \| 240 ± \d+ \| 0\.00 ± 0\.00 \|/,
    );
    expect(table).toMatch(/\| prada \| knockoff \| 5000 \| 1 of 2 seeds \| 4000 \|/);
    // accounts in numeric order
    expect(table.indexOf('accounts=2 ')).toBeLessThan(table.indexOf('accounts=16 '));
    // jbda ran with 2 and 16 accounts: the figure of queries until detection vs accounts, its points
    // the mean alarms; knockoff ran with one account only and has no line in it
    const fig = r.files.find((f) => f.endsWith('mnist-cnn-detection-accounts.svg'));
    expect(fig).toBeDefined();
    expect(r.markdown).toContain('![mnist-cnn-detection-accounts](mnist-cnn-detection-accounts.svg)');
    const svg = readFileSync(fig!, 'utf8');
    expect(svg).toContain('prada vs jbda @ 5000');
    expect(svg).not.toContain('prada vs knockoff');
    expect(svg).toContain('queries until detection vs Sybil accounts');
    // without a second accounts value, no figure
    const single = await writeReport(
      rows.filter((x) => x.attack_params !== 'accounts=2'),
      mkdtempSync(path.join(os.tmpdir(), 'mse-report-')),
      { png: false },
    );
    expect(single.files.some((f) => f.includes('detection-accounts'))).toBe(false);
    // no detector, no section
    const plain = await writeReport(
      rows.map((x) => ({ ...x, benign_fpr: '', detected_at: '' })),
      mkdtempSync(path.join(os.tmpdir(), 'mse-report-')),
      { png: false },
    );
    expect(plain.markdown).not.toMatch(/## Detection/);
  });
});

describe('report: splitAccounts', () => {
  it('takes accounts=k out of an attack label, one account when it has none', () => {
    expect(splitAccounts('jbda:accounts=16')).toEqual({ label: 'jbda', accounts: 16 });
    expect(splitAccounts('jbda:accounts=4,epochs=5')).toEqual({ label: 'jbda:epochs=5', accounts: 4 });
    expect(splitAccounts('knockoff:pool=kmnist')).toEqual({ label: 'knockoff:pool=kmnist', accounts: 1 });
    expect(splitAccounts('knockoff')).toEqual({ label: 'knockoff', accounts: 1 });
    expect(splitAccounts('knockoff:adapt-defense=[mad:accounts=3],accounts=2')).toEqual({
      label: 'knockoff:adapt-defense=[mad:accounts=3]',
      accounts: 2,
    });
  });
});

describe('report: watermarks', () => {
  it('a watermarking defense adds the verification table', async () => {
    const row = (seed: number, acc: string, verified: string) => ({
      dataset: 'mnist',
      victim: 'cnn',
      victim_acc: '0.98',
      defense: 'dawn',
      defense_params: 'clients=64,marks=10000,rate=0.01',
      attack: 'knockoff',
      attack_params: 'epochs=60',
      budget: '2000',
      seed: String(seed),
      surrogate_acc: '0.93',
      agreement_test: '0.93',
      queries: '2000',
      attacker_cpu_s: '1',
      pow_s: '0',
      defended_acc: '0.968',
      perturbation_l1: '0.02',
      perturbation_kl: '0.1',
      honest_slowdown: '1',
      watermark_acc: acc,
      ownership_verified: verified,
      status: 'ok',
    });
    const r = await writeReport(
      [row(1, '0.83', '1'), row(2, '0.2', '0')],
      mkdtempSync(path.join(os.tmpdir(), 'mse-report-')),
      {
        png: false,
      },
    );
    expect(r.markdown).toMatch(/## Watermarks/);
    expect(r.markdown).toMatch(
      /\| mnist \/ cnn \| dawn:rate=0\.01 \| knockoff:epochs=60 \| 2000 \| 0\.515 ± [\d.]+ \| 1 of 2 seeds \|/,
    );
    expect(r.markdown).not.toMatch(/## Detection/);
  });
});

describe('report: what a hostile or broken run holds', () => {
  const base = {
    dataset: 'linear',
    victim: 'logistic',
    victim_acc: '0.9',
    defense: 'none',
    defense_params: '',
    attack: 'eq-lr',
    attack_params: '',
    budget: '11',
    seed: '1',
    surrogate_acc: '0.9',
    defended_acc: '0.9',
    status: 'ok',
  };
  it('lists the rows that did not finish instead of leaving only dashes', async () => {
    const r = await writeReport(
      [base, { ...base, seed: '2', surrogate_acc: '', status: 'failed: out of memory' }],
      mkdtempSync(path.join(os.tmpdir(), 'mse-report-')),
      { png: false, html: false },
    );
    expect(r.markdown).toMatch(/2 rows, 1 cell; 1 row did not finish/);
    expect(r.markdown).toMatch(/## Rows that did not finish/);
    expect(r.markdown).toMatch(/\| linear \/ logistic \| none \| eq-lr \| 11 \| 2 \| failed: out of memory \|/);
  });

  it('names from the CSV cannot become markup in report.md or break its tables', async () => {
    const r = await writeReport(
      [{ ...base, defense: '<img src=x onerror=alert(1)>', defense_params: 'a|b' }],
      mkdtempSync(path.join(os.tmpdir(), 'mse-report-')),
      { png: false, html: false },
    );
    expect(r.markdown).not.toContain('<img');
    expect(r.markdown).toContain('&lt;img src=x onerror=alert(1)&gt;:a\\|b');
  });
});
