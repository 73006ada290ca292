-- Open the breaker for ARGV[1] (a cause) unless it is open already. ARGV[2] first probe
-- delay (s), ARGV[3] a message without secrets. Returns 1 when this call opened it.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if redis.call('HGET', KEYS[1], 'state') == 'open' then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'open', 'cause', ARGV[1], 'since', string.format('%.3f', now),
  'next_probe_at', string.format('%.3f', now + tonumber(ARGV[2])), 'probes', 0,
  'message', ARGV[3], 'fail_streak', 0)
return 1
