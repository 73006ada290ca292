-- One more 5xx / timeout / connection error somewhere in the fleet. Opens the breaker when
-- ARGV[1] happened in a row (no answer in between: pace_observe.lua resets the streak) over at
-- least ARGV[2] seconds. ARGV[3] first probe delay, ARGV[4] message. Returns 1 when this
-- opened it, 2 when it was open already, 0 when it stays closed.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'state', 'fail_streak', 'fail_since')
if state[1] == 'open' then
  return 2
end
local streak = tonumber(state[2]) or 0
local since = tonumber(state[3]) or now
if streak == 0 then
  since = now
end
streak = streak + 1
redis.call('HSET', KEYS[1], 'fail_streak', streak, 'fail_since', string.format('%.3f', since))
if streak >= tonumber(ARGV[1]) and now - since >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'cause', 'unreachable',
    'since', string.format('%.3f', now), 'next_probe_at', string.format('%.3f', now + tonumber(ARGV[3])),
    'probes', 0, 'message', ARGV[4], 'fail_streak', 0)
  return 1
end
return 0
