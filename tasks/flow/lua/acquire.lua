-- Take the fleet's next slot (GCRA) unless it starts later than the caller can wait.
-- KEYS[2] the breaker hash. ARGV[5] max wait (us, -1: no limit).
-- Returns {reserved 1/0 (-1: the breaker is open, nothing taken), slot_us, now_us, seq}.
if redis.call('HGET', KEYS[2], 'state') == 'open' then
  return {-1, now, now, 0}
end
local state = redis.call('HMGET', KEYS[1], 'tat', 'pause', 'rate', 'limit')
local tat = tonumber(state[1]) or 0
local pause = tonumber(state[2]) or 0
local rate, burst, interval = model(tonumber(state[3]), tonumber(state[4]))
local new_tat = math.max(tat, now) + interval
local slot = math.max(now, pause, new_tat - burst * interval)
local max_wait = tonumber(ARGV[5])
if max_wait >= 0 and slot - now > max_wait then
  return {0, math.floor(slot), now, 0}
end
redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', new_tat))
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('PEXPIRE', KEYS[1], ttl_ms)
return {1, math.floor(slot), now, seq}
