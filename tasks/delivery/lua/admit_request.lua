-- Admit one delivery of a request (tasks/delivery/admission.py): in one atomic step, what the
-- handler would otherwise ask in five round trips, in the same order and with the same rules.
-- KEYS[1] outcome record, KEYS[2] request lock, KEYS[3] claim, KEYS[4] sent marker.
-- ARGV[1] lock token, ARGV[2] lock ttl (ms), ARGV[3] the claim's JSON ('' = ids not checked),
-- ARGV[4] the claim's ttl (s).
-- Returns {'recorded', record, claim or ''} when an outcome is recorded (nothing changed),
-- {'busy', '', ''} when another delivery holds the lock (nothing changed), else
-- {'admitted', the earlier claim or '' (claimed now), sent marker or ''} with the lock taken.
-- The sent marker is read with the record: one read instead of two.
local read = redis.call('MGET', KEYS[1], KEYS[4])
local record, sent = read[1], read[2]
if record then
  return {'recorded', record, redis.call('GET', KEYS[3]) or ''}
end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', tonumber(ARGV[2])) then
  return {'busy', '', ''}
end
-- Under the lock, with no record: the claim is taken now, or the earlier one is returned for
-- the handler to compare (claim_request_id.lua's rule; no record, so no record owns the id).
local claim = ''
if ARGV[3] ~= '' and not redis.call('SET', KEYS[3], ARGV[3], 'NX', 'EX', tonumber(ARGV[4])) then
  claim = redis.call('GET', KEYS[3]) or ''
end
return {'admitted', claim, sent or ''}
