-- Take a dead letter for replay (tasks/outcomes/replays.py), the record owner's step: the
-- letter leaves the dead stream, the request's outcome record and delivery count are
-- forgotten, and the record's fingerprint goes back into a claim, so that the request id stays
-- owned by its request while the replay is queued. Only the caller whose XDEL removed the
-- letter gets 1 and changes anything: each letter is replayed once, however many replays run.
-- The record's format belongs to tasks/outcomes/records.py ("{letter} {entry id} {fingerprint}",
-- the fingerprint possibly empty); the claim's to tasks/outcomes/claims.py.
-- KEYS[1] dead stream, KEYS[2] outcome record, KEYS[3] delivery count, KEYS[4] claim.
-- ARGV[1] the letter's entry id, ARGV[2] the replayed request's claim JSON, ARGV[3] its
-- fingerprint, ARGV[4] the claim's ttl_s.
-- Returns 1 when this call took the letter, 0 when it was gone (replayed or purged).
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then
  return 0
end
local record = redis.call('GET', KEYS[2])
local owner = record and string.match(record, '^%a [%d]+%-[%d]+ (%S+)$')
if owner then
  local claim = ARGV[2]
  if owner ~= ARGV[3] then claim = cjson.encode({fingerprint = owner}) end
  redis.call('SET', KEYS[4], claim, 'NX', 'EX', tonumber(ARGV[4]))
end
redis.call('DEL', KEYS[2], KEYS[3])
return 1
