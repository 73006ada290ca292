-- The one probe of the fleet: granted to the first caller at or after next_probe_at, which
-- moves on by 1, 2, 4 … s (capped at ARGV[1] s). ARGV[2] = 1 probes now (a secret file
-- changed). Returns 1 when the caller must probe.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'state', 'next_probe_at', 'probes')
if state[1] ~= 'open' then
  return 0
end
local due = tonumber(state[2]) or 0
if ARGV[2] ~= '1' and now < due then
  return 0
end
local probes = tonumber(state[3]) or 0
local interval = math.min(tonumber(ARGV[1]), 2 ^ math.min(probes, 16))
redis.call('HSET', KEYS[1], 'probes', probes + 1,
  'next_probe_at', string.format('%.3f', now + interval))
return 1
