-- PRE_AUTH_VOID: release the hold in full. An amount, when given, must be the held amount
-- ("64" otherwise).
local c, early = begin()
if early then return early end
local h, refused = open_hold()
if refused then return refused end
if A.amount ~= '' and amount ~= h.amount then
  return answer('64')
end
change_holds(c, -h.amount)
redis.call('HSET', hold_key, 'state', 'released', 'by', A.id)
ledger(ledger_key, c, { at = A.now, txn = A.id, op = 'release', amount = '0',
  hold = fmt(-h.amount) })
return approve(c, { approved = fmt(h.amount) })
