-- Close the breaker after a probe succeeded. Returns {1, seconds it was open, cause} when this
-- call closed it, {0, 0, ''} when it was not open.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'state', 'since', 'cause')
if state[1] ~= 'open' then
  return {0, '0', ''}
end
redis.call('HSET', KEYS[1], 'state', 'closed', 'cause', '', 'since', string.format('%.3f', now),
  'next_probe_at', '', 'probes', 0, 'message', '', 'fail_streak', 0)
return {1, string.format('%.3f', now - (tonumber(state[2]) or now)), state[3] or ''}
