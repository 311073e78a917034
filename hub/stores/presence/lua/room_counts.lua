-- room_counts: one bucket's share of a room's numbers (or of every user's).
-- KEYS[1] - the bucket's clock (routes the call; its tag names the room index keys, see
--           common.lua)
-- ARGV[1] - the room id ('' for the numbers of every user of the bucket)
-- Returns {seq, online, away, busy, total}: zeros for a room with no member here.
local tag = string.sub(KEYS[1], 1, #KEYS[1] - 6)
local key = tag .. ':tot'
if ARGV[1] ~= '' then key = tag .. ':rc:' .. ARGV[1] end
local v = redis.call('HMGET', key, 's', 'o', 'a', 'b', 't')
return {v[1] or '0', tonumber(v[2]) or 0, tonumber(v[3]) or 0, tonumber(v[4]) or 0,
        tonumber(v[5]) or 0}
