/** Issue 13, item 8: the keys file of `mse serve --keys` is validated entry by entry. */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MseError } from '../../src/errors.js';
import { parseKeys, readKeysFile } from '../../src/serve/keys.js';

const bad = (keys: unknown): string => {
  try {
    parseKeys({ keys }, 'keys.json');
  } catch (e) {
    expect(e).toBeInstanceOf(MseError);
    expect((e as Error).message).not.toContain('\n');
    return (e as Error).message;
  }
  throw new Error('accepted');
};

describe('parseKeys', () => {
  it('accepts well-formed entries and keeps their fields', () => {
    expect(
      parseKeys(
        {
          keys: [
            { key: 'k1', id: 'alice', budget: 10, ratePerSec: 2.5 },
            { key: 'k2', id: 'ops', admin: true },
          ],
        },
        'keys.json',
      ),
    ).toEqual([
      { key: 'k1', id: 'alice', budget: 10, ratePerSec: 2.5 },
      { key: 'k2', id: 'ops', admin: true },
    ]);
  });

  it('names the file and the entry index for every bad field', () => {
    expect(bad([{ key: 'k1', id: 'a', budget: 'abc' }])).toMatch(
      /^keys\.json: keys\[0\]: budget must be a positive integer/,
    );
    expect(
      bad([
        { key: 'k1', id: 'a' },
        { key: 'k2', id: 'b', budget: -5 },
      ]),
    ).toMatch(/keys\[1\]: budget/);
    expect(bad([{ key: 'k1', id: 'a', budget: 0 }])).toMatch(/budget/);
    expect(bad([{ key: 'k1', id: 'a', budget: 2.5 }])).toMatch(/budget/);
    expect(bad([{ key: 'k1', id: 'a', ratePerSec: 0 }])).toMatch(/keys\[0\]: ratePerSec must be a positive/);
    expect(bad([{ key: 'k1', id: 'a', ratePerSec: -1 }])).toMatch(/ratePerSec/);
    expect(bad([{ key: 'k1', id: 'a', ratePerSec: '5' }])).toMatch(/ratePerSec/);
    expect(bad([{ key: 'k1', id: 'a', ratePerSec: null }])).toMatch(/ratePerSec/);
    expect(bad([{ key: '', id: 'a' }])).toMatch(/keys\[0\]: key must be a non-empty string/);
    expect(bad([{ key: 7, id: 'a' }])).toMatch(/key must be/);
    expect(bad([{ key: 'k', id: '' }])).toMatch(/id must be a non-empty string/);
    expect(bad([{ key: 'k' }])).toMatch(/id must be/);
    expect(bad([{ key: 'k', id: 'a', budgett: 5 }])).toMatch(/keys\[0\]: unknown field 'budgett'/);
    expect(bad([{ key: 'k', id: 'a', admin: 'yes' }])).toMatch(/admin must be true or false/);
    expect(bad(['k'])).toMatch(/keys\[0\]: must be an object/);
    expect(bad([null])).toMatch(/keys\[0\]/);
    expect(bad([[]])).toMatch(/keys\[0\]/);
    expect(bad([])).toMatch(/no keys/);
    expect(bad('k')).toMatch(/"keys" must be an array/);
  });

  it('keys and ids are unique', () => {
    expect(
      bad([
        { key: 'k1', id: 'a', budget: 2 },
        { key: 'k2', id: 'a' },
      ]),
    ).toMatch(/keys\[1\]: duplicate id 'a' \(also keys\[0\]\)/);
    expect(
      bad([
        { key: 'k1', id: 'a' },
        { key: 'k1', id: 'b' },
      ]),
    ).toMatch(/keys\[1\]: duplicate key \(also keys\[0\]\)/);
  });

  it('the top level must be {"keys": [...]} and nothing else', () => {
    expect(() => parseKeys([], 'f.json')).toThrow(/f\.json: must be a JSON object/);
    expect(() => parseKeys({ keys: [{ key: 'k', id: 'a' }], extra: 1 }, 'f.json')).toThrow(/unknown field 'extra'/);
  });

  it('readKeysFile: unreadable or malformed files give one line naming the file', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mse-keys-'));
    const f = path.join(dir, 'keys.json');
    writeFileSync(f, '{"keys": [');
    expect(() => readKeysFile(f)).toThrow(new RegExp(`${f.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: not valid JSON`));
    expect(() => readKeysFile(path.join(dir, 'none.json'))).toThrow(/cannot read/);
    writeFileSync(f, JSON.stringify({ keys: [{ key: 'k', id: 'a', budget: 'abc' }] }));
    expect(() => readKeysFile(f)).toThrow(/keys\[0\]: budget/);
  });
});
