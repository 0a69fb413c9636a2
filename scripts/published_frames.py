"""Frames other GB/T 32960 implementations published from real vehicles, with an independent
parser's reading of them: the reference for tests/e2e/published.rs.

The frames come from the installed `rtm_con` package's own documentation (its PyPI long
description shows a captured frame and rtm_con's parse of it); nothing is copied into this
repository. Each frame is parsed with rtm_con and its reading normalised to chargewatch's wire
view names (GBT32960-2025.md section 8): one JSON object per frame on stdout,
{"source", "hex", "expect"}.

Usage: python3 scripts/published_frames.py
"""

import datetime
import importlib.metadata
import json
import re
import sys


def num(text):
    """The number at the front of rtm_con's "713.8 V"-style strings."""
    if isinstance(text, (int, float)):
        return text
    return float(str(text).split()[0])


def vehicle(c):
    return {
        "speed_kmh": num(c["vehicle_speed"]),
        "odometer_km": num(c["mileage_total"]),
        "total_voltage_v": num(c["voltage_total"]),
        "total_current_a": num(c["current_total"]),
        "soc_pct": num(c["soc"]),
        "insulation_kohm": num(c["insulation_resistance"]),
        "gear": {
            "valid": c["gear_state"]["gear_postion_validity"] == "valid",
            "drive_force": bool(c["gear_state"]["driving_force"]),
            "brake_force": bool(c["gear_state"]["braking_force"]),
        },
    }


def motors(c):
    return {
        "count": len(c),
        "motors": [
            {
                "seq": m["index"],
                "controller_temp_c": num(m["ctrl_temp"]),
                "rpm": num(m["speed"]),
                "torque_nm": num(m["torque"]),
                "motor_temp_c": num(m["temp"]),
            }
            for m in c
        ],
    }


def position(c):
    # rtm_con reads the status bits from the most significant end, so they are not compared.
    gcs = {"wgs84": 1, "gcj02": 2, "other": 3}
    out = {"longitude_deg": num(c["gnss_lng"]), "latitude_deg": num(c["gnss_lat"])}
    if c.get("gnss_gcs") in gcs:
        out["coord_system"] = gcs[c["gnss_gcs"]]
    return out


def alarm(c):
    codes = lambda key: [int(code, 16) for code in c[key]]
    return {
        "max_level": num(c["max_warning_level"]),
        "storage_faults": codes("pack_failures"),
        "motor_faults": codes("emotor_failures"),
        "engine_faults": codes("engine_failures"),
        "other_faults": codes("other_failures"),
    }


def cells(c):
    return {
        "count": len(c),
        "packs": [
            {
                "pack_no": int(p["index"]),
                "voltage_v": num(p["volt"]),
                "current_a": num(p["curr"]),
                "cells_v": [num(v) for v in p["cell_volts"]],
            }
            for p in c
        ],
    }


def temperatures(c):
    return {
        "count": len(c),
        "packs": [
            {"pack_no": int(p["index"]), "temps_c": [num(t) for t in p["probe_temps"]]}
            for p in c
        ],
    }


ITEMS_2025 = {
    "whole_vehicle": (1, "vehicle", vehicle),
    "emotor": (2, "motors", motors),
    "gnss": (5, "position", position),
    "warnings": (6, "alarm", alarm),
    "cell_volts": (7, "cell_voltages", cells),
    "probe_temps": (8, "temperatures", temperatures),
}


def normalise(parsed):
    edition = {"protocol_2025": 2025, "protocol_2016": 2016}[parsed["starter"]]
    payload = parsed["payload"]
    # rtm_con gives the collection time in UTC; the wire and our view carry Beijing time.
    local = payload["timestamp"] + datetime.timedelta(hours=8)
    out = {
        "edition": edition,
        "vin": parsed["vin"],
        "time": local.strftime("%Y-%m-%dT%H:%M:%S+08:00"),
        "items": [],
    }
    for item in payload["data_list"]:
        kind, content = item["data_type"], item["data_content"]
        if isinstance(kind, int):
            # Vendor data rtm_con keeps raw, as we do.
            out["items"].append({"type": kind, "name": "vendor", "raw_hex": content.upper()})
            continue
        if edition != 2025 or kind not in ITEMS_2025:
            raise SystemExit(f"no normalisation for rtm_con item {kind!r} in {edition}")
        code, name, convert = ITEMS_2025[kind]
        out["items"].append({"type": code, "name": name, **convert(content)})
    sig = payload.get("sig")
    if sig:
        algo = {"sm2": 1, "rsa": 2, "ecc": 3}[sig["algo"]]
        out["items"].append(
            {
                "type": 255,
                "name": "signature",
                "algo": algo,
                "r_hex": sig["r_value"].upper(),
                "s_hex": sig["s_value"].upper(),
            }
        )
    return out


def main():
    from rtm_con import con_to_pyobj, msg

    version = importlib.metadata.version("rtm_con")
    text = importlib.metadata.metadata("rtm_con").get_payload() or ""
    seen = set()
    for found in re.findall(r"(?:2323|2424)[0-9A-Fa-f]{40,}", text):
        frame = found.upper()
        if frame in seen:
            continue
        seen.add(frame)
        parsed = con_to_pyobj(msg.fromhex(frame))
        record = {
            "source": f"rtm_con {version} (PyPI), long description",
            "hex": frame,
            "expect": normalise(parsed),
        }
        print(json.dumps(record))
    if not seen:
        sys.exit("no frames found in the rtm_con package's description")


if __name__ == "__main__":
    main()
