/**
 * Security is the worst case: a defense is as good as the strongest attacker it was measured
 * against. MAD-argmax at ε = 2 leaves a soft-label Knockoff attacker below chance (it learns the
 * perturbation) with honest accuracy untouched, yet the same attacker keeping only the argmax
 * (`knockoff:labels=top1`) gets the labels-only level. So per model, defense and budget, the
 * report and the bench summary take the maximum attacker accuracy over every attack (and attacker
 * option) in the run, name the attack that reached it, and draw the Pareto frontier from it; a
 * defense measured against one attack only is flagged, since its figure is a lower bound.
 */
import type { Group } from '../runner/summary.js';

export interface WorstCase {
  /** the cell whose attacker reached the highest mean accuracy */
  group: Group;
  /** every attack label measured at this model, defense and budget, strongest first */
  attacks: string[];
}

/** The model a group's rows ran on: dataset and victim, with their variants. */
export const modelKey = (g: Group): string =>
  JSON.stringify([g.key.dataset, g.key.dataset_variant, g.key.victim, g.key.victim_variant]);

const cellKey = (g: Group): string =>
  JSON.stringify([modelKey(g), g.key.defense, g.key.defense_params, Number(g.key.budget)]);

/**
 * The strongest attacker per (model, defense, budget), in the groups' order of first appearance.
 * Groups without an attacker accuracy (nothing trained) take no part; ties go to the attack
 * listed first by `attackLabel`'s order.
 */
export function strongestAttackers(groups: Group[], attackLabel: (g: Group) => string): WorstCase[] {
  const cells = new Map<string, Group[]>();
  for (const g of groups) {
    if (!Number.isFinite(g.metrics.surrogate_acc?.mean)) continue;
    const k = cellKey(g);
    cells.set(k, [...(cells.get(k) ?? []), g]);
  }
  return [...cells.values()].map((gs) => {
    const ranked = [...gs].sort(
      (a, b) =>
        b.metrics.surrogate_acc.mean - a.metrics.surrogate_acc.mean ||
        attackLabel(a).localeCompare(attackLabel(b), 'en', { numeric: true }),
    );
    return { group: ranked[0], attacks: ranked.map(attackLabel) };
  });
}

/** The groups that are the strongest attacker of their cell, among at least two attacks. */
export function strongestSet(groups: Group[], attackLabel: (g: Group) => string): Map<Group, 'strongest' | 'single'> {
  const out = new Map<Group, 'strongest' | 'single'>();
  for (const w of strongestAttackers(groups, attackLabel))
    out.set(w.group, w.attacks.length > 1 ? 'strongest' : 'single');
  return out;
}
