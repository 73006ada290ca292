-- Claim a request id for the request now in flight, unless it has a claim or an outcome record
-- already: a record's fingerprint owns the id once the claim is gone, and a claim taken then
-- would outlive the request (tasks/outcomes/claims.py).
-- KEYS[1] the claim, KEYS[2] the outcome record. ARGV[1] the claim's JSON, ARGV[2] its ttl_s.
-- Returns {record or '', claim or ''} as they were; two empty strings: claimed now.
local record = redis.call('GET', KEYS[2])
if not record and redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', tonumber(ARGV[2])) then
  return {'', ''}
end
return {record or '', redis.call('GET', KEYS[1]) or ''}
