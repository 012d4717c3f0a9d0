-- One rate-limit decision, atomically: the sliding-window log of window.rs, on Redis's clock.
-- KEYS[1] the log (sorted set of admitted arrival times), KEYS[2] the refusal count,
-- KEYS[3] the block marker. All three share one hash tag, so they live in one cluster slot.
-- ARGV: limit, window (µs), a member unique to this request, refusals before a block
-- (0: never), block duration (µs).
-- Returns {allowed 0|1, remaining, wait (µs), refusals, block 0 none|1 active|2 started}.
if redis.replicate_commands then redis.replicate_commands() end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local window_ms = math.ceil(window / 1000)
local block_after = tonumber(ARGV[4])

local function refuse(wait, block)
  local refusals = redis.call('INCR', KEYS[2])
  if refusals == 1 then redis.call('PEXPIRE', KEYS[2], window_ms) end
  if block == 0 and block_after > 0 and refusals >= block_after then
    local duration = tonumber(ARGV[5])
    redis.call('SET', KEYS[3], '1', 'PX', math.ceil(duration / 1000))
    return {0, 0, duration, refusals, 2}
  end
  return {0, 0, wait, refusals, block}
end

-- Only a policy with a block looks for one: a block begun under an earlier configuration
-- ends with it, and a policy without one saves a call on every decision.
if block_after > 0 then
  local blocked_ms = redis.call('PTTL', KEYS[3])
  if blocked_ms > 0 then
    return refuse(blocked_ms * 1000, 1)
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window_ms)
  local oldest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
  return {1, limit - count - 1, oldest + window - now, 0, 0}
end
local freeing = tonumber(redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')[2])
return refuse(freeing + window - now, 0)
