-- KEYS[1] - the user's account hash
-- ARGV    - field, value, field, value ... of the new account
-- Writes the account unless one exists. Returns 1, or 0 when it existed.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
