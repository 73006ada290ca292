-- Take a call from the fleet's model of the tenant's bucket if one is due within ARGV[5] us (a
-- grace for the caller's sleep); otherwise take nothing and say when it would be, so that the
-- caller asks again. The model is a token bucket (`tokens` at `tok_t`), refilled at the learned
-- rate and capped at the tenant's bucket size. Nothing is reserved ahead: slot numbers then
-- follow the order calls are sent in, which `pace_observe.lua` relies on. KEYS[2] the breaker.
-- KEYS[3] (optional) a key set to ARGV[6] NX EX ARGV[7] with the slot taken, and only then:
-- what must be written before the call goes (tasks/delivery/ledger.py's sent marker).
-- Returns {taken 1/0 (-1: the breaker is open), slot_us, now_us, seq, paused 1/0,
-- KEYS[3] set now 1/0}.
if redis.call('HGET', KEYS[2], 'state') == 'open' then
  return {-1, now, now, 0, 0, 0}
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'tok_t', 'pause', 'rate', 'limit', 'seq',
  'exp_t')
local rate, burst, interval = model(tonumber(state[4]), tonumber(state[5]))
local tokens = tonumber(state[1])
local tok_t = tonumber(state[2]) or now
if tokens == nil then tokens = burst end
tokens = math.min(burst, tokens + math.max(0, now - tok_t) / interval)
local slot = now
if tokens < 1 then
  slot = now + (1 - tokens) * interval
end
local pause = tonumber(state[3]) or 0
local paused = 0
if pause > slot then
  slot = pause
  paused = 1
end
if slot - now > tonumber(ARGV[5]) then
  return {0, math.floor(slot), now, 0, paused, 0}
end
-- The sequence number is read above and written with the model: one HSET, as atomic.
local seq = (tonumber(state[6]) or 0) + 1
local fields = {'tokens', tostring(tokens - 1), 'tok_t', string.format('%.0f', now), 'seq', seq}
local renew = renewal_due(tonumber(state[7]), fields)
redis.call('HSET', KEYS[1], unpack(fields))
if renew then redis.call('PEXPIRE', KEYS[1], ttl_ms) end
local made = 0
if KEYS[3] and redis.call('SET', KEYS[3], ARGV[6], 'NX', 'EX', tonumber(ARGV[7])) then
  made = 1
end
return {1, math.floor(slot), now, seq, 0, made}
