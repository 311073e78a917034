-- changes: one bucket's answer to "what changed since T" (a delta or a full snapshot).
-- KEYS[1] - the bucket's change index (zset user -> at)
-- KEYS[2] - the bucket's not-offline set
-- KEYS[3] - the bucket's clock
-- KEYS[4] - the bucket's epoch: when its data began; a cursor from before it (the data was
--           lost since, e.g. Redis restarted empty) gets a snapshot, never a partial delta
-- ARGV[1] - the prefix of the bucket's user hashes (+ user id = key; same hash tag)
-- ARGV[2] - the prefix of the bucket's connection hashes (+ user id = key; same hash tag)
-- ARGV[3] - since, ms ('' = none: snapshot)
-- ARGV[4] - window ms
-- ARGV[5] - 'full' to force a snapshot, '' to decide here from since and the window
-- ARGV[6] - inline limit: up to this many users come as rows; more come as ids only, for
--           the caller to read in chunks (one long script would block Redis)
-- ARGV[7] - where the delta's range starts, ms (<= since: a multi-bucket store reads a
--           little early for clock skew between cluster masters)
-- Returns {full (1/0), cursor, inline (1/0), row or id...}: a delta holds every user whose
-- at >= since, offline ones included; a snapshot every user not offline. The cursor is the
-- bucket clock: at or above every at in the answer, at or below every later stamp.
local now = clock_now(KEYS[3])
local since = tonumber(ARGV[3])
local epoch = tonumber(redis.call('GET', KEYS[4]))
if not epoch then
  epoch = now
  redis.call('SET', KEYS[4], num(now))
end
local full = ARGV[5] == 'full' or not since or since < now - tonumber(ARGV[4])
  or since < epoch
local ids
if full then
  ids = redis.call('SMEMBERS', KEYS[2])
else
  ids = redis.call('ZRANGEBYSCORE', KEYS[1], num(tonumber(ARGV[7]) or since), '+inf')
end
if #ids > tonumber(ARGV[6]) then
  local out = {full and 1 or 0, num(now), 0}
  for i = 1, #ids do out[i + 3] = ids[i] end
  return out
end
local out = {full and 1 or 0, num(now), 1}
for _, uid in ipairs(ids) do
  local r = read_row(ARGV[1] .. uid, ARGV[2] .. uid)
  if r then out[#out + 1] = r end
end
return out
