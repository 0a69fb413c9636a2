//! JSON views of a decoded frame, what `chargewatch decode` prints: the frame's header, then
//! either the record view of a report ([`crate::record::TelemetryRecord`], flat, the same in
//! both editions) or the wire view (every item in wire order, with its type and name, as
//! GBT32960-2025.md §8 decodes them); other commands print their data unit's fields.
//!
//! Secrets never appear: a platform login's password and an exchanged key are shown by length
//! only.

use serde_json::{Map, Value as Json, json};

use crate::crypto::{Cipher, KeyStore, Profile};
use crate::error::Result;
use crate::fields::Value;
use crate::frame::{Edition, Flag, Frame, HEADER_LEN};
use crate::items2016::{StorageTemperature, StorageVoltage};
use crate::payload::{LoginCodes, Payload, open_lenient, open_reply};
use crate::realtime::{InfoItem, Realtime};
use crate::record::{FrameId, ReportMeta, TelemetryRecord};
use crate::sign::{SignatureBlock, SignatureStatus};

/// Which view of a report to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReportView {
    /// The flat record, named as the telemetry columns are.
    #[default]
    Record,
    /// Every item in wire order.
    Items,
}

/// How [`decode_frame`] reads frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecodeOptions {
    /// The profile of VINs the key file does not list (or of every VIN without one).
    pub default_profile: Profile,
    pub view: ReportView,
    /// Stamped as `received_time_us` in the record view.
    pub received_time_us: i64,
}

fn to_json<T: serde::Serialize>(value: &T) -> Json {
    serde_json::to_value(value).unwrap_or(Json::Null)
}

fn object(value: Json) -> Map<String, Json> {
    match value {
        Json::Object(map) => map,
        _ => Map::new(),
    }
}

fn with_type(code: u8, name: &str, fields: Json) -> Json {
    let mut out = Map::new();
    out.insert("type".into(), json!(code));
    out.insert("name".into(), json!(name));
    out.extend(object(fields));
    Json::Object(out)
}

/// The signature block's fields.
pub fn signature_json(block: &SignatureBlock) -> Json {
    json!({
        "algo": block.algorithm,
        "r_len": block.r.len(),
        "r_hex": hex::encode_upper(&block.r),
        "s_len": block.s.len(),
        "s_hex": hex::encode_upper(&block.s),
    })
}

fn gear_json(raw: Value<i64>) -> Json {
    let raw = raw.valid().unwrap_or(0);
    json!({
        "raw": raw,
        "valid": raw & 0x80 == 0,
        "drive_force": raw & 0x20 != 0,
        "brake_force": raw & 0x10 != 0,
        "position": raw & 0x0F,
    })
}

fn list_json<T>(count: Value<i64>, key: &str, entries: &[T], each: impl Fn(&T) -> Json) -> Json {
    let mut out = Map::new();
    out.insert("count".into(), to_json(&count));
    out.insert(key.into(), entries.iter().map(each).collect());
    Json::Object(out)
}

fn subsystem_json(s: &StorageVoltage) -> Json {
    to_json(s)
}

fn temperature_json(s: &StorageTemperature) -> Json {
    to_json(s)
}

/// One item in the wire view.
pub fn item_json(item: &InfoItem) -> Json {
    let code = item.type_code();
    match item {
        InfoItem::Vehicle(v) => with_type(code, "vehicle", to_json(v)),
        InfoItem::DriveMotors(m) => with_type(
            code,
            "motors",
            json!({"count": m.len(), "motors": to_json(m)}),
        ),
        InfoItem::FuelCell(f) => with_type(code, "fuel_cell", to_json(f)),
        InfoItem::Engine(e) => with_type(code, "engine", to_json(e)),
        InfoItem::Position(p) => with_type(code, "position", to_json(p)),
        InfoItem::Extremes(e) => with_type(code, "extremes", to_json(e)),
        InfoItem::Alarms(a) => with_type(code, "alarms", to_json(a)),
        InfoItem::StorageVoltages(s) => with_type(
            code,
            "storage_voltages",
            json!({"count": s.len(), "subsystems": s.iter().map(subsystem_json).collect::<Vec<_>>()}),
        ),
        InfoItem::StorageTemperatures(s) => with_type(
            code,
            "storage_temperatures",
            json!({"count": s.len(), "subsystems": s.iter().map(temperature_json).collect::<Vec<_>>()}),
        ),
        InfoItem::Vehicle2025(v) => {
            let mut fields = object(to_json(v));
            fields.insert("gear".into(), gear_json(v.gear));
            with_type(code, "vehicle", Json::Object(fields))
        }
        InfoItem::Motors2025(m) => with_type(
            code,
            "motors",
            list_json(m.count, "motors", &m.entries, |m| {
                json!({
                    "seq": to_json(&m.motor_seq),
                    "state": to_json(&m.motor_state),
                    "controller_temp_c": to_json(&m.controller_temp_c),
                    "rpm": to_json(&m.motor_rpm),
                    "torque_nm": to_json(&m.motor_torque_nm),
                    "motor_temp_c": to_json(&m.motor_temp_c),
                })
            }),
        ),
        InfoItem::FuelCell2025(f) => with_type(code, "fuel_cell", to_json(f)),
        InfoItem::Engine2025(e) => with_type(code, "engine", to_json(e)),
        InfoItem::Position2025(p) => {
            let status = p.position_status.valid().unwrap_or(0);
            with_type(
                code,
                "position",
                json!({
                    "status": status,
                    "fix_valid": status & 1 == 0,
                    "south": status & 2 != 0,
                    "west": status & 4 != 0,
                    "coord_system": to_json(&p.coord_system),
                    "longitude_deg": to_json(&p.longitude_deg),
                    "latitude_deg": to_json(&p.latitude_deg),
                }),
            )
        }
        InfoItem::Alarm2025(a) => {
            let flags = a.general_flags.valid().unwrap_or(0);
            let mut fields = Map::new();
            fields.insert("max_level".into(), to_json(&a.max_level));
            fields.insert("flags".into(), json!(flags));
            let bits: Vec<u32> = (0..32).filter(|b| flags & (1 << b) != 0).collect();
            fields.insert("flag_bits".into(), json!(bits));
            for (name, list) in ["storage", "motor", "engine", "other"]
                .iter()
                .zip(a.lists())
            {
                fields.insert(format!("{name}_count"), to_json(&list.count));
                fields.insert(format!("{name}_faults"), json!(list.entries));
            }
            fields.insert("general_count".into(), to_json(&a.general_levels.count));
            fields.insert("general_levels".into(), to_json(&a.general_levels.entries));
            with_type(code, "alarm", Json::Object(fields))
        }
        InfoItem::CellVoltages2025(packs) => with_type(
            code,
            "cell_voltages",
            list_json(packs.count, "packs", &packs.entries, |p| {
                json!({
                    "pack_no": to_json(&p.head.pack_no),
                    "voltage_v": to_json(&p.head.voltage_v),
                    "current_a": to_json(&p.head.current_a),
                    "cell_count": to_json(&p.cell_count),
                    "cells_v": to_json(&p.cells_v),
                })
            }),
        ),
        InfoItem::Temperatures2025(packs) => with_type(
            code,
            "temperatures",
            list_json(packs.count, "packs", &packs.entries, |p| {
                json!({
                    "pack_no": to_json(&p.pack_no),
                    "probe_count": to_json(&p.probe_count),
                    "temps_c": to_json(&p.temps_c),
                })
            }),
        ),
        InfoItem::FcStacks(stacks) => with_type(
            code,
            "fc_stacks",
            list_json(stacks.count, "stacks", &stacks.entries, |s| {
                json!({
                    "seq": to_json(&s.head.stack_seq),
                    "voltage_v": to_json(&s.head.stack_voltage_v),
                    "current_a": to_json(&s.head.stack_current_a),
                    "h2_inlet_pressure_kpa": to_json(&s.head.h2_inlet_pressure_kpa),
                    "air_inlet_pressure_kpa": to_json(&s.head.air_inlet_pressure_kpa),
                    "air_inlet_temp_c": to_json(&s.head.air_inlet_temp_c),
                    "probe_count": to_json(&s.probe_count),
                    "coolant_outlet_temps_c": to_json(&s.coolant_outlet_temps_c),
                })
            }),
        ),
        InfoItem::Supercap(s) => with_type(
            code,
            "supercap",
            json!({
                "system_no": to_json(&s.head.supercap_system_no),
                "total_voltage_v": to_json(&s.head.supercap_voltage_v),
                "total_current_a": to_json(&s.head.supercap_current_a),
                "cell_count": to_json(&s.cell_count),
                "cells_v": to_json(&s.supercap_cells_v),
                "probe_count": to_json(&s.probe_count),
                "temps_c": to_json(&s.supercap_temps_c),
            }),
        ),
        InfoItem::SupercapExtremes(e) => {
            // The wire view names them without the column prefix.
            let fields = object(to_json(e))
                .into_iter()
                .map(|(k, v)| (k.trim_start_matches("supercap_").to_owned(), v))
                .collect();
            with_type(code, "supercap_extremes", Json::Object(fields))
        }
        InfoItem::Wpt(snapshot, extra) => {
            let mut fields = object(to_json(snapshot));
            if !extra.is_empty() {
                fields.insert("extension_len".into(), json!(extra.len()));
            }
            with_type(code, "wpt", Json::Object(fields))
        }
        InfoItem::Vendor { data, .. } => with_type(
            code,
            "vendor",
            json!({"length": data.len(), "raw_hex": hex::encode_upper(data)}),
        ),
        InfoItem::Signature(block) => with_type(code, "signature", signature_json(block)),
        InfoItem::Unparsed { rest, .. } => {
            with_type(code, "unknown", json!({"raw_hex": hex::encode_upper(rest)}))
        }
    }
}

/// The wire view of a report: time, items, signature range and partial flag.
pub fn report_json(report: &Realtime) -> Map<String, Json> {
    let mut out = Map::new();
    out.insert("time".into(), json!(report.time.to_string()));
    out.insert("items".into(), report.items.iter().map(item_json).collect());
    if report.edition == Edition::V2025 {
        out.insert("signed_len".into(), json!(report.signed_len()));
        out.insert(
            "signature_missing".into(),
            json!(report.signature_missing()),
        );
        let after = report.items_after_signature();
        if after > 0 {
            out.insert("items_after_signature".into(), json!(after));
        }
    }
    if let Some(partial) = &report.partial {
        let mut p = Map::new();
        p.insert("unknown_type".into(), json!(partial.code));
        p.insert("offset".into(), json!(partial.offset));
        p.insert("reason".into(), json!(partial.reason.as_str()));
        if partial.signature_recovered {
            p.insert("signature_recovered".into(), json!(true));
        }
        out.insert("partial".into(), Json::Object(p));
    }
    out
}

/// The fields of a non-report data unit.
pub fn payload_json(payload: &Payload) -> Map<String, Json> {
    let mut out = Map::new();
    if let Some(time) = payload.time() {
        out.insert("time".into(), json!(time.to_string()));
    }
    match payload {
        Payload::Login(login) => {
            out.insert("login_seq".into(), json!(login.login_seq));
            out.insert("iccid".into(), json!(login.iccid));
            match &login.codes {
                LoginCodes::Subsystems { codes, .. } => {
                    out.insert("subsystems".into(), json!(codes));
                }
                LoginCodes::Bms(bms) => {
                    out.insert("bms_count".into(), json!(bms.len()));
                    let packs: Vec<usize> = bms.iter().map(Vec::len).collect();
                    out.insert("packs_per_bms".into(), json!(packs));
                    out.insert("pack_codes".into(), json!(bms));
                }
            }
        }
        Payload::Logout(l) | Payload::PlatformLogout(l) => {
            out.insert("seq".into(), json!(l.logout_seq));
        }
        Payload::PlatformLogin(p) => {
            out.insert("seq".into(), json!(p.login_seq));
            out.insert("username".into(), json!(p.username));
            out.insert(
                "password".into(),
                json!(format!("<redacted, {} characters>", p.password.0.len())),
            );
            out.insert("encryption_rule".into(), json!(p.encryption_rule));
        }
        Payload::Activation(a) => {
            out.insert("chip_id".into(), json!(a.chip_id));
            out.insert("pubkey_len".into(), json!(a.public_key.len()));
            out.insert("pubkey_hex".into(), json!(hex::encode_upper(&a.public_key)));
            out.insert("activation_vin".into(), json!(a.vin));
            out.insert("signed_len".into(), json!(a.signed_len()));
            out.insert("signature".into(), signature_json(&a.signature));
        }
        Payload::ActivationReply(r) => {
            out.insert("status".into(), json!(r.status));
            out.insert("info".into(), json!(r.info));
        }
        Payload::KeyExchange(k) => {
            out.insert("key_type".into(), json!(k.key_type));
            out.insert("key_len".into(), json!(k.key.0.len()));
            out.insert("key".into(), json!("<redacted>"));
            out.insert("valid_from".into(), json!(k.valid_from.to_string()));
            out.insert("valid_to".into(), json!(k.valid_to.to_string()));
        }
        Payload::Realtime(r) | Payload::Reissue(r) => out.extend(report_json(r)),
        Payload::Heartbeat | Payload::TimeCalibration => {}
    }
    out
}

/// The header fields every decoded frame starts with.
fn header_json(frame: &Frame) -> Map<String, Json> {
    let h = &frame.header;
    let mut out = Map::new();
    out.insert("edition".into(), json!(h.edition.year()));
    out.insert("command".into(), json!(h.command.code()));
    out.insert("command_name".into(), json!(h.command.name()));
    out.insert("flag".into(), json!(h.flag.code()));
    out.insert("vin".into(), json!(h.vin.to_string()));
    out.insert("enc".into(), json!(h.encryption.code()));
    if let Ok(cipher) = Cipher::from_encryption(h.encryption) {
        out.insert("cipher".into(), json!(cipher.name()));
    }
    out.insert(
        "data_unit_len".into(),
        json!(frame.raw.len() - HEADER_LEN - 1),
    );
    out.insert("check_code".into(), json!(frame.raw[frame.raw.len() - 1]));
    out
}

/// Opens and decodes any frame: a request (a VIN in `keys` opens with its key and profile, an
/// unencrypted frame of any VIN opens with the default profile) or a platform reply (opened
/// with the VIN's key when `keys` has it). A 2025 report's signature is checked when `keys`
/// registers a public key for the VIN; one that does not verify shows as `"failed"` (it is
/// not an error here: `decode` inspects, ingest refuses).
pub fn decode_frame(
    frame: &Frame,
    keys: Option<&KeyStore>,
    options: DecodeOptions,
) -> Result<Json> {
    let header = &frame.header;
    let mut out = header_json(frame);
    let mut scratch = Vec::new();
    if header.flag != Flag::Command {
        let key = keys.and_then(|k| k.get(&header.vin).ok());
        let reply = open_reply(frame, key.map(|k| &**k), &mut scratch)?;
        if let Some(time) = reply.time {
            out.insert("time".into(), json!(time.to_string()));
        }
        if !reply.rest.is_empty() {
            out.insert("rest_hex".into(), json!(hex::encode_upper(&reply.rest)));
        }
        return Ok(Json::Object(out));
    }
    let opened = open_lenient(frame, keys, options.default_profile, &mut scratch)?;
    let report = match &opened.payload {
        Payload::Realtime(r) | Payload::Reissue(r) => r,
        other => {
            out.extend(payload_json(other));
            return Ok(Json::Object(out));
        }
    };
    let public_key = keys
        .and_then(|k| k.registration(&header.vin))
        .and_then(|r| r.public_key.as_deref());
    let signature = match report.check_signature(&scratch, public_key) {
        Ok(status) => status,
        Err(_) => Some(SignatureStatus::Failed),
    };
    match options.view {
        ReportView::Record => {
            let meta = ReportMeta {
                header: *header,
                cipher: opened.cipher,
                profile: opened.profile,
                signature,
                received_time_us: options.received_time_us,
            };
            out.extend(object(to_json(&TelemetryRecord::new(&meta, report))));
        }
        ReportView::Items => {
            let id = FrameId::of_report(&header.vin, header.command, report);
            out.insert("frame_id".into(), json!(id.to_string()));
            out.insert("profile".into(), json!(opened.profile.name()));
            if let Some(status) = signature {
                out.insert("signature".into(), json!(status.name()));
            }
            out.extend(report_json(report));
        }
    }
    Ok(Json::Object(out))
}
