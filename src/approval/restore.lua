-- A used approval whose request did not happen (never sent, or refused by the service)
-- is granted again, so the submitter can send it once more. KEYS[1] the approval's hash.
if redis.call('HGET', KEYS[1], 'state') == 'used' then
  redis.call('HSET', KEYS[1], 'state', 'approved')
  return 1
end
return 0
