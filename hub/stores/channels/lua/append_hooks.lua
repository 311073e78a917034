-- append_hooks: Pusher webhook events made outside the channel scripts (client_event,
-- cache_miss, subscription_count), one stream entry each, in order (hook.lua is prepended).
-- KEYS[1] - the app's webhook stream, {<prefix>pusher:<app id>}:hooks
-- ARGV[1] - retention ms (entries older are trimmed; '0': nothing is appended)
-- ARGV[2..] - the events, one JSON object each
-- Returns how many entries were appended.
local appended = 0
for i = 2, #ARGV do
  appended = appended + hook(KEYS[1], ARGV[1], ARGV[i])
end
return appended
