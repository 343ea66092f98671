-- Reverse: undo an earlier request in full, at most once (idempotent on the original's id).
--
-- KEYS: 1 the original's record, 2 its card, 3 the card's ledger, 4 its hold (or an unused
--       key), 5 for a refund, the record of the purchase it refunded (or an unused key)
-- ARGV: 1 amount the acquirer says the original had ('' when not given), 2 reversal id,
--       3 time stamp, 4 record TTL seconds, 5 the card token the caller read from the record
--       ('' when it found none), 6 the original's acquirer transaction id
--
-- Returns { 'done', outcome, available ('' when not disclosed) } with outcome 1 reversed,
-- 2 already reversed, 3 original not found (a tombstone now waits for it), 4 original
-- declined; or { 'code', response code } when the reversal is refused and nothing changed
-- ("64" amount differs, "12" a pre-auth whose hold was captured: reverse the completion
-- first); or { 'retry' } when the caller's view was stale.

local txn_key, card_key, ledger_key, hold_key, refunded_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local given, reversal_id, now, ttl, expected, id = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6]

local function mark(outcome)
  redis.call('HSET', txn_key, 'reversed', '1', 'rev_outcome', outcome, 'rev_id', reversal_id,
    'rev_at', now)
end

if redis.call('EXISTS', txn_key) == 0 then
  -- Out of order: the original has not arrived. Leave a tombstone so that it is declined "12"
  -- when it does.
  write_record(txn_key, { kind = 'tombstone', reversed = '1', rev_outcome = '3',
    rev_id = reversal_id, rev_at = now }, ttl)
  return { 'done', '3', '' }
end

local r = {}
local all = redis.call('HGETALL', txn_key)
for i = 1, #all, 2 do r[all[i]] = all[i + 1] end
if r.kind == 'tombstone' then return { 'done', r.rev_outcome or '3', '' } end
if (r.card or '') ~= expected then return { 'retry' } end

local c = load_card(card_key)
local function avail()
  if c then return fmt(available(c)) end
  return ''
end

if r.reversed == '1' then
  local outcome = r.rev_outcome or '2'
  if outcome == '1' then outcome = '2' end
  return { 'done', outcome, avail() }
end
if given ~= '' and (r.amount or '') ~= '' and given ~= r.amount then return { 'code', '64' } end
if r.code ~= '00' or not c then
  mark('4')
  return { 'done', '4', '' }
end

local entry = { at = now, txn = id, op = 'reversal', amount = '0', hold = '0', reversal = reversal_id }
local amount = num(r.amount)
local outcome = '1'

if r.op == 'purchase' or r.op == 'completion' then
  -- Credit back what was debited and not refunded yet.
  local back = amount - num(r.refunded)
  if back > 0 then
    credit(c, back)
    entry.amount = fmt(back)
  end
  if r.op == 'completion' and redis.call('HGET', hold_key, 'state') == 'captured'
      and redis.call('HGET', hold_key, 'by') == id then
    -- The capture is undone: the pre-authorization's hold is open again.
    local held = num(redis.call('HGET', hold_key, 'amount'))
    change_holds(c, held)
    redis.call('HSET', hold_key, 'state', 'active', 'by', '', 'captured', '')
    entry.hold = fmt(held)
  end
elseif r.op == 'pre_auth' then
  local state = redis.call('HGET', hold_key, 'state')
  if state == 'captured' then return { 'code', '12' } end
  if state == 'active' then
    local held = num(redis.call('HGET', hold_key, 'amount'))
    change_holds(c, -held)
    redis.call('HSET', hold_key, 'state', 'released', 'by', id)
    entry.hold = fmt(-held)
  else
    outcome = '2'
  end
elseif r.op == 'pre_auth_void' then
  if redis.call('HGET', hold_key, 'state') == 'released' and redis.call('HGET', hold_key, 'by') == id then
    -- The release is undone: the hold is placed again.
    local held = num(redis.call('HGET', hold_key, 'amount'))
    change_holds(c, held)
    redis.call('HSET', hold_key, 'state', 'active', 'by', '')
    entry.hold = fmt(held)
  else
    outcome = '2'
  end
elseif r.op == 'refund' then
  -- The credit is taken back and the purchase is refundable again by that much.
  debit(c, amount)
  entry.amount = fmt(-amount)
  redis.call('HINCRBY', refunded_key, 'refunded', -amount)
end
-- balance_inquiry: nothing to undo.

mark(outcome)
if entry.amount ~= '0' or entry.hold ~= '0' then ledger(ledger_key, c, entry) end
return { 'done', outcome, avail() }
