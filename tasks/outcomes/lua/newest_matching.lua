-- The newest entries of a stream that match a request id, an error code and a batch, decoded
-- by Redis (cjson, in C) so that only the matches travel (`windows.OutcomeWindows.matching`).
-- KEYS: a stream. ARGV: window, field holding the JSON, request id ('' any), code ('' any),
-- batch ('' any). Returns {matches as {id, JSON}, codes seen, batches seen} over the window,
-- which XREVRANGE's COUNT bounds.
local matches, codes, batches = {}, {}, {}
for _, entry in ipairs(redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', tonumber(ARGV[1]))) do
  local fields = entry[2]
  local body, rid = '', ''
  for i = 1, #fields, 2 do
    if fields[i] == ARGV[2] then body = fields[i + 1] end
    if fields[i] == 'request_id' then rid = fields[i + 1] end
  end
  if ARGV[3] == '' or rid == ARGV[3] then
    local code, batch = '', ''
    if ARGV[4] ~= '' or ARGV[5] ~= '' or ARGV[3] == '' then
      local ok, decoded = pcall(cjson.decode, body)
      if ok and type(decoded) == 'table' then
        if type(decoded.error) == 'table' and type(decoded.error.code) == 'string' then
          code = decoded.error.code
        end
        if type(decoded.batch_id) == 'string' then batch = decoded.batch_id end
      end
      if code ~= '' then codes[code] = true end
      if batch ~= '' then batches[batch] = true end
    end
    if (ARGV[4] == '' or code == ARGV[4]) and (ARGV[5] == '' or batch == ARGV[5]) then
      table.insert(matches, {entry[1], body})
    end
  end
end
local code_list, batch_list = {}, {}
for code in pairs(codes) do table.insert(code_list, code) end
for batch in pairs(batches) do table.insert(batch_list, batch) end
return {matches, code_list, batch_list}
