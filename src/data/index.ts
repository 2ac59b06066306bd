export {
  DATASETS,
  DATASET_NAMES,
  loadDataset,
  loadEmbedded,
  availability,
  getEntry,
  assertDatasetName,
  datasetDefaults,
} from './registry.js';
export type { DatasetEntry, Availability, AvailableFile, EmbeddedVariant } from './registry.js';
export { choosePool, loadPoolDataset, parsePoolSpec } from './pool.js';
export type { PoolChoice, PoolSpec, DataProblem } from './pool.js';
export { SYNTHETIC, makeSynthetic } from './synthetic.js';
export { searchDirs, cacheDir, resolveFile, findFile, checksumOk } from './resolve.js';
export type { DataFile, ResolveOptions } from './resolve.js';
export type { Dataset, Split } from './types.js';
export { exampleSize, subset, classCounts } from './types.js';
