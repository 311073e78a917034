// hub.js against a scripted fake socket: handshake, subscriptions, acks, reconnect and
// resume by cursor, close codes, ping deadline, idle reporting, both codecs.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, mock, test } from 'node:test';

import { defaultUrl, Hub, HubTimeoutError, SIGN_OUT_CODE } from '../../hub/static/hub.js';
import { decodeFrame, encodeFrame } from '../../hub/static/protocol.js';

class FakeSocket {
  static all = [];

  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.sent = [];
    this.binaryType = 'blob';
    FakeSocket.all.push(this);
  }

  send(data) {
    if (this.readyState !== 1) throw new Error('send on a socket that is not open');
    this.sent.push({ raw: data, frame: decodeFrame(data) });
  }

  close(code, reason) {
    this.readyState = 3;
    this.closedWith = { code, reason };
  }

  // -- the server's side --
  open() {
    this.readyState = 1;
    this.protocol = this.protocols[0];
    this.onopen?.({});
  }

  push(frame) {
    this.onmessage?.({ data: encodeFrame(frame, this.protocol) });
  }

  drop(code, reason = '') {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  frames(op) {
    return this.sent.map((s) => s.frame).filter((f) => !op || f.op === op);
  }

  last(op) {
    const f = this.frames(op);
    return f[f.length - 1];
  }
}

const flush = () => new Promise((resolve) => setImmediate(resolve));
const me = { id: 'ann', username: 'ann', name: 'Ann', status: 'online', text: '', at: 100 };
const bob = (status, at, text = '') => ({ id: 'bob', username: 'bob', name: 'Bob', status, text, at });

function makeHub(options = {}) {
  return new Hub({
    token: 'T0K',
    url: 'ws://hub.test/ws',
    WebSocket: FakeSocket,
    trackActivity: false,
    idleMs: 0,
    backoff: { baseMs: 1000, maxMs: 8000 },
    ...options,
  });
}

/** Connect, open, answer hello with ready; returns the socket. */
async function handshake(hub, user = me, cursor = 1000) {
  hub.connect();
  const ws = FakeSocket.all.at(-1);
  ws.open();
  await flush();
  assert.deepEqual(ws.last('hello'), { op: 'hello', token: 'T0K' });
  ws.push({ op: 'ready', conn: `c${FakeSocket.all.length}`, user, cursor, window: 600 });
  return ws;
}

function events(hub, names) {
  const log = [];
  for (const n of names) hub.on(n, (...args) => log.push([n, ...args]));
  return log;
}

beforeEach(() => {
  FakeSocket.all = [];
  mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] });
});

afterEach(() => {
  mock.timers.reset();
});

test('hello first, then ready gives own status; subscribe resolves on the snapshot', async () => {
  const hub = makeHub();
  const log = events(hub, ['open', 'ready', 'status', 'snapshot', 'change']);
  const ws = await handshake(hub);
  assert.equal(ws.url, 'ws://hub.test/ws');
  assert.deepEqual(ws.protocols, ['hub.v1.json']);
  assert.equal(ws.sent[0].frame.op, 'hello');
  assert.equal(hub.state, 'ready');
  assert.equal(hub.me.status, 'online');
  assert.equal(hub.chosen, 'online');
  assert.deepEqual(log.map((e) => e[0]), ['open', 'ready', 'status']);
  // the client watches its own user so 'status' stays current
  assert.deepEqual(ws.last('sub').users, ['ann']);

  const p = hub.subscribe({ all: true });
  const sub = ws.last('sub');
  assert.equal(sub.all, true);
  assert.equal(sub.since, undefined);
  assert.notEqual(sub.ref, undefined);
  ws.push({ op: 'ack', ref: sub.ref });
  ws.push({ op: 'snapshot', scope: { all: true }, full: true, users: [me, bob('busy', 90, 'call')], cursor: 1001 });
  const users = await p.ready;
  assert.deepEqual(users.map((u) => u.id).sort(), ['ann', 'bob']);
  assert.equal(hub.presence('bob').text, 'call');
  assert.ok(log.some((e) => e[0] === 'snapshot' && e[3] === true));

  ws.push({ op: 'delta', scope: { all: true }, users: [bob('away', 95)], cursor: 1002 });
  const change = log.filter((e) => e[0] === 'change').at(-1);
  assert.equal(change[1].status, 'away');
  assert.deepEqual(change[2], { all: true });
  // a late, older entry does not move bob back
  ws.push({ op: 'delta', scope: { all: true }, users: [bob('online', 91)], cursor: 1003 });
  assert.equal(hub.presence('bob').status, 'away');
  assert.equal(hub.map({ all: true }).cursor, 1003);
  assert.deepEqual(hub.scopes(), [{ all: true }]);
  hub.close();
});

test('setStatus resolves on the ack for its ref and rejects on an error with it', async () => {
  const hub = makeHub();
  const ws = await handshake(hub);
  const ok = hub.setStatus('busy', 'Focus');
  const frame = ws.last('status');
  assert.deepEqual({ ...frame, ref: undefined }, { op: 'status', status: 'busy', text: 'Focus', ref: undefined });
  assert.equal(hub.chosen, 'busy');
  ws.push({ op: 'ack', ref: 999 }); // someone else's ref: nothing happens
  ws.push({ op: 'ack', ref: frame.ref });
  assert.equal((await ok).ref, frame.ref);

  const bad = hub.setStatus('away', 'x'.repeat(200));
  const ref = ws.last('status').ref;
  ws.push({ op: 'error', code: 'bad_field', message: 'text must be at most 120 characters', ref });
  await assert.rejects(bad, (err) => err.code === 'bad_field' && err.ref === ref);
  assert.equal(hub.chosen, 'busy', 'a refused change does not stick');

  await assert.rejects(hub.setStatus('sleeping'), /status must be one of/);
  await assert.rejects(hub.setStatus(), /needs a status/);
  const textOnly = hub.setStatus(undefined, '');
  assert.deepEqual(ws.last('status').text, '');
  assert.equal(ws.last('status').status, undefined);
  ws.push({ op: 'ack', ref: ws.last('status').ref });
  await textOnly;
  hub.close();
});

test('own presence follows newer entries about this user', async () => {
  const hub = makeHub();
  const statuses = [];
  hub.on('status', (e) => statuses.push(`${e.status}@${e.at}`));
  const ws = await handshake(hub);
  ws.push({ op: 'snapshot', scope: { users: ['ann'] }, full: true, users: [me], cursor: 1001 });
  ws.push({ op: 'delta', scope: { users: ['ann'] }, users: [{ ...me, status: 'away', at: 120 }], cursor: 1002 });
  assert.deepEqual(statuses, ['online@100', 'away@120']);
  assert.equal(hub.presence('ann').status, 'away');
  hub.close();
});

test('a lost socket reconnects with backoff and resumes each subscription by cursor', async () => {
  const hub = makeHub();
  const log = events(hub, ['close', 'reconnecting', 'ready']);
  let ws = await handshake(hub);
  hub.subscribe({ all: true });
  ws.push({ op: 'snapshot', scope: { all: true }, full: true, users: [me, bob('online', 90)], cursor: 1500 });
  ws.push({ op: 'delta', scope: { all: true }, users: [bob('busy', 95)], cursor: 1600 });
  hub.join('ops');
  ws.push({ op: 'ack', ref: ws.last('join').ref });
  await flush();

  ws.drop(1006);
  const rec = log.find((e) => e[0] === 'reconnecting')[1];
  assert.equal(rec.attempt, 1);
  assert.ok(rec.delay >= 500 && rec.delay <= 1000, `first delay ${rec.delay}`);
  assert.ok(log.find((e) => e[0] === 'close')[1].willReconnect);
  assert.equal(hub.state, 'reconnecting');

  // a status change while disconnected waits for the next connection
  const pending = hub.setStatus('away');
  mock.timers.tick(rec.delay);
  assert.equal(FakeSocket.all.length, 2);
  ws = FakeSocket.all[1];
  // the next attempt fails too: the delay grows
  ws.drop(1006);
  const rec2 = log.filter((e) => e[0] === 'reconnecting')[1][1];
  assert.equal(rec2.attempt, 2);
  assert.ok(rec2.delay >= 1000 && rec2.delay <= 2000, `second delay ${rec2.delay}`);
  mock.timers.tick(rec2.delay);
  ws = FakeSocket.all[2];
  ws.open();
  await flush();
  ws.push({ op: 'ready', conn: 'c3', user: me, cursor: 2000, window: 600 });
  assert.ok(log.filter((e) => e[0] === 'ready').at(-1)[1].resumed);
  assert.equal(hub.attempt, 0, 'a successful connection resets the backoff');

  const subs = ws.frames('sub');
  const all = subs.find((f) => f.all);
  assert.equal(all.since, 1600, 'resume from the last cursor seen on that scope');
  assert.equal(ws.last('join').room, 'ops', 'rooms are joined again');
  const status = ws.last('status');
  assert.equal(status.status, 'away');
  ws.push({ op: 'ack', ref: status.ref });
  await pending;

  // the hub answers the resume with what changed (full: false)
  ws.push({ op: 'snapshot', scope: { all: true }, full: false, users: [bob('offline', 140)], cursor: 2001 });
  assert.equal(hub.presence('bob').status, 'offline');
  assert.equal(hub.presence('ann').status, 'online', 'users left out of a delta keep their state');
  hub.close();
});

test('a full snapshot on resume marks missing users offline', async () => {
  const hub = makeHub();
  let ws = await handshake(hub);
  hub.subscribe({ all: true });
  ws.push({ op: 'snapshot', scope: { all: true }, full: true, users: [me, bob('online', 90)], cursor: 1500 });
  ws.drop(1001);
  mock.timers.tick(1000);
  ws = FakeSocket.all[1];
  ws.open();
  await flush();
  ws.push({ op: 'ready', conn: 'c2', user: me, cursor: 999999, window: 600 });
  assert.equal(ws.frames('sub').find((f) => f.all).since, 1500);
  const changes = [];
  hub.on('change', (e) => changes.push(`${e.id}:${e.status}`));
  ws.push({ op: 'snapshot', scope: { all: true }, full: true, users: [me], cursor: 999999 });
  assert.deepEqual(changes, ['bob:offline']);
  hub.close();
});

test('1012 (node restarting) reconnects promptly', async () => {
  const hub = makeHub({ backoff: { baseMs: 10000, maxMs: 60000, promptMs: 250 } });
  const ws = await handshake(hub);
  let delay;
  hub.on('reconnecting', (r) => { delay = r.delay; });
  ws.drop(1012, 'restarting');
  assert.ok(delay <= 250, `delay ${delay}`);
  mock.timers.tick(250);
  assert.equal(FakeSocket.all.length, 2);
  hub.close();
});

for (const [code, reason] of [[4001, 'not_authenticated'], [4003, 'deactivated'], [4004, 'disconnected']]) {
  test(`close ${code} does not reconnect and says why`, async () => {
    const hub = makeHub();
    const log = events(hub, ['close', 'error', 'closed', 'reconnecting']);
    const ws = await handshake(hub);
    const pending = hub.setStatus('busy');
    ws.drop(code, 'bye');
    await assert.rejects(pending, (err) => err.code === reason && err.closeCode === code);
    assert.equal(hub.state, 'closed');
    assert.deepEqual(log.map((e) => e[0]), ['close', 'error', 'closed']);
    assert.equal(log[0][1].willReconnect, false);
    assert.equal(log[1][1].closeCode, code);
    assert.equal(log[2][1].reason, reason);
    mock.timers.tick(120000);
    assert.equal(FakeSocket.all.length, 1);
    await assert.rejects(hub.setStatus('online'), /closed/);
    // an explicit reconnect() (e.g. with a fresh token) is still possible
    hub.setToken('NEW');
    hub.reconnect();
    assert.equal(FakeSocket.all.length, 2);
    FakeSocket.all[1].open();
    await flush();
    assert.equal(FakeSocket.all[1].last('hello').token, 'NEW');
    hub.close();
  });
}

test('4001 during the handshake (bad token) stops too', async () => {
  const hub = makeHub();
  hub.connect();
  const ws = FakeSocket.all[0];
  ws.open();
  await flush();
  ws.drop(4001, 'token expired');
  assert.equal(hub.state, 'closed');
  mock.timers.tick(60000);
  assert.equal(FakeSocket.all.length, 1);
});

test('pings periodically; a missing pong kills the socket and reconnects', async () => {
  const hub = makeHub({ pingMs: 1000, pongTimeoutMs: 500 });
  const ws = await handshake(hub);
  mock.timers.tick(1000);
  assert.equal(ws.frames('ping').length, 1);
  ws.push({ op: 'pong' });
  mock.timers.tick(600);
  assert.equal(hub.state, 'ready', 'answered in time');
  mock.timers.tick(400); // second ping
  assert.equal(ws.frames('ping').length, 2);
  let reconnecting = null;
  hub.on('reconnecting', (r) => { reconnecting = r; });
  mock.timers.tick(500); // no pong
  assert.equal(hub.state, 'reconnecting');
  assert.ok(ws.closedWith, 'the dead socket was closed');
  assert.equal(reconnecting.code, 1006);
  hub.close();
});

test('the server pinging gets a pong', async () => {
  const hub = makeHub();
  const ws = await handshake(hub);
  ws.push({ op: 'ping' });
  assert.equal(ws.last().op, 'pong');
  hub.close();
});

test('a socket that never opens is given up after connectTimeoutMs', async () => {
  const hub = makeHub({ connectTimeoutMs: 3000 });
  hub.connect();
  mock.timers.tick(2999);
  assert.equal(hub.state, 'connecting');
  mock.timers.tick(1);
  assert.equal(hub.state, 'reconnecting');
  hub.close();
});

test('idle state is reported, and re-reported after a reconnect', async () => {
  const hub = makeHub({ idleMs: 0 });
  let ws = await handshake(hub);
  hub.idle.setHidden(true);
  assert.equal(ws.frames('activity').length, 0, 'not at once: a closing tab is hidden first');
  mock.timers.tick(2000);
  assert.deepEqual(ws.last('activity'), { op: 'activity', state: 'away' });
  hub.idle.setHidden(false);
  assert.deepEqual(ws.last('activity'), { op: 'activity', state: 'online' });
  hub.setActivity('away');
  ws.drop(1006);
  mock.timers.tick(1000);
  ws = FakeSocket.all[1];
  ws.open();
  await flush();
  ws.push({ op: 'ready', conn: 'c2', user: me, cursor: 2000, window: 600 });
  assert.deepEqual(ws.last('activity'), { op: 'activity', state: 'away' });
  hub.close();
});

test('idle detection with a real timer reports away after idleMs', async () => {
  const hub = makeHub({ idleMs: 5000 });
  const ws = await handshake(hub);
  mock.timers.tick(4999);
  assert.equal(ws.frames('activity').length, 0);
  mock.timers.tick(1);
  assert.deepEqual(ws.last('activity'), { op: 'activity', state: 'away' });
  hub.idle.input();
  assert.deepEqual(ws.last('activity'), { op: 'activity', state: 'online' });
  hub.close();
});

test('msgpack: binary frames both ways', async () => {
  const hub = makeHub({ format: 'msgpack' });
  hub.connect();
  const ws = FakeSocket.all[0];
  assert.deepEqual(ws.protocols, ['hub.v1.msgpack']);
  assert.equal(ws.binaryType, 'arraybuffer');
  ws.open();
  await flush();
  assert.ok(ws.sent[0].raw instanceof Uint8Array);
  ws.push({ op: 'ready', conn: 'c1', user: me, cursor: 1712345678901, window: 600 });
  assert.equal(hub.state, 'ready');
  const p = hub.subscribe({ room: 'ops' });
  ws.push({ op: 'snapshot', scope: { room: 'ops' }, full: true, users: [bob('online', 1712345678000)], cursor: 1712345678902 });
  assert.equal((await p.ready)[0].at, 1712345678000);
  hub.close();
});

test('join and leave resolve on ack; a refused subscription rejects', async () => {
  const hub = makeHub();
  const ws = await handshake(hub);
  const joined = hub.join('design');
  ws.push({ op: 'ack', ref: ws.last('join').ref });
  await joined;
  assert.ok(hub.rooms.has('design'));
  const left = hub.leave('design');
  ws.push({ op: 'ack', ref: ws.last('leave').ref });
  await left;
  assert.ok(!hub.rooms.has('design'));

  const sub = hub.subscribe({ room: 'secret' });
  ws.push({ op: 'error', code: 'forbidden', message: 'not a member', ref: ws.last('sub').ref });
  await assert.rejects(sub.ready, (err) => err.code === 'forbidden');
  assert.equal(sub.closed, true);
  assert.equal(hub.map({ room: 'secret' }), null);

  // an error without a ref becomes an 'error' event and the socket stays
  let seen;
  hub.on('error', (e) => { seen = e; });
  ws.push({ op: 'error', code: 'unavailable', message: 'store down' });
  assert.equal(seen.code, 'unavailable');
  assert.equal(hub.state, 'ready');
  hub.close();
});

test('room deltas with member: false remove the member and emit a change', async () => {
  const hub = makeHub();
  const ws = await handshake(hub);
  hub.subscribe({ room: 'ops' });
  ws.push({ op: 'snapshot', scope: { room: 'ops' }, full: true, users: [bob('online', 90)], cursor: 1 });
  const changes = [];
  hub.on('change', (e, scope) => changes.push([e.id, e.member, scope.room]));
  ws.push({ op: 'delta', scope: { room: 'ops' }, users: [{ ...bob('online', 90), member: false }], cursor: 2 });
  assert.deepEqual(changes, [['bob', false, 'ops']]);
  assert.deepEqual(hub.users({ room: 'ops' }), []);
  hub.close();
});

test('requests time out when never answered; garbage frames do not break the client', async () => {
  const hub = makeHub({ requestTimeoutMs: 2000 });
  const ws = await handshake(hub);
  const errors = [];
  hub.on('error', (e) => errors.push(e.code));
  ws.onmessage({ data: '{not json' });
  ws.onmessage({ data: '[1,2]' });
  assert.deepEqual(errors, ['bad_frame', 'bad_frame']);
  ws.push({ op: 'future_op' });
  const p = hub.setStatus('busy');
  mock.timers.tick(2000);
  await assert.rejects(p, /no answer to status/);
  hub.close();
});

test('close() is final and quiet', async () => {
  const hub = makeHub();
  const ws = await handshake(hub);
  const log = events(hub, ['close', 'closed', 'reconnecting']);
  hub.close();
  assert.equal(ws.closedWith.code, 1000);
  assert.deepEqual(log.map((e) => e[0]), ['close', 'closed']);
  mock.timers.tick(100000);
  assert.equal(FakeSocket.all.length, 1);
});

test('a token function is called for each connection', async () => {
  let n = 0;
  const hub = makeHub({ token: async () => `T${++n}` });
  hub.connect();
  FakeSocket.all[0].open();
  await flush();
  assert.equal(FakeSocket.all[0].last('hello').token, 'T1');
  FakeSocket.all[0].drop(1006);
  mock.timers.tick(1000);
  FakeSocket.all[1].open();
  await flush();
  assert.equal(FakeSocket.all[1].last('hello').token, 'T2');
  hub.close();
});

test('a subscription: sync once per frame, join/leave/update, list/get/count', async () => {
  const hub = makeHub();
  const ws = await handshake(hub);
  const sub = hub.subscribe({ room: 'design' });
  const log = [];
  sub.on('sync', (list) => log.push(['sync', list.map((u) => `${u.id}:${u.status}`).join(',')]));
  sub.on('join', (u) => log.push(['join', u.id]));
  sub.on('leave', (u) => log.push(['leave', u.id]));
  sub.on('update', (u, prev) => log.push(['update', u.id, `${prev.status}->${u.status}`]));
  const carol = { id: 'carol', name: 'Carol', status: 'online', text: '', at: 80 };
  ws.push({ op: 'snapshot', scope: { room: 'design' }, full: true, users: [me, bob('busy', 90)], cursor: 100 });
  const first = await sub.ready;
  assert.deepEqual(first.map((u) => u.id), ['ann', 'bob']);
  // the first snapshot is not news: only a sync
  assert.deepEqual(log, [['sync', 'ann:online,bob:busy']]);
  log.length = 0;
  // one delta with three changes: three events, then one sync
  ws.push({ op: 'delta', scope: { room: 'design' }, users: [carol, bob('away', 101), { ...me, status: 'offline', at: 102 }], cursor: 102 });
  assert.deepEqual(log, [
    ['join', 'carol'], ['update', 'bob', 'busy->away'], ['leave', 'ann'],
    ['sync', 'carol:online,bob:away,ann:offline'],
  ]);
  assert.equal(sub.count(), 2);
  assert.equal(sub.count('away'), 1);
  assert.deepEqual(sub.counts(), { online: 1, away: 1, busy: 0, offline: 1 });
  // offline is known, an id never mentioned is unknown
  assert.equal(sub.get('ann').status, 'offline');
  assert.equal(sub.get('zed'), undefined);
  assert.equal(sub.has('zed'), false);
  log.length = 0;
  ws.push({ op: 'delta', scope: { room: 'design' }, users: [{ ...carol, at: 103, member: false }], cursor: 103 });
  assert.deepEqual(log, [['leave', 'carol'], ['sync', 'bob:away,ann:offline']]);
  // a late duplicate applies nothing: no sync
  log.length = 0;
  ws.push({ op: 'delta', scope: { room: 'design' }, users: [bob('online', 95)], cursor: 104 });
  assert.deepEqual(log, []);
  // a second subscription to the scope shares the wire subscription and is ready at once
  const subs = ws.frames('sub').length;
  const again = hub.subscribe({ room: 'design' });
  assert.deepEqual((await again.ready).map((u) => u.id), ['bob', 'ann']);
  assert.equal(ws.frames('sub').length, subs);
  await sub.unsubscribe();
  assert.equal(ws.frames('unsub').length, 0, 'the other subscription still needs it');
  const done = again.unsubscribe();
  const unsub = ws.last('unsub');
  assert.equal(unsub.room, 'design');
  ws.push({ op: 'ack', ref: unsub.ref });
  await done;
  assert.equal(hub.map({ room: 'design' }), null);
  hub.close();
});

test('a subscription while the hub is unreachable rejects ready within the timeout', async () => {
  const hub = makeHub({ requestTimeoutMs: 3000 });
  hub.connect();
  const sub = hub.subscribe({ all: true });
  const status = hub.setStatus({ status: 'busy' });
  FakeSocket.all[0].drop(1006); // never opened: reconnecting
  assert.equal(hub.state, 'reconnecting');
  mock.timers.tick(3000);
  await assert.rejects(sub.ready, (err) => err instanceof HubTimeoutError && err.code === 'timeout' && /unreachable/.test(err.message));
  await assert.rejects(status, (err) => err instanceof HubTimeoutError && /unreachable/.test(err.message));
  // the subscription goes on: once the hub is back it syncs
  mock.timers.tick(8000);
  const ws = FakeSocket.all.at(-1);
  ws.open();
  await flush();
  ws.push({ op: 'ready', conn: 'c9', user: me, cursor: 10, window: 600 });
  const seen = [];
  sub.on('sync', (list) => seen.push(list.length));
  ws.push({ op: 'snapshot', scope: { all: true }, full: true, users: [me], cursor: 11 });
  assert.deepEqual(seen, [1]);
  hub.close();
  const late = hub.subscribe({ all: true });
  await assert.rejects(late.ready, (err) => err.code === 'closed');
});

test('setStatus({status, text, until}) sends until in ms; bad until is refused', async () => {
  const hub = makeHub();
  const ws = await handshake(hub);
  const until = new Date(1893456000000);
  const p = hub.setStatus({ status: 'busy', text: 'Focus', until });
  assert.deepEqual(ws.last('status'), { op: 'status', status: 'busy', text: 'Focus', until: 1893456000000, ref: ws.last('status').ref });
  ws.push({ op: 'ack', ref: ws.last('status').ref });
  await p;
  assert.equal(hub.chosen, 'busy');
  await assert.rejects(hub.setStatus({ status: 'away', until: 'soon' }), /until must be/);
  await assert.rejects(hub.setStatus({ until: 5 }), /needs a status/);
  hub.close();
});

test('close({grace: false}) tells the hub to skip the offline grace', async () => {
  const hub = makeHub();
  const ws = await handshake(hub);
  hub.close({ grace: false });
  assert.deepEqual(ws.closedWith, { code: SIGN_OUT_CODE, reason: 'signed out' });
});

test('the hub URL: given as http(s) or ws(s), or taken from the module URL', () => {
  assert.equal(makeHub({ url: 'https://hub.example' }).url, 'wss://hub.example/ws');
  assert.equal(makeHub({ url: 'http://hub.example:8000/presence/' }).url, 'ws://hub.example:8000/presence/ws');
  assert.equal(makeHub({ url: 'ws://x.test/ws' }).url, 'ws://x.test/ws');
  assert.equal(defaultUrl('https://hub.example/static/hub.js'), 'wss://hub.example/ws');
  assert.equal(defaultUrl('http://h.test:81/p/static/hub.js'), 'ws://h.test:81/p/ws');
  // a bundle somewhere else: the page's origin, or nothing outside a page
  assert.equal(defaultUrl('https://app.example/assets/app.js', { protocol: 'https:', href: 'https://app.example/x' }), 'wss://app.example/ws');
  assert.equal(defaultUrl('file:///x/hub.js', undefined), null);
  assert.throws(() => new Hub({ token: 't', WebSocket: FakeSocket }), /needs a url/);
});

test('focus, becoming visible and coming back online retry at once instead of waiting', async () => {
  const win = new EventTarget();
  const doc = new EventTarget();
  doc.visibilityState = 'visible';
  globalThis.window = win;
  globalThis.document = doc;
  try {
    const hub = makeHub({ trackActivity: true, backoff: { baseMs: 8000, maxMs: 10000 } });
    await handshake(hub);
    for (const [target, event] of [[win, 'focus'], [doc, 'visibilitychange'], [win, 'online']]) {
      const before = FakeSocket.all.length;
      FakeSocket.all.at(-1).drop(1006);
      assert.equal(hub.state, 'reconnecting');
      target.dispatchEvent(new Event(event));
      assert.equal(FakeSocket.all.length, before + 1, `${event} opened a socket at once`);
      assert.equal(hub.state, 'connecting');
      FakeSocket.all.at(-1).open();
      await flush();
      FakeSocket.all.at(-1).push({ op: 'ready', conn: 'cx', user: me, cursor: 5, window: 600 });
      assert.equal(hub.state, 'ready');
    }
    // while live, the events change nothing
    const count = FakeSocket.all.length;
    win.dispatchEvent(new Event('focus'));
    assert.equal(FakeSocket.all.length, count);
    hub.close();
  } finally {
    delete globalThis.window;
    delete globalThis.document;
  }
});

test('the chosen status follows own entries changed elsewhere (another tab, an expired until)', async () => {
  const hub = makeHub();
  const ws = await handshake(hub);
  const selfSub = ws.last('sub');
  ws.push({ op: 'snapshot', scope: { users: ['ann'] }, full: true, users: [me], cursor: 1001 });
  ws.push({ op: 'delta', scope: { users: ['ann'] }, users: [{ ...me, status: 'busy', at: 200, until: 5000 }], cursor: 1002 });
  assert.equal(selfSub.users[0], 'ann');
  assert.equal(hub.chosen, 'busy');
  assert.equal(hub.me.until, 5000);
  ws.push({ op: 'delta', scope: { users: ['ann'] }, users: [{ ...me, status: 'online', text: '', at: 300 }], cursor: 1003 });
  assert.equal(hub.chosen, 'online');
  // away can be idleness: the chosen status stays
  ws.push({ op: 'delta', scope: { users: ['ann'] }, users: [{ ...me, status: 'away', at: 400 }], cursor: 1004 });
  assert.equal(hub.chosen, 'online');
  hub.close();
});
