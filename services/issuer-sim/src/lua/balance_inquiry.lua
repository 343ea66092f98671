-- BALANCE_INQUIRY: answer the available balance; moves no money, writes no ledger entry.
local c, early = begin()
if early then return early end
return approve(c)
