-- cache_get: a cache channel's last event; on a miss, whether it is the first of a window.
-- KEYS[1] - the channel's cached event (a string: "<event id>\n<frame>")
-- KEYS[2] - the channel's miss window (exists while a miss was already reported)
-- ARGV[1] - the miss window, ms
-- Returns {cached, first miss}: cached the stored string or false; first miss 1 when there
-- is no event and no miss window was open (this read opened one: it alone reports the miss).
local held = redis.call('GET', KEYS[1])
if held then return {held, 0} end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then return {false, 1} end
return {false, 0}
