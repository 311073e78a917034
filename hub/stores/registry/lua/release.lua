-- KEYS[1] - ids: user id -> its key in by_created
-- KEYS[2] - names: lowercased username -> user id
-- KEYS[3] - unames: user id -> lowercased username
-- KEYS[4] - by_created: lex zset of '<created:015d>:<id>'
-- KEYS[5] - by_username: lex zset of '<lowercased username>\0<id>'
-- ARGV[1] - the user id
-- Frees the id and the username of a deleted account. Returns 1, or 0 when not reserved.
local ckey = redis.call('HGET', KEYS[1], ARGV[1])
if not ckey then
  return 0
end
redis.call('ZREM', KEYS[4], ckey)
local lower = redis.call('HGET', KEYS[3], ARGV[1])
if lower then
  redis.call('ZREM', KEYS[5], lower .. '\0' .. ARGV[1])
  if redis.call('HGET', KEYS[2], lower) == ARGV[1] then
    redis.call('HDEL', KEYS[2], lower)
  end
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
