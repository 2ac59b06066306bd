import { describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initBackend } from '../../src/compute/backend.js';
import { makeManifest, readManifest, redactArgs, writeManifest } from '../../src/runner/manifest.js';

describe('run manifest', () => {
  it('records the command, spec, versions, git commit and the backend actually active', async () => {
    const b = await initBackend('wasm', { threads: 1 });
    const dir = path.join(mkdtempSync(path.join(os.tmpdir(), 'mse-man-')), 'run1');
    const spec = { datasets: ['mnist'], seeds: 1 };
    writeManifest(dir, makeManifest('run1', b, spec, { mnist: { variant: 'npm10k-split', notes: ['n'] } }));
    const m = readManifest(dir);
    expect(m.run_id).toBe('run1');
    expect(m.spec).toEqual(spec);
    expect(m.backend.tf_backend).toBe('wasm');
    expect(m.backend.label).toBe(b.label);
    expect(m.versions['@tensorflow/tfjs']).toMatch(/^\d+\.\d+\.\d+$/);
    expect(m.git_commit === undefined || /^[0-9a-f]{40}$/.test(m.git_commit)).toBe(true);
    expect(m.datasets.mnist.variant).toBe('npm10k-split');
    expect(readdirSync(dir)).toEqual(['manifest.json']); // no temp file left behind
  });

  it('never records an API key: the --key value and every target key are blanked', async () => {
    const b = await initBackend('wasm', { threads: 1 });
    expect(redactArgs(['attack', '--key', 'sekret', '-d', 'iris', '--key=other'])).toEqual([
      'attack',
      '--key',
      '(redacted)',
      '-d',
      'iris',
      '--key=(redacted)',
    ]);
    const argv = process.argv;
    process.argv = [argv[0], 'mse', 'attack', '--target', 'http://h/v2/models/m', '--key', 'sekret'];
    try {
      const spec = { command: 'attack', cell: { target: { url: 'http://h/v2/models/m', key: 'sekret' }, seed: 1 } };
      const text = JSON.stringify(makeManifest('r', b, spec));
      expect(text).not.toContain('sekret');
      expect(text).toContain('http://h/v2/models/m');
    } finally {
      process.argv = argv;
    }
  });
});
