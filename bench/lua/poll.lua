-- GET /v1/tasks/{id} for a random id from $IDS_FILE, with the key in $CONDUIT_KEY.
local ids = {}
for line in io.lines(os.getenv("IDS_FILE")) do
  ids[#ids + 1] = line
end
local auth = "Bearer " .. os.getenv("CONDUIT_KEY")
math.randomseed(os.time() + math.floor(os.clock() * 1000000))

request = function()
  local id = ids[math.random(1, #ids)]
  return wrk.format("GET", "/v1/tasks/" .. id, { ["Authorization"] = auth })
end
