-- The beginning of every Authorize script (purchase, pre_auth, completion, pre_auth_void,
-- balance_inquiry): idempotency, then the checks every operation shares, in the order the
-- issuer applies them: unknown card 14, pre-checks decided from immutable data (54 expired,
-- 13 currency, ...), card status 41/43/57, PIN 75/99/55, per-transaction limit 61.
--
-- KEYS: 1 the request's record (txn:<acquirer_transaction_id>), 2 the card, 3 its ledger,
--       4 the RRN counter of the business date, 5 the hold (new for pre_auth, the captured or
--       released one for completion and void; an unused key otherwise)
-- ARGV: 1 digest, 2 operation, 3 amount (minor units, '' when none), 4 currency,
--       5 pre-check response code ('' when none), 6 PIN state (none|ok|wrong|missing|
--       malformed|unchecked), 7 approval code to use, 8 issuer reference, 9 business date,
--       10 RRN prefix, 11 time stamp, 12 record TTL seconds, 13 hold id, 14 original acquirer
--       transaction id, 15 completion tolerance (percent), 16 PIN try limit, 17 card token,
--       18 acquirer transaction id
--
-- Returns { status, record fields... }: status 'new' (this call answered and wrote the record),
-- 'replay' (the record of an earlier identical request), 'mismatch' (same id, other content:
-- "94", nothing written) or 'retry' (the caller's view of the card was stale, nothing written).

local txn_key, card_key, ledger_key, rrn_key, hold_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local A = {
  digest = ARGV[1], op = ARGV[2], amount = ARGV[3], currency = ARGV[4], precheck = ARGV[5],
  pin = ARGV[6], approval = ARGV[7], ref = ARGV[8], date = ARGV[9], rrn_prefix = ARGV[10],
  now = ARGV[11], ttl = tonumber(ARGV[12]), hold_id = ARGV[13], original = ARGV[14],
  tolerance = tonumber(ARGV[15]), pin_limit = tonumber(ARGV[16]), token = ARGV[17],
  id = ARGV[18]
}
local amount = num(A.amount)
-- What every answer tells about the card once it is known: funding and account currency.
local known = {}

-- Writes this request's first (and only) answer; `extra` adds fields to the record.
local function answer(code, extra)
  local fields = {
    kind = 'authorize', digest = A.digest, op = A.op, card = A.token, amount = A.amount,
    currency = A.currency, code = code, rrn = next_rrn(rrn_key, A.rrn_prefix), ref = A.ref,
    date = A.date, at = A.now, hold = A.hold_id, original = A.original
  }
  for k, v in pairs(known) do fields[k] = v end
  for k, v in pairs(extra or {}) do fields[k] = v end
  write_record(txn_key, fields, A.ttl)
  return reply('new', txn_key)
end

-- Nil and the card when the request may go on; otherwise the reply to return.
local function begin()
  if redis.call('EXISTS', txn_key) == 1 then
    local kind, digest = unpack(redis.call('HMGET', txn_key, 'kind', 'digest'))
    -- A reversal arrived first: the late original is declined and moves nothing.
    if kind == 'tombstone' then return nil, answer('12') end
    if digest == A.digest then return nil, reply('replay', txn_key) end
    return nil, { 'mismatch' }
  end
  local c = load_card(card_key)
  if not c then return nil, answer('14') end
  known = { funding = c.funding, account_currency = c.currency }
  if A.precheck ~= '' then return nil, answer(A.precheck) end
  if c.status == 'lost' then return nil, answer('41') end
  if c.status == 'stolen' then return nil, answer('43') end
  if c.status ~= 'active' then return nil, answer('57') end
  if A.pin ~= 'none' then
    if c.pin_tries >= A.pin_limit then return nil, answer('75') end
    -- The caller skipped PIN verification expecting an earlier decline that did not come.
    if A.pin == 'unchecked' then return nil, { 'retry' } end
    if A.pin == 'malformed' then return nil, answer('99') end
    if A.pin == 'missing' then return nil, answer('55') end
    if A.pin == 'wrong' then
      local tries = redis.call('HINCRBY', card_key, 'pin_tries', 1)
      if tries >= A.pin_limit then return nil, answer('75') end
      return nil, answer('55')
    end
    if c.pin_tries > 0 then
      redis.call('HSET', card_key, 'pin_tries', '0')
      c.pin_tries = 0
    end
  end
  if (A.op == 'purchase' or A.op == 'pre_auth') and c.per_txn_limit ~= ''
      and amount > num(c.per_txn_limit) then
    return nil, answer('61')
  end
  return c, nil
end

-- Declined for lack of funds, disclosing what is available.
local function insufficient(c)
  return answer('51', { available = fmt(available(c)) })
end

-- Approved, with the available balance after the operation.
local function approve(c, extra)
  local fields = { approval = A.approval, available = fmt(available(c)) }
  if A.amount ~= '' then fields.approved = A.amount end
  for k, v in pairs(extra or {}) do fields[k] = v end
  return answer('00', fields)
end

-- The hold a completion or void acts on, or nil and the decline: "25" unknown hold, "12"
-- another card's hold, another pre-auth's hold, or a hold already captured or released.
local function open_hold()
  if redis.call('EXISTS', hold_key) == 0 then return nil, answer('25') end
  local h = redis.call('HMGET', hold_key, 'card', 'amount', 'state', 'preauth')
  if h[1] ~= A.token then return nil, answer('12') end
  if A.original ~= '' and h[4] ~= A.original then return nil, answer('12') end
  if h[3] ~= 'active' then return nil, answer('12') end
  return { amount = num(h[2]), preauth = h[4] }, nil
end
