import { describe, expect, it } from 'vitest';
import { formatParams, parseSpec, resolveParams } from '../src/params.js';
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
