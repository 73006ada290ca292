-- The newest entries of a stream that match a request id, an error code and a batch, so that
-- only the matches travel (`windows.OutcomeWindows.matching`).
-- KEYS: a stream. ARGV: window (entries), field holding the JSON, request id ('' any), code
-- ('' any), batch ('' any), head (bytes of each body returned and looked into), byte budget.
-- Returns {matches as {id, listed request id, size of the body, its first `head` bytes},
-- codes seen, batches seen, entries read}.
-- Bounded twice: by the window and by the bytes read (`each_newest` of `heads.lua`, the head
-- this script runs after). A body of at most `head` bytes is decoded (cjson, in C); a longer
-- one is never decoded whole: its code and batch are matched in its head, where the recorder
-- writes them (top-level fields before the request).
local window, name, want_rid, want_code, want_batch = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local head, budget = tonumber(ARGV[6]), tonumber(ARGV[7])
local matches, codes, batches = {}, {}, {}
local read = each_newest(KEYS[1], window, name, budget, function(entry, body)
  local rid = ''
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'request_id' then rid = fields[i + 1] end
  end
  if want_rid ~= '' and rid ~= want_rid then return end
  local code, batch = '', ''
  if want_code ~= '' or want_batch ~= '' or want_rid == '' then
    if #body <= head then
      local ok, decoded = pcall(cjson.decode, body)
      if ok and type(decoded) == 'table' then
        if type(decoded.error) == 'table' and type(decoded.error.code) == 'string' then
          code = decoded.error.code
        end
        if type(decoded.batch_id) == 'string' then batch = decoded.batch_id end
      end
    else
      local top = head_of(body, head)
      code = string.match(top, '"error":{"code":"([^"\\]*)"') or ''
      batch = string.match(top, '"batch_id":"([^"\\]*)"') or ''
    end
    if code ~= '' then codes[code] = true end
    if batch ~= '' then batches[batch] = true end
  end
  if (want_code == '' or code == want_code) and (want_batch == '' or batch == want_batch) then
    table.insert(matches, {entry[1], rid, #body, head_of(body, head)})
  end
end)
local code_list, batch_list = {}, {}
for code in pairs(codes) do table.insert(code_list, code) end
for batch in pairs(batches) do table.insert(batch_list, batch) end
return {matches, code_list, batch_list, read}
