// Reconnect timing: exponential backoff with jitter, and what each close code means.
// Pure: the random source is a parameter, so node tests pin it.

export const DEFAULT_BACKOFF = Object.freeze({
  baseMs: 500, // first retry waits between baseMs/2 and baseMs
  factor: 2,
  maxMs: 10000, // the ceiling of the exponential part (a restarted hub is found within 10 s)
  promptMs: 250, // after 1012 (node restarting): a short random pause, then reconnect
});

/**
 * How long to wait before reconnect attempt number `attempt` (0 for the first retry).
 * "Equal jitter": half the exponential delay is fixed and half is random, so retries
 * never bunch at zero and a fleet of clients spreads over the interval.
 */
export function backoffDelay(attempt, options = {}, random = Math.random) {
  const { baseMs, factor, maxMs } = { ...DEFAULT_BACKOFF, ...options };
  const n = Math.max(0, Math.floor(attempt));
  const exp = Math.min(maxMs, baseMs * factor ** Math.min(n, 64));
  return Math.round(exp / 2 + random() * (exp / 2));
}

/** The pause before reconnecting after the node said it is restarting (1012). */
export function promptDelay(options = {}, random = Math.random) {
  const { promptMs } = { ...DEFAULT_BACKOFF, ...options };
  return Math.round(random() * promptMs);
}

/** Close codes the hub uses (DESIGN.md). */
export const CLOSE = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  ABNORMAL: 1006,
  TOO_LARGE: 1009,
  RESTARTING: 1012,
  NOT_AUTHENTICATED: 4001,
  DEACTIVATED: 4003,
  DISCONNECTED: 4004,
  RATE_LIMITED: 4008,
});

/**
 * What to do after the socket closed with `code`:
 * `{reconnect: false, reason}` for the codes that say "do not come back on your own"
 * (4001 bad or expired token, 4003 deactivated, 4004 disconnected by an admin),
 * `{reconnect: true, prompt: true}` for 1012, `{reconnect: true, prompt: false}` else.
 */
export function closePolicy(code) {
  switch (code) {
    case CLOSE.NOT_AUTHENTICATED:
      return { reconnect: false, prompt: false, reason: 'not_authenticated' };
    case CLOSE.DEACTIVATED:
      return { reconnect: false, prompt: false, reason: 'deactivated' };
    case CLOSE.DISCONNECTED:
      return { reconnect: false, prompt: false, reason: 'disconnected' };
    case CLOSE.RESTARTING:
      return { reconnect: true, prompt: true, reason: 'restarting' };
    case CLOSE.RATE_LIMITED:
      return { reconnect: true, prompt: false, reason: 'rate_limited' };
    case CLOSE.TOO_LARGE:
      return { reconnect: true, prompt: false, reason: 'too_large' };
    default:
      return { reconnect: true, prompt: false, reason: 'lost' };
  }
}
