-- KEYS[1] - the room hash
-- KEYS[2] - the room index: lex zset of '<created:015d>:<room>'
-- KEYS[3] - the rooms' clock: the last creation ms (unique, so the index keeps the order)
-- ARGV[1] - the room id
-- ARGV[2] - the room name
-- Creates the room. Returns {1, name, created, updated}, or {0, name, created, updated}
-- (the existing room, unchanged) when it existed.
local known = redis.call('HMGET', KEYS[1], 'name', 'created', 'updated')
if known[2] then
  return {0, known[1], known[2], known[3]}
end
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = tonumber(redis.call('GET', KEYS[3]) or '0')
if ms <= last then
  ms = last + 1
end
local now = string.format('%d', ms)
redis.call('SET', KEYS[3], now)
redis.call('HSET', KEYS[1], 'name', ARGV[2], 'created', now, 'updated', now)
redis.call('ZADD', KEYS[2], 0, string.rep('0', 15 - #now) .. now .. ':' .. ARGV[1])
return {1, ARGV[2], now, now}
