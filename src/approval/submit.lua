-- A submission that needs approval, atomically, on Redis's clock.
-- KEYS[1] the approval's hash (its id is the digest of what it binds: see mod.rs).
-- ARGV: tenant, submitter, route, method, path, amount, venue, needed, approver roles
-- (JSON array), expires (ms), kept after expiry (ms), roles that approve for any venue
-- (JSON array).
-- Returns {outcome, detail}: {"use", approvers JSON} when granted (it is now used),
-- {"pending", approvals so far}, {"used", ""}, or {"created", "expired"|"new"}.
if redis.replicate_commands then redis.replicate_commands() end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HGET', KEYS[1], 'state')
local expires = tonumber(redis.call('HGET', KEYS[1], 'expires') or '0')
if state and state ~= 'used' and now >= expires then state = 'expired' end
if state == 'approved' then
  redis.call('HSET', KEYS[1], 'state', 'used')
  return {'use', redis.call('HGET', KEYS[1], 'approvers')}
end
if state == 'pending' then
  return {'pending', redis.call('HGET', KEYS[1], 'approvals')}
end
if state == 'used' then
  return {'used', ''}
end
local was = state or 'new'
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1],
  'tenant', ARGV[1], 'submitter', ARGV[2], 'route', ARGV[3], 'method', ARGV[4],
  'path', ARGV[5], 'amount', ARGV[6], 'venue', ARGV[7], 'needed', ARGV[8],
  'roles', ARGV[9], 'scope_roles', ARGV[12], 'approvers', '[]', 'approvals', '0',
  'state', 'pending',
  'expires', now + tonumber(ARGV[10]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[10]) + tonumber(ARGV[11]))
return {'created', was}
