package limit

// The Lua scripts Redis runs for Admit and Settle. Each runs atomically, so
// a request's checks and their effects are one indivisible step for every
// keygate node sharing the Redis.
//
// The rate arithmetic is a copy of eval.go, function for function. Lua 5.1
// numbers are doubles, exact for integers below 2^53, which validation
// guarantees (MaxValue, Limit × Period); integer division goes through
// math.fmod, which is exact, rather than a rounded quotient; and numbers are
// written back with string.format('%.0f'), because Lua's default
// conversion keeps only 14 significant digits, fewer than a timestamp in
// microseconds has.
//
// Key layout, under the limiter's prefix:
//
//	r:<Key>             hash {t, f}: a Rate bucket's TAT in µs and its fraction;
//	                    expires when the bucket is full again
//	c:<Key>             sorted set of held concurrency slots scored by lease
//	                    expiry in µs; expires one lease after its last admission
//	q:<Key>:d20250314   a Day quota's units used (m202503: Month; t: Total);
//	                    expires an hour after its period ends, Total never
//	p:<reservation>     an unsettled reservation; Settle deletes it, and only
//	                    the call that deletes it applies, so a second Settle
//	                    is a no-op. Expires after holdTTL.

// luaPrelude holds what both scripts share.
const luaPrelude = `
local MAXDEBT = 3153600000000000
if redis.replicate_commands then redis.replicate_commands() end

local function now_us(arg)
  if arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function fmt(x) return string.format('%.0f', x) end

local function divmod(a, b)
  local r = math.fmod(a, b)
  if r < 0 then r = r + b end
  return (a - r) / b, r
end

local function ceil_ms(us)
  local q, r = divmod(us, 1000)
  if r > 0 then q = q + 1 end
  return q
end

local function rate_base(t, f, lim, now)
  if f >= lim then f = lim - 1 end
  if t < now then return now, 0 end
  return t, f
end

local function rate_add(t, f, units, p, lim, now)
  local q, rem = divmod(units, lim)
  if q > divmod(now + MAXDEBT - t, p) then return now + MAXDEBT, 0 end
  t = t + q * p
  local q2, f2 = divmod(f + rem * p, lim)
  t = t + q2
  if t > now + MAXDEBT then return now + MAXDEBT, 0 end
  return t, f2
end

local function rate_sub(t, f, units, p, lim, now)
  local q, rem = divmod(units, lim)
  if q > divmod(t - now, p) then return now, 0 end
  t = t - q * p
  local q2, f2 = divmod(f - rem * p, lim)
  t = t + q2
  if t < now then return now, 0 end
  return t, f2
end

local function rate_over(t, f, now, p)
  local over = t - now - p
  if f > 0 then over = over + 1 end
  return over
end

local function rate_store(key, t, f, now)
  if t > now or (t == now and f > 0) then
    redis.call('HSET', key, 't', fmt(t), 'f', fmt(f))
    local us = t - now
    if f > 0 then us = us + 1 end
    redis.call('PEXPIRE', key, fmt(ceil_ms(us)))
  else
    redis.call('DEL', key)
  end
end
`

// admitLua checks every limit of one request, then applies all of them or
// none.
//
// KEYS: per check its counter key (a Day or Month quota: two, the period
// containing the node's clock less the skew margin, and the next one), then
// the reservation key.
// ARGV: now in µs or "" for Redis TIME, lease µs, reservation id, number of
// checks, quota margin µs, reservation TTL ms; then per check seven fields:
// kind, limit, cost, rate period µs, and for Day and Month quotas the first
// period's start and end and the second period's end, in µs (0 otherwise).
// Returns now, the index of the refusing check or -1, then per check the
// committed state of its counter (two numbers) and which quota period the
// script picked (0 or 1).
const admitLua = luaPrelude + `
local now = now_us(ARGV[1])
local lease = tonumber(ARGV[2])
local id = ARGV[3]
local n = tonumber(ARGV[4])
local margin = tonumber(ARGV[5])
local cur, order = {}, {}
local out = {now, -1}
local denied = -1
local ki = 1
for i = 0, n - 1 do
  local a = 7 + 7 * i
  local kind, lim, cost, p = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local qs, qm, qe = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
  local key, which, qend = KEYS[ki], 0, 0
  ki = ki + 1
  if kind == 3 and qm > 0 then
    if now < qs or now >= qe then
      return redis.error_reply('KEYGATE_CLOCK_SKEW')
    end
    qend = qm
    if now >= qm then key, which, qend = KEYS[ki], 1, qe end
    ki = ki + 1
  end
  local s = cur[key]
  if s == nil then
    s = {kind = kind, v = 0, f = 0, qend = qend, slots = {}}
    if kind == 1 then
      local h = redis.call('HMGET', key, 't', 'f')
      s.v, s.f = tonumber(h[1]) or 0, tonumber(h[2]) or 0
    elseif kind == 2 then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', fmt(now))
      s.v = redis.call('ZCARD', key)
    else
      s.v = tonumber(redis.call('GET', key)) or 0
    end
    s.v0, s.f0 = s.v, s.f
    cur[key] = s
    order[#order + 1] = key
  end
  out[3 + 3 * i], out[4 + 3 * i], out[5 + 3 * i] = s.v0, s.f0, which
  if denied < 0 then
    if kind == 1 then
      if cost > lim then
        denied = i
      else
        local t, f = rate_base(s.v, s.f, lim, now)
        t, f = rate_add(t, f, cost, p, lim, now)
        if rate_over(t, f, now, p) > 0 then denied = i else s.v, s.f = t, f end
      end
    elseif kind == 2 then
      if s.v >= lim then
        denied = i
      else
        s.v = s.v + 1
        s.slots[#s.slots + 1] = id .. ':' .. i
      end
    else
      if cost > lim or s.v + cost > lim then denied = i else s.v = s.v + cost end
    end
  end
end
out[2] = denied
if denied >= 0 then return out end
for _, key in ipairs(order) do
  local s = cur[key]
  if s.kind == 1 then
    rate_store(key, s.v, s.f, now)
  elseif s.kind == 2 then
    for _, m in ipairs(s.slots) do redis.call('ZADD', key, fmt(now + lease), m) end
    if #s.slots > 0 then redis.call('PEXPIRE', key, fmt(ceil_ms(lease))) end
  elseif s.v ~= s.v0 then
    if s.qend > 0 then
      redis.call('SET', key, fmt(s.v), 'PX', fmt(ceil_ms(s.qend - now + margin)))
    else
      redis.call('SET', key, fmt(s.v))
    end
  end
end
redis.call('SET', KEYS[#KEYS], '1', 'PX', ARGV[6])
return out
`

// settleLua applies a reservation's actual costs, once.
//
// KEYS: the reservation key, then per check its counter key (a quota: the
// period the reservation went to).
// ARGV: now in µs or "" for Redis TIME, number of checks, reservation id,
// quota margin µs; then per check five fields: kind, limit, actual minus
// reserved cost, rate period µs, quota period end µs (0 for Total).
// Returns 1, or 0 if the reservation was already settled (or expired).
const settleLua = luaPrelude + `
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
local now = now_us(ARGV[1])
local n = tonumber(ARGV[2])
local id = ARGV[3]
local margin = tonumber(ARGV[4])
for i = 0, n - 1 do
  local a = 5 + 5 * i
  local kind, lim, delta, p, qend = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local key = KEYS[2 + i]
  if kind == 1 and delta ~= 0 then
    local h = redis.call('HMGET', key, 't', 'f')
    local t, f = rate_base(tonumber(h[1]) or 0, tonumber(h[2]) or 0, lim, now)
    if delta > 0 then
      t, f = rate_add(t, f, delta, p, lim, now)
    else
      t, f = rate_sub(t, f, -delta, p, lim, now)
    end
    rate_store(key, t, f, now)
  elseif kind == 2 then
    redis.call('ZREM', key, id .. ':' .. i)
    if redis.call('ZCARD', key) == 0 then redis.call('DEL', key) end
  elseif kind == 3 and delta ~= 0 then
    local ttl = qend + margin - now
    if (qend == 0 or ttl > 0) and (delta > 0 or redis.call('EXISTS', key) == 1) then
      local v = redis.call('INCRBY', key, fmt(delta))
      if v < 0 then redis.call('INCRBY', key, fmt(-v)) end
      if qend > 0 then redis.call('PEXPIRE', key, fmt(ceil_ms(ttl))) end
    end
  end
end
return 1
`
