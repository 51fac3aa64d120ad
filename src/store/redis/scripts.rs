//! The Lua scripts of the Redis store: each checks a version and writes in one atomic step.
//! Key and argument order is documented above each script; `super` (redis.rs) calls them.

use redis::Script;
use std::sync::LazyLock;

// Creates or replaces (a live record or a tombstone) at a known version: the caller sealed
// for `expected + 1`.
pub(super) static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if tonumber(redis.call('HGET', KEYS[1], 'version') or '0') ~= tonumber(ARGV[1]) then return false end
          local v = redis.call('HINCRBY', KEYS[1], 'version', 1)
          redis.call('HSET', KEYS[1], 'data', ARGV[2])
          return v",
    )
});

// Returns nil (→ None) when the live version is not the expected one; a tombstone
// (no `data`) is never live.
pub(super) static COMPARE_AND_SWAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('HEXISTS', KEYS[1], 'data') == 0 then return false end
          if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return false end
          local v = redis.call('HINCRBY', KEYS[1], 'version', 1)
          redis.call('HSET', KEYS[1], 'data', ARGV[2])
          return v",
    )
});

/// Makes `ARGV[3]` the current attempt, owned by `ARGV[4]`: the old current one becomes the
/// previous one, and the old previous one gets its expiry (now + `ARGV[5]` ms). Shared by the
/// scripts that journal an attempt. KEYS: cred, journal.
const RECORD_ATTEMPT: &str = r"
local function record_attempt()
  local cur = redis.call('HGET', KEYS[1], 'attempt')
  if cur ~= ARGV[3] then
    local prev = redis.call('HGET', KEYS[1], 'previous')
    if prev then
      local t = redis.call('TIME')
      redis.call('ZADD', KEYS[2], t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[5]), prev)
    end
    if cur then redis.call('HSET', KEYS[1], 'previous', cur) end
    redis.call('ZADD', KEYS[2], '+inf', ARGV[3])
    redis.call('HSET', KEYS[1], 'attempt', ARGV[3])
  end
  redis.call('HSET', KEYS[1], 'owner', ARGV[4])
end
";

// The refresh journal. Returns the new version, 0 when the version changed, -1 when this
// refresh token was already attempted (in the journal, or under a legacy attempt key).
// KEYS: cred, journal, legacy attempt key; ARGV: expected, data, attempt, owner, horizon ms.
pub(super) static RESERVE_REFRESH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{RECORD_ATTEMPT}
          if redis.call('HEXISTS', KEYS[1], 'data') == 0 then return 0 end
          if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return 0 end
          local t = redis.call('TIME')
          redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', t[1] * 1000 + math.floor(t[2] / 1000))
          if redis.call('ZSCORE', KEYS[2], ARGV[3]) or redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
          record_attempt()
          local v = redis.call('HINCRBY', KEYS[1], 'version', 1)
          redis.call('HSET', KEYS[1], 'data', ARGV[2])
          return v"
    ))
});

// Recovery from a vanished holder: the attempt changes owner in the same step as the record.
// KEYS: cred, journal; ARGV: expected, data, attempt, owner, horizon ms.
pub(super) static FENCE_REFRESH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{RECORD_ATTEMPT}
          if redis.call('HEXISTS', KEYS[1], 'data') == 0 then return false end
          if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return false end
          record_attempt()
          local v = redis.call('HINCRBY', KEYS[1], 'version', 1)
          redis.call('HSET', KEYS[1], 'data', ARGV[2])
          return v"
    ))
});

// Only for a refresh that provably never reached the provider: the attempt leaves the
// journal, and the previous attempt is the current one again.
// KEYS: cred, journal, legacy attempt key; ARGV: expected, data, attempt.
pub(super) static REOPEN_REFRESH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('HEXISTS', KEYS[1], 'data') == 0 then return false end
          if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return false end
          redis.call('ZREM', KEYS[2], ARGV[3])
          redis.call('DEL', KEYS[3])
          if redis.call('HGET', KEYS[1], 'attempt') == ARGV[3] then
            local prev = redis.call('HGET', KEYS[1], 'previous')
            if prev then redis.call('HSET', KEYS[1], 'attempt', prev) else redis.call('HDEL', KEYS[1], 'attempt') end
            redis.call('HDEL', KEYS[1], 'previous', 'owner')
          end
          local v = redis.call('HINCRBY', KEYS[1], 'version', 1)
          redis.call('HSET', KEYS[1], 'data', ARGV[2])
          return v",
    )
});

// The owner of the current attempt if it is `ARGV[1]`, else of a legacy attempt key.
pub(super) static ATTEMPT_OWNER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('HGET', KEYS[1], 'attempt') == ARGV[1] then return redis.call('HGET', KEYS[1], 'owner') end
          return redis.call('GET', KEYS[2])",
    )
});

// Lease renewal and release compare the owner first: a plain PEXPIRE or DEL would extend
// or delete a lease another replica took after ours expired.
pub(super) static RENEW_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
          return redis.call('PEXPIRE', KEYS[1], ARGV[2])",
    )
});

pub(super) static RELEASE_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
          return redis.call('DEL', KEYS[1])",
    )
});

// Leaves a tombstone: the version grows, the data goes; the journal stays.
pub(super) static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('HDEL', KEYS[1], 'data') == 0 then return 0 end
          redis.call('HINCRBY', KEYS[1], 'version', 1)
          return 1",
    )
});
