-- A verified webhook delivery, taken once: KEYS[1] its record, ARGV[1] how long it is
-- kept (ms). Returns "fresh" (taken now), "pending" (another is being forwarded) or "done"
-- (forwarded and answered before).
if redis.call('SET', KEYS[1], 'pending', 'NX', 'PX', tonumber(ARGV[1])) then
  return 'fresh'
end
return redis.call('GET', KEYS[1]) or 'fresh'
