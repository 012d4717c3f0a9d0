-- One budget decision, atomically, on Redis's clock: a sliding-window log of amounts.
-- KEYS[1] the log (sorted set: member "<unique>:<amount>", score its time in µs),
-- KEYS[2] the sum of the amounts in the log. Both share one hash tag (one cluster slot).
-- ARGV: limit, window (µs), the member for this request, its amount.
-- Returns {granted 0|1, remaining, wait (µs)}: granted, until the oldest amount leaves the
-- window; refused, until enough has left for this amount to fit.
if redis.replicate_commands then redis.replicate_commands() end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local amount = tonumber(ARGV[4])
local window_ms = math.ceil(window / 1000)

local function amount_of(member)
  return tonumber(string.match(member, ':(%d+)$')) or 0
end

local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - window)
if #expired > 0 then
  local freed = 0
  for _, member in ipairs(expired) do freed = freed + amount_of(member) end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
  redis.call('DECRBY', KEYS[2], freed)
end
local total = math.max(tonumber(redis.call('GET', KEYS[2]) or '0'), 0)
if total + amount <= limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('SET', KEYS[2], total + amount, 'PX', window_ms)
  redis.call('PEXPIRE', KEYS[1], window_ms)
  local oldest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
  return {1, limit - total - amount, oldest + window - now}
end
local need = total + amount - limit
local freed = 0
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #entries, 2 do
  freed = freed + amount_of(entries[i])
  if freed >= need then
    return {0, limit - total, tonumber(entries[i + 1]) + window - now}
  end
end
return {0, limit - total, window}
