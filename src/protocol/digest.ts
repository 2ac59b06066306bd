/** What binds a proof-of-work puzzle to a request: sha256 of the inputs as JSON (both sides stringify the same numbers). */
import { createHash } from 'node:crypto';

export function digestOf(inputs: number[][]): string {
  return createHash('sha256').update(JSON.stringify(inputs)).digest('hex');
}
