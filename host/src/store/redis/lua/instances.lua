-- instances.lua ↔ kv/instances.rs: instance registrations, `n <instance>` →
-- created-at and account, in the registry's own records (one slot for all).

local sub = string.sub

local instances = {}

-- The registration of `name`: account, created_at (8 bytes BE), or nil.
function instances.lookup(r, name)
  local v = r:get(layout.instance_key(name))
  if v == nil then return nil end
  if #v < 8 then error({ code = 'internal', msg = 'damaged record (instance record); the database may be corrupt' }) end
  return sub(v, 9), sub(v, 1, 8)
end

-- Register `instance` to `account` (idempotent; another account is
-- access-denied). Returns account, created_at.
function instances.register(c, instance, account, now)
  local found, created = instances.lookup(c.reader, instance)
  if found then
    if found ~= account then
      error({ code = 'access-denied', msg = 'instance "' .. instance .. '" belongs to account "' .. found
        .. '", not "' .. account .. '"; pick another instance name or destroy it first' })
    end
    return found, created
  end
  cx.put(c, layout.instance_key(instance), now .. account)
  return account, now
end

-- Every registration: {name, account, created_at, ...} by name.
function instances.list(r)
  local prefix = layout.INSTANCE
  local out = {}
  r:scan(prefix, bytes.prefix_end(prefix), false, function(k, v)
    out[#out + 1] = sub(k, 4)
    out[#out + 1] = sub(v, 9)
    out[#out + 1] = sub(v, 1, 8)
    return true
  end)
  return out
end

-- Delete a registration.
function instances.forget(c, instance)
  cx.delete(c, layout.instance_key(instance))
end

return instances
