//! What the console pushes to open pages, as Server-Sent Events.
//!
//! Alert events are numbered (the SSE `id`) and the newest [`RING`] are kept, so a page that
//! reconnects with `Last-Event-ID` gets what it missed, in order, before anything new; one that
//! was away too long gets `reset` (refetch the list). The ticks (`overview` every second and
//! `pads` with the pads changed since the last tick) carry state, not history, and have no id.
//! Every stream ends with `shutdown` when the role stops.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

/// Alert events kept for pages that reconnect.
pub const RING: usize = 4096;

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The SSE id (alert events only).
    pub seq: Option<u64>,
    /// The SSE event name: `alert`, `overview`, `pads`.
    pub name: &'static str,
    /// JSON.
    pub data: String,
}

impl Event {
    /// The event as SSE text.
    pub fn to_sse(&self) -> String {
        let mut text = String::with_capacity(self.data.len() + 32);
        if let Some(seq) = self.seq {
            text.push_str(&format!("id: {seq}\n"));
        }
        text.push_str("event: ");
        text.push_str(self.name);
        text.push('\n');
        for line in self.data.lines() {
            text.push_str("data: ");
            text.push_str(line);
            text.push('\n');
        }
        text.push('\n');
        text
    }
}

/// What a page that connects (or reconnects) gets first.
#[derive(Debug)]
pub enum Resume {
    /// The alert events after its last one, then the live ones.
    Replay(Vec<Arc<Event>>),
    /// Its last event is gone from the ring: it must refetch.
    Reset,
}

/// The events bus.
#[derive(Debug)]
pub struct Hub {
    sender: broadcast::Sender<Arc<Event>>,
    ring: Mutex<(u64, VecDeque<Arc<Event>>)>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Hub {
    pub fn new() -> Hub {
        Hub {
            sender: broadcast::channel(1024).0,
            ring: Mutex::new((0, VecDeque::new())),
        }
    }

    /// The id of the newest alert event (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.ring.lock().map(|r| r.0).unwrap_or(0)
    }

    /// Numbers an alert event, keeps it and sends it to every page.
    pub fn alert(&self, data: String) {
        let Ok(mut ring) = self.ring.lock() else {
            return;
        };
        ring.0 += 1;
        let event = Arc::new(Event {
            seq: Some(ring.0),
            name: "alert",
            data,
        });
        ring.1.push_back(event.clone());
        if ring.1.len() > RING {
            ring.1.pop_front();
        }
        // Sent under the lock, so a page subscribing sees each event once: in the replay or
        // live, never both, never neither.
        let _ = self.sender.send(event);
    }

    /// Sends a tick (no id, not kept).
    pub fn tick(&self, name: &'static str, data: String) {
        let _ = self.sender.send(Arc::new(Event {
            seq: None,
            name,
            data,
        }));
    }

    /// Subscribes a page that last saw alert event `last` (`None`: a new page, which fetched
    /// the list and `last_seq` at the same time, so it gets only new events).
    pub fn subscribe(&self, last: Option<u64>) -> (Resume, broadcast::Receiver<Arc<Event>>) {
        let Ok(ring) = self.ring.lock() else {
            return (Resume::Reset, self.sender.subscribe());
        };
        let receiver = self.sender.subscribe();
        let Some(last) = last else {
            return (Resume::Replay(Vec::new()), receiver);
        };
        let oldest = ring.1.front().and_then(|e| e.seq).unwrap_or(ring.0 + 1);
        if last > ring.0 || last + 1 < oldest {
            return (Resume::Reset, receiver);
        }
        let missed = ring
            .1
            .iter()
            .filter(|e| e.seq.is_some_and(|s| s > last))
            .cloned()
            .collect();
        (Resume::Replay(missed), receiver)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_that_reconnects_gets_what_it_missed_once() {
        let hub = Hub::new();
        for i in 0..5 {
            hub.alert(format!("{{\"n\":{i}}}"));
        }
        let (resume, mut live) = hub.subscribe(Some(3));
        let Resume::Replay(missed) = resume else {
            panic!("expected a replay")
        };
        assert_eq!(
            missed.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [Some(4), Some(5)]
        );
        hub.alert("{}".into());
        assert_eq!(live.try_recv().unwrap().seq, Some(6));
        assert!(live.try_recv().is_err());
        // Too far behind, or from another run: refetch.
        for _ in 0..RING {
            hub.alert("{}".into());
        }
        assert!(matches!(hub.subscribe(Some(3)).0, Resume::Reset));
        assert!(matches!(hub.subscribe(Some(1_000_000)).0, Resume::Reset));
        assert!(matches!(hub.subscribe(Some(hub.last_seq())).0, Resume::Replay(v) if v.is_empty()));
    }

    #[test]
    fn events_are_sse_text() {
        let event = Event {
            seq: Some(7),
            name: "alert",
            data: "{\"a\":\n1}".into(),
        };
        assert_eq!(
            event.to_sse(),
            "id: 7\nevent: alert\ndata: {\"a\":\ndata: 1}\n\n"
        );
    }
}
