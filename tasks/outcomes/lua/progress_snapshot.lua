-- The queue's head, the unacknowledged messages and the newest outcomes, in one atomic read
-- (`windows.OutcomeWindows.snapshot`): a request is seen exactly once, queued, in flight or
-- finished.
-- KEYS: queue, unacked hash, results stream. ARGV: sample size, outcome window, batch ('' none).
-- Returns {depth, in flight, queued messages, unacked messages, outcomes}; an outcome is
-- {id, request_id, ledger state, batch_id, full JSON if of ARGV[3] else ''}.
-- Bounded by ARGV[1] (LRANGE; HVALS only while the hash holds at most that many) and ARGV[2]
-- (XREVRANGE COUNT), never by the length of the queue or the stream.
local sample = tonumber(ARGV[1])
local depth = redis.call('LLEN', KEYS[1])
local inflight = redis.call('HLEN', KEYS[2])
local queued = redis.call('LRANGE', KEYS[1], 0, sample - 1)
local unacked = {}
if inflight <= sample then
  unacked = redis.call('HVALS', KEYS[2])
end
local recent = {}
for _, entry in ipairs(redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', tonumber(ARGV[2]))) do
  local fields = entry[2]
  local outcome, rid, status = '', '', ''
  for i = 1, #fields, 2 do
    local name = fields[i]
    if name == 'outcome' then outcome = fields[i + 1]
    elseif name == 'request_id' then rid = fields[i + 1]
    elseif name == 'status' then status = fields[i + 1] end
  end
  -- A plain batch id is matched in C; one with quotes or escapes takes the JSON decoder.
  local batch = string.match(outcome, '"batch_id":"([^"\\]*)"')
  if batch == nil then
    batch = ''
    if string.find(outcome, '"batch_id":"', 1, true) then
      local ok, decoded = pcall(cjson.decode, outcome)
      if ok and type(decoded) == 'table' and type(decoded.batch_id) == 'string' then
        batch = decoded.batch_id
      end
    end
  end
  -- The ledger's `exists_differs`, without decoding: an `exists` whose differences are not null.
  if status == 'exists' and not string.find(outcome, '"differences":null', 1, true) then
    status = 'exists_differs'
  end
  if ARGV[3] == '' or batch ~= ARGV[3] then outcome = '' end
  table.insert(recent, {entry[1], rid, status, batch, outcome})
end
return {depth, inflight, queued, unacked, recent}
