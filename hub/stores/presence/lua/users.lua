-- users: read some users of one bucket.
-- KEYS[1] - any key of the bucket (its clock): routes the call to the bucket's slot
-- ARGV[1] - the prefix of the bucket's user hashes (+ user id = key; same hash tag)
-- ARGV[2] - the prefix of the bucket's connection hashes (+ user id = key; same hash tag)
-- ARGV[3...] - user ids
-- Returns one row per user, in ARGV order, nil for an unknown user.
local out = {}
for i = 3, #ARGV do
  out[i - 2] = read_row(ARGV[1] .. ARGV[i], ARGV[2] .. ARGV[i])
end
return out
