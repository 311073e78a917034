// A peer for bench/fanout.py: a minimal broadcast server on the `ws` library.
// Same wire as bench/plain_server.py: {"op":"sub"} joins the subscribers (answered with an
// empty snapshot), {"op":"status","id":..,"status":..,"text":..} is sent at once to every
// subscriber as a hub-shaped delta (one user per frame). Prints "ready" once listening.
"use strict";
const { WebSocketServer } = require("ws");

const port = Number(process.argv[process.argv.indexOf("--port") + 1] || 8766);
const subscribers = new Set();
const EMPTY_SNAPSHOT = '{"op":"snapshot","scope":{"all":true},"full":true,"users":[],"cursor":0}';

const wss = new WebSocketServer({ host: "127.0.0.1", port, perMessageDeflate: false, backlog: 2048 });
wss.on("connection", (ws) => {
  ws.on("message", (data) => {
    let frame;
    try { frame = JSON.parse(data); } catch { return; }
    if (frame.op === "status") {
      const at = Date.now();
      const id = String(frame.id || "");
      const payload = JSON.stringify({
        op: "delta", scope: { all: true },
        users: [{ id, username: id, name: id, status: frame.status || "online", text: frame.text || "", at }],
        cursor: at,
      });
      for (const sub of subscribers) sub.send(payload);
    } else if (frame.op === "sub") {
      subscribers.add(ws);
      ws.send(EMPTY_SNAPSHOT);
    }
  });
  ws.on("close", () => subscribers.delete(ws));
});
wss.on("listening", () => console.log("ready"));
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
