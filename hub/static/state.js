// Presence state kept by the browser client: one map per subscription. Pure: no DOM, no
// socket, no clock, so node tests it directly.
//
// Deltas are states, not events (DESIGN.md): per user, the entry with the larger `at`
// wins, so a duplicate or a late frame never moves a user backwards. A full snapshot is
// the truth at its cursor: a user it leaves out is offline (or, in a room, no longer a
// member). In a room scope an entry with `member: false` takes the user out of the map.

export const STATUSES = Object.freeze(['online', 'away', 'busy', 'offline']);

/** Statuses a user may choose; `offline` means invisible. */
export const CHOSEN = Object.freeze(['online', 'away', 'busy', 'offline']);

/**
 * The canonical form of a scope: `{all: true}`, `{users: [...]}` (sorted, unique) or
 * `{room}`. Throws a TypeError naming what was expected.
 */
export function normalizeScope(scope) {
  if (!scope || typeof scope !== 'object') {
    throw new TypeError(`scope must be {all: true}, {users: [...]} or {room}, got ${String(scope)}`);
  }
  const given = ['all', 'users', 'room'].filter((k) => scope[k] !== undefined);
  if (given.length !== 1) {
    throw new TypeError('scope must have exactly one of all, users, room');
  }
  if (given[0] === 'all') {
    if (scope.all !== true) throw new TypeError(`scope.all must be true, got ${scope.all}`);
    return { all: true };
  }
  if (given[0] === 'room') {
    if (typeof scope.room !== 'string' || !scope.room) {
      throw new TypeError(`scope.room must be a non-empty string, got ${scope.room}`);
    }
    return { room: scope.room };
  }
  const users = scope.users;
  if (!Array.isArray(users) || users.length === 0 || users.some((u) => typeof u !== 'string' || !u)) {
    throw new TypeError('scope.users must be a non-empty list of user ids');
  }
  return { users: [...new Set(users)].sort() };
}

/** A string naming a scope, equal for equal scopes (the users list is order-free). */
export function scopeKey(scope) {
  const s = normalizeScope(scope);
  if (s.all) return 'all';
  if (s.room !== undefined) return `room:${s.room}`;
  return `users:${JSON.stringify(s.users)}`;
}

/** True when `incoming` should replace `current` (absent, or a strictly larger `at`). */
export function isNewer(current, incoming) {
  if (!current) return true;
  return atOf(incoming) > atOf(current);
}

function atOf(entry) {
  const at = entry && entry.at;
  return typeof at === 'number' ? at : typeof at === 'bigint' ? Number(at) : -Infinity;
}

function isEntry(e) {
  return e && typeof e === 'object' && typeof e.id === 'string' && e.id !== '';
}

/**
 * The users of one subscription and the cursor to resume it from.
 *
 * `applySnapshot` and `applyDelta` return the list of changes they made, each
 * `{entry, previous, removed}`; the client turns them into 'change' events.
 */
export class PresenceMap {
  constructor(scope) {
    this.scope = normalizeScope(scope);
    this.key = scopeKey(this.scope);
    this.isRoom = this.scope.room !== undefined;
    /** @type {Map<string, object>} */
    this.users = new Map();
    /** A `users` scope's ids (a delta named `{users: true}` carries only some of them). */
    this.ids = this.scope.users ? new Set(this.scope.users) : null;
    /** Ids of a `users` scope the hub never saw (the snapshot's `unknown`). */
    this.unknown = new Set();
    /** The cursor of the last snapshot or delta applied; `since` for a resume. */
    this.cursor = null;
    /** True once a snapshot was applied. */
    this.synced = false;
  }

  get(id) { return this.users.get(id); }

  /**
   * What this scope says of `id`: its entry (offline ones too), `{id, unknown: true}` for an
   * id the hub never saw, or undefined when the scope says nothing of it.
   */
  lookup(id) {
    const entry = this.users.get(id);
    if (entry) return entry;
    return this.unknown.has(id) ? unknownUser(id) : undefined;
  }

  values() { return [...this.users.values()]; }

  get size() { return this.users.size; }

  /** Entries that are not offline. */
  present() { return this.values().filter((e) => e.status !== 'offline'); }

  _advance(cursor) {
    if (typeof cursor === 'number' && (this.cursor === null || cursor > this.cursor)) {
      this.cursor = cursor;
    }
  }

  /** Merge one entry; returns the change or null. */
  _merge(entry) {
    if (!isEntry(entry)) return null;
    if (this.ids && !this.ids.has(entry.id)) return null;
    this.unknown.delete(entry.id);
    const previous = this.users.get(entry.id);
    if (this.isRoom && entry.member === false) {
      if (!previous || atOf(entry) < atOf(previous)) return null;
      this.users.delete(entry.id);
      return { entry: { ...previous, ...entry, member: false }, previous, removed: true };
    }
    if (!isNewer(previous, entry)) return null;
    const copy = { ...entry };
    delete copy.member;
    this.users.set(entry.id, copy);
    return { entry: copy, previous, removed: false };
  }

  /** Apply a `delta` frame's users; returns the changes. */
  applyDelta({ users = [], cursor } = {}) {
    const changes = [];
    for (const entry of users) {
      const change = this._merge(entry);
      if (change) changes.push(change);
    }
    this._advance(cursor);
    return changes;
  }

  /**
   * Apply a `snapshot`. With `full: false` it is a delta (a resume inside the window).
   * With `full: true` every user it leaves out is offline at its cursor: kept as an
   * offline entry with its last `at` (so any later real change still wins), or, in a
   * room, removed.
   */
  applySnapshot({ full = true, users = [], cursor, unknown } = {}) {
    const changes = this.applyDelta({ users, cursor: undefined });
    if (Array.isArray(unknown)) {
      this.unknown = new Set(unknown.filter((id) => !this.ids || this.ids.has(id)));
      for (const id of this.unknown) this.users.delete(id);
    }
    if (full) {
      const listed = new Set(users.filter(isEntry).map((e) => e.id));
      for (const [id, previous] of [...this.users]) {
        if (listed.has(id)) continue;
        if (typeof cursor === 'number' && atOf(previous) > cursor) continue;
        if (this.isRoom) {
          this.users.delete(id);
          changes.push({ entry: { ...previous, member: false }, previous, removed: true });
        } else if (previous.status !== 'offline') {
          const entry = { ...previous, status: 'offline' };
          this.users.set(id, entry);
          changes.push({ entry, previous, removed: false });
        }
      }
      if (typeof cursor === 'number') this.cursor = cursor;
    } else {
      this._advance(cursor);
    }
    this.synced = true;
    return changes;
  }

  /** `{online, away, busy, offline}` counts over this map. */
  counts() { return countByStatus(this.values()); }
}

/** What a `users` subscription's `get(id)` gives for an id the hub never saw. */
export function unknownUser(id) {
  return { id, unknown: true };
}

/** A window's operations applied in order (insert / delete / update at an index). */
export function applyOps(list, ops) {
  const out = [...list];
  for (const op of ops || []) {
    const i = op.index;
    if (!Number.isInteger(i) || i < 0 || i > out.length - (op.op === 'insert' ? 0 : 1)) {
      throw new RangeError(`window ${op.op} at ${i} is outside a window of ${out.length}`);
    }
    if (op.op === 'insert') out.splice(i, 0, op.user);
    else if (op.op === 'delete') out.splice(i, 1);
    else if (op.op === 'update') out[i] = op.user;
    else throw new RangeError(`unknown window op ${op.op}`);
  }
  return out;
}

/**
 * A member window of a room: `[from, to]` of its members in the hub's order (online, away,
 * busy, then offline by last seen; ties by name, then id). A `snapshot` of the same range
 * replaces it; a `window` frame of that range applies when its version `v` is above the one
 * held (so a frame sent before a newer snapshot is ignored, never applied twice).
 */
export class MemberWindow {
  constructor(room, range) {
    this.room = room;
    this.range = checkRange(range);
    this.users = [];
    this.version = 0;
    this.total = 0;
    this.synced = false;
  }

  /** Move to another range: frames of the old one are ignored until its snapshot arrives. */
  move(range) {
    this.range = checkRange(range);
    this.synced = false;
  }

  matches(scope) {
    return Boolean(scope) && scope.room === this.room && Array.isArray(scope.range)
      && scope.range[0] === this.range[0] && scope.range[1] === this.range[1];
  }

  /** A snapshot of this range: true when it was applied. */
  applySnapshot(frame) {
    if (!this.matches(frame.scope)) return false;
    this.users = [...(frame.users || [])];
    this.version = frame.v ?? 0;
    this.total = frame.total ?? this.users.length;
    this.synced = true;
    return true;
  }

  /** A `window` frame: true when it was applied. */
  applyWindow(frame) {
    if (!this.synced || !this.matches(frame.scope) || !(frame.v > this.version)) return false;
    this.users = applyOps(this.users, frame.ops);
    this.version = frame.v;
    if (typeof frame.total === 'number') this.total = frame.total;
    return true;
  }
}

/** `[from, to]`: integers, 0 <= from <= to (the hub caps a window at 500 members). */
export function checkRange(range) {
  if (!Array.isArray(range) || range.length !== 2 || !range.every(Number.isInteger)
      || range[0] < 0 || range[1] < range[0]) {
    throw new TypeError(`range must be [from, to] with 0 <= from <= to, got ${JSON.stringify(range)}`);
  }
  return [range[0], range[1]];
}

/** Count entries per status; unknown statuses are not counted. */
export function countByStatus(entries) {
  const counts = { online: 0, away: 0, busy: 0, offline: 0 };
  for (const e of entries) if (e && Object.hasOwn(counts, e.status)) counts[e.status] += 1;
  return counts;
}

const ORDER = { online: 0, busy: 1, away: 2, offline: 3 };

/** Sort for display: online, busy, away, offline; then by name, then id. */
export function sortEntries(entries) {
  return [...entries].sort((a, b) => {
    const d = (ORDER[a.status] ?? 9) - (ORDER[b.status] ?? 9);
    if (d) return d;
    const an = (a.name || a.username || a.id).toLocaleLowerCase();
    const bn = (b.name || b.username || b.id).toLocaleLowerCase();
    return an < bn ? -1 : an > bn ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  });
}

/**
 * The newest entry for `id` across several maps (and extra entries such as the
 * client's own presence from `ready`), or undefined.
 */
export function newestEntry(id, maps, extra = []) {
  let best;
  for (const m of maps) {
    const e = m.get(id);
    if (e && isNewer(best, e)) best = e;
  }
  for (const e of extra) if (e && e.id === id && isNewer(best, e)) best = e;
  return best;
}
