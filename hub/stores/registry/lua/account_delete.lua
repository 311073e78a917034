-- KEYS[1] - the user's account hash
-- Deletes the account. Returns what it held (HGETALL), or false when there was none.
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then
  return false
end
redis.call('DEL', KEYS[1])
return fields
