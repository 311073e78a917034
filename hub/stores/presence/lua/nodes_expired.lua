-- nodes_expired: the nodes whose heartbeat expired (on the clock of the nodes key).
-- KEYS[1] - the nodes zset (node -> heartbeat expiry ms)
-- (no ARGV)
-- Returns {node, expiry, node, expiry, ...}.
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. num(time_ms()), 'WITHSCORES')
