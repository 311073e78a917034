-- users: read some users of one bucket.
-- KEYS[2i-1] - the i-th user's hash
-- KEYS[2i] - the i-th user's connections hash
-- (no ARGV)
-- Returns one row per user, in KEYS order, nil for an unknown user.
local out = {}
for i = 1, #KEYS, 2 do
  local u = load_user(KEYS[i])
  if u then out[#out + 1] = row(u, KEYS[i + 1]) else out[#out + 1] = false end
end
return out
