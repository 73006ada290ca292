-- One more 5xx / timeout / connection error somewhere in the fleet. Opens the breaker when
-- ARGV[1] happened in a row over at least ARGV[2] seconds: an answer noted since the last
-- failure (`answered_at` in KEYS[2], the pace's hash: pace_observe.lua) ends the streak.
-- ARGV[3] first probe delay, ARGV[4] message. Returns 1 when this opened it, 2 when it was
-- open already, 0 when it stays closed.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local now_us = string.format('%.0f', tonumber(t[1]) * 1000000 + tonumber(t[2]))
local state = redis.call('HMGET', KEYS[1], 'state', 'fail_streak', 'fail_since', 'fail_last')
if state[1] == 'open' then
  return 2
end
local streak = tonumber(state[2]) or 0
local answered = tonumber(redis.call('HGET', KEYS[2], 'answered_at'))
if answered and answered > (tonumber(state[4]) or 0) then
  streak = 0
end
local since = tonumber(state[3]) or now
if streak == 0 then
  since = now
end
streak = streak + 1
redis.call('HSET', KEYS[1], 'fail_streak', streak, 'fail_since', string.format('%.3f', since),
  'fail_last', now_us)
if streak >= tonumber(ARGV[1]) and now - since >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'cause', 'unreachable',
    'since', string.format('%.3f', now), 'next_probe_at', string.format('%.3f', now + tonumber(ARGV[3])),
    'probes', 0, 'message', ARGV[4], 'fail_streak', 0)
  return 1
end
return 0
