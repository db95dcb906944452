//! The shared backend: the same sliding-window log as a Redis sorted set per key, checked and
//! counted in one Lua script so that every server process sees one exact limit.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisResult, Script};

use super::{Check, KeyState, Outcome, Ticket};

/// Trims each key's log to the window, admits the request into every key only if all have room,
/// and reports each key's count and oldest entry.
/// KEYS: the keys. ARGV: now_ms, a unique member, then max and window_ms for each key.
const ACQUIRE: &str = r#"
local now = tonumber(ARGV[1])
local allowed = 1
for i = 1, #KEYS do
  local max = tonumber(ARGV[1 + 2 * i])
  local window = tonumber(ARGV[2 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  if redis.call('ZCARD', KEYS[i]) >= max then allowed = 0 end
end
local result = {allowed}
for i = 1, #KEYS do
  local window = tonumber(ARGV[2 + 2 * i])
  if allowed == 1 then
    redis.call('ZADD', KEYS[i], now, ARGV[2])
    redis.call('PEXPIRE', KEYS[i], window)
  end
  local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')[2]
  result[#result + 1] = redis.call('ZCARD', KEYS[i])
  result[#result + 1] = tonumber(oldest or now)
end
return result
"#;

pub struct RedisBackend {
    connection: ConnectionManager,
    script: Script,
    prefix: String,
}

impl RedisBackend {
    /// Connects lazily: a Redis that is down at start-up is handled like one that goes down later.
    pub fn new(url: &str, prefix: &str) -> RedisResult<Self> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_lazy_with_config(Client::open(url)?, config)?;
        Ok(RedisBackend {
            connection,
            script: Script::new(ACQUIRE),
            prefix: prefix.to_owned(),
        })
    }

    pub async fn ping(&self) -> bool {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .is_ok()
    }

    pub async fn acquire(&self, checks: &[Check], ticket: &Ticket) -> RedisResult<Outcome> {
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(ticket.at_ms).arg(ticket.member());
        for check in checks {
            invocation
                .key(self.key(check))
                .arg(check.max)
                .arg(check.window_ms);
        }
        let mut connection = self.connection.clone();
        let reply: Vec<i64> = invocation.invoke_async(&mut connection).await?;
        let allowed = reply.first() == Some(&1);
        let keys = reply[1..]
            .chunks_exact(2)
            .map(|pair| KeyState {
                count: pair[0] as u32,
                oldest_ms: pair[1],
            })
            .collect();
        Ok(Outcome { allowed, keys })
    }

    pub async fn release(&self, check: &Check, ticket: &Ticket) -> RedisResult<()> {
        let mut connection = self.connection.clone();
        redis::cmd("ZREM")
            .arg(self.key(check))
            .arg(ticket.member())
            .query_async::<i64>(&mut connection)
            .await
            .map(drop)
    }

    fn key(&self, check: &Check) -> String {
        format!("{}:rl:{}", self.prefix, check.key)
    }
}
