// state.js: one map per subscription, merged by `at`; full snapshots and room membership.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  countByStatus, isNewer, newestEntry, normalizeScope, PresenceMap, scopeKey, sortEntries,
} from '../../hub/static/state.js';

const u = (id, status, at, extra = {}) => ({ id, username: id, name: id.toUpperCase(), status, text: '', at, ...extra });

test('scopes normalise, and their keys ignore the order of users', () => {
  assert.deepEqual(normalizeScope({ all: true }), { all: true });
  assert.deepEqual(normalizeScope({ users: ['b', 'a', 'b'] }), { users: ['a', 'b'] });
  assert.deepEqual(normalizeScope({ room: 'ops' }), { room: 'ops' });
  assert.equal(scopeKey({ users: ['b', 'a'] }), scopeKey({ users: ['a', 'b'] }));
  assert.notEqual(scopeKey({ room: 'all' }), scopeKey({ all: true }));
  assert.throws(() => normalizeScope({ all: true, room: 'x' }), /exactly one/);
  assert.throws(() => normalizeScope({ all: 1 }), /must be true/);
  assert.throws(() => normalizeScope({ users: [] }), /non-empty list/);
  assert.throws(() => normalizeScope({ room: '' }), /non-empty string/);
  assert.throws(() => normalizeScope(null), /scope must be/);
});

test('the larger at wins; ties and older entries change nothing', () => {
  const m = new PresenceMap({ all: true });
  assert.equal(m.applyDelta({ users: [u('a', 'online', 10)], cursor: 10 }).length, 1);
  assert.equal(m.applyDelta({ users: [u('a', 'away', 5)], cursor: 11 }).length, 0);
  assert.equal(m.applyDelta({ users: [u('a', 'away', 10)], cursor: 11 }).length, 0);
  assert.equal(m.get('a').status, 'online');
  const [change] = m.applyDelta({ users: [u('a', 'busy', 12, { text: 'call' })], cursor: 12 });
  assert.equal(change.entry.status, 'busy');
  assert.equal(change.previous.status, 'online');
  assert.equal(m.get('a').text, 'call');
  assert.equal(m.cursor, 12);
});

test('deltas in any order and with duplicates converge to the same map', () => {
  const frames = [
    [u('a', 'online', 1), u('b', 'online', 2)],
    [u('a', 'away', 3)],
    [u('b', 'offline', 4), u('a', 'away', 3)],
    [u('c', 'busy', 5), u('a', 'online', 6)],
  ];
  const final = (order) => {
    const m = new PresenceMap({ all: true });
    for (const i of order) m.applyDelta({ users: frames[i] });
    return Object.fromEntries([...m.users].map(([k, v]) => [k, `${v.status}@${v.at}`]));
  };
  const expected = final([0, 1, 2, 3]);
  assert.deepEqual(expected, { a: 'online@6', b: 'offline@4', c: 'busy@5' });
  for (const order of [[3, 2, 1, 0], [1, 3, 0, 2, 2], [2, 0, 3, 1, 0, 3]]) {
    assert.deepEqual(final(order), expected);
  }
});

test('the cursor only moves forward', () => {
  const m = new PresenceMap({ all: true });
  m.applyDelta({ users: [], cursor: 50 });
  m.applyDelta({ users: [], cursor: 40 });
  assert.equal(m.cursor, 50);
});

test('a full snapshot marks users it leaves out offline, keeping their at', () => {
  const m = new PresenceMap({ all: true });
  m.applySnapshot({ full: true, users: [u('a', 'online', 1), u('b', 'away', 2)], cursor: 5 });
  assert.ok(m.synced);
  const changes = m.applySnapshot({ full: true, users: [u('a', 'online', 1)], cursor: 9 });
  assert.equal(changes.length, 1);
  assert.deepEqual(m.get('b'), u('b', 'offline', 2));
  assert.equal(m.cursor, 9);
  // a later real change still wins over the synthesised offline entry
  m.applyDelta({ users: [u('b', 'online', 3)] });
  assert.equal(m.get('b').status, 'online');
  // counts and present()
  assert.deepEqual(m.counts(), { online: 2, away: 0, busy: 0, offline: 0 });
  assert.equal(m.present().length, 2);
});

test('a snapshot with full: false is applied as a delta', () => {
  const m = new PresenceMap({ all: true });
  m.applySnapshot({ full: true, users: [u('a', 'online', 1), u('b', 'online', 2)], cursor: 5 });
  const changes = m.applySnapshot({ full: false, users: [u('b', 'offline', 7)], cursor: 8 });
  assert.equal(changes.length, 1);
  assert.equal(m.get('a').status, 'online');
  assert.equal(m.get('b').status, 'offline');
  assert.equal(m.cursor, 8);
});

test('room: member: false removes the user; a full snapshot drops non-members', () => {
  const m = new PresenceMap({ room: 'ops' });
  m.applySnapshot({ full: true, users: [u('a', 'online', 1), u('b', 'busy', 2)], cursor: 3 });
  const [left] = m.applyDelta({ users: [u('a', 'online', 1, { member: false })], cursor: 4 });
  assert.ok(left.removed);
  assert.equal(left.entry.member, false);
  assert.equal(m.get('a'), undefined);
  // joining again with the same at brings the user back
  m.applyDelta({ users: [u('a', 'online', 1)], cursor: 5 });
  assert.equal(m.get('a').status, 'online');
  assert.equal('member' in m.get('a'), false);
  // a stale member:false (older at than what we hold) is ignored
  m.applyDelta({ users: [u('a', 'away', 6)] });
  assert.equal(m.applyDelta({ users: [u('a', 'online', 1, { member: false })] }).length, 0);
  assert.ok(m.get('a'));
  const changes = m.applySnapshot({ full: true, users: [u('a', 'away', 6)], cursor: 10 });
  assert.equal(m.get('b'), undefined);
  assert.deepEqual(changes.map((c) => [c.entry.id, c.removed]), [['b', true]]);
  // member: false for a user not in the map changes nothing
  assert.equal(m.applyDelta({ users: [u('z', 'online', 1, { member: false })] }).length, 0);
});

test('member: false outside a room scope is an ordinary entry', () => {
  const m = new PresenceMap({ all: true });
  m.applyDelta({ users: [u('a', 'online', 1, { member: false })] });
  assert.equal(m.get('a').status, 'online');
});

test('malformed entries are ignored', () => {
  const m = new PresenceMap({ all: true });
  assert.equal(m.applyDelta({ users: [null, {}, { id: '' }, 5, u('a', 'online', 1)] }).length, 1);
  assert.equal(m.size, 1);
});

test('isNewer, newestEntry, counts and display order', () => {
  assert.ok(isNewer(undefined, u('a', 'online', 1)));
  assert.ok(!isNewer(u('a', 'online', 2), u('a', 'online', 1)));
  const m1 = new PresenceMap({ all: true });
  const m2 = new PresenceMap({ room: 'r' });
  m1.applyDelta({ users: [u('a', 'online', 1)] });
  m2.applyDelta({ users: [u('a', 'busy', 4)] });
  assert.equal(newestEntry('a', [m1, m2]).status, 'busy');
  assert.equal(newestEntry('a', [m1, m2], [u('a', 'away', 9)]).status, 'away');
  assert.equal(newestEntry('zz', [m1, m2]), undefined);
  assert.deepEqual(countByStatus([u('a', 'online', 1), u('b', 'busy', 1), u('c', 'weird', 1)]),
    { online: 1, away: 0, busy: 1, offline: 0 });
  const sorted = sortEntries([
    u('d', 'offline', 1), u('c', 'away', 1), u('b', 'busy', 1), u('z', 'online', 1), u('a', 'online', 1),
  ]).map((e) => e.id);
  assert.deepEqual(sorted, ['a', 'z', 'b', 'c', 'd']);
});
