// The live page at `/`: sign in, see who is online, rooms, a feed of changes, and your own
// status. It talks to the hub only through the browser library (hub.js).
//
// Page URL options (handy for demos and tests; none carries a secret):
//   ?idle=SECONDS    report away after this long without input (default 300)
//   ?proto=msgpack   use hub.v1.msgpack instead of hub.v1.json
//   ?retry=SECONDS   ceiling of the reconnect backoff (default 10)
//   ?ping=SECONDS    ping interval (default 25)
//
// Who is listed: everyone the hub knows about, offline people included, the same on every
// page however long it has been open. The subscription's snapshot lists the people who are
// not offline; the registered users who are offline come from users.listByStatus (fetched
// after each connect), and every later change comes from the live deltas.
//
// While the page is not live it says so: your own status shows as offline/reconnecting
// (others will see you offline once the hub's grace has passed) and the status controls
// are disabled until the connection is back.

import { connect, countByStatus, sortEntries } from './hub.js';

const TOKEN_KEY = 'presence-hub.token';
const ROOMS_KEY = 'presence-hub.rooms';
const FORMAT_KEY = 'presence-hub.format';
const FEED_MAX = 60;
const ALL = { all: true };

const LABEL = { online: 'Online', away: 'Away', busy: 'Busy', offline: 'Offline' };

const params = new URLSearchParams(location.search);
const seconds = (name, fallback) => {
  const v = Number.parseFloat(params.get(name));
  return Number.isFinite(v) && v >= 0 ? v * 1000 : fallback;
};

const $ = (id) => document.getElementById(id);

/** Build an element; children are nodes or strings (always set as text, never as HTML). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'style') el.style.cssText = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

let hub = null;
let info = null;
/** Registered users as last listed by the REST API: the offline ones the snapshot leaves out. */
let roster = new Map();
let everReady = false;
let retryAt = 0;
let renderQueued = false;
const ui = { filter: 'all', query: '' };
const feed = [];
const feedSeen = new Set();

// -- helpers ---------------------------------------------------------------------------

function displayName(e) {
  return e.name || e.username || e.id;
}

function initials(e) {
  const parts = displayName(e).trim().split(/\s+/).filter(Boolean);
  const letters = parts.length > 1 ? parts[0][0] + parts[parts.length - 1][0] : displayName(e).slice(0, 2);
  return letters.toLocaleUpperCase();
}

function hue(id) {
  let x = 0;
  for (const ch of id) x = (x * 31 + ch.codePointAt(0)) >>> 0;
  return x % 360;
}

function avatar(e, size = '') {
  return h('span', { class: `avatar ${size}`, style: `--hue:${hue(e.id)}`, 'aria-hidden': 'true' },
    initials(e), h('span', { class: 'dot', 'data-status': e.status }));
}

function ago(at) {
  if (!at) return '';
  const s = Math.max(0, Math.round((Date.now() - at) / 1000));
  if (s < 45) return 'just now';
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  const hr = Math.round(m / 60);
  if (hr < 24) return `${hr} h`;
  return `${Math.round(hr / 24)} d`;
}

function lastSeenText(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 45) return 'last seen just now';
  return `last seen ${ago(ms)} ago`;
}

function untilText(ms) {
  const d = new Date(ms);
  const sameDay = d.toDateString() === new Date().toDateString();
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return sameDay ? time : `${d.toLocaleDateString([], { weekday: 'short' })} ${time}`;
}

/** The `until` for the "Clear after" choice, or undefined for "Don't clear". */
function clearAfter() {
  const choice = $('clear-after').value;
  const now = Date.now();
  if (choice === '30m') return now + 30 * 60000;
  if (choice === '1h') return now + 60 * 60000;
  if (choice === '4h') return now + 4 * 60 * 60000;
  if (choice === 'today') {
    const end = new Date();
    end.setHours(23, 59, 59, 0);
    return end.getTime();
  }
  return undefined;
}

function clock(at) {
  return new Date(at || Date.now()).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

function slug(name) {
  const base = name.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase()
    .replace(/[^a-z0-9_.@-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 48);
  return base || `user-${Math.random().toString(36).slice(2, 8)}`;
}

function storedRooms() {
  try { return JSON.parse(sessionStorage.getItem(ROOMS_KEY) || '[]').filter((r) => typeof r === 'string'); } catch { return []; }
}

function storeRooms(rooms) {
  sessionStorage.setItem(ROOMS_KEY, JSON.stringify([...new Set(rooms)]));
}

let toastTimer = null;
function toast(message, kind = '') {
  const el = $('toast');
  el.textContent = message;
  el.dataset.kind = kind;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 4000);
}

function show(view) {
  for (const id of ['splash', 'signin', 'app']) $(id).hidden = id !== view;
  $('me').hidden = view !== 'app';
}

// -- sign-in ---------------------------------------------------------------------------

function showSignIn(error = '') {
  show('signin');
  setConn('idle', 'Not connected');
  const err = $('signin-error');
  err.textContent = error;
  err.hidden = !error;
  $('dev-form').hidden = !(info && info.dev);
  $('format').value = params.get('proto') || sessionStorage.getItem(FORMAT_KEY) || 'json';
  (info && info.dev ? $('dev-name') : $('token')).focus();
}

async function devSignIn(event) {
  event.preventDefault();
  const name = $('dev-name').value.trim();
  if (!name) {
    showSignIn('Type your name: it cannot be empty or only spaces.');
    $('dev-name').value = '';
    return;
  }
  const button = $('dev-submit');
  button.disabled = true;
  try {
    const res = await fetch('/api/v1/dev.token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ user: slug(name), name }),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok || !body.token) throw new Error(body.error || `the hub answered ${res.status}`);
    start(body.token);
  } catch (err) {
    showSignIn(`Could not sign in: ${err.message}`);
  } finally {
    button.disabled = false;
  }
}

function tokenSignIn(event) {
  event.preventDefault();
  const token = $('token').value.trim();
  if (!token) { showSignIn('Paste a token first.'); return; }
  start(token);
}

function signOut(message = '') {
  // No grace: others see you offline now, not after the hub's reconnect grace.
  if (hub) hub.close({ grace: false });
  hub = null;
  roster = new Map();
  everReady = false;
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(ROOMS_KEY);
  feed.length = 0;
  feedSeen.clear();
  $('banner').hidden = true;
  showSignIn(message);
}

// -- the hub connection ------------------------------------------------------------------

function start(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  const format = params.get('proto') || $('format').value || sessionStorage.getItem(FORMAT_KEY) || 'json';
  sessionStorage.setItem(FORMAT_KEY, format);
  $('token').value = '';
  show('splash');
  $('splash-text').textContent = 'Connecting to the hub…';
  setConn('connecting', 'Connecting…');

  hub = connect({
    token,
    format,
    idleMs: seconds('idle', 300000),
    pingMs: seconds('ping', 25000),
    backoff: { maxMs: seconds('retry', 10000) },
  });
  window.presence = { hub };

  hub.on('ready', onReady);
  hub.on('status', renderMe);
  hub.on('change', onChange);
  hub.on('snapshot', scheduleRender);
  hub.on('reconnecting', onReconnecting);
  hub.on('closed', onClosed);
  hub.on('error', (err) => {
    if (err.closeCode) return; // 'closed' explains it
    if (err.code === 'bad_frame') console.warn(err);
    else toast(err.message, 'error');
  });
  hub.on('activity', renderMe);
  hub.on('state', onState);

  hub.subscribe(ALL).ready.catch((err) => {
    // Closes and outages have their own message (sign-in, banner, connection state).
    if (err.closeCode || err.code === 'closed' || (err.code === 'timeout' && hub && hub.state !== 'ready')) return;
    toast(`Could not load people: ${err.message}`, 'error');
  });
  for (const room of storedRooms()) joinRoom(room, { quiet: true });
}

function onReady() {
  retryAt = 0;
  $('banner').hidden = true;
  setConn('ready', 'Live');
  if (!everReady) {
    everReady = true;
    show('app');
    syncStatusControls(true);
    // The sign-in button that had focus is gone: put focus at the top of the app.
    $('app-title').focus();
  }
  renderMe();
  scheduleRender();
  loadRoster();
}

function onState() {
  renderConn();
  renderMe();
  scheduleRender();
}

/** The registered users (all pages of users.listByStatus, at most 1000), as offline entries. */
async function loadRoster() {
  const current = hub;
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!current || !current.me || !token) return;
  const found = new Map();
  try {
    for (let offset = 0; offset < 1000; offset += 100) {
      const res = await fetch(`/api/v1/users.listByStatus?count=100&offset=${offset}`, {
        headers: { 'X-Auth-Token': token, 'X-User-Id': current.me.id },
        cache: 'no-store',
      });
      if (!res.ok) return;
      const body = await res.json();
      for (const u of body.users || []) {
        if (typeof u._id !== 'string' || u.active === false) continue;
        found.set(u._id, { id: u._id, username: u.username || '', name: u.name || '', status: 'offline', text: '', at: 0 });
      }
      if (!body.users || body.users.length < 100 || offset + 100 >= (body.total || 0)) break;
    }
  } catch {
    return; // the list is a bonus; the live subscription is what counts
  }
  if (hub !== current) return;
  roster = found;
  scheduleRender();
}

function onReconnecting({ delay }) {
  retryAt = Date.now() + delay;
  if (!everReady) {
    show('splash');
    $('splash-text').textContent = 'Cannot reach the hub yet. Retrying…';
  }
  renderConn();
}

function onClosed({ code }) {
  retryAt = 0;
  if (code === 1000) return; // we closed it ourselves (sign out)
  if (code === 4001) {
    const reason = hub && hub.lastClose && hub.lastClose.reason;
    const detail = reason ? ` (${reason})` : '';
    signOut(everReady
      ? `Your session ended: the token expired or is no longer valid${detail}. Sign in again.`
      : `The hub refused this token${detail}. Use a token signed with this hub's HUB_SECRET that has not expired.`);
    return;
  }
  if (code === 4003) {
    setConn('closed', 'Disconnected');
    banner('This account is deactivated. Ask an administrator to reactivate it.', null);
  } else if (code === 4004) {
    setConn('closed', 'Disconnected');
    banner('An administrator disconnected this session.', 'Reconnect');
  } else {
    setConn('closed', 'Disconnected');
  }
}

function banner(text, action) {
  $('banner-text').textContent = text;
  const btn = $('banner-action');
  btn.hidden = !action;
  if (action) btn.textContent = action;
  $('banner').hidden = false;
}

function setConn(state, text) {
  const el = $('conn');
  el.dataset.state = state;
  document.body.dataset.conn = everReady ? state : 'idle';
  document.body.dataset.live = String(state === 'ready');
  $('conn-text').textContent = text;
  $('conn-retry').hidden = state !== 'reconnecting';
}

function renderConn() {
  if (!hub) return;
  if (hub.state === 'reconnecting') {
    const left = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
    setConn('reconnecting', left > 0 ? `Reconnecting in ${left}s…` : 'Reconnecting…');
  } else if (hub.state === 'connecting' || hub.state === 'authenticating') {
    setConn('connecting', everReady ? 'Reconnecting…' : 'Connecting…');
  } else if (hub.state === 'ready') {
    setConn('ready', 'Live');
  }
}

// -- changes and the feed ----------------------------------------------------------------

function onChange(entry, scope, previous, meta) {
  scheduleRender();
  if (meta && meta.source === 'snapshot' && !previous) return; // first load, not news
  const line = describe(entry, scope, previous);
  if (!line) return;
  const key = `${entry.id}|${entry.at}|${scope.room || ''}|${entry.member === false}`;
  if (feedSeen.has(key)) return;
  feedSeen.add(key);
  feed.unshift({ entry, text: line, at: Date.now() });
  if (feed.length > FEED_MAX) feed.length = FEED_MAX;
}

function describe(e, scope, prev) {
  const self = hub && hub.me && e.id === hub.me.id;
  const is = self ? 'are' : 'is';
  const their = self ? 'your' : 'their';
  if (scope.room !== undefined) {
    if (e.member === false) return `left #${scope.room}`;
    if (!prev) return `joined #${scope.room}`;
    return null; // status changes are reported once, from the everyone scope
  }
  if (!scope.all) return null;
  const was = prev ? prev.status : 'offline';
  const quote = e.text ? ` — “${e.text}”` : '';
  if (was !== e.status) {
    if (e.status === 'offline') return self ? 'went invisible' : 'went offline';
    if (was === 'offline') return e.status === 'online' ? `came online${quote}` : `came online as ${e.status}${quote}`;
    return `${is} now ${e.status}${quote}`;
  }
  if (prev && (prev.text || '') !== (e.text || '')) {
    return e.text ? `set ${their} status to “${e.text}”` : `cleared ${their} status text`;
  }
  if (prev && displayName(prev) !== displayName(e)) return `${is} now called ${displayName(e)}`;
  return null;
}

// -- rendering ---------------------------------------------------------------------------

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

function render() {
  if (!hub) return;
  renderPeople();
  renderRooms();
  renderFeed();
  renderMe();
}

/** Everyone: the live entries, then the registered users they do not mention (offline). */
function everyoneKnown() {
  const meId = hub.me && hub.me.id;
  const live = new Map(hub.users(ALL).map((e) => [e.id, e]));
  if (meId && hub.me && (!live.has(meId) || (hub.me.at ?? 0) > (live.get(meId).at ?? 0))) live.set(meId, hub.me);
  const everyone = [...live.values()];
  for (const [id, e] of roster) if (!live.has(id)) everyone.push(e);
  // Not live: you are not shown as online to yourself when others may already see you offline.
  if (hub.state !== 'ready' && meId) return everyone.map((e) => (e.id === meId ? { ...e, status: 'offline', reconnecting: true } : e));
  return everyone;
}

function renderPeople() {
  const meId = hub.me && hub.me.id;
  const everyone = everyoneKnown();
  const counts = countByStatus(everyone);
  for (const [status, n] of Object.entries(counts)) {
    document.querySelector(`[data-count="${status}"]`).textContent = n;
  }
  document.querySelector('[data-count="all"]').textContent = everyone.length;
  for (const chip of document.querySelectorAll('#counts .chip')) {
    chip.setAttribute('aria-pressed', String(chip.dataset.filter === ui.filter));
  }
  const q = ui.query.toLocaleLowerCase();
  const shown = sortEntries(everyone).filter((e) => (ui.filter === 'all' || e.status === ui.filter)
    && (!q || `${displayName(e)} ${e.username || ''} ${e.text || ''}`.toLocaleLowerCase().includes(q)));
  const list = $('people');
  list.replaceChildren(...shown.map((e) => personRow(e, e.id === meId)));
  const empty = $('people-empty');
  empty.hidden = shown.length > 0;
  empty.textContent = everyone.length ? 'No one matches.' : 'No one here yet.';
}

function statusLabelOf(e, isMe) {
  if (isMe && e.reconnecting) return 'Reconnecting…';
  if (isMe && e.status === 'offline') return 'Invisible';
  return LABEL[e.status] || e.status;
}

function personRow(e, isMe) {
  const statusLabel = statusLabelOf(e, isMe);
  const lastSeen = e.status === 'offline' && typeof e.lastSeen === 'number' && e.lastSeen > 0 ? lastSeenText(e.lastSeen) : '';
  const until = e.status !== 'offline' && typeof e.until === 'number' && e.until > Date.now() ? `until ${untilText(e.until)}` : '';
  return h('li', { class: 'person', 'data-user': e.id, 'data-status': e.status, title: `${displayName(e)} — ${statusLabel}` },
    avatar(e),
    h('div', { class: 'who' },
      h('div', { class: 'name-line' },
        h('span', { class: 'name' }, displayName(e)),
        isMe ? h('span', { class: 'tag' }, 'you') : null,
        e.username && e.username !== displayName(e) ? h('span', { class: 'handle' }, `@${e.username}`) : null),
      h('div', { class: 'text', 'data-role': 'text' }, e.text || ''),
      lastSeen ? h('div', { class: 'last-seen', 'data-role': 'last-seen' }, lastSeen) : null),
    h('div', { class: 'state' },
      h('span', { class: 'state-label', 'data-role': 'status' }, statusLabel),
      until ? h('span', { class: 'since', 'data-role': 'until' }, until)
        : h('span', { class: 'since' }, lastSeen || !e.at ? '' : ago(e.at))));
}

function renderRooms() {
  const rooms = storedRooms();
  const wrap = $('rooms');
  wrap.replaceChildren(...rooms.map((room) => {
    const members = sortEntries(hub.users({ room }));
    const here = members.filter((m) => m.status !== 'offline').length;
    const synced = hub.map({ room }) && hub.map({ room }).synced;
    return h('section', { class: 'room', 'data-room': room },
      h('div', { class: 'room-head' },
        h('span', { class: 'room-name' }, h('span', { class: 'hash' }, '#'), room),
        h('span', { class: 'room-count' }, synced ? `${here} of ${members.length} here` : 'Joining…'),
        h('button', { type: 'button', class: 'btn btn-ghost btn-sm', onclick: () => leaveRoom(room) }, 'Leave')),
      h('ul', { class: 'members' }, members.map((m) => h('li', { class: 'member', 'data-user': m.id, 'data-status': m.status, title: `${displayName(m)}: ${LABEL[m.status] || m.status}` },
        avatar(m, 'avatar-sm'), h('span', { class: 'member-name' }, displayName(m))))));
  }));
  $('rooms-empty').hidden = rooms.length > 0;
}

function renderFeed() {
  const list = $('feed');
  list.replaceChildren(...feed.map((item) => h('li', { class: 'feed-item', 'data-user': item.entry.id },
    h('span', { class: 'dot', 'data-status': item.entry.member === false ? 'offline' : item.entry.status }),
    h('span', { class: 'feed-text' },
      h('b', {}, item.entry.id === (hub.me && hub.me.id) ? 'You' : displayName(item.entry)), ' ', item.text),
    h('time', { class: 'feed-time' }, clock(item.at)))));
  $('feed-empty').hidden = feed.length > 0;
}

function renderMe() {
  if (!hub || !hub.me) return;
  const live = hub.state === 'ready';
  const me = live ? hub.me : { ...hub.me, status: 'offline' };
  $('me-name').textContent = displayName(me);
  const av = $('me-avatar');
  av.replaceWith(Object.assign(avatar(me, 'avatar-sm'), { id: 'me-avatar' }));
  let text = `Others see you ${me.status}`;
  if (!live) text = hub.state === 'closed' ? 'Disconnected — others see you offline' : 'Reconnecting — others may see you offline';
  else if (me.status === 'offline') text = 'Invisible — others see you offline';
  else if (me.status === 'away' && hub.chosen === 'online') text = 'Away while idle';
  $('appear').dataset.status = me.status;
  $('appear-text').textContent = text;
  // Status changes need the hub: no "Saving…" that cannot succeed.
  $('status-fieldset').disabled = !live;
  const until = $('status-until');
  const u = live && typeof hub.me.until === 'number' && hub.me.until > Date.now() ? hub.me.until : 0;
  until.hidden = !u;
  until.textContent = u ? `Clears at ${untilText(u)}` : '';
  syncStatusControls(false);
}

let textDirty = false;
/** A status picked with the arrow keys, not committed yet (Enter or Space commits). */
let pendingKey = null;
let pointerPick = false;

function syncStatusControls(force) {
  if (!hub) return;
  const chosen = hub.chosen || 'online';
  if (force || pendingKey === null) {
    for (const input of document.querySelectorAll('input[name="status"]')) input.checked = input.value === chosen;
  }
  const hint = {
    online: 'Automatic: you show as away when idle or when this tab is hidden.',
    away: 'You show as away until you change it.',
    busy: 'You show as busy: people know not to disturb you.',
    offline: 'Invisible: you show as offline but still see everyone.',
  }[chosen];
  $('status-hint').textContent = hub.state === 'ready' ? hint : 'You can change your status once the page is live again.';
  const input = $('status-text');
  if ((force || (!textDirty && document.activeElement !== input)) && hub.me) input.value = hub.me.text || '';
}

async function chooseStatus(status) {
  const state = $('save-state');
  state.textContent = 'Saving…';
  state.dataset.kind = '';
  try {
    await hub.setStatus({ status, until: clearAfter() });
    state.textContent = `Saved — ${status === 'offline' ? 'invisible' : status}`;
    state.dataset.kind = 'ok';
  } catch (err) {
    state.textContent = `Not saved: ${err.message}`;
    state.dataset.kind = 'error';
  }
  syncStatusControls(false);
}

async function saveText(event) {
  event.preventDefault();
  const text = $('status-text').value.trim();
  const state = $('save-state');
  state.textContent = 'Saving…';
  state.dataset.kind = '';
  try {
    await hub.setStatus({ text, until: text ? clearAfter() : undefined });
    textDirty = false;
    state.textContent = text ? 'Status text saved' : 'Status text cleared';
    state.dataset.kind = 'ok';
  } catch (err) {
    state.textContent = `Not saved: ${err.message}`;
    state.dataset.kind = 'error';
  }
}

// -- rooms -------------------------------------------------------------------------------

async function joinRoom(room, { quiet = false } = {}) {
  storeRooms([...storedRooms(), room]);
  scheduleRender();
  try {
    await hub.join(room);
    await hub.subscribe({ room }).ready;
    if (!quiet) toast(`Joined #${room}`);
  } catch (err) {
    storeRooms(storedRooms().filter((r) => r !== room));
    toast(`Could not join #${room}: ${err.message}`, 'error');
  }
  scheduleRender();
}

async function leaveRoom(room) {
  storeRooms(storedRooms().filter((r) => r !== room));
  scheduleRender();
  const [, left] = await Promise.allSettled([hub.unsubscribe({ room }), hub.leave(room)]);
  if (left.status === 'rejected') toast(`Could not leave #${room}: ${left.reason.message}`, 'error');
  scheduleRender();
}

// -- wiring ------------------------------------------------------------------------------

function renderFooter() {
  const parts = ['Presence Hub'];
  if (info) {
    if (info.version) parts.push(`v${info.version}`);
    if (info.dev) parts.push('development keys');
    if (info.window) parts.push(`resume window ${Math.round(info.window / 60)} min`);
  }
  $('footer').textContent = parts.join(' · ');
}

function wire() {
  $('dev-form').addEventListener('submit', devSignIn);
  $('token-form').addEventListener('submit', tokenSignIn);
  $('signout').addEventListener('click', () => signOut());
  $('conn-retry').addEventListener('click', () => hub && hub.reconnect());
  $('banner-action').addEventListener('click', () => {
    $('banner').hidden = true;
    if (hub) hub.reconnect();
  });
  $('search').addEventListener('input', (e) => { ui.query = e.target.value; scheduleRender(); });
  $('counts').addEventListener('click', (e) => {
    const chip = e.target.closest('.chip');
    if (!chip) return;
    ui.filter = chip.dataset.filter === ui.filter ? 'all' : chip.dataset.filter;
    scheduleRender();
  });
  // A click commits at once; arrow keys only move the selection (each step would otherwise
  // be broadcast to everyone): Enter or Space commits, leaving the group puts it back.
  const choice = $('status-choice');
  choice.addEventListener('pointerdown', () => { pointerPick = true; });
  choice.addEventListener('change', (e) => {
    if (e.target.name !== 'status') return;
    if (pointerPick) {
      pointerPick = false;
      pendingKey = null;
      chooseStatus(e.target.value);
      return;
    }
    pendingKey = e.target.value;
    $('save-state').textContent = `Press Enter to set ${e.target.value === 'offline' ? 'invisible' : e.target.value}`;
    $('save-state').dataset.kind = '';
  });
  choice.addEventListener('keydown', (e) => {
    pointerPick = false;
    if (e.key !== 'Enter' && e.key !== ' ') return;
    const checked = choice.querySelector('input[name="status"]:checked');
    if (!checked) return;
    e.preventDefault();
    pendingKey = null;
    if (checked.value !== (hub && hub.chosen)) chooseStatus(checked.value);
  });
  choice.addEventListener('focusout', (e) => {
    if (choice.contains(e.relatedTarget) || pendingKey === null) return;
    pendingKey = null;
    $('save-state').textContent = '';
    syncStatusControls(false);
  });
  $('status-text').addEventListener('input', () => { textDirty = true; });
  $('text-form').addEventListener('submit', saveText);
  $('join-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const room = $('room-name').value.trim();
    if (!room) return;
    $('room-name').value = '';
    if (!storedRooms().includes(room)) joinRoom(room);
  });
  // Relative times and the reconnect countdown.
  setInterval(() => { if (hub && hub.state === 'reconnecting') renderConn(); }, 500);
  setInterval(scheduleRender, 30000);
}

async function boot() {
  wire();
  try {
    const res = await fetch('/api/v1/hub.info', { cache: 'no-store' });
    info = res.ok ? await res.json() : null;
  } catch {
    info = null;
  }
  renderFooter();
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) start(token);
  else showSignIn();
}

boot();
