-- Learn from one Management API answer (tasks/flow/pacing.py explains the method).
-- Every answer notes when it came (`answered_at`): it ends the fleet's failure streak, which
-- the breaker's scripts read here instead of this one writing the breaker's hash on every answer.
-- ARGV[5] slot seq of the answered call (0: unknown), ARGV[6] kind: ok | limited,
-- ARGV[7] x-ratelimit-limit, ARGV[8] x-ratelimit-remaining ('' when absent),
-- ARGV[9..16] window min us, window min calls, window max us, smoothing, min rate, max rate,
-- headless step, reserve per 20 of limit.
-- Returns {rate * 1000, limit (-1 unknown), remaining (-1), pause_us, synced 1/0}.
local slot_seq = tonumber(ARGV[5])
local kind = ARGV[6]
local L = tonumber(ARGV[7])
local R = tonumber(ARGV[8])
local win_min = tonumber(ARGV[9])
local win_min_calls = tonumber(ARGV[10])
local win_max = tonumber(ARGV[11])
local smoothing = tonumber(ARGV[12])
local min_rate = tonumber(ARGV[13])
local max_rate = tonumber(ARGV[14])
local headless_step = tonumber(ARGV[15])

local s = redis.call('HMGET', KEYS[1], 'rate', 'limit', 'seq', 'obs_seq', 'win_t', 'win_seq',
  'win_rem', 'win_rej', 'win_full', 'pause', 'exp_t')
local learned = tonumber(s[1])
local known_limit = tonumber(s[2])
local seq = tonumber(s[3]) or 0
local obs_seq = tonumber(s[4]) or 0
local pause = tonumber(s[10]) or 0
local synced = 0
-- Every field this answer changes, written by one HSET at the end.
local changed = {}
local function change(...)
  for _, v in ipairs({...}) do changed[#changed + 1] = v end
end
local function write_changes()
  local renew = false
  if #changed > 0 then
    renew = renewal_due(tonumber(s[11]), changed)
    redis.call('HSET', KEYS[1], unpack(changed))
  end
  if renew then redis.call('PEXPIRE', KEYS[1], ttl_ms) end
end

change('answered_at', string.format('%.0f', now))

local function clamp(rate)
  return math.min(max_rate, math.max(min_rate, rate))
end

if L == nil or R == nil or L < 1 then
  -- No headers: additive increase, multiplicative decrease, unless headers were seen before.
  if known_limit == nil and slot_seq > 0 then
    local rate = learned or start_rate
    if kind == 'limited' then rate = rate / 2 else rate = rate + headless_step end
    learned = clamp(rate)
    change('rate', tostring(learned))
  end
  write_changes()
  local shown = learned or 0
  return {math.floor(shown * 1000), known_limit or -1, -1, pause, 0}
end

if R > L then R = L end
change('limit', L, 'remaining', R, 'observed_at', now)

if slot_seq > 0 and slot_seq > obs_seq then
  -- The tenant's count wins over the model: tokens = R - granted since - reserve.
  local rate, burst, interval = model(learned, L)
  local reserve = 1 + math.floor(L / tonumber(ARGV[16]))
  local tokens = R - math.max(0, seq - slot_seq) - reserve
  if tokens > burst then tokens = burst end
  change('obs_seq', slot_seq, 'tokens', tostring(tokens), 'tok_t', string.format('%.0f', now))
  synced = 1
end

if slot_seq > 0 then
  local win_t = tonumber(s[5])
  local win_seq = tonumber(s[6]) or 0
  local rejected = tonumber(s[8]) or 0
  if kind == 'limited' then rejected = rejected + 1 end
  -- A bucket seen full inside a window hid part of its refill: that window teaches nothing.
  -- (The answer that opens a window does not count: the drain after it is what is measured.)
  local full = (R >= L - 1)
  if win_t == nil or slot_seq < win_seq then
    change('win_t', now, 'win_seq', slot_seq, 'win_rem', R, 'win_rej', 0, 'win_full', 0)
  else
    local was_full = (tonumber(s[9]) or 0) == 1 or full
    local elapsed = now - win_t
    local calls = slot_seq - win_seq
    if elapsed >= win_max or (elapsed >= win_min and calls >= win_min_calls) then
      if not was_full and calls > 0 then
        local accepted = math.max(0, calls - rejected)
        local estimate = math.max(0, (accepted + R - tonumber(s[7])) / (elapsed / 1000000))
        if learned == nil then
          learned = estimate
        else
          learned = (1 - smoothing) * learned + smoothing * estimate
        end
        learned = clamp(learned)
        change('rate', tostring(learned))
      end
      change('win_t', now, 'win_seq', slot_seq, 'win_rem', R, 'win_rej', 0, 'win_full', 0)
    else
      change('win_rej', rejected, 'win_full', was_full and 1 or 0)
    end
  end
end
write_changes()
local rate = model(learned, L)
return {math.floor(rate * 1000), L, R, pause, synced}
