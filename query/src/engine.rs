//! SQL over the lake: a fresh DataFusion session per query with the lake's four tables
//! registered (so it sees the files as they are now), read-only, within a memory limit and a
//! time limit.
//!
//! Read-only is enforced on the plan, not the text: DDL (`CREATE …`, `DROP …`, external
//! tables), DML (`INSERT`, `COPY … TO`) and statements (`SET`, transactions) are refused with
//! [`Error::Refused`]. Reading files outside the lake by path (`SELECT * FROM '/etc/passwd'`)
//! is not possible: URL tables are off and no file-reading table function is registered.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use lake::Lake;

use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// What a query may use.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub memory_bytes: usize,
    pub timeout: Duration,
}

/// The lake and the limits every query runs with, and the metrics every statement counts in.
#[derive(Debug, Clone)]
pub struct Engine {
    pub lake: Lake,
    /// The lake's tables, kept between statements (each reads only the log's news).
    tables: lake::scan::Tables,
    pub limits: Limits,
    pub metrics: Metrics,
}

/// A query's answer.
#[derive(Debug)]
pub struct Answer {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl Answer {
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

impl Engine {
    pub fn new(lake: Lake, limits: Limits) -> Result<Self> {
        Ok(Engine {
            tables: lake::scan::Tables::new(lake.clone()),
            lake,
            limits,
            metrics: Metrics::new()?,
        })
    }

    /// A session with the lake registered (tables `telemetry`, `alerts`, `deadletter`,
    /// `events`, partition columns `date` and `hour`) and `information_schema` on.
    pub fn session(&self) -> Result<SessionContext> {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(self.limits.memory_bytes, 1.0)
            .build_arc()?;
        let config = SessionConfig::new().with_information_schema(true);
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        self.tables.register(&ctx)?;
        Ok(ctx)
    }

    /// The schema of a statement's answer, from its plan (nothing runs); refused as [`run`]
    /// refuses.
    ///
    /// [`run`]: Engine::run
    pub async fn plan_schema(&self, sql: &str) -> Result<SchemaRef> {
        let ctx = self.session()?;
        let frame = ctx
            .sql_with_options(sql, read_only())
            .await
            .map_err(refusal)?;
        Ok(Arc::new(frame.schema().as_arrow().clone()))
    }

    /// Plans and runs one statement, read-only, within the limits; counted in the metrics.
    pub async fn run(&self, sql: &str) -> Result<Answer> {
        let started = std::time::Instant::now();
        let result = self.run_unmetered(sql).await;
        self.metrics.record(
            &result.as_ref().map(Answer::rows),
            started.elapsed().as_secs_f64(),
        );
        result
    }

    async fn run_unmetered(&self, sql: &str) -> Result<Answer> {
        let ctx = Arc::new(self.session()?);
        let read_only = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let work = async {
            let frame = ctx
                .sql_with_options(sql, read_only)
                .await
                .map_err(refusal)?;
            let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
            let batches = frame.collect().await?;
            Ok(Answer { schema, batches })
        };
        tokio::time::timeout(self.limits.timeout, work)
            .await
            .map_err(|_| Error::Timeout(self.limits.timeout))?
    }
}

/// No DDL, no DML (`COPY` included), no statements (`SET`, transactions).
fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// A plan refused by the read-only options becomes [`Error::Refused`]; anything else stays SQL.
fn refusal(error: DataFusionError) -> Error {
    let text = error.strip_backtrace();
    let refused = [
        "DDL not supported",
        "DML not supported",
        "Statement not supported",
    ]
    .iter()
    .find_map(|prefix| text.find(prefix).map(|at| text[at..].to_owned()));
    match refused {
        Some(reason) => Error::Refused(reason),
        None => Error::Sql(error),
    }
}
