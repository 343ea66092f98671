-- Shared by every issuer-sim script (prepended to each one).
--
-- Amounts are integer minor units (fen) held as decimal strings in Redis. Lua 5.1 numbers are
-- doubles, exact for integers below 2^53 (about 90 trillion yuan in fen): far beyond any
-- balance here, and request amounts are capped at 999999999999 (ISO 8583 DE4, n12).

local function num(v)
  if v == false or v == nil or v == '' then return 0 end
  return tonumber(v)
end

local function fmt(n)
  return string.format('%d', n)
end

-- The card account as a table, or nil when the card does not exist.
local function load_card(key)
  local f = redis.call('HMGET', key, 'funding', 'status', 'currency', 'balance', 'owed',
    'credit_limit', 'holds', 'pin_tries', 'per_txn_limit')
  if not f[1] then return nil end
  return {
    key = key, funding = f[1], status = f[2], currency = f[3], balance = num(f[4]),
    owed = num(f[5]), limit = num(f[6]), holds = num(f[7]), pin_tries = num(f[8]),
    per_txn_limit = f[9] or ''
  }
end

-- What may still be spent: debit, balance - holds; credit, limit - owed - holds.
local function available(c)
  if c.funding == 'credit' then return c.limit - c.owed - c.holds end
  return c.balance - c.holds
end

-- The book balance: debit, the balance; credit, minus what is owed.
local function book_balance(c)
  if c.funding == 'credit' then return -c.owed end
  return c.balance
end

-- Takes `amount` from the cardholder (negative gives it back).
local function debit(c, amount)
  if c.funding == 'credit' then
    c.owed = c.owed + amount
    redis.call('HSET', c.key, 'owed', fmt(c.owed))
  else
    c.balance = c.balance - amount
    redis.call('HSET', c.key, 'balance', fmt(c.balance))
  end
end

local function credit(c, amount)
  debit(c, -amount)
end

-- Changes the sum of open holds by `delta`.
local function change_holds(c, delta)
  c.holds = c.holds + delta
  redis.call('HSET', c.key, 'holds', fmt(c.holds))
end

-- Appends one movement to the card's ledger, with the balances after it.
-- entry: at, txn, op, amount (signed: negative takes money), hold (signed change of holds).
local function ledger(key, c, entry)
  entry.balance = fmt(book_balance(c))
  entry.available = fmt(available(c))
  entry.holds = fmt(c.holds)
  redis.call('RPUSH', key, cjson.encode(entry))
end

-- The next RRN of the business date: prefix (YDDD) + 8 digits of a per-date counter.
local function next_rrn(key, prefix)
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('EXPIRE', key, 259200) end
  return prefix .. string.format('%08d', n % 100000000)
end

-- { status, field1, value1, ... } of the record under `key`.
local function reply(status, key)
  local out = { status }
  local all = redis.call('HGETALL', key)
  for i = 1, #all do out[#out + 1] = all[i] end
  return out
end

-- Writes the fields (a Lua table) into the hash `key`, which expires after `ttl` seconds.
local function write_record(key, fields, ttl)
  local flat = {}
  for k, v in pairs(fields) do
    flat[#flat + 1] = k
    flat[#flat + 1] = v
  end
  redis.call('HSET', key, unpack(flat))
  redis.call('EXPIRE', key, ttl)
end
