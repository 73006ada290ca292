-- Every item of a worker's taking list back at the head of the queue, in one atomic step
-- (worker/process/recovery.py): BRPOP and BRPOPLPUSH take from the right, so RPUSH makes
-- each one next in line.
-- KEYS[1] the taking list, KEYS[2] the queue list. Returns how many items were moved.
local moved = 0
while true do
  local item = redis.call('RPOP', KEYS[1])
  if not item then return moved end
  redis.call('RPUSH', KEYS[2], item)
  moved = moved + 1
end
