-- The newest entries of a stream that match a request id, an error code and a batch, so that
-- only the matches travel (`windows.OutcomeWindows.matching`).
-- KEYS: a stream. ARGV: window (entries), field holding the JSON, request id ('' any), code
-- ('' any), batch ('' any), head (bytes of each body returned and looked into), byte budget.
-- Returns {matches as {id, listed request id, size of the body, its first `head` bytes},
-- codes seen, batches seen, entries read}.
-- Bounded twice: by the window (pages of XREVRANGE COUNT) and by the bytes read, so that a
-- stream of huge entries costs what a stream of small ones does. A body of at most `head`
-- bytes is decoded (cjson, in C); a longer one is never decoded whole: its code and batch are
-- matched in its head, where the recorder writes them (top-level fields before the request).
local window, name, want_rid, want_code, want_batch = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local head, budget = tonumber(ARGV[6]), tonumber(ARGV[7])
-- Small pages: the budget stops the read within a few entries of where it is reached.
local PAGE = 10
local matches, codes, batches = {}, {}, {}
-- The first `n` bytes of `text`, ending on a whole UTF-8 character.
local function head_of(text, n)
  if #text <= n then return text end
  while n > 0 do
    local b = string.byte(text, n + 1)
    if b < 128 or b >= 192 then break end
    n = n - 1
  end
  return string.sub(text, 1, n)
end
local read, spent, high = 0, 0, '+'
while read < window and spent < budget do
  local page = redis.call('XREVRANGE', KEYS[1], high, '-', 'COUNT', math.min(PAGE, window - read))
  if #page == 0 then break end
  for _, entry in ipairs(page) do
    read = read + 1
    local fields = entry[2]
    local body, rid = '', ''
    for i = 1, #fields, 2 do
      if fields[i] == name then body = fields[i + 1] end
      if fields[i] == 'request_id' then rid = fields[i + 1] end
    end
    spent = spent + #body
    if want_rid == '' or rid == want_rid then
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
    end
    if spent >= budget then break end
  end
  high = '(' .. page[#page][1]
  if #page < PAGE then break end
end
local code_list, batch_list = {}, {}
for code in pairs(codes) do table.insert(code_list, code) end
for batch in pairs(batches) do table.insert(batch_list, batch) end
return {matches, code_list, batch_list, read}
