local v = redis.call('GET', KEYS[1])
if v then
  -- A stored session keeps its id unless it is logically expired at now
  -- (an undecodable value returns 0 here: taken).
  -- @header
  if tonumber(ARGV[3]) < math.min(last + idle, deadline) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if v then return v end
return 1
