//! Both editions at the front door: 2025 terminals (signed, SM4, 2025 reply flags), OEM vendor
//! data that is kept rather than refused, lower platforms logging in with many vehicles, and
//! activations that every replica sees. On librdkafka's mock cluster.

use std::time::Duration;

use crate::support::{
    Client, MockSetup, Record, consume, ingest_config, mock_setup, mock_setup_with, start_ingest,
};
use ingest::config::PlatformConfig;
use schemas::message::{DeadLetter, headers};
use schemas::payload::{
    Activation, ActivationReply, Payload, PlatformLogin, Secret, open_reply, request_frame_in,
};
use schemas::realtime::{InfoItem, Realtime};
use schemas::sign::Sm2Signer;
use schemas::{
    Cipher, Command, Edition, Flag, Frame, Profile, TerminalKey, TerminalTime, Vin, sample,
};
use simulator::{self, sim_signer};

fn time(s: u32) -> TerminalTime {
    TerminalTime::from_utc_micros(1_795_436_130_000_000 + i64::from(s) * 1_000_000)
}

fn frame(edition: Edition, vin: Vin, payload: &Payload, key: Option<&TerminalKey>) -> Frame {
    request_frame_in(edition, vin, payload, key, &rand::random()).unwrap()
}

fn signed_2025(s: u32, signer: &Sm2Signer) -> Payload {
    let Payload::Realtime(mut report) =
        sample::wpt_report_in(Edition::V2025, time(s), "ST-2025", s)
    else {
        unreachable!()
    };
    report.sign(|bytes| signer.sign(bytes));
    Payload::Realtime(report)
}

fn reasons(letters: &[Record]) -> Vec<String> {
    letters
        .iter()
        .map(|r| {
            let pairs = r.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()));
            DeadLetter::from_pairs(pairs)
                .unwrap()
                .reason
                .as_str()
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2025_terminal_signs_uses_sm4_and_gets_2025_replies() {
    let MockSetup {
        cluster,
        topics,
        keys,
        server,
        ..
    } = mock_setup(2, Cipher::Sm4Cbc, |_| {}).await;
    let bootstrap = cluster.bootstrap_servers();
    let fleet = simulator::terminals_of(&keys, 2);
    let (vin, key) = (fleet[0].0, fleet[0].1.clone());
    let signer = sim_signer(&vin);
    let mut a = Client::connect(server.listen_addr).await;

    let login = a
        .ask(&frame(
            Edition::V2025,
            vin,
            &sample::login_2025(time(0), 1),
            Some(&key),
        ))
        .await;
    assert_eq!(&login.raw[..2], b"$$", "a 2025 request gets a 2025 reply");
    assert_eq!(login.header.flag, Flag::Success);

    // Signed with the key the key file registers: success, the time echoed.
    let good = signed_2025(1, &signer);
    let reply = a.ask(&frame(Edition::V2025, vin, &good, Some(&key))).await;
    assert_eq!(
        (reply.header.edition, reply.header.flag),
        (Edition::V2025, Flag::Success)
    );
    let opened = open_reply(&reply, Some(&key), &mut Vec::new()).unwrap();
    assert_eq!(opened.time, Some(time(1)));
    assert!(opened.rest.is_empty(), "2025 replies carry the time only");

    // Signed by another key: 0x05, dead-lettered.
    let forged = signed_2025(2, &Sm2Signer::from_seed(b"someone else"));
    let reply = a
        .ask(&frame(Edition::V2025, vin, &forged, Some(&key)))
        .await;
    assert_eq!(reply.header.flag, Flag::SignatureFailed);

    // Unsigned: accepted and flagged.
    let unsigned = sample::wpt_report_in(Edition::V2025, time(3), "ST-2025", 3);
    let reply = a
        .ask(&frame(Edition::V2025, vin, &unsigned, Some(&key)))
        .await;
    assert_eq!(reply.header.flag, Flag::Success);

    // A standard type cut short inside an SM4 data unit: unreadable with this key, 0x07.
    let mut plain = time(4).bytes().to_vec();
    plain.extend_from_slice(&[0x05, 0x00, 0x01]);
    let mut sealed = Vec::new();
    key.seal(&plain, &[9; 16], &mut sealed);
    let header = schemas::Header {
        edition: Edition::V2025,
        command: Command::Realtime,
        flag: Flag::Command,
        vin,
        encryption: schemas::Encryption::Sm4Cbc,
    };
    let truncated = Frame::new(header, &sealed).unwrap();
    let reply = a.ask(&truncated).await;
    assert_eq!(
        reply.header.flag,
        Flag::DecryptionFailed,
        "sealed and unreadable: 0x07"
    );

    // The same terminal's 2016 frame is answered in 2016, where 0x05..=0x07 do not exist.
    let report_2016 = sample::wpt_report(time(5), "ST-2016", 5);
    let reply = a
        .ask(&frame(Edition::V2016, vin, &report_2016, Some(&key)))
        .await;
    assert_eq!(
        (&reply.raw[..2], reply.header.flag),
        (&b"##"[..], Flag::Success)
    );

    // An unknown VIN gets 0x04 in 2025.
    let stranger = Vin::new("LWPTSTRANGER02025").unwrap();
    let mut b = Client::connect(server.listen_addr).await;
    let reply = b
        .ask(&frame(
            Edition::V2025,
            stranger,
            &sample::login_2025(time(0), 1),
            None,
        ))
        .await;
    assert_eq!(reply.header.flag, Flag::VinUnknown);

    let telemetry = consume(&bootstrap, &topics.telemetry, 3, Duration::from_secs(20));
    assert_eq!(telemetry.len(), 3, "signed, unsigned, and the 2016 report");
    let signature = |r: &Record| r.header(headers::SIGNATURE);
    assert_eq!(signature(&telemetry[0]).as_deref(), Some("verified"));
    assert_eq!(signature(&telemetry[1]).as_deref(), Some("missing"));
    assert_eq!(signature(&telemetry[2]), None, "2016 has no signatures");
    assert_eq!(
        telemetry[0].header(headers::EDITION).as_deref(),
        Some("2025")
    );
    assert_eq!(
        telemetry[2].header(headers::EDITION).as_deref(),
        Some("2016")
    );
    assert_eq!(
        telemetry[0].header(headers::PROFILE).as_deref(),
        Some("wpt")
    );
    // The message keeps the terminal's plaintext data unit byte for byte: the signature
    // verifies again downstream.
    let (_, stored) =
        schemas::message::read_telemetry_value(&telemetry[0].value, Profile::Wpt).unwrap();
    let data = &telemetry[0].value[schemas::frame::HEADER_LEN..telemetry[0].value.len() - 1];
    let mut sent = Vec::new();
    good.encode(&mut sent);
    assert_eq!(data, &sent[..]);
    let public = signer.public_key();
    assert_eq!(
        stored.check_signature(data, Some(&public)).unwrap(),
        Some(schemas::SignatureStatus::Verified)
    );

    let letters = consume(&bootstrap, &topics.deadletter, 3, Duration::from_secs(20));
    let reasons = reasons(&letters);
    for expected in ["signature_failed", "decrypt_failed", "unknown_vin"] {
        assert!(
            reasons.iter().any(|r| r == expected),
            "{expected} in {reasons:?}"
        );
    }
    server.role.shutdown();
    server.role.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oem_vendor_data_is_kept_and_the_report_accepted() {
    // A standard (not WPT) vehicle.
    let MockSetup {
        cluster,
        topics,
        server,
        ..
    } = mock_setup_with(
        "[[terminal]]\nvin = \"LOEMTEST000000001\"\ncipher = \"none\"\n",
        |_| {},
    )
    .await;
    let bootstrap = cluster.bootstrap_servers();
    let vin = Vin::new("LOEMTEST000000001").unwrap();
    let mut a = Client::connect(server.listen_addr).await;
    let reply = a
        .ask(&frame(
            Edition::V2016,
            vin,
            &sample::login(time(0), 1),
            None,
        ))
        .await;
    assert_eq!(reply.header.flag, Flag::Success);
    let vehicle = InfoItem::Vehicle(sample::vehicle(60));
    let reports = [
        // A 48-byte OEM block in 0x80, then more standard data.
        vec![
            vehicle.clone(),
            InfoItem::Vendor {
                code: 0x80,
                data: vec![0x11; 48],
            },
            InfoItem::Position(schemas::realtime::Position {
                position_status: schemas::Value::Valid(0),
                longitude_deg: schemas::Value::Valid(116.4),
                latitude_deg: schemas::Value::Valid(39.9),
            }),
        ],
        // A vendor type without a length at the end (its "length" runs past the end).
        vec![
            vehicle.clone(),
            InfoItem::Unparsed {
                code: 0x81,
                rest: vec![0x01, 0x02, 0x03],
            },
        ],
    ];
    for (i, items) in reports.into_iter().enumerate() {
        let report = Payload::Realtime(Realtime {
            edition: Edition::V2016,
            time: time(1 + i as u32),
            items,
            partial: None,
        });
        let reply = a.ask(&frame(Edition::V2016, vin, &report, None)).await;
        assert_eq!(reply.header.flag, Flag::Success, "report {i} accepted");
    }
    // In 2025 a standard type cut short is a structure error (0x06), not a partial report.
    let mut plain = time(3).bytes().to_vec();
    plain.extend_from_slice(&[0x05, 0x00, 0x01]);
    let header = schemas::Header {
        edition: Edition::V2025,
        command: Command::Realtime,
        flag: Flag::Command,
        vin,
        encryption: schemas::Encryption::None,
    };
    let reply = a.ask(&Frame::new(header, &plain).unwrap()).await;
    assert_eq!(reply.header.flag, Flag::StructureError);
    let telemetry = consume(&bootstrap, &topics.telemetry, 2, Duration::from_secs(20));
    let messages: Vec<schemas::arrow::Message> = telemetry
        .iter()
        .map(|r| schemas::arrow::Message {
            profile: Profile::Standard,
            ..schemas::arrow::Message::wpt(&r.value, 0)
        })
        .collect();
    let decoded = schemas::arrow::TelemetryDecoder::new()
        .decode(&messages)
        .unwrap();
    assert!(decoded.rejected.is_empty());
    let batch = decoded.batch;
    use arrow_array::cast::AsArray;
    let soc = batch
        .column_by_name("soc_pct")
        .unwrap()
        .as_primitive::<arrow_array::types::UInt8Type>();
    assert_eq!(
        (soc.value(0), soc.value(1)),
        (60, 60),
        "the vehicle data of both is kept"
    );
    let partial = batch.column_by_name("partial").unwrap().as_boolean();
    assert!(!partial.value(0) && partial.value(1));
    let lat = batch.column_by_name("latitude_deg").unwrap();
    assert!(
        !arrow_array::Array::is_null(lat.as_ref(), 0),
        "the item after the OEM block"
    );
    server.role.shutdown();
    server.role.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lower_platform_logs_in_and_relays_many_vehicles() {
    let MockSetup {
        cluster,
        topics,
        server,
        ..
    } = mock_setup(1, Cipher::None, |config| {
        config.platforms = vec![PlatformConfig {
            id: "LWPT2025PLATFORM1".into(),
            username: "lwpt-ingest".into(),
            password: Secret("S3cret-2025-lwpt".into()),
            cipher: "none".into(),
            key: Secret(String::new()),
        }];
    })
    .await;
    let bootstrap = cluster.bootstrap_servers();
    let platform = Vin::new("LWPT2025PLATFORM1").unwrap();
    let login = |password: &str, seq: u16| {
        Payload::PlatformLogin(PlatformLogin {
            time: time(0),
            login_seq: seq,
            username: "lwpt-ingest".into(),
            password: Secret(password.into()),
            encryption_rule: 0x01,
        })
    };
    // Vehicles not in the key file, of both editions.
    let cars = [
        (Vin::new("LPLATCAR000002016").unwrap(), Edition::V2016),
        (Vin::new("LPLATCAR000002025").unwrap(), Edition::V2025),
    ];
    let mut p = Client::connect(server.listen_addr).await;
    // Before the platform logs in, the connection is a terminal's: an unregistered VIN.
    let early = p
        .ask(&frame(
            Edition::V2025,
            cars[1].0,
            &sample::wpt_report_in(Edition::V2025, time(1), "ST-P", 1),
            None,
        ))
        .await;
    assert_eq!(
        early.header.flag,
        Flag::VinUnknown,
        "nothing before a login"
    );
    let wrong = p
        .ask(&frame(Edition::V2025, platform, &login("guess", 1), None))
        .await;
    assert_eq!(
        (wrong.header.command, wrong.header.flag),
        (Command::PlatformLogin, Flag::Error)
    );
    let ok = p
        .ask(&frame(
            Edition::V2025,
            platform,
            &login("S3cret-2025-lwpt", 2),
            None,
        ))
        .await;
    assert_eq!(ok.header.flag, Flag::Success);
    // A vehicle's data before its own login is refused; after it, accepted.
    let report = |edition: Edition, s: u32| sample::wpt_report_in(edition, time(s), "ST-P", s);
    let before = p
        .ask(&frame(
            Edition::V2016,
            cars[0].0,
            &report(Edition::V2016, 2),
            None,
        ))
        .await;
    assert_eq!(before.header.flag, Flag::Error);
    for (vin, edition) in cars {
        let login = match edition {
            Edition::V2016 => sample::login(time(0), 1),
            Edition::V2025 => sample::login_2025(time(0), 1),
        };
        assert_eq!(
            p.ask(&frame(edition, vin, &login, None)).await.header.flag,
            Flag::Success
        );
        for s in 3..5 {
            let reply = p.ask(&frame(edition, vin, &report(edition, s), None)).await;
            assert_eq!(reply.header.flag, Flag::Success, "{vin} report {s}");
        }
    }
    let logout = Payload::PlatformLogout(schemas::payload::Logout {
        time: time(9),
        logout_seq: 2,
    });
    assert_eq!(
        p.ask(&frame(Edition::V2025, platform, &logout, None))
            .await
            .header
            .flag,
        Flag::Success
    );
    let after = p
        .ask(&frame(
            Edition::V2025,
            cars[1].0,
            &report(Edition::V2025, 10),
            None,
        ))
        .await;
    assert_eq!(
        after.header.flag,
        Flag::VinUnknown,
        "the platform logged out: the connection is a terminal's again"
    );

    let telemetry = consume(&bootstrap, &topics.telemetry, 4, Duration::from_secs(20));
    assert_eq!(telemetry.len(), 4);
    assert!(
        telemetry
            .iter()
            .all(|r| r.header(headers::PLATFORM).as_deref() == Some("LWPT2025PLATFORM1"))
    );
    let letters = consume(&bootstrap, &topics.deadletter, 4, Duration::from_secs(20));
    let reasons = reasons(&letters);
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(reasons.contains(&"login_refused".to_owned()), "{reasons:?}");
    assert_eq!(
        reasons.iter().filter(|r| *r == "unknown_vin").count(),
        2,
        "{reasons:?}"
    );
    assert_eq!(
        reasons.iter().filter(|r| *r == "not_logged_in").count(),
        1,
        "{reasons:?}"
    );
    // The password is never written anywhere.
    for letter in &letters {
        for (_, value) in &letter.headers {
            assert!(!String::from_utf8_lossy(value).contains("guess"));
        }
    }
    server.role.shutdown();
    server.role.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activation_through_one_replica_verifies_on_another() {
    // Registered without public keys: the activation brings them.
    let MockSetup {
        cluster,
        topics,
        server: first,
        scratch,
        ..
    } = mock_setup_with(
        "[[terminal]]\nvin = \"LACTIVATE00000001\"\ncipher = \"none\"\nprofile = \"wpt\"\n\n\
         [[terminal]]\nvin = \"LACTIVATE00000002\"\ncipher = \"none\"\nprofile = \"wpt\"\n",
        |_| {},
    )
    .await;
    let bootstrap = cluster.bootstrap_servers();
    let second = start_ingest(
        &bootstrap,
        &topics,
        ingest_config(scratch.0.join("keys.toml")),
    )
    .await;
    let vin = Vin::new("LACTIVATE00000001").unwrap();
    let other = Vin::new("LACTIVATE00000002").unwrap();
    let signer = Sm2Signer::from_seed(b"chip of LACTIVATE00000001");
    let activation = |vin: Vin, chip: &str, signer: &Sm2Signer| {
        let mut a = Activation {
            time: time(0),
            chip_id: chip.into(),
            public_key: signer.public_point(),
            vin: vin.to_string(),
            signature: schemas::sign::SignatureBlock {
                algorithm: 1,
                r: vec![],
                s: vec![],
            },
        };
        let mut plain = Vec::new();
        Payload::Activation(a.clone()).encode(&mut plain);
        a.signature = signer.sign(&plain[..a.signed_len()]);
        Payload::Activation(a)
    };
    let answer = |reply: &Frame| {
        assert_eq!(
            (reply.header.command, reply.header.flag),
            (Command::ActivationReply, Flag::Command)
        );
        let opened =
            schemas::payload::open_with(reply, None, Profile::Standard, &mut Vec::new()).unwrap();
        match opened.payload {
            Payload::ActivationReply(r) => r,
            other => panic!("{other:?}"),
        }
    };
    let mut a = Client::connect(first.listen_addr).await;
    let reply = a
        .ask(&frame(
            Edition::V2025,
            vin,
            &activation(vin, "CHIP-0001", &signer),
            None,
        ))
        .await;
    assert_eq!(answer(&reply), ActivationReply { status: 1, info: 0 });
    // Forged: signed by another key than the one it carries.
    let mut forged = activation(vin, "CHIP-0001", &signer);
    if let Payload::Activation(f) = &mut forged {
        f.signature = Sm2Signer::from_seed(b"x").sign(b"y");
    }
    let reply = a.ask(&frame(Edition::V2025, vin, &forged, None)).await;
    assert_eq!(reply.header.flag, Flag::SignatureFailed);
    // The same chip for another VIN: refused, chip already activated.
    let mut b = Client::connect(first.listen_addr).await;
    let reply = b
        .ask(&frame(
            Edition::V2025,
            other,
            &activation(other, "CHIP-0001", &signer),
            None,
        ))
        .await;
    assert_eq!(answer(&reply), ActivationReply { status: 2, info: 1 });

    // A signed report through the other replica verifies with the activated key.
    let mut c = Client::connect(second.listen_addr).await;
    assert_eq!(
        c.ask(&frame(
            Edition::V2025,
            vin,
            &sample::login_2025(time(0), 1),
            None
        ))
        .await
        .header
        .flag,
        Flag::Success
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut s = 1;
    loop {
        let reply = c
            .ask(&frame(Edition::V2025, vin, &signed_2025(s, &signer), None))
            .await;
        assert_eq!(reply.header.flag, Flag::Success);
        s += 1;
        let telemetry = consume(
            &bootstrap,
            &topics.telemetry,
            s as usize - 1,
            Duration::from_secs(10),
        );
        if telemetry
            .last()
            .and_then(|r| r.header(headers::SIGNATURE))
            .as_deref()
            == Some("verified")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the second replica never saw the key"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let keys = consume(
        &bootstrap,
        &topics.terminal_keys,
        1,
        Duration::from_secs(10),
    );
    assert_eq!(keys.len(), 1, "one activation stored");
    assert_eq!(keys[0].key.as_deref(), Some(vin.trimmed()));
    for server in [first, second] {
        server.role.shutdown();
        server.role.wait().await.unwrap();
    }
}
