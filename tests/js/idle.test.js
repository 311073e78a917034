// idle.js: away after idleMs without input or while hidden; online again on input.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { IdleTracker } from '../../hub/static/idle.js';

function clock() {
  let now = 0;
  const timers = new Map();
  let next = 1;
  return {
    now: () => now,
    setTimer: (fn, ms) => { timers.set(next, { fn, at: now + ms }); return next++; },
    clearTimer: (h) => timers.delete(h),
    advance(ms) {
      const end = now + ms;
      for (;;) {
        const due = [...timers].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        timers.delete(due[0]);
        now = due[1].at;
        due[1].fn();
      }
      now = end;
    },
    pending: () => timers.size,
  };
}

function tracker(options = {}) {
  const c = clock();
  const changes = [];
  const t = new IdleTracker({ idleMs: 1000, onChange: (s) => changes.push(s), ...c, ...options });
  return { t, c, changes };
}

test('goes away after idleMs without input, back online on input', () => {
  const { t, c, changes } = tracker();
  t.start();
  c.advance(999);
  assert.equal(t.state, 'online');
  c.advance(1);
  assert.equal(t.state, 'away');
  assert.equal(c.pending(), 0, 'no timer runs while away');
  t.input();
  assert.equal(t.state, 'online');
  assert.deepEqual(changes, ['away', 'online']);
});

test('input pushes the idle deadline back without resetting timers each time', () => {
  const { t, c, changes } = tracker();
  t.start();
  for (let i = 0; i < 10; i++) { c.advance(500); t.input(); }
  assert.equal(c.pending(), 1);
  assert.deepEqual(changes, []);
  c.advance(999);
  assert.equal(t.state, 'online');
  c.advance(1);
  assert.equal(t.state, 'away');
});

test('a page hidden for hiddenDelayMs is away; visible again is online', () => {
  const { t, c, changes } = tracker({ idleMs: 60000, hiddenDelayMs: 2000 });
  t.start();
  t.setHidden(true);
  c.advance(1999);
  assert.equal(t.state, 'online');
  c.advance(1);
  assert.equal(t.state, 'away');
  t.input(); // stray events while hidden do not bring it back
  assert.equal(t.state, 'away');
  t.setHidden(false);
  assert.equal(t.state, 'online');
  assert.deepEqual(changes, ['away', 'online']);
});

test('hidden briefly (a tab switch, or a reload that unloads the page) reports nothing', () => {
  const { t, c, changes } = tracker({ idleMs: 60000, hiddenDelayMs: 2000 });
  t.start();
  t.setHidden(true);
  c.advance(1500);
  t.setHidden(false);
  c.advance(5000);
  assert.deepEqual(changes, []);
  t.setHidden(true);
  t.stop(); // the page unloads: the pending away never fires
  c.advance(5000);
  assert.deepEqual(changes, []);
});

test('hiddenDelayMs 0 reports away at once', () => {
  const { t, changes } = tracker({ hiddenDelayMs: 0 });
  t.start();
  t.setHidden(true);
  assert.deepEqual(changes, ['away']);
});

test('awayWhenHidden: false ignores visibility', () => {
  const { t } = tracker({ awayWhenHidden: false });
  t.start();
  t.setHidden(true);
  assert.equal(t.state, 'online');
});

test('idleMs 0 disables the inactivity timer; stop() silences it', () => {
  const { t, c } = tracker({ idleMs: 0 });
  t.start();
  c.advance(1e9);
  assert.equal(t.state, 'online');
  const b = tracker();
  b.t.start();
  b.t.stop();
  b.c.advance(5000);
  assert.equal(b.t.state, 'online');
  assert.deepEqual(b.changes, []);
});
