-- How a delivery taken by begin_delivery.lua ended: ARGV[1] "done" (the service answered:
-- a repeat is a replay) or "release" (the service failed or never got it: the provider's
-- retry must go through). KEYS[1] its record.
if ARGV[1] == 'done' then
  return redis.call('SET', KEYS[1], 'done', 'XX', 'KEEPTTL') and 1 or 0
end
if redis.call('GET', KEYS[1]) == 'pending' then
  return redis.call('DEL', KEYS[1])
end
return 0
