// The Lua scripts of the shared block index (key layout: redis-keys.ts). Each runs atomically in Redis, so a
// reader never sees half of a writer's group, and each replaces many round trips by one EVALSHA. Block keys
// are built inside the scripts from a prefix and hex digits (a standalone Redis, not Redis Cluster).

/**
 * Longest cached prefix per pod, in ONE round trip.
 * ARGV: blockPrefix, unknownMediumWeight, nMedia, (medium, weight) × nMedia, then the chain's hex digits.
 * Walks the chain from block 0 (HKEYS per block); a pod advances while it holds every block so far, each
 * block credited with the best weight among the media the pod holds it in; stops at the first block no
 * still-matching pod holds. Reply: flat [pod, blocks, weightedSum (decimal string)] for every pod holding
 * block 0 — the same numbers as BlockIndex.matchPrefix.
 */
export const LOOKUP_LUA = `
local prefix = ARGV[1]
local unknown = tonumber(ARGV[2])
local nm = tonumber(ARGV[3])
local w = {}
for i = 0, nm - 1 do w[ARGV[4 + 2 * i]] = tonumber(ARGV[5 + 2 * i]) end
local first = 4 + 2 * nm
local at, sum, last, pods = {}, {}, {}, {}
-- A pool has few distinct fields (pods × media): split each once, not once per block.
local podOf, weightOf = {}, {}
for b = 1, #ARGV - first + 1 do
  local fields = redis.call('HKEYS', prefix .. ARGV[first + b - 1])
  local alive = 0
  for j = 1, #fields do
    local f = fields[j]
    local pod = podOf[f]
    if pod == nil then
      local s = string.find(f, '|', 1, true)
      if s then
        pod = string.sub(f, s + 1)
        weightOf[f] = w[string.sub(f, 1, s - 1)] or unknown
      else
        pod = false
      end
      podOf[f] = pod
    end
    if pod then
      local a = at[pod]
      local x = weightOf[f]
      if a == b - 1 or (b == 1 and a == nil) then
        at[pod] = b
        sum[pod] = (sum[pod] or 0) + x
        last[pod] = x
        if b == 1 then pods[#pods + 1] = pod end
        alive = alive + 1
      elseif a == b and x > last[pod] then
        sum[pod] = sum[pod] + x - last[pod]
        last[pod] = x
      end
    end
  end
  if alive == 0 then break end
end
local out = {}
for i = 1, #pods do
  local p = pods[i]
  out[#out + 1] = p
  out[#out + 1] = at[p]
  out[#out + 1] = tostring(sum[p])
end
return out
`;

/**
 * Writes one (pod, medium) group: absolute reference counts, so replaying a write (several replicas
 * mirroring the same pod, a re-sync) is idempotent. KEYS[1] = the pod's set.
 * ARGV: blockPrefix, pod, medium, ttlSeconds, then (hex, count) pairs; count 0 = the pod no longer holds it.
 * Block keys get their TTL refreshed on every store; entries of this pod not re-stored within the TTL are
 * dropped here (at most 256 per call), so memory stays bounded even when removals are lost.
 */
export const WRITE_LUA = `
local prefix, pod, medium = ARGV[1], ARGV[2], ARGV[3]
local ttl = tonumber(ARGV[4])
local now = tonumber(redis.call('TIME')[1])
local field = medium .. '|' .. pod
for i = 5, #ARGV, 2 do
  local hex = ARGV[i]
  local key = prefix .. hex
  if tonumber(ARGV[i + 1]) > 0 then
    redis.call('HSET', key, field, ARGV[i + 1])
    redis.call('EXPIRE', key, ttl)
    redis.call('ZADD', KEYS[1], now, hex .. medium)
  else
    redis.call('HDEL', key, field)
    redis.call('ZREM', KEYS[1], hex .. medium)
  end
end
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - ttl, 'LIMIT', 0, 256)
for i = 1, #old do
  local m = old[i]
  redis.call('HDEL', prefix .. string.sub(m, 1, 16), string.sub(m, 17) .. '|' .. pod)
  redis.call('ZREM', KEYS[1], m)
end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('EXPIRE', KEYS[1], ttl) end
return #old
`;

/**
 * Clears a pod in bounded steps. KEYS[1] = the pod's set, KEYS[2] = a fresh name to drain it under.
 * ARGV: blockPrefix, pod, limit, first ("1" renames KEYS[1] to KEYS[2] first), ttlSeconds.
 * Renaming first means writes made after the clear go to a new set; a drained entry that such a write
 * re-stored is left alone. Reply: entries drained (= limit: call again with first "0").
 */
export const CLEAR_POD_LUA = `
if ARGV[4] == '1' then
  if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
  redis.call('RENAME', KEYS[1], KEYS[2])
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[5]))
end
local popped = redis.call('ZPOPMIN', KEYS[2], tonumber(ARGV[3]))
for i = 1, #popped, 2 do
  local m = popped[i]
  if not redis.call('ZSCORE', KEYS[1], m) then
    redis.call('HDEL', ARGV[1] .. string.sub(m, 1, 16), string.sub(m, 17) .. '|' .. ARGV[2])
  end
end
return #popped / 2
`;
