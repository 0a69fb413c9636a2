//! List columns: alarms (level, flags, fault-code lists, 2025's per-alarm levels), motors,
//! cells, probes, fuel-cell probes and stacks, supercapacitor cells and temperatures.
//!
//! Alarms are read from their raw bodies (every WPT report carries one); the other lists are
//! built from the same decoded items and record forms the JSON record uses, so both views
//! always agree. A row without the item gets a null list; a count of 0 an empty one.

use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_array::builder::{
    ArrayBuilder, Float64Builder, Int16Builder, Int32Builder, ListBuilder, StructBuilder,
    UInt8Builder, UInt16Builder, UInt32Builder,
};
use arrow_schema::{DataType, Field, Fields};

use super::field_type;
use crate::error::Result;
use crate::fields::{FieldSpec, Raw, Scalar, Value, classify};
use crate::frame::{Edition, read_be};
use crate::items2016::{StorageTemperature, StorageVoltage};
use crate::realtime::{DriveMotor, FcStackHead, InfoItem};
use crate::record::pack_as_subsystem;

/// The names of the four fault-code lists, in wire order.
pub const FAULT_LISTS: [&str; 4] = [
    "storage_fault_codes",
    "motor_fault_codes",
    "engine_fault_codes",
    "other_fault_codes",
];

fn fault_list_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::UInt32, false)))
}

fn struct_list(name: &str, fields: Fields) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new("item", DataType::Struct(fields), true))),
        true,
    )
}

fn level_fields() -> Fields {
    Fields::from(vec![
        Field::new("bit", DataType::UInt8, true),
        Field::new("level", DataType::UInt8, true),
    ])
}

fn catalogue_fields(specs: &[FieldSpec]) -> Vec<Field> {
    specs
        .iter()
        .map(|s| Field::new(s.name, field_type(&s.kind), true))
        .collect()
}

/// Alarm columns: level, flags, the four fault-code lists, and 2025's `(bit, level)` list.
pub fn alarm_fields() -> Vec<Field> {
    let mut fields = vec![
        Field::new("alarm_max_level", DataType::UInt8, true),
        Field::new("alarm_general_flags", DataType::UInt32, true),
    ];
    fields.extend(FAULT_LISTS.map(|name| Field::new(name, fault_list_type(), true)));
    fields.push(struct_list("alarm_general_levels", level_fields()));
    fields
}

fn motor_fields() -> Fields {
    Fields::from(catalogue_fields(DriveMotor::FIELDS))
}

/// `motors`: one struct per motor, 2016's names (2025 rows have no controller voltage or
/// current).
pub fn motors_field() -> Field {
    struct_list("motors", motor_fields())
}

fn cell_fields() -> Fields {
    Fields::from(vec![
        Field::new("pack_no", DataType::UInt8, true),
        Field::new("cell_no", DataType::UInt16, true),
        Field::new("voltage_v", DataType::Float64, true),
    ])
}

/// `cells`: every cell voltage, with its pack (2016: subsystem) and number in the pack.
pub fn cells_field() -> Field {
    struct_list("cells", cell_fields())
}

fn probe_fields() -> Fields {
    Fields::from(vec![
        Field::new("pack_no", DataType::UInt8, true),
        Field::new("probe_no", DataType::UInt16, true),
        Field::new("temp_c", DataType::Int16, true),
    ])
}

/// `probes`: every battery probe temperature, with its pack and number.
pub fn probes_field() -> Field {
    struct_list("probes", probe_fields())
}

fn stack_fields() -> Fields {
    let mut fields = catalogue_fields(FcStackHead::FIELDS);
    fields.push(values_field("coolant_outlet_temps_c", DataType::Int16));
    Fields::from(fields)
}

/// `fc_stacks` (2025 type 0x30): one struct per fuel-cell stack.
pub fn stacks_field() -> Field {
    struct_list("fc_stacks", stack_fields())
}

/// A list of plain values, null where the wire value is a sentinel.
pub fn values_field(name: &str, item: DataType) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new("item", item, true))),
        true,
    )
}

/// Alarm columns from raw alarm bodies (2016 type 0x07, 2025 type 0x06).
#[derive(Debug)]
pub struct AlarmColumns {
    level: UInt8Builder,
    flags: UInt32Builder,
    lists: Vec<ListBuilder<UInt32Builder>>,
    levels: ListBuilder<StructBuilder>,
}

impl AlarmColumns {
    pub fn new(rows: usize) -> Self {
        let item = Arc::new(Field::new("item", DataType::UInt32, false));
        AlarmColumns {
            level: UInt8Builder::with_capacity(rows),
            flags: UInt32Builder::with_capacity(rows),
            lists: (0..FAULT_LISTS.len())
                .map(|_| ListBuilder::new(UInt32Builder::new()).with_field(item.clone()))
                .collect(),
            levels: struct_builder(level_fields()),
        }
    }

    /// Appends one row; `body` was measured by the item walk, so reads are in bounds.
    pub fn push(&mut self, body: Option<(&[u8], Edition)>) {
        let Some((body, edition)) = body else {
            self.level.append_null();
            self.flags.append_null();
            self.lists.iter_mut().for_each(|l| l.append(false));
            self.levels.append(false);
            return;
        };
        match classify(u32::from(body[0]), 1) {
            Raw::Valid(v) => self.level.append_value(v as u8),
            _ => self.level.append_null(),
        }
        let flags = read_be(&body[1..], 4);
        // 2025's flags are a bit field without sentinels.
        match (edition, classify(flags, 4)) {
            (Edition::V2025, _) | (_, Raw::Valid(_)) => self.flags.append_value(flags),
            _ => self.flags.append_null(),
        }
        let count = |at: usize| {
            let n = usize::from(body[at]);
            match edition {
                Edition::V2025 if n >= 0xFE => 0,
                _ => n,
            }
        };
        let mut at = 5;
        for list in &mut self.lists {
            let n = count(at);
            for code in body[at + 1..at + 1 + 4 * n].chunks_exact(4) {
                list.values().append_value(read_be(code, 4));
            }
            list.append(true);
            at += 1 + 4 * n;
        }
        if edition == Edition::V2025 {
            let n = count(at);
            for pair in body[at + 1..at + 1 + 2 * n].chunks_exact(2) {
                let entry = self.levels.values();
                append_int(entry, 0, Value::Valid(i64::from(pair[0])));
                append_int(entry, 1, Value::Valid(i64::from(pair[1])));
                entry.append(true);
            }
            self.levels.append(true);
        } else {
            self.levels.append(false);
        }
    }

    /// The columns, in [`alarm_fields`] order.
    pub fn finish(mut self) -> Vec<ArrayRef> {
        let mut out: Vec<ArrayRef> =
            vec![Arc::new(self.level.finish()), Arc::new(self.flags.finish())];
        out.extend(
            self.lists
                .iter_mut()
                .map(|l| Arc::new(l.finish()) as ArrayRef),
        );
        out.push(Arc::new(self.levels.finish()));
        out
    }
}

fn struct_builder(fields: Fields) -> ListBuilder<StructBuilder> {
    let item = Field::new("item", DataType::Struct(fields.clone()), true);
    ListBuilder::new(StructBuilder::from_fields(fields, 0)).with_field(Arc::new(item))
}

/// Appends an integer to struct field `i`, whatever integer type the field has.
fn append_int(s: &mut StructBuilder, i: usize, v: Value<i64>) {
    let v = v.valid();
    macro_rules! put {
        ($builder:ty, $t:ty) => {
            if let Some(b) = s.field_builder::<$builder>(i) {
                b.append_option(v.and_then(|v| <$t>::try_from(v).ok()));
                return;
            }
        };
    }
    put!(UInt8Builder, u8);
    put!(UInt16Builder, u16);
    put!(Int16Builder, i16);
    put!(Int32Builder, i32);
    put!(UInt32Builder, u32);
    if let Some(b) = s.field_builder::<Float64Builder>(i) {
        b.append_option(v.map(|v| v as f64));
    }
}

fn append_float(s: &mut StructBuilder, i: usize, v: Value<f64>) {
    if let Some(b) = s.field_builder::<Float64Builder>(i) {
        b.append_option(v.valid());
    }
}

/// Appends a block's field by name (null when the block has no such field).
fn append_named(s: &mut StructBuilder, i: usize, value: Option<Scalar<'_>>) {
    match value {
        Some(Scalar::Int(v)) => append_int(s, i, v),
        Some(Scalar::Float(v)) => append_float(s, i, v),
        _ => append_int(s, i, Value::Invalid),
    }
}

fn append_values_int(list: &mut ListBuilder<Int16Builder>, values: Option<&[Value<i64>]>) {
    match values {
        Some(values) => {
            for v in values {
                list.values()
                    .append_option(v.valid().and_then(|v| i16::try_from(v).ok()));
            }
            list.append(true);
        }
        None => list.append(false),
    }
}

/// Appends one struct entry whose fields are `specs`, each value got by name.
fn push_struct<'a>(
    list: &mut ListBuilder<StructBuilder>,
    specs: &[FieldSpec],
    get: impl Fn(&str) -> Option<Scalar<'a>>,
) {
    let entry = list.values();
    for (i, spec) in specs.iter().enumerate() {
        append_named(entry, i, get(spec.name));
    }
    entry.append(true);
}

/// The list-bearing items of one row: edition, code and body of each (first of its kind).
#[derive(Debug, Clone, Copy, Default)]
pub struct ListItems<'a> {
    pub motors: Option<(Edition, u8, &'a [u8])>,
    pub cells: Option<(Edition, u8, &'a [u8])>,
    pub probes: Option<(Edition, u8, &'a [u8])>,
    /// 2016 type 0x03 (its probe temperatures).
    pub fuel_cell: Option<(Edition, u8, &'a [u8])>,
    pub stacks: Option<(Edition, u8, &'a [u8])>,
    pub supercap: Option<(Edition, u8, &'a [u8])>,
}

fn decode(item: Option<(Edition, u8, &[u8])>) -> Result<Option<InfoItem>> {
    let Some((edition, code, body)) = item else {
        return Ok(None);
    };
    Ok(Some(match edition {
        Edition::V2016 => crate::items2016::decode(code, body, false)?,
        Edition::V2025 => crate::items2025::decode(code, body, false)?,
    }))
}

/// The cell voltages of a row's cells item, in record form.
pub fn row_voltages(item: Option<(Edition, u8, &[u8])>) -> Result<Vec<StorageVoltage>> {
    Ok(match decode(item)? {
        Some(InfoItem::StorageVoltages(s)) => s,
        Some(InfoItem::CellVoltages2025(packs)) => {
            packs.entries.iter().map(pack_as_subsystem).collect()
        }
        _ => Vec::new(),
    })
}

/// The probe temperatures of a row's probes item, in record form.
pub fn row_temperatures(item: Option<(Edition, u8, &[u8])>) -> Result<Vec<StorageTemperature>> {
    Ok(match decode(item)? {
        Some(InfoItem::StorageTemperatures(s)) => s,
        Some(InfoItem::Temperatures2025(packs)) => {
            packs.entries.iter().map(|p| p.to_storage()).collect()
        }
        _ => Vec::new(),
    })
}

/// The list columns other than alarms, under construction.
#[derive(Debug)]
pub struct ListColumns {
    motors: ListBuilder<StructBuilder>,
    cells: ListBuilder<StructBuilder>,
    probes: ListBuilder<StructBuilder>,
    fc_probes: ListBuilder<Int16Builder>,
    stacks: ListBuilder<StructBuilder>,
    supercap_cells: ListBuilder<Float64Builder>,
    supercap_temps: ListBuilder<Int16Builder>,
}

fn values_builder<B: ArrayBuilder + Default>(item: DataType) -> ListBuilder<B> {
    ListBuilder::new(B::default()).with_field(Arc::new(Field::new("item", item, true)))
}

/// The finished list columns, by name.
#[derive(Debug)]
pub struct Lists {
    pub motors: ArrayRef,
    pub cells: ArrayRef,
    pub probes: ArrayRef,
    pub fc_probe_temps_c: ArrayRef,
    pub fc_stacks: ArrayRef,
    pub supercap_cells_v: ArrayRef,
    pub supercap_temps_c: ArrayRef,
}

impl Default for ListColumns {
    fn default() -> Self {
        ListColumns {
            motors: struct_builder(motor_fields()),
            cells: struct_builder(cell_fields()),
            probes: struct_builder(probe_fields()),
            fc_probes: values_builder(DataType::Int16),
            stacks: struct_builder(stack_fields()),
            supercap_cells: values_builder(DataType::Float64),
            supercap_temps: values_builder(DataType::Int16),
        }
    }
}

impl ListColumns {
    /// Appends one row. Every item is decoded before anything is appended, so a row either
    /// lands in every list column or in none.
    pub fn push(&mut self, items: &ListItems<'_>) -> Result<()> {
        let motors = decode(items.motors)?;
        let voltages = items.cells.map(|_| row_voltages(items.cells)).transpose()?;
        let temperatures = items
            .probes
            .map(|_| row_temperatures(items.probes))
            .transpose()?;
        let fuel_cell = decode(items.fuel_cell)?;
        let stacks = decode(items.stacks)?;
        let supercap = decode(items.supercap)?;

        // Motors, by field name: 2025's motors lack the controller voltage and current.
        match motors {
            Some(InfoItem::DriveMotors(list)) => {
                list.iter()
                    .for_each(|m| push_struct(&mut self.motors, DriveMotor::FIELDS, |n| m.get(n)));
                self.motors.append(true);
            }
            Some(InfoItem::Motors2025(list)) => {
                list.entries
                    .iter()
                    .for_each(|m| push_struct(&mut self.motors, DriveMotor::FIELDS, |n| m.get(n)));
                self.motors.append(true);
            }
            _ => self.motors.append(false),
        }

        match voltages {
            Some(subsystems) => {
                for s in subsystems {
                    let first = s.head.first_cell.valid().unwrap_or(1);
                    for (i, v) in s.cell_voltages_v.iter().enumerate() {
                        let entry = self.cells.values();
                        append_int(entry, 0, s.head.subsystem);
                        append_int(entry, 1, Value::Valid(first + i as i64));
                        append_float(entry, 2, *v);
                        entry.append(true);
                    }
                }
                self.cells.append(true);
            }
            None => self.cells.append(false),
        }

        match temperatures {
            Some(subsystems) => {
                for s in subsystems {
                    for (i, t) in s.probe_temps_c.iter().enumerate() {
                        let entry = self.probes.values();
                        append_int(entry, 0, Value::Valid(i64::from(s.subsystem)));
                        append_int(entry, 1, Value::Valid(1 + i as i64));
                        append_int(entry, 2, *t);
                        entry.append(true);
                    }
                }
                self.probes.append(true);
            }
            None => self.probes.append(false),
        }

        match fuel_cell {
            Some(InfoItem::FuelCell(f)) => {
                append_values_int(&mut self.fc_probes, Some(&f.fc_probe_temps_c))
            }
            _ => append_values_int(&mut self.fc_probes, None),
        }

        match stacks {
            Some(InfoItem::FcStacks(stacks)) => {
                let names: Vec<&str> = FcStackHead::FIELDS.iter().map(|f| f.name).collect();
                for stack in &stacks.entries {
                    let entry = self.stacks.values();
                    for (i, name) in names.iter().enumerate() {
                        append_named(entry, i, stack.head.get(name));
                    }
                    if let Some(temps) =
                        entry.field_builder::<ListBuilder<Box<dyn ArrayBuilder>>>(names.len())
                    {
                        for t in &stack.coolant_outlet_temps_c {
                            if let Some(b) =
                                temps.values().as_any_mut().downcast_mut::<Int16Builder>()
                            {
                                b.append_option(t.valid().and_then(|t| i16::try_from(t).ok()));
                            }
                        }
                        temps.append(true);
                    }
                    entry.append(true);
                }
                self.stacks.append(true);
            }
            _ => self.stacks.append(false),
        }

        match supercap {
            Some(InfoItem::Supercap(s)) => {
                for v in &s.supercap_cells_v {
                    self.supercap_cells.values().append_option(v.valid());
                }
                self.supercap_cells.append(true);
                append_values_int(&mut self.supercap_temps, Some(&s.supercap_temps_c));
            }
            _ => {
                self.supercap_cells.append(false);
                append_values_int(&mut self.supercap_temps, None);
            }
        }
        Ok(())
    }

    pub fn finish(mut self) -> Lists {
        Lists {
            motors: Arc::new(self.motors.finish()),
            cells: Arc::new(self.cells.finish()),
            probes: Arc::new(self.probes.finish()),
            fc_probe_temps_c: Arc::new(self.fc_probes.finish()),
            fc_stacks: Arc::new(self.stacks.finish()),
            supercap_cells_v: Arc::new(self.supercap_cells.finish()),
            supercap_temps_c: Arc::new(self.supercap_temps.finish()),
        }
    }
}
