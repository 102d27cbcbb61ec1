//! The waiting room of an on-sale (off by default; on per event with an
//! admission rate per minute and the time it opens).
//!
//! Order: a visitor who joins before `opens_at` gets a random place among
//! the early ones (as Queue-it does: arriving early gains nothing over
//! arriving a minute early); later ones queue first come, first served
//! behind them. A place is a key: early keys are random below 2^40, late
//! keys 2^40 + n in arrival order; a visitor's rank is the number of keys
//! before theirs. By time `t`, `floor((t − opens_at) × per_minute / 60 s)`
//! visitors are admitted: those of rank below that.
//!
//! A visitor holds a queue token (the key, signed with the room's own
//! secret: it cannot be forged, nor moved to another place). Once admitted,
//! the token's status carries a pass (signed again, valid for ten minutes
//! from the visitor's turn); a hold of the event requires a pass, and takes
//! it: one pass, one hold. Sharing a token shares the same one place.
//!
//! The line lives in Redis (every node of a deployment sees one line) or in
//! the process (embedded); the room's settings and secret in the database.
//! In Redis a join is one script (the place and the rank it gives at once)
//! and a pass's use is one (its rank checked against the admitted and the
//! unexpired ranks and the pass marked used, atomically): one round trip
//! each on the on-sale's hot path.

use std::{collections::HashSet, sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use kernel::{
    ApiError, ApiResult, Db, FieldError, Kernel, Permission, Stmt, clock, db_run,
    ids::{EventId, OrgId},
    warm::Warm,
};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

use crate::{
    App,
    identity::{Actor, Tenant},
};

/// Early keys are below this; late keys count up from it.
const LATE: u64 = 1 << 40;
/// How long a pass works after the visitor's turn came.
pub const PASS_TTL_SECS: i64 = 600;
const MICROS: i64 = 1_000_000;

/// An event's waiting room, as the organizer sets it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitingRoom {
    pub enabled: bool,
    /// Visitors let through per minute.
    #[schema(minimum = 1, maximum = 1000000)]
    pub per_minute: i64,
    /// When the on-sale opens (RFC 3339): who joins before gets a random
    /// place among the early ones. Required when enabled.
    #[serde(default)]
    #[schema(format = DateTime, pattern = r"^(?:[1-9]\d{3}|0[1-9]\d{2}|00[1-9]\d|000[1-9])-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$")]
    pub opens_at: Option<String>,
}

/// A visitor's place in the line.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueueStatus {
    /// The visitor's queue token: keep it to ask again.
    pub token: String,
    /// Visitors ahead, this one included (0 once admitted).
    pub position: u64,
    pub admitted: bool,
    /// Seconds until this visitor's turn, at the room's rate (0 once
    /// admitted).
    pub estimated_wait_secs: i64,
    pub opens_at: String,
    /// Once admitted: the pass a hold requires (`queue_pass`), for one hold.
    pub pass: Option<String>,
    /// Until when the pass works.
    pub pass_expires_at: Option<String>,
}

/// The room as stored.
#[derive(Clone, Debug)]
pub struct Room {
    pub enabled: bool,
    pub per_minute: i64,
    pub opens_at: i64,
    secret: Vec<u8>,
}

impl Room {
    /// Visitors admitted by `now`.
    fn admitted_by(&self, now: i64) -> u64 {
        if now < self.opens_at {
            return 0;
        }
        ((now - self.opens_at) as i128 * self.per_minute as i128 / (60 * MICROS) as i128) as u64
    }

    /// When the visitor of `rank` is admitted (the first instant
    /// `admitted_by` exceeds it).
    fn turn_of(&self, rank: u64) -> i64 {
        let need = (rank as i128 + 1) * (60 * MICROS) as i128;
        let per = self.per_minute as i128;
        self.opens_at + ((need + per - 1) / per) as i64
    }

    fn sign(&self, event: EventId, kind: &[u8], key: u64) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key");
        mac.update(kind);
        mac.update(event.0.as_bytes());
        mac.update(&key.to_be_bytes());
        let tag = mac.finalize().into_bytes();
        format!(
            "{}1.{}.{}",
            String::from_utf8_lossy(kind),
            URL_SAFE_NO_PAD.encode(key.to_be_bytes()),
            URL_SAFE_NO_PAD.encode(&tag[..16])
        )
    }

    /// The key a token or pass of `kind` stands for, if genuine.
    fn verify(&self, event: EventId, kind: &[u8], token: &str) -> Option<u64> {
        let mut parts = token.split('.');
        let head = parts.next()?;
        if head.as_bytes() != [kind, b"1"].concat() {
            return None;
        }
        let key: [u8; 8] = URL_SAFE_NO_PAD
            .decode(parts.next()?)
            .ok()?
            .try_into()
            .ok()?;
        let tag = URL_SAFE_NO_PAD.decode(parts.next()?).ok()?;
        if parts.next().is_some() || tag.len() != 16 {
            return None;
        }
        let key = u64::from_be_bytes(key);
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).ok()?;
        mac.update(kind);
        mac.update(event.0.as_bytes());
        mac.update(&key.to_be_bytes());
        mac.verify_truncated_left(&tag).ok()?;
        Some(key)
    }
}

pub struct Rooms {
    cache: moka::future::Cache<(OrgId, EventId), Option<Arc<Room>>>,
    line: Line,
}

enum Line {
    Memory(dashmap::DashMap<(OrgId, EventId), std::sync::Mutex<Local>>),
    Redis(Warm, Box<Scripts>),
}

/// One round trip each: a join (the place and the rank at once) and a
/// pass's use (its rank checked and the pass marked used atomically).
struct Scripts {
    join_early: redis::Script,
    join_late: redis::Script,
    take: redis::Script,
}

/// KEYS: early ZSET. ARGV: the random key. The rank, or -1 when the key
/// was drawn before (draw again).
const JOIN_EARLY_LUA: &str = r"
if redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[1]) == 0 then return -1 end
return redis.call('ZRANK', KEYS[1], ARGV[1])
";

/// KEYS: late counter, early ZSET. The place in the late line (from 1)
/// and how many came early.
const JOIN_LATE_LUA: &str = r"
local n = redis.call('INCR', KEYS[1])
return {n, redis.call('ZCARD', KEYS[2])}
";

/// KEYS: early ZSET, late counter, used SET. ARGV: key, LATE, lowest rank
/// not expired, lowest rank not yet admitted. -1 not in the line, -2 its
/// turn has not come, -3 expired, 0 used before, 1 used now.
const TAKE_LUA: &str = r"
local key = tonumber(ARGV[1])
local late_from = tonumber(ARGV[2])
local rank
if key < late_from then
  rank = redis.call('ZRANK', KEYS[1], ARGV[1])
  if not rank then return -1 end
else
  local late = tonumber(redis.call('GET', KEYS[2]) or '0')
  if key - late_from >= late then return -1 end
  rank = redis.call('ZCARD', KEYS[1]) + key - late_from
end
if rank >= tonumber(ARGV[4]) then return -2 end
if rank < tonumber(ARGV[3]) then return -3 end
return redis.call('SADD', KEYS[3], ARGV[1])
";

#[derive(Default)]
struct Local {
    /// Early keys, sorted.
    early: Vec<u64>,
    /// Late keys handed out.
    late: u64,
    used: HashSet<u64>,
}

impl Local {
    /// The rank of a key, if it is in this line.
    fn rank(&self, key: u64) -> Option<u64> {
        if key < LATE {
            self.early.binary_search(&key).ok().map(|i| i as u64)
        } else {
            (key - LATE < self.late).then(|| self.early.len() as u64 + key - LATE)
        }
    }
}

impl Rooms {
    pub fn new(kernel: &Kernel) -> Rooms {
        Rooms {
            cache: moka::future::Cache::builder()
                .max_capacity(50_000)
                .time_to_live(Duration::from_secs(2))
                .build(),
            line: match &kernel.warm {
                Some(w) => Line::Redis(
                    w.clone(),
                    Box::new(Scripts {
                        join_early: redis::Script::new(JOIN_EARLY_LUA),
                        join_late: redis::Script::new(JOIN_LATE_LUA),
                        take: redis::Script::new(TAKE_LUA),
                    }),
                ),
                None => Line::Memory(dashmap::DashMap::new()),
            },
        }
    }
}

fn key_prefix(org: OrgId, event: EventId) -> String {
    format!("wr:{org}:{{ev:{event}}}")
}

fn redis_down(e: redis::RedisError) -> ApiError {
    tracing::warn!(error = %e, "warm tier unavailable for the waiting room");
    ApiError::Overloaded {
        retry_after_secs: 2,
    }
}

async fn load(db: &Db, org: OrgId, event: EventId) -> Result<Option<Room>, sqlx::Error> {
    let sql = "SELECT enabled, per_minute, opens_at, secret FROM waiting_rooms WHERE org_id = $1 AND event_id = $2";
    let row: Option<(i64, i64, Option<i64>, Vec<u8>)> =
        db_run!(db, p => sqlx::query_as(sql).bind(org).bind(event).fetch_optional(p).await)?;
    Ok(row.map(|(enabled, per_minute, opens_at, secret)| Room {
        enabled: enabled != 0 && opens_at.is_some(),
        per_minute,
        opens_at: opens_at.unwrap_or(0),
        secret,
    }))
}

/// The event's room when it is on.
pub async fn room(app: &App, org: OrgId, event: EventId) -> ApiResult<Option<Arc<Room>>> {
    let rooms = app.state::<Rooms>();
    if let Some(r) = rooms.cache.get(&(org, event)).await {
        return Ok(r);
    }
    let db = app.db().clone();
    rooms
        .cache
        .try_get_with((org, event), async move {
            load(&db, org, event)
                .await
                .map(|r| r.filter(|r| r.enabled).map(Arc::new))
        })
        .await
        .map_err(|e| ApiError::from_db(&e))
}

fn settings_of(r: Option<Room>) -> WaitingRoom {
    match r {
        Some(r) => WaitingRoom {
            enabled: r.enabled,
            per_minute: r.per_minute,
            opens_at: (r.opens_at != 0).then(|| clock::rfc3339(r.opens_at)),
        },
        None => WaitingRoom {
            enabled: false,
            per_minute: 600,
            opens_at: None,
        },
    }
}

pub async fn get_settings(app: &App, actor: &Actor, event: EventId) -> ApiResult<WaitingRoom> {
    let t = actor.require(Permission::EventsRead)?;
    super::limits::event_of(app, t, event).await?;
    Ok(settings_of(load(app.db(), t.org(), event).await?))
}

/// Checks and stores the room (audited). The line itself is kept: turning
/// the room off lets everyone through; on again, the line is as it was.
pub async fn put_settings(
    app: &App,
    actor: &Actor,
    event: EventId,
    s: WaitingRoom,
) -> ApiResult<WaitingRoom> {
    let t = actor.require(Permission::EventsWrite)?;
    super::limits::event_of(app, t, event).await?;
    let mut errors = Vec::new();
    if !(1..=1_000_000).contains(&s.per_minute) {
        errors.push(FieldError::new("per_minute", "from 1 to 1000000"));
    }
    let opens = match &s.opens_at {
        Some(v) => match clock::parse_rfc3339(v) {
            Some(t) => Some(t),
            None => {
                errors.push(FieldError::new(
                    "opens_at",
                    "an RFC 3339 time, e.g. 2026-12-01T09:00:00Z",
                ));
                None
            }
        },
        None if s.enabled => {
            errors.push(FieldError::new(
                "opens_at",
                "required when the room is enabled",
            ));
            None
        }
        None => None,
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let before = load(app.db(), t.org(), event).await?;
    let secret = before
        .as_ref()
        .map(|r| r.secret.clone())
        .unwrap_or_else(|| kernel::auth::random_bytes::<32>().to_vec());
    let after = WaitingRoom {
        enabled: s.enabled,
        per_minute: s.per_minute,
        opens_at: opens.map(clock::rfc3339),
    };
    let now = app.kernel.now();
    let audit = actor
        .audit("event.waiting_room_update", "event")
        .object(event)
        .before(before.map(|r| settings_of(Some(r))))
        .after(&after)
        .stmt(now);
    let put = Stmt::new(
        "INSERT INTO waiting_rooms (org_id, event_id, enabled, per_minute, opens_at, secret, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (org_id, event_id) DO UPDATE SET enabled = excluded.enabled,
             per_minute = excluded.per_minute, opens_at = excluded.opens_at, updated_at = excluded.updated_at",
    )
    .bind(t.org())
    .bind(event)
    .bind(i64::from(s.enabled))
    .bind(s.per_minute)
    .bind(opens)
    .bind(secret)
    .bind(now);
    let mut tx = app.db().begin().await?;
    tx.run_all(vec![put, audit]).await?;
    tx.commit().await?;
    app.state::<Rooms>()
        .cache
        .invalidate(&(t.org(), event))
        .await;
    Ok(after)
}

fn no_room() -> ApiError {
    ApiError::Conflict("this event has no waiting room".into())
}

/// A visitor joins the line: their token and place.
pub async fn join(app: &App, t: &Tenant, event: EventId) -> ApiResult<QueueStatus> {
    let room = room(app, t.org(), event).await?.ok_or_else(no_room)?;
    let now = app.kernel.now();
    let early = now < room.opens_at;
    let rooms = app.state::<Rooms>();
    let (key, rank) = match &rooms.line {
        Line::Memory(lines) => {
            let entry = lines.entry((t.org(), event)).or_default();
            let mut line = entry.lock().map_err(|_| ApiError::internal("queue lock"))?;
            if early {
                loop {
                    let k = u64::from_be_bytes(kernel::auth::random_bytes::<8>()) % LATE;
                    if let Err(at) = line.early.binary_search(&k) {
                        line.early.insert(at, k);
                        break (k, at as u64);
                    }
                }
            } else {
                line.late += 1;
                (
                    LATE + line.late - 1,
                    line.early.len() as u64 + line.late - 1,
                )
            }
        }
        Line::Redis(warm, scripts) => {
            let prefix = key_prefix(t.org(), event);
            let mut conn = warm.conn();
            if early {
                loop {
                    let k = u64::from_be_bytes(kernel::auth::random_bytes::<8>()) % LATE;
                    let rank: i64 = scripts
                        .join_early
                        .key(format!("{prefix}:early"))
                        .arg(k)
                        .invoke_async(&mut conn)
                        .await
                        .map_err(redis_down)?;
                    if let Ok(rank) = u64::try_from(rank) {
                        break (k, rank);
                    }
                }
            } else {
                let (n, early): (u64, u64) = scripts
                    .join_late
                    .key(format!("{prefix}:late"))
                    .key(format!("{prefix}:early"))
                    .invoke_async(&mut conn)
                    .await
                    .map_err(redis_down)?;
                (LATE + n - 1, early + n - 1)
            }
        }
    };
    metrics::counter!("voelgoed_queue_joined_total").increment(1);
    let token = room.sign(event, b"q", key);
    Ok(status_at(app, &room, event, key, rank, token))
}

/// The rank of a key in the line, if it is in it.
async fn rank(app: &App, org: OrgId, event: EventId, key: u64) -> ApiResult<Option<u64>> {
    let rooms = app.state::<Rooms>();
    match &rooms.line {
        Line::Memory(lines) => {
            let Some(entry) = lines.get(&(org, event)) else {
                return Ok(None);
            };
            let line = entry.lock().map_err(|_| ApiError::internal("queue lock"))?;
            Ok(line.rank(key))
        }
        Line::Redis(warm, _) => {
            let prefix = key_prefix(org, event);
            let mut conn = warm.conn();
            if key < LATE {
                redis::cmd("ZRANK")
                    .arg(format!("{prefix}:early"))
                    .arg(key)
                    .query_async(&mut conn)
                    .await
                    .map_err(redis_down)
            } else {
                let (late, early): (Option<u64>, u64) = redis::pipe()
                    .cmd("GET")
                    .arg(format!("{prefix}:late"))
                    .cmd("ZCARD")
                    .arg(format!("{prefix}:early"))
                    .query_async(&mut conn)
                    .await
                    .map_err(redis_down)?;
                Ok((key - LATE < late.unwrap_or(0)).then(|| early + key - LATE))
            }
        }
    }
}

async fn status_of(
    app: &App,
    t: &Tenant,
    event: EventId,
    room: &Room,
    key: u64,
    token: String,
) -> ApiResult<QueueStatus> {
    let rank = rank(app, t.org(), event, key)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(status_at(app, room, event, key, rank, token))
}

/// Where the visitor of `rank` stands now.
fn status_at(
    app: &App,
    room: &Room,
    event: EventId,
    key: u64,
    rank: u64,
    token: String,
) -> QueueStatus {
    let now = app.kernel.now();
    let admitted = room.admitted_by(now) > rank;
    let turn = room.turn_of(rank);
    let pass_open = admitted && now < turn + PASS_TTL_SECS * MICROS;
    QueueStatus {
        token,
        position: if admitted {
            0
        } else {
            rank + 1 - room.admitted_by(now)
        },
        admitted,
        estimated_wait_secs: ((turn - now).max(0) + MICROS - 1) / MICROS,
        opens_at: clock::rfc3339(room.opens_at),
        pass: pass_open.then(|| room.sign(event, b"p", key)),
        pass_expires_at: admitted.then(|| clock::rfc3339(turn + PASS_TTL_SECS * MICROS)),
    }
}

/// Where a token stands now (a forged or unknown token: 404).
pub async fn status(app: &App, t: &Tenant, event: EventId, token: &str) -> ApiResult<QueueStatus> {
    let room = room(app, t.org(), event).await?.ok_or_else(no_room)?;
    let key = room.verify(event, b"q", token).ok_or(ApiError::NotFound)?;
    status_of(app, t, event, &room, key, token.to_string()).await
}

/// A pass taken by a hold; given back when the hold fails for another
/// reason than the tickets being gone.
pub struct Taken {
    org: OrgId,
    event: EventId,
    key: u64,
}

fn pass_refused(why: &str) -> ApiError {
    ApiError::Forbidden(format!(
        "this on-sale has a waiting room: {why} (join the queue, and hold with the pass it gives once your turn comes)"
    ))
}

/// Checks a hold's pass when the event has a room on: genuine, its turn
/// come, not expired, and not used before (it is used now). `None` when
/// the event has no room (no pass needed).
pub async fn take_pass(
    app: &App,
    t: &Tenant,
    event: EventId,
    pass: Option<&str>,
) -> ApiResult<Option<Taken>> {
    let Some(room) = room(app, t.org(), event).await? else {
        return Ok(None);
    };
    let pass = pass.ok_or_else(|| pass_refused("a queue pass is required"))?;
    let key = room
        .verify(event, b"p", pass)
        .ok_or_else(|| pass_refused("the queue pass is not genuine"))?;
    // A pass is good for the ranks admitted by now and not by its expiry
    // ago: `turn_of(rank) <= now < turn_of(rank) + TTL`.
    let now = app.kernel.now();
    let (unexpired_from, admitted_to) = (
        room.admitted_by(now - PASS_TTL_SECS * MICROS),
        room.admitted_by(now),
    );
    let verdict = match &app.state::<Rooms>().line {
        Line::Memory(lines) => {
            let entry = lines.entry((t.org(), event)).or_default();
            let mut line = entry.lock().map_err(|_| ApiError::internal("queue lock"))?;
            match line.rank(key) {
                None => -1,
                Some(r) if r >= admitted_to => -2,
                Some(r) if r < unexpired_from => -3,
                Some(_) => i64::from(line.used.insert(key)),
            }
        }
        Line::Redis(warm, scripts) => {
            let prefix = key_prefix(t.org(), event);
            scripts
                .take
                .key(format!("{prefix}:early"))
                .key(format!("{prefix}:late"))
                .key(format!("{prefix}:used"))
                .arg(key)
                .arg(LATE)
                .arg(unexpired_from)
                .arg(admitted_to)
                .invoke_async(&mut warm.conn())
                .await
                .map_err(redis_down)?
        }
    };
    match verdict {
        1 => {}
        -1 => return Err(pass_refused("the queue pass is not genuine")),
        -2 => return Err(pass_refused("this pass's turn has not come")),
        -3 => return Err(pass_refused("the queue pass has expired")),
        _ => return Err(pass_refused("the queue pass was used already")),
    }
    Ok(Some(Taken {
        org: t.org(),
        event,
        key,
    }))
}

/// Gives a pass back (its hold was not made).
pub async fn give_back(app: &App, taken: Taken) {
    match &app.state::<Rooms>().line {
        Line::Memory(lines) => {
            if let Some(entry) = lines.get(&(taken.org, taken.event))
                && let Ok(mut line) = entry.lock()
            {
                line.used.remove(&taken.key);
            }
        }
        Line::Redis(warm, _) => {
            let r: redis::RedisResult<i64> = redis::cmd("SREM")
                .arg(format!("{}:used", key_prefix(taken.org, taken.event)))
                .arg(taken.key)
                .query_async(&mut warm.conn())
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "a queue pass was not given back");
            }
        }
    }
}
