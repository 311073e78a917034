-- set_status: set a user's chosen status and/or status text, its expiry and its privacy.
-- KEYS[1] - the user's hash
-- KEYS[2] - the user's connections hash
-- KEYS[3] - the bucket's change index
-- KEYS[4] - the bucket's not-offline set
-- KEYS[5] - the bucket's grace zset
-- KEYS[6] - the bucket's clock
-- KEYS[7] - the bucket's status expiries (zset user -> until ms)
-- KEYS[8] - the change stream (last KEYS entry, see common.lua)
-- ARGV[1] - chosen status: online, away, busy or offline ('' keeps it)
-- ARGV[2] - '1' when ARGV[3] carries a text, '0' to keep the text
-- ARGV[3] - status text (may be '')
-- ARGV[4] - window ms
-- ARGV[5] - the presence channel
-- ARGV[6] - until: when the chosen status expires, ms ('' none); a status or a text
--           replaces the expiry, a call with neither keeps it
-- ARGV[7] - last seen hidden by the user: '1' hide, '0' show, '' keep
-- Returns the user's row, or nil for an unknown user (nothing is created). Every call is a
-- choice: it versions the user's choice (common.lua chose).
local u = load_user(KEYS[1])
if not u then return false end
local ctx = context(KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[4], ARGV[5])
local had_grace = u.grace_until ~= nil
local before = visible(u)
if ARGV[1] ~= '' then u.chosen = ARGV[1] end
if ARGV[2] == '1' then u.text = ARGV[3] end
if ARGV[1] ~= '' or ARGV[2] == '1' then
  u.expires = tonumber(ARGV[6]) or 0
  if u.expires > 0 then
    redis.call('ZADD', KEYS[7], num(u.expires), u.id)
  else
    redis.call('ZREM', KEYS[7], u.id)
  end
end
if ARGV[7] ~= '' then u.hide_ls = ARGV[7] == '1' end
-- Saved even without a visible change: a chosen status set while offline still persists.
local changed = settle(ctx, u, KEYS[2], before)
chose(ctx, u)
save(ctx, u, changed, had_grace)
finish(ctx)
return row(u, KEYS[2])
