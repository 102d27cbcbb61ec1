//! The warm tier: a Redis connection shared by the slices (inventory
//! counters, admitted-ticket sets). Losing it degrades speed, not
//! correctness: the database remains the arbiter.

use redis::aio::ConnectionManager;

#[derive(Clone)]
pub struct Warm {
    pub client: redis::Client,
    conn: ConnectionManager,
}

impl Warm {
    pub async fn connect(url: &str) -> redis::RedisResult<Warm> {
        let client = redis::Client::open(url)?;
        let conn = ConnectionManager::new(client.clone()).await?;
        Ok(Warm { client, conn })
    }

    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub async fn ping(&self) -> redis::RedisResult<()> {
        let mut c = self.conn();
        redis::cmd("PING")
            .query_async::<String>(&mut c)
            .await
            .map(|_| ())
    }
}
