-- ops.lua ↔ kv/ops/mod.rs: apply one op (after its condition) and report
-- its result; apply a transaction's ops in order, all or nothing.
--
-- An op is {key = …, kind = …, cond = {kind, etag} | nil, [1..n] = its
-- arguments} (decoded in main.lua); a result is {etag | false, output} where
-- output is {'n'}, {'b', 0|1}, {'i', text} or {'v', values}.

local ops = {}

-- The outputs without a value, made once (answers are only read).
local NOTHING, NO, YES = { 'n' }, { 'b', 0 }, { 'b', 1 }
local function yes_no(b) if b then return YES end return NO end

local function int(n, v) return { 'i', tostring(n) }, v end

function ops.apply(c, sk, op)
  local key, a = op.key, op
  c.watch.meta_only = op.kind == 'expire' or op.kind == 'persist'
  local old = keyspace.live(c, sk, key)
  if op.cond then keyspace.check_condition(c, op.cond, old) end
  local output, version
  local kind = op.kind
  if kind == 'set' then
    output, version = NOTHING, value.set(c, sk, key, old, a[1], a[2])
  elseif kind == 'delete' then
    if old then keyspace.purge(c, sk, key, old) end
    output = yes_no(old)
  elseif kind == 'incr' then
    output, version = int(value.increment(c, sk, key, old, a[1]))
  elseif kind == 'expire' then
    local applied
    applied, version = value.expire(c, sk, key, old, a[1] == '1', a[2], a[3])
    output = yes_no(applied)
  elseif kind == 'persist' then
    local applied
    applied, version = value.persist(c, sk, key, old)
    output = yes_no(applied)
  elseif kind == 'mset' then
    local entries = {}
    for i = 1, #a, 2 do entries[#entries + 1] = { a[i], a[i + 1] } end
    output, version = int(map.set(c, sk, key, old, entries))
  elseif kind == 'mdel' then
    output, version = int(map.delete(c, sk, key, old, a))
  elseif kind == 'mincr' then
    output, version = int(map.increment(c, sk, key, old, a[1], a[2]))
  elseif kind == 'lappend' or kind == 'lprepend' then
    output, version = int(list.push(c, sk, key, old, a, kind == 'lappend'))
  elseif kind == 'lspop' or kind == 'lepop' then
    local values
    values, version = list.pop(c, sk, key, old, tonumber(a[1]), kind == 'lepop')
    output = { 'v', values }
  elseif kind == 'lrem' then
    output, version = int(list.remove(c, sk, key, old, a[1], tonumber(a[2])))
  elseif kind == 'ltrim' then
    output, version = NOTHING, list.trim(c, sk, key, old, tonumber(a[1]), tonumber(a[2]))
  elseif kind == 'linsert' then
    output, version = int(list.insert(c, sk, key, old, a[1] == '1', a[2], a[3]))
  elseif kind == 'lset' then
    output, version = NOTHING, list.set(c, sk, key, old, tonumber(a[1]), a[2])
  elseif kind == 'check' then
    output, version = NOTHING, old and old.version
  else
    error({ code = 'internal', msg = 'unknown op kind ' .. tostring(kind) })
  end
  return { version and cx.etag_of(c, version) or false, output }
end

-- The running apply_all's arguments, results and op (Redis runs one call
-- at a time, to its end): one protected call around the loop, not one per
-- op, and no closure made per call.
local run_c, run_sk, run_ops, run_results, run_at

local function run_all()
  for i = 1, #run_ops do
    run_at = i
    run_results[i] = ops.apply(run_c, run_sk, run_ops[i])
  end
end

-- Apply ops in order; the first failure aborts with its 0-based index.
function ops.apply_all(c, sk, list_of_ops)
  local results = {}
  run_c, run_sk, run_ops, run_results, run_at = c, sk, list_of_ops, results, 0
  local ok, res = pcall(run_all)
  local at = run_at
  run_c, run_sk, run_ops, run_results = nil, nil, nil, nil
  if not ok then
    if type(res) == 'table' then res.index = at - 1 end
    error(res)
  end
  return results
end

return ops
