//! Scalar columns of fixed-layout blocks, built a tile of rows at a time.
//!
//! A [`Group`] is one kind of block with a layout per edition; its columns are the union of
//! the layouts' field names (the catalogues `block!` declares), each with where it sits in each
//! layout. Every row brings its block's body and layout; a column reads its field at that
//! layout's offset with that layout's scale, so a 2016 and a 2025 row fill one column. Columns
//! are filled for a tile of rows before the next column, so the tile's bytes stay in cache.

use std::sync::{Arc, LazyLock};

use arrow_array::builder::StringBuilder;
use arrow_array::types::{
    ArrowPrimitiveType, Float64Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type,
};
use arrow_array::{ArrayRef, PrimitiveArray};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, ScalarBuffer};
use arrow_schema::DataType;

use super::field_type;
use crate::fields::{FieldKind, FieldSpec, Raw, classify, scale_parts, scaled_with};
use crate::realtime::{
    Engine, Engine2025, Extremes, FuelCell2025, FuelCellHead, FuelCellTail, Position, Position2025,
    SupercapExtremes, SupercapHead, Vehicle, Vehicle2025, WptSnapshot,
};

/// The layouts a row's block can have: its edition's.
pub const LAYOUTS: usize = 2;
/// Layout index of the 2016 edition.
pub const L2016: u8 = 0;
/// Layout index of the 2025 edition.
pub const L2025: u8 = 1;

/// The kinds of fixed-layout block that are columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Vehicle,
    Position,
    Extremes,
    Wpt,
    FuelCellHead,
    FuelCell,
    Engine,
    Supercap,
    SupercapExtremes,
}

impl Group {
    pub const ALL: [Group; 9] = [
        Group::Vehicle,
        Group::Position,
        Group::Extremes,
        Group::Wpt,
        Group::FuelCellHead,
        Group::FuelCell,
        Group::Engine,
        Group::Supercap,
        Group::SupercapExtremes,
    ];

    /// Each edition's layout (catalogue) of the block, where it has one.
    fn layouts(self) -> [Option<&'static [FieldSpec]>; LAYOUTS] {
        match self {
            Group::Vehicle => [Some(Vehicle::FIELDS), Some(Vehicle2025::FIELDS)],
            Group::Position => [Some(Position::FIELDS), Some(Position2025::FIELDS)],
            // 2025 rows bring extremes computed from their packs, in the 2016 layout.
            Group::Extremes => [Some(Extremes::FIELDS), None],
            Group::Wpt => [Some(WptSnapshot::FIELDS), Some(WptSnapshot::FIELDS)],
            Group::FuelCellHead => [Some(FuelCellHead::FIELDS), None],
            Group::FuelCell => [Some(FuelCellTail::FIELDS), Some(FuelCell2025::FIELDS)],
            Group::Engine => [Some(Engine::FIELDS), Some(Engine2025::FIELDS)],
            Group::Supercap => [None, Some(SupercapHead::FIELDS)],
            Group::SupercapExtremes => [None, Some(SupercapExtremes::FIELDS)],
        }
    }
}

/// Where a column's field sits in one layout, and how its raw value becomes a number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Source {
    pub offset: usize,
    pub kind: FieldKind,
}

/// One column of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupColumn {
    pub name: &'static str,
    pub data_type: DataType,
    pub width: usize,
    pub sources: [Option<Source>; LAYOUTS],
}

/// A group's columns, in schema order.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSpec {
    pub columns: Vec<GroupColumn>,
}

/// Merges the layouts' fields into columns: the first layout's order, with a field only a
/// later layout has placed after the field that precedes it there.
fn build(group: Group) -> GroupSpec {
    let mut columns: Vec<GroupColumn> = Vec::new();
    for (layout, specs) in group.layouts().iter().enumerate() {
        let Some(specs) = specs else { continue };
        let mut offset = 0;
        let mut previous: Option<usize> = None;
        for spec in specs.iter() {
            let source = Source {
                offset,
                kind: spec.kind,
            };
            offset += spec.kind.width();
            let at = match columns.iter().position(|c| c.name == spec.name) {
                Some(at) => at,
                None => {
                    let at = previous.map_or(0, |p| p + 1);
                    columns.insert(
                        at,
                        GroupColumn {
                            name: spec.name,
                            data_type: field_type(&spec.kind),
                            width: spec.kind.width(),
                            sources: [None; LAYOUTS],
                        },
                    );
                    at
                }
            };
            let column = &mut columns[at];
            // Declared so by the blocks; a mismatch is a catalogue bug the schema test finds.
            assert!(
                column.data_type == field_type(&spec.kind) && column.width == spec.kind.width(),
                "{}: layouts disagree on type or width",
                spec.name
            );
            column.sources[layout] = Some(source);
            previous = Some(at);
        }
    }
    GroupSpec { columns }
}

static GROUPS: LazyLock<Vec<GroupSpec>> =
    LazyLock::new(|| Group::ALL.iter().map(|&g| build(g)).collect());

/// The columns of `group`.
pub fn group(group: Group) -> &'static GroupSpec {
    &GROUPS[group as usize]
}

/// A row's block: its body and layout, or `None` when the row lacks the block.
pub type Row<'a> = Option<(&'a [u8], u8)>;

/// A sentinel found while building a column: (row, column name, state).
pub type Sentinel = (u32, &'static str, &'static str);

#[inline(always)]
fn read_w<const W: usize>(bytes: &[u8]) -> u32 {
    let mut raw = 0u32;
    for &b in &bytes[..W] {
        raw = (raw << 8) | u32::from(b);
    }
    raw
}

/// Rows decoded per tile.
const TILE_ROWS: usize = 128;
const _: () = assert!(TILE_ROWS.is_multiple_of(64));

/// The values of one column being built, typed by `field_type`.
enum Values {
    U8(Vec<u8>),
    I16(Vec<i16>),
    U16(Vec<u16>),
    I32(Vec<i32>),
    U32(Vec<u32>),
    I64(Vec<i64>),
    F64(Vec<f64>),
    Text(StringBuilder),
}

/// How one layout turns a field's raw value into a number.
#[derive(Clone, Copy)]
struct Conv {
    offset: usize,
    /// Whether the top two raw values are the abnormal/invalid sentinels (not for bit fields).
    sentinels: bool,
    add_int: i64,
    /// `fields::scale_parts` of a float field.
    divisor: f64,
    shift: f64,
}

impl Conv {
    fn of(source: &Source) -> Conv {
        let (add_int, (divisor, shift), sentinels) = match source.kind {
            FieldKind::Int { offset, .. } => (offset, (1.0, 0.0), true),
            FieldKind::Float { scale, offset, .. } => {
                (offset as i64, scale_parts(scale, offset), true)
            }
            FieldKind::Bits { .. } | FieldKind::Text { .. } => (0, (1.0, 0.0), false),
        };
        Conv {
            offset: source.offset,
            sentinels,
            add_int,
            divisor,
            shift,
        }
    }
}

/// One column under construction: values, validity bits and null count.
struct Column {
    spec: &'static GroupColumn,
    convs: [Option<Conv>; LAYOUTS],
    values: Values,
    validity: Vec<u64>,
    nulls: usize,
}

/// One column's part of a tile: where its validity, null count and sentinels go.
struct TileFill<'a, 'r> {
    validity: &'a mut [u64],
    nulls: &'a mut usize,
    tile: &'a [Row<'r>],
    /// The row number of the tile's first row (a multiple of 64).
    first_row: usize,
    convs: &'a [Option<Conv>; LAYOUTS],
    name: &'static str,
    sentinels: &'a mut Vec<Sentinel>,
}

impl TileFill<'_, '_> {
    /// Appends the field of each row of the tile: `map` of the raw value when valid; a null
    /// when the row lacks the block or the field, or holds a sentinel.
    #[inline(always)]
    fn run<N: Copy + Default, const W: usize>(
        &mut self,
        values: &mut Vec<N>,
        map: impl Fn(u32, &Conv) -> N,
    ) {
        debug_assert_eq!(self.first_row % 64, 0);
        for (word, chunk) in self.tile.chunks(64).enumerate() {
            let mut bits = 0u64;
            let base = self.first_row + 64 * word;
            let (convs, name, sentinels) = (self.convs, self.name, &mut *self.sentinels);
            values.extend(chunk.iter().enumerate().map(|(i, row)| {
                let Some((body, layout)) = row else {
                    return N::default();
                };
                let Some(conv) = &convs[usize::from(*layout)] else {
                    return N::default();
                };
                let raw = read_w::<W>(&body[conv.offset..]);
                let raw = if conv.sentinels {
                    classify(raw, W)
                } else {
                    Raw::Valid(raw)
                };
                match raw {
                    Raw::Valid(raw) => {
                        bits |= 1 << i;
                        map(raw, conv)
                    }
                    Raw::Abnormal => {
                        sentinels.push(((base + i) as u32, name, "abnormal"));
                        N::default()
                    }
                    Raw::Invalid => {
                        sentinels.push(((base + i) as u32, name, "invalid"));
                        N::default()
                    }
                }
            }));
            self.validity[base / 64] = bits;
            *self.nulls += chunk.len() - bits.count_ones() as usize;
        }
    }
}

/// NUL-padded ASCII as `&str`, borrowed when it is valid UTF-8 (always, for valid frames).
pub(crate) fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    match std::str::from_utf8(&bytes[..end]) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(&bytes[..end]),
    }
}

impl Column {
    fn new(spec: &'static GroupColumn, rows: usize) -> Self {
        let values = match spec.data_type {
            DataType::UInt8 => Values::U8(Vec::with_capacity(rows)),
            DataType::Int16 => Values::I16(Vec::with_capacity(rows)),
            DataType::UInt16 => Values::U16(Vec::with_capacity(rows)),
            DataType::Int32 => Values::I32(Vec::with_capacity(rows)),
            DataType::UInt32 => Values::U32(Vec::with_capacity(rows)),
            DataType::Int64 => Values::I64(Vec::with_capacity(rows)),
            DataType::Float64 => Values::F64(Vec::with_capacity(rows)),
            _ => Values::Text(StringBuilder::with_capacity(rows, rows * spec.width)),
        };
        Column {
            spec,
            convs: spec.sources.map(|s| s.as_ref().map(Conv::of)),
            values,
            validity: vec![0; rows.div_ceil(64)],
            nulls: 0,
        }
    }

    /// Appends a tile of rows, dispatching once on the column's type and width.
    fn fill(&mut self, tile: &[Row<'_>], first_row: usize, sentinels: &mut Vec<Sentinel>) {
        let width = self.spec.width;
        let mut t = TileFill {
            validity: &mut self.validity[..],
            nulls: &mut self.nulls,
            tile,
            first_row,
            convs: &self.convs,
            name: self.spec.name,
            sentinels,
        };
        let int = |r: u32, c: &Conv| i64::from(r) + c.add_int;
        let float = |r: u32, c: &Conv| scaled_with(r, c.divisor, c.shift);
        // The Arrow types were chosen by `field_type` to hold every valid value of the field.
        match (&mut self.values, width) {
            (Values::Text(b), _) => {
                for row in tile {
                    match row.and_then(|(body, l)| Some((body, t.convs[usize::from(l)]?))) {
                        Some((body, c)) => b.append_value(text(&body[c.offset..c.offset + width])),
                        None => b.append_null(),
                    }
                }
            }
            (Values::U8(v), _) => t.run::<_, 1>(v, |r, _| r as u8),
            (Values::I16(v), _) => t.run::<_, 1>(v, |r, c| int(r, c) as i16),
            (Values::U16(v), _) => t.run::<_, 2>(v, |r, _| r as u16),
            (Values::I32(v), _) => t.run::<_, 2>(v, |r, c| int(r, c) as i32),
            (Values::U32(v), _) => t.run::<_, 4>(v, |r, _| r),
            (Values::I64(v), 1) => t.run::<_, 1>(v, int),
            (Values::I64(v), 2) => t.run::<_, 2>(v, int),
            (Values::I64(v), _) => t.run::<_, 4>(v, int),
            (Values::F64(v), 1) => t.run::<_, 1>(v, float),
            (Values::F64(v), 2) => t.run::<_, 2>(v, float),
            (Values::F64(v), _) => t.run::<_, 4>(v, float),
        }
    }

    fn finish(self, rows: usize) -> ArrayRef {
        let nulls = (self.nulls > 0).then(|| {
            // Arrow bitmaps are little-endian bit order: bit i of byte i / 8.
            let bytes: Vec<u8> = self.validity.iter().flat_map(|w| w.to_le_bytes()).collect();
            NullBuffer::new(BooleanBuffer::new(Buffer::from_vec(bytes), 0, rows))
        });
        fn array<T: ArrowPrimitiveType>(v: Vec<T::Native>, nulls: Option<NullBuffer>) -> ArrayRef {
            Arc::new(PrimitiveArray::<T>::new(ScalarBuffer::from(v), nulls))
        }
        match self.values {
            Values::U8(v) => array::<UInt8Type>(v, nulls),
            Values::I16(v) => array::<Int16Type>(v, nulls),
            Values::U16(v) => array::<UInt16Type>(v, nulls),
            Values::I32(v) => array::<Int32Type>(v, nulls),
            Values::U32(v) => array::<UInt32Type>(v, nulls),
            Values::I64(v) => array::<Int64Type>(v, nulls),
            Values::F64(v) => array::<Float64Type>(v, nulls),
            Values::Text(mut b) => Arc::new(b.finish()),
        }
    }
}

/// The columns of `g` over all rows, built tile by tile, appended to `columns`.
pub fn columns(
    g: Group,
    rows: &[Row<'_>],
    sentinels: &mut Vec<Sentinel>,
    columns: &mut Vec<ArrayRef>,
) {
    let n = rows.len();
    let mut building: Vec<Column> = group(g).columns.iter().map(|c| Column::new(c, n)).collect();
    for (t, tile) in rows.chunks(TILE_ROWS).enumerate() {
        for column in &mut building {
            column.fill(tile, t * TILE_ROWS, sentinels);
        }
    }
    columns.extend(building.into_iter().map(|c| c.finish(n)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_merge_their_layouts() {
        let names = |g: Group| -> Vec<&str> { group(g).columns.iter().map(|c| c.name).collect() };
        assert_eq!(
            names(Group::Position),
            [
                "position_status",
                "coord_system",
                "longitude_deg",
                "latitude_deg"
            ]
        );
        let vehicle = group(Group::Vehicle);
        assert_eq!(vehicle.columns.len(), 13);
        let current = vehicle
            .columns
            .iter()
            .find(|c| c.name == "total_current_a")
            .unwrap();
        assert_eq!(current.sources[0].unwrap().offset, 11);
        assert_eq!(current.sources[1].unwrap().offset, 11);
        assert_ne!(
            current.sources[0].unwrap().kind,
            current.sources[1].unwrap().kind
        );
        let pedal = vehicle
            .columns
            .iter()
            .find(|c| c.name == "brake_pct")
            .unwrap();
        assert!(pedal.sources[1].is_none(), "2025 has no pedals");
        for g in Group::ALL {
            assert!(!group(g).columns.is_empty());
        }
    }
}
