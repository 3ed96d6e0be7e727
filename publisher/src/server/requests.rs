//! Reading client requests and serving them: Subscribe, Unsubscribe, Heartbeat, and the Error or
//! Goodbye frames that malformed input gets.

use std::io;

use super::connection::SymbolSub;
use super::fanout::{queue_snapshot, Route};
use super::{Publisher, READ_BUDGET};
use crate::decode::decode_frame_with_limit;
use crate::encode::{encode_error, encode_subscribe_ack, encode_subscribe_reject};
use crate::error::ProtocolError;
use crate::protocol::{
    AckState, ErrorCode, Frame, GoodbyeReason, SubscribeAck, Target, MAX_REQUEST_LEN,
};

/// A decoded request, copied out of the input buffer.
#[derive(Debug, Clone, Copy)]
enum Request {
    Subscribe { target: Target, depth: u16 },
    Unsubscribe { target: Target },
    Heartbeat,
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
        let Publisher { conns, mirror, routes, scratch, counters, last_feed_seq, .. } = self;
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

fn request_of(frame: &Frame<'_>) -> Request {
    match *frame {
        Frame::Subscribe { target, depth } => Request::Subscribe { target, depth },
        Frame::Unsubscribe { target } => Request::Unsubscribe { target },
        Frame::ClientHeartbeat => Request::Heartbeat,
        ref other => Request::Unexpected { frame_type: other.frame_type() },
    }
}

