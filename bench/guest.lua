-- wrk script: POST /checkin/v1/api/guest with a fresh GUID per request (spec 000 atomic send).
local counter = 0
local threads = {}

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

function init(args)
  math.randomseed(os.time() * 1000 + tid * 7919)
end

local function guid()
  return (string.gsub("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", "[xy]", function(c)
    local v = (c == "x") and math.random(0, 15) or math.random(8, 11)
    return string.format("%x", v)
  end))
end

local headers = {
  ["Content-Type"] = "application/json",
  ["Authorization"] = "Bearer " .. os.getenv("HERALD_KEY"),
  ["Ocp-Apim-Subscription-Key"] = os.getenv("HERALD_SUB"),
}
local template = '{"id":"%s","firstName":"Jane","lastName":"Smith","email":"jane+%d@example.com",'
  .. '"eventId":"' .. os.getenv("HERALD_EVENT") .. '","commsTemplateId":"'
  .. os.getenv("HERALD_TEMPLATE") .. '","correlationId":"order-%d"}'
local n = 0

function request()
  n = n + 1
  return wrk.format("POST", nil, headers, string.format(template, guid(), n, n))
end
