// A small, complete MessagePack codec for the hub.v1.msgpack subprotocol.
//
// It follows the MessagePack spec (https://msgpack.org/) for every type the hub can send
// or receive: nil, booleans, all integer widths, float32/64, str, bin, array, map and ext
// (the timestamp extension, type -1, decodes to a Date). Plain objects and Maps encode as
// maps; integers use the smallest format that holds them, so Python's msgpack reads a
// cursor back as an int. 64-bit integers beyond Number.MAX_SAFE_INTEGER decode to BigInt
// rather than silently losing precision. No DOM, no dependencies: it runs in browsers,
// in bundlers and in node.

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** An ext value whose type this codec does not interpret. */
export class Ext {
  /** @param {number} type  @param {Uint8Array} data */
  constructor(type, data) {
    this.type = type;
    this.data = data;
  }
}

/** Raised for bytes that are not valid MessagePack or values that cannot be encoded. */
export class MsgpackError extends Error {
  constructor(message) {
    super(message);
    this.name = 'MsgpackError';
  }
}

class Writer {
  constructor(size = 256) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
    this.pos = 0;
  }

  ensure(extra) {
    const need = this.pos + extra;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v) { this.ensure(1); this.view.setUint8(this.pos, v); this.pos += 1; }
  u16(v) { this.ensure(2); this.view.setUint16(this.pos, v); this.pos += 2; }
  u32(v) { this.ensure(4); this.view.setUint32(this.pos, v); this.pos += 4; }
  i8(v) { this.ensure(1); this.view.setInt8(this.pos, v); this.pos += 1; }
  i16(v) { this.ensure(2); this.view.setInt16(this.pos, v); this.pos += 2; }
  i32(v) { this.ensure(4); this.view.setInt32(this.pos, v); this.pos += 4; }
  u64(v) { this.ensure(8); this.view.setBigUint64(this.pos, BigInt(v)); this.pos += 8; }
  i64(v) { this.ensure(8); this.view.setBigInt64(this.pos, BigInt(v)); this.pos += 8; }
  f64(v) { this.ensure(8); this.view.setFloat64(this.pos, v); this.pos += 8; }
  bytes(b) { this.ensure(b.length); this.buf.set(b, this.pos); this.pos += b.length; }

  result() { return this.buf.slice(0, this.pos); }
}

const MAX_DEPTH = 512;

function writeInt(w, v) {
  if (v >= 0) {
    if (v < 0x80) w.u8(v);
    else if (v < 0x100) { w.u8(0xcc); w.u8(v); }
    else if (v < 0x10000) { w.u8(0xcd); w.u16(v); }
    else if (v < 0x100000000) { w.u8(0xce); w.u32(v); }
    else { w.u8(0xcf); w.u64(v); }
  } else if (v >= -32) w.i8(v);
  else if (v >= -0x80) { w.u8(0xd0); w.i8(v); }
  else if (v >= -0x8000) { w.u8(0xd1); w.i16(v); }
  else if (v >= -0x80000000) { w.u8(0xd2); w.i32(v); }
  else { w.u8(0xd3); w.i64(v); }
}

function writeBigInt(w, v) {
  if (v >= -(2n ** 63n) && v < 0n) { w.u8(0xd3); w.i64(v); return; }
  if (v >= 0n && v < 2n ** 64n) { w.u8(0xcf); w.u64(v); return; }
  throw new MsgpackError(`integer ${v} does not fit in 64 bits`);
}

function writeStr(w, s) {
  const b = textEncoder.encode(s);
  const n = b.length;
  if (n < 32) w.u8(0xa0 | n);
  else if (n < 0x100) { w.u8(0xd9); w.u8(n); }
  else if (n < 0x10000) { w.u8(0xda); w.u16(n); }
  else { w.u8(0xdb); w.u32(n); }
  w.bytes(b);
}

function writeBin(w, b) {
  const n = b.length;
  if (n < 0x100) { w.u8(0xc4); w.u8(n); }
  else if (n < 0x10000) { w.u8(0xc5); w.u16(n); }
  else { w.u8(0xc6); w.u32(n); }
  w.bytes(b);
}

function writeExt(w, type, data) {
  const n = data.length;
  const fixed = { 1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8 }[n];
  if (fixed) w.u8(fixed);
  else if (n < 0x100) { w.u8(0xc7); w.u8(n); }
  else if (n < 0x10000) { w.u8(0xc8); w.u16(n); }
  else { w.u8(0xc9); w.u32(n); }
  w.i8(type);
  w.bytes(data);
}

function writeDate(w, d) {
  const ms = d.getTime();
  if (!Number.isFinite(ms)) throw new MsgpackError('cannot encode an invalid Date');
  const sec = Math.floor(ms / 1000);
  const nsec = (ms - sec * 1000) * 1e6;
  // timestamp 96: works for every date, before 1970 included.
  const data = new Uint8Array(12);
  const dv = new DataView(data.buffer);
  dv.setUint32(0, nsec);
  dv.setBigInt64(4, BigInt(sec));
  writeExt(w, -1, data);
}

function writeArrayHeader(w, n) {
  if (n < 16) w.u8(0x90 | n);
  else if (n < 0x10000) { w.u8(0xdc); w.u16(n); }
  else { w.u8(0xdd); w.u32(n); }
}

function writeMapHeader(w, n) {
  if (n < 16) w.u8(0x80 | n);
  else if (n < 0x10000) { w.u8(0xde); w.u16(n); }
  else { w.u8(0xdf); w.u32(n); }
}

function write(w, v, depth) {
  if (depth > MAX_DEPTH) throw new MsgpackError('value is nested too deeply');
  switch (typeof v) {
    case 'undefined': w.u8(0xc0); return;
    case 'boolean': w.u8(v ? 0xc3 : 0xc2); return;
    case 'number':
      if (Number.isSafeInteger(v) && !Object.is(v, -0)) writeInt(w, v);
      else { w.u8(0xcb); w.f64(v); }
      return;
    case 'bigint': writeBigInt(w, v); return;
    case 'string': writeStr(w, v); return;
    case 'object': break;
    default: throw new MsgpackError(`cannot encode a ${typeof v}`);
  }
  if (v === null) { w.u8(0xc0); return; }
  if (v instanceof Uint8Array) { writeBin(w, v); return; }
  if (v instanceof ArrayBuffer) { writeBin(w, new Uint8Array(v)); return; }
  if (ArrayBuffer.isView(v)) { writeBin(w, new Uint8Array(v.buffer, v.byteOffset, v.byteLength)); return; }
  if (v instanceof Ext) { writeExt(w, v.type, v.data); return; }
  if (v instanceof Date) { writeDate(w, v); return; }
  if (Array.isArray(v)) {
    writeArrayHeader(w, v.length);
    for (const item of v) write(w, item, depth + 1);
    return;
  }
  if (v instanceof Map) {
    writeMapHeader(w, v.size);
    for (const [k, item] of v) { write(w, k, depth + 1); write(w, item, depth + 1); }
    return;
  }
  // Plain object: like JSON.stringify, keys whose value is undefined are left out.
  const keys = Object.keys(v).filter((k) => v[k] !== undefined);
  writeMapHeader(w, keys.length);
  for (const k of keys) { writeStr(w, k); write(w, v[k], depth + 1); }
}

/**
 * Encode a value to MessagePack bytes.
 * @param {unknown} value
 * @returns {Uint8Array}
 */
export function encode(value) {
  const w = new Writer();
  write(w, value, 0);
  return w.result();
}

class Reader {
  constructor(bytes) {
    this.buf = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
  }

  need(n) {
    if (this.pos + n > this.buf.length) {
      throw new MsgpackError(`unexpected end of data at byte ${this.pos} (needed ${n} more)`);
    }
  }

  u8() { this.need(1); const v = this.view.getUint8(this.pos); this.pos += 1; return v; }
  u16() { this.need(2); const v = this.view.getUint16(this.pos); this.pos += 2; return v; }
  u32() { this.need(4); const v = this.view.getUint32(this.pos); this.pos += 4; return v; }
  i8() { this.need(1); const v = this.view.getInt8(this.pos); this.pos += 1; return v; }
  i16() { this.need(2); const v = this.view.getInt16(this.pos); this.pos += 2; return v; }
  i32() { this.need(4); const v = this.view.getInt32(this.pos); this.pos += 4; return v; }
  u64() { this.need(8); const v = this.view.getBigUint64(this.pos); this.pos += 8; return narrow(v); }
  i64() { this.need(8); const v = this.view.getBigInt64(this.pos); this.pos += 8; return narrow(v); }
  f32() { this.need(4); const v = this.view.getFloat32(this.pos); this.pos += 4; return v; }
  f64() { this.need(8); const v = this.view.getFloat64(this.pos); this.pos += 8; return v; }
  bytes(n) { this.need(n); const b = this.buf.slice(this.pos, this.pos + n); this.pos += n; return b; }
  str(n) {
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    try {
      return textDecoder.decode(b);
    } catch {
      throw new MsgpackError(`invalid UTF-8 in a string ending at byte ${this.pos}`);
    }
  }
}

function narrow(big) {
  const n = Number(big);
  return Number.isSafeInteger(n) ? n : big;
}

function readExt(r, n) {
  const type = r.i8();
  const data = r.bytes(n);
  if (type !== -1) return new Ext(type, data);
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let sec;
  let nsec;
  if (n === 4) { sec = dv.getUint32(0); nsec = 0; }
  else if (n === 8) {
    const hi = dv.getUint32(0);
    nsec = Math.floor(hi / 4);
    sec = (hi & 0x3) * 0x100000000 + dv.getUint32(4);
  } else if (n === 12) { nsec = dv.getUint32(0); sec = Number(dv.getBigInt64(4)); }
  else throw new MsgpackError(`timestamp extension of length ${n}, expected 4, 8 or 12`);
  return new Date(sec * 1000 + Math.floor(nsec / 1e6));
}

function readArray(r, n, depth) {
  const out = new Array(n);
  for (let i = 0; i < n; i++) out[i] = read(r, depth + 1);
  return out;
}

function readMap(r, n, depth) {
  const out = {};
  for (let i = 0; i < n; i++) {
    const key = read(r, depth + 1);
    const value = read(r, depth + 1);
    const k = typeof key === 'string' ? key : String(key);
    // defineProperty keeps a "__proto__" key a plain key instead of a prototype change.
    Object.defineProperty(out, k, { value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function read(r, depth) {
  if (depth > MAX_DEPTH) throw new MsgpackError('data is nested too deeply');
  const b = r.u8();
  if (b < 0x80) return b;
  if (b < 0x90) return readMap(r, b & 0x0f, depth);
  if (b < 0xa0) return readArray(r, b & 0x0f, depth);
  if (b < 0xc0) return r.str(b & 0x1f);
  if (b >= 0xe0) return b - 0x100;
  switch (b) {
    case 0xc0: return null;
    case 0xc2: return false;
    case 0xc3: return true;
    case 0xc4: return r.bytes(r.u8());
    case 0xc5: return r.bytes(r.u16());
    case 0xc6: return r.bytes(r.u32());
    case 0xc7: return readExt(r, r.u8());
    case 0xc8: return readExt(r, r.u16());
    case 0xc9: return readExt(r, r.u32());
    case 0xca: return r.f32();
    case 0xcb: return r.f64();
    case 0xcc: return r.u8();
    case 0xcd: return r.u16();
    case 0xce: return r.u32();
    case 0xcf: return r.u64();
    case 0xd0: return r.i8();
    case 0xd1: return r.i16();
    case 0xd2: return r.i32();
    case 0xd3: return r.i64();
    case 0xd4: return readExt(r, 1);
    case 0xd5: return readExt(r, 2);
    case 0xd6: return readExt(r, 4);
    case 0xd7: return readExt(r, 8);
    case 0xd8: return readExt(r, 16);
    case 0xd9: return r.str(r.u8());
    case 0xda: return r.str(r.u16());
    case 0xdb: return r.str(r.u32());
    case 0xdc: return readArray(r, r.u16(), depth);
    case 0xdd: return readArray(r, r.u32(), depth);
    case 0xde: return readMap(r, r.u16(), depth);
    case 0xdf: return readMap(r, r.u32(), depth);
    default: throw new MsgpackError(`byte 0x${b.toString(16)} at ${r.pos - 1} is never used`);
  }
}

/**
 * Decode one MessagePack value. Maps become plain objects (non-string keys are
 * stringified), bin becomes Uint8Array, the timestamp extension becomes a Date.
 * @param {Uint8Array | ArrayBuffer | ArrayBufferView} data
 */
export function decode(data) {
  let bytes;
  if (data instanceof Uint8Array) bytes = data;
  else if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
  else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  else throw new MsgpackError('decode expects bytes (Uint8Array or ArrayBuffer)');
  const r = new Reader(bytes);
  const value = read(r, 0);
  if (r.pos !== bytes.length) {
    throw new MsgpackError(`${bytes.length - r.pos} extra bytes after the value`);
  }
  return value;
}
