-- KEYS[1] - the room hash
-- KEYS[2] - the room index: lex zset of '<created:015d>:<room>'
-- KEYS[3] - the room's members (set)
-- KEYS[4] - the room's membership log: user -> at of its last change
-- ARGV[1] - the room id
-- ARGV[2] - the window in ms
-- ARGV[3] - the prefix of the sets of rooms each user's joins created; with the creator's id
--           it names a key of this same hash slot (the rooms' tag), which loses the room
-- Deletes the room; every member leaves at one at, recorded in the log so that a delta
-- since an earlier cursor still reports them as gone. The caller removes the room from
-- each member's set of rooms. Returns {at, member, member, ...}, or false when unknown.
local created = redis.call('HGET', KEYS[1], 'created')
if not created then
  return false
end
redis.call('ZREM', KEYS[2], string.rep('0', 15 - #created) .. created .. ':' .. ARGV[1])
local creator = redis.call('HGET', KEYS[1], 'creator')
if creator then
  redis.call('SREM', ARGV[3] .. creator, ARGV[1])
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local members = redis.call('SMEMBERS', KEYS[3])
local at = now
for _, user in ipairs(members) do
  local previous = tonumber(redis.call('ZSCORE', KEYS[4], user) or '0')
  if previous + 1 > at then
    at = previous + 1
  end
end
for _, user in ipairs(members) do
  redis.call('ZADD', KEYS[4], at, user)
end
redis.call('DEL', KEYS[1], KEYS[3])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. string.format('%d', at - tonumber(ARGV[2])))
redis.call('PEXPIRE', KEYS[4], ARGV[2])
local reply = {at}
for _, user in ipairs(members) do
  reply[#reply + 1] = user
end
return reply
