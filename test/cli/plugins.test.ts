/**
 * Plugins end to end, through the built CLI as a user runs it: the two worked examples in
 * examples/plugins/ appear in `mse list` with their parameter help, and run in `attack`, in serial
 * and `--jobs 2` sweeps (worker processes load the plugin from the plan cell), and through shards +
 * merge, giving the same rows every way. A broken plugin file is one line naming it, exit 2, and
 * nothing written.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readResults } from '../../src/runner/csv-writer.js';

const ROOT = path.resolve('.');
const DEFENSE = path.join(ROOT, 'examples/plugins/temperature.mjs');
const ATTACK = path.join(ROOT, 'examples/plugins/uniform-retrain.mjs');
const RINGS = path.join(ROOT, 'test/fixtures/plugins/rings.mjs');

function mse(args: string[], env: Record<string, string> = {}, cwd = ROOT) {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/mse.js'), ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', ...env },
    timeout: 180_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
const tmp = (p: string) => mkdtempSync(path.join(os.tmpdir(), p));
const METRICS = [
  'cell_id',
  'defense',
  'defense_params',
  'attack',
  'attack_params',
  'budget',
  'seed',
  'queries',
  'surrogate_acc',
  'agreement_test',
  'agreement_unif',
  'defended_acc',
  'perturbation_l1',
  'status',
];
const byId = (file: string) =>
  new Map(readResults(file).map((r) => [r.cell_id, Object.fromEntries(METRICS.map((k) => [k, r[k]]))]));

describe('plugins: the worked examples', () => {
  it('mse list shows plugin units with their parameter help and where they came from', () => {
    const r = mse(['--plugin', DEFENSE, '--plugin', ATTACK, 'list', 'defenses']);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`temperature (plugin ${DEFENSE})`);
    expect(r.out).toMatch(/t=2\s+number ≥ 0\.01, ≤ 100: temperature: answers are p\^\(1\/t\), renormalised/);
    const a = mse(['list', 'attacks', '--plugin', ATTACK]); // after the command's name too
    expect(a.code).toBe(0);
    expect(a.out).toMatch(/uniform-retrain \(plugin .*uniform-retrain\.mjs\)/);
    expect(a.out).toMatch(/epochs=20\s+int ≥ 1: surrogate training epochs/);
  });

  it('a plugin defense and a plugin attack run in one sweep: serially, with --jobs 2, and as shards merged, the same rows each way', () => {
    const dir = tmp('mse-plugins-');
    const grid = [
      'bench',
      '--plugin',
      DEFENSE,
      '--plugin',
      ATTACK,
      '-d',
      'iris',
      '--defense',
      'temperature:t=0.5,4',
      '-a',
      'uniform-retrain:epochs=40',
      '-a',
      'eq-softmax',
      '-b',
      '300',
      '--seeds',
      '1',
      '-q',
    ];
    const serial = mse([...grid, '-o', path.join(dir, 'serial'), '--jobs', '1']);
    expect(serial.code, serial.err).toBe(0);
    const rows = byId(path.join(dir, 'serial', 'results.csv'));
    // baseline + two temperatures, × two attacks
    expect(rows.size).toBe(6);
    const plugged = [...rows.values()].filter((r) => r.attack === 'uniform-retrain');
    expect(plugged).toHaveLength(3);
    for (const r of plugged) {
      expect(r.status).toBe('ok');
      expect(Number(r.queries)).toBe(300);
      // the stolen model is measured against the victim: 40 epochs on 300 answers agree with it far above chance (1/3) on iris
      expect(Number(r.agreement_test)).toBeGreaterThan(0.75);
    }
    // the plugin defense really transforms answers: t = 4 perturbs them, the baseline does not
    const tempered = [...rows.values()].find((r) => r.defense === 'temperature' && r.defense_params === 't=4')!;
    const none = [...rows.values()].find((r) => r.defense === 'none')!;
    expect(Number(none.perturbation_l1)).toBe(0);
    expect(Number(tempered.perturbation_l1)).toBeGreaterThan(0);
    // the manifest records each plugin's path and content hash
    const manifest = JSON.parse(readFileSync(path.join(dir, 'serial', 'manifest.json'), 'utf8')) as {
      plugins: Array<{ path: string; hash: string }>;
    };
    expect(manifest.plugins.map((p) => p.path).sort()).toEqual([DEFENSE, ATTACK].sort());
    expect(manifest.plugins.every((p) => /^[0-9a-f]{16}$/.test(p.hash))).toBe(true);

    const jobs = mse([...grid, '-o', path.join(dir, 'jobs'), '--jobs', '2']);
    expect(jobs.code, jobs.err).toBe(0);
    const jobRows = byId(path.join(dir, 'jobs', 'results.csv'));
    expect(jobRows).toEqual(rows);

    for (let i = 0; i < 2; i++)
      expect(mse([...grid, '-o', path.join(dir, 'sharded'), '--shard', `${i}/2`, '--jobs', '1']).code).toBe(0);
    // merge needs no --plugin: it loads the manifest's plugins (and checks their hashes)
    const merged = mse(['merge', path.join(dir, 'sharded')]);
    expect(merged.code, merged.err).toBe(0);
    expect(merged.out).toMatch(/6 cells from 2 shards, each exactly once/);
    expect(byId(path.join(dir, 'sharded', 'results.csv'))).toEqual(rows);
  });

  it('a changed plugin is a different experiment: new ids, and a results directory of the old version refuses it', () => {
    const dir = tmp('mse-plugin-hash-');
    const copy = path.join(dir, 'temp.mjs');
    // the plugin's own files count: the entry and what it imports by relative path
    writeFileSync(path.join(dir, 't.mjs'), 'export const T = 2;\n');
    writeFileSync(
      copy,
      readFileSync(DEFENSE, 'utf8')
        .replace(
          "import { defineDefense, tf } from 'mse';",
          "import { defineDefense, tf } from 'mse';\nimport { T } from './t.mjs';",
        )
        .replace('default: 2', 'default: T'),
    );
    const run = (out: string) =>
      mse([
        '--plugin',
        copy,
        'attack',
        '-d',
        'iris',
        '-a',
        'eq-softmax',
        '--defense',
        'temperature',
        '-b',
        '50',
        '-o',
        path.join(dir, out),
        '-q',
      ]);
    const ids = (out: string) => readResults(path.join(dir, out, 'results.csv')).map((r) => r.cell_id);
    expect(run('a').code).toBe(0);
    expect(run('a').err).toMatch(/already in/); // unchanged: resumed
    // a change in an imported file only
    writeFileSync(path.join(dir, 't.mjs'), 'export const T = 4;\n');
    const refused = run('a');
    expect(refused.code).toBe(2);
    expect(refused.err).toMatch(/holds results of the plugin .*temp\.mjs at hash [0-9a-f]{16}; the plugin has changed/);
    expect(ids('a')).toHaveLength(1); // nothing appended
    expect(run('b').code).toBe(0);
    expect(ids('b')[0]).not.toBe(ids('a')[0]);
  });
});

describe('plugins: what mse does not take on trust', () => {
  const dir = tmp('mse-plugin-trust-');
  const write = (name: string, body: string) => {
    const f = path.join(dir, name);
    writeFileSync(f, `import { defineAttack, defineDefense, createNet, parseModelSpec } from 'mse';\n${body}\n`);
    return f;
  };
  const ATTACK_BODY = (name: string, run: string) =>
    `export default defineAttack({ name: '${name}', describe: 'test', params: {}, async run(p, api, know, rng, opts) { ${run} } });`;
  const surrogate =
    "const s = createNet(parseModelSpec('softmax'), { name: 's', inputShape: know.inputShape, numClasses: know.numClasses, kind: 'tabular' }, rng);";

  it('an import that never settles is an error, not a silent exit 0', () => {
    const f = write('hang.mjs', 'await new Promise(() => {});');
    const out = path.join(dir, 'out-hang');
    const r = mse(['--plugin', f, 'bench', '-d', 'iris', '-a', 'eq-softmax', '-b', '10', '-o', out], {
      MSE_PLUGIN_IMPORT_TIMEOUT_S: '1',
    });
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/plugin .*hang\.mjs did not finish importing within 1 s/);
    expect(existsSync(out)).toBe(false);
  });

  it('a plugin attack that throws is one line naming the plugin — the same line serially and in workers — and the sweep goes on', () => {
    const f = write('throw.mjs', ATTACK_BODY('a-throw', "throw new Error('kaboom in run');"));
    const one = mse(['--plugin', f, 'attack', '-d', 'iris', '-a', 'a-throw', '-b', '20']);
    expect(one.code).toBe(1);
    expect(one.err).toMatch(/^mse: error: plugin .*throw\.mjs: attack a-throw: run failed: kaboom in run$/m);
    expect(one.err).not.toMatch(/internal error|\n\s+at /);
    const lines = ['1', '2'].map((jobs) => {
      const r = mse([
        '--plugin',
        f,
        'bench',
        '-d',
        'iris',
        '-a',
        'a-throw',
        '-a',
        'eq-softmax',
        '-b',
        '20',
        '--seeds',
        '1',
        '--jobs',
        jobs,
        '-o',
        path.join(dir, `sweep-${jobs}`),
      ]);
      expect(r.code).toBe(1);
      expect(readResults(path.join(dir, `sweep-${jobs}`, 'results.csv')).map((x) => x.attack)).toEqual(['eq-softmax']);
      return r.err.split('\n').find((l) => l.startsWith('failed: '));
    });
    expect(lines[0]).toMatch(/plugin .*: attack a-throw: run failed: kaboom in run/);
    expect(lines[1]).toBe(lines[0]);
  });

  it("an attack's result is checked: a learning curve it was not asked for is refused, and the sweep can be re-run", () => {
    const f = write(
      'lie.mjs',
      ATTACK_BODY(
        'c-lie',
        `${surrogate} return { surrogate: s, queries: 0, budgetExhausted: false, notes: [], curve: [{ budget: 12345, queries: 0, surrogate: s, attackerSeconds: -5 }] };`,
      ),
    );
    const out = path.join(dir, 'lie');
    const args = [
      '--plugin',
      f,
      'bench',
      '-d',
      'iris',
      '-a',
      'c-lie',
      '-b',
      '20',
      '--seeds',
      '1',
      '--jobs',
      '1',
      '-o',
      out,
    ];
    const r = mse(args);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/attack c-lie returned a learning-curve point for budget 12345 where 20 was asked/);
    expect(readResults(path.join(out, 'results.csv'))).toHaveLength(0);
    // not recorded, so a re-run tries again (and says the same) instead of tripping over a stray row
    expect(mse(args).err).toMatch(/returned a learning-curve point for budget 12345/);
  });

  it('a plugin defense whose answers are not distributions is stopped at the API, naming it', () => {
    const f = write(
      'unnorm.mjs',
      "export default defineDefense({ name: 'd-unnorm', describe: 'test', params: {}, create: () => ({ output: (probs) => ({ probs: probs.mul(10) }) }) });",
    );
    const r = mse(['--plugin', f, 'attack', '-d', 'iris', '-a', 'eq-softmax', '--defense', 'd-unnorm', '-b', '20']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/plugin .*unnorm\.mjs: defense d-unnorm: output returned a row that does not sum to 1/);
  });

  it('requirements and schemas that would switch a check off are refused when loaded or planned', () => {
    const typo = write(
      'typo.mjs',
      "export default defineAttack({ name: 'a-typo', describe: 'test', params: {}, requires: { reveal: 'probs' }, async run() {} });",
    );
    const r = mse(['--plugin', typo, 'attack', '-d', 'iris', '-a', 'a-typo', '-b', '20', '-o', path.join(dir, 'typo')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/attack a-typo: requires has an unknown field 'reveal'/);
    expect(existsSync(path.join(dir, 'typo'))).toBe(false);
    const minmax = write(
      'minmax.mjs',
      "export default defineDefense({ name: 'd-mm', describe: 'test', params: { x: { type: 'int', min: 5, max: 1, help: 'h' } }, create: () => ({}) });",
    );
    const m = mse(['--plugin', minmax, 'list', 'defenses']);
    expect(m.code).toBe(2);
    expect(m.err).toMatch(/parameter 'x' has min 5 above max 1/);
  });

  it('a plugin edited under a running --jobs sweep stops the sweep at the first worker that sees it, with one line', () => {
    const f = path.join(dir, 'self-edit.mjs');
    // a plugin that edits itself when a worker loads it (workers have an IPC channel; the parent does not)
    writeFileSync(
      f,
      [
        "import { defineDefense } from 'mse';",
        "import { appendFileSync } from 'node:fs';",
        "import { fileURLToPath } from 'node:url';",
        "if (process.send) appendFileSync(fileURLToPath(import.meta.url), '// edited\\n');",
        "export default defineDefense({ name: 'self-edit', describe: 'test', params: {}, create: () => ({}) });",
        '',
      ].join('\n'),
    );
    const out = path.join(dir, 'edited');
    const r = mse([
      '--plugin',
      f,
      'bench',
      '-d',
      'iris',
      '--defense',
      'self-edit',
      '--no-baseline',
      '-a',
      'eq-softmax',
      '-a',
      'eq-softmax:multiple=50',
      '-a',
      'eq-softmax:multiple=20',
      '-a',
      'eq-softmax:multiple=10',
      '-b',
      '20',
      '--seeds',
      '1',
      '--jobs',
      '2',
      '-o',
      out,
    ]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(
      /^mse: error: plugin .*self-edit\.mjs (changed since the plan was made|changed while it was being loaded)/m,
    );
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  it('a stack the API would refuse (probabilities needed after labels only) fails at plan time, nothing written', () => {
    const out = path.join(dir, 'order');
    const r = mse([
      '--plugin',
      DEFENSE,
      'attack',
      '-d',
      'iris',
      '-a',
      'eq-softmax',
      '--defense',
      'top1',
      '--defense',
      'temperature',
      '-b',
      '20',
      '-o',
      out,
    ]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(
      /defense 'temperature' needs probabilities but an earlier defense \(top1\) reveals labels only/,
    );
    expect(existsSync(out)).toBe(false);
  });
});

describe('plugins: paper specs, emitted job files, serve', () => {
  it('a paper spec names its plugins (relative to the spec file) and mse reproduce runs and checks them', () => {
    const dir = tmp('mse-plugin-paper-');
    copyFileSync(DEFENSE, path.join(dir, 'temp.mjs'));
    const spec = {
      paper: 'mine',
      title: 'My defense against equation solving',
      mirrors: 'nothing published',
      plugins: ['./temp.mjs'],
      columns: ['surrogate_acc', 'param_error', 'defended_acc'],
      scales: {
        ci: {
          seeds: [1],
          cells: [
            {
              id: 'open',
              dataset: 'iris',
              victim: 'softmax',
              attack: 'eq-softmax',
              budget: '1x',
              expect: { agreement_test: [0.9, 1] },
            },
            {
              id: 'tempered',
              dataset: 'iris',
              victim: 'softmax',
              attack: 'eq-softmax',
              budget: '1x',
              defenses: ['temperature:t=4'],
              expect: { defended_acc: [0.5, 1] },
            },
          ],
          // tempered answers are a softmax model with weights W/t: equation solving recovers W/4, 0.75 off
          relations: [{ metric: 'param_error', greater: 'tempered', less: 'open', by: 0.5 }],
        },
      },
    };
    writeFileSync(path.join(dir, 'mine.json'), JSON.stringify(spec));
    const r = mse(
      ['reproduce', path.join(dir, 'mine.json'), '--scale', 'ci', '--out', path.join(dir, 'out')],
      {},
      os.tmpdir(),
    );
    expect(r.code, r.err + r.out).toBe(0);
    expect(r.out).toMatch(/3 passed, 0 failed/);
    const manifest = JSON.parse(readFileSync(path.join(dir, 'out', 'manifest.json'), 'utf8')) as {
      plugins: Array<{ path: string }>;
    };
    expect(manifest.plugins.map((p) => p.path)).toEqual([path.join(dir, 'temp.mjs')]);
  });

  it('emitted Slurm and GitHub job files load the same plugins (by absolute path, or within the repository)', () => {
    const dir = tmp('mse-plugin-emit-');
    const rel = path.relative(process.cwd(), DEFENSE);
    for (const emit of ['slurm', 'github']) {
      const r = mse([
        '--plugin',
        rel,
        'bench',
        '-d',
        'iris',
        '--defense',
        'temperature',
        '-a',
        'eq-softmax',
        '-o',
        path.join(dir, emit),
        '--emit',
        emit,
        '--shards',
        '2',
      ]);
      expect(r.code, r.err).toBe(0);
      const text = readdirSync(path.join(dir, emit))
        .map((f) => readFileSync(path.join(dir, emit, f), 'utf8'))
        .join('\n');
      // Slurm jobs start here and share this file system; a GitHub runner checks the repository out afresh
      expect(text).toContain(`--plugin ${emit === 'slurm' ? DEFENSE : rel}`);
    }
  });
});

describe('plugins: a dataset and a model family', () => {
  it('a plugin dataset and a plugin network family: listed, used as the defaults, and attacked, the same with --jobs 2', () => {
    const list = mse(['--plugin', RINGS, 'list', 'all']);
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/two-rings\s+tabular\s+two concentric rings .*\(plugin .*rings\.mjs\)/);
    expect(list.out).toMatch(/wide-mlp\s+an MLP with two relu layers .*\[width=32, epochs\] \(plugin/);
    const dir = tmp('mse-plugin-data-');
    // no -v: the dataset names its default victim (wide-mlp); the model names its default budget (300)
    const grid = [
      'bench',
      '--plugin',
      RINGS,
      '--plugin',
      ATTACK,
      '-d',
      'two-rings',
      '-a',
      'uniform-retrain:epochs=40',
      '-a',
      'jbda:seedsize=20,epochs=5',
      '--seeds',
      '1',
      '-q',
    ];
    const serial = mse([...grid, '-o', path.join(dir, 'serial'), '--jobs', '1']);
    expect(serial.code, serial.err).toBe(0);
    const rows = readResults(path.join(dir, 'serial', 'results.csv'));
    expect(rows).toHaveLength(2);
    for (const r of rows) {
      expect(r.victim).toBe('wide-mlp:width=32');
      expect(r.budget).toBe('300');
      expect(r.status).toBe('ok');
      expect(Number(r.victim_acc)).toBeGreaterThan(0.9); // the plugin's model really learned the plugin's data
      expect(r.dataset_variant).toMatch(/^plugin-[0-9a-f]{16}$/);
    }
    const uniform = rows.find((r) => r.attack === 'uniform-retrain')!;
    expect(Number(uniform.agreement_test)).toBeGreaterThan(0.9);
    const jobs = mse([...grid, '-o', path.join(dir, 'jobs'), '--jobs', '2']);
    expect(jobs.code, jobs.err).toBe(0);
    expect(byId(path.join(dir, 'jobs', 'results.csv'))).toEqual(byId(path.join(dir, 'serial', 'results.csv')));
  });
});

describe('plugins: units named by a parameter, and data a plugin reads', () => {
  it("a plugin dataset as an attack's pool is the cell's plugin too: workers load it, the manifest records it", () => {
    const dir = tmp('mse-plugin-pool-');
    const grid = [
      'bench',
      '--plugin',
      RINGS,
      '-d',
      'moons',
      '-v',
      'mlp',
      '-a',
      'knockoff:pool=two-rings,epochs=2,arch=mlp',
      '-b',
      '100',
      '--seeds',
      '1',
      '-q',
    ];
    const jobs = mse([...grid, '-o', path.join(dir, 'jobs'), '--jobs', '2']);
    expect(jobs.code, jobs.err).toBe(0);
    const rows = readResults(path.join(dir, 'jobs', 'results.csv'));
    expect(rows.map((r) => r.status)).toEqual(['ok']);
    expect(Number(rows[0].queries)).toBe(100);
    const manifest = JSON.parse(readFileSync(path.join(dir, 'jobs', 'manifest.json'), 'utf8')) as {
      plugins: Array<{ path: string }>;
    };
    expect(manifest.plugins.map((p) => p.path)).toEqual([RINGS]);
    const serial = mse([...grid, '-o', path.join(dir, 'serial'), '--jobs', '1']);
    expect(serial.code, serial.err).toBe(0);
    expect(byId(path.join(dir, 'jobs', 'results.csv'))).toEqual(byId(path.join(dir, 'serial', 'results.csv')));
  });

  it("a plugin dataset's content is its variant and part of the ids: new data is a new experiment, though the plugin file is the same", () => {
    const dir = tmp('mse-plugin-data-');
    writeFileSync(path.join(dir, 'points.json'), JSON.stringify({ shift: 0 }));
    const plugin = path.join(dir, 'points.mjs');
    writeFileSync(
      plugin,
      [
        "import { defineDataset } from 'mse';",
        "import { readFileSync } from 'node:fs';",
        "const { shift } = JSON.parse(readFileSync(new URL('./points.json', import.meta.url), 'utf8'));",
        'const split = (n, o) => {',
        '  const x = new Float32Array(n * 2), y = new Int32Array(n);',
        '  for (let i = 0; i < n; i++) { y[i] = i % 2; x[2 * i] = (y[i] ? 1 : -1) + shift + ((i * 7 + o) % 10) / 20; x[2 * i + 1] = ((i * 3 + o) % 10) / 10; }',
        '  return { x, y, n };',
        '};',
        "export default defineDataset({ name: 'points', describe: 'points read from a file', kind: 'tabular', load: () => ({ inputShape: [2], numClasses: 2, train: split(200, 1), test: split(60, 2) }) });",
        '',
      ].join('\n'),
    );
    const run = (out: string) =>
      mse(['--plugin', plugin, 'attack', '-d', 'points', '-a', 'eq-lr', '-b', '1x', '-o', path.join(dir, out), '-q']);
    expect(run('a').code).toBe(0);
    const before = readResults(path.join(dir, 'a', 'results.csv'))[0];
    expect(before.dataset_variant).toMatch(/^plugin-[0-9a-f]{16}$/);
    writeFileSync(path.join(dir, 'points.json'), JSON.stringify({ shift: 0.5 }));
    expect(run('b').code).toBe(0);
    const after = readResults(path.join(dir, 'b', 'results.csv'))[0];
    expect(after.dataset_variant).not.toBe(before.dataset_variant);
    expect(after.cell_id).not.toBe(before.cell_id);
  });

  it("a plugin's check that throws, and a plugin model without defaults or with a layer mse lacks, are one line", () => {
    const dir = tmp('mse-plugin-units-');
    const w = (name: string, body: string) => {
      writeFileSync(path.join(dir, name), `import { defineAttack, defineModel } from 'mse';\n${body}\n`);
      return path.join(dir, name);
    };
    const check = w(
      'check.mjs',
      "export default defineAttack({ name: 'a-check', describe: 'x', params: {}, check() { throw new TypeError('oops'); }, async run() {} });",
    );
    const c = mse(['--plugin', check, 'attack', '-d', 'iris', '-a', 'a-check', '-b', '10']);
    expect(c.code).toBe(1);
    expect(c.err).toMatch(/^mse: error: plugin .*check\.mjs: attack a-check: check failed: oops$/m);
    expect(c.err).not.toMatch(/internal error|\n\s+at /);
    const model = (name: string, extra: string, layers: string) =>
      `export default defineModel({ name: '${name}', describe: 'x', params: {}, train: () => ({ epochs: 1, batchSize: 32, optimizer: 'adam', lr: 0.01 }), layers: (ds) => ({ layers: ${layers}, head: 'softmax' }), budgets: () => ['100'], ${extra} });`;
    const noAttacks = w(
      'noattacks.mjs',
      model('m-none', 'attacks: []', "[{ type: 'flatten' }, { type: 'dense', units: ds.numClasses }]"),
    );
    const n = mse(['--plugin', noAttacks, 'list', 'models']);
    expect(n.code).toBe(2);
    expect(n.err).toMatch(/export 'default' needs attacks: the attack specs a sweep runs against it/);
    const lstm = w(
      'lstm.mjs',
      model('m-lstm', "attacks: ['jbda']", "[{ type: 'lstm', units: 8 }, { type: 'dense', units: ds.numClasses }]"),
    );
    const l = mse(['--plugin', lstm, 'attack', '-d', 'iris', '-v', 'm-lstm', '-a', 'jbda', '-b', '10']);
    expect(l.code).toBe(1);
    expect(l.err).toMatch(
      /plugin .*lstm\.mjs: model m-lstm: layers layer 0 .* the type must be dense, conv2d, maxpool or flatten/,
    );
  });
});

describe('plugins: bad files are one line, exit 2, nothing written', () => {
  const dir = tmp('mse-bad-plugins-');
  const write = (name: string, text: string) => {
    const f = path.join(dir, name);
    writeFileSync(f, text);
    return f;
  };
  const def = (body: string) => `import { defineDefense, defineAttack } from 'mse';\n${body}\n`;
  const cases: Array<[string, string, RegExp]> = [
    ['missing', path.join(dir, 'nope.mjs'), /plugin .*nope\.mjs does not exist/],
    ['syntax error', write('syntax.mjs', 'export default {'), /plugin .*syntax\.mjs failed to import: /],
    [
      'throws on import',
      write('throws.mjs', "throw new Error('boom');"),
      /plugin .*throws\.mjs failed to import: boom/,
    ],
    [
      'exports nothing',
      write('empty.mjs', 'export const x = 1;'),
      /plugin .*empty\.mjs exports no attack, defense, model or dataset/,
    ],
    [
      'a model that is not a network',
      write(
        'tree.mjs',
        def(
          "export default { kind: 'model', name: 'my-tree', describe: 'x', params: {}, resolve() {}, train() {}, budgets() {} };",
        ),
      ),
      /is not a unit built by defineModel \(no layers: plugin models are networks\)/,
    ],
    [
      'a dataset reusing a built-in name',
      write(
        'ds.mjs',
        "import { defineDataset } from 'mse';\nexport default defineDataset({ name: 'iris', describe: 'x', kind: 'tabular', load: () => ({}) });",
      ),
      /dataset 'iris' .*reuses the name of a built-in dataset/,
    ],
    [
      'wrong shape',
      write('shape.mjs', "export default { kind: 'defense', name: 'x' };"),
      /plugin .*shape\.mjs: export 'default' has no describe line|is not a unit built by defineDefense/,
    ],
    [
      'invalid schema',
      write(
        'schema.mjs',
        def(
          "export default defineDefense({ name: 'bad-schema', describe: 'x', params: { eps: { type: 'float', help: 'h' } }, create: () => ({}) });",
        ),
      ),
      /schema\.mjs failed to import: defense bad-schema: parameter 'eps' has type 'float'/,
    ],
    [
      'default out of range',
      write(
        'range.mjs',
        def(
          "export default defineDefense({ name: 'bad-range', describe: 'x', params: { eps: { type: 'number', min: 0, default: -1, help: 'h' } }, create: () => ({}) });",
        ),
      ),
      /parameter 'eps' has a default outside its own range/,
    ],
    [
      'reuses a built-in name',
      write(
        'dup.mjs',
        def("export default defineDefense({ name: 'round', describe: 'x', params: {}, create: () => ({}) });"),
      ),
      /plugin .*dup\.mjs: defense 'round' .*reuses the name of a built-in defense/,
    ],
    ['not a module', write('plain.txt', 'hello'), /must be an ES module/],
  ];
  for (const [what, file, msg] of cases) {
    it(what, () => {
      const out = path.join(dir, `out-${what.replace(/\W/g, '')}`);
      const r = mse([
        '--plugin',
        file,
        'bench',
        '-d',
        'iris',
        '-a',
        'eq-softmax',
        '-b',
        '10',
        '--seeds',
        '1',
        '-o',
        out,
      ]);
      expect(r.code).toBe(2);
      expect(r.err.trim().split('\n')[0]).toMatch(msg);
      expect(
        r.err
          .trim()
          .split('\n')
          .filter((l) => !l.startsWith('  ')).length,
      ).toBeLessThanOrEqual(2); // the line, and at most a hint
      expect(r.err).not.toMatch(/\n\s+at /); // no stack trace
      expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
    });
  }

  it('an invalid parameter value of a plugin unit is refused at plan time with its range, before anything trains', () => {
    const out = path.join(dir, 'out-param');
    const r = mse([
      '--plugin',
      DEFENSE,
      'bench',
      '-d',
      'iris',
      '--defense',
      'temperature:t=0',
      '-a',
      'eq-softmax',
      '-b',
      '10',
      '-o',
      out,
    ]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/defense temperature: t must be ≥ 0\.01, got '0'/);
    expect(existsSync(out)).toBe(false);
  });

  it('a plugin defense named high-confidence (once an example plugin, now built in) is refused in one line', () => {
    const f = write(
      'high-confidence.mjs',
      def("export default defineDefense({ name: 'high-confidence', describe: 'x', params: {}, create: () => ({}) });"),
    );
    const r = mse(['--plugin', f, 'list', 'defenses']);
    expect(r.code).toBe(2);
    expect(r.err.trim()).toBe(
      `mse: error: plugin ${f}: defense 'high-confidence' from ${f} reuses the name of a built-in defense (rename the defense in the plugin)`,
    );
    // the built-in itself needs no plugin
    const builtin = mse(['list', 'defenses']);
    expect(builtin.code).toBe(0);
    expect(builtin.out).toMatch(/^ {2}high-confidence\n\s+zero every probability below a cutoff/m);
  });
});
