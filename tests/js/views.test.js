// hub.js counts, member windows and long watchlists against a scripted fake socket, and
// the pure MemberWindow / unknown-id rules of state.js.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, mock, test } from 'node:test';

import { Hub } from '../../hub/static/hub.js';
import { applyOps, MemberWindow, PresenceMap } from '../../hub/static/state.js';
import { decodeFrame, encodeFrame } from '../../hub/static/protocol.js';

class FakeSocket {
  static all = [];

  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.sent = [];
    FakeSocket.all.push(this);
  }

  send(data) { this.sent.push(decodeFrame(data)); }

  close() { this.readyState = 3; }

  open() {
    this.readyState = 1;
    this.protocol = this.protocols[0];
    this.onopen?.({});
  }

  push(frame) { this.onmessage?.({ data: encodeFrame(frame, this.protocol) }); }

  drop(code) {
    this.readyState = 3;
    this.onclose?.({ code, reason: '' });
  }

  last(op) { return this.sent.filter((f) => f.op === op).at(-1); }
}

const flush = () => new Promise((resolve) => setImmediate(resolve));
const u = (id, status, at = 1) => ({ id, username: id, name: id, status, text: '', at });

async function ready() {
  const hub = new Hub({ token: 'T', url: 'ws://hub.test/ws', WebSocket: FakeSocket,
    trackActivity: false, idleMs: 0, watchSelf: false, backoff: { baseMs: 10, maxMs: 10 } });
  hub.connect();
  const ws = FakeSocket.all.at(-1);
  ws.open();
  await flush();
  ws.push({ op: 'ready', conn: 'c1', user: u('me', 'online'), cursor: 1, window: 600 });
  return { hub, ws };
}

beforeEach(() => {
  FakeSocket.all = [];
  mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] });
});

afterEach(() => { mock.timers.reset(); });

test('a window applies frames of its range above its version, and ignores the rest', () => {
  const w = new MemberWindow('r', [0, 2]);
  const scope = { room: 'r', range: [0, 2] };
  assert.equal(w.applyWindow({ scope, v: 5, ops: [] }), false, 'nothing before the snapshot');
  assert.ok(w.applySnapshot({ scope, v: 5, total: 3, users: [u('a', 'online'), u('b', 'online'), u('c', 'away')] }));
  const ops = [{ op: 'delete', index: 0 }, { op: 'insert', index: 2, user: u('d', 'busy') }];
  assert.equal(w.applyWindow({ scope, v: 4, ops }), false, 'older than the snapshot');
  assert.equal(w.applyWindow({ scope: { room: 'r', range: [1, 3] }, v: 9, ops }), false);
  assert.ok(w.applyWindow({ scope, v: 6, ops, total: 4 }));
  assert.deepEqual(w.users.map((x) => x.id), ['b', 'c', 'd']);
  assert.equal(w.total, 4);
  assert.equal(w.applyWindow({ scope, v: 6, ops }), false, 'the same frame twice applies once');
  w.move([3, 5]);
  assert.equal(w.synced, false);
  assert.throws(() => new MemberWindow('r', [2, 1]), /range must be/);
  assert.throws(() => applyOps([], [{ op: 'delete', index: 0 }]), /outside/);
});

test('a users map keeps unknown ids apart from offline ones, and only its own ids', () => {
  const m = new PresenceMap({ users: ['a', 'b', 'z'] });
  m.applySnapshot({ full: true, users: [u('a', 'online'), { ...u('b', 'offline'), lastSeen: 7 }], unknown: ['z'], cursor: 5 });
  assert.equal(m.lookup('a').status, 'online');
  assert.equal(m.lookup('b').lastSeen, 7);
  assert.deepEqual(m.lookup('z'), { id: 'z', unknown: true });
  assert.equal(m.lookup('q'), undefined);
  m.applyDelta({ users: [u('z', 'online', 9), u('elsewhere', 'online', 9)], cursor: 9 });
  assert.equal(m.lookup('z').status, 'online', 'first seen: known now');
  assert.equal(m.lookup('elsewhere'), undefined, 'not watched');
  assert.equal(m.unknown.size, 0);
});

test('counts(room) resolves on the first counts frame and follows changes', async () => {
  const { hub, ws } = await ready();
  const counts = hub.counts('lobby');
  const sub = ws.last('sub');
  assert.deepEqual({ ...sub, ref: undefined }, { op: 'sub', room: 'lobby', counts: true, ref: undefined });
  const seen = [];
  counts.on('change', (v) => seen.push(v.online));
  ws.push({ op: 'counts', scope: { room: 'lobby', counts: true }, online: 3, away: 1, busy: 0, total: 9, cursor: 2 });
  assert.deepEqual(await counts.ready, { online: 3, away: 1, busy: 0, total: 9, cursor: 2 });
  ws.push({ op: 'counts', scope: { room: 'other', counts: true }, online: 8, away: 0, busy: 0, total: 8, cursor: 3 });
  ws.push({ op: 'counts', scope: { room: 'lobby', counts: true }, online: 4, away: 1, busy: 0, total: 9, cursor: 3 });
  assert.deepEqual(seen, [3, 4]);
  const everyone = hub.subscribe({ all: true, counts: true });
  assert.deepEqual(ws.last('sub').all, true);
  ws.push({ op: 'counts', scope: { all: true, counts: true }, online: 1, away: 0, busy: 0, total: 2, cursor: 4 });
  assert.equal((await everyone.ready).total, 2);
  const gone = counts.unsubscribe();
  assert.deepEqual({ ...ws.last('unsub'), ref: undefined }, { op: 'unsub', room: 'lobby', counts: true, ref: undefined });
  ws.push({ op: 'ack', ref: ws.last('unsub').ref });
  await gone;
  hub.close();
});

test('a window subscription follows ops, moves, and is sent again after a reconnect', async () => {
  const { hub, ws } = await ready();
  const win = hub.members('lobby', [0, 1]);
  assert.deepEqual(ws.last('sub').range, [0, 1]);
  const scope = { room: 'lobby', range: [0, 1] };
  ws.push({ op: 'snapshot', scope, full: true, users: [u('a', 'online'), u('b', 'online')], total: 5, v: 3, cursor: 2 });
  assert.deepEqual((await win.ready).map((x) => x.id), ['a', 'b']);
  ws.push({ op: 'window', scope, v: 4, ops: [{ op: 'update', index: 1, user: u('b', 'away', 2) }], total: 5, cursor: 3 });
  assert.equal(win.users[1].status, 'away');
  const moved = win.move([2, 3]);
  assert.deepEqual({ ...ws.last('range'), ref: undefined }, { op: 'range', room: 'lobby', range: [2, 3], ref: undefined });
  ws.push({ op: 'window', scope, v: 5, ops: [{ op: 'delete', index: 0 }], total: 5, cursor: 4 });
  assert.equal(win.users.length, 2, 'a frame of the old range is ignored');
  ws.push({ op: 'snapshot', scope: { room: 'lobby', range: [2, 3] }, full: true, users: [u('c', 'busy')], total: 3, v: 6, cursor: 5 });
  ws.push({ op: 'ack', ref: ws.last('range').ref });
  await moved;
  assert.deepEqual(win.range, [2, 3]);
  assert.deepEqual(win.users.map((x) => x.id), ['c']);
  assert.equal(win.total, 3);
  ws.drop(1012);
  mock.timers.tick(1000);
  await flush();
  const again = FakeSocket.all.at(-1);
  assert.notEqual(again, ws);
  again.open();
  await flush();
  again.push({ op: 'ready', conn: 'c2', user: u('me', 'online'), cursor: 9, window: 600 });
  assert.deepEqual(again.last('sub').range, [2, 3], 'resumed at the range it had moved to');
  hub.close();
});

test('a long watchlist applies {users: true} deltas to its own ids, and tells unknown apart', async () => {
  const { hub, ws } = await ready();
  const ids = Array.from({ length: 150 }, (_, n) => `u${n}`);
  const sub = hub.subscribe({ users: ids });
  ws.push({ op: 'snapshot', scope: { users: [...ids].sort() }, full: true, users: [u('u1', 'online'), u('u2', 'offline')], unknown: ids.filter((i) => i !== 'u1' && i !== 'u2'), cursor: 3 });
  await sub.ready;
  assert.equal(sub.get('u2').status, 'offline');
  assert.deepEqual(sub.get('u3'), { id: 'u3', unknown: true });
  assert.equal(sub.get('stranger'), undefined);
  assert.equal(sub.unknown().length, 148);
  assert.deepEqual(sub.list().map((x) => x.id), ['u1', 'u2']);
  ws.push({ op: 'delta', scope: { users: true }, users: [u('u3', 'busy', 5), u('nobody', 'online', 5)], cursor: 5 });
  assert.equal(sub.get('u3').status, 'busy');
  assert.equal(sub.unknown().length, 147);
  assert.equal(sub.get('nobody'), undefined);
  hub.close();
});
