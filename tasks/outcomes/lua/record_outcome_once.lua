-- Record a request's one outcome (tasks/outcomes/recorder.py), unless it has one already: the
-- results entry, the dead letter, the live event, the record, the end of the in-flight claim,
-- markers and request lock, and the dashboard's counter, in one atomic step. Runs after
-- batch_count_outcome.lua, as one script.
-- KEYS[1] record, KEYS[2] results, KEYS[3] dead, KEYS[4] events (channel), KEYS[5] claim,
--   KEYS[6..5+ARGV[7]] the per-request markers to delete, then the request lock, then the
--   activity hash of this second, then the batch ledger's keys (batch_count_outcome.lua reads
--   them from the end).
-- ARGV[1] outcome_json, ARGV[2] request_id, ARGV[3] status, ARGV[4] ttl_s, ARGV[5] maxlen,
--   ARGV[6] dead_json ("" = not dead), ARGV[7] marker count, ARGV[8] status letter,
--   ARGV[9] the request lock's token ('' = none held), ARGV[10] the activity field ('' =
--   none), ARGV[11] the activity hash's ttl_s, ARGV[12] the request's fingerprint when its
--   claim is known to be this request's ('' = read it from the claim), then the batch
--   ledger's argument (last).
-- Returns 1 when recorded now, 0 when an outcome was recorded already; the request lock is
-- released either way (the delivery is over), and only if it is still this token's.
local markers = tonumber(ARGV[7])
local lock = KEYS[6 + markers]
local function lock_is_ours()
  return ARGV[9] ~= '' and redis.call('GET', lock) == ARGV[9]
end
local function release_lock()
  if lock_is_ours() then
    redis.call('DEL', lock)
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  release_lock()
  return 0
end
local maxlen = tonumber(ARGV[5])
local entry
if maxlen > 0 then
  entry = redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*',
                     'request_id', ARGV[2], 'status', ARGV[3], 'outcome', ARGV[1])
else
  entry = redis.call('XADD', KEYS[2], '*',
                     'request_id', ARGV[2], 'status', ARGV[3], 'outcome', ARGV[1])
end
if ARGV[6] ~= '' then
  if maxlen > 0 then
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*',
               'request_id', ARGV[2], 'status', ARGV[3], 'dead', ARGV[6])
  else
    redis.call('XADD', KEYS[3], '*', 'request_id', ARGV[2], 'status', ARGV[3], 'dead', ARGV[6])
  end
end
redis.call('PUBLISH', KEYS[4], ARGV[1])
-- The claim, the markers (delivery count, "may have been sent") and the request lock only matter
-- until the outcome is recorded: from now on the record answers every redelivery. One DEL ends
-- them all. The claim only marked the request in flight: its fingerprint moves into the record,
-- which owns the id from now on (tasks/outcomes/claims.py).
local fingerprint = ARGV[12]
local ended = {KEYS[5]}
local claim = fingerprint == '' and redis.call('GET', KEYS[5])
if claim then
  local ok, decoded = pcall(cjson.decode, claim)
  if ok and type(decoded) == 'table' and type(decoded.fingerprint) == 'string' then
    fingerprint = decoded.fingerprint
  end
end
for i = 6, 5 + markers do ended[#ended + 1] = KEYS[i] end
if lock_is_ours() then ended[#ended + 1] = lock end
-- The record points at the entry: the outcome itself is on the stream already. Its format
-- belongs to tasks/outcomes/records.py: "{status letter} {entry id} {fingerprint}".
redis.call('SET', KEYS[1], ARGV[8] .. ' ' .. entry .. ' ' .. fingerprint,
           'EX', tonumber(ARGV[4]))
redis.call('DEL', unpack(ended))
-- The dashboard's per-second count is best-effort: pcall, so that a failure there can never
-- fail or undo the record written above.
if ARGV[10] ~= '' then
  local activity = KEYS[7 + markers]
  -- The first count of a field sets the hash's lifetime; the later ones need not repeat it.
  if redis.pcall('HINCRBY', activity, ARGV[10], 1) == 1 then
    redis.pcall('EXPIRE', activity, tonumber(ARGV[11]))
  end
end
return 1
