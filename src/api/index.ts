export { LocalPredictionApi } from './local-api.js';
export type { LocalApiOptions } from './local-api.js';
export type {
  ApiResponse,
  ApiInfo,
  Defense,
  Ledger,
  PredictionApi,
  QueryCtx,
  QueryBudget,
  Labels,
  Reveal,
} from './types.js';
