-- KEYS[1] - the user's account hash
-- Returns 'ok' (and records the login time), 'deactivated' or 'unknown'.
-- This runs on every websocket hello: one key, one round trip.
local activated = redis.call('HGET', KEYS[1], 'activated')
if not activated then
  return 'unknown'
end
if activated == '0' then
  return 'deactivated'
end
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'last_login', t[1] .. string.format('%03d', math.floor(t[2] / 1000)))
return 'ok'
