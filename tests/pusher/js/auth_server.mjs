// An app's auth endpoint made with the real `pusher` Node server SDK, for encrypted channels.
// argv[2]: JSON {"appId", "key", "secret", "encryptionMasterKeyBase64"}
// POST /auth (pusher-js's form: socket_id, channel_name) answers authorizeChannel(), which
// for a private-encrypted- channel holds the channel's shared_secret. Prints one JSON line,
// {"port": N}, once it listens on 127.0.0.1 (a free port).
import Pusher from "pusher";
import http from "node:http";

const spec = JSON.parse(process.argv[2]);
const sdk = new Pusher({
  appId: spec.appId, key: spec.key, secret: spec.secret,
  encryptionMasterKeyBase64: spec.encryptionMasterKeyBase64,
});

const server = http.createServer((req, res) => {
  let body = "";
  req.on("data", (chunk) => { body += chunk; });
  req.on("end", () => {
    const headers = { "Content-Type": "application/json", "Access-Control-Allow-Origin": "*" };
    if (req.method !== "POST" || req.url !== "/auth") {
      res.writeHead(404, headers).end("{}");
      return;
    }
    const form = new URLSearchParams(body);
    try {
      const auth = sdk.authorizeChannel(form.get("socket_id"), form.get("channel_name"));
      res.writeHead(200, headers).end(JSON.stringify(auth));
    } catch (e) {
      res.writeHead(403, headers).end(JSON.stringify({ error: String(e?.message ?? e) }));
    }
  });
});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + "\n");
});
process.stdin.on("end", () => server.close(() => process.exit(0)));
process.stdin.resume();
