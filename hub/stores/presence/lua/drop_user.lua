-- drop_user: kick or ban; every connection of the user goes, offline now (no grace).
-- KEYS[1] - the user's hash
-- KEYS[2] - the user's connections hash
-- KEYS[3] - the bucket's change index
-- KEYS[4] - the bucket's not-offline set
-- KEYS[5] - the bucket's grace zset
-- KEYS[6] - the bucket's clock
-- KEYS[7] - the change stream (last KEYS entry, see common.lua)
-- ARGV[1] - the prefix of the bucket's per-node connection hashes (+ node id = key; same
--           hash tag, so the same slot as KEYS)
-- ARGV[2] - window ms
-- ARGV[3] - the presence channel
-- Returns 1 when the user is known, else 0.
local u = load_user(KEYS[1])
if not u then return 0 end
local conns = redis.call('HGETALL', KEYS[2])
for i = 1, #conns, 2 do
  local _, node = split(conns[i + 1])
  redis.call('HDEL', ARGV[1] .. node, conns[i])
end
redis.call('DEL', KEYS[2])
local ctx = context(KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[2], ARGV[3])
local had_grace = u.grace_until ~= nil
local before = visible(u)
u.grace_until = nil
save(ctx, u, settle(ctx, u, KEYS[2], before), had_grace)
finish(ctx)
return 1
