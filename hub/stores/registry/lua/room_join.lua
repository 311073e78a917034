-- KEYS[1] - the room hash
-- KEYS[2] - the room index: lex zset of '<created:015d>:<room>'
-- KEYS[3] - the room's members (set)
-- KEYS[4] - the room's membership log: user -> at of its last change
-- KEYS[5] - the user's rooms (set)
-- KEYS[6] - the rooms' clock: the last creation ms (unique, so the index keeps the order)
-- KEYS[7] - the rooms the user's joins created (set)
-- ARGV[1] - the room id
-- ARGV[2] - the user id
-- ARGV[3] - the window in ms (how long the log keeps a change)
-- ARGV[4] - the most rooms the hub may hold for a join to create one (0: no cap)
-- ARGV[5] - the most rooms one user's joins may have created (0: no cap)
-- Adds a member, creating the room (named after its id, its creator recorded) when missing.
-- Returns the change's at, false when the user already was a member, -1 when creating the
-- room would pass the hub's cap and -2 when it would pass the user's (nothing changed).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[1]) == 0 then
  local total = tonumber(ARGV[4])
  if total > 0 and redis.call('ZCARD', KEYS[2]) >= total then
    return -1
  end
  local mine = tonumber(ARGV[5])
  if mine > 0 and redis.call('SCARD', KEYS[7]) >= mine then
    return -2
  end
  local last = tonumber(redis.call('GET', KEYS[6]) or '0')
  local ms = string.format('%d', math.max(now, last + 1))
  redis.call('SET', KEYS[6], ms)
  redis.call('HSET', KEYS[1], 'name', ARGV[1], 'created', ms, 'updated', ms, 'creator', ARGV[2])
  redis.call('SADD', KEYS[7], ARGV[1])
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
