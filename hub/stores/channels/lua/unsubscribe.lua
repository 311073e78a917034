-- unsubscribe: remove one socket from one channel of an app (a leave, a close or a reap).
-- KEYS[1] - the channel's subscriptions hash (socket id -> "<node>\t<user id>")
-- KEYS[2] - the channel's members hash (user id -> connections in the channel)
-- KEYS[3] - the channel's member info hash (user id -> user_info JSON)
-- KEYS[4] - the app's occupied-channels set
-- KEYS[5] - the node's subscriptions set ("<channel>\t<socket id>")
-- ARGV[1] - channel name
-- ARGV[2] - socket id
-- Returns {removed, user id, member removed, vacated}: removed 0 when the socket was not
-- subscribed (another node reaped it first: nothing to publish), member removed 1 when
-- that was the user's last connection in the channel, vacated 1 when it was the last
-- subscriber. Idempotent, so several nodes may reap at once and only one publishes.
local entry = redis.call('HGET', KEYS[1], ARGV[2])
if not entry then return {0, '', 0, 0} end
redis.call('HDEL', KEYS[1], ARGV[2])
local node_key_entry = ARGV[1] .. '\t' .. ARGV[2]
redis.call('SREM', KEYS[5], node_key_entry)
local tab = string.find(entry, '\t', 1, true)
local uid = string.sub(entry, tab + 1)
local gone = 0
if uid ~= '' then
  if redis.call('HINCRBY', KEYS[2], uid, -1) <= 0 then
    redis.call('HDEL', KEYS[2], uid)
    redis.call('HDEL', KEYS[3], uid)
    gone = 1
  end
end
local vacated = 0
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[4], ARGV[1])
  vacated = 1
end
return {1, uid, gone, vacated}
