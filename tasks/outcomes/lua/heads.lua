-- The shared head of the scripts behind the dashboard's pages (`windows.py`, `records.py`):
-- one way of reading bounded by bytes as well as by count, so that a stream or a queue of huge
-- entries costs what one of small ones does (copying an entry into Lua costs about 2 ms a
-- megabyte), and of handing back only the first bytes of each.
-- Small pages: a byte budget stops a read within a few entries of where it is reached.
local HEAD_PAGE = 10

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

-- Calls visit(entry, value of `field`) for the newest entries of stream `key`, newest first,
-- until `window` entries were read or the values came to `budget` bytes.
-- Returns the entries read and whether the budget stopped the read.
local function each_newest(key, window, field, budget, visit)
  local read, spent, high = 0, 0, '+'
  while read < window and spent < budget do
    local page = redis.call('XREVRANGE', key, high, '-', 'COUNT', math.min(HEAD_PAGE, window - read))
    if #page == 0 then break end
    for _, entry in ipairs(page) do
      read = read + 1
      local fields, value = entry[2], ''
      for i = 1, #fields, 2 do
        if fields[i] == field then value = fields[i + 1] end
      end
      spent = spent + #value
      visit(entry, value)
      if spent >= budget then break end
    end
    high = '(' .. page[#page][1]
    if #page < HEAD_PAGE then break end
  end
  return read, spent >= budget
end

-- {size, head} of the first items of list `key` (at most `count`), until they came to
-- `budget` bytes. Returns them and whether the budget stopped the read.
local function list_heads(key, count, head, budget)
  local out, spent = {}, 0
  while #out < count and spent < budget do
    local page = redis.call('LRANGE', key, #out, math.min(#out + HEAD_PAGE, count) - 1)
    for _, item in ipairs(page) do
      spent = spent + #item
      table.insert(out, {#item, head_of(item, head)})
      if spent >= budget then break end
    end
    if #page < HEAD_PAGE then break end
  end
  return out, spent >= budget
end

-- {size, head} of the values of hash `key` (an incremental scan), until they came to `budget`
-- bytes. Returns them and whether the scan read the whole hash.
local function hash_heads(key, head, budget)
  local out, spent, cursor = {}, 0, '0'
  repeat
    local step = redis.call('HSCAN', key, cursor, 'COUNT', HEAD_PAGE)
    cursor = step[1]
    for i = 2, #step[2], 2 do
      local value = step[2][i]
      spent = spent + #value
      table.insert(out, {#value, head_of(value, head)})
    end
  until cursor == '0' or spent >= budget
  return out, cursor == '0'
end
