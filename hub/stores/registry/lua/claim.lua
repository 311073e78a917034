-- KEYS[1] - ids: user id -> its key in by_created
-- KEYS[2] - names: lowercased username -> user id
-- KEYS[3] - unames: user id -> lowercased username
-- KEYS[4] - by_created: lex zset of '<created:015d>:<id>'
-- KEYS[5] - by_username: lex zset of '<lowercased username>\0<id>'
-- KEYS[6] - clock: the last created ms (creation times are unique, so they keep the order)
-- ARGV[1] - the user id
-- ARGV[2] - the lowercased username
-- Reserves the id and the username for a new account, stamped with the Redis clock.
-- Returns {'ok', created ms}, {'id', the existing by_created key} or {'username', owner id}.
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then
  return {'id', existing}
end
local owner = redis.call('HGET', KEYS[2], ARGV[2])
if owner then
  return {'username', owner}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = tonumber(redis.call('GET', KEYS[6]) or '0')
if now <= last then
  now = last + 1
end
local created = string.format('%d', now)
redis.call('SET', KEYS[6], created)
local ckey = string.rep('0', 15 - #created) .. created .. ':' .. ARGV[1]
redis.call('HSET', KEYS[1], ARGV[1], ckey)
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[4], 0, ckey)
redis.call('ZADD', KEYS[5], 0, ARGV[2] .. '\0' .. ARGV[1])
return {'ok', created}
