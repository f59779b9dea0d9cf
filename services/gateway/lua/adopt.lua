-- Recreate a lost record for an order found on the exchange (status UNKNOWN, nothing
-- reserved): reconciliation's rare path.
--
-- Keys (k_*) and arguments: ADOPT_KEYS and AdoptArgs in services/gateway/scripts.py.
-- Returns 1 if created, 0 if a record exists after all.

if redis.call('EXISTS', k_order) == 1 then return 0 end
redis.call('HSET', k_order, REC.STATUS, ST.UNKNOWN, REC.CID, cid, REC.INTENT, intent,
  REC.MODE, mode, REC.RESERVED, '0', REC.OPENED, '0', REC.CREATED_AT, now,
  REC.UPDATED_AT, now, REC.INSTANCE, instance, REC.ADOPTED, '1')
redis.call('SADD', k_active, cid)
return 1
