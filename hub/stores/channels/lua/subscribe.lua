-- subscribe: add one socket to one channel of an app (and its user to the members).
-- KEYS[1] - the channel's subscriptions hash (socket id -> "<node>\t<user id>")
-- KEYS[2] - the channel's members hash (user id -> connections in the channel)
-- KEYS[3] - the channel's member info hash (user id -> user_info JSON)
-- KEYS[4] - the app's occupied-channels set
-- KEYS[5] - the node's subscriptions set ("<channel>\t<socket id>")
-- KEYS[6] - the app's member version (an integer, one for every channel of the app)
-- KEYS[7] - the app's webhook stream (hook.lua, prepended)
-- ARGV[1] - channel name
-- ARGV[2] - socket id
-- ARGV[3] - node id
-- ARGV[4] - user id ('' on channels without members)
-- ARGV[5] - user_info JSON
-- ARGV[6] - member limit
-- ARGV[7] - app id
-- ARGV[8] - the channel feed (pub/sub channel) member changes are published on
-- ARGV[9] - how long webhook events are kept, ms (0: the app has no webhook)
-- ARGV[10] - '1' to publish the channel's subscription count after a new subscription
-- Returns {status, occupied, added, version, subscriptions}: status 1 subscribed, 0 already
-- was, -1 the member limit is reached; occupied 1 when the channel had no subscriber
-- before; added 1 when this is the user's first connection in the channel, in which case
-- the member change was published in this same step at the returned version (the app's
-- version after it); subscriptions the channel's count after this step (published in this
-- same step when ARGV[10] asks and the socket was subscribed). The webhook events of the
-- transitions (channel_occupied, member_added) are appended to the app's webhook stream in
-- the same step.
local version = tonumber(redis.call('GET', KEYS[6]) or 0)
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1 then
  return {0, 0, 0, version, redis.call('HLEN', KEYS[1])}
end
local uid = ARGV[4]
local added = 0
if uid ~= '' then
  if redis.call('HEXISTS', KEYS[2], uid) == 0 then
    if redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[6]) then
      return {-1, 0, 0, version, redis.call('HLEN', KEYS[1])}
    end
    added = 1
  end
  redis.call('HINCRBY', KEYS[2], uid, 1)
  redis.call('HSET', KEYS[3], uid, ARGV[5])
end
local occupied = 0
if redis.call('HLEN', KEYS[1]) == 0 then occupied = 1 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3] .. '\t' .. uid)
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[1] .. '\t' .. ARGV[2])
if occupied == 1 then
  hook(KEYS[7], ARGV[9], cjson.encode({name = 'channel_occupied', channel = ARGV[1]}))
end
if added == 1 then
  version = redis.call('INCR', KEYS[6])
  redis.call('PUBLISH', ARGV[8], cjson.encode({k = 'm', a = ARGV[7], c = ARGV[1], v = version,
                                               u = uid, i = ARGV[5], x = ARGV[2]}))
  hook(KEYS[7], ARGV[9], cjson.encode({name = 'member_added', channel = ARGV[1], user_id = uid}))
end
local count = redis.call('HLEN', KEYS[1])
if ARGV[10] == '1' then
  redis.call('PUBLISH', ARGV[8], cjson.encode({k = 'n', a = ARGV[7], c = ARGV[1], n = count}))
end
return {1, occupied, added, version, count}
