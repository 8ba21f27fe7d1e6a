//! The sans-IO server side of one Phoenix socket: which topics are joined under which refs,
//! and the channel rules, so a server does not re-implement them.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::frame::{Event, Frame, PHOENIX_TOPIC, Reply};
use crate::messages::DEVICE_TOPIC;

/// Limits of a [`ServerSession`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// How many topics one socket may have joined or be joining at once (8; a device uses
    /// three).
    pub max_topics: usize,
    /// A socket that sends nothing for this long is closed (Phoenix's idle timeout in
    /// NervesHub: 180 s).
    pub idle_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_topics: 8,
            idle_timeout: Duration::from_secs(180),
        }
    }
}

/// A device's request to join a topic, waiting for [`ServerSession::accept_join`] or
/// [`ServerSession::reject_join`].
#[derive(Debug, Clone, PartialEq)]
pub struct JoinRequest {
    /// The topic.
    pub topic: String,
    /// The join's ref (its join ref).
    pub join_ref: Option<String>,
    /// The join message's ref.
    pub msg_ref: Option<String>,
    /// The join params (e.g. [`DeviceJoinParams`](crate::DeviceJoinParams) for `device`).
    pub params: Value,
}

/// A message a device pushed on a joined topic.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundPush {
    /// The topic.
    pub topic: String,
    /// The join ref the message carried (`None` from clients that send it only on join).
    pub join_ref: Option<String>,
    /// The message's ref.
    pub msg_ref: Option<String>,
    /// The event name.
    pub event: String,
    /// The payload.
    pub payload: Value,
}

/// Something the server's channel code should handle.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A join to accept or reject.
    JoinRequest(JoinRequest),
    /// A message pushed on a joined topic.
    Push(InboundPush),
    /// The device left a topic (`phx_leave`; already answered).
    Left {
        /// The topic.
        topic: String,
    },
    /// Nothing was received for the idle timeout: close the socket.
    IdleTimeout,
}

#[derive(Debug, Clone)]
struct Joined {
    topic: String,
    join_ref: Option<String>,
}

/// The server side of one device socket, in the sans-IO style of quinn-proto.
///
/// Feed it every decoded frame with [`handle_frame`](Self::handle_frame); drain
/// [`poll_transmit`](Self::poll_transmit) (frames to encode and send) and
/// [`poll_event`](Self::poll_event); call [`handle_timeout`](Self::handle_timeout) at
/// [`poll_timeout`](Self::poll_timeout) (the idle timeout). Time is a [`Duration`] since an
/// origin the driver picks.
///
/// What it does by itself: answers heartbeats (`phoenix`/`heartbeat`) and leaves, tracks each
/// topic's join ref, accepts a `null` join ref after the join, ignores messages carrying a
/// stale join ref, and answers pushes on topics that are not joined with
/// `{"reason":"unmatched topic"}` as Phoenix does — except on `device`, where it stays
/// silent. It never answers a device's pushes on `device`: [`reply`](Self::reply) refuses to,
/// because nerves_hub_link crashes on such a reply.
#[derive(Debug, Clone)]
pub struct ServerSession {
    config: ServerConfig,
    joined: Vec<Joined>,
    pending: Vec<JoinRequest>,
    last_seen: Duration,
    transmit: VecDeque<Frame>,
    events: VecDeque<ServerEvent>,
}

impl ServerSession {
    /// A session for a socket that has just connected at `now`.
    pub fn new(config: ServerConfig, now: Duration) -> Self {
        ServerSession {
            config,
            joined: Vec::new(),
            pending: Vec::new(),
            last_seen: now,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Whether `topic` is joined.
    pub fn is_joined(&self, topic: &str) -> bool {
        self.joined.iter().any(|j| j.topic == topic)
    }

    /// The joined topics.
    pub fn joined_topics(&self) -> impl Iterator<Item = &str> {
        self.joined.iter().map(|j| j.topic.as_str())
    }

    fn send_reply(
        &mut self,
        join_ref: Option<String>,
        msg_ref: Option<String>,
        topic: &str,
        reply: &Reply,
    ) {
        // Nothing can be matched to a reply without a ref; do not send one.
        if msg_ref.is_some() {
            self.transmit
                .push_back(Frame::reply(join_ref, msg_ref, topic, reply));
        }
    }

    /// Handles one decoded frame from the device.
    pub fn handle_frame(&mut self, frame: Frame, now: Duration) {
        self.last_seen = now;
        let Frame {
            join_ref,
            msg_ref,
            topic,
            event,
            payload,
        } = frame;
        if topic == PHOENIX_TOPIC {
            if event == Event::Heartbeat {
                self.send_reply(
                    None,
                    msg_ref,
                    PHOENIX_TOPIC,
                    &Reply::ok(Value::Object(Map::new())),
                );
            }
            return;
        }
        let current = self.joined.iter().position(|j| j.topic == topic);
        match event {
            Event::Join => {
                self.pending.retain(|p| p.topic != topic);
                if current.is_none()
                    && self.joined.len() + self.pending.len() >= self.config.max_topics
                {
                    let reply = Reply::error(json!({"reason": "too many topics"}));
                    self.send_reply(join_ref, msg_ref, &topic, &reply);
                    return;
                }
                let req = JoinRequest {
                    topic,
                    join_ref,
                    msg_ref,
                    params: payload,
                };
                self.pending.push(req.clone());
                self.events.push_back(ServerEvent::JoinRequest(req));
            }
            _ if current.is_none() => {
                if topic != DEVICE_TOPIC && event != Event::Reply {
                    let reply = Reply::error(json!({"reason": "unmatched topic"}));
                    self.send_reply(join_ref, msg_ref, &topic, &reply);
                }
            }
            _ => {
                let idx = current.unwrap_or_default();
                let Some(j) = self.joined.get(idx) else {
                    return;
                };
                if join_ref.is_some() && j.join_ref.is_some() && join_ref != j.join_ref {
                    return; // stale: a message for an earlier join of this topic
                }
                let chan_ref = j.join_ref.clone();
                match event {
                    Event::Leave => {
                        self.joined.remove(idx);
                        self.send_reply(
                            chan_ref,
                            msg_ref,
                            &topic,
                            &Reply::ok(Value::Object(Map::new())),
                        );
                        self.events.push_back(ServerEvent::Left { topic });
                    }
                    Event::Custom(event) => {
                        self.events.push_back(ServerEvent::Push(InboundPush {
                            topic,
                            join_ref,
                            msg_ref,
                            event,
                            payload,
                        }));
                    }
                    // Replies, closes, errors and heartbeats from a client mean nothing here.
                    _ => {}
                }
            }
        }
    }

    fn take_pending(&mut self, req: &JoinRequest) -> Result<JoinRequest> {
        let idx = self
            .pending
            .iter()
            .position(|p| {
                p.topic == req.topic && p.join_ref == req.join_ref && p.msg_ref == req.msg_ref
            })
            .ok_or_else(|| Error::UnknownJoin(req.topic.clone()))?;
        Ok(self.pending.remove(idx))
    }

    /// Accepts a join: replies `{"status":"ok","response":response}` (NervesHub's device join
    /// answers `{}`; the extensions join answers the list of names to attach). A topic joined
    /// again replaces its earlier join.
    pub fn accept_join(&mut self, req: &JoinRequest, response: Value) -> Result<()> {
        let req = self.take_pending(req)?;
        self.joined.retain(|j| j.topic != req.topic);
        self.joined.push(Joined {
            topic: req.topic.clone(),
            join_ref: req.join_ref.clone(),
        });
        self.send_reply(req.join_ref, req.msg_ref, &req.topic, &Reply::ok(response));
        Ok(())
    }

    /// Rejects a join with `{"status":"error","response":response}` (NervesHub:
    /// `{"error":"could not connect"}`). The device retries after its rejoin delay.
    pub fn reject_join(&mut self, req: &JoinRequest, response: Value) -> Result<()> {
        let req = self.take_pending(req)?;
        self.joined.retain(|j| j.topic != req.topic);
        self.send_reply(
            req.join_ref,
            req.msg_ref,
            &req.topic,
            &Reply::error(response),
        );
        Ok(())
    }

    /// Replies to a device's push. Refused on `device` ([`Error::ReplyNotAllowed`]): a real
    /// nerves_hub_link crashes on a reply to anything but its join there. Allowed on other
    /// topics, e.g. [`detach_reply`](crate::detach_reply) on `extensions`.
    pub fn reply(&mut self, push: &InboundPush, reply: &Reply) -> Result<()> {
        if push.topic == DEVICE_TOPIC {
            return Err(Error::ReplyNotAllowed {
                topic: push.topic.clone(),
                event: push.event.clone(),
            });
        }
        let j = self
            .joined
            .iter()
            .find(|j| j.topic == push.topic)
            .ok_or_else(|| Error::NotJoined(push.topic.clone()))?;
        let join_ref = j.join_ref.clone();
        self.send_reply(join_ref, push.msg_ref.clone(), &push.topic.clone(), reply);
        Ok(())
    }

    /// Pushes `event` to the device on a joined topic: `[join_ref, null, topic, event,
    /// payload]`.
    pub fn push(&mut self, topic: &str, event: &str, payload: Value) -> Result<()> {
        let j = self
            .joined
            .iter()
            .find(|j| j.topic == topic)
            .ok_or_else(|| Error::NotJoined(topic.to_owned()))?;
        self.transmit
            .push_back(Frame::new(j.join_ref.clone(), None, topic, event, payload));
        Ok(())
    }

    /// Closes a joined topic from the server side with `phx_close` (the client rejoins it
    /// after its rejoin delay).
    pub fn close_topic(&mut self, topic: &str) -> Result<()> {
        let idx = self
            .joined
            .iter()
            .position(|j| j.topic == topic)
            .ok_or_else(|| Error::NotJoined(topic.to_owned()))?;
        let j = self.joined.remove(idx);
        self.transmit.push_back(Frame::new(
            j.join_ref.clone(),
            j.join_ref,
            j.topic,
            Event::Close,
            Value::Object(Map::new()),
        ));
        Ok(())
    }

    /// Runs the idle timer: reports [`ServerEvent::IdleTimeout`] once nothing has been
    /// received for the configured time.
    pub fn handle_timeout(&mut self, now: Duration) {
        if now >= self.last_seen.saturating_add(self.config.idle_timeout) {
            self.last_seen = now;
            self.events.push_back(ServerEvent::IdleTimeout);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Duration {
        self.last_seen.saturating_add(self.config.idle_timeout)
    }

    /// The next frame to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Frame> {
        self.transmit.pop_front()
    }

    /// The next event for the server's channel code, if any.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }
}
