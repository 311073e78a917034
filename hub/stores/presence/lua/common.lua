-- common: helpers prepended to every script of this folder; no KEYS or ARGV of its own.
-- They mirror hub/model/presence.py (effective status, next_stamp, settle), so the Lua and the
-- Python rules stay side by side. A user is a Lua table loaded from its hash; a context
-- (ctx) carries the bucket's keys, the clock and the batch this call will publish.
-- LAST_SEEN (a boolean the store puts in front of this file: HUB_LAST_SEEN=everyone) says
-- whether entries may carry lastSeen at all.
-- Every script that publishes (calls context/finish) passes the change stream it appends to
-- as its LAST KEYS entry (KEYS[#KEYS]): scripts may gain keys before it without touching
-- this file. On one Redis that is <prefix>changes; on a cluster the bucket's own stream.
-- The room index (hub.model.roster, hub.stores.presence.memory_rooms is the reference) lives
-- in the bucket's slot too, under the bucket's tag T (the clock key minus ':clock'):
-- T:ur (hash: user -> msgpack {member key, room, room, ...}), T:ro:<room> (zset, all
-- scores 0: the members' keys), T:rc:<room> (hash o, a, b, t, s: the bucket's share of the
-- room's numbers and the sequence number of its last move) and T:tot (the same numbers for
-- every user of the bucket). save() keeps them in step with each presence change; the
-- moves go out on '<channel>:moves' (finish).

-- Redis 5/6 need this for TIME before writes; on Redis 7 it is a no-op.
if redis.replicate_commands then redis.replicate_commands() end

local FIELDS = {'id', 'username', 'lname', 'name', 'chosen', 'text', 'status', 'at',
                'avatar', 'utc', 'last_login', 'grace_until', 'last_seen', 'until', 'hide_ls',
                'chosen_at'}

-- Integers as plain digits: tostring() would switch to exponent notation past 14 digits.
local function num(n)
  return string.format('%.0f', n)
end

local function time_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The store clock of a bucket: Redis TIME, never below the largest stamp already given.
local function clock_now(clock_key)
  local now = time_ms()
  local last = tonumber(redis.call('GET', clock_key) or 0) or 0
  if last > now then return last end
  return now
end

local function context(idx, on, grace, clock, window, channel)
  local now = clock_now(clock)
  return {idx = idx, on = on, grace = grace, clock = clock, window = tonumber(window),
          channel = channel, stream = KEYS[#KEYS], now = now, stamp = now, users = {},
          tag = string.sub(clock, 1, #clock - 6), rooms = {}, moved = {}, totals = false}
end

local function load_user(key)
  local v = redis.call('HMGET', key, unpack(FIELDS))
  if not v[1] then return nil end
  return {key = key, id = v[1], username = v[2] or '', lname = v[3] or '', name = v[4] or '',
          chosen = v[5] or 'online', text = v[6] or '', status = v[7] or 'offline',
          at = tonumber(v[8]) or 0, avatar = v[9] or '', utc = v[10] or '0',
          last_login = tonumber(v[11]) or 0, grace_until = tonumber(v[12]),
          -- `until` is a Lua keyword: the status expiry is `expires` here.
          last_seen = tonumber(v[13]) or 0, expires = tonumber(v[14]) or 0,
          hide_ls = v[15] == '1', had_expires = v[14] ~= false, had_hide = v[15] ~= false,
          chosen_at = tonumber(v[16]) or 0, was = v[7] or 'offline'}
end

local function new_user(key, id)
  return {key = key, id = id, username = '', lname = '', name = '', chosen = 'online',
          text = '', status = 'offline', at = 0, avatar = '', utc = '0', last_login = 0,
          last_seen = 0, expires = 0, hide_ls = false, chosen_at = 0, was = false}
end

-- A user's choice (chosen status, text, expiry, privacy) changed: version it with the stamp
-- of the change, or the clock when nothing visible changed, so a node that saw an older
-- entry can tell its memory of the choice is stale (restore.lua). Call after settle.
local function chose(ctx, u)
  if u.at > ctx.now then u.chosen_at = u.at else u.chosen_at = ctx.now end
end

-- Connection values are '<state>:<node>'; the state never contains ':'.
local function split(value)
  local sep = string.find(value, ':', 1, true)
  return string.sub(value, 1, sep - 1), string.sub(value, sep + 1)
end

-- presence.shown_last_seen / shown_until: what an entry shows of the two extras (0: none).
local function shown_last_seen(u)
  if u.status == 'offline' and u.last_seen > 0 and not u.hide_ls then return u.last_seen end
  return 0
end

local function shown_until(u)
  if u.expires > 0 and u.status ~= 'offline' then return u.expires end
  return 0
end

local function visible(u)
  return {u.status, u.text, u.name, u.username, shown_last_seen(u), shown_until(u)}
end

-- presence.effective_status: offline without connections (the last status holds inside
-- the grace); else the chosen status unless automatic; else online if any connection is.
local function effective(u, conns_key)
  local states = redis.call('HVALS', conns_key)
  if #states == 0 then
    if u.grace_until then return u.status end
    return 'offline'
  end
  if u.chosen ~= 'online' then return u.chosen end
  for i = 1, #states do
    if string.sub(states[i], 1, 7) == 'online:' then return 'online' end
  end
  return 'away'
end

-- Recompute the status; stamp `at` (presence.next_stamp) only on a visible change.
-- Going offline (the last connection gone, or invisible chosen) stamps last seen.
local function settle(ctx, u, conns_key, before)
  u.status = effective(u, conns_key)
  local offline = u.status == 'offline' and before[1] ~= 'offline'
  if not offline and u.status == before[1] and u.text == before[2] and u.name == before[3]
      and u.username == before[4] and shown_last_seen(u) == before[5]
      and shown_until(u) == before[6] then
    return false
  end
  if ctx.now > u.at then u.at = ctx.now else u.at = u.at + 1 end
  if offline then u.last_seen = u.at end
  return true
end

-- Point the username index at this user; drop its old name if that still pointed here.
local function rename(u, names_key, username, lname)
  if u.lname ~= '' and u.lname ~= lname and redis.call('HGET', names_key, u.lname) == u.id then
    redis.call('HDEL', names_key, u.lname)
  end
  u.username = username
  u.lname = lname
  redis.call('HSET', names_key, lname, u.id)
end

-- The entry others see (presence.entry_of).
local function entry_of(u)
  local entry = {id = u.id, username = u.username, name = u.name, status = u.status,
                 text = u.text, at = u.at}
  if LAST_SEEN and shown_last_seen(u) > 0 then entry.lastSeen = u.last_seen end
  if shown_until(u) > 0 then entry['until'] = u.expires end
  return entry
end

-- roster.member_key: status rank, for offline members 2^48-1-lastSeen in 12 hex digits,
-- the name without control characters, NUL, the id; byte order is the members' order.
local RANK = {online = '0', away = '1', busy = '2', offline = '3'}
local STATUS_OF = {['0'] = 'online', ['1'] = 'away', ['2'] = 'busy', ['3'] = 'offline'}
local SEEN_MAX = 281474976710655
local function member_key(u)
  local rank = RANK[u.status] or '3'
  local name = string.gsub(u.name, '[%z\1-\31]', '')
  if rank == '3' then
    local seen = 0
    if LAST_SEEN then seen = shown_last_seen(u) end
    return '3' .. string.format('%012x', SEEN_MAX - seen) .. name .. '\0' .. u.id
  end
  return rank .. name .. '\0' .. u.id
end

local function status_of(key)
  if not key then return nil end
  return STATUS_OF[string.sub(key, 1, 1)] or 'offline'
end

-- Move one member between statuses in a numbers hash (before/after nil: not a member on
-- that side), count the move (roster.next_seq) and answer {seq, online, away, busy, total}.
-- At 0 members only the seq stays: a read then still says which moves it holds.
local COUNTED = {online = 'o', away = 'a', busy = 'b'}
local function tally(ctx, key, before, after)
  if before == nil then redis.call('HINCRBY', key, 't', 1) end
  if after == nil then redis.call('HINCRBY', key, 't', -1) end
  if before ~= after then
    if COUNTED[before] then redis.call('HINCRBY', key, COUNTED[before], -1) end
    if COUNTED[after] then redis.call('HINCRBY', key, COUNTED[after], 1) end
  end
  local v = redis.call('HMGET', key, 's', 'o', 'a', 'b', 't')
  local seq = math.max((tonumber(v[1]) or 0) + 1, ctx.now * 1024)
  local part = {seq, tonumber(v[2]) or 0, tonumber(v[3]) or 0, tonumber(v[4]) or 0,
                tonumber(v[5]) or 0}
  redis.call('HSET', key, 's', num(seq))
  if part[5] <= 0 then redis.call('HDEL', key, 'o', 'a', 'b', 't') end
  return part
end

-- Record one move for '<channel>:moves': {room, user, before key, after key, part...}.
local function moved(ctx, room, uid, before, after, part)
  ctx.rooms[#ctx.rooms + 1] = {room, uid, before or '', after or '', part[1], part[2],
                               part[3], part[4], part[5]}
end

-- The user's rooms: its member key first, then the rooms (false when in none).
local function rooms_of(ctx, uid)
  local rec = redis.call('HGET', ctx.tag .. ':ur', uid)
  if not rec then return false end
  return cmsgpack.unpack(rec)
end

-- After a visible change: move the user in each of its rooms (order and numbers) when its
-- member key changed, and count it in the bucket's numbers of all users. O(1) per room.
local function rooms_sync(ctx, u)
  if u.was ~= u.status then
    local before = u.was or nil
    ctx.totals = tally(ctx, ctx.tag .. ':tot', before, u.status)
    -- The totals hash never reaches 0 members while it holds this user.
    u.was = u.status
  end
  local rec = rooms_of(ctx, u.id)
  if not rec then return end
  local before = rec[1]
  local after = member_key(u)
  if before == after then return end
  rec[1] = after
  redis.call('HSET', ctx.tag .. ':ur', u.id, cmsgpack.pack(rec))
  local sb, sa = status_of(before), u.status
  for i = 2, #rec do
    local order = ctx.tag .. ':ro:' .. rec[i]
    redis.call('ZREM', order, before)
    redis.call('ZADD', order, 0, after)
    moved(ctx, rec[i], u.id, before, after, tally(ctx, ctx.tag .. ':rc:' .. rec[i], sb, sa))
  end
  ctx.moved[#ctx.moved + 1] = entry_of(u)
end

-- Write the user back; on a visible change index it and queue its entry for the batch.
-- The extras are written only when set, so a user who never had them costs no field.
local function save(ctx, u, changed, had_grace)
  local fields = {'id', u.id, 'username', u.username, 'lname', u.lname,
                  'name', u.name, 'chosen', u.chosen, 'text', u.text, 'status', u.status,
                  'at', num(u.at), 'avatar', u.avatar, 'utc', u.utc,
                  'last_login', num(u.last_login)}
  if u.last_seen > 0 then
    fields[#fields + 1] = 'last_seen'
    fields[#fields + 1] = num(u.last_seen)
  end
  if u.expires > 0 then
    fields[#fields + 1] = 'until'
    fields[#fields + 1] = num(u.expires)
  elseif u.had_expires then
    redis.call('HDEL', u.key, 'until')
  end
  if u.hide_ls then
    fields[#fields + 1] = 'hide_ls'
    fields[#fields + 1] = '1'
  elseif u.had_hide then
    redis.call('HDEL', u.key, 'hide_ls')
  end
  if u.chosen_at > 0 then
    fields[#fields + 1] = 'chosen_at'
    fields[#fields + 1] = num(u.chosen_at)
  end
  redis.call('HSET', u.key, unpack(fields))
  if u.grace_until then
    redis.call('HSET', u.key, 'grace_until', num(u.grace_until))
    redis.call('ZADD', ctx.grace, num(u.grace_until), u.id)
  elseif had_grace then
    redis.call('HDEL', u.key, 'grace_until')
    redis.call('ZREM', ctx.grace, u.id)
  end
  if changed then
    redis.call('ZADD', ctx.idx, num(u.at), u.id)
    if u.status == 'offline' then
      redis.call('SREM', ctx.on, u.id)
    else
      redis.call('SADD', ctx.on, u.id)
    end
    if u.at > ctx.stamp then ctx.stamp = u.at end
    ctx.users[#ctx.users + 1] = entry_of(u)
    rooms_sync(ctx, u)
  elseif u.was == false then
    -- A new user without a visible change still counts among all users.
    ctx.totals = tally(ctx, ctx.tag .. ':tot', nil, u.status)
    u.was = u.status
  end
end

-- After the changes: advance the clock, trim the index to one window, publish the batch
-- and append it to the change stream (field d, the same msgpack map), dropping stream
-- entries older than one window (MINID ~: whole macro nodes only, so cheap).
-- Nothing changed, nothing written, nothing published. The room index's moves (with the
-- bucket's new numbers of all users when they changed too) go to every hub on
-- '<channel>:moves', apart from the public channel: {v, cursor, bucket, rooms = {{room, user, before, after, seq, online,
-- away, busy, total}...}, users = the moved users' entries, totals = {seq, o, a, b, t}}.
-- Only moves in rooms are published: the numbers of all users change with almost every
-- change, and a second message per change to every hub would double the pub/sub cost, so
-- nodes that follow them read them again after a tick with changes (hub.node.views).
local function publish_moves(ctx)
  if #ctx.rooms == 0 then return end
  local moves = {v = 1, cursor = ctx.stamp, bucket = ctx.tag, rooms = ctx.rooms,
                 users = ctx.moved}
  if ctx.totals then moves.totals = ctx.totals end
  redis.call('PUBLISH', ctx.channel .. ':moves', cmsgpack.pack(moves))
end

local function finish(ctx)
  if #ctx.users == 0 then
    publish_moves(ctx)
    return
  end
  redis.call('SET', ctx.clock, num(ctx.stamp))
  redis.call('ZREMRANGEBYSCORE', ctx.idx, '-inf', '(' .. num(ctx.stamp - ctx.window))
  local batch = cmsgpack.pack({v = 1, cursor = ctx.stamp, users = ctx.users})
  redis.call('PUBLISH', ctx.channel, batch)
  redis.call('XADD', ctx.stream, 'MINID', '~', num(ctx.now - ctx.window), '*', 'd', batch)
  publish_moves(ctx)
end

-- One user as the Python side reads it (redis.py _view), from a loaded user ...
local function row(u, conns_key)
  return {u.id, u.username, u.name, u.status, u.text, num(u.at), u.chosen, u.avatar, u.utc,
          num(u.last_login), redis.call('HLEN', conns_key), num(u.last_seen), num(u.expires),
          u.hide_ls and '1' or '0'}
end

-- ... or straight from Redis, for reads of many users (no table per user); false if unknown.
local ROW_FIELDS = {'id', 'username', 'name', 'status', 'text', 'at', 'chosen', 'avatar', 'utc',
                    'last_login', 'last_seen', 'until', 'hide_ls'}
local function read_row(user_key, conns_key)
  local v = redis.call('HMGET', user_key, unpack(ROW_FIELDS))
  if not v[1] then return false end
  table.insert(v, 11, redis.call('HLEN', conns_key))
  return v
end

