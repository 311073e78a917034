-- restore: re-register the connections a node still holds of one user, after the store let
-- them go (a sweep reaped the node) or lost them (Redis restarted empty). It writes back only
-- what the store does not hold: never a known user's profile, never a choice the store kept.
-- KEYS[1] - the user's hash
-- KEYS[2] - the user's connections hash (conn -> '<state>:<node>')
-- KEYS[3] - the bucket's change index
-- KEYS[4] - the bucket's not-offline set
-- KEYS[5] - the bucket's grace zset
-- KEYS[6] - the bucket's clock
-- KEYS[7] - the bucket's username index
-- KEYS[8] - the node's connections hash in this bucket (conn -> user id)
-- KEYS[9] - the bucket's status expiries (zset user -> until ms)
-- KEYS[10] - the bucket's epoch (when its data began)
-- KEYS[11] - the change stream (last KEYS entry, see common.lua)
-- ARGV[1] - user id
-- ARGV[2] - node id
-- ARGV[3] - window ms
-- ARGV[4] - the presence channel
-- ARGV[5] - username, from the connection (used only for a user the store does not know)
-- ARGV[6] - the username lowercased by the caller
-- ARGV[7] - display name (idem)
-- ARGV[8] - avatar (idem)
-- ARGV[9] - utcOffset (idem; '' keeps the default)
-- ARGV[10] - the store epoch the node registered under, ms
-- ARGV[11] - '1' when ARGV[12..15] carry the node's memory of the user's choice, else '0'
-- ARGV[12] - chosen status: online, away, busy or offline
-- ARGV[13] - status text
-- ARGV[14] - until: when the chosen status expires, ms ('0' none)
-- ARGV[15] - seen at: the `at` of the entry the choice was read from (its version)
-- ARGV[16], ARGV[17], ... - connection id, its state (online or away), and so on
-- Returns 1 when the choice was applied, else 0. The choice is applied only where the store
-- lost it: the bucket's data began after ARGV[10] (a missing epoch means it begins now), and
-- the stored choice, if any, is older than what the node saw (chosen_at < ARGV[15]). It
-- takes the version it was seen at, so of two nodes restoring, the one that saw more wins.
local ctx = context(KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[3], ARGV[4])
local u = load_user(KEYS[1])
local known = u ~= nil
if not known then u = new_user(KEYS[1], ARGV[1]) end
local had_grace = u.grace_until ~= nil
local before = visible(u)
if not known then
  -- No trace of the user in the store: the connection's profile is all there is.
  if ARGV[8] ~= '' then u.avatar = ARGV[8] end
  if ARGV[9] ~= '' then u.utc = ARGV[9] end
  u.last_login = ctx.now
  if ARGV[5] ~= '' then rename(u, KEYS[7], ARGV[5], ARGV[6]) end
  if ARGV[7] ~= '' then u.name = ARGV[7] end
end
for i = 16, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1] .. ':' .. ARGV[2])
  redis.call('HSET', KEYS[8], ARGV[i], ARGV[1])
end
u.grace_until = nil
local epoch = tonumber(redis.call('GET', KEYS[10]))
if not epoch then
  epoch = ctx.now
  redis.call('SET', KEYS[10], num(epoch))
end
local applied = 0
local seen_at = tonumber(ARGV[15])
if ARGV[11] == '1' and epoch > tonumber(ARGV[10]) and u.chosen_at < seen_at then
  u.chosen = ARGV[12]
  u.text = ARGV[13]
  u.expires = tonumber(ARGV[14])
  if u.expires > 0 and u.expires <= ctx.now then
    -- Due while the data was lost: what the expiry would have left.
    u.chosen = 'online'
    u.text = ''
    u.expires = 0
  end
  if u.expires > 0 then
    redis.call('ZADD', KEYS[9], num(u.expires), u.id)
  else
    redis.call('ZREM', KEYS[9], u.id)
  end
  u.chosen_at = seen_at
  applied = 1
end
save(ctx, u, settle(ctx, u, KEYS[2], before), had_grace)
finish(ctx)
return applied
