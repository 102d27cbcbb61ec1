//! PubSub: in-process broadcast per topic; with Redis, a bridge carries every
//! message to the other nodes (each node ignores its own echo). Messages are
//! [`Recorded`] events; subscribers decode the types they know.

use std::sync::Arc;

use dashmap::DashMap;
use futures::StreamExt;
use tokio::sync::broadcast;
use uuid::Uuid;

pub use crate::events::Recorded as Message;

const CHANNEL: &str = "voelgoed:pubsub";
const CAPACITY: usize = 256;

#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    node_text: String,
    topics: DashMap<String, broadcast::Sender<Message>>,
    redis: Option<redis::aio::ConnectionManager>,
}

impl Hub {
    pub fn local() -> Hub {
        Hub {
            inner: Arc::new(HubInner {
                node_text: Uuid::now_v7().to_string(),
                topics: DashMap::new(),
                redis: None,
            }),
        }
    }

    /// A hub bridged to the other nodes through Redis pub/sub.
    pub async fn bridged(client: redis::Client) -> redis::RedisResult<Hub> {
        let manager = redis::aio::ConnectionManager::new(client.clone()).await?;
        let hub = Hub {
            inner: Arc::new(HubInner {
                node_text: Uuid::now_v7().to_string(),
                topics: DashMap::new(),
                redis: Some(manager),
            }),
        };
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(CHANNEL).await?;
        let weak = Arc::downgrade(&hub.inner);
        tokio::spawn(async move {
            let mut stream = pubsub.into_on_message();
            while let Some(m) = stream.next().await {
                let Some(inner) = weak.upgrade() else { break };
                let Ok(text) = m.get_payload::<String>() else {
                    continue;
                };
                // "<node>\n<messages>": a node skips its own batches unread.
                let Some((node, batch)) = text.split_once('\n') else {
                    continue;
                };
                if node == inner.node_text {
                    continue;
                }
                let Ok(msgs) = serde_json::from_str::<Vec<Message>>(batch) else {
                    continue;
                };
                for mut msg in msgs {
                    msg.from_another_node = true;
                    deliver(&inner, msg);
                }
            }
            tracing::warn!("redis pubsub bridge closed");
        });
        Ok(hub)
    }

    /// This node's id (random per process).
    pub fn node(&self) -> &str {
        &self.inner.node_text
    }

    pub fn subscribe(&self, topic: &str) -> broadcast::Receiver<Message> {
        self.inner
            .topics
            .entry(topic.to_string())
            .or_insert_with(|| broadcast::channel(CAPACITY).0)
            .subscribe()
    }

    /// Delivers to this node's subscribers at once and, when bridged, to the
    /// other nodes' through Redis.
    pub async fn publish(&self, msg: Message) {
        self.publish_many(vec![msg]).await
    }

    /// Publishes a batch: one Redis round trip (a pipeline) for all of it.
    pub async fn publish_many(&self, msgs: Vec<Message>) {
        if let Some(redis) = &self.inner.redis {
            // One message for the whole batch.
            if let Ok(batch) = serde_json::to_string(&msgs) {
                let text = format!("{}\n{batch}", self.inner.node_text);
                let mut conn = redis.clone();
                let sent: redis::RedisResult<()> = redis::cmd("PUBLISH")
                    .arg(CHANNEL)
                    .arg(text)
                    .query_async(&mut conn)
                    .await;
                if let Err(e) = sent {
                    tracing::warn!(error = %e, "pubsub: redis publish failed; local delivery only");
                }
            }
        }
        for msg in msgs {
            deliver(&self.inner, msg);
        }
    }
}

impl Hub {
    /// Forgets topics nobody listens to any more (a topic is otherwise
    /// dropped only when a message finds it empty).
    pub fn prune(&self) -> usize {
        let before = self.inner.topics.len();
        self.inner.topics.retain(|_, tx| tx.receiver_count() > 0);
        before - self.inner.topics.len()
    }

    pub fn topics(&self) -> usize {
        self.inner.topics.len()
    }
}

fn deliver(inner: &HubInner, msg: Message) {
    let mut gone = false;
    if let Some(tx) = inner.topics.get(&msg.topic) {
        gone = tx.send(msg.clone()).is_err();
    }
    if gone {
        inner
            .topics
            .remove_if(&msg.topic, |_, tx| tx.receiver_count() == 0);
    }
}
