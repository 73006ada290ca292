-- Enqueue a batch's messages and count them in its ledger (tasks/outcomes/batches.py) in one
-- step: an interrupted producer has counted exactly what it queued.
-- KEYS[1] queue, KEYS[2] ledger, KEYS[3] rows, KEYS[4] batches.
-- ARGV[1] batch_id, ARGV[2] now_ms, ARGV[3] ttl_s, then (request_id, queue item) pairs.
-- Returns how many messages were pushed.
local ledger, rows = KEYS[2], KEYS[3]
for i = 4, #ARGV, 2 do
  redis.call('LPUSH', KEYS[1], ARGV[i + 1])
  local before = redis.call('HGET', rows, ARGV[i])
  if before ~= 'queued' then
    if before then
      redis.call('HINCRBY', ledger, before, -1)
    else
      redis.call('HINCRBY', ledger, 'total', 1)
    end
    redis.call('HSET', rows, ARGV[i], 'queued')
    redis.call('HINCRBY', ledger, 'queued', 1)
  end
end
redis.call('HSETNX', ledger, 'first_enqueued_ms', ARGV[2])
redis.call('ZADD', KEYS[4], tonumber(ARGV[2]) / 1000, ARGV[1])
redis.call('EXPIRE', ledger, ARGV[3])
redis.call('EXPIRE', rows, ARGV[3])
return #ARGV / 2 - 1
