-- The queue's head, the unacknowledged messages and the newest outcomes, in one atomic read
-- (`windows.OutcomeWindows.snapshot`): a request is seen exactly once, queued, in flight or
-- finished. Runs after `heads.lua`.
-- KEYS: queue, unacked hash, results stream. ARGV: sample size, outcome window, batch ('' none),
-- head (bytes of each message or outcome returned), byte budget of the outcomes, byte budget
-- of the messages (the unacknowledged first, the queue's head with what they leave).
-- Returns {depth, in flight, queued {size, head}, whether the budget cut the queue's sample,
-- unacked {size, head}, whether the hash was read whole, outcomes, outcomes read, whether the
-- budget cut them}; an outcome is {id, request_id, ledger state, batch_id, size, its first
-- `head` bytes if of ARGV[3] else ''}.
-- Bounded by count (ARGV[1], ARGV[2]) and by bytes (ARGV[5], ARGV[6]), never by the length of
-- the queue or the stream: a queue or a stream of huge entries costs what small ones do.
local sample, window, want_batch = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local head, budget, message_budget = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local depth = redis.call('LLEN', KEYS[1])
local inflight = redis.call('HLEN', KEYS[2])
local unacked, unacked_whole, left = {}, 0, message_budget
if inflight <= sample then
  local whole
  unacked, whole = hash_heads(KEYS[2], head, message_budget)
  if whole then unacked_whole = 1 end
  for _, item in ipairs(unacked) do left = left - item[1] end
end
local queued, queue_cut = list_heads(KEYS[1], sample, head, math.max(left, 0))
local recent = {}
local read, outcomes_cut = each_newest(KEYS[3], window, 'outcome', budget, function(entry, outcome)
  local fields, rid, status = entry[2], '', ''
  for i = 1, #fields, 2 do
    if fields[i] == 'request_id' then rid = fields[i + 1]
    elseif fields[i] == 'status' then status = fields[i + 1] end
  end
  -- A plain batch id is matched in C; one with quotes or escapes takes the JSON decoder, for
  -- an outcome small enough to decode (the recorder writes the batch id before the rest).
  local batch = string.match(head_of(outcome, head), '"batch_id":"([^"\\]*)"')
  if batch == nil then
    batch = ''
    if #outcome <= head and string.find(outcome, '"batch_id":"', 1, true) then
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
  local shown = ''
  if want_batch ~= '' and batch == want_batch then shown = head_of(outcome, head) end
  table.insert(recent, {entry[1], rid, status, batch, #outcome, shown})
end)
return {depth, inflight, queued, queue_cut and 1 or 0, unacked, unacked_whole, recent, read,
  outcomes_cut and 1 or 0}
