-- room_probe: what finding the member at a global index of a room asks each bucket (see
-- hub/stores/presence/select.py): the members at some of its indexes, or how many of its
-- members come before some member keys.
-- KEYS[1] - the bucket's clock (routes the call; its tag names the room index keys, see
--           common.lua)
-- ARGV[1] - the room id
-- ARGV[2] - 'at': ARGV[3...] are indexes; 'below': ARGV[3...] are member keys
-- Returns, in ARGV order, the member key at each index (false past the last), or the number
-- of members below each key.
local tag = string.sub(KEYS[1], 1, #KEYS[1] - 6)
local order = tag .. ':ro:' .. ARGV[1]
local out = {}
for i = 3, #ARGV do
  if ARGV[2] == 'at' then
    local found = redis.call('ZRANGE', order, ARGV[i], ARGV[i])
    out[#out + 1] = found[1] or false
  else
    out[#out + 1] = redis.call('ZLEXCOUNT', order, '-', '(' .. ARGV[i])
  end
end
return out
