//! Reading client requests and serving them: Subscribe, Unsubscribe, Heartbeat, SetPolicy,
//! Resnapshot, DigestRequest, and the Error or Goodbye frames that malformed input gets.

use std::collections::HashSet;
use std::io;

use mdfh_feed::itch::Stock;
use mdfh_matcher::FeedQuality;

use super::connection::{Conflation, Connection, SymbolSub};
use super::fanout::{queue_snapshot, Route};
use super::policy::{dirty_capacity, queue_all_snapshots};
use super::quality::queue_current_quality;
use super::{Publisher, READ_BUDGET};
use crate::decode::decode_frame_with_limit;
use crate::digest::effective_depth;
use crate::encode::{encode_digest, encode_error, encode_subscribe_ack, encode_subscribe_reject};
use crate::error::ProtocolError;
use crate::mirror::Mirror;
use crate::protocol::{
    AckState, DigestUpdate, ErrorCode, Frame, GoodbyeReason, SlowConsumerPolicy, SubscribeAck,
    Target, MAX_REQUEST_LEN,
};

/// A decoded request, copied out of the input buffer.
#[derive(Debug, Clone, Copy)]
enum Request {
    Subscribe { target: Target, depth: u16 },
    Unsubscribe { target: Target },
    Heartbeat,
    SetPolicy { policy: SlowConsumerPolicy },
    Resnapshot { target: Target },
    Digest { stock: Stock, depth: u16 },
    /// A frame of a server-to-client type.
    Unexpected { frame_type: u8 },
}

impl Publisher {
    /// Reads what connection `slot` sent, at most [`READ_BUDGET`] bytes, and serves every complete
    /// request. A closing connection's input is read and dropped. Returns the requests served.
    pub(super) fn read_requests(&mut self, slot: usize) -> usize {
        let mut served = 0;
        let mut read_total = 0;
        loop {
            let Some(Some(conn)) = self.conns.get_mut(slot) else {
                return served;
            };
            if !conn.readable || read_total >= READ_BUDGET {
                return served;
            }
            match conn.read_once() {
                Ok(0) => {
                    // The peer closed its side. An open connection is dropped; a closing one
                    // is dropped once its Goodbye is flushed.
                    conn.readable = false;
                    conn.peer_closed = true;
                    if conn.is_open() {
                        self.drop_connection(slot);
                    }
                    return served;
                }
                Ok(n) => read_total += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.readable = false;
                    return served;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.counters.record_error(Some(conn.peer), format_args!("read failed, connection closed: {e}"));
                    self.drop_connection(slot);
                    return served;
                }
            }
            if conn.is_open() {
                served += self.serve_input(slot);
            } else {
                conn.consume_input(usize::MAX);
            }
        }
    }

    /// Decodes and serves the complete requests in the input buffer of connection `slot`.
    fn serve_input(&mut self, slot: usize) -> usize {
        let mut served = 0;
        loop {
            let Some(Some(conn)) = self.conns.get_mut(slot) else {
                return served;
            };
            if !conn.is_open() {
                conn.consume_input(usize::MAX);
                return served;
            }
            let decoded = match decode_frame_with_limit(conn.input(), MAX_REQUEST_LEN) {
                Ok(None) => return served,
                Ok(Some((frame, consumed))) => Ok((request_of(&frame), consumed)),
                Err(e) => Err(e.at(conn.input_offset())),
            };
            served += 1;
            match decoded {
                Ok((request, consumed)) => {
                    conn.consume_input(consumed);
                    self.serve(slot, request);
                }
                Err(error) => {
                    conn.consume_input(error.skip_len().unwrap_or(usize::MAX));
                    self.reject_malformed(slot, &error);
                }
            }
        }
    }

    fn serve(&mut self, slot: usize, request: Request) {
        match request {
            Request::Subscribe { target, depth } => self.subscribe(slot, target, depth),
            Request::Unsubscribe { target } => self.unsubscribe(slot, target),
            Request::Heartbeat => {}
            Request::SetPolicy { policy } => self.set_policy(slot, policy),
            Request::Resnapshot { target } => self.resnapshot(slot, target),
            Request::Digest { stock, depth } => self.send_digest(slot, stock, depth),
            Request::Unexpected { frame_type } => {
                self.counters.malformed_requests += 1;
                let text = format!("frame type '{}' is sent by servers, not clients", frame_type as char);
                self.record_peer_error(slot, &text);
                self.send_error(slot, ErrorCode::UnexpectedType, &text);
            }
        }
    }

    /// Counts a malformed request and replies with an Error frame, or with a Goodbye when the
    /// stream cannot be resynchronized.
    fn reject_malformed(&mut self, slot: usize, error: &ProtocolError) {
        self.counters.malformed_requests += 1;
        let text = error.to_string();
        self.record_peer_error(slot, &text);
        if error.skip_len().is_some() {
            self.send_error(slot, error.error_code(), &text);
        } else if let Some(Some(conn)) = self.conns.get_mut(slot) {
            conn.begin_close(GoodbyeReason::ProtocolViolation, &text);
        }
    }

    fn subscribe(&mut self, slot: usize, target: Target, depth: u16) {
        let max_depth = self.cfg.max_depth;
        if max_depth != 0 && (depth == 0 || depth > max_depth) {
            let text = format!("depth {depth} is not allowed: the maximum is {max_depth} and 0 (full book) needs no maximum");
            self.reject(slot, target, ErrorCode::DepthTooLarge, &text);
            return;
        }
        let max_subscriptions = self.cfg.max_subscriptions;
        let Publisher { conns, mirror, routes, scratch, counters, last_feed_seq, quality, quality_feed_seq, .. } = self;
        let Some(Some(conn)) = conns.get_mut(slot) else {
            return;
        };

        let refusal = match target {
            _ if conn.all_depth.is_some() => {
                Some((ErrorCode::AlreadySubscribed, "already subscribed to all instruments; unsubscribe all first".to_owned()))
            }
            Target::All if !conn.subs.is_empty() => Some((
                ErrorCode::AlreadySubscribed,
                "symbol subscriptions are active; unsubscribe all before subscribing to all instruments".to_owned(),
            )),
            Target::Symbol(stock) if conn.subs.iter().any(|s| s.stock == stock) => {
                Some((ErrorCode::AlreadySubscribed, format!("already subscribed to {stock}")))
            }
            Target::Symbol(_) if conn.subs.len() >= max_subscriptions => Some((
                ErrorCode::TooManySubscriptions,
                format!("the connection already has the maximum of {max_subscriptions} symbol subscriptions"),
            )),
            _ => None,
        };
        if let Some((code, text)) = refusal {
            self.reject(slot, target, code, &text);
            return;
        }

        match target {
            Target::All => {
                conn.all_depth = Some(depth);
                routes.all.push(Route { slot, depth });
                let ack = SubscribeAck { target, depth, locate: 0, state: AckState::Active };
                scratch.clear();
                encode_subscribe_ack(scratch, &ack);
                conn.queue_session(scratch, counters);
                // NOTE: at full depth on a busy market these snapshots can exceed `queue_bytes`
                // together, which disconnects the subscriber as a slow consumer.
                for locate in mirror.named_locates() {
                    queue_snapshot(conn, mirror, locate, depth, *last_feed_seq, scratch, counters);
                }
            }
            Target::Symbol(stock) => {
                let locate = mirror.locate_of(&stock);
                conn.subs.push(SymbolSub { stock, depth, locate });
                let state = match locate {
                    Some(locate) => {
                        routes.add(locate, Route { slot, depth });
                        AckState::Active
                    }
                    None => {
                        routes.add_pending(stock, slot);
                        AckState::Pending
                    }
                };
                let ack = SubscribeAck { target, depth, locate: locate.unwrap_or(0), state };
                scratch.clear();
                encode_subscribe_ack(scratch, &ack);
                conn.queue_session(scratch, counters);
                if let Some(locate) = locate {
                    queue_snapshot(conn, mirror, locate, depth, *last_feed_seq, scratch, counters);
                }
            }
        }
        // The client may hold the quality from before it subscribed, or none at all.
        if *quality != FeedQuality::OK {
            queue_current_quality(conn, *quality, *quality_feed_seq, scratch, counters);
        }
    }

    fn unsubscribe(&mut self, slot: usize, target: Target) {
        let Publisher { conns, routes, .. } = self;
        let Some(Some(conn)) = conns.get_mut(slot) else {
            return;
        };
        match target {
            Target::All => {
                routes.remove_connection(slot, conn);
                conn.subs.clear();
                conn.all_depth = None;
            }
            Target::Symbol(stock) => {
                let Some(index) = conn.subs.iter().position(|s| s.stock == stock) else {
                    let text = format!("not subscribed to {stock}");
                    self.send_error(slot, ErrorCode::NotSubscribed, &text);
                    return;
                };
                let sub = conn.subs.swap_remove(index);
                match sub.locate {
                    Some(locate) => routes.remove(locate, slot),
                    None => routes.remove_pending(&stock, slot),
                }
            }
        }
    }

    fn set_policy(&mut self, slot: usize, policy: SlowConsumerPolicy) {
        if !self.cfg.allowed_policies.contains(&policy) {
            let text = format!(
                "slow-consumer policy '{}' is not allowed by the server; allowed: {}",
                policy.as_byte() as char,
                self.cfg.allowed_policies.iter().map(|p| p.as_byte() as char).collect::<String>()
            );
            self.reject_request(slot, ErrorCode::PolicyNotAllowed, &text);
            return;
        }
        let queue_bytes = self.cfg.queue_bytes;
        let Some(Some(conn)) = self.conns.get_mut(slot) else {
            return;
        };
        if conn.has_subscriptions() {
            let text = "the slow-consumer policy can only be set while the connection has no subscriptions";
            self.reject_request(slot, ErrorCode::SubscriptionsActive, text);
            return;
        }
        conn.policy = policy;
        conn.conflating = false;
        conn.resnapshot_pending = false;
        if policy == SlowConsumerPolicy::Conflate && conn.conflation.is_none() {
            let capacity = dirty_capacity(queue_bytes);
            conn.conflation = Some(Box::new(Conflation {
                dirty: HashSet::with_capacity(capacity),
                capacity,
                conflated: 0,
                dropped_trades: 0,
            }));
        }
    }

    /// Queues a fresh Snapshot of one subscribed instrument, or of every instrument the
    /// connection's subscriptions cover.
    fn resnapshot(&mut self, slot: usize, target: Target) {
        let Publisher { conns, mirror, scratch, counters, last_feed_seq, .. } = self;
        let Some(Some(conn)) = conns.get_mut(slot) else {
            return;
        };
        if conn.resnapshot_pending {
            // Fresh snapshots of every subscription are already owed.
            return;
        }
        let found = match target {
            Target::All if conn.has_subscriptions() => {
                queue_all_snapshots(conn, mirror, *last_feed_seq, scratch, counters);
                true
            }
            Target::All => false,
            Target::Symbol(stock) => match subscribed_locate(conn, mirror, &stock) {
                Some((locate, depth)) => queue_snapshot(conn, mirror, locate, depth, *last_feed_seq, scratch, counters),
                None => false,
            },
        };
        if !found {
            let text = match target {
                Target::All => "resnapshot of all instruments without any subscription".to_owned(),
                Target::Symbol(stock) => format!("no active subscription to {stock}"),
            };
            self.reject_request(slot, ErrorCode::UnknownInstrument, &text);
        }
    }

    /// Queues a Digest of `stock` over `depth` levels per side, cut to the subscription's depth.
    fn send_digest(&mut self, slot: usize, stock: Stock, depth: u16) {
        let Publisher { conns, mirror, scratch, counters, last_feed_seq, .. } = self;
        let Some(Some(conn)) = conns.get_mut(slot) else {
            return;
        };
        let Some((locate, subscribed)) = subscribed_locate(conn, mirror, &stock) else {
            let text = format!("no active subscription to {stock}");
            self.reject_request(slot, ErrorCode::UnknownInstrument, &text);
            return;
        };
        if conn.is_behind() {
            let text = format!("digest of {stock} not computed: the connection is catching up; request it again later");
            self.reject_request(slot, ErrorCode::CatchingUp, &text);
            return;
        }
        let depth = effective_depth(depth, subscribed);
        let crc = mirror.book(locate).map_or(0, |book| book.digest(depth));
        let digest = DigestUpdate { seq: 0, locate, depth, feed_seq: *last_feed_seq, crc };
        scratch.clear();
        encode_digest(scratch, &digest);
        if conn.queue_data(scratch, counters) {
            counters.digests_sent += 1;
        }
    }

    /// Counts a request that could not be served and replies with an Error.
    fn reject_request(&mut self, slot: usize, code: ErrorCode, text: &str) {
        self.counters.rejected_requests += 1;
        self.send_error(slot, code, text);
    }

    fn reject(&mut self, slot: usize, target: Target, code: ErrorCode, text: &str) {
        self.counters.rejected_subscriptions += 1;
        let Publisher { conns, scratch, counters, .. } = self;
        if let Some(Some(conn)) = conns.get_mut(slot) {
            scratch.clear();
            encode_subscribe_reject(scratch, target, code, text);
            conn.queue_session(scratch, counters);
        }
    }

    fn send_error(&mut self, slot: usize, code: ErrorCode, text: &str) {
        let Publisher { conns, scratch, counters, .. } = self;
        if let Some(Some(conn)) = conns.get_mut(slot) {
            scratch.clear();
            encode_error(scratch, code, text);
            conn.queue_session(scratch, counters);
        }
    }

    fn record_peer_error(&mut self, slot: usize, text: &str) {
        let peer = self.conns.get(slot).and_then(Option::as_ref).map(|c| c.peer);
        self.counters.record_error(peer, format_args!("{text}"));
    }
}

/// Returns the locate and subscription depth of `stock` when the connection receives its events.
fn subscribed_locate(conn: &Connection, mirror: &Mirror, stock: &Stock) -> Option<(u16, u16)> {
    if let Some(depth) = conn.all_depth {
        let locate = mirror.locate_of(stock)?;
        return Some((locate, depth));
    }
    let sub = conn.subs.iter().find(|s| s.stock == *stock)?;
    Some((sub.locate?, sub.depth))
}

fn request_of(frame: &Frame<'_>) -> Request {
    match *frame {
        Frame::Subscribe { target, depth } => Request::Subscribe { target, depth },
        Frame::Unsubscribe { target } => Request::Unsubscribe { target },
        Frame::ClientHeartbeat => Request::Heartbeat,
        Frame::SetPolicy { policy } => Request::SetPolicy { policy },
        Frame::Resnapshot { target } => Request::Resnapshot { target },
        Frame::DigestRequest { stock, depth } => Request::Digest { stock, depth },
        ref other => Request::Unexpected { frame_type: other.frame_type() },
    }
}

