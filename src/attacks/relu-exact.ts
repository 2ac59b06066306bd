/**
 * Functionally-equivalent extraction of a one-hidden-layer ReLU network, f(x) = softmax(A relu(Wx + b) + c)
 * (Jagielski, Carlini, Berthelot, Kurakin, Papernot, USENIX Security 2020, §5; Carlini, Jagielski,
 * Mironov, CRYPTO 2020, §4). With probabilities, log p_r − log p_0 = z_r − z_0: the logits up to a
 * per-row constant (§5, "logit access"), G(x) = A' relu(Wx + b) + c' with A' = A_r − A_0.
 *  1. Critical points (Carlini §4.2): on a random line x(t) = x₀ + t·v through the domain, G is
 *     piecewise linear in t with a kink where a unit's pre-activation crosses 0. An interval whose
 *     end slopes agree and whose end values lie on one line has no kink; otherwise the two end
 *     lines' intersection t* is tested (one query), refined from two longer spans, and verified;
 *     failing that the interval is split. Kinks on the hyperplane of a unit already found are skipped.
 *  2. The unit's weights (Jagielski §5.2, Carlini §4.3): at x* ± ε·v, on either side of the
 *     hyperplane, the Jacobian of G by central differences along every coordinate (each checked for
 *     linearity); the jump J₊ − J₋ = A'_j w_jᵀ is rank one, so w_j is its top right singular vector
 *     (up to sign and scale) and b_j = −w_j·x*. Each unit gets a second look on a line along its
 *     normal, away from the other hyperplanes, and is measured again there unless it checks out.
 *  3. Signs and output layer (relu-exact-fit.ts): least squares on uniform queries.
 * Steps 1–2 live in relu-exact-search.ts. Differences from ART's FunctionallyEquivalentExtraction:
 * lines stay inside the domain (half of them chords between sparse corner points, where the units of
 * an image model cross 0), every class's logit difference is used at once, each finite difference is
 * checked for a kink, and the signs come from the fit (so h > d works); a probability below 1e-35
 * (float32) makes a point unusable.
 */
import { Rng } from '../compute/rng.js';
import { Net, type NetConfig } from '../models/net.js';
import { createNet, parseModelSpec } from '../models/zoo.js';
import { defineAttack } from './define.js';
import { netWeights, solveOutputLayer, type FitSample } from './relu-exact-fit.js';
import { MIN_P, Oracle, OutOfQueries, Search } from './relu-exact-search.js';
import { AttackNotApplicable, remaining, type AttackerKnowledge } from './types.js';

const NAME = 'relu-exact';

export const reluExact = defineAttack({
  name: NAME,
  describe: 'functionally-equivalent extraction of a 1-hidden-layer ReLU MLP from critical points (Jagielski 2020 §5)',
  params: {
    lines: {
      type: 'int',
      min: 1,
      default: 200,
      help: 'most random lines through the domain to search for critical points (it stops once every unit is found)',
    },
    patience: {
      type: 'int',
      min: 1,
      default: 40,
      help: 'stop after this many lines in a row find no new unit (units dead or linear on the domain are never found)',
    },
    step: {
      type: 'number',
      min: 1e-7,
      max: 0.01,
      default: 1e-3,
      help: 'finite-difference step of the slope estimates, as a fraction of the domain width',
    },
    precision: {
      type: 'number',
      min: 1e-9,
      max: 0.01,
      default: 1e-5,
      help: 'the kink search gives up on intervals shorter than this (fraction of the domain width)',
    },
    fit: {
      type: 'number',
      min: 1,
      default: 2,
      help: 'uniform queries for the output layer, per unknown of its least squares (hidden units + inputs + 1)',
    },
  },
  requires: {
    victims: ['mlp'],
    victimsWhy: 'it inverts a one-hidden-layer ReLU MLP',
    reveals: 'probs',
    finiteBudget: false,
  },
  async run(p, api, know, rng) {
    const cfg = architecture(know); // not applicable before any query
    const d = know.inputShape.reduce((a, b) => a * b, 1);
    const k1 = know.numClasses - 1;
    const h = (cfg.layers.find((l) => l.type === 'dense') as { units: number }).units;
    const width = know.domain.max - know.domain.min;
    const start = api.ledger.queries;
    const plannedFit = Math.ceil(p.fit * (h + d + 1));
    const reserve = Math.min(plannedFit, Math.floor(remaining(api) / 2));
    const oracle = new Oracle(api, know, remaining(api) - reserve);
    const search = new Search(oracle, know, d, k1, h, width * p.step, width * p.precision, rng.fork());
    const notes: string[] = [];
    let lines = 0;
    let exhausted = false;
    try {
      for (let idle = 0; lines < p.lines && search.units.length < h && idle < p.patience; lines++) {
        const before = search.units.length;
        await search.line();
        await search.verify();
        idle = search.units.length > before ? 0 : idle + 1;
      }
    } catch (e) {
      if (!(e instanceof OutOfQueries)) throw e;
      exhausted = true;
    }
    const searchQueries = oracle.used;
    notes.push(`found ${search.units.length} of ${h} hidden units on ${lines} lines (${searchQueries} queries)`);
    if (exhausted) notes.push('budget exhausted during the search: the surrogate uses the units found so far');
    else if (search.units.length < h)
      notes.push(`${h - search.units.length} unit(s) never crossed the lines searched (dead or linear on the domain)`);
    if (search.dropped)
      notes.push(`${search.dropped} critical point(s) dropped: failed a linearity, rank-one or second-look check`);

    // 3. the output layer on fresh uniform queries (Jagielski §5.3). Sparse points as well would see
    // units never found (MNIST: 2 of 16) where they are not linear, and fit worse (measured: agreement
    // 0.9958 vs 0.9995 on uniform inputs, 0.9975 vs 0.9989 on the test set)
    oracle.limit = Infinity;
    const m = Math.min(plannedFit, remaining(api));
    if (m < plannedFit) exhausted = true;
    const x = rng.fork().fillUniform(new Float32Array(m * d), know.domain.min, know.domain.max);
    const g = m ? await oracle.g(x, m) : new Float64Array(0);
    // the base points of the weight recovery join in: they lie on both sides of every hyperplane
    const sample = usable([{ x, g, m }, ...search.units.flatMap((u) => u.sides)], d, k1);
    const layer = solveOutputLayer(search.units, sample, d, k1, h, know.domain);
    notes.push(...layer.notes);
    notes.push(`signs: ${layer.flipped} of ${search.units.length} units flipped by the linear-part test`);
    if (Number.isFinite(layer.residual))
      notes.push(
        `largest |Δlogit| error on the ${sample.m} fit points (${m} uniform queries, 2 per unit from the search): ` +
          layer.residual.toExponential(2),
      );
    if (oracle.unusable) notes.push(`${oracle.unusable} queries had a probability below ${MIN_P}: left out`);
    const surrogate = new Net(cfg, netWeights(layer, d, h, know.numClasses));
    return { surrogate, queries: api.ledger.queries - start, budgetExhausted: exhausted, notes };
  },
});

/** The victim's architecture from its family, or not applicable (before any query). */
function architecture(know: AttackerKnowledge): NetConfig {
  const no = (why: string) => new AttackNotApplicable(NAME, why);
  const fam = know.family;
  if (!fam) throw no('it inverts a one-hidden-layer ReLU MLP, the victim is assumed to be unknown');
  if (!(know.domain.max > know.domain.min)) throw no('it needs a bounded input domain');
  const params = [
    fam.hidden ? `hidden=${fam.hidden.join(',')}` : '',
    fam.activation ? `activation=${fam.activation}` : '',
  ]
    .filter(Boolean)
    .join(',');
  // the zoo decides the defaults (tabular: one tanh layer of 20; images: 256,128 relu)
  const kind = know.inputShape.length === 3 ? ('image' as const) : ('tabular' as const);
  const ds = { name: 'queries', inputShape: know.inputShape, numClasses: know.numClasses, kind };
  const net = createNet(parseModelSpec(`mlp${params ? `:${params}` : ''}`), ds, new Rng(0));
  const cfg = net.config;
  net.dispose();
  const dense = cfg.layers.flatMap((l) => (l.type === 'dense' ? [l] : []));
  if (dense.length !== 2) throw no(`it extracts one hidden layer, the victim has ${dense.length - 1}`);
  if (dense[0].activation !== 'relu') throw no(`it needs ReLU hidden units, the victim's are ${dense[0].activation}`);
  if (cfg.head !== 'softmax') throw no(`it needs a softmax head, the victim's is ${cfg.head}`);
  return cfg;
}

/** The rows of `parts` whose G is finite, as one sample. */
function usable(parts: FitSample[], d: number, k1: number): FitSample {
  const rows = parts.flatMap((p) =>
    Array.from({ length: p.m }, (_, i) => ({ p, i })).filter(({ i }) => Number.isFinite(p.g[i * k1])),
  );
  const x = new Float32Array(rows.length * d);
  const g = new Float64Array(rows.length * k1);
  rows.forEach(({ p, i }, r) => {
    x.set(p.x.subarray(i * d, (i + 1) * d), r * d);
    g.set(p.g.subarray(i * k1, (i + 1) * k1), r * k1);
  });
  return { x, g, m: rows.length };
}
