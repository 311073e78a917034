-- expire_status: apply the status expiries that are due; those users' chosen status
-- returns to automatic (online) and their text clears, published as ordinary changes.
-- KEYS[1] - the bucket's change index
-- KEYS[2] - the bucket's not-offline set
-- KEYS[3] - the bucket's grace zset
-- KEYS[4] - the bucket's clock
-- KEYS[5] - the bucket's status expiries (zset user -> until ms)
-- KEYS[6] - the change stream (last KEYS entry, see common.lua)
-- ARGV[1] - the prefix of the bucket's user hashes (+ user id = key; same hash tag)
-- ARGV[2] - the prefix of the bucket's connection hashes (+ user id = key; same hash tag)
-- ARGV[3] - at most this many expiries per call (keeps one script call short)
-- ARGV[4] - window ms
-- ARGV[5] - the presence channel
-- Returns the number of expiries examined; equal to ARGV[3] means: call again. Every node
-- sweeps; a due expiry leaves the zset in the same atomic call that applies it, so it is
-- applied exactly once.
local ctx = context(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[4], ARGV[5])
local due = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', num(ctx.now), 'LIMIT', 0,
                       tonumber(ARGV[3]))
for _, uid in ipairs(due) do
  redis.call('ZREM', KEYS[5], uid)
  local u = load_user(ARGV[1] .. uid)
  -- The zset and the hash agree unless the user set a later expiry meanwhile (then the
  -- zset holds the later one) or none: only a due expiry of the hash is applied.
  if u and u.expires > 0 and u.expires <= ctx.now then
    local conns_key = ARGV[2] .. uid
    local had_grace = u.grace_until ~= nil
    local before = visible(u)
    u.chosen = 'online'
    u.text = ''
    u.expires = 0
    local changed = settle(ctx, u, conns_key, before)
    chose(ctx, u)
    save(ctx, u, changed, had_grace)
  end
end
finish(ctx)
return #due
