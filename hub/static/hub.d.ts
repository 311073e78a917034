// Types for the Presence Hub browser client (hub.js). Checked with `tsc --noEmit` on the
// example in tests/js/example (scripts/test runs it).

/** A user's effective status; `offline` is also what an invisible user looks like. */
export type Status = 'online' | 'away' | 'busy' | 'offline';
/** What a user may choose: `online` means automatic (away when idle), `offline` invisible. */
export type ChosenStatus = Status;

/** One user as the hub describes it (DESIGN.md "user entry"). */
export interface PresenceEntry {
  id: string;
  username?: string;
  name?: string;
  status: Status;
  text?: string;
  /** The store clock (ms) of this entry's last change: the larger one wins. */
  at: number;
  /** ms since the epoch; on offline entries, unless hidden. */
  lastSeen?: number;
  /** ms since the epoch when a chosen status expires. */
  until?: number;
  /** In a room scope: false once the user left the room. */
  member?: boolean;
  utcOffset?: number;
  avatar?: string;
  /** Never true on an entry: see UnknownUser. */
  unknown?: false;
  [claim: string]: unknown;
}

/** What a `users` subscription's `get(id)` gives for an id the hub never saw. */
export interface UnknownUser {
  id: string;
  unknown: true;
  status?: undefined;
}

export type Scope = { all: true } | { users: string[] } | { room: string };
/** A room's (or everyone's) numbers only: works for rooms of any size. */
export type CountsScope = { all: true; counts: true } | { room: string; counts: true };
/** A window `[from, to]` of a room's ordered members. */
export type WindowScope = { room: string; range: [number, number] };

/** A scope's numbers; `cursor` is the store clock they are as of. */
export interface Counts {
  online: number;
  away: number;
  busy: number;
  total: number;
  cursor: number;
}

/** One window operation, at an index inside the window. */
export type WindowOp =
  | { op: 'insert'; index: number; user: PresenceEntry }
  | { op: 'delete'; index: number }
  | { op: 'update'; index: number; user: PresenceEntry };

export type StatusCounts = Record<Status, number>;

export type HubState = 'idle' | 'connecting' | 'authenticating' | 'ready' | 'reconnecting' | 'closed';

export type HubErrorCode =
  | 'timeout' | 'closed' | 'unsubscribed' | 'not_authenticated' | 'deactivated' | 'disconnected'
  | 'connect_failed' | 'token' | 'send_failed' | 'bad_frame'
  | 'bad_field' | 'forbidden' | 'not_found' | 'unavailable' | 'rate_limited' | (string & {});

/** An error the hub sent (its `code`, `ref`), or a local one (`timeout`, `closed`, ...). */
export class HubError extends Error {
  constructor(code: HubErrorCode, message: string, extra?: Record<string, unknown>);
  readonly code: HubErrorCode;
  /** The ref of the frame the hub refused. */
  readonly ref?: number;
  /** The websocket close code, when a close ended the session. */
  readonly closeCode?: number;
}

/** No answer (or no first snapshot) within `requestTimeoutMs`. */
export class HubTimeoutError extends HubError {
  readonly code: 'timeout';
}

export interface BackoffOptions {
  baseMs?: number;
  factor?: number;
  maxMs?: number;
  promptMs?: number;
}

export interface HubOptions {
  /** A user token, or a function returning one (called before each connection). */
  token: string | (() => string | Promise<string>);
  /** The hub's http(s) URL or its ws(s)://.../ws URL; default: where hub.js was loaded from. */
  url?: string;
  format?: 'json' | 'msgpack';
  idleMs?: number;
  awayWhenHidden?: boolean;
  hiddenDelayMs?: number;
  trackActivity?: boolean;
  pingMs?: number;
  pongTimeoutMs?: number;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  backoff?: BackoffOptions;
  watchSelf?: boolean;
  WebSocket?: typeof WebSocket;
}

export interface StatusChange {
  status?: ChosenStatus;
  /** '' clears the text. */
  text?: string;
  /** When the status returns to automatic and the text clears: ms since the epoch, or a Date. */
  until?: number | Date;
}

export interface Ack {
  op: 'ack';
  ref: number;
}

export interface ReadyInfo {
  conn: string;
  user: PresenceEntry | null;
  cursor: number;
  window: number;
  resumed: boolean;
}

export interface CloseInfo {
  code: number;
  reason: string;
  willReconnect: boolean;
  delay?: number;
}

export interface ChangeInfo {
  source: 'snapshot' | 'delta';
  full: boolean;
}

export interface HubEvents {
  open: (info: { protocol: string; url: string }) => void;
  ready: (info: ReadyInfo) => void;
  state: (state: HubState, previous: HubState) => void;
  snapshot: (scope: Scope, users: PresenceEntry[], full: boolean) => void;
  change: (entry: PresenceEntry, scope: Scope, previous: PresenceEntry | undefined, info: ChangeInfo) => void;
  status: (me: PresenceEntry) => void;
  activity: (state: 'online' | 'away') => void;
  close: (info: CloseInfo) => void;
  reconnecting: (info: { attempt: number; delay: number; code: number }) => void;
  error: (error: HubError) => void;
  closed: (info: { code: number; reason: string }) => void;
}

export interface SubscriptionEvents {
  /** Once per applied snapshot or delta: every user the scope knows, sorted. */
  sync: (users: PresenceEntry[]) => void;
  /** Became present (online, away or busy; in a room: a member again). */
  join: (user: PresenceEntry) => void;
  /** No longer present (offline, invisible, or left the room). */
  leave: (user: PresenceEntry) => void;
  /** Any other change to a known user. */
  update: (user: PresenceEntry, previous: PresenceEntry) => void;
}

export class Subscription {
  readonly hub: Hub;
  readonly scope: Scope;
  /** Resolves with the users of the first snapshot; rejects with a HubError (refused, timeout, closed). */
  readonly ready: Promise<PresenceEntry[]>;
  readonly closed: boolean;
  readonly synced: boolean;
  on<E extends keyof SubscriptionEvents>(event: E, fn: SubscriptionEvents[E]): () => void;
  off<E extends keyof SubscriptionEvents>(event: E, fn: SubscriptionEvents[E]): void;
  /** Every user the scope told about, offline ones included, sorted for display. */
  list(): PresenceEntry[];
  /** The users not offline, sorted for display. */
  present(): PresenceEntry[];
  /**
   * An entry (status 'offline', with lastSeen when shown, for a known user who is offline);
   * `{id, unknown: true}` for an id of a `users` scope the hub never saw; undefined when
   * this scope says nothing of `id`.
   */
  get(id: string): PresenceEntry | UnknownUser | undefined;
  /** The ids of a `users` scope the hub never saw (they are not in `list()`). */
  unknown(): string[];
  has(id: string): boolean;
  /** Users present (no argument) or with `status`. */
  count(status?: Status): number;
  counts(): StatusCounts;
  unsubscribe(): Promise<unknown>;
}

/** `hub.counts(room)`: the numbers of a room (or of everyone), kept current. */
export class CountsSubscription {
  readonly hub: Hub;
  readonly scope: CountsScope;
  /** Resolves with the first numbers; rejects with a HubError (refused, timeout, closed). */
  readonly ready: Promise<Counts>;
  readonly closed: boolean;
  /** The latest numbers (null before the first frame). */
  readonly value: Counts | null;
  on(event: 'change', fn: (counts: Counts) => void): () => void;
  off(event: 'change', fn: (counts: Counts) => void): void;
  unsubscribe(): Promise<unknown>;
}

/** `hub.members(room, [from, to])`: a window of a room's ordered members, kept exact. */
export class WindowSubscription {
  readonly hub: Hub;
  readonly room: string;
  /** Resolves with the window's first members; rejects with a HubError. */
  readonly ready: Promise<PresenceEntry[]>;
  readonly closed: boolean;
  /** The window: index 0 is member `range[0]`. */
  readonly users: PresenceEntry[];
  readonly range: [number, number];
  /** How many members the room has. */
  readonly total: number;
  on(event: 'sync', fn: (users: PresenceEntry[]) => void): () => void;
  off(event: 'sync', fn: (users: PresenceEntry[]) => void): void;
  /** Scroll to another range; resolves on the hub's ack (its snapshot follows). */
  move(range: [number, number]): Promise<Ack>;
  unsubscribe(): Promise<unknown>;
}

/** The users of one subscribed scope (hub.map(scope)); read-only for apps. */
export interface PresenceMap {
  readonly scope: Scope;
  readonly key: string;
  readonly users: ReadonlyMap<string, PresenceEntry>;
  readonly cursor: number | null;
  readonly synced: boolean;
  readonly size: number;
  get(id: string): PresenceEntry | undefined;
  values(): PresenceEntry[];
  present(): PresenceEntry[];
  counts(): StatusCounts;
}

export class Hub {
  constructor(options: HubOptions);
  readonly options: Required<Omit<HubOptions, 'url' | 'WebSocket' | 'hiddenDelayMs'>> & HubOptions;
  /** The websocket URL in use. */
  readonly url: string;
  readonly state: HubState;
  /** Own presence entry. */
  readonly me: PresenceEntry | null;
  /** The status this user chose ('online' = automatic). */
  readonly chosen: ChosenStatus | null;
  readonly activity: 'online' | 'away';
  readonly rooms: Set<string>;
  readonly attempt: number;
  readonly lastClose: { code: number; reason: string } | null;

  on<E extends keyof HubEvents>(event: E, fn: HubEvents[E]): () => void;
  off<E extends keyof HubEvents>(event: E, fn: HubEvents[E]): void;
  once<E extends keyof HubEvents>(event: E): Promise<Parameters<HubEvents[E]>[0]>;

  connect(): this;
  /** `{grace: false}` (sign-out): the hub drops this connection's presence at once. */
  close(options?: { grace?: boolean }): void;
  reconnect(): this;
  /** While waiting to reconnect: try now. */
  retryNow(): this;
  setToken(token: HubOptions['token']): void;

  setStatus(change: StatusChange): Promise<Ack>;
  /** @deprecated use setStatus({status, text}) */
  setStatus(status: ChosenStatus | undefined | null, text?: string): Promise<Ack>;
  setActivity(state: 'online' | 'away'): void;

  subscribe(scope: CountsScope): CountsSubscription;
  subscribe(scope: WindowScope): WindowSubscription;
  subscribe(scope: Scope): Subscription;
  /** A room's numbers (`counts('lobby')`), or everyone's (`counts()`). */
  counts(room?: string): CountsSubscription;
  /** Members `from` to `to` of a room, online, away, busy, then offline by last seen. */
  members(room: string, range: [number, number]): WindowSubscription;
  unsubscribe(scope: Scope): Promise<unknown>;
  join(room: string): Promise<Ack>;
  leave(room: string): Promise<Ack>;

  /** The newest entry for `id` across every subscription; undefined when unknown. */
  presence(id: string): PresenceEntry | undefined;
  users(scope?: Scope): PresenceEntry[];
  map(scope: Scope): PresenceMap | null;
  scopes(): Scope[];
}

export function connect(options: HubOptions): Hub;
export function defaultUrl(moduleUrl?: string, loc?: { protocol: string; href: string }): string | null;
export const SIGN_OUT_CODE: 4000;
export const STATUSES: readonly Status[];
export const CHOSEN: readonly ChosenStatus[];
export function countByStatus(entries: Iterable<PresenceEntry>): StatusCounts;
export function sortEntries(entries: Iterable<PresenceEntry>): PresenceEntry[];
export function scopeKey(scope: Scope): string;
/** A window's operations applied in order (what a WindowSubscription does). */
export function applyOps(users: PresenceEntry[], ops: WindowOp[]): PresenceEntry[];
export class MemberWindow {
  constructor(room: string, range: [number, number]);
  readonly room: string;
  readonly range: [number, number];
  readonly users: PresenceEntry[];
  readonly version: number;
  readonly total: number;
  readonly synced: boolean;
}
