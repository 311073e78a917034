-- KEYS[1] - the room's members (set)
-- KEYS[2] - the room's membership log: user -> at of its last change
-- KEYS[3] - the user's rooms (set)
-- ARGV[1] - the room id
-- ARGV[2] - the user id
-- ARGV[3] - the window in ms (how long the log keeps a change)
-- Removes a member. Returns the change's at, or false when the user was not a member.
if redis.call('SREM', KEYS[1], ARGV[2]) == 0 then
  return false
end
redis.call('SREM', KEYS[3], ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local previous = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[2]) or '0')
local at = math.max(now, previous + 1)
redis.call('ZADD', KEYS[2], at, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. string.format('%d', at - tonumber(ARGV[3])))
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return at
