-- connect: register one connection of a user on a node (RedisStore.connect).
-- KEYS[1] - the user's hash
-- KEYS[2] - the user's connections hash (conn -> '<state>:<node>')
-- KEYS[3] - the bucket's change index (zset user -> at)
-- KEYS[4] - the bucket's not-offline set
-- KEYS[5] - the bucket's grace zset (user -> deadline ms)
-- KEYS[6] - the bucket's clock
-- KEYS[7] - the bucket's username index (lowercased username -> user id)
-- KEYS[8] - the node's connections hash in this bucket (conn -> user id)
-- KEYS[9] - the change stream (last KEYS entry, see common.lua)
-- ARGV[1] - user id
-- ARGV[2] - connection id
-- ARGV[3] - node id
-- ARGV[4] - connection state: online or away
-- ARGV[5] - username ('' keeps the stored one)
-- ARGV[6] - the username lowercased by the caller (Unicode-aware, unlike string.lower)
-- ARGV[7] - display name ('' keeps the stored one)
-- ARGV[8] - avatar ('' keeps the stored one)
-- ARGV[9] - utcOffset ('' keeps the stored one)
-- ARGV[10] - window ms (index trimming)
-- ARGV[11] - the presence channel
-- Returns the user's row after the change. A reconnect inside the grace changes nothing
-- visible, so it publishes nothing.
local ctx = context(KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[10], ARGV[11])
local u = load_user(KEYS[1]) or new_user(KEYS[1], ARGV[1])
local had_grace = u.grace_until ~= nil
local before = visible(u)
if ARGV[8] ~= '' then u.avatar = ARGV[8] end
if ARGV[9] ~= '' then u.utc = ARGV[9] end
u.last_login = ctx.now
if ARGV[5] ~= '' then rename(u, KEYS[7], ARGV[5], ARGV[6]) end
if ARGV[7] ~= '' then u.name = ARGV[7] end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4] .. ':' .. ARGV[3])
redis.call('HSET', KEYS[8], ARGV[2], ARGV[1])
u.grace_until = nil
save(ctx, u, settle(ctx, u, KEYS[2], before), had_grace)
finish(ctx)
return row(u, KEYS[2])
