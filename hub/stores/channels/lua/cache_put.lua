-- cache_put: keep an event as a cache channel's last one, and end its miss window.
-- KEYS[1] - the channel's cached event (a string: "<event id>\n<frame>")
-- KEYS[2] - the channel's miss window (exists while a miss was already reported)
-- ARGV[1] - event id
-- ARGV[2] - the event's Pusher frame (JSON text)
-- ARGV[3] - time to live, ms
-- Returns 1.
redis.call('SET', KEYS[1], ARGV[1] .. '\n' .. ARGV[2], 'PX', ARGV[3])
redis.call('DEL', KEYS[2])
return 1
