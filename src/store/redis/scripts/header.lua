local ver = tonumber(string.sub(v, 2, 2))
if string.sub(v, 1, 1) ~= 'v' or not ver or ver < 2 or string.sub(v, 3, 3) ~= ' ' then return 0 end
local nl = string.sub(v, 121, 121)
if not (nl == '\n' or (ver > 2 and nl == ' ')) then return 0 end
local body = string.find(v, '\n', 121, true)
if not body then return 0 end
body = body + 1
local last = tonumber(string.sub(v, 4, 19))
local deadline = tonumber(string.sub(v, 38, 53))
local idle = tonumber(string.sub(v, 55, 70))
if not (last and deadline and idle) then return 0 end
