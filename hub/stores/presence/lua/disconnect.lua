-- disconnect: remove one connection; the user's last one starts the offline grace.
-- KEYS[1] - the user's hash
-- KEYS[2] - the user's connections hash
-- KEYS[3] - the bucket's change index
-- KEYS[4] - the bucket's not-offline set
-- KEYS[5] - the bucket's grace zset
-- KEYS[6] - the bucket's clock
-- KEYS[7] - the node's connections hash in this bucket
-- KEYS[8] - the change stream (last KEYS entry, see common.lua)
-- ARGV[1] - connection id
-- ARGV[2] - grace ms (0: offline now, as for a forced disconnect)
-- ARGV[3] - window ms
-- ARGV[4] - the presence channel
-- Returns 1 when the connection was known, else 0 (and nothing changes).
redis.call('HDEL', KEYS[7], ARGV[1])
if redis.call('HDEL', KEYS[2], ARGV[1]) == 0 then return 0 end
local u = load_user(KEYS[1])
if not u then return 0 end
local ctx = context(KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[3], ARGV[4])
local had_grace = u.grace_until ~= nil
local before = visible(u)
if redis.call('HLEN', KEYS[2]) == 0 then
  local grace = tonumber(ARGV[2])
  if grace > 0 and u.status ~= 'offline' then
    u.grace_until = ctx.now + grace
  else
    u.grace_until = nil
  end
end
save(ctx, u, settle(ctx, u, KEYS[2], before), had_grace)
finish(ctx)
return 1
