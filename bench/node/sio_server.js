// A peer for bench/fanout.py: a broadcast server on socket.io (websocket transport only).
// Events: "sub" joins the room "all" (answered with an empty "snapshot"), "status" {id,
// status, text} is emitted to the room as a hub-shaped "delta" (one user per event), so the
// benchmark counts and times deliveries exactly as for the other servers. With --redis URL
// it uses @socket.io/redis-adapter, as a multi-node socket.io deployment does.
// Prints "ready" once listening.
"use strict";
const http = require("http");
const { Server } = require("socket.io");

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const port = Number(arg("--port", 8767));
const redisUrl = arg("--redis", "");

async function main() {
  const server = http.createServer();
  const io = new Server(server, {
    transports: ["websocket"],
    perMessageDeflate: false,
    pingInterval: 600000,
    pingTimeout: 600000,
  });
  if (redisUrl) {
    const { createClient } = require("redis");
    const { createAdapter } = require("@socket.io/redis-adapter");
    const pub = createClient({ url: redisUrl });
    const sub = pub.duplicate();
    await Promise.all([pub.connect(), sub.connect()]);
    io.adapter(createAdapter(pub, sub));
  }
  io.on("connection", (socket) => {
    socket.on("sub", () => {
      socket.join("all");
      socket.emit("snapshot", { op: "snapshot", scope: { all: true }, full: true, users: [], cursor: 0 });
    });
    socket.on("status", (frame) => {
      const at = Date.now();
      const id = String((frame && frame.id) || "");
      io.to("all").emit("delta", {
        op: "delta", scope: { all: true },
        users: [{ id, username: id, name: id, status: frame.status || "online", text: frame.text || "", at }],
        cursor: at,
      });
    });
  });
  server.listen(port, "127.0.0.1", 2048, () => console.log("ready"));
}
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
main();
