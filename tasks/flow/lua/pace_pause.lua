-- Hold every worker's calls until ARGV[1] (epoch us); a pause is never shortened.
-- ARGV[2] idle TTL (ms). Returns {pause_us in force, extended 1/0}.
local until_us = tonumber(ARGV[1])
local pause = tonumber(redis.call('HGET', KEYS[1], 'pause')) or 0
if until_us <= pause then
  return {pause, 0}
end
redis.call('HSET', KEYS[1], 'pause', string.format('%.0f', until_us))
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('PEXPIRE', KEYS[1], math.max(0, math.floor((until_us - now) / 1000)) + tonumber(ARGV[2]))
return {until_us, 1}
