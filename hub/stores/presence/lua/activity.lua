-- activity: set the idle state of one connection (the client's idle detection).
-- KEYS[1] - the user's hash
-- KEYS[2] - the user's connections hash
-- KEYS[3] - the bucket's change index
-- KEYS[4] - the bucket's not-offline set
-- KEYS[5] - the bucket's grace zset
-- KEYS[6] - the bucket's clock
-- KEYS[7] - the change stream (last KEYS entry, see common.lua)
-- ARGV[1] - connection id
-- ARGV[2] - connection state: online or away
-- ARGV[3] - window ms
-- ARGV[4] - the presence channel
-- Returns 1 when the connection is known, else 0.
local current = redis.call('HGET', KEYS[2], ARGV[1])
if not current then return 0 end
local state, node = split(current)
-- The same state again (idle timers repeat themselves): nothing to write.
if state == ARGV[2] then return 1 end
local u = load_user(KEYS[1])
if not u then return 0 end
local ctx = context(KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[3], ARGV[4])
local before = visible(u)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ':' .. node)
if settle(ctx, u, KEYS[2], before) then
  save(ctx, u, true, false)
  finish(ctx)
end
return 1
