-- Take back the "may have been sent" marker of a send Auth0 cleanly refused: remove it only
-- while it still says `sending`, so a concurrent `lost` / `created` stays.
-- KEYS[1] the request's sent marker. ARGV[1] the value `sending`. Returns 1 when removed, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
