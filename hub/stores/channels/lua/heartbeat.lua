-- heartbeat: mark a node alive in an app for ttl ms (on the Redis clock).
-- KEYS[1] - the app's nodes zset (node id -> heartbeat expiry ms)
-- ARGV[1] - node id
-- ARGV[2] - ttl ms
-- Returns 1 when the node was listed, 0 when it was not (new, or reaped: the caller then
-- subscribes its live sockets again).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local known = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if known then return 1 end
return 0
