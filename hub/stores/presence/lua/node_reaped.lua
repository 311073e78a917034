-- node_reaped: record that a node's connections were just reaped.
-- KEYS[1] - the nodes zset (node -> heartbeat expiry ms)
-- KEYS[2] - the reaped-nodes hash (node -> 1)
-- ARGV[1] - node id
-- ARGV[2] - forget the node once it has been expired this long, ms ('0': forget it now)
-- Returns 1 when the node was forgotten, else 0.
-- A dead node stays listed (expired) for a while so that every sweep reaps it again: a node
-- that was only slow may have registered a connection after a reap, then died. The flag
-- makes its next heartbeat answer 0 even if it heartbeat during the reap, so it
-- re-registers what the reap may have taken.
local score = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if ARGV[2] == '0' or (score and score < time_ms() - tonumber(ARGV[2])) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
if score then redis.call('HSET', KEYS[2], ARGV[1], 1) end
return 0
