import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend, parseBackend } from '../../src/compute/backend.js';
import { MseError, UsageError } from '../../src/errors.js';

describe('backend selection', () => {
  it('wasm initialises, reports itself truthfully and registers the missing training kernels', async () => {
    const b = await initBackend('wasm', { threads: 1 });
    expect(b.name).toBe('wasm');
    expect(b.tfBackend).toBe(tf.getBackend());
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeDefined();
  });

  it('an unknown backend name is a usage error listing the choices', () => {
    expect(() => parseBackend('gpu')).toThrow(UsageError);
    expect(() => parseBackend('gpu')).toThrow(/node-gpu, node, wasm, cpu/);
  });

  it('asking for tfjs-node where it is not installed fails with a clear error, not a silent fallback', async () => {
    let installed = true;
    try {
      await import('@tensorflow/tfjs-node' as string);
    } catch {
      installed = false;
    }
    if (installed) return; // the machine has it: nothing to check here
    await expect(initBackend('node')).rejects.toThrow(MseError);
    await expect(initBackend('node')).rejects.toThrow(/not available/);
  });
});
