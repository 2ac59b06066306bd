/**
 * A folder of images as a dataset (`-d folder:path=DIR`), laid out as torchvision's ImageFolder reads
 * one: a subfolder per class, named for it (class i is the i-th subfolder in sorted order, so a model
 * trained with ImageFolder numbers classes the same way), optionally under `train/` and `test/`. A
 * folder of images with no class subfolders is one class: usable as an attacker's transfer pool,
 * which needs images, not labels.
 *
 * Images (PNG, JPEG, WebP, GIF, TIFF, AVIF) are decoded by sharp (an optional dependency; its
 * prebuilt binaries come from the npm registry), resized to h×w by stretching (as
 * `transforms.Resize((h, w))` does), alpha flattened onto black, converted to grey or sRGB, and scaled
 * to [0, 1], NHWC. The content hash covers every file's relative path and bytes.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { DataError, UsageError } from '../../errors.js';

type Sharp = (typeof import('sharp'))['default'];
let sharpModule: Sharp | undefined | null;

/** sharp if it is installed (an optional dependency), else undefined. */
export async function imageDecoder(): Promise<Sharp | undefined> {
  if (sharpModule === undefined) {
    try {
      createRequire(import.meta.url).resolve('sharp');
      sharpModule = (await import('sharp')).default;
    } catch {
      sharpModule = null;
    }
  }
  return sharpModule ?? undefined;
}

export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp', '.gif', '.tif', '.tiff', '.avif'];

export interface ImageFolderOptions {
  /** h×w to resize to; undefined: the first image's */
  size?: [number, number];
  /** 1 (grey) or 3 (sRGB); undefined: the first image's */
  channels?: 1 | 3;
}

export interface ImageFolder {
  inputShape: [number, number, number];
  classNames: string[];
  /** present when the folder has train/ and test/; else `all` holds every image */
  train?: { x: Float32Array; y: Int32Array; n: number };
  test?: { x: Float32Array; y: Int32Array; n: number };
  all?: { x: Float32Array; y: Int32Array; n: number };
  /** sha256 of the relative paths and bytes of every image, first 16 hex digits */
  hash: string;
  /** files skipped for not being images by their extension */
  skipped: number;
}

interface Listing {
  classNames: string[];
  /** per split (one split when the folder has no train/test), the images with their class index */
  splits: Array<{ name: string; files: Array<{ file: string; label: number }> }>;
  skipped: number;
}

const visible = (name: string) => !name.startsWith('.');

function entries(dir: string, owner: string): { dirs: string[]; files: string[] } {
  let names: string[];
  try {
    names = readdirSync(dir).filter(visible).sort();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new DataError(
      `${owner}: ${dir} ${code === 'ENOENT' ? 'does not exist' : code === 'ENOTDIR' ? 'is not a folder' : `cannot be read (${(e as Error).message})`}`,
    );
  }
  const dirs: string[] = [];
  const files: string[] = [];
  for (const n of names) {
    const p = path.join(dir, n);
    let st;
    try {
      st = statSync(p);
    } catch {
      continue; // a dangling link is not an image
    }
    if (st.isDirectory()) dirs.push(n);
    else if (st.isFile()) files.push(n);
  }
  return { dirs, files };
}

const isImage = (f: string) => IMAGE_EXTENSIONS.includes(path.extname(f).toLowerCase());

/** Images and class names of one folder (a subfolder per class, or the images themselves as one class). */
function listClasses(
  dir: string,
  owner: string,
): { classNames: string[]; files: Array<{ file: string; label: number }>; skipped: number } {
  const top = entries(dir, owner);
  const topImages = top.files.filter(isImage);
  let skipped = top.files.length - topImages.length;
  if (!top.dirs.length) {
    return {
      classNames: [path.basename(path.resolve(dir))],
      files: topImages.map((f) => ({ file: path.join(dir, f), label: 0 })),
      skipped,
    };
  }
  if (topImages.length)
    throw new DataError(
      `${owner}: ${dir} holds both images and subfolders`,
      'put every image in its class subfolder (or, for an unlabelled pool, none in subfolders)',
    );
  const files: Array<{ file: string; label: number }> = [];
  top.dirs.forEach((cls, label) => {
    const sub = entries(path.join(dir, cls), owner);
    const imgs = sub.files.filter(isImage);
    skipped += sub.files.length - imgs.length;
    for (const f of imgs) files.push({ file: path.join(dir, cls, f), label });
  });
  return { classNames: top.dirs, files, skipped };
}

function list(dir: string, owner: string): Listing {
  const top = entries(dir, owner);
  if (top.dirs.includes('train') && top.dirs.includes('test') && !top.files.some(isImage)) {
    const tr = listClasses(path.join(dir, 'train'), owner);
    const te = listClasses(path.join(dir, 'test'), owner);
    if (tr.classNames.join('\0') !== te.classNames.join('\0'))
      throw new DataError(
        `${owner}: ${dir}/train and ${dir}/test have different class folders (${tr.classNames.join(', ')} vs ${te.classNames.join(', ')})`,
      );
    return {
      classNames: tr.classNames,
      splits: [
        { name: 'train', files: tr.files },
        { name: 'test', files: te.files },
      ],
      skipped: tr.skipped + te.skipped,
    };
  }
  const all = listClasses(dir, owner);
  return { classNames: all.classNames, splits: [{ name: 'all', files: all.files }], skipped: all.skipped };
}

/** Decode, resize and scale every image of `dir`. */
export async function readImageFolder(dir: string, owner: string, opts: ImageFolderOptions): Promise<ImageFolder> {
  const sharp = await imageDecoder();
  if (!sharp)
    throw new UsageError(
      `${owner}: image folders need sharp, which is not installed`,
      'npm install sharp (an optional dependency of mse); mse doctor says whether it is here',
    );
  const listing = list(dir, owner);
  const every = listing.splits.flatMap((s) => s.files);
  if (!every.length)
    throw new DataError(
      `${owner}: ${dir} has no images (${IMAGE_EXTENSIONS.join(' ')})${listing.skipped ? `; ${listing.skipped} other files were skipped` : ''}`,
      'one subfolder per class, each holding that class’s images',
    );
  for (const s of listing.splits)
    if (!s.files.length) throw new DataError(`${owner}: ${path.join(dir, s.name)} has no images`);
  const hash = createHash('sha256');
  const read = (file: string) => {
    try {
      return readFileSync(file);
    } catch (e) {
      throw new DataError(`${owner}: ${file} cannot be read (${(e as Error).message})`);
    }
  };
  const undecodable = (file: string, e: unknown) =>
    new DataError(
      `${owner}: ${file} cannot be decoded as an image (${(e instanceof Error ? e.message : String(e)).split('\n')[0]})`,
      'remove or replace the file',
    );

  let [h, w] = opts.size ?? [0, 0];
  let c = opts.channels ?? 0;
  if (!h || !c) {
    const first = every[0].file;
    let meta;
    try {
      meta = await sharp(read(first)).metadata();
    } catch (e) {
      throw undecodable(first, e);
    }
    if (!h) [h, w] = [meta.height ?? 0, meta.width ?? 0];
    if (!c) c = (meta.channels ?? 3) <= 2 || meta.space === 'b-w' ? 1 : 3;
    if (!h || !w) throw undecodable(first, new Error('no size'));
  }
  const d = h * w * c;
  const base = path.resolve(dir);
  const decodeSplit = async (files: Array<{ file: string; label: number }>) => {
    const x = new Float32Array(files.length * d);
    const y = new Int32Array(files.length);
    const digests = new Array<string>(files.length);
    // a few at a time: sharp decodes on libuv's threads, and a whole folder at once would hold every file in memory
    const width = 8;
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < files.length; i = next++) {
        const { file, label } = files[i];
        const bytes = read(file);
        digests[i] = createHash('sha256').update(bytes).digest('hex');
        let px: Buffer;
        try {
          let img = sharp(bytes).resize(w, h, { fit: 'fill' }).flatten({ background: '#000000' });
          img = c === 1 ? img.greyscale() : img.toColourspace('srgb');
          const out = await img.raw().toBuffer({ resolveWithObject: true });
          if (out.info.channels !== c || out.info.width !== w || out.info.height !== h)
            throw new Error(`decoded as ${out.info.height}×${out.info.width}×${out.info.channels}`);
          px = out.data;
        } catch (e) {
          throw undecodable(file, e);
        }
        for (let j = 0; j < d; j++) x[i * d + j] = px[j] / 255;
        y[i] = label;
      }
    };
    await Promise.all(Array.from({ length: Math.min(width, files.length) }, worker));
    return { split: { x, y, n: files.length }, digests };
  };
  const out: ImageFolder = {
    inputShape: [h, w, c],
    classNames: listing.classNames,
    hash: '',
    skipped: listing.skipped,
  };
  for (const s of listing.splits) {
    const { split, digests } = await decodeSplit(s.files);
    if (s.name === 'train') out.train = split;
    else if (s.name === 'test') out.test = split;
    else out.all = split;
    // in the listing's (sorted) order: the same folder always hashes alike
    s.files.forEach((f, i) => hash.update(`${path.relative(base, f.file)}\0${digests[i]}\0`));
  }
  out.hash = hash.digest('hex').slice(0, 16);
  return out;
}
