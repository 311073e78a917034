-- reap: remove a node's connections in one bucket (a dead node, or a draining one).
-- KEYS[1] - the node's connections hash in this bucket (conn -> user id)
-- KEYS[2] - the bucket's change index
-- KEYS[3] - the bucket's not-offline set
-- KEYS[4] - the bucket's grace zset
-- KEYS[5] - the bucket's clock
-- KEYS[6] - the change stream (last KEYS entry, see common.lua)
-- ARGV[1] - the prefix of the bucket's user hashes (+ user id = key; same hash tag)
-- ARGV[2] - the prefix of the bucket's connection hashes (+ user id = key; same hash tag)
-- ARGV[3] - grace ms (0 when reaping a dead node: its TTL already waited)
-- ARGV[4] - window ms
-- ARGV[5] - the presence channel
-- ARGV[6] - HSCAN cursor ('0' to start)
-- ARGV[7] - HSCAN COUNT: about this many connections per call, so that reaping a node with
--           many connections never blocks Redis for long
-- Returns the next cursor: '0' when the node's hash is done. Idempotent: several nodes may
-- sweep at once.
local scan = redis.call('HSCAN', KEYS[1], ARGV[6], 'COUNT', ARGV[7])
local entries = scan[2]
if #entries == 0 then return scan[1] end
local by_user, order = {}, {}
for i = 1, #entries, 2 do
  redis.call('HDEL', KEYS[1], entries[i])
  local uid = entries[i + 1]
  if not by_user[uid] then
    by_user[uid] = {}
    order[#order + 1] = uid
  end
  local list = by_user[uid]
  list[#list + 1] = entries[i]
end
local ctx = context(KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[4], ARGV[5])
local grace = tonumber(ARGV[3])
for _, uid in ipairs(order) do
  local conns_key = ARGV[2] .. uid
  local u = load_user(ARGV[1] .. uid)
  if u then
    local removed = 0
    for _, conn in ipairs(by_user[uid]) do
      removed = removed + redis.call('HDEL', conns_key, conn)
    end
    if removed > 0 then
      local had_grace = u.grace_until ~= nil
      local before = visible(u)
      if redis.call('HLEN', conns_key) == 0 then
        if grace > 0 and u.status ~= 'offline' then
          u.grace_until = ctx.now + grace
        else
          u.grace_until = nil
        end
      end
      save(ctx, u, settle(ctx, u, conns_key, before), had_grace)
    end
  end
end
finish(ctx)
return scan[1]
