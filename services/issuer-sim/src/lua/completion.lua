-- PRE_AUTH_COMPLETION: capture the hold. The amount may exceed the held amount by the
-- tolerance (percent, rounded down to the fen); otherwise "13". The whole hold is released and
-- the completion amount debited, exactly once: the hold's state moves from active to captured.
local c, early = begin()
if early then return early end
local h, refused = open_hold()
if refused then return refused end
local ceiling = h.amount + math.floor(h.amount * A.tolerance / 100)
if amount > ceiling then return answer('13') end
if amount > available(c) + h.amount then return insufficient(c) end
change_holds(c, -h.amount)
debit(c, amount)
redis.call('HSET', hold_key, 'state', 'captured', 'by', A.id, 'captured', A.amount)
ledger(ledger_key, c, { at = A.now, txn = A.id, op = 'capture', amount = fmt(-amount),
  hold = fmt(-h.amount) })
return approve(c)
