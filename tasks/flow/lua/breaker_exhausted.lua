-- A request spent its whole retry budget on 5xx / timeouts / connection errors, ARGV[1] in a
-- row. When the fleet saw no answer at all meanwhile (the failure streak holds at least those,
-- and at least 2, and no answer was noted in KEYS[2], the pace's hash, since the last failure),
-- the outage is sustained: open the breaker. ARGV[2] first probe delay,
-- ARGV[3] message. Returns 1 when this opened it, 2 when it was open, 0 otherwise.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'state', 'fail_streak', 'fail_last')
if state[1] == 'open' then
  return 2
end
local streak = tonumber(state[2]) or 0
local answered = tonumber(redis.call('HGET', KEYS[2], 'answered_at'))
if answered and answered > (tonumber(state[3]) or 0) then
  streak = 0
end
local mine = tonumber(ARGV[1])
if streak < 2 or streak < mine then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'open', 'cause', 'unreachable',
  'since', string.format('%.3f', now), 'next_probe_at', string.format('%.3f', now + tonumber(ARGV[2])),
  'probes', 0, 'message', ARGV[3], 'fail_streak', 0)
return 1
