-- expire_grace: end the offline graces whose deadline passed; those users go offline.
-- KEYS[1] - the bucket's change index
-- KEYS[2] - the bucket's not-offline set
-- KEYS[3] - the bucket's grace zset (user -> deadline ms)
-- KEYS[4] - the bucket's clock
-- KEYS[5] - the change stream (last KEYS entry, see common.lua)
-- ARGV[1] - the prefix of the bucket's user hashes (+ user id = key; same hash tag)
-- ARGV[2] - the prefix of the bucket's connection hashes (+ user id = key; same hash tag)
-- ARGV[3] - at most this many graces per call (keeps one script call short)
-- ARGV[4] - window ms
-- ARGV[5] - the presence channel
-- Returns the number of graces examined; equal to ARGV[3] means: call again.
-- It also trims the index: a bucket nobody writes to still drops changes older than the
-- window, since every node sweeps every bucket about once a second.
local ctx = context(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[4], ARGV[5])
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', num(ctx.now), 'LIMIT', 0,
                       tonumber(ARGV[3]))
for _, uid in ipairs(due) do
  redis.call('ZREM', KEYS[3], uid)
  local u = load_user(ARGV[1] .. uid)
  if u and u.grace_until then
    local conns_key = ARGV[2] .. uid
    local before = visible(u)
    u.grace_until = nil
    local changed = false
    -- A user with connections again is not in grace any more (connect clears it too).
    if redis.call('HLEN', conns_key) == 0 then changed = settle(ctx, u, conns_key, before) end
    save(ctx, u, changed, true)
  end
end
finish(ctx)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. num(ctx.stamp - ctx.window))
return #due
