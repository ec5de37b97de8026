package cluster

import "github.com/redis/go-redis/v9"

// refreshScript is one daemon's refresh of one shared service, atomic in
// Redis: it records the daemon's demand, drops daemons that have been gone
// for their lease plus a window, computes a fair-share target for every
// live daemon, and gives the caller the smaller of its target and what the
// others leave free. Shares are fractions of the service's capacity (every
// policy scales alike). All times are Redis's TIME in milliseconds.
//
// What the others leave free: a daemon j may still add to any window, from
// now on, at most hold_j = max(used_j, applied_j, assigned_j), its usage
// still in the window or the share it applies or was last given, whichever
// is larger (its limiter grants only while its window fits its share). So
// the caller's share is at most 1 - Σ hold_j, and the sum of what all
// daemons can put in any window stays at most 1.
//
// A gap (no refresh by anyone for longer than a lease: Redis was stopped or
// unreachable) or a caller that knew another epoch (Redis lost its data)
// starts a recovery of one lease plus one window, during which no share
// grows: everyone still alive re-registers what it holds first.
//
// KEYS: members hash, meta hash, cooldown key, limits hash.
// ARGV: 1 member id, 2 epoch the caller knows ("" if none), 3 backlog 0/1,
// 4 top priority 0-3, 5 weight, 6 used, 7 applied share, 8 span ms,
// 9 lease ms, 10 local cooldown ms (0 if none), 11 learned limits
// "unit window_ms quota;...", 12 label.
// Returns: share (string), epoch, live members, cooldown ms left (<= 0 if
// none), learned limits (flat field/value list), recovering 0/1.
var refreshScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, known = ARGV[1], ARGV[2]
local span, lease = tonumber(ARGV[8]), tonumber(ARGV[9])
local keep = 3600000

local epoch = redis.call('HGET', KEYS[2], 'epoch')
local recovery = tonumber(redis.call('HGET', KEYS[2], 'recovery') or '0')
local last = tonumber(redis.call('HGET', KEYS[2], 'last') or '0')
if not epoch then
  epoch = id .. '-' .. now
  redis.call('HSET', KEYS[2], 'epoch', epoch)
end
-- A gap: nobody refreshed for more than a lease. If someone was live when
-- the silence began, Redis (not they) was away: they may still hold their
-- shares, so the silence says nothing about who is gone, and the leases of
-- those live then are moved on by its length.
local gap = last > 0 and now - last > lease
local lost = known ~= '' and known ~= epoch
redis.call('HSET', KEYS[2], 'last', now)

local raw = redis.call('HGETALL', KEYS[1])
local others = {}
local held_at_gap = false
for i = 1, #raw, 2 do
  local ok, m = pcall(cjson.decode, raw[i + 1])
  if raw[i] ~= id then
    if not ok or type(m) ~= 'table' or not tonumber(m.seen) or not tonumber(m.lease) or not tonumber(m.span) then
      redis.call('HDEL', KEYS[1], raw[i])
    else
      if gap and m.seen + m.lease >= last then
        -- Its lease stops running for the silence: a daemon that died
        -- before it still expires, that much later.
        held_at_gap = true
        m.seen = m.seen + (now - last)
        redis.call('HSET', KEYS[1], raw[i], cjson.encode(m))
      end
      if now > m.seen + m.lease + m.span then
        redis.call('HDEL', KEYS[1], raw[i])
      else
        table.insert(others, m)
      end
    end
  end
end

if lost or held_at_gap then
  recovery = math.max(recovery, now + lease + span)
  redis.call('HSET', KEYS[2], 'recovery', recovery)
end

local me = {seen = now, b = tonumber(ARGV[3]), p = tonumber(ARGV[4]), w = tonumber(ARGV[5]),
  u = tonumber(ARGV[6]), a = tonumber(ARGV[7]), span = span, lease = lease, lbl = ARGV[12]}
if me.w <= 0 then me.w = 1 end

local live = {me}
for _, m in ipairs(others) do
  if now <= m.seen + m.lease then table.insert(live, m) end
end
local top = 0
for _, m in ipairs(live) do
  if m.b == 1 and m.p > top then top = m.p end
end
-- Those that wait at the top priority share what the others leave by
-- weight; everyone else gets what it uses, with a margin to grow (a
-- backlog of a lower priority gets a trickle, as aging gives it locally).
local base, wsum = 0, 0
for _, m in ipairs(live) do
  if m.b == 1 and m.p == top then
    m.hungry = true
    wsum = wsum + m.w
  else
    -- Never more than it holds now: without a backlog its share is enough.
    if m.b == 1 then m.want = 0.05 else m.want = math.min(1, m.u * 1.25 + 0.02, math.max(m.a, 0.02)) end
    base = base + m.want
  end
end
local scale = 1
if base > 1 then scale = 1 / base end
local rest = 1
for _, m in ipairs(live) do
  m.t = 0
  if not m.hungry then
    m.t = m.want * scale
    rest = rest - m.t
  end
end
if rest < 0 then rest = 0 end
if wsum > 0 then
  for _, m in ipairs(live) do
    if m.hungry then m.t = rest * m.w / wsum end
  end
else
  local ws = 0
  for _, m in ipairs(live) do ws = ws + m.w end
  for _, m in ipairs(live) do m.t = m.t + rest * m.w / ws end
end

local held = 0
for _, m in ipairs(others) do
  held = held + math.max(m.u or 0, m.a or 0, m.g or 0)
end
local g = math.min(me.t, 1 - held)
if now < recovery then g = math.min(g, me.a) end
if g < 0 then g = 0 end
g = math.floor(g * 1000000) / 1000000
me.g = g
redis.call('HSET', KEYS[1], id, cjson.encode(me))

local cool = tonumber(ARGV[10])
if cool > 0 and redis.call('PTTL', KEYS[3]) < cool then
  redis.call('SET', KEYS[3], id, 'PX', cool)
end
local cttl = redis.call('PTTL', KEYS[3])

for spec in string.gmatch(ARGV[11], '[^;]+') do
  local unit, win, quota = string.match(spec, '^(%a[%a_]*) (%d+) (%d+)$')
  if unit then
    local f = unit .. ' ' .. win
    if redis.call('HEXISTS', KEYS[4], f) == 1 or redis.call('HLEN', KEYS[4]) < 16 then
      redis.call('HSET', KEYS[4], f, quota)
    end
  end
end
local lim = redis.call('HGETALL', KEYS[4])

for _, k in ipairs({KEYS[1], KEYS[2], KEYS[4]}) do redis.call('PEXPIRE', k, keep) end
local rec = 0
if now < recovery then rec = 1 end
return {tostring(g), epoch, #live, cttl, lim, rec}
`)
