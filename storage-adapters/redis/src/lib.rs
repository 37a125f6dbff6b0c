//! `tenure-redis`: the store shared by replicas, on Redis (directly or through Sentinel).
//!
//! ```text
//!   replica A ─┐                         PREFIX r:<ClientKey::encode()>  → codec envelope (JSON)
//!   replica B ─┼─▶ Redis (or the master  PREFIX l:<ClientKey::encode()>  → lease holder id, PX ttl
//!   replica C ─┘   Sentinel names)       PREFIX p:<name>                 → profile JSON
//!                                        PREFIX profiles                 → set of profile names
//! ```
//!
//! Keys are a configurable prefix, a one-letter kind, then the length-prefixed segments of
//! [`ClientKey::encode`], so two distinct client keys never share a Redis key. Values are the
//! codec's JSON envelope, which leads with the generation so that the compare-and-swap of
//! INV-9 runs inside Redis as one Lua script: no replica can slip a write in between the
//! check and the write.
//!
//! A record outlives its client secret by as long as the core may still need it. It has no
//! time to live while it holds a refresh token (the grant outlives any secret) or a
//! registration that can be managed (RFC 7592 may renew an expired secret, and `forget` may
//! still delete the registration); nor when its secret never expires. Otherwise it lapses a
//! day after the secret's expiry ([`RECORD_GRACE`]), which is longer than any registration
//! backoff it may carry, so a reader always sees the expiry and registers anew knowingly.
//!
//! Leases are `SET NX PX`; renewing and releasing check the holder in a script, so a replica
//! whose lease lapsed cannot release another's. With `min_replicas` set, every write waits
//! (`WAIT`) until that many replicas have it, so a Sentinel failover right after an
//! acknowledgement cannot lose it.

use std::sync::Arc;
use std::time::{Duration as StdDuration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisError, Script};
use serde_json::Value;
use tenure_store::check::{check_key, check_lease, check_profile_name, check_write};
use tenure_store::codec::{
    decode_profile, decode_record, encode_profile, encode_record, secret_expiry,
};
use tenure_store::{describe_key, CasOutcome, Store, StoreError};
use tokio::sync::Mutex;

pub use tenure_core::{ClientKey, Duration, Record};

const BACKEND: &str = "redis";

/// The prefix keys get when none is configured.
pub const DEFAULT_PREFIX: &str = "tenure:";

/// Compare-and-swap of a record. KEYS[1] the record; ARGV[1] the expected generation (empty:
/// only if absent), ARGV[2] the new value, ARGV[3] its time to live in ms (0: none).
/// Answers `{"ok"}` or `{"current", value-or-nothing}`.
const CAS_SCRIPT: &str = r#"
local current = redis.call('GET', KEYS[1])
if current then
  local generation = string.match(current, '^{"generation":(%d+),')
  if generation == nil or generation ~= ARGV[1] then
    return {'current', current}
  end
elseif ARGV[1] ~= '' then
  return {'current'}
end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return {'ok'}
"#;

/// Conditional delete. KEYS[1] the record; ARGV[1] the expected generation.
const DELETE_SCRIPT: &str = r#"
local current = redis.call('GET', KEYS[1])
if not current then
  return {'ok'}
end
local generation = string.match(current, '^{"generation":(%d+),')
if generation == nil or generation ~= ARGV[1] then
  return {'current', current}
end
redis.call('DEL', KEYS[1])
return {'ok'}
"#;

/// Takes or extends a lease. KEYS[1] the lease; ARGV[1] holder; ARGV[2] ttl ms. 1 if held.
const TAKE_LEASE_SCRIPT: &str = r#"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
"#;

/// Renews (ARGV[3] = 'renew') or releases (ARGV[3] = 'release') a lease held by ARGV[1].
const HOLDER_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[3] == 'renew' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  redis.call('DEL', KEYS[1])
end
return 1
"#;

/// Where the store connects.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// One Redis server: `redis://[USER:PASSWORD@]HOST:PORT/DB`, or `rediss://…` over TLS
    /// (the operating system's roots and `SSL_CERT_FILE` are trusted).
    Direct(String),
    /// The master a set of Sentinels names:
    /// `redis-sentinel://[USER:PASSWORD@]HOST:PORT[,HOST:PORT…]/MASTER[/DB]`; the
    /// credentials are the master's (and the Sentinels', unless they have their own).
    Sentinel {
        /// The Sentinels' addresses.
        sentinels: Vec<(String, u16)>,
        /// The user and password from the URL, if any.
        credentials: Option<(String, tenure_core::Secret)>,
        /// The master's service name.
        master: String,
        /// The database number.
        db: i64,
    },
}

impl Target {
    /// Reads a store URL: `redis://…` or `redis-sentinel://…`.
    pub fn parse(url: &str) -> Result<Target, StoreError> {
        let refuse = |why: &str| StoreError::Open {
            backend: BACKEND,
            location: strip_userinfo(url),
            detail: why.into(),
            hint: "write it as redis://HOST:PORT/DB or \
                   redis-sentinel://HOST:PORT[,HOST:PORT]/MASTER[/DB]"
                .into(),
        };
        if url.starts_with("redis://") || url.starts_with("rediss://") {
            return Ok(Target::Direct(url.to_string()));
        }
        let Some(rest) = url.strip_prefix("redis-sentinel://") else {
            return Err(refuse("it is not a Redis URL"));
        };
        let mut parts = rest.split('/');
        let mut hosts = parts.next().unwrap_or_default();
        let mut credentials = None;
        if let Some((userinfo, after)) = hosts.rsplit_once('@') {
            hosts = after;
            let (user, password) = userinfo.split_once(':').unwrap_or(("", userinfo));
            let decode = |text: &str| {
                url::form_urlencoded::parse(format!("x={text}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            credentials = Some((decode(user), tenure_core::Secret::new(decode(password))));
        }
        let master = parts.next().unwrap_or_default().to_string();
        if master.is_empty() {
            return Err(refuse("it names no master"));
        }
        let db = match parts.next() {
            None | Some("") => 0,
            Some(db) => db
                .parse()
                .map_err(|_| refuse("its database is not a number"))?,
        };
        let mut sentinels = Vec::new();
        for host in hosts.split(',').filter(|h| !h.is_empty()) {
            let (name, port) = host
                .rsplit_once(':')
                .ok_or_else(|| refuse("a Sentinel address has no port"))?;
            let port = port
                .parse()
                .map_err(|_| refuse("a Sentinel port is not a number"))?;
            sentinels.push((name.to_string(), port));
        }
        if sentinels.is_empty() {
            return Err(refuse("it names no Sentinel"));
        }
        Ok(Target::Sentinel {
            sentinels,
            credentials,
            master,
            db,
        })
    }
}

/// How the store behaves; [`Options::default`] suits one Redis server.
#[derive(Clone, Debug)]
pub struct Options {
    /// What every key starts with, so several applications can share a database.
    pub prefix: String,
    /// Replicas that must confirm a write before it is acknowledged (`WAIT`); 0 for none.
    pub min_replicas: u32,
    /// How long to wait for them.
    pub replica_timeout: StdDuration,
    /// How long connecting may take.
    pub connect_timeout: StdDuration,
    /// How long one command may take.
    pub response_timeout: StdDuration,
    /// How long to keep retrying while the server is unreachable (a failover in progress).
    pub retry_for: StdDuration,
    /// The ACL user, when the URL names none.
    pub username: Option<String>,
    /// The password, when the URL gives none: better here (read from the environment or a
    /// file) than in a URL on a command line, which other users see in `ps`. Also sent to
    /// the Sentinels when [`Options::sentinel_password`] is not set.
    pub password: Option<tenure_core::Secret>,
    /// The Sentinels' own password, when it differs from the master's.
    pub sentinel_password: Option<tenure_core::Secret>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            prefix: DEFAULT_PREFIX.into(),
            min_replicas: 0,
            replica_timeout: StdDuration::from_secs(2),
            connect_timeout: StdDuration::from_secs(2),
            response_timeout: StdDuration::from_secs(5),
            retry_for: StdDuration::from_secs(15),
            username: None,
            password: None,
            sentinel_password: None,
        }
    }
}

enum Connector {
    Direct(redis::Client),
    Sentinel(Mutex<SentinelClient>),
}

/// Records, leases and profiles in Redis, shared by every replica that points at it.
#[derive(Clone)]
pub struct RedisStore {
    connector: Arc<Connector>,
    connection: Arc<Mutex<Option<MultiplexedConnection>>>,
    options: Options,
    location: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("location", &self.location)
            .field("prefix", &self.options.prefix)
            .finish_non_exhaustive()
    }
}

/// Why a command failed: worth a retry on a fresh connection, or not.
enum Failure {
    Retry(RedisError),
    Final(StoreError),
}

impl RedisStore {
    /// Connects to the store at `url` (see [`Target::parse`]) and checks that it answers.
    pub async fn open(url: &str, options: Options) -> Result<RedisStore, StoreError> {
        let target = Target::parse(url)?;
        let location = strip_userinfo(url);
        let open_error = |e: RedisError| StoreError::Open {
            backend: BACKEND,
            location: location.clone(),
            detail: e.to_string(),
            hint: "check that Redis runs there and the URL is right".into(),
        };
        let connector = match target {
            Target::Direct(url) => {
                let mut info = url.as_str().into_connection_info().map_err(open_error)?;
                if info.redis.password.is_none() {
                    info.redis.password = options.password.as_ref().map(|p| p.expose().into());
                }
                if info.redis.username.is_none() {
                    info.redis.username = options.username.clone();
                }
                Connector::Direct(redis::Client::open(info).map_err(open_error)?)
            }
            Target::Sentinel {
                sentinels,
                credentials,
                master,
                db,
            } => {
                let addresses = sentinels
                    .into_iter()
                    .map(|(host, port)| ConnectionAddr::Tcp(host, port));
                let (username, password) = match credentials {
                    Some((user, password)) => {
                        (Some(user).filter(|u| !u.is_empty()), Some(password))
                    }
                    None => (options.username.clone(), options.password.clone()),
                };
                let mut builder =
                    SentinelClientBuilder::new(addresses, master, SentinelServerType::Master)
                        .map_err(open_error)?
                        .set_client_to_redis_db(db);
                if let Some(user) = username {
                    builder = builder.set_client_to_redis_username(user);
                }
                let sentinel_password = options.sentinel_password.clone().or(password.clone());
                if let Some(password) = password {
                    builder = builder.set_client_to_redis_password(password.expose().into());
                }
                if let Some(password) = sentinel_password {
                    builder = builder.set_client_to_sentinel_password(password.expose().into());
                }
                Connector::Sentinel(Mutex::new(builder.build().map_err(open_error)?))
            }
        };
        let store = RedisStore {
            connector: Arc::new(connector),
            connection: Arc::new(Mutex::new(None)),
            options,
            location: location.clone(),
        };
        let mut connection = store.connect().await.map_err(open_error)?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map_err(open_error)?;
        *store.connection.lock().await = Some(connection);
        Ok(store)
    }

    /// The Redis key a record is stored under.
    pub fn record_key(&self, key: &ClientKey) -> String {
        format!("{}r:{}", self.options.prefix, key.encode())
    }

    fn lease_key(&self, key: &ClientKey) -> String {
        format!("{}l:{}", self.options.prefix, key.encode())
    }

    fn profile_key(&self, name: &str) -> String {
        format!("{}p:{name}", self.options.prefix)
    }

    fn profile_set(&self) -> String {
        format!("{}profiles", self.options.prefix)
    }

    async fn connect(&self) -> Result<MultiplexedConnection, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(self.options.connect_timeout)
            .set_response_timeout(self.options.response_timeout);
        match self.connector.as_ref() {
            Connector::Direct(client) => {
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
            }
            Connector::Sentinel(sentinel) => {
                // Asks the Sentinels who the master is now, so a failover is followed.
                let client = sentinel.lock().await.async_get_client().await?;
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
            }
        }
    }

    async fn connection(&self) -> Result<MultiplexedConnection, RedisError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let connection = self.connect().await?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Runs `attempt` on a connection; when the server is unreachable, read-only (a demoted
    /// master) or times out, reconnects and tries again with backoff, for at most
    /// [`Options::retry_for`].
    async fn run<T, F, Fut>(&self, action: &str, attempt: F) -> Result<T, StoreError>
    where
        F: Fn(MultiplexedConnection, u32) -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        let started = tokio::time::Instant::now();
        let mut delay = StdDuration::from_millis(50);
        for round in 0u32.. {
            let error = match self.connection().await {
                Ok(connection) => match attempt(connection, round).await {
                    Ok(value) => return Ok(value),
                    // Replicas catching up after a failover: try again while time remains
                    // (the retried write finds itself in place and waits again).
                    Err(Failure::Final(error @ StoreError::NotReplicated { .. })) => {
                        if started.elapsed() + delay > self.options.retry_for {
                            return Err(error);
                        }
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(StdDuration::from_secs(1));
                        continue;
                    }
                    Err(Failure::Final(error)) => return Err(error),
                    Err(Failure::Retry(error)) => error,
                },
                Err(error) => error,
            };
            let transient = error.is_io_error()
                || error.is_connection_dropped()
                || error.is_connection_refusal()
                || error.is_timeout()
                || error.kind() == redis::ErrorKind::ReadOnly
                || error.kind() == redis::ErrorKind::MasterDown
                // Sentinel has no master to name while it fails over.
                || error.kind() == redis::ErrorKind::MasterNameNotFoundBySentinel;
            if !transient || started.elapsed() + delay > self.options.retry_for {
                return Err(StoreError::backend(BACKEND, action, error));
            }
            *self.connection.lock().await = None;
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(StdDuration::from_secs(1));
        }
        unreachable!("the retry loop only ends by returning")
    }

    /// After a write: waits until [`Options::min_replicas`] replicas have it.
    async fn replicated(
        &self,
        connection: &mut MultiplexedConnection,
        key: &ClientKey,
    ) -> Result<(), Failure> {
        if self.options.min_replicas == 0 {
            return Ok(());
        }
        let timeout_ms = self.options.replica_timeout.as_millis() as u64;
        let acked: i64 = redis::cmd("WAIT")
            .arg(self.options.min_replicas)
            .arg(timeout_ms)
            .query_async(connection)
            .await
            .map_err(Failure::Retry)?;
        if acked < i64::from(self.options.min_replicas) {
            return Err(Failure::Final(StoreError::NotReplicated {
                key: describe_key(key),
                acked,
                required: self.options.min_replicas,
                timeout_ms,
            }));
        }
        Ok(())
    }

    /// Runs a record script (CAS or delete) and reads its answer.
    async fn record_script(
        &self,
        key: &ClientKey,
        verb: &str,
        script: &Script,
        args: &[String],
        written: Option<&Record>,
    ) -> Result<CasOutcome, StoreError> {
        let redis_key = self.record_key(key);
        let action = format!("{verb} the {}", describe_key(key));
        let action = &action;
        self.run(action, |mut connection, round| {
            let redis_key = redis_key.clone();
            async move {
                let mut invocation = script.key(&redis_key);
                for arg in args {
                    invocation.arg(arg);
                }
                let answer: Vec<Vec<u8>> = invocation
                    .invoke_async(&mut connection)
                    .await
                    .map_err(Failure::Retry)?;
                match answer.as_slice() {
                    [status] if status == b"ok" => {
                        self.replicated(&mut connection, key).await?;
                        Ok(CasOutcome::Applied)
                    }
                    [status] if status == b"current" => Ok(CasOutcome::Conflict(None)),
                    [status, value] if status == b"current" => {
                        let current = decode_record(key, value).map_err(Failure::Final)?;
                        // A retry after a lost answer finds its own write already in place.
                        if round > 0 && written == Some(&current) {
                            self.replicated(&mut connection, key).await?;
                            return Ok(CasOutcome::Applied);
                        }
                        Ok(CasOutcome::Conflict(Some(current)))
                    }
                    _ => Err(Failure::Final(StoreError::backend(
                        BACKEND,
                        action.as_str(),
                        "the script answered in an unexpected shape",
                    ))),
                }
            }
        })
        .await
    }

    /// The bytes stored under `redis_key`, if any (a plain `GET`, retried like every command).
    async fn read_value(
        &self,
        redis_key: String,
        action: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(action, |mut connection, _| {
            let redis_key = redis_key.clone();
            async move {
                redis::cmd("GET")
                    .arg(&redis_key)
                    .query_async(&mut connection)
                    .await
                    .map_err(Failure::Retry)
            }
        })
        .await
    }

    async fn lease_script(
        &self,
        key: &ClientKey,
        script: &Script,
        args: &[String],
    ) -> Result<bool, StoreError> {
        let lease_key = self.lease_key(key);
        let action = format!("changing the lease on the {}", describe_key(key));
        self.run(&action, |mut connection, _| {
            let lease_key = lease_key.clone();
            async move {
                let mut invocation = script.key(&lease_key);
                for arg in args {
                    invocation.arg(arg);
                }
                let held: i64 = invocation
                    .invoke_async(&mut connection)
                    .await
                    .map_err(Failure::Retry)?;
                Ok(held == 1)
            }
        })
        .await
    }
}

/// How long a record is kept after its client secret expired, when nothing else keeps it.
pub const RECORD_GRACE: tenure_core::Duration = tenure_core::Duration::from_hours(24);

/// The time to live of a record in milliseconds (see the module documentation): 0 (none)
/// while the record holds a refresh token or a manageable registration, or a secret that
/// never expires; else until [`RECORD_GRACE`] after the secret's expiry, at least 1 s.
pub fn ttl_millis(record: &Record, now_ms: i64) -> i64 {
    let needed = record
        .tokens
        .as_ref()
        .is_some_and(|t| t.refresh_token.is_some())
        || record.dcr.as_ref().is_some_and(|d| d.manageable());
    match secret_expiry(record) {
        _ if needed => 0,
        None => 0,
        Some(at) => (at.unix_millis() + RECORD_GRACE.as_millis() - now_ms).max(1_000),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A URL without its password, for messages.
fn strip_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn get(&self, key: &ClientKey) -> Result<Option<Record>, StoreError> {
        check_key(key)?;
        let action = format!("reading the {}", describe_key(key));
        let value = self.read_value(self.record_key(key), &action).await?;
        value.map(|bytes| decode_record(key, &bytes)).transpose()
    }

    async fn compare_and_swap(
        &self,
        key: &ClientKey,
        expected: Option<u64>,
        record: &Record,
    ) -> Result<CasOutcome, StoreError> {
        check_write(key, expected, record)?;
        let value = String::from_utf8(encode_record(record)?)
            .map_err(|e| StoreError::backend(BACKEND, "encoding a record", e))?;
        let args = [
            expected.map(|g| g.to_string()).unwrap_or_default(),
            value,
            ttl_millis(record, now_ms()).to_string(),
        ];
        let script = Script::new(CAS_SCRIPT);
        self.record_script(key, "writing", &script, &args, Some(record))
            .await
    }

    async fn delete(&self, key: &ClientKey, expected: u64) -> Result<CasOutcome, StoreError> {
        check_key(key)?;
        let script = Script::new(DELETE_SCRIPT);
        self.record_script(key, "deleting", &script, &[expected.to_string()], None)
            .await
    }

    async fn take_lease(
        &self,
        key: &ClientKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        check_lease(key, holder, ttl)?;
        let script = Script::new(TAKE_LEASE_SCRIPT);
        self.lease_script(key, &script, &[holder.into(), ttl.as_millis().to_string()])
            .await
    }

    async fn renew_lease(
        &self,
        key: &ClientKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        check_lease(key, holder, ttl)?;
        let script = Script::new(HOLDER_SCRIPT);
        let args = [holder.into(), ttl.as_millis().to_string(), "renew".into()];
        self.lease_script(key, &script, &args).await
    }

    async fn release_lease(&self, key: &ClientKey, holder: &str) -> Result<bool, StoreError> {
        check_key(key)?;
        let script = Script::new(HOLDER_SCRIPT);
        let args = [holder.into(), "0".into(), "release".into()];
        self.lease_script(key, &script, &args).await
    }

    async fn save_profile(&self, name: &str, profile: Value) -> Result<(), StoreError> {
        check_profile_name(name)?;
        let bytes = encode_profile(name, &profile)?;
        let action = format!("saving the profile `{name}`");
        let (profile_key, set) = (self.profile_key(name), self.profile_set());
        self.run(&action, |mut connection, _| {
            let (profile_key, set, bytes) = (profile_key.clone(), set.clone(), bytes.clone());
            async move {
                redis::pipe()
                    .atomic()
                    .set(&profile_key, bytes)
                    .ignore()
                    .sadd(&set, name)
                    .ignore()
                    .query_async::<()>(&mut connection)
                    .await
                    .map_err(Failure::Retry)
            }
        })
        .await
    }

    async fn load_profile(&self, name: &str) -> Result<Option<Value>, StoreError> {
        check_profile_name(name)?;
        let action = format!("reading the profile `{name}`");
        let value = self.read_value(self.profile_key(name), &action).await?;
        value.map(|bytes| decode_profile(name, &bytes)).transpose()
    }

    async fn list_profiles(&self) -> Result<Vec<String>, StoreError> {
        let set = self.profile_set();
        self.run("listing profiles", |mut connection, _| {
            let set = set.clone();
            async move {
                let mut names: Vec<String> = redis::cmd("SMEMBERS")
                    .arg(&set)
                    .query_async(&mut connection)
                    .await
                    .map_err(Failure::Retry)?;
                names.sort();
                Ok(names)
            }
        })
        .await
    }

    async fn delete_profile(&self, name: &str) -> Result<bool, StoreError> {
        check_profile_name(name)?;
        let action = format!("deleting the profile `{name}`");
        let (profile_key, set) = (self.profile_key(name), self.profile_set());
        self.run(&action, |mut connection, _| {
            let (profile_key, set) = (profile_key.clone(), set.clone());
            async move {
                let (removed,): (i64,) = redis::pipe()
                    .atomic()
                    .del(&profile_key)
                    .srem(&set, name)
                    .ignore()
                    .query_async(&mut connection)
                    .await
                    .map_err(Failure::Retry)?;
                Ok(removed > 0)
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_parse_and_bad_ones_say_how_to_write_them() {
        assert_eq!(
            Target::parse("redis-sentinel://127.0.0.1:26379,h2:26380/mymaster/3").unwrap(),
            Target::Sentinel {
                sentinels: vec![("127.0.0.1".into(), 26379), ("h2".into(), 26380)],
                credentials: None,
                master: "mymaster".into(),
                db: 3,
            }
        );
        // Credentials in the URL: the user and a percent-encoded password.
        match Target::parse("redis-sentinel://app:p%40ss@h:26379/m").unwrap() {
            Target::Sentinel { credentials, .. } => {
                let (user, password) = credentials.unwrap();
                assert_eq!((user.as_str(), password.expose()), ("app", "p@ss"));
            }
            other => panic!("{other:?}"),
        }
        let error = Target::parse("redis-sentinel://app:hunter2@h/m")
            .unwrap_err()
            .to_string();
        assert!(!error.contains("hunter2"), "{error}");
        assert!(matches!(
            Target::parse("redis://127.0.0.1:6379/0").unwrap(),
            Target::Direct(_)
        ));
        for bad in [
            "http://x",
            "redis-sentinel://h:1",
            "redis-sentinel:///m",
            "redis-sentinel://h/m",
        ] {
            let error = Target::parse(bad).unwrap_err().to_string();
            assert!(
                error.contains("redis-sentinel://HOST:PORT"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            strip_userinfo("redis://user:hunter2@127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
    }
}
