-- room_remove: take users of one bucket out of a room's order and numbers (a leave).
-- KEYS[1] - the bucket's clock (routes the call; its tag names the room index keys, see
--           common.lua)
-- ARGV[1] - the room id
-- ARGV[2] - the presence channel (the moves go to '<channel>:moves')
-- ARGV[3...] - user ids, all of this bucket
-- Returns how many of them were in the room.
local ctx = context(false, false, false, KEYS[1], 0, ARGV[2])
local room = ARGV[1]
local order = ctx.tag .. ':ro:' .. room
local numbers = ctx.tag .. ':rc:' .. room
local removed = 0
for i = 3, #ARGV do
  local uid = ARGV[i]
  local rec = rooms_of(ctx, uid)
  local at = false
  if rec then
    for j = 2, #rec do
      if rec[j] == room then at = j end
    end
  end
  if at then
    table.remove(rec, at)
    if #rec == 1 then
      redis.call('HDEL', ctx.tag .. ':ur', uid)
    else
      redis.call('HSET', ctx.tag .. ':ur', uid, cmsgpack.pack(rec))
    end
    redis.call('ZREM', order, rec[1])
    moved(ctx, room, uid, rec[1], false, tally(ctx, numbers, status_of(rec[1]), nil))
    removed = removed + 1
  end
end
publish_moves(ctx)
return removed
