-- A write is about to be sent: the grant stays fenced while it may still land.
-- KEYS[1] the grant's fence (sorted set: write token -> Redis time in ms it may land until)
-- ARGV[1] the write's token; ARGV[2] how long it may take to land, in ms
-- Redis's clock, not the worker's: every worker of the fleet reads the same fence.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], tonumber(last[2]))
return 1
