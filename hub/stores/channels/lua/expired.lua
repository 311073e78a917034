-- expired: the nodes of an app whose heartbeat expired (on the Redis clock).
-- KEYS[1] - the app's nodes zset (node id -> heartbeat expiry ms)
-- (no ARGV)
-- Returns {node id, ...}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
