local v = redis.call('GET', KEYS[1])
if not v then return false end
-- @header
if string.sub(v, 72, 103) ~= ARGV[3] then return false end
local c = string.find(v, ':', body, true)
if not c then return 0 end
local n = tonumber(string.sub(v, body, c - 1))
if not n then return 0 end
if string.sub(v, c + 1, c + n) ~= ARGV[1] then return false end
local now = tonumber(ARGV[2])
local exp = math.min(last + idle, deadline)
if now >= exp then return false end
if now > last then
  redis.call('SETRANGE', KEYS[1], 3, ARGV[2])
  exp = math.min(now + idle, deadline)
end
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', exp - now + GRACE_MS))
return v
