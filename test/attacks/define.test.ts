import { describe, expect, it } from 'vitest';
import type { ApiResponse, Ledger, PredictionApi, Reveal } from '../../src/api/types.js';
import { defineAttack, notApplicable } from '../../src/attacks/define.js';
import { ATTACKS, parseAttack, parseAttackSpec } from '../../src/attacks/registry.js';
import { AttackNotApplicable, type AttackerKnowledge } from '../../src/attacks/types.js';
import { Rng } from '../../src/compute/rng.js';
import { UsageError } from '../../src/errors.js';
import type { ModelKind } from '../../src/models/model.js';

/** An API that only counts: any query is a failure of the requirement check. */
class CountingApi implements PredictionApi {
  readonly ledger: Ledger;
  readonly info;
  calls = 0;
  constructor(reveals: Reveal, budget: number, numClasses = 2) {
    this.info = { inputShape: [4], numClasses, domain: { min: -1, max: 1 }, reveals, defenses: [] };
    this.ledger = { queries: 0, budget, batches: 0, apiSeconds: 0, powSeconds: 0 };
  }
  async query(): Promise<ApiResponse> {
    this.calls++;
    throw new Error('queried');
  }
}

const know = (kind?: ModelKind, numClasses = 2): AttackerKnowledge => ({
  inputShape: [4],
  numClasses,
  domain: { min: -1, max: 1 },
  family: kind ? { kind } : undefined,
});

describe('defineAttack: requirements are checked before any query', () => {
  it.each([
    ['eq-lr', 'labels', 100, know('logistic'), 'it needs probabilities, the API reveals labels only'],
    ['eq-lr', 'probs', 100, know('logistic', 3), 'it needs 2 classes, the API has 3'],
    [
      'eq-lr',
      'probs',
      100,
      know('softmax'),
      'it solves for a binary logistic regression, the victim is assumed to be softmax',
    ],
    ['eq-lr', 'probs', 0, know('logistic'), 'no query budget'],
    ['eq-softmax', 'probs', 100, know('ovr', 3), 'it solves for softmax regression, the victim is assumed to be ovr'],
    ['eq-mlp', 'probs', Infinity, know('mlp'), 'it needs a finite, positive query budget'],
    ['eq-mlp', 'probs', 100, know(), 'it fits an MLP of known shape, the victim is assumed to be unknown'],
    [
      'retrain-uniform',
      'labels',
      100,
      know('cnn'),
      'it retrains linear models and MLPs, the victim is assumed to be cnn',
    ],
    ['retrain-linesearch', 'labels', 1, know('logistic'), 'it needs a finite query budget of at least 2'],
    ['retrain-adaptive', 'leaf', 100, know(), 'it retrains linear models and MLPs, the victim is assumed to be tree'],
    ['knockoff', 'leaf', 100, know('tree'), 'tree victims are extracted by path-finding (tree-path)'],
    ['knockoff', 'probs', Infinity, know('mlp'), 'it needs a finite, positive query budget'],
    ['jbtop', 'labels', 0, know('mlp'), 'it needs a finite, positive query budget'],
    ['tree-path', 'probs', 100, know(), 'it needs leaf identifiers, the API reveals probs'],
  ] as const)('%s (reveals %s, budget %d) refuses without querying', async (name, reveals, budget, k, why) => {
    const api = new CountingApi(reveals, budget, k.numClasses);
    const err = await parseAttack(name)
      .run(api, k, new Rng(1))
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(AttackNotApplicable);
    expect((err as Error).message).toBe(`${name} cannot run here: ${why}`);
    expect(api.calls).toBe(0);
  });

  it('never calls run when the setting does not fit, and calls it with typed values when it does', async () => {
    const seen: number[] = [];
    const unit = defineAttack({
      name: 'probe',
      describe: 'test attack',
      params: { rounds: { type: 'int', min: 1, default: 3, help: 'rounds' } },
      requires: (p) => ({ reveals: 'probs', minBudget: p.rounds }),
      async run(p) {
        const rounds: number = p.rounds; // typed: no cast
        seen.push(rounds);
        throw new Error('ran');
      },
    });
    const values = unit.resolve({ rounds: ['5'] });
    expect(unit.requires(values)).toEqual({ reveals: 'probs', minBudget: 5 });
    const small = new CountingApi('probs', 4);
    await expect(unit.create(values).run(small, know('mlp'), new Rng(1))).rejects.toThrow(
      'probe cannot run here: it needs a finite query budget of at least 5',
    );
    await expect(unit.create(values).run(new CountingApi('labels', 10), know('mlp'), new Rng(1))).rejects.toThrow(
      /reveals labels only/,
    );
    expect(seen).toEqual([]);
    await expect(unit.create(values).run(new CountingApi('probs', 5), know('mlp'), new Rng(1))).rejects.toThrow('ran');
    expect(seen).toEqual([5]);
  });

  it('notApplicable: an unknown family skips the victims check; an unlimited budget needs finiteBudget: false', () => {
    const s = { numClasses: 2, reveals: 'probs', budget: Infinity } as const;
    expect(notApplicable({ victims: ['logistic'], finiteBudget: false }, { ...s, victim: undefined })).toBeUndefined();
    expect(notApplicable({ victims: ['logistic'], finiteBudget: false }, { ...s, victim: 'mlp' })).toMatch(
      /assumes a logistic victim/,
    );
    expect(notApplicable({}, { ...s, victim: 'mlp' })).toBe('it needs a finite, positive query budget');
    expect(notApplicable({ finiteBudget: false, minBudget: 0 }, { ...s, victim: 'mlp', budget: 0 })).toBeUndefined();
  });

  it('every built-in is a unit with its parameters and requirements', () => {
    expect(ATTACKS.names()).toEqual([
      'eq-lr',
      'eq-softmax',
      'eq-ovr',
      'eq-mlp',
      'relu-exact',
      'retrain-uniform',
      'retrain-linesearch',
      'retrain-adaptive',
      'knockoff',
      'knockoff-adaptive',
      'activethief',
      'copycat',
      'jbda',
      'jbself',
      'jbtop',
      'dfme',
      'maze',
      'tree-path',
      'tree-topdown',
    ]);
    expect(ATTACKS.get('maze').requires({})).toEqual({ reveals: 'probs' });
    const { unit, values } = parseAttackSpec('knockoff-adaptive:epochs=3');
    expect(values).toMatchObject({ pool: 'auto', epochs: 3, step: 16, labels: 'auto' });
    expect(unit.requires(values)).toEqual({ pool: 'auto' });
    expect(parseAttack('eq-lr:multiple=7').params).toEqual({ multiple: 7 });
  });
});

describe('typed schemas reject bad values, naming the parameter and its range', () => {
  it.each([
    ['eq-lr:multiple=0', "attack eq-lr: multiple must be ≥ 1, got '0'"],
    ['tree-path:epsilon=0', "attack tree-path: epsilon must be ≥ 1e-9, got '0'"],
    ['retrain-adaptive:rounds=2.5', "attack retrain-adaptive: rounds must be an integer, got '2.5'"],
    ['eq-mlp:solver=newton', "attack eq-mlp: solver must be one of auto, lbfgs, adam, sgd, sgd-lbfgs, got 'newton'"],
  ])('%s', (spec, message) => {
    expect(() => parseAttack(spec)).toThrow(UsageError);
    expect(() => parseAttack(spec)).toThrow(message);
  });

  it('an unknown attack or parameter is a usage error with the names there are', () => {
    expect(() => parseAttack('eq-lrr')).toThrow(/Did you mean 'eq-lr'/);
    expect(() => parseAttack('eq-lr:multiples=3')).toThrow(/Did you mean 'multiple'/);
  });
});

describe('defineAttack rejects an invalid schema with one line', () => {
  const run = async () => {
    throw new Error('never');
  };
  const define = (params: unknown) => () =>
    defineAttack({ name: 'bad', describe: 'bad', params: params as never, run });

  it.each([
    [
      { k: { type: 'float', help: 'k' } },
      "attack bad: parameter 'k' has type 'float'; use int, number, string, bool or int-list",
    ],
    [
      { k: { type: 'int', min: 1, default: 0, help: 'k' } },
      "attack bad: parameter 'k' has a default outside its own range: attack bad: k must be ≥ 1, got '0'",
    ],
    [
      { k: { type: 'string', choices: ['a', 'b'], default: 'c', help: 'k' } },
      /parameter 'k' has a default outside its own range/,
    ],
    [{ k: { type: 'int', default: 1 } }, "attack bad: parameter 'k' needs a help string"],
  ])('%j', (params, message) => {
    let err: unknown;
    try {
      define(params)();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).not.toContain('\n');
    if (typeof message === 'string') expect((err as Error).message).toBe(message);
    else expect((err as Error).message).toMatch(message);
  });
});
