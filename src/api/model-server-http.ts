/**
 * One JSON request to a model server, as the model-server API sends them (model-server-api.ts). The
 * server is not trusted, and a long run must survive its hiccups:
 *   - each request has a timeout, headers and body together;
 *   - 429 and 503 are retried after the server's Retry-After (seconds or an HTTP date), or with
 *     backoff; a Retry-After longer than twice the timeout gives up at once (a run left waiting for
 *     hours is worse than one that says so: it resumes when rerun);
 *   - 500, 502, 504, a reset connection and an answer cut short are retried with backoff too;
 *   - redirects are not followed (fetch would turn the POST into a GET): the line names the place;
 *   - an answer is read up to MAX_ANSWER_BYTES.
 * Every failure is one line naming the endpoint; one that outlasts the retries says to rerun.
 */
import { MseError } from '../errors.js';

/** The most an answer may hold: a batch of answers is kilobytes, a few megabytes with many classes. */
export const MAX_ANSWER_BYTES = 64 * 2 ** 20;
/** statuses worth another try: rate limits, an overloaded or restarting server, a gateway's hiccup */
const RETRY_STATUS = new Set([429, 500, 502, 503, 504]);
/** connection failures worth another try (a reset, a socket closed under the request) */
const RETRY_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);
/** the longest pause between tries when the server does not say (backoff 0.1 s · 2^attempt) */
const MAX_BACKOFF_S = 10;
const RERUN = 'rerun later: finished rows are kept and the run resumes';

export interface Connection {
  /** where requests go: <url>/infer or <url>:predict */
  endpoint: string;
  key?: string;
  /** seconds each request may take, headers and body */
  timeoutS: number;
  /** further tries of a request that failed in a way worth retrying */
  retries: number;
  /** called when a request starts and when it ends (for the API's wall time) */
  meter: { enter(): void; leave(): void };
}

export const snippet = (s: string) => JSON.stringify(s.replace(/\s+/g, ' ').trim().slice(0, 80));

/** A failure worth another try, with the wait the server asked for (seconds), if it did. */
class Transient {
  constructor(
    readonly why: string,
    readonly afterS?: number,
  ) {}
}

class TooLarge extends Error {}

/** Retry-After as seconds from now: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function retryAfterS(header: string | null, now = Date.now()): number | undefined {
  if (!header) return undefined;
  const v = header.trim();
  if (/^\d+$/.test(v)) return Number(v);
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, (at - now) / 1000) : undefined;
}

/** The body as text, up to `max` bytes (TooLarge past that). */
async function readCapped(res: Response, max: number): Promise<string> {
  if (Number(res.headers.get('content-length')) > max) {
    await res.body?.cancel().catch(() => undefined);
    throw new TooLarge();
  }
  if (!res.body) return '';
  const reader = res.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      throw new TooLarge();
    }
    parts.push(value);
  }
  return Buffer.concat(parts).toString('utf8');
}

/** The place a redirect names, and the --target to give instead (without the endpoint's /infer or :predict). */
function redirected(c: Connection, location: string): { place: string; target: string } {
  let place = location;
  try {
    place = new URL(location, c.endpoint).href;
  } catch {
    // an unreadable Location: named as it is
  }
  let target = place;
  try {
    const u = new URL(place);
    u.pathname = u.pathname.replace(/(\/infer|:predict)\/?$/, '');
    u.username = u.password = '';
    target = u.href;
  } catch {
    // named as it is
  }
  return { place, target };
}

/** One try: the answer as JSON, a Transient to retry, or a thrown one-line MseError. */
async function once(c: Connection, payload: string): Promise<{ value: unknown } | Transient> {
  const fail = (why: string, hint?: string) => new MseError('http', `${c.endpoint}: ${why}`, hint);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (c.key) headers.authorization = `Bearer ${c.key}`;
  const signal = AbortSignal.timeout(c.timeoutS * 1000);
  let res: Response;
  let text: string;
  c.meter.enter();
  try {
    try {
      res = await fetch(c.endpoint, { method: 'POST', headers, body: payload, redirect: 'manual', signal });
    } catch (e) {
      if (signal.aborted) throw fail(`no answer within ${c.timeoutS} s`);
      const err = e as Error & { cause?: { code?: string; message?: string } };
      const code = err.cause?.code;
      if (code && RETRY_CODES.has(code)) return new Transient(`the connection was reset (${code})`);
      throw fail(
        `cannot reach the server (${code ?? err.cause?.message ?? err.message})`,
        'is it running at that address? once it is, rerun: finished rows are kept and the run resumes',
      );
    }
    try {
      text = await readCapped(res, MAX_ANSWER_BYTES);
    } catch (e) {
      if (e instanceof TooLarge)
        throw fail(
          `answered more than ${MAX_ANSWER_BYTES / 2 ** 20} MiB for one request`,
          'a batch of answers is far smaller: is --target the model?',
        );
      if (signal.aborted) throw fail(`timed out after ${c.timeoutS} s while reading the answer`, 'raise --timeout');
      return new Transient('the connection closed before the answer was complete');
    }
  } finally {
    c.meter.leave();
  }
  if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
    const { place, target } = redirected(c, res.headers.get('location')!);
    throw fail(`redirects to ${place}: give ${target} as --target`);
  }
  const said = `answered ${res.status}${text ? `: ${snippet(text)}` : ''}`;
  if (RETRY_STATUS.has(res.status)) {
    const after = retryAfterS(res.headers.get('retry-after'));
    if (after !== undefined && after > 2 * c.timeoutS)
      throw fail(
        `answered ${res.status} and asks to retry after ${Math.round(after)} s; giving up — rerun later, the run resumes`,
        `mse waits for a retry at most twice --timeout, which is ${c.timeoutS} s`,
      );
    return new Transient(said, after);
  }
  if (!res.ok)
    throw fail(
      said,
      res.status === 401 || res.status === 403
        ? 'give a valid API key with --key'
        : res.status === 404
          ? 'is the model name in --target right?'
          : undefined,
    );
  try {
    return { value: JSON.parse(text) as unknown };
  } catch {
    throw fail(`answered something that is not JSON (${snippet(text)})`);
  }
}

/** POST `body` as JSON and read the JSON answer, retrying what is worth retrying (see the header). */
export async function postJson(c: Connection, body: unknown): Promise<unknown> {
  const payload = JSON.stringify(body);
  for (let attempt = 0; ; attempt++) {
    const r = await once(c, payload);
    if (!(r instanceof Transient)) return r.value;
    if (attempt >= c.retries)
      throw new MseError(
        'http',
        `${c.endpoint}: ${r.why}${c.retries ? `; gave up after ${c.retries} retries` : ''}`,
        RERUN,
      );
    const waitS = r.afterS !== undefined && r.afterS > 0 ? r.afterS : Math.min(0.1 * 2 ** attempt, MAX_BACKOFF_S);
    await new Promise((done) => setTimeout(done, waitS * 1000));
  }
}
