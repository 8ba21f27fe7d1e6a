//! The sans-IO client side of a Phoenix socket: joins, replies, heartbeats, rejoins and
//! reconnect backoff, with nerves_hub_link's timings.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::frame::{Event, Frame, PHOENIX_TOPIC, Reply, ReplyStatus};

/// Timings of a [`ClientSession`]. The defaults are nerves_hub_link's.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// How often a heartbeat is sent (30 s). A heartbeat still unanswered when the next one is
    /// due closes the connection.
    pub heartbeat_interval: Duration,
    /// How long after a channel closes or errors (or a join is refused) it is rejoined (5 s).
    pub rejoin_after: Duration,
    /// The first reconnect delay (1 s); it doubles on each failed attempt.
    pub reconnect_min: Duration,
    /// The cap on the doubling reconnect delay (60 s).
    pub reconnect_max: Duration,
    /// Random jitter added on top of each reconnect delay, as a percentage of it (50 %: so
    /// 60–90 s at the cap).
    pub reconnect_jitter_percent: u32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            heartbeat_interval: Duration::from_secs(30),
            rejoin_after: Duration::from_secs(5),
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(60),
            reconnect_jitter_percent: 50,
        }
    }
}

impl ClientConfig {
    /// The reconnect delay before attempt `attempt` (0 for the first retry), given a random
    /// value: `min(reconnect_min * 2^attempt, reconnect_max)` plus `random` reduced to at most
    /// `reconnect_jitter_percent` of that.
    pub fn reconnect_delay(&self, attempt: u32, random: u64) -> Duration {
        let min = u64::try_from(self.reconnect_min.as_millis()).unwrap_or(u64::MAX);
        let max = u64::try_from(self.reconnect_max.as_millis()).unwrap_or(u64::MAX);
        let base = min.saturating_mul(1u64 << attempt.min(62)).min(max);
        let jitter_max = base.saturating_mul(u64::from(self.reconnect_jitter_percent)) / 100;
        let jitter = random % jitter_max.saturating_add(1);
        Duration::from_millis(base.saturating_add(jitter))
    }
}

/// Why the session wants the transport closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// The previous heartbeat was not answered when the next one was due.
    HeartbeatTimeout,
}

/// Why a joined channel closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChannelCloseReason {
    /// The server sent `phx_close`.
    Closed,
    /// The server sent `phx_error` (the channel process crashed).
    Errored,
}

/// Something the driver of a [`ClientSession`] should know or do.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// Open the transport now (the reconnect delay has passed), then call
    /// [`ClientSession::handle_connected`] or [`ClientSession::handle_disconnected`].
    Connect,
    /// Close the transport; the session already counts as disconnected and has scheduled the
    /// reconnect.
    Close {
        /// Why.
        reason: CloseReason,
    },
    /// The transport went away; a [`ClientEvent::Connect`] follows at `reconnect_at`.
    Disconnected {
        /// When the reconnect is due.
        reconnect_at: Duration,
    },
    /// A join was accepted.
    Joined {
        /// The topic.
        topic: String,
        /// The reply's `response` (`{}` for `device`; the names to attach for `extensions`).
        response: Value,
    },
    /// A join was refused (or its reply was malformed); it is retried at `rejoin_at`.
    JoinRefused {
        /// The topic.
        topic: String,
        /// The reply's `response`.
        response: Value,
        /// When the join is retried.
        rejoin_at: Duration,
    },
    /// The server closed or crashed a joined channel; it is rejoined at `rejoin_at`.
    ChannelClosed {
        /// The topic.
        topic: String,
        /// `phx_close` or `phx_error`.
        reason: ChannelCloseReason,
        /// When the join is retried.
        rejoin_at: Duration,
    },
    /// A [`ClientSession::leave`] completed (or the session was closed).
    Left {
        /// The topic.
        topic: String,
    },
    /// A message pushed by the server on a joined topic.
    Message {
        /// The topic.
        topic: String,
        /// The event name.
        event: String,
        /// The payload.
        payload: Value,
    },
    /// A reply to one of the driver's [`ClientSession::push`]es.
    Reply {
        /// The topic.
        topic: String,
        /// The ref [`ClientSession::push`] returned.
        msg_ref: String,
        /// The reply.
        reply: Reply,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum ChanState {
    /// Waiting for a connection.
    Idle,
    Joining {
        join_ref: String,
    },
    Joined {
        join_ref: String,
    },
    Rejoin {
        at: Duration,
    },
    Leaving {
        join_ref: String,
        leave_ref: String,
    },
}

#[derive(Debug, Clone)]
struct Channel {
    topic: String,
    params: Value,
    state: ChanState,
}

#[derive(Debug, Clone, PartialEq)]
enum Conn {
    /// Not connected; `Some` is when the next attempt is due, `None` means the driver was told
    /// to connect (or connects on its own for the first time).
    Disconnected { reconnect_at: Option<Duration> },
    Connected {
        next_heartbeat: Duration,
        pending_heartbeat: Option<String>,
    },
    /// [`ClientSession::close`] was called.
    Closed,
}

/// The client side of one Phoenix socket, in the sans-IO style of quinn-proto.
///
/// The session does no I/O and reads no clock. Its driver owns the WebSocket and a timer and:
/// - calls [`handle_connected`](Self::handle_connected) when the WebSocket is open,
///   [`handle_frame`](Self::handle_frame) with each decoded frame,
///   [`handle_disconnected`](Self::handle_disconnected) when it closes or a connect fails, and
///   [`handle_timeout`](Self::handle_timeout) when the deadline from
///   [`poll_timeout`](Self::poll_timeout) passes;
/// - after each of those calls, and after [`join`](Self::join), [`leave`](Self::leave) and
///   [`push`](Self::push), drains [`poll_transmit`](Self::poll_transmit) (frames to encode and
///   send, in order), then [`poll_event`](Self::poll_event), then re-arms its timer from
///   [`poll_timeout`](Self::poll_timeout).
///
/// Time is a [`Duration`] since an origin the driver picks (e.g. an `Instant` taken at start).
/// Randomness for the reconnect jitter comes from the seed given to [`new`](Self::new).
///
/// The first connection is the driver's to open; after that the session says when to
/// reconnect ([`ClientEvent::Connect`]), with nerves_hub_link's backoff: 1 s doubling to a
/// 60 s cap, plus up to 50 % jitter, reset by a successful connect. Joined channels are joined
/// again on every connect; a channel the server closes is rejoined after 5 s.
///
/// ```
/// use std::time::Duration;
/// use nerveshub_proto::{ClientConfig, ClientEvent, ClientSession, Frame};
///
/// let mut s = ClientSession::new(ClientConfig::default(), 7);
/// s.join("device", serde_json::json!({"nerves_fw_uuid": "0a1b"}));
/// s.handle_connected(Duration::ZERO);
/// let join = s.poll_transmit().unwrap();
/// assert_eq!(join.to_json(), r#"["1","1","device","phx_join",{"nerves_fw_uuid":"0a1b"}]"#);
/// s.handle_frame(
///     Frame::from_json(br#"["1","1","device","phx_reply",{"status":"ok","response":{}}]"#)?,
///     Duration::from_millis(20),
/// );
/// assert!(matches!(s.poll_event(), Some(ClientEvent::Joined { .. })));
/// // Next: the heartbeat, 30 s after connecting.
/// assert_eq!(s.poll_timeout(), Some(Duration::from_secs(30)));
/// # Ok::<(), nerveshub_proto::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClientSession {
    config: ClientConfig,
    conn: Conn,
    attempt: u32,
    rng: u64,
    next_ref: u64,
    channels: Vec<Channel>,
    transmit: VecDeque<Frame>,
    events: VecDeque<ClientEvent>,
}

impl ClientSession {
    /// A new, unconnected session. `seed` feeds the reconnect jitter (take it from a random
    /// source; a constant makes the schedule deterministic, as tests want).
    pub fn new(config: ClientConfig, seed: u64) -> Self {
        ClientSession {
            config,
            conn: Conn::Disconnected { reconnect_at: None },
            attempt: 0,
            rng: seed,
            next_ref: 0,
            channels: Vec::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Whether the transport is up (as far as the session knows).
    pub fn is_connected(&self) -> bool {
        matches!(self.conn, Conn::Connected { .. })
    }

    /// Whether `topic` is joined.
    pub fn is_joined(&self, topic: &str) -> bool {
        self.channel(topic)
            .is_some_and(|c| matches!(c.state, ChanState::Joined { .. }))
    }

    fn channel(&self, topic: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.topic == topic)
    }

    fn make_ref(&mut self) -> String {
        self.next_ref = self.next_ref.wrapping_add(1);
        self.next_ref.to_string()
    }

    /// splitmix64.
    fn random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn send_join(&mut self, idx: usize) {
        let join_ref = self.make_ref();
        if let Some(ch) = self.channels.get_mut(idx) {
            self.transmit.push_back(Frame::join(
                join_ref.clone(),
                ch.topic.clone(),
                ch.params.clone(),
            ));
            ch.state = ChanState::Joining { join_ref };
        }
    }

    /// Joins `topic` with `params` (sent now if connected, else on connect). The same params
    /// are used for every rejoin. Joining a topic already known replaces its params, which
    /// take effect on its next (re)join.
    pub fn join(&mut self, topic: &str, params: Value) {
        if let Some(idx) = self.channels.iter().position(|c| c.topic == topic) {
            let ch = &mut self.channels[idx];
            ch.params = params;
            if matches!(ch.state, ChanState::Leaving { .. } | ChanState::Idle) {
                ch.state = ChanState::Idle;
                if self.is_connected() {
                    self.send_join(idx);
                }
            }
            return;
        }
        self.channels.push(Channel {
            topic: topic.to_owned(),
            params,
            state: ChanState::Idle,
        });
        if self.is_connected() {
            self.send_join(self.channels.len() - 1);
        }
    }

    /// Leaves `topic`: sends `phx_leave` and reports [`ClientEvent::Left`] on the reply (at
    /// once when not connected or not joined yet).
    pub fn leave(&mut self, topic: &str) -> Result<()> {
        let idx = self
            .channels
            .iter()
            .position(|c| c.topic == topic)
            .ok_or_else(|| Error::NotJoined(topic.to_owned()))?;
        let connected = self.is_connected();
        let join_ref = match &self.channels[idx].state {
            ChanState::Joined { join_ref } | ChanState::Joining { join_ref } if connected => {
                join_ref.clone()
            }
            ChanState::Leaving { .. } => return Ok(()),
            _ => {
                self.channels.remove(idx);
                self.events.push_back(ClientEvent::Left {
                    topic: topic.to_owned(),
                });
                return Ok(());
            }
        };
        let leave_ref = self.make_ref();
        self.transmit.push_back(Frame::new(
            Some(join_ref.clone()),
            Some(leave_ref.clone()),
            topic,
            Event::Leave,
            Value::Object(Map::new()),
        ));
        self.channels[idx].state = ChanState::Leaving {
            join_ref,
            leave_ref,
        };
        Ok(())
    }

    /// Pushes `event` with `payload` on a joined topic; returns the message's ref, which a
    /// [`ClientEvent::Reply`] carries if the server answers. Pushes on `device` get no reply
    /// from NervesHub.
    pub fn push(&mut self, topic: &str, event: &str, payload: Value) -> Result<String> {
        if !self.is_connected() {
            return Err(Error::NotConnected);
        }
        let join_ref = match self.channel(topic).map(|c| &c.state) {
            Some(ChanState::Joined { join_ref }) => join_ref.clone(),
            _ => return Err(Error::NotJoined(topic.to_owned())),
        };
        let msg_ref = self.make_ref();
        self.transmit.push_back(Frame::new(
            Some(join_ref),
            Some(msg_ref.clone()),
            topic,
            event,
            payload,
        ));
        Ok(msg_ref)
    }

    /// Closes the session for good: no reconnects, every channel reported as left. The driver
    /// closes the transport.
    pub fn close(&mut self) {
        self.conn = Conn::Closed;
        for ch in self.channels.drain(..) {
            self.events.push_back(ClientEvent::Left { topic: ch.topic });
        }
        self.transmit.clear();
    }

    /// The transport is open: (re)join every channel and start the heartbeat.
    pub fn handle_connected(&mut self, now: Duration) {
        if self.conn == Conn::Closed {
            return;
        }
        self.attempt = 0;
        self.conn = Conn::Connected {
            next_heartbeat: now.saturating_add(self.config.heartbeat_interval),
            pending_heartbeat: None,
        };
        self.transmit.clear();
        for idx in 0..self.channels.len() {
            self.send_join(idx);
        }
    }

    /// The transport closed, or a connection attempt failed: schedule the next attempt.
    pub fn handle_disconnected(&mut self, now: Duration) {
        match self.conn {
            Conn::Closed
            | Conn::Disconnected {
                reconnect_at: Some(_),
            } => {}
            Conn::Connected { .. } | Conn::Disconnected { reconnect_at: None } => {
                self.schedule_reconnect(now);
            }
        }
    }

    fn schedule_reconnect(&mut self, now: Duration) {
        let r = self.random();
        let at = now.saturating_add(self.config.reconnect_delay(self.attempt, r));
        self.attempt = self.attempt.saturating_add(1);
        self.conn = Conn::Disconnected {
            reconnect_at: Some(at),
        };
        self.transmit.clear();
        let mut left = Vec::new();
        self.channels.retain_mut(|ch| {
            if matches!(ch.state, ChanState::Leaving { .. }) {
                left.push(ch.topic.clone());
                false
            } else {
                ch.state = ChanState::Idle;
                true
            }
        });
        self.events
            .extend(left.into_iter().map(|topic| ClientEvent::Left { topic }));
        self.events
            .push_back(ClientEvent::Disconnected { reconnect_at: at });
    }

    /// Runs the timers due at `now`: reconnect, heartbeat (or heartbeat timeout), rejoins.
    pub fn handle_timeout(&mut self, now: Duration) {
        match &mut self.conn {
            Conn::Closed => {}
            Conn::Disconnected { reconnect_at } => {
                if reconnect_at.is_some_and(|at| now >= at) {
                    *reconnect_at = None;
                    self.events.push_back(ClientEvent::Connect);
                }
            }
            Conn::Connected {
                next_heartbeat,
                pending_heartbeat,
            } => {
                if now >= *next_heartbeat {
                    if pending_heartbeat.is_some() {
                        self.events.push_back(ClientEvent::Close {
                            reason: CloseReason::HeartbeatTimeout,
                        });
                        self.schedule_reconnect(now);
                        return;
                    }
                    *next_heartbeat = now.saturating_add(self.config.heartbeat_interval);
                    self.next_ref = self.next_ref.wrapping_add(1);
                    let r = self.next_ref.to_string();
                    *pending_heartbeat = Some(r.clone());
                    self.transmit.push_back(Frame::heartbeat(r));
                }
                for idx in 0..self.channels.len() {
                    if matches!(self.channels[idx].state, ChanState::Rejoin { at } if now >= at) {
                        self.send_join(idx);
                    }
                }
            }
        }
    }

    /// Handles one decoded frame from the server.
    pub fn handle_frame(&mut self, frame: Frame, now: Duration) {
        let Conn::Connected {
            pending_heartbeat, ..
        } = &mut self.conn
        else {
            return;
        };
        if frame.event == Event::Reply && frame.topic == PHOENIX_TOPIC {
            if frame.msg_ref.is_some() && *pending_heartbeat == frame.msg_ref {
                *pending_heartbeat = None;
            }
            return;
        }
        let rejoin_at = now.saturating_add(self.config.rejoin_after);
        let Some(idx) = self.channels.iter().position(|c| c.topic == frame.topic) else {
            return;
        };
        let topic = frame.topic;
        let state = self.channels[idx].state.clone();
        // A null join_ref is accepted (older servers and fastlaned broadcasts send one).
        let current = |join_ref: &str| frame.join_ref.as_deref().is_none_or(|j| j == join_ref);
        match (frame.event, state) {
            (Event::Reply, ChanState::Joining { join_ref })
                if frame.msg_ref.as_deref() == Some(&*join_ref) =>
            {
                match Reply::from_payload(&frame.payload) {
                    Ok(Reply {
                        status: ReplyStatus::Ok,
                        response,
                    }) => {
                        self.channels[idx].state = ChanState::Joined { join_ref };
                        self.events
                            .push_back(ClientEvent::Joined { topic, response });
                    }
                    other => {
                        let response = other.map(|r| r.response).unwrap_or(Value::Null);
                        self.channels[idx].state = ChanState::Rejoin { at: rejoin_at };
                        self.events.push_back(ClientEvent::JoinRefused {
                            topic,
                            response,
                            rejoin_at,
                        });
                    }
                }
            }
            (Event::Reply, ChanState::Leaving { leave_ref, .. })
                if frame.msg_ref.as_deref() == Some(&*leave_ref) =>
            {
                self.channels.remove(idx);
                self.events.push_back(ClientEvent::Left { topic });
            }
            (Event::Reply, ChanState::Joined { join_ref }) if current(&join_ref) => {
                if let (Some(msg_ref), Ok(reply)) =
                    (frame.msg_ref, Reply::from_payload(&frame.payload))
                {
                    self.events.push_back(ClientEvent::Reply {
                        topic,
                        msg_ref,
                        reply,
                    });
                }
            }
            (
                ev @ (Event::Close | Event::Error),
                ChanState::Joined { join_ref } | ChanState::Joining { join_ref },
            ) if current(&join_ref) => {
                let reason = if ev == Event::Close {
                    ChannelCloseReason::Closed
                } else {
                    ChannelCloseReason::Errored
                };
                self.channels[idx].state = ChanState::Rejoin { at: rejoin_at };
                self.events.push_back(ClientEvent::ChannelClosed {
                    topic,
                    reason,
                    rejoin_at,
                });
            }
            (Event::Close, ChanState::Leaving { join_ref, .. }) if current(&join_ref) => {
                self.channels.remove(idx);
                self.events.push_back(ClientEvent::Left { topic });
            }
            (Event::Custom(event), ChanState::Joined { join_ref }) if current(&join_ref) => {
                self.events.push_back(ClientEvent::Message {
                    topic,
                    event,
                    payload: frame.payload,
                });
            }
            _ => {}
        }
    }

    /// The next frame to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Frame> {
        self.transmit.pop_front()
    }

    /// The next event for the driver, if any.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Duration> {
        match &self.conn {
            Conn::Closed | Conn::Disconnected { reconnect_at: None } => None,
            Conn::Disconnected {
                reconnect_at: Some(at),
            } => Some(*at),
            Conn::Connected { next_heartbeat, .. } => {
                let rejoins = self.channels.iter().filter_map(|c| match c.state {
                    ChanState::Rejoin { at } => Some(at),
                    _ => None,
                });
                Some(rejoins.fold(*next_heartbeat, Duration::min))
            }
        }
    }
}
