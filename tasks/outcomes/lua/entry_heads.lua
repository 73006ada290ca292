-- The first bytes of chosen entries of a stream (`windows.OutcomeWindows.heads`): the outcomes
-- a batch page's rows point at, the dead letters a confirmation lists, so that a page of
-- hundreds reads a bounded number of bytes however large entries grow. Runs after `heads.lua`.
-- KEYS: a stream. ARGV: field holding the JSON, head (bytes of each returned), byte budget, then
-- entry ids.
-- Returns {found as {id, listed request id, size of the JSON, its first `head` bytes}, ids
-- looked up}; an id no longer in the stream is left out. Stops once the entries looked up
-- came to the budget.
local name, head, budget = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local found, spent, looked = {}, 0, 0
for i = 4, #ARGV do
  if spent >= budget then break end
  looked = looked + 1
  for _, entry in ipairs(redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])) do
    local fields, rid, body = entry[2], '', ''
    for j = 1, #fields, 2 do
      if fields[j] == 'request_id' then rid = fields[j + 1] end
      if fields[j] == name then body = fields[j + 1] end
    end
    spent = spent + #body
    table.insert(found, {entry[1], rid, #body, head_of(body, head)})
  end
end
return {found, looked}
