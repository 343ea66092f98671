-- Seeds one card: creates it, or with reseed = '1' overwrites its attributes and balances
-- (open holds are kept: they are claims of real pre-authorizations) and resets PIN tries.
--
-- KEYS: 1 the card, 2 its ledger
-- ARGV: 1 reseed ('1' or '0'), 2 time stamp, then field, value pairs of the card
--
-- Returns 1 when the card was written, 0 when it existed and was left alone.

local card_key, ledger_key = KEYS[1], KEYS[2]
local existed = redis.call('EXISTS', card_key) == 1
if existed and ARGV[1] ~= '1' then return 0 end
local flat = {}
for i = 3, #ARGV do flat[#flat + 1] = ARGV[i] end
if existed then
  redis.call('HDEL', card_key, 'balance', 'owed', 'credit_limit', 'per_txn_limit')
end
redis.call('HSET', card_key, unpack(flat))
redis.call('HSET', card_key, 'pin_tries', '0')
if not existed then redis.call('HSET', card_key, 'holds', '0') end
local c = load_card(card_key)
local op = 'open'
if existed then op = 'reseed' end
ledger(ledger_key, c, { at = ARGV[2], txn = '', op = op, amount = '0', hold = '0' })
return 1
