-- PURCHASE: debit the account by the amount.
local c, early = begin()
if early then return early end
if amount > available(c) then return insufficient(c) end
debit(c, amount)
ledger(ledger_key, c, { at = A.now, txn = A.id, op = 'purchase', amount = fmt(-amount), hold = '0' })
return approve(c)
