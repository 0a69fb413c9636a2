//! Every vehicle's latest login, from the compacted vehicle-logins topic that ingest writes
//! before it answers a login (key VIN, value the login event with its plaintext frame).
//!
//! A vehicle's data is sent upstream only after its login; the login comes from here. Ingest
//! acknowledged the login record before the terminal could send data, so a forwarder that
//! meets data of a VIN it has no login for reads the topic to its end ([`Logins::sync`]) and
//! then knows it. Decision: a vehicle whose login is nowhere (logged in before the topic
//! existed, or deleted) is logged in upstream with a login made from its data: the data's
//! time, serial 1, ICCID of twenty `0`, no subsystem codes, counted in
//! `forward_logins_made_total`; refusing its data would lose good frames.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use schemas::message::{EventMessage, KafkaSettings};
use schemas::payload::{Login, LoginCodes, Payload};
use schemas::{Edition, TerminalTime, Vin};
use stage::compacted::Follower;
use tokio_util::sync::CancellationToken;

use crate::error::Result;

type Book = Arc<RwLock<HashMap<Vin, Arc<Vec<u8>>>>>;

/// The latest login frame of every vehicle.
pub struct Logins {
    book: Book,
    follower: Follower,
}

impl std::fmt::Debug for Logins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logins")
            .field("vehicles", &self.len())
            .finish_non_exhaustive()
    }
}

/// The plaintext frame an event carries (login and logout events), if readable.
pub fn event_frame(event: &EventMessage) -> Option<Vec<u8>> {
    let bytes = hex::decode(event.frame_hex.as_deref()?).ok()?;
    schemas::Frame::check(&bytes).ok()?;
    Some(bytes)
}

impl Logins {
    /// Reads the topic to its end and follows it until `stop` (blocking until caught up).
    pub fn start(kafka: &KafkaSettings, topic: &str, stop: CancellationToken) -> Result<Self> {
        let book = Book::default();
        let applied = book.clone();
        let follower = stage::compacted::follow(
            kafka,
            topic,
            "vehicle logins",
            Duration::from_secs(10),
            stop,
            move |key, value, _| {
                let Some(vin) = std::str::from_utf8(key).ok().and_then(|k| Vin::new(k).ok()) else {
                    return;
                };
                let mut book = applied.write().unwrap_or_else(|p| p.into_inner());
                let frame = value
                    .and_then(|v| serde_json::from_slice::<EventMessage>(v).ok())
                    .and_then(|event| event_frame(&event));
                match frame {
                    Some(frame) => book.insert(vin, Arc::new(frame)),
                    None => book.remove(&vin),
                };
            },
        )?;
        Ok(Logins { book, follower })
    }

    /// The latest login of `vin` known here.
    pub fn get(&self, vin: &Vin) -> Option<Arc<Vec<u8>>> {
        let book = self.book.read().unwrap_or_else(|p| p.into_inner());
        book.get(vin).cloned()
    }

    /// How many vehicles have a login.
    pub fn len(&self) -> usize {
        self.book.read().map(|b| b.len()).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads every login written so far (at most `timeout`).
    pub async fn sync(&self, timeout: Duration) -> bool {
        self.follower.sync(timeout).await
    }
}

/// A login for a vehicle whose own is unknown (see the module docs), in its data's edition.
pub fn made_login(vin: Vin, edition: Edition, time: TerminalTime) -> Option<Vec<u8>> {
    let codes = match edition {
        Edition::V2016 => LoginCodes::Subsystems {
            code_len: 0,
            codes: Vec::new(),
        },
        _ => LoginCodes::Bms(Vec::new()),
    };
    let payload = Payload::Login(Login {
        time,
        login_seq: 1,
        iccid: "0".repeat(20),
        codes,
    });
    let frame = schemas::payload::request_frame_in(edition, vin, &payload, None, &[0; 16]).ok()?;
    Some(frame.raw.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_made_login_is_a_login_of_that_vehicle_at_that_time() {
        let vin = Vin::new("LWPT0000000000042").unwrap();
        let time = TerminalTime::from_bytes([26, 12, 2, 8, 0, 0]).unwrap();
        for edition in [Edition::V2016, Edition::V2025] {
            let bytes = made_login(vin, edition, time).unwrap();
            let header = schemas::Frame::check(&bytes).unwrap();
            assert_eq!((header.vin, header.edition), (vin, edition));
            let data = &bytes[schemas::frame::HEADER_LEN..bytes.len() - 1];
            let payload =
                Payload::decode(edition, header.command, data, schemas::Profile::Standard).unwrap();
            let Payload::Login(login) = payload else {
                panic!("not a login: {payload:?}")
            };
            assert_eq!((login.time, login.login_seq), (time, 1));
        }
    }
}
