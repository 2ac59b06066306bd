/**
 * A folder of images as a dataset (`-d folder:path=DIR`), laid out as torchvision's ImageFolder reads
 * one: a subfolder per class, named for it (class i is the i-th subfolder in sorted order, so a model
 * trained with ImageFolder numbers classes the same way), optionally under `train/` and `test/`. A
 * folder of images with no class subfolders is one class: usable as an attacker's transfer pool,
 * which needs images, not labels. As ImageFolder does, a class holds every image below its folder
 * (subfolders too, links followed) and an empty class folder is an error; unlike it, hidden folders
 * (`.ipynb_checkpoints`) are no classes — said in a note, since a model trained with ImageFolder
 * counted them.
 *
 * Images (PNG, JPEG, WebP, GIF, TIFF, AVIF) are decoded by sharp (an optional dependency; its
 * prebuilt binaries come from the npm registry), resized to h×w by stretching (as
 * `transforms.Resize((h, w))` does), alpha flattened onto black, converted to grey or sRGB, and scaled
 * to [0, 1], NHWC. The content hash covers every file's relative path and bytes.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
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
  /** h×w to resize to; undefined: the most common size among the images */
  size?: [number, number];
  /** 1 (grey) or 3 (sRGB); undefined: the most common among the images */
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
  /** one-line notes for the user: hidden folders skipped, images of other sizes resized */
  notes: string[];
}

/** The decoded images may take at most this many bytes as float32 (n·h·w·c·4). */
export const MAX_DECODED_BYTES = 2 ** 31;

type Labelled = Array<{ file: string; label: number }>;
interface Listing {
  classNames: string[];
  /** per split (one split when the folder has no train/test), the images with their class index */
  splits: Array<{ name: string; files: Labelled }>;
  skipped: number;
  notes: string[];
}

const visible = (name: string) => !name.startsWith('.');

function entries(dir: string, owner: string): { dirs: string[]; files: string[]; hidden: string[] } {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new DataError(
      `${owner}: ${dir} ${code === 'ENOENT' ? 'does not exist' : code === 'ENOTDIR' ? 'is not a folder' : `cannot be read (${(e as Error).message})`}`,
    );
  }
  const dirs: string[] = [];
  const files: string[] = [];
  const hidden: string[] = [];
  for (const n of names) {
    const p = path.join(dir, n);
    let st;
    try {
      st = statSync(p);
    } catch {
      continue; // a dangling link is not an image
    }
    if (!visible(n)) {
      if (st.isDirectory()) hidden.push(n);
    } else if (st.isDirectory()) dirs.push(n);
    else if (st.isFile()) files.push(n);
  }
  return { dirs, files, hidden };
}

const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
const isImage = (f: string) => IMAGE_EXTENSIONS.includes(path.extname(f).toLowerCase());

/**
 * Every image below `dir` in ImageFolder's order (folders sorted by path, as `sorted(os.walk(…))`,
 * then files by name); a folder reached twice (a link loop) is read once.
 */
function walk(dir: string, owner: string, seen: Set<string>): { images: string[]; skipped: number; loops: string[] } {
  const folders: Array<{ dir: string; files: string[] }> = [];
  const loops: string[] = [];
  let skipped = 0;
  const visit = (d: string) => {
    let real: string;
    try {
      real = realpathSync(d);
    } catch {
      return;
    }
    if (seen.has(real)) return void loops.push(d);
    seen.add(real);
    const e = entries(d, owner);
    const imgs = e.files.filter(isImage);
    skipped += e.files.length - imgs.length;
    folders.push({ dir: d, files: imgs });
    for (const sub of e.dirs) visit(path.join(d, sub));
  };
  visit(dir);
  folders.sort((a, b) => (a.dir < b.dir ? -1 : a.dir > b.dir ? 1 : 0));
  return { images: folders.flatMap((f) => f.files.map((n) => path.join(f.dir, n))), skipped, loops };
}

const hiddenNote = (dir: string, hidden: string[]) =>
  hidden.map((h) => `skipped hidden folder ${path.join(dir, h)} (torchvision's ImageFolder would count it as a class)`);

/** Images and class names of one folder (a subfolder per class, or the images themselves as one class). */
function listClasses(
  dir: string,
  owner: string,
): { classNames: string[]; files: Labelled; skipped: number; notes: string[] } {
  const top = entries(dir, owner);
  const topImages = top.files.filter(isImage);
  let skipped = top.files.length - topImages.length;
  const notes = hiddenNote(dir, top.hidden);
  if (!top.dirs.length) {
    return {
      classNames: [path.basename(path.resolve(dir))],
      files: topImages.map((f) => ({ file: path.join(dir, f), label: 0 })),
      skipped,
      notes,
    };
  }
  if (topImages.length)
    throw new DataError(
      `${owner}: ${dir} holds both images and subfolders`,
      'put every image in its class subfolder (or, for an unlabelled pool, none in subfolders)',
    );
  const files: Labelled = [];
  const empty: string[] = [];
  const seen = new Set<string>();
  try {
    seen.add(realpathSync(dir)); // a class folder linking back to its parent is a loop, not a class
  } catch {
    // entries() read it just now: a race at worst
  }
  top.dirs.forEach((cls, label) => {
    const w = walk(path.join(dir, cls), owner, new Set(seen));
    skipped += w.skipped;
    if (!w.images.length)
      empty.push(path.join(dir, cls) + (w.loops.includes(path.join(dir, cls)) ? ' (a link to a folder above it)' : ''));
    else for (const l of w.loops) notes.push(`skipped ${l}: a link to a folder already read`);
    for (const file of w.images) files.push({ file, label });
  });
  if (files.length && empty.length)
    throw new DataError(
      `${owner}: class folder ${empty[0]} has no images${empty.length > 1 ? ` (nor ${empty.slice(1).join(', ')})` : ''}`,
      "remove it or add its images (torchvision's ImageFolder refuses an empty class too)",
    );
  if (!files.length)
    throw new DataError(
      `${owner}: ${dir} has no images (${IMAGE_EXTENSIONS.join(' ')}) in its class folders ${top.dirs.join(', ')} or below them${skipped ? `; ${count(skipped, 'other file')} skipped` : ''}`,
      'one subfolder per class, each holding that class’s images',
    );
  return { classNames: top.dirs, files, skipped, notes };
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
      notes: [...tr.notes, ...te.notes],
    };
  }
  const all = listClasses(dir, owner);
  return {
    classNames: all.classNames,
    splits: [{ name: 'all', files: all.files }],
    skipped: all.skipped,
    notes: all.notes,
  };
}

/** Why sharp could not read an image, in a user's words. */
function undecodable(owner: string, file: string, e: unknown): DataError {
  const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0];
  if (/input file is missing|permission denied|unable to open/i.test(msg))
    return new DataError(`${owner}: ${file} cannot be read (${msg})`);
  const why = /unsupported image format/i.test(msg)
    ? 'not an image sharp can read'
    : /pixel limit/i.test(msg)
      ? 'more pixels than sharp will decode'
      : 'truncated or damaged';
  return new DataError(`${owner}: ${file} cannot be decoded as an image (${why})`, 'remove or replace the file');
}

/** `n` at most `width` at a time (sharp works on libuv's threads; all at once would hold every file in memory). */
async function inParallel(n: number, fn: (i: number) => Promise<void>, width = 8): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < n; i = next++) await fn(i);
  };
  await Promise.all(Array.from({ length: Math.min(width, n) }, worker));
}

/** The most common h×w and channels among the images (ties: the first image's), and how many differ. */
async function commonShape(sharp: Sharp, files: string[], owner: string) {
  const sizes: string[] = new Array<string>(files.length);
  const chans: number[] = new Array<number>(files.length);
  await inParallel(files.length, async (i) => {
    let meta;
    try {
      meta = await sharp(files[i]).metadata();
    } catch (e) {
      throw undecodable(owner, files[i], e);
    }
    if (!meta.height || !meta.width) throw undecodable(owner, files[i], new Error('no size'));
    sizes[i] = `${meta.height}x${meta.width}`;
    chans[i] = (meta.channels ?? 3) <= 2 || meta.space === 'b-w' ? 1 : 3;
  });
  const mode = <T>(xs: T[]): T => {
    const tally = new Map<T, number>();
    for (const x of xs) tally.set(x, (tally.get(x) ?? 0) + 1);
    let best = xs[0];
    for (const [x, c] of tally) if (c > tally.get(best)!) best = x;
    return best;
  };
  const size = mode(sizes);
  const channels = mode(chans) as 1 | 3;
  return {
    size: size.split('x').map(Number) as [number, number],
    channels,
    otherSizes: sizes.filter((s) => s !== size).length,
    otherChannels: chans.filter((c) => c !== channels).length,
  };
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
  const notes = [...listing.notes];
  const every = listing.splits.flatMap((s) => s.files);
  if (!every.length)
    throw new DataError(
      `${owner}: ${dir} has no images (${IMAGE_EXTENSIONS.join(' ')})${listing.skipped ? `; ${count(listing.skipped, 'other file')} skipped` : ''}`,
      'one subfolder per class, each holding that class’s images',
    );
  for (const s of listing.splits)
    if (!s.files.length) throw new DataError(`${owner}: ${path.join(dir, s.name)} has no images`);
  const read = (file: string) => {
    try {
      return readFileSync(file);
    } catch (e) {
      throw new DataError(`${owner}: ${file} cannot be read (${(e as Error).message})`);
    }
  };

  let [h, w] = opts.size ?? [0, 0];
  let c = opts.channels ?? 0;
  if (!h || !c) {
    const common = await commonShape(
      sharp,
      every.map((f) => f.file),
      owner,
    );
    if (!h) {
      [h, w] = common.size;
      if (common.otherSizes)
        notes.push(`${dir}: ${count(common.otherSizes, 'image')} of other sizes resized to ${h}×${w}, the most common`);
    }
    if (!c) {
      c = common.channels;
      if (common.otherChannels)
        notes.push(
          `${dir}: ${count(common.otherChannels, 'image')} converted to ${c === 1 ? 'grey' : 'RGB'}, as most are`,
        );
    }
  }
  const d = h * w * c;
  if (every.length * d * 4 > MAX_DECODED_BYTES) {
    const side = Math.max(1, Math.floor(Math.sqrt(MAX_DECODED_BYTES / 4 / every.length / c)));
    throw new DataError(
      `${owner}: ${every.length} images of ${h}×${w}×${c} take ${((every.length * d * 4) / 2 ** 30).toFixed(1)} GiB as floats, over the ${MAX_DECODED_BYTES / 2 ** 30} GiB mse holds`,
      `give a smaller size=, e.g. size=${Math.min(side, 224)}`,
    );
  }
  const base = path.resolve(dir);
  const decodeSplit = async (files: Labelled) => {
    const x = new Float32Array(files.length * d);
    const y = new Int32Array(files.length);
    const digests = new Array<string>(files.length);
    await inParallel(files.length, async (i) => {
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
        throw undecodable(owner, file, e);
      }
      for (let j = 0; j < d; j++) x[i * d + j] = px[j] / 255;
      y[i] = label;
    });
    return { split: { x, y, n: files.length }, digests };
  };
  const out: ImageFolder = {
    inputShape: [h, w, c],
    classNames: listing.classNames,
    hash: '',
    skipped: listing.skipped,
    notes,
  };
  const hash = createHash('sha256');
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
