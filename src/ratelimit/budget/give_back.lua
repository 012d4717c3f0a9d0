-- Gives a granted amount back (the request it was spent on did not happen).
-- KEYS[1] the log, KEYS[2] its sum (see spend.lua); ARGV[1] the member, ARGV[2] its amount.
-- Returns 1 when the member was still in the log.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  local total = tonumber(redis.call('GET', KEYS[2]) or '0')
  if total > tonumber(ARGV[2]) then
    redis.call('DECRBY', KEYS[2], ARGV[2])
  else
    redis.call('DEL', KEYS[2])
  end
  return 1
end
return 0
