-- Argo CD health check for glint's kinds: Image, ImageSeries and SharedImage (group glint.dev).
-- All three report the kstatus conditions Ready, Reconciling and Stalled, each with the
-- observedGeneration it was written for, so one script serves them all:
--   Degraded     Stalled is True: glint waits for a change to the spec, the Secret or the cloud
--   Healthy      Ready is True for the object's current generation
--   Progressing  anything else: no status yet, an edit glint has not seen, work under way
-- Argo CD runs it with `obj` set to the object; docs/operations.md's "GitOps" section says how to install it.
local hs = {}

local function condition(conditions, kind)
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function describe(c)
  local reason = c.reason or ""
  local message = c.message or ""
  if reason == "" then
    return message
  end
  return reason .. ": " .. message
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Being deleted: glint is removing or releasing the Glance image first"
  return hs
end

local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for glint to report status"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for glint to act on generation " .. string.format("%d", generation)
  return hs
end

local stalled = condition(status.conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

local ready = condition(status.conditions, "Ready")
if ready ~= nil and ready.status == "True"
  and (generation == nil or ready.observedGeneration == nil or ready.observedGeneration >= generation) then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end

local reconciling = condition(status.conditions, "Reconciling")
hs.status = "Progressing"
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = describe(reconciling)
elseif ready ~= nil then
  hs.message = describe(ready)
else
  hs.message = "Waiting for glint to report a Ready condition"
end
return hs
