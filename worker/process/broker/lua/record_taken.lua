-- A message this worker just moved into its taking list, recorded as unacknowledged, in one
-- atomic step (worker/process/broker/qos.py, TrackingQoS.append): kombu's record (index and
-- hash; the tag bears the worker's mark), the item out of the taking list, and, optionally,
-- the delivery counted (tasks/delivery/receipt.py).
-- A write refused for a full or read-only Redis is refused at the first one: nothing changes.
-- KEYS[1] kombu's unacked index, KEYS[2] kombu's unacked hash, KEYS[3] the taking list,
-- KEYS[4] (optional) the delivery count.
-- ARGV[1] the delivery tag, ARGV[2] the delivery time (index score), ARGV[3] kombu's record,
-- ARGV[4] the item as it was moved into the taking list ('' when it was not),
-- ARGV[5] the delivery count's lifetime in seconds.
-- Returns the deliveries so far, this one included; false when not counted (no KEYS[4], or
-- a count Redis refused: a damaged key is left to the consumer's own count).
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
if ARGV[4] ~= '' then
  redis.call('LREM', KEYS[3], 1, ARGV[4])
end
if not KEYS[4] then
  return false
end
-- The first delivery (nearly every one) costs one command: SET NX EX. Later ones count on and
-- set the lifetime afresh, as INCR then EXPIRE always did.
local first = redis.pcall('SET', KEYS[4], 1, 'NX', 'EX', ARGV[5])
if type(first) == 'table' then
  if first.ok then
    return 1
  end
  return false
end
local count = redis.pcall('INCR', KEYS[4])
if type(count) ~= 'number' then
  return false
end
redis.pcall('EXPIRE', KEYS[4], ARGV[5])
return count
