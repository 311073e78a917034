-- heartbeat: mark a node alive for a while.
-- KEYS[1] - the nodes zset (node -> heartbeat expiry ms)
-- KEYS[2] - the reaped-nodes hash (node -> 1 when a sweep reaped it since its heartbeat)
-- ARGV[1] - node id
-- ARGV[2] - ttl ms
-- Returns 1 when the node was registered, not expired and not reaped since; else 0, and
-- the node must re-register the connections it holds: a sweep took them (it expired),
-- possibly while this node was already re-registering, or Redis lost them (restart). The
-- caller tells the two apart by the buckets' epochs (RedisStore.heartbeat): only a loss
-- moves them, and only then may a node offer back what its users chose.
local now = time_ms()
local previous = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
local reaped = redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[1], num(now + tonumber(ARGV[2])), ARGV[1])
if previous and previous >= now and reaped == 0 then return 1 end
return 0
