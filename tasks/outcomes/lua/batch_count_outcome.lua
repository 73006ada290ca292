-- The batch ledger's part of recording an outcome (tasks/outcomes/batches.py): the head of the
-- recorder's script (record_outcome_once.lua), so a batch's counters move in the same atomic
-- step as the outcome is recorded. Its keys and argument come last, so that the recorder's own
-- stay where they are: KEYS[n-3..n] = ledger, rows, batches, queue; ARGV[#ARGV] = JSON
-- {"batch", "rid", "state", "now_ms", "ttl_s", "withdraw"?} or "" (no batch, nothing to
-- withdraw). With "withdraw" (the exact queue item), the outcome is recorded only if the item
-- was still on the queue, and the item is removed in the same step: a withdrawn request never
-- also runs. Returns -1 (nothing recorded) when the item to withdraw was gone; else goes on.
local batch_arg = ARGV[#ARGV]
if batch_arg ~= '' then
  local b = cjson.decode(batch_arg)
  local n = #KEYS
  if b.withdraw and redis.call('LREM', KEYS[n], 1, b.withdraw) == 0 then
    return -1
  end
  if b.batch and redis.call('EXISTS', KEYS[1]) == 0 then
    local ledger, rows = KEYS[n-3], KEYS[n-2]
    local before = redis.call('HGET', rows, b.rid)
    if before then
      redis.call('HINCRBY', ledger, before, -1)
    else
      redis.call('HINCRBY', ledger, 'total', 1)
    end
    redis.call('HSET', rows, b.rid, b.state)
    redis.call('HINCRBY', ledger, b.state, 1)
    redis.call('HSET', ledger, 'last_outcome_ms', b.now_ms)
    redis.call('HSETNX', ledger, 'first_outcome_ms', b.now_ms)
    redis.call('ZADD', KEYS[n-1], tonumber(b.now_ms) / 1000, b.batch)
    redis.call('EXPIRE', ledger, b.ttl_s)
    redis.call('EXPIRE', rows, b.ttl_s)
  end
end
