// backoff.js: exponential delays with equal jitter, and the close-code policy.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { backoffDelay, closePolicy, promptDelay } from '../../hub/static/backoff.js';

test('delays double from baseMs up to maxMs, jitter within [exp/2, exp]', () => {
  const opts = { baseMs: 500, factor: 2, maxMs: 8000 };
  const low = (n) => backoffDelay(n, opts, () => 0);
  const high = (n) => backoffDelay(n, opts, () => 0.999999);
  assert.deepEqual([0, 1, 2, 3, 4, 5, 50].map(low), [250, 500, 1000, 2000, 4000, 4000, 4000]);
  assert.deepEqual([0, 1, 2, 3, 4, 5, 50].map(high), [500, 1000, 2000, 4000, 8000, 8000, 8000]);
  for (let n = 0; n < 20; n++) {
    const d = backoffDelay(n, opts);
    assert.ok(d >= low(n) && d <= high(n), `attempt ${n}: ${d}`);
  }
});

test('jitter spreads clients out', () => {
  const seen = new Set(Array.from({ length: 50 }, () => backoffDelay(6)));
  assert.ok(seen.size > 10);
});

test('huge and odd attempt numbers stay finite and capped', () => {
  assert.equal(backoffDelay(1e9, { maxMs: 30000 }, () => 1), 30000);
  assert.equal(backoffDelay(-3, {}, () => 0), 250);
});

test('after 1012 the pause is short', () => {
  for (let i = 0; i < 20; i++) assert.ok(promptDelay() <= 250);
  assert.equal(promptDelay({ promptMs: 100 }, () => 1), 100);
});

test('close codes: 4001/4003/4004 stop, 1012 is prompt, the rest back off', () => {
  assert.deepEqual(closePolicy(4001), { reconnect: false, prompt: false, reason: 'not_authenticated' });
  assert.equal(closePolicy(4003).reconnect, false);
  assert.equal(closePolicy(4003).reason, 'deactivated');
  assert.equal(closePolicy(4004).reconnect, false);
  assert.equal(closePolicy(4004).reason, 'disconnected');
  assert.deepEqual(closePolicy(1012), { reconnect: true, prompt: true, reason: 'restarting' });
  for (const code of [1000, 1001, 1006, 1009, 1011, 4008, 4999]) {
    assert.equal(closePolicy(code).reconnect, true, `code ${code}`);
    assert.equal(closePolicy(code).prompt, false, `code ${code}`);
  }
});
