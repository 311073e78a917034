// msgpack.js: byte-exact against Python's msgpack (the hub's codec), and round trips.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { decode, encode, Ext, MsgpackError } from '../../hub/static/msgpack.js';

const hex = (b) => Buffer.from(b).toString('hex');
const unhex = (h) => new Uint8Array(Buffer.from(h, 'hex'));

// Bytes produced by Python's msgpack.packb(value, use_bin_type=True).
const VECTORS = [
  [null, 'c0'], [true, 'c3'], [false, 'c2'],
  [0, '00'], [127, '7f'], [128, 'cc80'], [255, 'ccff'], [256, 'cd0100'],
  [65535, 'cdffff'], [65536, 'ce00010000'], [4294967295, 'ceffffffff'],
  [4294967296, 'cf0000000100000000'], [1712345678901, 'cf0000018eafc18435'],
  [9007199254740991, 'cf001fffffffffffff'],
  [-1, 'ff'], [-32, 'e0'], [-33, 'd0df'], [-128, 'd080'], [-129, 'd1ff7f'],
  [-32768, 'd18000'], [-32769, 'd2ffff7fff'], [-2147483648, 'd280000000'],
  [-2147483649, 'd3ffffffff7fffffff'],
  [1.5, 'cb3ff8000000000000'], [-0.25, 'cbbfd0000000000000'],
  ['', 'a0'], ['a', 'a161'], ['é✓', 'a5c3a9e29c93'],
  ['x'.repeat(31), 'bf' + '78'.repeat(31)], ['x'.repeat(32), 'd920' + '78'.repeat(32)],
  ['x'.repeat(256), 'da0100' + '78'.repeat(256)],
  [[], '90'], [[1, [2]], '92019102'],
  [[...Array(16).keys()], 'dc0010000102030405060708090a0b0c0d0e0f'],
  [{}, '80'],
  [
    {
      op: 'delta', scope: { all: true },
      users: [{ id: 'u1', username: 'ann', name: 'Ann', status: 'online', text: '', at: 1712345678901 }],
      cursor: 1712345678902,
    },
    '84a26f70a564656c7461a573636f706581a3616c6cc3a575736572739186a26964a27531a8757365726e616d65'
      + 'a3616e6ea46e616d65a3416e6ea6737461747573a66f6e6c696e65a474657874a0a26174cf0000018eafc18435'
      + 'a6637572736f72cf0000018eafc18436',
  ],
  [
    Object.fromEntries([...Array(16).keys()].map((i) => [String(i), i])),
    'de0010a13000a13101a13202a13303a13404a13505a13606a13707a13808a13909a231300aa231310ba231320c'
      + 'a231330da231340ea231350f',
  ],
];

test('encode matches Python msgpack byte for byte', () => {
  for (const [value, expected] of VECTORS) {
    assert.equal(hex(encode(value)), expected, `encoding ${JSON.stringify(value).slice(0, 40)}`);
  }
});

test('decode reads what Python msgpack wrote', () => {
  for (const [value, bytes] of VECTORS) {
    assert.deepEqual(decode(unhex(bytes)), value);
  }
});

test('long strings, arrays and maps use their 32-bit forms', () => {
  const long = 'y'.repeat(70000);
  const bytes = encode(long);
  assert.equal(hex(bytes.subarray(0, 5)), 'db00011170');
  assert.equal(decode(bytes), long);
  const arr = Array.from({ length: 70000 }, (_, i) => i % 7);
  assert.equal(hex(encode(arr).subarray(0, 5)), 'dd00011170');
  assert.deepEqual(decode(encode(arr)), arr);
  const map = Object.fromEntries(Array.from({ length: 70000 }, (_, i) => [`k${i}`, i]));
  assert.equal(hex(encode(map).subarray(0, 5)), 'df00011170');
  assert.deepEqual(decode(encode(map)), map);
});

test('binary data round-trips as Uint8Array in the bin family', () => {
  const small = new Uint8Array([0, 1, 255]);
  assert.equal(hex(encode(small)), 'c4030001ff');
  assert.deepEqual(decode(encode(small)), small);
  for (const n of [255, 256, 65535, 65536]) {
    const b = new Uint8Array(n).map((_, i) => i & 0xff);
    assert.deepEqual(decode(encode(b)), b);
  }
  assert.deepEqual(decode(encode(new Uint8Array([9, 8]).buffer)), new Uint8Array([9, 8]));
});

test('64-bit integers beyond 2^53 decode to BigInt, and BigInt encodes', () => {
  assert.equal(decode(unhex('cfffffffffffffffff')), 2n ** 64n - 1n);
  assert.equal(decode(unhex('d38000000000000000')), -(2n ** 63n));
  assert.equal(hex(encode(2n ** 64n - 1n)), 'cfffffffffffffffff');
  assert.equal(hex(encode(-(2n ** 63n))), 'd38000000000000000');
  assert.throws(() => encode(2n ** 64n), MsgpackError);
  // An int64 that fits a safe integer stays a Number.
  assert.equal(decode(unhex('d3ffffffffffffffff')), -1);
});

test('floats: float32 decodes, non-integers, -0, NaN and Infinity encode as float64', () => {
  assert.equal(decode(unhex('ca3fc00000')), 1.5);
  assert.ok(Object.is(decode(encode(-0)), -0));
  assert.ok(Number.isNaN(decode(encode(NaN))));
  assert.equal(decode(encode(Infinity)), Infinity);
  assert.equal(decode(encode(2 ** 60)), 2 ** 60); // beyond safe: float64, exact
  assert.equal(hex(encode(2 ** 60)).slice(0, 2), 'cb');
});

test('every fixed and variable-length format decodes', () => {
  assert.equal(decode(unhex('d9036162 63'.replace(/ /g, ''))), 'abc');
  assert.equal(decode(unhex('da0003616263')), 'abc');
  assert.equal(decode(unhex('db00000003616263')), 'abc');
  assert.deepEqual(decode(unhex('dc000101')), [1]);
  assert.deepEqual(decode(unhex('dd0000000101')), [1]);
  assert.deepEqual(decode(unhex('de0001a16101')), { a: 1 });
  assert.deepEqual(decode(unhex('df00000001a16101')), { a: 1 });
  assert.deepEqual(decode(unhex('c50002abcd')), new Uint8Array([0xab, 0xcd]));
  assert.deepEqual(decode(unhex('c600000002abcd')), new Uint8Array([0xab, 0xcd]));
  assert.equal(decode(unhex('cc05')), 5);
  assert.equal(decode(unhex('d0ff')), -1);
  assert.equal(decode(unhex('d1ffff')), -1);
  assert.equal(decode(unhex('d2ffffffff')), -1);
});

test('ext types: unknown ones come back as Ext, the timestamp as a Date', () => {
  const ext = decode(unhex('d40501'));
  assert.ok(ext instanceof Ext);
  assert.equal(ext.type, 5);
  assert.deepEqual(ext.data, new Uint8Array([1]));
  assert.equal(hex(encode(new Ext(5, new Uint8Array([1])))), 'd40501');
  for (const n of [2, 4, 8, 16, 3, 300]) {
    const e = new Ext(-5 + (n % 3), new Uint8Array(n).fill(7));
    const back = decode(encode(e));
    assert.equal(back.type, e.type);
    assert.deepEqual(back.data, e.data);
  }
  // timestamp 32 (1 s after the epoch) and 64 (with nanoseconds), as in the spec
  assert.equal(decode(unhex('d6ff00000001')).getTime(), 1000);
  const ts64 = new Uint8Array(10);
  ts64.set([0xd7, 0xff]);
  const dv = new DataView(ts64.buffer);
  dv.setUint32(2, (500_000_000 * 4) >>> 0); // nsec << 2, seconds high bits 0
  dv.setUint32(6, 1_700_000_000);
  assert.equal(decode(ts64).getTime(), 1_700_000_000_500);
  for (const ms of [0, 1712345678901, -1500, 253402300799999]) {
    assert.equal(decode(encode(new Date(ms))).getTime(), ms);
  }
});

test('maps: Map encodes, __proto__ stays a plain key, non-string keys become strings', () => {
  assert.deepEqual(decode(encode(new Map([['a', 1]]))), { a: 1 });
  const evil = decode(unhex('81a95f5f70726f746f5f5f81a178c3'));
  assert.equal(Object.getPrototypeOf(evil), Object.prototype);
  assert.deepEqual(Object.keys(evil), ['__proto__']);
  assert.equal(evil.x, undefined);
  assert.deepEqual(decode(unhex('810102')), { 1: 2 });
  // undefined values are left out of objects, like JSON
  assert.deepEqual(decode(encode({ a: 1, b: undefined })), { a: 1 });
});

test('bad input raises MsgpackError with a clear message', () => {
  assert.throws(() => decode(unhex('c1')), /never used/);
  assert.throws(() => decode(unhex('a3616263ff')), /extra bytes/);
  assert.throws(() => decode(unhex('a5616263')), /unexpected end/);
  assert.throws(() => decode(unhex('dc0005')), /unexpected end/);
  assert.throws(() => decode(unhex('a2c328')), /invalid UTF-8/);
  assert.throws(() => decode('not bytes'), /expects bytes/);
  assert.throws(() => encode(() => 1), /cannot encode a function/);
  assert.throws(() => encode(Symbol('x')), MsgpackError);
  const deep = [];
  let cur = deep;
  for (let i = 0; i < 600; i++) { const next = []; cur.push(next); cur = next; }
  assert.throws(() => encode(deep), /nested too deeply/);
  assert.throws(() => decode(new Uint8Array(600).fill(0x91)), /nested too deeply/);
});

test('random values round-trip', () => {
  let seed = 42;
  const rand = () => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31; };
  const gen = (depth) => {
    const r = rand();
    if (depth > 3 || r < 0.5) {
      const k = Math.floor(rand() * 7);
      return [null, true, Math.floor((rand() - 0.5) * 2 ** 40), rand() * 1e6,
        'é'.repeat(Math.floor(rand() * 40)), Math.floor(rand() * 300) - 150, false][k];
    }
    if (r < 0.75) return Array.from({ length: Math.floor(rand() * 20) }, () => gen(depth + 1));
    return Object.fromEntries(Array.from({ length: Math.floor(rand() * 20) }, (_, i) => [`k${i}${rand()}`, gen(depth + 1)]));
  };
  for (let i = 0; i < 300; i++) {
    const v = gen(0);
    assert.deepEqual(decode(encode(v)), v);
  }
});
