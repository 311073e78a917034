// Drives real pusher-js and Laravel Echo clients for the hub's tests.
// Reads one JSON command per line on stdin, prints one JSON event per line on stdout:
//   {"op":"pusher","id":"a","key":..,"port":..,"auth":"http://.../auth","user":"u1"}
//     (with "nacl":true: pusher-js's nacl option, tweetnacl, for private-encrypted- channels)
//   {"op":"echo","id":"b", ...same...}
//   {"op":"subscribe","id":"a","channel":"presence-room"}      (pusher-js)
//   {"op":"join","id":"b","channel":"room"}                     (Echo: presence-room)
//   {"op":"private","id":"b","channel":"room","listen":"typing"} (Echo: private-room)
//   {"op":"whisper","id":"b","channel":"room","event":"typing","data":{...}}
//   {"op":"trigger","id":"a","channel":"private-x","event":"client-x","data":{...}}
//   {"op":"bind","id":"a","channel":"c","event":"e"}
//   {"op":"close","id":"a"}
// User authentication: "userAuth" (the endpoint), "watchlist" (ids) and "forge" in the
// "pusher" command, then {"op":"signin","id":"a"}: prints "signed_in", "user_event" (a
// server-to-user event) and "watchlist" (pusher.user.watchlist's online/offline).
// Subscriptions print "count" (pusher:subscription_count) and "cache_miss".
import Pusher from "pusher-js";
import EchoModule from "laravel-echo";
import nacl from "tweetnacl";
import readline from "node:readline";

const Echo = EchoModule.default ?? EchoModule;
const clients = new Map();
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

function options(cmd) {
  return {
    wsHost: "127.0.0.1",
    wsPort: cmd.port,
    forceTLS: false,
    enabledTransports: ["ws"],
    cluster: "mt1",
    disableStats: true,
    authEndpoint: cmd.auth,
    auth: { params: { user_id: cmd.user ?? "" } },
    ...(cmd.nacl ? { nacl } : {}),
    userAuthentication: {
      endpoint: cmd.userAuth ?? "/pusher/user-auth",
      transport: "ajax",
      params: {
        user_id: cmd.user ?? "",
        watchlist: JSON.stringify(cmd.watchlist ?? []),
        forge: cmd.forge ? "1" : "",
      },
    },
  };
}

function userEvents(id, pusher) {
  pusher.connection.bind("message", (m) => {
    if (m.event === "pusher:signin_success")
      out({ id, ev: "signed_in", user: pusher.user.user_data?.id ?? null });
  });
  pusher.user.bind_global((event, data) => out({ id, ev: "user_event", event, data }));
  for (const name of ["online", "offline"])
    pusher.user.watchlist.bind(name, (e) =>
      out({ id, ev: "watchlist", name: e.name, user_ids: [...e.user_ids].sort() }));
}

function watchConnection(id, pusher) {
  pusher.connection.bind("state_change", (s) => out({ id, ev: "state", state: s.current }));
  pusher.connection.bind("connected", () =>
    out({ id, ev: "connected", socket_id: pusher.connection.socket_id }));
  pusher.connection.bind("error", (e) =>
    out({ id, ev: "error", error: JSON.stringify(e?.error ?? e) }));
  pusher.connection.bind("message", (m) => {
    if (m.event === "pusher:error") out({ id, ev: "pusher_error", data: m.data });
  });
}

function presenceEvents(id, channel, ch) {
  ch.bind("pusher:subscription_succeeded", (members) => {
    const ids = [];
    members.each((m) => ids.push(m.id));
    out({ id, ev: "here", channel, members: ids.sort(), me: members.me?.id ?? null });
  });
  ch.bind("pusher:subscription_error", (e) =>
    out({ id, ev: "subscription_error", channel, error: JSON.stringify(e) }));
  ch.bind("pusher:member_added", (m) =>
    out({ id, ev: "joining", channel, user: m.id, info: m.info }));
  ch.bind("pusher:member_removed", (m) => out({ id, ev: "leaving", channel, user: m.id }));
}

function handle(cmd) {
  const c = clients.get(cmd.id);
  switch (cmd.op) {
    case "pusher": {
      const pusher = new Pusher(cmd.key, options(cmd));
      clients.set(cmd.id, { pusher });
      watchConnection(cmd.id, pusher);
      userEvents(cmd.id, pusher);
      break;
    }
    case "signin":
      c.pusher.signin();
      break;
    case "echo": {
      const echo = new Echo({ broadcaster: "pusher", key: cmd.key, Pusher, ...options(cmd) });
      clients.set(cmd.id, { echo, pusher: echo.connector.pusher });
      watchConnection(cmd.id, echo.connector.pusher);
      break;
    }
    case "subscribe": {
      const ch = c.pusher.subscribe(cmd.channel);
      if (cmd.channel.startsWith("presence-")) presenceEvents(cmd.id, cmd.channel, ch);
      else {
        ch.bind("pusher:subscription_succeeded", () =>
          out({ id: cmd.id, ev: "subscribed", channel: cmd.channel }));
        ch.bind("pusher:subscription_error", (e) =>
          out({ id: cmd.id, ev: "subscription_error", channel: cmd.channel,
                error: JSON.stringify(e) }));
      }
      ch.bind_global((event, data) => {
        if (!event.startsWith("pusher:") && !event.startsWith("pusher_internal:"))
          out({ id: cmd.id, ev: "event", channel: cmd.channel, event, data });
      });
      ch.bind("pusher:subscription_count", (d) =>
        out({ id: cmd.id, ev: "count", channel: cmd.channel, count: d.subscription_count }));
      ch.bind("pusher:cache_miss", () =>
        out({ id: cmd.id, ev: "cache_miss", channel: cmd.channel }));
      break;
    }
    case "unsubscribe":
      c.pusher.unsubscribe(cmd.channel);
      break;
    case "join": {
      const channel = "presence-" + cmd.channel;
      c.echo.join(cmd.channel)
        .here((users) => out({ id: cmd.id, ev: "here", channel,
                               members: users.map((u) => String(u.id)).sort() }))
        .joining((u) => out({ id: cmd.id, ev: "joining", channel, user: String(u.id), info: u }))
        .leaving((u) => out({ id: cmd.id, ev: "leaving", channel, user: String(u.id) }))
        .error((e) => out({ id: cmd.id, ev: "subscription_error", channel,
                            error: JSON.stringify(e) }))
        .listenForWhisper(cmd.listen ?? "typing", (d) =>
          out({ id: cmd.id, ev: "whisper", channel, data: d }));
      break;
    }
    case "whisper":
      c.echo.join(cmd.channel).whisper(cmd.event, cmd.data);
      break;
    case "trigger": {
      const ok = c.pusher.channel(cmd.channel).trigger(cmd.event, cmd.data);
      out({ id: cmd.id, ev: "triggered", ok });
      break;
    }
    case "close":
      c.pusher.disconnect();
      clients.delete(cmd.id);
      out({ id: cmd.id, ev: "closed" });
      break;
    case "exit":
      for (const v of clients.values()) v.pusher.disconnect();
      process.exit(0);
  }
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (!line.trim()) return;
  try { handle(JSON.parse(line)); }
  catch (e) { out({ ev: "driver_error", error: String(e?.stack ?? e), line }); }
});
rl.on("close", () => process.exit(0));
out({ ev: "ready" });
