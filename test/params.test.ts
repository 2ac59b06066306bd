import { describe, expect, it } from 'vitest';
import { formatParams, parseSpec, resolveParams, splitTopLevel } from '../src/params.js';
import { expandDefenseStack, expandSpec } from '../src/runner/grid.js';
import { UsageError } from '../src/errors.js';

const decls = {
  eps: { type: 'number' as const, min: 0, help: '' },
  ydist: { type: 'string' as const, choices: ['l1', 'l2'], default: 'l1', help: '' },
  hidden: { type: 'int-list' as const, min: 1, help: '' },
};

describe('spec parser', () => {
  it('parses names, keys and value lists', () => {
    expect(parseSpec('mad:eps=0.1,0.5,ydist=l2')).toEqual({ name: 'mad', raw: { eps: ['0.1', '0.5'], ydist: ['l2'] } });
    expect(parseSpec('none')).toEqual({ name: 'none', raw: {} });
  });

  it('a value in brackets is one value, commas and all (a spec with parameters as a parameter)', () => {
    expect(parseSpec('knockoff:pool=[csv:path=a.csv,label=y],epochs=3')).toEqual({
      name: 'knockoff',
      raw: { pool: ['csv:path=a.csv,label=y'], epochs: ['3'] },
    });
    // swept: two bracketed pools are two values
    expect(parseSpec('knockoff:pool=[csv:path=a,label=y],[npz:path=b]').raw.pool).toEqual([
      'csv:path=a,label=y',
      'npz:path=b',
    ]);
    const schema = {
      pool: { type: 'string' as const, help: '' },
      epochs: { type: 'int' as const, default: 1, help: '' },
    };
    expect(expandSpec('knockoff:pool=[csv:path=a,label=y],fashion-mnist', schema)).toEqual([
      'knockoff:pool=[csv:path=a,label=y]',
      'knockoff:pool=fashion-mnist',
    ]);
    // written back in brackets, so the canonical form parses to the same values
    const canon = formatParams(resolveParams('k', schema, parseSpec('k:pool=[csv:path=a,label=y]').raw));
    expect(canon).toBe('epochs=1,pool=[csv:path=a,label=y]');
    expect(parseSpec(`k:${canon}`).raw.pool).toEqual(['csv:path=a,label=y']);
    expect(splitTopLevel('a+[b+c]+d', '+')).toEqual(['a', '[b+c]', 'd']);
    expect(expandDefenseStack('round:decimals=1,2+top1')).toHaveLength(2);
    expect(() => parseSpec('knockoff:pool=[csv:path=a')).toThrow(/a '\[' without its '\]'/);
    expect(() => parseSpec('knockoff:pool=csv:path=a]')).toThrow(/a '\]' without its '\['/);
  });

  it('validates types, ranges and choices, naming the parameter', () => {
    expect(resolveParams('d', decls, { eps: ['0.5'] })).toEqual({ eps: 0.5, ydist: 'l1' });
    expect(resolveParams('m', decls, { hidden: ['64', '32'] })).toEqual({ hidden: [64, 32], ydist: 'l1' });
    expect(() => resolveParams('d', decls, { eps: ['-1'] })).toThrow(/eps must be ≥ 0/);
    expect(() => resolveParams('d', decls, { eps: ['x'] })).toThrow(/eps must be a finite number/);
    expect(() => resolveParams('d', decls, { ydist: ['kl'] })).toThrow(/one of l1, l2/);
    expect(() => resolveParams('d', decls, { epss: ['1'] })).toThrow(/Did you mean 'eps'/);
    expect(() => resolveParams('d', decls, { eps: ['1', '2'] })).toThrow(UsageError);
    expect(() => parseSpec('mad:=3')).toThrow(UsageError);
  });

  it('formats parameters in a stable order', () => {
    expect(formatParams({ ydist: 'l1', eps: 0.5, hidden: [3, 2] })).toBe('eps=0.5,hidden=3/2,ydist=l1');
  });
});
