-- KEYS[1] - the room hash
-- KEYS[2] - the room index: lex zset of '<created:015d>:<room>'
-- KEYS[3] - the room's members (set)
-- KEYS[4] - the room's membership log: user -> at of its last change
-- KEYS[5] - the user's rooms (set)
-- KEYS[6] - the rooms' clock: the last creation ms (unique, so the index keeps the order)
-- ARGV[1] - the room id
-- ARGV[2] - the user id
-- ARGV[3] - the window in ms (how long the log keeps a change)
-- Adds a member, creating the room (named after its id) when missing.
-- Returns the change's at, or false when the user already was a member.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[1]) == 0 then
  local last = tonumber(redis.call('GET', KEYS[6]) or '0')
  local ms = string.format('%d', math.max(now, last + 1))
  redis.call('SET', KEYS[6], ms)
  redis.call('HSET', KEYS[1], 'name', ARGV[1], 'created', ms, 'updated', ms)
  redis.call('ZADD', KEYS[2], 0, string.rep('0', 15 - #ms) .. ms .. ':' .. ARGV[1])
end
if redis.call('SADD', KEYS[3], ARGV[2]) == 0 then
  return false
end
redis.call('SADD', KEYS[5], ARGV[1])
local previous = tonumber(redis.call('ZSCORE', KEYS[4], ARGV[2]) or '0')
local at = math.max(now, previous + 1)
redis.call('ZADD', KEYS[4], at, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. string.format('%d', at - tonumber(ARGV[3])))
redis.call('PEXPIRE', KEYS[4], ARGV[3])
return at
