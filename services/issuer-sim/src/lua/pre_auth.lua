-- PRE_AUTH: place a hold of the amount; the hold id comes back in the answer.
local c, early = begin()
if early then return early end
if amount > available(c) then return insufficient(c) end
change_holds(c, amount)
redis.call('HSET', hold_key, 'card', A.token, 'amount', A.amount, 'currency', A.currency,
  'state', 'active', 'preauth', A.id, 'at', A.now)
ledger(ledger_key, c, { at = A.now, txn = A.id, op = 'hold', amount = '0', hold = A.amount })
return approve(c, { hold_id = A.hold_id })
