local key = KEYS[1]
local cap = tonumber(ARGV[4])
for i = 9, #ARGV, 3 do
  local score = redis.call('ZSCORE', key, ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    if ARGV[i + 2] == '' then
      redis.call('ZREM', key, ARGV[i])
    else
      redis.call('ZADD', key, 'XX', ARGV[i + 2], ARGV[i])
    end
  end
end
if ARGV[6] == 'deadline' then
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
end
redis.call('ZREM', key, ARGV[2])
local n = redis.call('ZCARD', key)
local out = {1}
if n >= cap then
  if ARGV[5] == 'check' then
    local batch = tonumber(ARGV[7])
    if ARGV[6] == 'deadline' then
      out = redis.call('ZRANGE', key, 0, batch - 1, 'WITHSCORES')
    else
      out = redis.call('ZRANGEBYSCORE', key, '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, batch)
    end
    table.insert(out, 1, n)
    table.insert(out, 1, 0)
    return out
  elseif ARGV[5] == 'reject' then
    return {0, n}
  end
  local popped = redis.call('ZPOPMIN', key, n - math.max(cap, 1) + 1)
  for i = 1, #popped, 2 do table.insert(out, popped[i]) end
end
redis.call('ZADD', key, ARGV[3], ARGV[2])
if redis.call('PTTL', key) < tonumber(ARGV[8]) then
  redis.call('PEXPIRE', key, ARGV[8])
end
return out
