local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if string.sub(v, 72, 103) ~= ARGV[1] or string.sub(v, 21, 36) ~= ARGV[2] then return 0 end
return redis.call('DEL', KEYS[1])
