-- Shared head of pace_acquire.lua and pace_observe.lua: the clock, the model's rate and burst.
-- KEYS[1] the fleet's flow hash. ARGV[1] ceiling rate (0: none), ARGV[2] ceiling burst
-- (0: none), ARGV[3] start rate, ARGV[4] idle TTL (ms). Microsecond integers fit a double.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ceiling = tonumber(ARGV[1])
local ceiling_burst = tonumber(ARGV[2])
local start_rate = tonumber(ARGV[3])
local ttl_ms = tonumber(ARGV[4])

local function model(learned, limit)
  local rate
  if learned == nil then
    if ceiling > 0 then rate = ceiling else rate = start_rate end
  else
    rate = learned
    if ceiling > 0 and ceiling < rate then rate = ceiling end
  end
  local burst
  if limit == nil then
    -- before the first headers: one call at a time (a ceiling keeps its own burst)
    if ceiling_burst > 0 then burst = ceiling_burst else burst = 1 end
  else
    burst = limit
    if ceiling_burst > 0 and ceiling_burst < burst then burst = ceiling_burst end
  end
  if burst < 1 then burst = 1 end
  return rate, burst, 1000000 / rate
end

-- The hash lives `ttl_ms` past its last use. Renewing that on every call is a command each
-- time; renewing once an eighth of it has passed since the last renewal (`exp_t`, read and
-- written with the rest of the state) keeps it between 7/8 and all of `ttl_ms` past its last
-- use, at a command per renewal. `fields` is the HSET's list, which gets `exp_t` then.
local function renewal_due(exp_t, fields)
  if exp_t ~= nil and now - exp_t < ttl_ms * 125 then return false end
  fields[#fields + 1] = 'exp_t'
  fields[#fields + 1] = string.format('%.0f', now)
  return true
end
