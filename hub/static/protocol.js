// Frames on the wire: the two subprotocols of /ws and their codecs. Pure, no socket.
//
// hub.v1.json uses text frames, hub.v1.msgpack binary frames; either way a frame is a
// map with an `op`. `decodeFrame` checks that much and names what was wrong otherwise.

import { decode as msgpackDecode, encode as msgpackEncode } from './msgpack.js';

export const JSON_PROTOCOL = 'hub.v1.json';
export const MSGPACK_PROTOCOL = 'hub.v1.msgpack';

/** The subprotocol name for a format given as 'json', 'msgpack' or a full name. */
export function protocolName(format) {
  if (format === undefined || format === null || format === 'json' || format === JSON_PROTOCOL) {
    return JSON_PROTOCOL;
  }
  if (format === 'msgpack' || format === MSGPACK_PROTOCOL) return MSGPACK_PROTOCOL;
  throw new TypeError(`format must be 'json' or 'msgpack', got ${format}`);
}

/** Encode a frame for `protocol`: a string for JSON, a Uint8Array for msgpack. */
export function encodeFrame(frame, protocol) {
  if (protocol === MSGPACK_PROTOCOL) return msgpackEncode(frame);
  return JSON.stringify(frame);
}

/**
 * Decode a received frame. Text is JSON and binary is msgpack whatever was negotiated
 * (the server picks the frame type to match), so this looks at the data, not a setting.
 */
export function decodeFrame(data) {
  let frame;
  if (typeof data === 'string') frame = JSON.parse(data);
  else frame = msgpackDecode(data);
  if (!frame || typeof frame !== 'object' || Array.isArray(frame) || typeof frame.op !== 'string') {
    throw new TypeError('a frame must be a map with an op');
  }
  return frame;
}

/** The websocket URL for the hub at `base` (an http(s) or ws(s) URL or a location). */
export function socketUrl(base, path = '/ws') {
  const url = new URL(path, typeof base === 'string' ? base : base.href);
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  return url.href;
}
