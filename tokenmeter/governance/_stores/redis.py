"""Redis for a fleet: ONE round trip (``EVALSHA`` of a Lua script) per reserve, settles riding along.

Any number of settles and at most one reserve go in one script call (:meth:`RedisStore.exchange`): the
gate queues settles and sends them from a thread or with the next reserve (``governance/_settler``),
so a metered call pays one round trip on its caller's path.

Per bucket there are three keys, all under the hash tag ``{tokenmeter}`` so that a Redis Cluster keeps
them in one slot: a hash of the settled spend (``su``, ``st``) and fired warnings (``w``); a hash of
live reservations (id -> ``"usd:tokens"``); a sorted set of their lease ends. The scripts implement
the same admission rule as the Python stores (see ``_base``); the contract tests hold them to it.
Amounts stay below 2**53 (9 million dollars in nano-dollars per window), so Lua's doubles are exact.
Lease times and key lifetimes come from the calling host's clock (keys expire by relative TTL).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._base import Admission, BucketState, BudgetStore, Line, ReserveOp, Settled, SettleOp, StoreUnavailable

_PREFIX = "{tokenmeter}:"

# Shared by the scripts: drop expired leases of bucket i and read its state into numbers.
_LUA_COMMON = r"""
local function keys_of(i)
  return KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
end
local function num(v)
  if v then return tonumber(v) end
  return 0
end
local function purge(r, e, now)
  local expired = redis.call('ZRANGEBYSCORE', e, '-inf', now)
  for _, id in ipairs(expired) do
    redis.call('HDEL', r, id)
    redis.call('ZREM', e, id)
  end
end
local function load(b, r)
  local f = redis.call('HMGET', b, 'su', 'st', 'w')
  local ru, rt, rn = 0, 0, 0
  local all = redis.call('HVALS', r)
  for _, v in ipairs(all) do
    local u, t = string.match(v, '^(%d+):(%d+)$')
    ru = ru + tonumber(u)
    rt = rt + tonumber(t)
    rn = rn + 1
  end
  return {num(f[1]), num(f[2]), ru, rt, rn, num(f[3])}
end
local function keep(b, r, e, ttl_ms)
  redis.call('PEXPIRE', b, ttl_ms)
  redis.call('PEXPIRE', r, ttl_ms)
  redis.call('PEXPIRE', e, ttl_ms)
end
local function int(x)
  return string.format('%.0f', x)
end
"""

# One script for everything a caller or the settle thread sends: first any number of settles, then at
# most one reserve, in one round trip. KEYS: three per line, settles' lines first, then the reserve's.
# ARGV: the number of settles; per settle: rid ('' for none), now, its number of lines, then per line
# usd, tokens, ttl_ms, levels ("u,t;u,t" with -1 for none); then '1' and the reserve: rid, now,
# lease_until, its number of lines, per line usd, tokens, limit_usd (-1: none), limit_tokens, ttl_ms,
# enforce -- or '0' for no reserve. Reply: per settled line the state and the warn count before (7
# numbers); then, with a reserve, admitted (1/0), the refused line (1-based, 0 if none) and each
# line's state (6 numbers each).
_EXCHANGE = (
    _LUA_COMMON
    + r"""
local out = {}
local a, li = 2, 0
for _ = 1, tonumber(ARGV[1]) do
  local rid, now, n = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  a = a + 3
  for _ = 1, n do
    li = li + 1
    local b, r, e = keys_of(li)
    purge(r, e, now)
    if rid ~= '' then
      redis.call('HDEL', r, rid)
      redis.call('ZREM', e, rid)
    end
    local s = load(b, r)
    s[1] = s[1] + tonumber(ARGV[a])
    s[2] = s[2] + tonumber(ARGV[a + 1])
    local before = s[6]
    local reached = 0
    for lu, lt in string.gmatch(ARGV[a + 3], '(%-?%d+),(%-?%d+)') do
      lu, lt = tonumber(lu), tonumber(lt)
      if (lu >= 0 and s[1] >= lu) or (lt >= 0 and s[2] >= lt) then reached = reached + 1 else break end
    end
    if reached > before then s[6] = reached end
    redis.call('HSET', b, 'su', int(s[1]), 'st', int(s[2]), 'w', int(s[6]))
    keep(b, r, e, ARGV[a + 2])
    for k = 1, 6 do table.insert(out, s[k]) end
    table.insert(out, before)
    a = a + 4
  end
end
if ARGV[a] ~= '1' then return out end
local rid, now, lease_until, n = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], tonumber(ARGV[a + 4])
a = a + 5
local states = {}
for i = 1, n do
  local b, r, e = keys_of(li + i)
  purge(r, e, now)
  states[i] = load(b, r)
end
for i = 1, n do
  local p = a + (i - 1) * 6
  if ARGV[p + 5] == '1' then
    local s = states[i]
    local checks = {{tonumber(ARGV[p + 2]), s[1] + s[3], tonumber(ARGV[p])},
                    {tonumber(ARGV[p + 3]), s[2] + s[4], tonumber(ARGV[p + 1])}}
    for _, c in ipairs(checks) do
      local limit, committed, want = c[1], c[2], c[3]
      if limit >= 0 and (committed >= limit or committed + want > limit) then
        table.insert(out, 0)
        table.insert(out, i)
        for j = 1, n do for k = 1, 6 do table.insert(out, states[j][k]) end end
        return out
      end
    end
  end
end
table.insert(out, 1)
table.insert(out, 0)
for i = 1, n do
  local p = a + (i - 1) * 6
  local b, r, e = keys_of(li + i)
  redis.call('HSET', r, rid, ARGV[p] .. ':' .. ARGV[p + 1])
  redis.call('ZADD', e, lease_until, rid)
  keep(b, r, e, ARGV[p + 4])
  local s = states[i]
  s[3] = s[3] + tonumber(ARGV[p])
  s[4] = s[4] + tonumber(ARGV[p + 1])
  s[5] = s[5] + 1
  for k = 1, 6 do table.insert(out, s[k]) end
end
return out
"""
)

_STATE = (
    _LUA_COMMON
    + r"""
local b, r, e = keys_of(1)
purge(r, e, ARGV[1])
return load(b, r)
"""
)

# KEYS: lease sorted sets; ARGV: lease_until, then the reservation id of each key. XX: never re-adds an
# expired (purged) reservation, GT: never shortens a lease.
_RENEW = r"""
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', 'GT', ARGV[1], ARGV[i + 1])
end
return {}
"""
_RENEW_CHUNK = 512


def _opt(value: int | None) -> int:
    return -1 if value is None else value


def _ttl_ms(line: Line, now: float) -> int:
    # Relative to the caller's clock, so Redis's own clock (or skew to it) never expires live data.
    return max(1000, int((line.expires_at - now) * 1000))


def _keys(lines: Sequence[Line]) -> list[str]:
    keys: list[str] = []
    for line in lines:
        keys += [f"{_PREFIX}b:{line.key}", f"{_PREFIX}r:{line.key}", f"{_PREFIX}e:{line.key}"]
    return keys


def _state(values: Sequence[Any]) -> BucketState:
    return BucketState(*(int(v) for v in values[:6]))


class RedisStore(BudgetStore):
    """Buckets in Redis, shared by every process of a fleet; bounded socket timeouts, no retries."""

    defers_settles = True

    def __init__(self, url: str, *, timeout_s: float = 2.0, lease_s: float = 60.0) -> None:
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError as exc:
            raise ImportError(
                f"the redis store needs the redis package: pip install 'tokenmeter[redis]' ({exc})"
            ) from exc
        self.lease_s = lease_s
        self.timeout_s = timeout_s
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._exchange = self._client.register_script(_EXCHANGE)
        self._state = self._client.register_script(_STATE)
        self._renew = self._client.register_script(_RENEW)

    def _run(self, script: Any, keys: list[str], args: list[Any]) -> list[Any]:
        try:
            return list(script(keys=keys, args=args))
        except self._errors as exc:
            raise StoreUnavailable(f"redis store: {exc}") from exc

    def reserve(self, rid: str, lines: Sequence[Line], now: float, lease_until: float) -> Admission:
        admission = self.exchange((), (rid, lines, now, lease_until))[1]
        assert admission is not None
        return admission

    def settle(self, rid: str | None, lines: Sequence[Line], now: float) -> list[Settled]:
        return self.exchange([(rid, lines, now)], None)[0][0]

    def exchange(
        self, settles: Sequence[SettleOp], reserve: ReserveOp | None
    ) -> tuple[list[list[Settled]], Admission | None]:
        """The settles, then the reserve, in ONE round trip (one ``EVALSHA``)."""
        keys: list[str] = []
        args: list[Any] = [len(settles)]
        for rid, lines, now in settles:
            keys += _keys(lines)
            args += ["" if rid is None else rid, repr(now), len(lines)]
            for line in lines:
                levels = ";".join(f"{_opt(u)},{_opt(t)}" for u, t in line.levels)
                args += [line.usd, line.tokens, _ttl_ms(line, now), levels]
        if reserve is None:
            args.append("0")
        else:
            rid, lines, now, lease_until = reserve
            keys += _keys(lines)
            args += ["1", rid, repr(now), repr(lease_until), len(lines)]
            for line in lines:
                args += [
                    line.usd,
                    line.tokens,
                    _opt(line.limit_usd),
                    _opt(line.limit_tokens),
                    _ttl_ms(line, now),
                    "1" if line.enforce else "0",
                ]
        reply = self._run(self._exchange, keys, args)
        settled: list[list[Settled]] = []
        at = 0
        for _, lines, _ in settles:
            out: list[Settled] = []
            for _ in lines:
                chunk = reply[at : at + 7]
                state = _state(chunk)
                out.append(Settled(state, int(chunk[6]), state.warned))
                at += 7
            settled.append(out)
        if reserve is None:
            return settled, None
        n = len(reserve[1])
        states = tuple(_state(reply[at + 2 + 6 * i : at + 8 + 6 * i]) for i in range(n))
        admitted = int(reply[at]) == 1
        return settled, Admission(admitted, None if admitted else int(reply[at + 1]) - 1, states)

    def renew(self, held: Sequence[tuple[str, str]], lease_until: float) -> None:
        for i in range(0, len(held), _RENEW_CHUNK):
            chunk = held[i : i + _RENEW_CHUNK]
            self._run(
                self._renew, [f"{_PREFIX}e:{key}" for _, key in chunk], [repr(lease_until), *(rid for rid, _ in chunk)]
            )

    def state(self, key: str, now: float) -> BucketState:
        probe = Line(key, 0, 0, None, None, 0.0)
        return _state(self._run(self._state, _keys([probe]), [repr(now)]))

    # -- warm-up hook (tokenmeter/_warmup.py calls it from configure()'s daemon thread) ----------------
    def warm_up(self) -> None:
        """Connect and load the call path's scripts now, so the first call does not pay for either."""
        self._client.script_load(self._exchange.script)

    def close(self) -> None:
        try:
            self._client.close()
        except self._errors:
            pass
