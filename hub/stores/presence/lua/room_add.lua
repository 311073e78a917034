-- room_add: place users of one bucket in a room's order and numbers (a join).
-- KEYS[1] - the bucket's clock (routes the call; its tag names the room index keys, see
--           common.lua)
-- ARGV[1] - the room id
-- ARGV[2] - the presence channel (the moves go to '<channel>:moves')
-- ARGV[3] - the prefix of the bucket's user hashes (+ user id = key; same hash tag)
-- ARGV[4...] - user ids, all of this bucket
-- Returns how many users were placed; one already in the room is left as it is. A user the
-- presence store never saw is placed as offline with no name.
local ctx = context(false, false, false, KEYS[1], 0, ARGV[2])
local room = ARGV[1]
local order = ctx.tag .. ':ro:' .. room
local numbers = ctx.tag .. ':rc:' .. room
local placed = 0
for i = 4, #ARGV do
  local uid = ARGV[i]
  local rec = rooms_of(ctx, uid)
  local u = load_user(ARGV[3] .. uid) or new_user(ARGV[3] .. uid, uid)
  local member = false
  if rec then
    for j = 2, #rec do
      if rec[j] == room then member = true end
    end
  else
    rec = {member_key(u)}
  end
  if not member then
    rec[#rec + 1] = room
    redis.call('HSET', ctx.tag .. ':ur', uid, cmsgpack.pack(rec))
    redis.call('ZADD', order, 0, rec[1])
    moved(ctx, room, uid, false, rec[1], tally(ctx, numbers, nil, status_of(rec[1])))
    ctx.moved[#ctx.moved + 1] = entry_of(u)
    placed = placed + 1
  end
end
publish_moves(ctx)
return placed
