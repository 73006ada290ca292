-- How many ms the grant stays fenced: until the last write whose reply was lost can no
-- longer land (0: not fenced).
-- KEYS[1] the grant's fence (sorted set: write token -> Redis time in ms it may land until)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #last == 0 then
    return 0
end
return tonumber(last[2]) - now
