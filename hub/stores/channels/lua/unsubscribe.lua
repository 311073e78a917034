-- unsubscribe: remove one socket from one channel of an app (a leave, a close or a reap).
-- KEYS[1] - the channel's subscriptions hash (socket id -> "<node>\t<user id>")
-- KEYS[2] - the channel's members hash (user id -> connections in the channel)
-- KEYS[3] - the channel's member info hash (user id -> user_info JSON)
-- KEYS[4] - the app's occupied-channels set
-- KEYS[5] - the node's subscriptions set ("<channel>\t<socket id>")
-- KEYS[6] - the app's member version (an integer, one for every channel of the app)
-- KEYS[7] - the app's webhook stream (hook.lua, prepended)
-- ARGV[1] - channel name
-- ARGV[2] - socket id
-- ARGV[3] - app id
-- ARGV[4] - the channel feed (pub/sub channel) member changes are published on
-- ARGV[5] - how long webhook events are kept, ms (0: the app has no webhook)
-- ARGV[6] - '1' to publish the channel's subscription count after a removed subscription
-- Returns {removed, user id, member removed, vacated, version, subscriptions}: removed 0
-- when the socket was not subscribed (another node reaped it first: nothing to act on),
-- member removed 1 when that was the user's last connection in the channel (the member
-- change was published in this same step, at the returned version), vacated 1 when it was
-- the last subscriber, subscriptions the channel's count after this step (published in
-- this same step when ARGV[6] asks and a subscription was removed). The webhook events of
-- the transitions (member_removed, channel_vacated) are appended to the app's webhook
-- stream in the same step. Idempotent, so several nodes may reap at once and only one acts
-- on each transition.
local version = tonumber(redis.call('GET', KEYS[6]) or 0)
local entry = redis.call('HGET', KEYS[1], ARGV[2])
if not entry then return {0, '', 0, 0, version, redis.call('HLEN', KEYS[1])} end
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('SREM', KEYS[5], ARGV[1] .. '\t' .. ARGV[2])
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
local count = redis.call('HLEN', KEYS[1])
if count == 0 then
  redis.call('SREM', KEYS[4], ARGV[1])
  vacated = 1
end
if gone == 1 then
  version = redis.call('INCR', KEYS[6])
  redis.call('PUBLISH', ARGV[4], cjson.encode({k = 'm', a = ARGV[3], c = ARGV[1], v = version,
                                               u = uid, i = false}))
  hook(KEYS[7], ARGV[5], cjson.encode({name = 'member_removed', channel = ARGV[1],
                                       user_id = uid}))
end
if vacated == 1 then
  hook(KEYS[7], ARGV[5], cjson.encode({name = 'channel_vacated', channel = ARGV[1]}))
end
if ARGV[6] == '1' then
  redis.call('PUBLISH', ARGV[4], cjson.encode({k = 'n', a = ARGV[3], c = ARGV[1], n = count}))
end
return {1, uid, gone, vacated, version, count}
