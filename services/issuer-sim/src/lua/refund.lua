-- Refund: credit part or all of an approved purchase or completion. The sum of refunds of an
-- original never exceeds its amount ("61"). Idempotent on the refund's own id.
--
-- KEYS: 1 the refund's record, 2 the original's record, 3 the card, 4 its ledger, 5 the RRN
--       counter of the business date
-- ARGV: 1 digest, 2 amount, 3 currency, 4 token of the PAN in the request ('' when none),
--       5 approval code to use, 6 issuer reference, 7 business date, 8 RRN prefix,
--       9 time stamp, 10 record TTL seconds, 11 the card token the caller read from the
--       original ('' when it found none), 12 the refund's acquirer transaction id,
--       13 the original's acquirer transaction id
--
-- Returns like the Authorize scripts: { status, record fields... }.

local txn_key, original_key, card_key, ledger_key, rrn_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local A = {
  digest = ARGV[1], amount = ARGV[2], currency = ARGV[3], pan_token = ARGV[4],
  approval = ARGV[5], ref = ARGV[6], date = ARGV[7], rrn_prefix = ARGV[8], now = ARGV[9],
  ttl = tonumber(ARGV[10]), expected = ARGV[11], id = ARGV[12], original = ARGV[13]
}
local amount = num(A.amount)

local function answer(code, extra)
  local fields = {
    kind = 'refund', digest = A.digest, op = 'refund', card = A.expected, amount = A.amount,
    currency = A.currency, code = code, rrn = next_rrn(rrn_key, A.rrn_prefix), ref = A.ref,
    date = A.date, at = A.now, original = A.original
  }
  for k, v in pairs(extra or {}) do fields[k] = v end
  write_record(txn_key, fields, A.ttl)
  return reply('new', txn_key)
end

if redis.call('EXISTS', txn_key) == 1 then
  local kind, digest = unpack(redis.call('HMGET', txn_key, 'kind', 'digest'))
  if kind == 'tombstone' then return answer('12') end
  if digest == A.digest then return reply('replay', txn_key) end
  return { 'mismatch' }
end
if redis.call('EXISTS', original_key) == 0 then return answer('25') end
local o = {}
local all = redis.call('HGETALL', original_key)
for i = 1, #all, 2 do o[all[i]] = all[i + 1] end
if o.kind == 'tombstone' then return answer('25') end
if (o.card or '') ~= A.expected then return { 'retry' } end
if o.code ~= '00' then return answer('25') end
if o.op ~= 'purchase' and o.op ~= 'completion' then return answer('12') end
if o.reversed == '1' then return answer('12') end
if A.pan_token ~= '' and A.pan_token ~= o.card then return answer('14') end
if A.currency ~= o.currency then return answer('13') end
local refunded = num(o.refunded)
if refunded + amount > num(o.amount) then
  return answer('61', { refunded_total = fmt(refunded) })
end
local c = load_card(card_key)
if not c then return answer('14') end
credit(c, amount)
refunded = redis.call('HINCRBY', original_key, 'refunded', amount)
ledger(ledger_key, c, { at = A.now, txn = A.id, op = 'refund', amount = A.amount, hold = '0',
  original = A.original })
return answer('00', { funding = c.funding, account_currency = c.currency, approval = A.approval, available = fmt(available(c)),
  approved = A.amount, refunded_total = fmt(refunded) })
