-- Take back one counted delivery, never below zero (the count may have expired meanwhile).
-- KEYS[1] the delivery count. Returns the count left.
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then
  return redis.call('DECR', KEYS[1])
end
return 0
