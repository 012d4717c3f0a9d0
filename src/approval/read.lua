-- An approval as it stands: its fields, then "now" and Redis's clock (ms), so expiry is
-- judged on the clock that set it. KEYS[1] the approval's hash.
local time = redis.call('TIME')
local fields = redis.call('HGETALL', KEYS[1])
table.insert(fields, 'now')
table.insert(fields, tostring(tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)))
return fields
