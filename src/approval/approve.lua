-- One approval of a pending submission, atomically, on Redis's clock.
-- KEYS[1] the approval's hash. ARGV: the approver's tenant, the approver, the approver's
-- roles and venues (JSON arrays). An approver needs one of the approval's roles, and its
-- venue in their venues unless they hold one of its scope roles.
-- Returns {outcome, approvals, needed, submitter}: outcome "approved" or "pending" when recorded,
-- else "not_found" (none, or another tenant's), "self", "role", "expired", "closed"
-- (already approved or used), "duplicate" (this approver already approved).
if redis.replicate_commands then redis.replicate_commands() end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HGET', KEYS[1], 'state')
if not state or redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[1] then
  return {'not_found', 0, 0, ''}
end
local submitter = redis.call('HGET', KEYS[1], 'submitter')
if submitter == ARGV[2] then
  return {'self', 0, 0, submitter}
end
local wanted = cjson.decode(redis.call('HGET', KEYS[1], 'roles'))
local held = cjson.decode(ARGV[3])
local function any_of(list, among)
  for _, item in ipairs(list) do
    for _, other in ipairs(among) do
      if item == other then return true end
    end
  end
  return false
end
local venue = redis.call('HGET', KEYS[1], 'venue')
local scoped = venue == '' or any_of({venue}, cjson.decode(ARGV[4]))
  or any_of(held, cjson.decode(redis.call('HGET', KEYS[1], 'scope_roles') or '[]'))
if not any_of(held, wanted) or not scoped then return {'role', 0, 0, submitter} end
local needed = tonumber(redis.call('HGET', KEYS[1], 'needed'))
local approvals = tonumber(redis.call('HGET', KEYS[1], 'approvals'))
if state ~= 'used' and now >= tonumber(redis.call('HGET', KEYS[1], 'expires')) then
  return {'expired', approvals, needed, submitter}
end
if state ~= 'pending' then return {'closed', approvals, needed, submitter} end
local approvers = cjson.decode(redis.call('HGET', KEYS[1], 'approvers'))
for _, approver in ipairs(approvers) do
  if approver == ARGV[2] then return {'duplicate', approvals, needed, submitter} end
end
table.insert(approvers, ARGV[2])
approvals = approvals + 1
local outcome = 'pending'
if approvals >= needed then outcome = 'approved' end
redis.call('HSET', KEYS[1], 'approvers', cjson.encode(approvers), 'approvals', approvals,
  'state', outcome)
return {outcome, approvals, needed, submitter}
