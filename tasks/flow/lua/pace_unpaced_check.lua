-- With pacing off: may a call go now? KEYS[1] the flow hash, KEYS[2] the breaker hash.
-- Returns {breaker open 1/0, pause_us, now_us, failure streak}: one round trip per call.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local open = 0
if redis.call('HGET', KEYS[2], 'state') == 'open' then
  open = 1
end
local flow = redis.call('HMGET', KEYS[1], 'pause', 'answered_at')
local pause = tonumber(flow[1]) or 0
local breaker = redis.call('HMGET', KEYS[2], 'fail_streak', 'fail_last')
local streak = tonumber(breaker[1]) or 0
-- An answer noted since the last failure ended the streak (breaker_failure.lua's rule).
if (tonumber(flow[2]) or 0) > (tonumber(breaker[2]) or 0) then
  streak = 0
end
return {open, math.floor(pause), now, streak}
