// Presence Hub browser client: one websocket to /ws, kept alive and in sync.
//
//   import { connect } from 'https://hub.example/static/hub.js';
//   const hub = connect({ token });              // the hub's URL comes from this module's URL
//   const sub = hub.subscribe({ room: 'design' });
//   sub.on('join', (user) => toast(`${user.name} joined`));
//   sub.on('sync', (users) => render(users));
//   await sub.ready;
//   await hub.setStatus({ status: 'busy', text: 'In a meeting' });
//
// The client reconnects with exponential backoff and jitter (promptly after 1012, at once
// when the page regains focus, becomes visible or comes back online), and resumes every
// subscription from its own cursor: the hub answers a resume inside the window with only
// what changed (`full: false`), else with a full snapshot. It reports this tab's idle state
// (`activity`), pings the hub and treats a missing answer as a dead socket. It never
// reconnects on its own after 4001 (bad or expired token), 4003 (deactivated) or 4004
// (disconnected by an admin). Every request (and every subscription's first snapshot) has a
// deadline and rejects with a HubError whose `code` says why.
//
// The pure parts live in their own modules (state.js, backoff.js, idle.js, protocol.js,
// msgpack.js) and are tested in node; this module is the I/O around them. It touches
// `window`/`document` only when they exist, so it also loads in a bundler or in node.

import { backoffDelay, closePolicy, DEFAULT_BACKOFF, promptDelay } from './backoff.js';
import { IdleTracker } from './idle.js';
import { decodeFrame, encodeFrame, MSGPACK_PROTOCOL, protocolName, socketUrl } from './protocol.js';
import {
  checkRange, CHOSEN, MemberWindow, newestEntry, normalizeScope, PresenceMap, scopeKey, sortEntries,
} from './state.js';

export { applyOps, CHOSEN, STATUSES, countByStatus, MemberWindow, sortEntries, scopeKey } from './state.js';

const INPUT_EVENTS = ['pointerdown', 'pointermove', 'keydown', 'wheel', 'touchstart', 'scroll', 'focus'];

/**
 * An error the hub sent (`code` is the hub's, e.g. `bad_field`, `forbidden`; `ref`) or a local
 * one: `timeout` (no answer in time), `closed` (the client is closed), `unsubscribed`,
 * `not_authenticated` / `deactivated` / `disconnected` (`closeCode` says which close).
 */
export class HubError extends Error {
  constructor(code, message, extra = {}) {
    super(message);
    this.name = 'HubError';
    this.code = code;
    Object.assign(this, extra);
  }
}

/** A request or a subscription the hub did not answer within its deadline (`code: 'timeout'`). */
export class HubTimeoutError extends HubError {
  constructor(message, extra = {}) {
    super('timeout', message, extra);
    this.name = 'HubTimeoutError';
  }
}

/** Close code the client sends when it leaves for good: the hub skips the offline grace. */
export const SIGN_OUT_CODE = 4000;

/** The default websocket URL: /ws next to this module's /static/, else on the page's origin. */
export function defaultUrl(moduleUrl = import.meta.url, loc = globalThis.location) {
  try {
    const here = new URL(moduleUrl);
    const at = here.pathname.lastIndexOf('/static/');
    if ((here.protocol === 'http:' || here.protocol === 'https:') && at >= 0) {
      return socketUrl(here, `${here.pathname.slice(0, at)}/ws`);
    }
  } catch { /* not a URL (some bundlers): fall back to the page */ }
  return loc && /^https?:$/.test(loc.protocol) ? socketUrl(loc) : null;
}

/** `url` as given (ws, wss, or the hub's http(s) base URL), as the /ws URL to open. */
function hubSocketUrl(url) {
  if (/^wss?:/i.test(url)) return url;
  const base = new URL(url, globalThis.location ? globalThis.location.href : undefined);
  const path = base.pathname.endsWith('/ws') ? base.pathname : base.pathname.replace(/\/?$/, '/ws');
  return socketUrl(base, path);
}

/**
 * @typedef {object} HubOptions
 * @property {string | (() => string | Promise<string>)} token  a user token, or a function
 *   returning one (called before each connection, so it can refresh)
 * @property {string} [url]  the hub: its http(s) URL or its ws(s)://.../ws URL; default: the
 *   hub this module was loaded from (import.meta.url), else the page's origin
 * @property {'json'|'msgpack'} [format='json']
 * @property {number} [idleMs=300000]  report `away` after this long without input (0: never)
 * @property {boolean} [awayWhenHidden=true]  report `away` while the page is hidden
 * @property {number} [hiddenDelayMs=2000]  ...once hidden this long (a closing or reloading
 *   tab is hidden first; the delay keeps it from flashing away)
 * @property {boolean} [trackActivity=true]  listen to input and visibility on the page
 * @property {number} [pingMs=25000]  how often to ping
 * @property {number} [pongTimeoutMs=10000]  no frame for this long after a ping: dead socket
 * @property {number} [connectTimeoutMs=10000]  open + hello -> ready must take less than this
 * @property {number} [requestTimeoutMs=10000]  a setStatus/join/leave not answered by then
 *   is rejected (it is re-sent across reconnects until then); a subscription's `ready` too
 * @property {{baseMs?: number, factor?: number, maxMs?: number, promptMs?: number}} [backoff]
 * @property {boolean} [watchSelf=true]  subscribe to the own user so 'status' stays current
 * @property {typeof WebSocket} [WebSocket]  for tests and non-browser runtimes
 */

export class Hub {
  /** @param {HubOptions} options */
  constructor(options = {}) {
    if (!options.token) throw new TypeError('Hub needs a token (a string or a function)');
    this.options = {
      format: 'json',
      idleMs: 300000,
      awayWhenHidden: true,
      trackActivity: true,
      pingMs: 25000,
      pongTimeoutMs: 10000,
      connectTimeoutMs: 10000,
      requestTimeoutMs: 10000,
      watchSelf: true,
      ...options,
      backoff: { ...DEFAULT_BACKOFF, ...(options.backoff || {}) },
    };
    this.url = options.url ? hubSocketUrl(options.url) : defaultUrl();
    if (!this.url) throw new TypeError('Hub needs a url (the hub\'s http(s) or ws(s) URL) outside a browser page');
    this.protocol = protocolName(this.options.format);
    this.WebSocket = options.WebSocket || globalThis.WebSocket;

    /** 'idle' | 'connecting' | 'authenticating' | 'ready' | 'reconnecting' | 'closed' */
    this.state = 'idle';
    /** Own presence entry (from `ready`, then from any newer entry about this user). */
    this.me = null;
    /** The status this user chose ('online' means automatic). */
    this.chosen = null;
    /** This connection's idle state, as last reported. */
    this.activity = 'online';
    /** The `ready` frame's conn id, cursor and window (seconds). */
    this.conn = null;
    this.window = null;
    this.rooms = new Set();
    this.attempt = 0;
    this.lastClose = null;

    this._listeners = new Map();
    this._subs = new Map(); // scope key -> {map, handles: Set<Subscription>, internal, ref}
    this._views = new Map(); // 'counts:...' / 'window:<room>' -> {kind, scope, state, handles, ref}
    this._requests = new Map(); // ref -> {frame, resolve, reject, timer, sent}
    this._seq = 0;
    this._ws = null;
    this._timers = new Set();
    this._retryTimer = null;
    this._pingTimer = null;
    this._deadline = null;
    this._detach = [];

    this.idle = new IdleTracker({
      idleMs: this.options.idleMs,
      awayWhenHidden: this.options.awayWhenHidden,
      hiddenDelayMs: this.options.hiddenDelayMs,
      onChange: (state) => this._reportActivity(state),
    });
  }

  // -- events ------------------------------------------------------------------------

  /** Listen to an event; returns a function that removes the listener. */
  on(event, fn) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }

  off(event, fn) {
    const set = this._listeners.get(event);
    if (set) set.delete(fn);
  }

  /** A promise for the next `event` (its first argument). */
  once(event) {
    return new Promise((resolve) => {
      const off = this.on(event, (arg) => { off(); resolve(arg); });
    });
  }

  _setState(state) {
    if (this.state === state) return;
    const previous = this.state;
    this.state = state;
    this._emit('state', state, previous);
  }

  _emit(event, ...args) {
    const set = this._listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (err) {
        // A listener's bug must not break the socket loop; surface it asynchronously.
        setTimeout(() => { throw err; }, 0);
      }
    }
  }

  // -- lifecycle ---------------------------------------------------------------------

  /** Open the connection (the `connect()` helper calls this). Safe to call again. */
  connect() {
    if (this._ws) return this;
    this._clearRetry();
    this._bindPage();
    this.idle.start();
    this._open();
    return this;
  }

  /**
   * Close for good: no reconnect; pending requests are rejected. With `{grace: false}` (a
   * sign-out) the hub is told this user leaves now, so others see the change at once
   * instead of after the offline grace that covers reloads and network blips.
   */
  close({ grace = true } = {}) {
    this._clearRetry();
    this._stopPing();
    this._unbindPage();
    this.idle.stop();
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      this._silence(ws);
      try {
        if (grace) ws.close(1000, 'client closed');
        else ws.close(SIGN_OUT_CODE, 'signed out');
      } catch { /* already closed */ }
    }
    const wasClosed = this.state === 'closed';
    this._setState('closed');
    this._rejectAll(new HubError('closed', 'the hub client was closed'));
    if (!wasClosed) {
      this._emit('close', { code: 1000, reason: 'client closed', willReconnect: false });
      this._emit('closed', { code: 1000, reason: 'client closed' });
    }
  }

  /** Reconnect now (after a terminal close, or to skip a backoff wait). */
  reconnect() {
    this._clearRetry();
    if (this._ws) {
      const ws = this._ws;
      this._ws = null;
      this._silence(ws);
      try { ws.close(1000, 'reconnecting'); } catch { /* already closed */ }
    }
    this._stopPing();
    this._setState('idle');
    this.attempt = 0;
    return this.connect();
  }

  /** While waiting to reconnect: try now (the backoff goes on from where it was). */
  retryNow() {
    if (this.state !== 'reconnecting') return this;
    this._clearRetry();
    this._open();
    return this;
  }

  /** Use another token from the next connection on (e.g. after a 4001). */
  setToken(token) {
    this.options.token = token;
  }

  async _token() {
    const t = this.options.token;
    return typeof t === 'function' ? await t() : t;
  }

  _open() {
    // 'connecting' while a socket opens; 'reconnecting' only while waiting to retry.
    this._setState('connecting');
    let ws;
    try {
      ws = new this.WebSocket(this.url, [this.protocol]);
    } catch (err) {
      this._emit('error', new HubError('connect_failed', String(err && err.message || err)));
      this._scheduleReconnect({ code: 1006, reason: 'connect failed' });
      return;
    }
    if (this.protocol === MSGPACK_PROTOCOL) ws.binaryType = 'arraybuffer';
    this._ws = ws;
    this._armDeadline(this.options.connectTimeoutMs, 'connect timeout');
    ws.onopen = async () => {
      if (this._ws !== ws) return;
      this._setState('authenticating');
      this._emit('open', { protocol: ws.protocol || this.protocol, url: this.url });
      let token;
      try {
        token = await this._token();
      } catch (err) {
        this._emit('error', new HubError('token', `could not get a token: ${err}`));
        this._drop(ws, 1006, 'no token');
        return;
      }
      if (this._ws !== ws) return;
      this._send({ op: 'hello', token }, ws);
    };
    ws.onmessage = (ev) => {
      if (this._ws !== ws) return;
      this._onMessage(ev.data);
    };
    ws.onerror = () => {
      // The close event follows with the code; nothing to decide here.
    };
    ws.onclose = (ev) => {
      if (this._ws !== ws) return;
      this._ws = null;
      this._onClosed(ev.code, ev.reason || '');
    };
  }

  _silence(ws) {
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
  }

  /** Give up on a socket we believe dead, and go through the normal close path. */
  _drop(ws, code, reason) {
    if (this._ws !== ws) return;
    this._ws = null;
    this._silence(ws);
    try { ws.close(); } catch { /* nothing to close */ }
    this._onClosed(code, reason);
  }

  _onClosed(code, reason) {
    this._stopPing();
    this._clearDeadline();
    this.lastClose = { code, reason };
    const policy = closePolicy(code);
    if (!policy.reconnect) {
      this._setState('closed');
      const err = new HubError(policy.reason, closeMessage(code, reason), { closeCode: code });
      this._rejectAll(err);
      this._emit('close', { code, reason, willReconnect: false });
      this._emit('error', err);
      this._emit('closed', { code, reason: policy.reason });
      return;
    }
    this._scheduleReconnect({ code, reason, prompt: policy.prompt });
  }

  _scheduleReconnect({ code, reason, prompt = false }) {
    const delay = prompt
      ? promptDelay(this.options.backoff)
      : backoffDelay(this.attempt, this.options.backoff);
    this.attempt += 1;
    this._setState('reconnecting');
    this._emit('close', { code, reason, willReconnect: true, delay });
    this._emit('reconnecting', { attempt: this.attempt, delay, code });
    this._clearRetry();
    this._retryTimer = setTimeout(() => {
      this._retryTimer = null;
      if (this.state === 'reconnecting') this._open();
    }, delay);
  }

  _clearRetry() {
    if (this._retryTimer !== null) clearTimeout(this._retryTimer);
    this._retryTimer = null;
  }

  _armDeadline(ms, reason) {
    this._clearDeadline();
    const ws = this._ws;
    this._deadline = setTimeout(() => {
      this._deadline = null;
      this._drop(ws, 1006, reason);
    }, ms);
  }

  _clearDeadline() {
    if (this._deadline !== null) clearTimeout(this._deadline);
    this._deadline = null;
  }

  _startPing() {
    this._stopPing();
    this._pingTimer = setInterval(() => {
      const ws = this._ws;
      if (!ws || this.state !== 'ready') return;
      this._send({ op: 'ping' });
      if (this._deadline === null) this._armDeadline(this.options.pongTimeoutMs, 'no pong');
    }, this.options.pingMs);
  }

  _stopPing() {
    if (this._pingTimer !== null) clearInterval(this._pingTimer);
    this._pingTimer = null;
  }

  // -- page activity -----------------------------------------------------------------

  _bindPage() {
    if (!this.options.trackActivity || this._detach.length) return;
    const win = globalThis.window;
    const doc = globalThis.document;
    if (!win || !doc || typeof win.addEventListener !== 'function') return;
    const onInput = () => this.idle.input();
    const onVisibility = () => this.idle.setHidden(doc.visibilityState === 'hidden');
    // Back online, focused or visible again: do not sit out the rest of a backoff wait.
    const retryNow = () => { if (this.state === 'reconnecting') this.retryNow(); };
    const onVisible = () => { if (doc.visibilityState === 'visible') retryNow(); };
    const opts = { capture: true, passive: true };
    for (const name of INPUT_EVENTS) win.addEventListener(name, onInput, opts);
    doc.addEventListener('visibilitychange', onVisibility);
    doc.addEventListener('visibilitychange', onVisible);
    win.addEventListener('online', retryNow);
    win.addEventListener('focus', retryNow);
    this._detach.push(() => {
      for (const name of INPUT_EVENTS) win.removeEventListener(name, onInput, opts);
      doc.removeEventListener('visibilitychange', onVisibility);
      doc.removeEventListener('visibilitychange', onVisible);
      win.removeEventListener('online', retryNow);
      win.removeEventListener('focus', retryNow);
    });
    if (doc.visibilityState === 'hidden') this.idle.setHidden(true);
  }

  _unbindPage() {
    for (const undo of this._detach.splice(0)) undo();
  }

  /** Report this connection as 'online' or 'away' yourself (idle detection does it too). */
  setActivity(state) {
    if (state !== 'online' && state !== 'away') {
      throw new TypeError(`activity must be 'online' or 'away', got ${state}`);
    }
    this._reportActivity(state);
  }

  _reportActivity(state) {
    if (this.activity === state) return;
    this.activity = state;
    this._emit('activity', state);
    if (this.state === 'ready') this._send({ op: 'activity', state });
  }

  // -- frames ------------------------------------------------------------------------

  _send(frame, ws = this._ws) {
    if (!ws || ws.readyState !== 1) return false;
    try {
      ws.send(encodeFrame(frame, this.protocol));
      return true;
    } catch (err) {
      this._emit('error', new HubError('send_failed', String(err && err.message || err)));
      return false;
    }
  }

  _onMessage(data) {
    let frame;
    try {
      frame = decodeFrame(data);
    } catch (err) {
      this._emit('error', new HubError('bad_frame', `could not decode a frame: ${err.message}`));
      return;
    }
    // Any frame proves the socket alive; a pending ping deadline is lifted.
    if (this.state === 'ready') this._clearDeadline();
    switch (frame.op) {
      case 'ready': return this._onReady(frame);
      case 'snapshot': return frame.scope && frame.scope.range ? this._onWindow(frame) : this._onSnapshot(frame);
      case 'delta': return this._onDelta(frame);
      case 'counts': return this._onCounts(frame);
      case 'window': return this._onWindow(frame);
      case 'ack': return this._onAck(frame);
      case 'error': return this._onError(frame);
      case 'ping': this._send({ op: 'pong' }); return undefined;
      case 'pong': return undefined;
      default: return undefined; // newer server ops are ignored, not fatal
    }
  }

  _onReady(frame) {
    this._clearDeadline();
    const resumed = this.attempt > 0 || this.conn !== null;
    const user = frame.user || {};
    if (this.me && user.id && this.me.id !== user.id) this._forgetUser();
    this._setState('ready');
    this.attempt = 0;
    this.conn = frame.conn;
    this.window = frame.window;
    this.cursor = frame.cursor;
    if (user.id) {
      if (!this.me || this.me.id !== user.id || (user.at ?? 0) >= (this.me.at ?? 0)) {
        this.me = { ...user };
      }
      // A new connection starts `online`, so the effective status is the chosen one.
      this.chosen = this.me.status;
    }
    this._startPing();
    this._emit('ready', { conn: frame.conn, user: this.me, cursor: frame.cursor, window: frame.window, resumed });
    if (this.me) this._emit('status', this.me);

    if (this.activity === 'away') this._send({ op: 'activity', state: 'away' });
    for (const room of this.rooms) this._send({ op: 'join', room, ref: this._ref() });
    if (this.options.watchSelf && this.me) this._ensureSelf();
    for (const sub of this._subs.values()) this._sendSub(sub);
    for (const view of this._views.values()) this._sendView(view);
    for (const req of this._requests.values()) this._sendRequest(req);
  }

  _forgetUser() {
    // Another user on the same client (a new token): its old maps say nothing now.
    for (const sub of this._subs.values()) {
      if (sub.internal && !sub.handles.size) this._subs.delete(sub.map.key);
      else { sub.map.cursor = null; }
    }
    this.rooms.clear();
    this.me = null;
  }

  _ensureSelf() {
    const key = scopeKey({ users: [this.me.id] });
    const existing = this._subs.get(key);
    if (existing) { existing.internal = true; return; }
    for (const sub of this._subs.values()) {
      if (sub.internal && !sub.handles.size) this._subs.delete(sub.map.key);
    }
    this._subs.set(key, this._newSub({ users: [this.me.id] }, { internal: true }));
  }

  _newSub(scope, { internal = false } = {}) {
    return { map: new PresenceMap(scope), handles: new Set(), internal, ref: null };
  }

  _sendSub(sub) {
    const frame = { op: 'sub', ...sub.map.scope, ref: this._ref() };
    if (sub.map.cursor !== null) frame.since = sub.map.cursor;
    sub.ref = frame.ref;
    this._send(frame);
  }

  _subFor(scope) {
    let key;
    try { key = scopeKey(scope); } catch { return null; }
    return this._subs.get(key) || null;
  }

  _onSnapshot(frame) {
    const sub = this._subFor(frame.scope);
    if (!sub) return;
    const first = !sub.map.synced;
    const changes = sub.map.applySnapshot(frame);
    this._publish(sub, changes, { source: 'snapshot', full: Boolean(frame.full) });
    if (sub.handles.size) this._emit('snapshot', sub.map.scope, sub.map.values(), Boolean(frame.full));
    for (const handle of [...sub.handles]) handle._applied(changes, { first, snapshot: true });
  }

  _onDelta(frame) {
    if (frame.scope && frame.scope.users === true) {
      // A long watchlist's delta: it concerns every long `users` subscription, each for
      // the ids it watches (the map ignores the others).
      for (const sub of this._subs.values()) {
        if (!sub.map.ids || sub.map.ids.size <= ECHO_IDS) continue;
        const changes = sub.map.applyDelta(frame);
        this._publish(sub, changes, { source: 'delta', full: false });
        for (const handle of [...sub.handles]) handle._applied(changes, { first: false, snapshot: false });
      }
      return;
    }
    const sub = this._subFor(frame.scope);
    if (!sub) return;
    const changes = sub.map.applyDelta(frame);
    this._publish(sub, changes, { source: 'delta', full: false });
    for (const handle of [...sub.handles]) handle._applied(changes, { first: false, snapshot: false });
  }

  _publish(sub, changes, info) {
    for (const { entry, previous } of changes) {
      if (this.me && entry.id === this.me.id && entry.member !== false && (entry.at ?? 0) > (this.me.at ?? -1)) {
        this.me = { ...this.me, ...entry };
        delete this.me.member;
        // Online, busy and offline can only be what the user chose (away may be idleness):
        // follow a change made in another tab, or an expired `until`.
        if (['online', 'busy', 'offline'].includes(entry.status)) this.chosen = entry.status;
        this._emit('status', this.me);
      }
      if (sub.handles.size) this._emit('change', entry, sub.map.scope, previous, info);
    }
  }

  _onAck(frame) {
    const req = this._requests.get(frame.ref);
    if (!req) return;
    this._finish(frame.ref);
    req.resolve(frame);
  }

  _onCounts(frame) {
    const view = this._views.get(viewKey(frame.scope));
    if (!view || view.kind !== 'counts') return;
    const { online, away, busy, total, cursor } = frame;
    view.state = { online, away, busy, total, cursor };
    for (const handle of [...view.handles]) handle._changed();
  }

  _onWindow(frame) {
    const view = this._views.get(viewKey(frame.scope));
    if (!view || view.kind !== 'window') return;
    const applied = frame.op === 'snapshot' ? view.state.applySnapshot(frame) : view.state.applyWindow(frame);
    if (!applied) return;
    for (const handle of [...view.handles]) handle._changed(frame.op === 'snapshot');
  }

  _sendView(view) {
    const frame = { op: 'sub', ...view.wire(), ref: this._ref() };
    view.ref = frame.ref;
    if (view.kind === 'window') view.state.synced = false;
    this._send(frame);
  }

  _onError(frame) {
    const err = new HubError(frame.code || 'error', frame.message || 'the hub refused a frame', { ref: frame.ref });
    const req = frame.ref !== undefined ? this._requests.get(frame.ref) : undefined;
    if (req) {
      this._finish(frame.ref);
      req.reject(err);
      return;
    }
    for (const view of this._views.values()) {
      if (frame.ref !== undefined && view.ref === frame.ref) {
        // A refused counts or window subscription (bad range, a limit): drop it.
        this._views.delete(view.key);
        for (const handle of [...view.handles]) handle._end(err);
        return;
      }
    }
    for (const sub of this._subs.values()) {
      if (frame.ref !== undefined && sub.ref === frame.ref && !sub.map.synced) {
        // A refused subscription (bad scope, forbidden room): drop it and tell its handles.
        this._subs.delete(sub.map.key);
        for (const handle of [...sub.handles]) handle._end(err);
        return;
      }
    }
    this._emit('error', err);
  }

  _ref() {
    this._seq += 1;
    return this._seq;
  }

  /**
   * Send a frame that wants an answer; resolves on `ack`, rejects on `error` with its ref.
   * Until answered it is re-sent after each reconnect: every such frame is idempotent
   * (setting the same status twice changes nothing), so a retry is safe.
   */
  _request(frame) {
    return new Promise((resolve, reject) => {
      const ref = this._ref();
      const req = { frame: { ...frame, ref }, resolve, reject, timer: null };
      req.timer = setTimeout(() => {
        if (!this._requests.has(ref)) return;
        this._requests.delete(ref);
        const why = this.state === 'ready' ? '' : ` (the hub is unreachable: ${this.state})`;
        reject(new HubTimeoutError(`no answer to ${frame.op} within ${this.options.requestTimeoutMs} ms${why}`, { ref }));
      }, this.options.requestTimeoutMs);
      this._requests.set(ref, req);
      if (this.state === 'closed') {
        this._finish(ref);
        reject(new HubError('closed', 'the hub client is closed', { ref }));
        return;
      }
      if (this.state === 'ready') this._sendRequest(req);
    });
  }

  _sendRequest(req) {
    this._send(req.frame);
  }

  _finish(ref) {
    const req = this._requests.get(ref);
    if (req && req.timer !== null) clearTimeout(req.timer);
    this._requests.delete(ref);
  }

  _rejectAll(err) {
    for (const [ref, req] of [...this._requests]) {
      this._finish(ref);
      req.reject(err);
    }
    for (const sub of this._subs.values()) {
      for (const handle of sub.handles) handle._fail(err);
    }
    for (const view of this._views.values()) {
      for (const handle of view.handles) handle._fail(err);
    }
  }

  // -- the API -----------------------------------------------------------------------

  /**
   * Set the chosen status ('online' = automatic, 'away', 'busy', 'offline' = invisible),
   * the status text ('' clears it) and/or `until` (ms since the epoch, or a Date: then the
   * status returns to automatic and the text clears). `setStatus({status, text, until})`;
   * the older `setStatus(status, text)` still works. Leave a field out to keep it.
   * Resolves when the hub acknowledged it, rejects with a HubError (the hub's, or a timeout).
   */
  setStatus(change, text) {
    const given = change !== null && typeof change === 'object' ? change : { status: change, text };
    const { status, until } = given;
    const frame = { op: 'status' };
    if (status !== undefined && status !== null) {
      if (!CHOSEN.includes(status)) {
        return Promise.reject(new TypeError(`status must be one of ${CHOSEN.join(', ')}, got ${status}`));
      }
      frame.status = status;
    }
    if (given.text !== undefined && given.text !== null) {
      if (typeof given.text !== 'string') return Promise.reject(new TypeError('text must be a string'));
      frame.text = given.text;
    }
    if (until !== undefined && until !== null) {
      const ms = until instanceof Date ? until.getTime() : until;
      if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0) {
        return Promise.reject(new TypeError(`until must be a time in ms since the epoch or a Date, got ${until}`));
      }
      frame.until = Math.round(ms);
    }
    if (frame.status === undefined && frame.text === undefined) {
      return Promise.reject(new TypeError('setStatus needs a status and/or a text'));
    }
    const previous = this.chosen;
    if (frame.status !== undefined) this.chosen = frame.status;
    return this._request(frame).catch((err) => {
      if (this.chosen === frame.status) this.chosen = previous;
      throw err;
    });
  }

  /**
   * Subscribe to `{all: true}`, `{users: [...]}` or `{room}`: a Subscription whose `ready`
   * resolves with the users of the first snapshot (or rejects on a refusal or after
   * `requestTimeoutMs`). Subscribing twice to one scope shares one subscription on the
   * wire. Survives reconnects (resumed by cursor). A bad scope throws a TypeError.
   */
  subscribe(scope) {
    if (scope && typeof scope === 'object' && scope.counts === true) {
      return this.counts(scope.room !== undefined ? scope.room : undefined);
    }
    if (scope && typeof scope === 'object' && scope.range !== undefined) {
      return this.members(scope.room, scope.range);
    }
    const key = scopeKey(scope);
    if (this.state === 'closed') {
      const handle = new Subscription(this, this._newSub(normalizeScope(scope)));
      handle._end(new HubError('closed', 'the hub client is closed'));
      return handle;
    }
    let sub = this._subs.get(key);
    const fresh = !sub;
    if (!sub) {
      sub = this._newSub(normalizeScope(scope));
      this._subs.set(key, sub);
    }
    const handle = new Subscription(this, sub);
    sub.handles.add(handle);
    if (sub.map.synced) handle._resolve();
    else if (fresh && this.state === 'ready') this._sendSub(sub);
    return handle;
  }

  /** Stop every Subscription to `scope`; its map is dropped. */
  unsubscribe(scope) {
    const sub = this._subs.get(scopeKey(scope));
    if (!sub) return Promise.resolve();
    for (const handle of [...sub.handles]) handle._end(new HubError('unsubscribed', 'unsubscribed'));
    return this._release(sub);
  }

  _detachHandle(handle) {
    const sub = handle._sub;
    sub.handles.delete(handle);
    return this._release(sub);
  }

  _release(sub) {
    if (sub.handles.size || sub.internal || this._subs.get(sub.map.key) !== sub) return Promise.resolve();
    this._subs.delete(sub.map.key);
    if (this.state !== 'ready') return Promise.resolve();
    return this._request({ op: 'unsub', ...sub.map.scope }).catch(() => undefined);
  }

  /**
   * The numbers of a room (`counts('lobby')`) or of everyone (`counts()`): a
   * CountsSubscription whose `value` is `{online, away, busy, total, cursor}`, sent by the hub
   * when a number changed (at most once a tick). Works for rooms of any size.
   */
  counts(room) {
    if (room !== undefined && (typeof room !== 'string' || !room)) {
      throw new TypeError(`room must be a non-empty string, got ${room}`);
    }
    const scope = room === undefined ? { all: true, counts: true } : { room, counts: true };
    const view = this._view(viewKey(scope), 'counts', () => scope, null);
    return this._attach(view, new CountsSubscription(this, view));
  }

  /**
   * A window of a room's members: `members('lobby', [0, 99])` holds members 0 to 99 in the
   * hub's order (online, away, busy, then offline by last seen; ties by name, then id),
   * kept exact by the hub's window operations. `move([100, 199])` scrolls it. One window
   * per room per client.
   */
  members(room, range) {
    if (typeof room !== 'string' || !room) throw new TypeError(`room must be a non-empty string, got ${room}`);
    const at = checkRange(range);
    const key = viewKey({ room, range: at });
    const existing = this._views.get(key);
    if (existing && (existing.state.range[0] !== at[0] || existing.state.range[1] !== at[1])) {
      this._moveWindow(existing, at).catch(() => undefined);
    }
    const view = this._view(key, 'window', (v) => ({ room, range: [...v.state.range] }), () => new MemberWindow(room, at));
    return this._attach(view, new WindowSubscription(this, view));
  }

  _view(key, kind, wire, make) {
    let view = this._views.get(key);
    if (!view) {
      view = { key, kind, state: make ? make() : null, handles: new Set(), ref: null };
      view.wire = () => wire(view);
      this._views.set(key, view);
      if (this.state === 'ready') this._sendView(view);
    }
    return view;
  }

  _attach(view, handle) {
    if (this.state === 'closed') {
      handle._end(new HubError('closed', 'the hub client is closed'));
      return handle;
    }
    view.handles.add(handle);
    if (view.kind === 'counts' ? view.state !== null : view.state.synced) handle._resolve();
    return handle;
  }

  _moveWindow(view, range) {
    view.state.move(range);
    if (this.state !== 'ready') return Promise.resolve();
    return this._request({ op: 'range', room: view.state.room, range: [...range] });
  }

  _releaseView(handle) {
    const view = handle._view;
    view.handles.delete(handle);
    if (view.handles.size || this._views.get(view.key) !== view) return Promise.resolve();
    this._views.delete(view.key);
    if (this.state !== 'ready') return Promise.resolve();
    return this._request({ op: 'unsub', ...view.wire() }).catch(() => undefined);
  }

  /** Join a room (re-joined after every reconnect). Resolves on the hub's ack. */
  join(room) {
    if (typeof room !== 'string' || !room) return Promise.reject(new TypeError('room must be a non-empty string'));
    return this._request({ op: 'join', room }).then((ack) => {
      this.rooms.add(room);
      return ack;
    });
  }

  /** Leave a room. Resolves on the hub's ack. */
  leave(room) {
    if (typeof room !== 'string' || !room) return Promise.reject(new TypeError('room must be a non-empty string'));
    this.rooms.delete(room);
    return this._request({ op: 'leave', room });
  }

  /** The newest known entry for a user id across every subscription, or undefined. */
  presence(id) {
    return newestEntry(id, [...this._subs.values()].map((s) => s.map), this.me ? [this.me] : []);
  }

  /** The users of one subscribed scope (an array of entries; empty if not subscribed). */
  users(scope = { all: true }) {
    const sub = this._subFor(scope);
    return sub ? sub.map.values() : [];
  }

  /** The PresenceMap of a subscribed scope, or null. */
  map(scope) {
    const sub = this._subFor(scope);
    return sub ? sub.map : null;
  }

  /** The scopes subscribed with subscribe(). */
  scopes() {
    return [...this._subs.values()].filter((s) => s.handles.size).map((s) => s.map.scope);
  }
}

const present = (e) => Boolean(e) && e.status !== 'offline' && e.member !== false;

/**
 * One `hub.subscribe(scope)`: the users of that scope, kept current, and events.
 *
 * - `sync` (users): once per applied snapshot or delta, with the whole list
 * - `join` (user): became present here (online, away or busy; in a room: a member again)
 * - `leave` (user): no longer present (went offline or invisible; in a room: left it)
 * - `update` (user, previous): any other change to a known user (status, text, name)
 *
 * The first snapshot fires only `sync` (every user in it is already there, not news).
 * `get(id)` is `undefined` for a user this scope never mentioned, and an entry with
 * `status: 'offline'` for one known to be offline.
 */
export class Subscription {
  constructor(hub, sub) {
    this.hub = hub;
    this.scope = sub.map.scope;
    this._sub = sub;
    this._listeners = new Map();
    this._settled = false;
    /** True once unsubscribed, refused or its client closed. */
    this.closed = false;
    this.ready = new Promise((resolve, reject) => { this._ready = { resolve, reject }; });
    this.ready.catch(() => undefined); // a rejection nobody awaits is not an unhandled one
    const ms = hub.options.requestTimeoutMs;
    this._timer = setTimeout(() => {
      this._timer = null;
      const why = hub.state === 'ready' ? 'the hub did not answer' : `the hub is unreachable (${hub.state})`;
      this._fail(new HubTimeoutError(`no snapshot for ${scopeKey(this.scope)} within ${ms} ms: ${why}`));
    }, ms);
  }

  /** Listen to `sync`, `join`, `leave` or `update`; returns a function removing the listener. */
  on(event, fn) {
    if (!['sync', 'join', 'leave', 'update'].includes(event)) {
      throw new TypeError(`a subscription emits sync, join, leave or update, not ${event}`);
    }
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }

  off(event, fn) {
    const set = this._listeners.get(event);
    if (set) set.delete(fn);
  }

  /** True once the first snapshot arrived. */
  get synced() { return this._sub.map.synced; }

  /** Every user this scope told about (offline ones included), sorted for display. */
  list() { return sortEntries(this._sub.map.values()); }

  /** The users present (not offline), sorted for display. */
  present() { return sortEntries(this._sub.map.present()); }

  /**
   * The entry for `id` (`status: 'offline'`, with `lastSeen` when shown, for a known user
   * who is offline); `{id, unknown: true}` for an id of a `users` scope the hub never saw;
   * undefined when this scope says nothing of `id`.
   */
  get(id) { return this._sub.map.lookup(id); }

  /** The ids of a `users` scope the hub never saw (not in `list()`). */
  unknown() { return [...this._sub.map.unknown].sort(); }

  /** Whether this scope knows `id` at all (present or offline). */
  has(id) { return this._sub.map.users.has(id); }

  /** How many users are present (`count()`), or have `status` (`count('busy')`). */
  count(status) {
    const counts = this._sub.map.counts();
    if (status === undefined) return counts.online + counts.away + counts.busy;
    if (!Object.hasOwn(counts, status)) throw new TypeError(`unknown status ${status}`);
    return counts[status];
  }

  /** `{online, away, busy, offline}`. */
  counts() { return this._sub.map.counts(); }

  /** Stop this subscription (the wire subscription ends with the last one of its scope). */
  unsubscribe() {
    if (this.closed) return Promise.resolve();
    this._end(new HubError('unsubscribed', 'unsubscribed'));
    return this.hub._detachHandle(this);
  }

  _emit(event, ...args) {
    const set = this._listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try { fn(...args); } catch (err) { setTimeout(() => { throw err; }, 0); }
    }
  }

  _resolve() {
    if (this._timer !== null) { clearTimeout(this._timer); this._timer = null; }
    if (this._settled) return;
    this._settled = true;
    this._ready.resolve(this.list());
  }

  /** Reject `ready` if still pending (the subscription itself goes on). */
  _fail(err) {
    if (this._timer !== null) { clearTimeout(this._timer); this._timer = null; }
    if (this._settled) return;
    this._settled = true;
    this._ready.reject(err);
  }

  /** Refused, unsubscribed or closed: no more events. */
  _end(err) {
    this._fail(err);
    this.closed = true;
    this._sub.handles.delete(this);
    this._listeners.clear();
  }

  _applied(changes, { first, snapshot }) {
    if (!first) {
      for (const { entry, previous, removed } of changes) {
        const was = present(previous);
        const is = !removed && present(entry);
        if (!was && is) this._emit('join', entry);
        else if (was && !is) this._emit('leave', entry);
        else if (previous && !removed) this._emit('update', entry, previous);
      }
    }
    if (snapshot || changes.length) this._emit('sync', this.list());
    if (snapshot) this._resolve();
  }
}

/** What counts and window subscriptions share: `ready`, a deadline, events, unsubscribe. */
class ViewSubscription {
  constructor(hub, view, events) {
    this.hub = hub;
    this._view = view;
    this._events = events;
    this._listeners = new Map();
    this._settled = false;
    this.closed = false;
    this.ready = new Promise((resolve, reject) => { this._ready = { resolve, reject }; });
    this.ready.catch(() => undefined);
    const ms = hub.options.requestTimeoutMs;
    this._timer = setTimeout(() => {
      this._timer = null;
      this._fail(new HubTimeoutError(`no first frame for ${view.key} within ${ms} ms`));
    }, ms);
  }

  on(event, fn) {
    if (!this._events.includes(event)) {
      throw new TypeError(`this subscription emits ${this._events.join(', ')}, not ${event}`);
    }
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }

  off(event, fn) {
    const set = this._listeners.get(event);
    if (set) set.delete(fn);
  }

  unsubscribe() {
    if (this.closed) return Promise.resolve();
    this._end(new HubError('unsubscribed', 'unsubscribed'));
    return this.hub._releaseView(this);
  }

  _emit(event, ...args) {
    const set = this._listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try { fn(...args); } catch (err) { setTimeout(() => { throw err; }, 0); }
    }
  }

  _resolve() {
    if (this._timer !== null) { clearTimeout(this._timer); this._timer = null; }
    if (this._settled) return;
    this._settled = true;
    this._ready.resolve(this._value());
  }

  _fail(err) {
    if (this._timer !== null) { clearTimeout(this._timer); this._timer = null; }
    if (this._settled) return;
    this._settled = true;
    this._ready.reject(err);
  }

  _end(err) {
    this._fail(err);
    this.closed = true;
    this._view.handles.delete(this);
    this._listeners.clear();
  }
}

/**
 * `hub.counts(room)`: a room's (or everyone's) numbers. `value` is `{online, away, busy,
 * total, cursor}` (null before the first frame); `change` fires with it on every update.
 */
export class CountsSubscription extends ViewSubscription {
  constructor(hub, view) {
    super(hub, view, ['change']);
    this.scope = view.wire();
  }

  get value() { return this._view.state; }

  _value() { return this._view.state; }

  _changed() {
    this._emit('change', this._view.state);
    this._resolve();
  }
}

/**
 * `hub.members(room, [from, to])`: members `from` to `to` of a room in the hub's order.
 * `users` is the window (an array, index 0 is member `from`), `total` the room's member
 * count; `sync` fires with the users after each snapshot or window frame.
 */
export class WindowSubscription extends ViewSubscription {
  constructor(hub, view) {
    super(hub, view, ['sync']);
    this.room = view.state.room;
  }

  get range() { return [...this._view.state.range]; }

  get users() { return [...this._view.state.users]; }

  get total() { return this._view.state.total; }

  /** Scroll the window to `[from, to]`; resolves on the hub's ack (a snapshot follows). */
  move(range) {
    return this.hub._moveWindow(this._view, checkRange(range));
  }

  _value() { return this.users; }

  _changed() {
    this._emit('sync', this.users);
    this._resolve();
  }
}

/** The key of a counts or window subscription, as its frames' scope names it. */
function viewKey(scope) {
  if (!scope || typeof scope !== 'object') return '';
  if (scope.counts === true) return scope.all === true ? 'counts:all' : `counts:room:${scope.room}`;
  if (scope.range !== undefined) return `window:${scope.room}`;
  return '';
}

/** A `users` scope longer than this has its deltas named `{users: true}` (the hub's rule). */
const ECHO_IDS = 100;

/** Create a Hub and connect it. */
export function connect(options) {
  return new Hub(options).connect();
}

function closeMessage(code, reason) {
  const what = {
    4001: 'the token is missing, invalid or expired',
    4003: 'this account is deactivated',
    4004: 'an administrator disconnected this session',
  }[code] || `the connection closed (${code})`;
  return reason ? `${what}: ${reason}` : what;
}
