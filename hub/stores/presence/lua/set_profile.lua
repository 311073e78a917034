-- set_profile: create or update a user's username, name, avatar and utcOffset.
-- KEYS[1] - the user's hash
-- KEYS[2] - the user's connections hash
-- KEYS[3] - the bucket's change index
-- KEYS[4] - the bucket's not-offline set
-- KEYS[5] - the bucket's grace zset
-- KEYS[6] - the bucket's clock
-- KEYS[7] - the bucket's username index
-- KEYS[8] - the change stream (last KEYS entry, see common.lua)
-- ARGV[1] - user id
-- ARGV[2] - username ('' keeps the stored one)
-- ARGV[3] - the username lowercased by the caller
-- ARGV[4] - display name ('' keeps the stored one)
-- ARGV[5] - avatar ('' keeps the stored one)
-- ARGV[6] - utcOffset (always replaced)
-- ARGV[7] - '1' to create an unknown user, '0' to answer nil for it
-- ARGV[8] - window ms
-- ARGV[9] - the presence channel
-- Returns the user's row, or nil.
local u = load_user(KEYS[1])
if not u then
  if ARGV[7] ~= '1' then return false end
  u = new_user(KEYS[1], ARGV[1])
end
local ctx = context(KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[8], ARGV[9])
local had_grace = u.grace_until ~= nil
local before = visible(u)
if ARGV[5] ~= '' then u.avatar = ARGV[5] end
u.utc = ARGV[6]
if ARGV[2] ~= '' then
  rename(u, KEYS[7], ARGV[2], ARGV[3])
elseif u.lname ~= '' then
  redis.call('HSET', KEYS[7], u.lname, u.id)
end
if ARGV[4] ~= '' then u.name = ARGV[4] end
save(ctx, u, settle(ctx, u, KEYS[2], before), had_grace)
finish(ctx)
return row(u, KEYS[2])
