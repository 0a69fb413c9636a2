//! Fault-diagnosis rules: one SQL file per rule, with a header of `-- key: value` lines.
//!
//! ```sql
//! -- id: tx_coil_overheat
//! -- severity: critical
//! -- window: 10s                 (tumbling; `60s slide 10s` is a sliding window)
//! -- keys: vin, station_id, pad_no
//! -- description: Transmitter coil above its temperature limit.
//! -- param: max_c = 90           (a threshold, used in the SQL as ${max_c})
//! SELECT vin, station_id, pad_no, max(tx_coil_temp_c) AS max_tx_coil_temp_c
//! FROM telemetry WHERE tx_coil_temp_c > ${max_c} GROUP BY vin, station_id, pad_no
//! ```
//!
//! A rule reads the closed window's rows as table `telemetry`, the per-VIN session state at the
//! window's end as `sessions`, and the general-alarm bits of GB/T 32960.3 §5.1 as `alarm_bits`;
//! `$window_start` and `$window_end` are the window's bounds (UTC timestamps). It returns one
//! row per firing entity: the key columns (`vin` first), an optional `severity` column that
//! overrides the header's, and evidence columns. Loading takes the files, substitutes the
//! parameters (defaults from the header, overrides from the config as `rule_id.param`) and
//! plans each rule against empty tables: a rule that fails is refused with its file, line and
//! reason, and the others still run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};
use crate::tables;

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Major,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Info,
        Severity::Warning,
        Severity::Major,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Major => "major",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A window: tumbling when `slide == size`. Windows are aligned to the epoch: they end at
/// multiples of `slide` and cover `[end - size, end)` of event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WindowSpec {
    pub size_us: i64,
    pub slide_us: i64,
}

impl WindowSpec {
    /// `10s` (tumbling) or `60s slide 10s` (sliding; the size a multiple of the slide).
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let duration = |t: &str| -> std::result::Result<i64, String> {
            let d = humantime::parse_duration(t.trim())
                .map_err(|e| format!("bad window duration {t:?}: {e}"))?;
            let us = i64::try_from(d.as_micros()).map_err(|_| "window too long".to_owned())?;
            if us < 1_000_000 || us % 1_000_000 != 0 {
                return Err(format!(
                    "window duration {t:?} must be whole seconds, at least 1s"
                ));
            }
            Ok(us)
        };
        let spec = match text.split_once(" slide ") {
            Some((size, slide)) => WindowSpec {
                size_us: duration(size)?,
                slide_us: duration(slide)?,
            },
            None => {
                let size = duration(text)?;
                WindowSpec {
                    size_us: size,
                    slide_us: size,
                }
            }
        };
        if spec.slide_us > spec.size_us || spec.size_us % spec.slide_us != 0 {
            return Err(format!(
                "window {text:?}: the size must be a multiple of the slide"
            ));
        }
        Ok(spec)
    }

    pub fn is_sliding(&self) -> bool {
        self.slide_us != self.size_us
    }

    /// The end of the first window that holds `t`.
    pub fn first_end_after(&self, t: i64) -> i64 {
        t.div_euclid(self.slide_us) * self.slide_us + self.slide_us
    }
}

impl std::fmt::Display for WindowSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs =
            |us: i64| humantime::format_duration(Duration::from_secs((us / 1_000_000) as u64));
        if self.is_sliding() {
            write!(f, "{} slide {}", secs(self.size_us), secs(self.slide_us))
        } else {
            write!(f, "{}", secs(self.size_us))
        }
    }
}

/// A loaded, validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub file: PathBuf,
    pub severity: Severity,
    pub window: WindowSpec,
    /// Entity key columns, `vin` first.
    pub keys: Vec<String>,
    pub description: String,
    /// The SQL with parameters substituted (header comments kept, so lines match the file).
    pub sql: String,
    /// The parameter values used.
    pub params: BTreeMap<String, String>,
    /// Reads `telemetry` / `sessions`.
    pub uses_telemetry: bool,
    pub uses_sessions: bool,
    /// Every identifier in the SQL (telemetry columns among them decide what the buffer keeps).
    pub identifiers: BTreeSet<String>,
}

impl Rule {
    /// Whether two loads of a rule would evaluate the same way (reload keeps its windows).
    pub fn same_definition(&self, other: &Rule) -> bool {
        self.sql == other.sql
            && self.window == other.window
            && self.keys == other.keys
            && self.severity == other.severity
    }
}

/// Parameter overrides from the config: `rule_id.param` → value.
pub type Overrides = BTreeMap<String, String>;

fn rule_error(file: &Path, line: usize, reason: impl Into<String>) -> Error {
    Error::Rule {
        file: file.to_owned(),
        line,
        reason: reason.into(),
    }
}

fn is_ident(text: &str) -> bool {
    !text.is_empty()
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !text.starts_with(|c: char| c.is_ascii_digit())
}

/// Words of SQL text outside comments and string literals, lowercased.
fn identifiers(sql: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in sql.lines() {
        let code = line.split("--").next().unwrap_or("");
        let mut in_string = false;
        let mut word = String::new();
        for c in code.chars().chain(std::iter::once(' ')) {
            if c == '\'' {
                in_string = !in_string;
            }
            if !in_string && (c.is_ascii_alphanumeric() || c == '_') {
                word.push(c.to_ascii_lowercase());
            } else if !word.is_empty() {
                if is_ident(&word) {
                    out.insert(std::mem::take(&mut word));
                }
                word.clear();
            }
        }
    }
    out
}

/// Reads a rule file's header and substitutes its parameters; the SQL is not planned here.
pub fn parse(file: &Path, text: &str, overrides: &Overrides) -> Result<Rule> {
    let mut fields: BTreeMap<&str, (usize, String)> = BTreeMap::new();
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    let mut first_sql_line = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let Some(comment) = trimmed.strip_prefix("--") else {
            first_sql_line = Some(number);
            break;
        };
        let Some((key, value)) = comment.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if !is_ident(key) {
            continue;
        }
        match key {
            "param" => {
                let Some((name, default)) = value.split_once('=') else {
                    return Err(rule_error(file, number, "param needs `name = value`"));
                };
                let name = name.trim();
                if !is_ident(name) {
                    return Err(rule_error(file, number, format!("bad param name {name:?}")));
                }
                params.insert(name.to_owned(), default.trim().to_owned());
            }
            "id" | "severity" | "window" | "keys" | "description" => {
                if fields.insert(key, (number, value.to_owned())).is_some() {
                    return Err(rule_error(
                        file,
                        number,
                        format!("header `{key}` given twice"),
                    ));
                }
            }
            other => {
                return Err(rule_error(
                    file,
                    number,
                    format!(
                        "unknown header `{other}` (expected id, severity, window, keys, description, param)"
                    ),
                ));
            }
        }
    }
    let Some(first_sql_line) = first_sql_line else {
        return Err(rule_error(
            file,
            text.lines().count().max(1),
            "no SQL after the header",
        ));
    };
    let mut take = |key: &str| {
        fields
            .remove(key)
            .ok_or_else(|| rule_error(file, 1, format!("header `{key}` is missing")))
    };
    let (id_line, id) = take("id")?;
    if !is_ident(&id) {
        return Err(rule_error(file, id_line, format!("bad rule id {id:?}")));
    }
    let (line, severity) = take("severity")?;
    let severity = Severity::parse(&severity).ok_or_else(|| {
        rule_error(
            file,
            line,
            format!("unknown severity {severity:?} (info, warning, major, critical)"),
        )
    })?;
    let (line, window) = take("window")?;
    let window = WindowSpec::parse(&window).map_err(|reason| rule_error(file, line, reason))?;
    let (line, keys) = take("keys")?;
    let keys: Vec<String> = keys.split(',').map(|k| k.trim().to_owned()).collect();
    if keys.first().map(String::as_str) != Some("vin") || !keys.iter().all(|k| is_ident(k)) {
        return Err(rule_error(
            file,
            line,
            "keys must be column names, `vin` first",
        ));
    }
    let (_, description) = take("description")?;

    for (key, value) in overrides {
        if let Some((rule, name)) = key.split_once('.')
            && rule == id
        {
            if !params.contains_key(name) {
                return Err(rule_error(
                    file,
                    id_line,
                    format!("config overrides param `{name}`, which the rule does not declare"),
                ));
            }
            params.insert(name.to_owned(), value.clone());
        }
    }
    let sql = substitute(file, text, &params)?;
    let identifiers = identifiers(&sql);
    let uses_telemetry = identifiers.contains(tables::TELEMETRY);
    let uses_sessions = identifiers.contains(tables::SESSIONS);
    if !uses_telemetry && !uses_sessions {
        return Err(rule_error(
            file,
            first_sql_line,
            format!(
                "the rule reads neither `{}` nor `{}`",
                tables::TELEMETRY,
                tables::SESSIONS
            ),
        ));
    }
    Ok(Rule {
        id,
        file: file.to_owned(),
        severity,
        window,
        keys,
        description,
        sql,
        params,
        uses_telemetry,
        uses_sessions,
        identifiers,
    })
}

/// Replaces `${name}` with parameter values, line by line (so line numbers stay the file's).
fn substitute(file: &Path, text: &str, params: &BTreeMap<String, String>) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    for (index, line) in text.lines().enumerate() {
        let mut rest = line;
        if !line.trim_start().starts_with("--") {
            while let Some(at) = rest.find("${") {
                out.push_str(&rest[..at]);
                let after = &rest[at + 2..];
                let Some(end) = after.find('}') else {
                    return Err(rule_error(file, index + 1, "unclosed `${`"));
                };
                let name = &after[..end];
                let value = params.get(name).ok_or_else(|| {
                    rule_error(
                        file,
                        index + 1,
                        format!("unknown param `{name}` (declare it with `-- param: {name} = …`)"),
                    )
                })?;
                out.push_str(value);
                rest = &after[end + 1..];
            }
        }
        out.push_str(rest);
        out.push('\n');
    }
    Ok(out)
}

/// Finds the line a planning error points at: the span DataFusion gives, else a `Line: N`
/// in the message, else the first line naming the identifier the message quotes.
fn error_line(error: &datafusion::error::DataFusionError, sql: &str) -> usize {
    if let Some(span) = error.diagnostic().and_then(|d| d.span) {
        return span.start.line as usize;
    }
    let message = error.to_string();
    if let Some(at) = message.find("Line: ") {
        let digits: String = message[at + 6..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(line) = digits.parse() {
            return line;
        }
    }
    let quoted: Vec<&str> = message
        .split(['\'', '"', '`'])
        .skip(1)
        .step_by(2)
        .filter(|q| !q.is_empty())
        .collect();
    let named = message.split_once("No field named ").map(|(_, rest)| {
        rest.split(['.', ' '])
            .next()
            .unwrap_or("")
            .trim_matches('"')
    });
    let code_lines = || {
        sql.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim_start().starts_with("--"))
    };
    for needle in named.into_iter().chain(quoted) {
        let needle = needle.rsplit('.').next().unwrap_or(needle);
        if let Some((index, _)) = code_lines().find(|(_, l)| l.contains(needle)) {
            return index + 1;
        }
    }
    code_lines().next().map_or(1, |(index, _)| index + 1)
}

/// Plans the rule against empty tables and checks its output columns.
pub async fn validate(rule: &Rule, ctx: &SessionContext) -> Result<()> {
    let refuse = |line: usize, reason: String| rule_error(&rule.file, line, reason);
    let frame = match tables::plan(ctx, &rule.sql, 0, rule.window.size_us).await {
        Ok(frame) => frame,
        Err(error) => {
            let line = error_line(&error, &rule.sql);
            let reason = error.strip_backtrace().replace('\n', " ");
            return Err(refuse(line, reason));
        }
    };
    let schema = frame.schema();
    let first_line = rule
        .sql
        .lines()
        .position(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"))
        .map_or(1, |i| i + 1);
    for key in &rule.keys {
        if schema.field_with_unqualified_name(key).is_err() {
            return Err(refuse(
                first_line,
                format!("the result has no column `{key}`, a key of the rule"),
            ));
        }
    }
    if let Ok(field) = schema.field_with_unqualified_name("severity")
        && !matches!(
            field.data_type(),
            datafusion::arrow::datatypes::DataType::Utf8
                | datafusion::arrow::datatypes::DataType::Utf8View
                | datafusion::arrow::datatypes::DataType::LargeUtf8
        )
    {
        return Err(refuse(
            first_line,
            "the `severity` column must be text".to_owned(),
        ));
    }
    Ok(())
}

/// The built-in rules, compiled in: `(file name, text)`.
pub fn builtin() -> Vec<(&'static str, &'static str)> {
    macro_rules! rules {
        ($($name:literal),* $(,)?) => {
            vec![$(($name, include_str!(concat!("../rules/", $name)))),*]
        };
    }
    rules![
        "tx_coil_overheat.sql",
        "pad_surface_overheat.sql",
        "rx_coil_overheat.sql",
        "battery_overtemp.sql",
        "temp_rise_rate.sql",
        "inverter_freq_out_of_band.sql",
        "inverter_overcurrent.sql",
        "grid_voltage_out_of_range.sql",
        "dc_bus_overvoltage.sql",
        "efficiency_low.sql",
        "misalignment.sql",
        "foreign_object.sql",
        "living_object.sql",
        "comm_loss.sql",
        "soc_stall.sql",
        "gbt32960_alarm.sql",
        "cell_voltage_spread.sql",
        "diagnosis.sql",
    ]
}

/// What a load gives: the rules that passed, and why each other one was refused.
#[derive(Debug, Default)]
pub struct Loaded {
    pub rules: Vec<Rule>,
    pub rejected: Vec<Error>,
}

/// The `.sql` files of `dir`, sorted by name.
pub fn rule_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    Ok(files)
}

/// Loads the built-in rules (when `builtin`) and those of `dir`; a rule in `dir` with the id of
/// a built-in one replaces it. Every rule is validated; refused ones are listed.
pub async fn load(dir: Option<&Path>, builtin_rules: bool, overrides: &Overrides) -> Loaded {
    let mut sources: Vec<(PathBuf, String)> = Vec::new();
    let mut loaded = Loaded::default();
    if builtin_rules {
        for (name, text) in builtin() {
            sources.push((Path::new("builtin").join(name), text.to_owned()));
        }
    }
    if let Some(dir) = dir {
        match rule_files(dir) {
            Ok(files) => {
                for file in files {
                    match std::fs::read_to_string(&file) {
                        Ok(text) => sources.push((file, text)),
                        Err(error) => loaded
                            .rejected
                            .push(rule_error(&file, 1, error.to_string())),
                    }
                }
            }
            Err(error) => loaded.rejected.push(rule_error(dir, 0, error.to_string())),
        }
    }
    let ctx = tables::context();
    let mut by_id: BTreeMap<String, Rule> = BTreeMap::new();
    for (file, text) in sources {
        let rule = match parse(&file, &text, overrides) {
            Ok(rule) => rule,
            Err(error) => {
                loaded.rejected.push(error);
                continue;
            }
        };
        if let Err(error) = validate(&rule, &ctx).await {
            loaded.rejected.push(error);
            continue;
        }
        if let Some(previous) = by_id.get(&rule.id)
            && !previous.file.starts_with("builtin")
        {
            loaded.rejected.push(rule_error(
                &file,
                1,
                format!(
                    "rule id `{}` is already defined in {}",
                    rule.id,
                    previous.file.display()
                ),
            ));
            continue;
        }
        by_id.insert(rule.id.clone(), rule);
    }
    for key in overrides.keys() {
        let known = key
            .split_once('.')
            .is_some_and(|(rule, _)| by_id.contains_key(rule));
        if !known {
            loaded
                .rejected
                .push(Error::UnknownOverride { key: key.clone() });
        }
    }
    loaded.rules = by_id.into_values().collect();
    loaded
}

/// A cheap fingerprint of a rules directory (names, sizes, modification times): reload when it
/// changes.
pub fn dir_fingerprint(dir: &Path) -> Option<Vec<(PathBuf, u64, std::time::SystemTime)>> {
    let files = rule_files(dir).ok()?;
    Some(
        files
            .into_iter()
            .filter_map(|f| {
                let meta = std::fs::metadata(&f).ok()?;
                Some((f, meta.len(), meta.modified().ok()?))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse() {
        let w = WindowSpec::parse("10s").unwrap();
        assert_eq!((w.size_us, w.slide_us), (10_000_000, 10_000_000));
        let w = WindowSpec::parse("1m slide 10s").unwrap();
        assert_eq!((w.size_us, w.slide_us), (60_000_000, 10_000_000));
        assert_eq!(w.first_end_after(65_000_000), 70_000_000);
        assert_eq!(w.first_end_after(70_000_000), 80_000_000);
        assert!(WindowSpec::parse("60s slide 7s").is_err());
        assert!(WindowSpec::parse("500ms").is_err());
        assert_eq!(w.to_string(), "1m slide 10s");
    }

    #[test]
    fn header_errors_name_their_line() {
        let text = "-- id: x\n-- severity: urgent\n-- window: 10s\n-- keys: vin\n-- description: d\nSELECT vin FROM telemetry\n";
        let error = parse(Path::new("x.sql"), text, &Overrides::new()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "x.sql:2: unknown severity \"urgent\" (info, warning, major, critical)"
        );
        let text = "-- id: x\n-- severity: info\n-- window: 10s\n-- keys: vin\n-- description: d\nSELECT vin FROM telemetry\nWHERE soc > ${limit}\n";
        let error = parse(Path::new("x.sql"), text, &Overrides::new()).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("x.sql:7: unknown param `limit`"),
            "{error}"
        );
    }

    #[test]
    fn params_are_substituted_and_overridden() {
        let text = "-- id: x\n-- severity: info\n-- window: 10s\n-- keys: vin\n-- description: d\n-- param: limit = 5\nSELECT vin FROM telemetry WHERE soc > ${limit}\n";
        let rule = parse(Path::new("x.sql"), text, &Overrides::new()).unwrap();
        assert!(rule.sql.contains("soc > 5\n"));
        let overrides = Overrides::from([("x.limit".to_owned(), "7".to_owned())]);
        let rule = parse(Path::new("x.sql"), text, &overrides).unwrap();
        assert!(rule.sql.contains("soc > 7\n"));
        assert!(rule.identifiers.contains("soc") && rule.uses_telemetry && !rule.uses_sessions);
    }
}
