local v = redis.call('GET', KEYS[1])
if not v then return 0 end
-- @header
if tonumber(ARGV[2]) >= math.min(last + idle, deadline) then return 0 end
if string.sub(v, 72, 103) ~= ARGV[5] then return 0 end
local c = string.find(v, ':', body, true)
if not c then return 0 end
local n = tonumber(string.sub(v, body, c - 1))
if not n or string.sub(v, c + 1, c + n) ~= ARGV[4] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'XX', 'PX', ARGV[3])
return 1
