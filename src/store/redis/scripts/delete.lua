local v = redis.call('GET', KEYS[1])
if not v then return false end
local ver = tonumber(string.sub(v, 2, 2))
if string.sub(v, 1, 1) == 'v' and ver and ver >= 2 and string.sub(v, 72, 103) ~= ARGV[1] then
  return false
end
redis.call('DEL', KEYS[1])
return v
