-- fraud-check: read and record the signals of one transaction in one round trip.
-- KEYS: 1 vel card, 2 vel terminal, 3 vel merchant, 4 vel split, 5 fallback, 6 seen,
--       7 terminal profile, 8 merchant profile, 9 declines, 10 volume, 11 bl card,
--       12 bl merchant, 13 bl terminal, 14 bl bins, 15 merchant's settlement cards,
--       16..19 state (`count|sum`) of windows 1..4
-- ARGV: 1 prefix of the legal person's card sets, 2 now ms, 3 transaction id, 4 amount minor,
--       5 counted (1/0), 6 fallback (1/0), 7..12 windows ms (card, terminal, merchant, split,
--       fallback, seen), 13 terminal id, 14 lat, 15 lon, 16 city, 17 card token, 18 bin,
--       19.. business dates (today first)
local now = tonumber(ARGV[2])
local member = ARGV[3] .. '|' .. ARGV[4]
local counted = ARGV[5] == '1'
local out = {}

local function amount(m)
  return tonumber(string.match(m, '|(-?%d+)$'))
end

-- A sliding window: a sorted set of `txn|amount` by time and its state `count|sum` beside it
-- (KEYS 16..19), so a request costs the entries that leave the window, not the whole window.
local function window(key, state_key, span, add)
  local oldest = now - span
  local count, sum
  local state = redis.call('GET', state_key)
  if state then
    count, sum = string.match(state, '^(%d+)|(-?%d+)$')
    count, sum = tonumber(count), tonumber(sum)
  end
  if count == nil then
    -- No state (first use, or lost): count the window once.
    redis.call('ZREMRANGEBYSCORE', key, '-inf', oldest)
    local members = redis.call('ZRANGE', key, 0, -1)
    count, sum = #members, 0
    for _, m in ipairs(members) do
      sum = sum + amount(m)
    end
  else
    local leaving = redis.call('ZRANGEBYSCORE', key, '-inf', oldest)
    if #leaving > 0 then
      for _, m in ipairs(leaving) do
        sum = sum - amount(m)
      end
      count = count - #leaving
      redis.call('ZREMRANGEBYSCORE', key, '-inf', oldest)
    end
  end
  if add then
    if redis.call('ZADD', key, now, member) == 1 then
      count = count + 1
      sum = sum + tonumber(ARGV[4])
    end
    redis.call('PEXPIRE', key, span)
  end
  redis.call('SET', state_key, string.format('%d|%d', count, sum), 'PX', span)
  return count, sum
end

for i, span in ipairs({ARGV[7], ARGV[8], ARGV[9], ARGV[10]}) do
  if counted then
    local count, sum = window(KEYS[i], KEYS[15 + i], tonumber(span), true)
    table.insert(out, count)
    table.insert(out, sum)
  else
    table.insert(out, 0)
    table.insert(out, 0)
  end
end

-- earlier chip fallbacks of the card (this one recorded after counting)
local fallback_span = tonumber(ARGV[11])
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - fallback_span)
local earlier = redis.call('ZCOUNT', KEYS[5], '-inf', '+inf')
if ARGV[6] == '1' then
  if redis.call('ZSCORE', KEYS[5], ARGV[3]) then
    earlier = earlier - 1
  end
  redis.call('ZADD', KEYS[5], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[5], fallback_span)
end
table.insert(out, earlier)

-- where this terminal stands: the request's, else the registry's
local here = redis.call('HMGET', KEYS[7], 'lat', 'lon', 'city')
local lat, lon, city = ARGV[14], ARGV[15], ARGV[16]
if lat == '' or lon == '' then
  lat, lon = here[1] or '', here[2] or ''
end
if city == '' then
  city = here[3] or ''
end

-- the card's last sighting, then this one
local seen = redis.call('HMGET', KEYS[6], 'terminal', 'lat', 'lon', 'city', 'at')
for i = 1, 5 do
  table.insert(out, seen[i] or '')
end
if ARGV[17] ~= '' then
  redis.call('HSET', KEYS[6], 'terminal', ARGV[13], 'lat', lat, 'lon', lon, 'city', city, 'at', now)
  redis.call('PEXPIRE', KEYS[6], tonumber(ARGV[12]))
end
table.insert(out, lat)
table.insert(out, lon)
table.insert(out, city)

-- the merchant's profile
local merchant = redis.call('HMGET', KEYS[8], 'known', 'night', 'windows', 'lp')
table.insert(out, merchant[1] or '')
table.insert(out, merchant[2] or '')
table.insert(out, merchant[3] or '')

-- declines in a row, then the blacklists
local values = redis.call('MGET', KEYS[9], KEYS[11], KEYS[12], KEYS[13])
table.insert(out, tonumber(values[1] or '0'))
table.insert(out, values[2] or '')
table.insert(out, values[3] or '')
table.insert(out, values[4] or '')
local bin_hit = ''
local bin = ARGV[18]
if bin ~= '' then
  local bins = redis.call('HGETALL', KEYS[14])
  for i = 1, #bins, 2 do
    local first, last, expires = string.match(bins[i + 1], '^(%d+)|(%d+)|(%d+)$')
    if first and #first == #bin and first <= bin and bin <= last
        and (expires == '0' or tonumber(expires) > now) then
      bin_hit = bins[i] .. '|' .. expires
      break
    end
  end
end
table.insert(out, bin_hit)

-- the merchant's own and related settlement cards
local own = 0
if ARGV[17] ~= '' then
  own = redis.call('SISMEMBER', KEYS[15], ARGV[17])
  local lp = merchant[4]
  if own == 0 and lp and lp ~= '' then
    own = redis.call('SISMEMBER', ARGV[1] .. lp, ARGV[17])
  end
end
table.insert(out, own)

-- the terminal's business-day volumes
local dates = {}
for i = 19, #ARGV do
  table.insert(dates, ARGV[i])
end
if #dates > 0 then
  for _, volume in ipairs(redis.call('HMGET', KEYS[10], unpack(dates))) do
    table.insert(out, tonumber(volume or '0'))
  end
end
return out
