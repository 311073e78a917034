-- hook: append one Pusher webhook event to its app's stream. Prepended to every script
-- that makes webhook events, so a transition and its event are one atomic step (a node
-- that dies between the two cannot lose the event). It takes, as arguments:
--   stream    - the app's webhook stream, {<prefix>pusher:<app id>}:hooks (one of the
--               caller's KEYS, in the app's slot like the channel keys)
--   retention - how long an entry is kept, ms (one of the caller's ARGV, given by
--               hub.wire.pusher_webhook.retention_ms); '0': the app has no webhook, nothing
--               is appended
--   event     - the event as a JSON object, {"name": ..., "channel": ..., ...} (e.g.
--               cjson.encode({name = 'member_added', channel = c, user_id = u}))
-- The entry is one field, e = the event; entries older than the retention are trimmed in
-- the same XADD (MINID ~ on Redis's clock: whole macro nodes only, so cheap).
local function hook(stream, retention, event)
  local keep = tonumber(retention) or 0
  if keep <= 0 then return 0 end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('XADD', stream, 'MINID', '~', string.format('%.0f', now - keep), '*', 'e', event)
  return 1
end
