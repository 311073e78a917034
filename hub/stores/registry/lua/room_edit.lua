-- KEYS[1] - the room hash
-- ARGV[1] - the new name
-- Returns {name, created, updated}, or false when the room does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
local t = redis.call('TIME')
local now = t[1] .. string.format('%03d', math.floor(t[2] / 1000))
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'updated', now)
return redis.call('HMGET', KEYS[1], 'name', 'created', 'updated')
