-- KEYS[1] - the user's account hash
-- ARGV    - field, value, field, value ... to set ('updated' is stamped here)
-- Returns the whole account (HGETALL) after the change, or false when there is none.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
local t = redis.call('TIME')
if #ARGV > 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV))
end
redis.call('HSET', KEYS[1], 'updated', t[1] .. string.format('%03d', math.floor(t[2] / 1000)))
return redis.call('HGETALL', KEYS[1])
