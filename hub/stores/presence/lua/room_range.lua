-- room_range: consecutive members of a room's order in one bucket, with the bucket's share
-- of the numbers at that moment (its seq says which moves the answer holds).
-- KEYS[1] - the bucket's clock (routes the call; its tag names the room index keys, see
--           common.lua)
-- ARGV[1] - the room id
-- ARGV[2] - 'rank': from the index ARGV[3] on; 'from': from the member key ARGV[3] on
--           (included; '' is the first); 'after': after the member key ARGV[3]
-- ARGV[3] - the index or the member key
-- ARGV[4] - at most this many members
-- ARGV[5] - '1' to answer each member's presence row too, '0' for keys only
-- ARGV[6] - the prefix of the bucket's user hashes (+ user id = key; same hash tag)
-- ARGV[7] - the prefix of the bucket's connection hashes (+ user id = key; same hash tag)
-- Returns {seq, online, away, busy, total, below, n, key..., row...}: below is how many of
-- the bucket's members come before the first one answered; a row is false for a member the
-- presence store never saw.
local tag = string.sub(KEYS[1], 1, #KEYS[1] - 6)
local order = tag .. ':ro:' .. ARGV[1]
local v = redis.call('HMGET', tag .. ':rc:' .. ARGV[1], 's', 'o', 'a', 'b', 't')
local count = tonumber(ARGV[4])
local keys, below
if ARGV[2] == 'rank' then
  below = math.min(tonumber(ARGV[3]), redis.call('ZCARD', order))
  keys = redis.call('ZRANGE', order, below, below + count - 1)
elseif ARGV[2] == 'from' then
  if ARGV[3] == '' then
    below = 0
    keys = redis.call('ZRANGEBYLEX', order, '-', '+', 'LIMIT', 0, count)
  else
    below = redis.call('ZLEXCOUNT', order, '-', '(' .. ARGV[3])
    keys = redis.call('ZRANGEBYLEX', order, '[' .. ARGV[3], '+', 'LIMIT', 0, count)
  end
else
  below = redis.call('ZLEXCOUNT', order, '-', '[' .. ARGV[3])
  keys = redis.call('ZRANGEBYLEX', order, '(' .. ARGV[3], '+', 'LIMIT', 0, count)
end
local out = {v[1] or '0', tonumber(v[2]) or 0, tonumber(v[3]) or 0, tonumber(v[4]) or 0,
             tonumber(v[5]) or 0, below, #keys}
for i = 1, #keys do out[#out + 1] = keys[i] end
if ARGV[5] == '1' then
  for i = 1, #keys do
    local key = keys[i]
    local uid = string.sub(key, string.find(key, '\0', 1, true) + 1)
    out[#out + 1] = read_row(ARGV[6] .. uid, ARGV[7] .. uid)
  end
end
return out
