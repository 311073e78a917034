// An app written against the published types: `tsc --noEmit` must accept it (and reject
// misuse, see the @ts-expect-error lines). It is type-checked, not run.
import {
  connect,
  HubError,
  HubTimeoutError,
  type Counts,
  type CountsSubscription,
  type PresenceEntry,
  type Status,
  type Subscription,
  type WindowSubscription,
} from 'presence-hub-client';

async function token(): Promise<string> {
  const res = await fetch('/presence-token', { method: 'POST' });
  const body = (await res.json()) as { token: string };
  return body.token;
}

const hub = connect({ token, url: 'https://hub.example', requestTimeoutMs: 8000 });
const room: Subscription = hub.subscribe({ room: 'design' });

function label(user: PresenceEntry): string {
  return user.name || user.username || user.id;
}

room.on('sync', (users) => {
  const names: string[] = users.map(label);
  console.log(names.join(', '), room.count(), room.count('busy'), room.counts().away);
});
room.on('join', (user) => console.log(`${label(user)} joined`));
room.on('leave', (user) => console.log(`${label(user)} left`));
room.on('update', (user, previous) => {
  const change: `${Status} -> ${Status}` = `${previous.status} -> ${user.status}`;
  console.log(change, user.lastSeen ?? 0, user.until ?? 0);
});

const known = room.get('ann');
if (known === undefined) console.log('this room says nothing of ann');
else if (known.unknown) console.log('the hub never saw ann');
else if (known.status === 'offline') console.log('ann is offline since', known.lastSeen ?? '?');

// A watchlist tells a known user who is offline from an id the hub never saw.
const contacts: Subscription = hub.subscribe({ users: ['ann', 'bob'] });
const strangers: string[] = contacts.unknown();
console.log(strangers.length, contacts.list().map((u: PresenceEntry) => u.status));

// Rooms of any size: their numbers, and a window of their ordered members.
const webinar: CountsSubscription = hub.counts('webinar');
webinar.on('change', (c: Counts) => console.log(c.online, c.away, c.busy, c.total));
const everyone: CountsSubscription = hub.subscribe({ all: true, counts: true });
console.log(everyone.value?.total ?? 0);
const top: WindowSubscription = hub.members('webinar', [0, 99]);
top.on('sync', (users) => console.log(users.length, top.total, top.range[0]));
void top.move([100, 199]);
// @ts-expect-error a range is two numbers
hub.members('webinar', [0]);

hub.on('state', (state, previous) => console.log(previous, '->', state));
hub.on('status', (me) => console.log('me', me.status));

export async function main(): Promise<void> {
  try {
    const users: PresenceEntry[] = await room.ready;
    console.log(users.length);
    await hub.setStatus({ status: 'busy', text: 'In a meeting', until: Date.now() + 3_600_000 });
    await hub.setStatus({ text: '' });
    await hub.setStatus('away'); // the older form still types
  } catch (err) {
    if (err instanceof HubTimeoutError) console.log('timed out', err.code);
    else if (err instanceof HubError) console.log(err.code, err.ref, err.closeCode);
  }
  await room.unsubscribe();
  hub.close({ grace: false });
}

// Misuse the types must catch:
// @ts-expect-error not a status
void hub.setStatus({ status: 'sleeping' });
// @ts-expect-error a scope has all, users or room
hub.subscribe({ channel: 'x' });
// @ts-expect-error subscriptions emit sync, join, leave, update
room.on('change', () => undefined);
// @ts-expect-error 'join' gets one user, not a list
room.on('join', (users: PresenceEntry[]) => users.length);
