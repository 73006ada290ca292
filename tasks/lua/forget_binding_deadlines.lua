-- kombu keeps the deadlines of expiring bindings (remote control's reply queues) in one sorted
-- set shared by every deployment on the Redis: remove only one deployment's members, and the
-- set itself once it is empty, in one step so that a concurrent writer is never undone
-- (tasks/connections.py, delete_deployment).
-- KEYS[1] kombu's binding deadlines. ARGV the deployment's members. Returns 1.
for _, member in ipairs(ARGV) do redis.call('ZREM', KEYS[1], member) end
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('DEL', KEYS[1]) end
return 1
