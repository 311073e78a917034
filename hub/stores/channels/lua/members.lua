-- members: a presence channel's members and the app's member version, in one step.
-- KEYS[1] - the channel's member info hash (user id -> user_info JSON)
-- KEYS[2] - the app's member version
-- (no ARGV)
-- Returns {version, user id, user_info, user id, user_info, ...}.
local out = {tonumber(redis.call('GET', KEYS[2]) or 0)}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat do out[#out + 1] = flat[i] end
return out
