/**
 * Folders of images as datasets and as transfer pools (`folder:path=DIR`): decoded exactly, classes
 * numbered as torchvision's ImageFolder numbers them, resized and converted on request, hashed by
 * content, and every bad folder one line naming the file.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { DataError, UsageError } from '../../src/errors.js';
import { readImageFolder } from '../../src/data/formats/image-folder.js';
import { concretePoolSpec, loadUserPool, poolShapeHint, userDataset } from '../../src/data/user-data.js';
import { choosePool, loadPoolDataset } from '../../src/data/pool.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'mse-folder-'));

/** A grey h×w PNG whose pixel j is (seed·7 + j·13) mod 256: known bytes to compare the decoding with. */
function pixels(seed: number, n: number): Buffer {
  return Buffer.from(Array.from({ length: n }, (_, j) => (seed * 7 + j * 13) % 256));
}
async function greyPng(file: string, seed: number, h = 6, w = 5): Promise<void> {
  mkdirSync(path.dirname(file), { recursive: true });
  await sharp(pixels(seed, h * w), { raw: { width: w, height: h, channels: 1 } })
    .toColourspace('b-w')
    .png()
    .toFile(file);
}
async function rgbJpeg(file: string, seed: number, h = 12, w = 10): Promise<void> {
  mkdirSync(path.dirname(file), { recursive: true });
  await sharp(pixels(seed, h * w * 3), { raw: { width: w, height: h, channels: 3 } })
    .jpeg()
    .toFile(file);
}

/** dir/<class>/<i>.png for classes cat, ant, bee (sorted: ant, bee, cat), 4 images each */
async function classFolder(): Promise<string> {
  const dir = tmp();
  let seed = 0;
  for (const cls of ['cat', 'ant', 'bee'])
    for (let i = 0; i < 4; i++) await greyPng(path.join(dir, cls, `${i}.png`), seed++);
  return dir;
}

describe('image folders', () => {
  it('decodes PNGs exactly, NHWC in [0, 1], classes in sorted order (as ImageFolder numbers them)', async () => {
    const dir = await classFolder();
    writeFileSync(path.join(dir, 'ant', 'notes.txt'), 'not an image');
    const f = await readImageFolder(dir, 'dataset t', {});
    expect(f.inputShape).toEqual([6, 5, 1]);
    expect(f.classNames).toEqual(['ant', 'bee', 'cat']);
    expect(f.skipped).toBe(1);
    const all = f.all!;
    expect(all.n).toBe(12);
    // 'ant' was written with seeds 4…7, 'bee' 8…11, 'cat' 0…3; files in sorted order within a class
    expect(Array.from(all.y)).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
    const first = Array.from(all.x.subarray(0, 30), (v) => Math.round(v * 255));
    expect(first).toEqual(Array.from(pixels(4, 30)));
    const last = Array.from(all.x.subarray(11 * 30, 12 * 30), (v) => Math.round(v * 255));
    expect(last).toEqual(Array.from(pixels(3, 30)));
  });

  it('resizes and converts on request; a JPEG in RGB read as grey has one channel', async () => {
    const dir = tmp();
    for (let i = 0; i < 3; i++) await rgbJpeg(path.join(dir, 'a', `${i}.jpg`), i);
    for (let i = 0; i < 3; i++) await rgbJpeg(path.join(dir, 'b', `${i}.jpg`), 10 + i);
    const auto = await readImageFolder(dir, 'dataset t', {});
    expect(auto.inputShape).toEqual([12, 10, 3]);
    const small = await readImageFolder(dir, 'dataset t', { size: [4, 3], channels: 1 });
    expect(small.inputShape).toEqual([4, 3, 1]);
    expect(small.all!.x.length).toBe(6 * 12);
    expect(small.all!.x.every((v) => v >= 0 && v <= 1)).toBe(true);
    expect(small.hash).toBe(auto.hash); // the hash is of the files, not of the decoding
  });

  it('train/ and test/ are the split; otherwise a fixed split by test=', async () => {
    const dir = tmp();
    for (const split of ['train', 'test'])
      for (const cls of ['x', 'y'])
        for (let i = 0; i < (split === 'train' ? 5 : 2); i++)
          await greyPng(path.join(dir, split, cls, `${i}.png`), i + (cls === 'y' ? 50 : 0));
    const ds = await userDataset(`folder:path=${dir}`)!.load();
    expect([ds.train.n, ds.test.n, ds.numClasses, ds.kind]).toEqual([10, 4, 2, 'image']);
    expect(ds.domain).toEqual({ min: 0, max: 1 });
    expect(ds.variant).toMatch(/^folder-[0-9a-f]{16}$/);
    const flat = await classFolder();
    const a = await userDataset(`folder:path=${flat},test=0.25`)!.load();
    const b = await userDataset(`folder:path=${flat},test=0.25`)!.load();
    expect([a.train.n, a.test.n]).toEqual([9, 3]);
    expect(Array.from(a.test.y)).toEqual(Array.from(b.test.y));
  });

  it('the content hash changes with any image, and only then', async () => {
    const dir = await classFolder();
    const h1 = (await readImageFolder(dir, 't', {})).hash;
    expect((await readImageFolder(dir, 't', {})).hash).toBe(h1);
    await greyPng(path.join(dir, 'bee', '2.png'), 99);
    expect((await readImageFolder(dir, 't', {})).hash).not.toBe(h1);
  });

  it('a pool needs no classes, takes the victim’s shape, and is named in canonical form', async () => {
    const dir = tmp();
    for (let i = 0; i < 5; i++) await rgbJpeg(path.join(dir, `${i}.jpg`), i, 32, 32);
    const spec = concretePoolSpec(`folder:path=${dir}`, [28, 28, 1]);
    expect(spec).toBe(`folder:channels=1,path=${dir},size=28x28,test=0.3`);
    // an explicit size is the user's
    expect(concretePoolSpec(`folder:path=${dir},size=30`, [28, 28, 1])).toBe(
      `folder:channels=1,path=${dir},size=30,test=0.3`,
    );
    const choice = await choosePool(`folder:path=${dir}`, {}, undefined, [28, 28, 1]);
    expect(choice).toMatchObject({ spec, problems: [] });
    const pool = await loadPoolDataset(spec, {});
    expect(pool.inputShape).toEqual([28, 28, 1]);
    expect(pool.numClasses).toBe(1);
    expect(pool.train.n + pool.test.n).toBe(5);
    expect(await loadUserPool(spec)).toBe(pool); // memoised
    // as a victim's data, one class is no classifier
    await expect(userDataset(`folder:path=${dir}`)!.load()).rejects.toThrow(
      /holds 1 class; a classifier needs at least 2/,
    );
  });

  it('bad folders are one line naming the file or folder', async () => {
    const where = async (dir: string, opts = {}) => {
      try {
        await readImageFolder(dir, 'dataset t', opts);
      } catch (e) {
        expect(e).toBeInstanceOf(DataError);
        expect((e as Error).message).not.toContain('\n');
        return (e as Error).message;
      }
      throw new Error('no error');
    };
    expect(await where('/nonexistent/folder')).toMatch(/\/nonexistent\/folder does not exist/);
    const empty = tmp();
    expect(await where(empty)).toMatch(/has no images/);
    const bad = await classFolder();
    writeFileSync(path.join(bad, 'bee', 'broken.png'), 'garbage');
    expect(await where(bad)).toMatch(/bee\/broken\.png cannot be decoded as an image/);
    const mixed = await classFolder();
    await greyPng(path.join(mixed, 'stray.png'), 1);
    expect(await where(mixed)).toMatch(/holds both images and subfolders/);
    const split = tmp();
    await greyPng(path.join(split, 'train', 'a', '0.png'), 1);
    await greyPng(path.join(split, 'train', 'b', '0.png'), 2);
    await greyPng(path.join(split, 'test', 'a', '0.png'), 3);
    await greyPng(path.join(split, 'test', 'c', '0.png'), 4);
    expect(await where(split)).toMatch(/different class folders/);
    expect(() => userDataset('folder:path=/x,size=0x3')).not.toThrow(); // checked when loaded
    await expect(userDataset('folder:path=/x,size=big')!.load()).rejects.toThrow(UsageError);
    expect(() => userDataset('folder:size=28')).toThrow(/needs path=<folder>/);
    expect(() => userDataset('folder:path=/x,channels=2')).toThrow(/channels must be one of auto, 1, 3/);
  });
});

describe('image folders as torchvision’s ImageFolder reads them, and as users leave them', () => {
  it('an empty class folder is refused, naming it (ImageFolder refuses it too)', async () => {
    const dir = await classFolder();
    mkdirSync(path.join(dir, 'dog'));
    await expect(readImageFolder(dir, 'dataset t', {})).rejects.toThrow(/class folder .*\/dog has no images/);
  });

  it('a class holds the images in its subfolders too, in sorted(os.walk()) order', async () => {
    const dir = tmp();
    await greyPng(path.join(dir, 'a', '0.png'), 1);
    await greyPng(path.join(dir, 'a', 'sub', 'deep', '1.png'), 2);
    await greyPng(path.join(dir, 'b', 'only', 'nested', '0.png'), 3);
    await greyPng(path.join(dir, 'b', 'only', '9.png'), 4);
    const f = await readImageFolder(dir, 'dataset t', {});
    expect(f.classNames).toEqual(['a', 'b']);
    expect(Array.from(f.all!.y)).toEqual([0, 0, 1, 1]);
    const seeds = [1, 2, 4, 3]; // a/0, a/sub/deep/1, b/only/9, b/only/nested/0
    for (const [i, s] of seeds.entries())
      expect(Array.from(f.all!.x.subarray(i * 30, i * 30 + 30), (v) => Math.round(v * 255))).toEqual(
        Array.from(pixels(s, 30)),
      );
    const none = tmp();
    mkdirSync(path.join(none, 'a', 'sub'), { recursive: true });
    mkdirSync(path.join(none, 'b'));
    await expect(readImageFolder(none, 'dataset t', {})).rejects.toThrow(
      /has no images .* in its class folders a, b or below them/,
    );
  });

  it('a hidden folder is no class, and a note says ImageFolder would count it', async () => {
    const dir = await classFolder();
    await greyPng(path.join(dir, '.ipynb_checkpoints', '0.png'), 9);
    const f = await readImageFolder(dir, 'dataset t', {});
    expect(f.classNames).toEqual(['ant', 'bee', 'cat']);
    expect(f.notes).toEqual([
      `skipped hidden folder ${path.join(dir, '.ipynb_checkpoints')} (torchvision's ImageFolder would count it as a class)`,
    ]);
  });

  it('a class missing from the training split gets a note', async () => {
    const dir = tmp();
    await greyPng(path.join(dir, 'a', '0.png'), 1);
    await greyPng(path.join(dir, 'b', '0.png'), 2);
    const ds = await userDataset(`folder:path=${dir},test=0.5`)!.load();
    expect(ds.notes.join()).toMatch(
      /the training split has no examples of class [ab]; add images of it or lower test=/,
    );
  });

  it('size auto is the most common size, not the first image’s; others are resized, and said so', async () => {
    const dir = tmp();
    await rgbJpeg(path.join(dir, 'a', '0.jpg'), 1, 300, 300); // first in order, but alone
    for (let i = 1; i < 4; i++) await rgbJpeg(path.join(dir, 'a', `${i}.jpg`), i, 12, 10);
    for (let i = 0; i < 3; i++) await rgbJpeg(path.join(dir, 'b', `${i}.jpg`), 10 + i, 12, 10);
    const f = await readImageFolder(dir, 'dataset t', {});
    expect(f.inputShape).toEqual([12, 10, 3]);
    expect(f.notes).toEqual([`${dir}: 1 image of other sizes resized to 12×10, the most common`]);
    expect((await readImageFolder(dir, 'dataset t', { size: [12, 10] })).notes).toEqual([]);
  });

  it('more decoded floats than mse holds is refused before decoding; size= has a stated maximum', async () => {
    const dir = tmp();
    for (let i = 0; i < 11; i++) await greyPng(path.join(dir, 'a', `${i}.png`), i);
    // 11 images × 4096² × 3 floats × 4 bytes = 2.06 GiB
    await expect(readImageFolder(dir, 'dataset t', { size: [4096, 4096], channels: 3 })).rejects.toThrow(
      /11 images of 4096×4096×3 take 2\.1 GiB as floats, over the 2 GiB mse holds/,
    );
    await expect(userDataset(`folder:path=${dir},size=99999`)!.load()).rejects.toThrow(/each side 1…4096, got '99999'/);
  });

  it('a truncated image "cannot be decoded (truncated or damaged)", as a dataset and as a pool', async () => {
    const dir = await classFolder();
    const png = path.join(dir, 'bee', '1.png');
    const bytes = readFileSync(png);
    writeFileSync(png, bytes.subarray(0, bytes.length - 20));
    const msg = new RegExp(
      `${png.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} cannot be decoded as an image \\(truncated or damaged\\)`,
    );
    await expect(readImageFolder(dir, 'dataset t', {})).rejects.toThrow(msg);
    await expect(loadUserPool(`folder:path=${dir},size=28,channels=3`)).rejects.toThrow(msg);
  });

  it('a pool of another shape than the victim’s is told to drop size= and channels=', () => {
    expect(poolShapeHint('folder:path=/x,size=30')).toMatch(/^drop size= from the pool/);
    expect(poolShapeHint('folder:path=/x,size=30,channels=3')).toMatch(/^drop size= and channels= from the pool/);
    expect(poolShapeHint('folder:path=/x')).toBeUndefined();
    expect(poolShapeHint('csv:path=/x.csv')).toBeUndefined();
  });
});
