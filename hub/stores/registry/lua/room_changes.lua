-- KEYS[1] - the room's membership log: user -> at of its last change
-- KEYS[2] - the room's members (set)
-- ARGV[1] - since (ms): changes at or after it
-- Returns {user, member (1/0), at, user, member, at, ...} oldest first.
local changed = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf', 'WITHSCORES')
local reply = {}
for i = 1, #changed, 2 do
  reply[#reply + 1] = changed[i]
  reply[#reply + 1] = redis.call('SISMEMBER', KEYS[2], changed[i])
  reply[#reply + 1] = changed[i + 1]
end
return reply
