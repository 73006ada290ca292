-- With pacing off: may a call go now? KEYS[1] the flow hash, KEYS[2] the breaker hash.
-- Returns {breaker open 1/0, pause_us, now_us, failure streak}: one round trip per call.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local open = 0
if redis.call('HGET', KEYS[2], 'state') == 'open' then
  open = 1
end
local pause = tonumber(redis.call('HGET', KEYS[1], 'pause')) or 0
local streak = tonumber(redis.call('HGET', KEYS[2], 'fail_streak')) or 0
return {open, math.floor(pause), now, streak}
