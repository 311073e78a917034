// Calls the hub's HTTP API with the real `pusher` Node server SDK.
// argv[2]: JSON {"port", "appId", "key", "secret", "calls": [{"fn", "args"}]}, and
// "encryptionMasterKeyBase64" for apps with encrypted channels (the SDK encrypts what it
// triggers on a private-encrypted- channel)
// Prints one JSON line per call: {"fn", "status", "body"} or {"fn", "error", "status",
// "body"} (the error's response body, as text).
import Pusher from "pusher";

const spec = JSON.parse(process.argv[2]);
const client = new Pusher({
  appId: spec.appId, key: spec.key, secret: spec.secret,
  host: "127.0.0.1", port: String(spec.port), useTLS: false,
  encryptionMasterKeyBase64: spec.encryptionMasterKeyBase64,
});
for (const call of spec.calls) {
  try {
    const response = await client[call.fn](...call.args);
    const text = await response.text();
    console.log(JSON.stringify({ fn: call.fn, status: response.status,
                                 body: text ? JSON.parse(text) : null }));
  } catch (e) {
    console.log(JSON.stringify({ fn: call.fn, error: String(e?.message ?? e),
                                 status: e?.status ?? null, body: e?.body ?? null }));
  }
}
