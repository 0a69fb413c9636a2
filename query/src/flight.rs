//! Arrow Flight SQL over the lake, for ADBC, JDBC (DBeaver) and Grafana's Flight SQL source.
//!
//! Served: statement queries (`GetFlightInfo` with `CommandStatementQuery`, then `DoGet` with
//! the ticket), prepared statements (create, execute, close; no parameters), and the catalog
//! calls `GetCatalogs`, `GetDbSchemas`, `GetTables` (with table schemas), `GetTableTypes` and
//! `GetSqlInfo`. Every statement goes through [`Engine::run`]: read-only, with the same memory
//! and time limits as HTTP. Updates, ingest, Substrait and transactions are refused.
//!
//! Authentication, when a token is configured: every call carries
//! `authorization: Bearer <token>`; a `Handshake` with basic auth whose password is the token
//! answers with that bearer header (how the Flight SQL JDBC driver and ADBC log in).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::FlightServiceServer;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandStatementQuery, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    SchemaAsIpc, Ticket,
};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use futures::{Stream, TryStreamExt, stream};
use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::engine::Engine;
use crate::error::Error;

const CATALOG: &str = "datafusion";
const SCHEMA: &str = "public";

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send>>;

/// The Flight SQL service; see the module docs.
pub struct FlightSql {
    engine: Engine,
    token: String,
    prepared: Mutex<HashMap<Vec<u8>, String>>,
    next_handle: AtomicU64,
    sql_info: SqlInfoData,
}

impl std::fmt::Debug for FlightSql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlightSql")
            .field("lake", &self.engine.lake.url.as_str())
            .field("token", &!self.token.is_empty())
            .finish()
    }
}

fn status(error: Error) -> Status {
    match error {
        Error::Refused(_) => Status::permission_denied(error.to_string()),
        Error::Sql(_) => Status::invalid_argument(error.to_string()),
        Error::Timeout(_) => Status::deadline_exceeded(error.to_string()),
        _ => Status::internal(error.to_string()),
    }
}

/// An encoding failure (Arrow or Flight): the server's fault, not the query's.
fn internal(error: impl std::fmt::Display) -> Status {
    Status::internal(error.to_string())
}

/// A `FlightInfo` whose one endpoint's ticket is `ticket`, for answers of `schema`.
fn flight_info(
    schema: &Schema,
    ticket: arrow_flight::sql::Any,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket.encode_to_vec()));
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(internal)?
        .with_endpoint(endpoint)
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

/// One built metadata batch as a `DoGet` stream.
fn one_batch(
    schema: std::sync::Arc<Schema>,
    batch: Result<RecordBatch, impl std::fmt::Display>,
) -> Result<Response<DoGetStream>, Status> {
    Ok(batches_stream(schema, vec![batch.map_err(internal)?]))
}

/// Batches as a `DoGet` stream.
fn batches_stream(
    schema: std::sync::Arc<Schema>,
    batches: Vec<RecordBatch>,
) -> Response<DoGetStream> {
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(stream::iter(batches.into_iter().map(Ok)))
        .map_err(Status::from);
    Response::new(Box::pin(stream))
}

impl FlightSql {
    pub fn new(engine: Engine, token: String) -> Result<Self, Status> {
        let mut info = SqlInfoDataBuilder::new();
        info.append(SqlInfo::FlightSqlServerName, "chargewatch");
        info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        info.append(SqlInfo::FlightSqlServerArrowVersion, "59");
        info.append(SqlInfo::FlightSqlServerReadOnly, true);
        info.append(SqlInfo::FlightSqlServerSql, true);
        info.append(SqlInfo::FlightSqlServerSubstrait, false);
        info.append(SqlInfo::FlightSqlServerTransaction, 0i32);
        let sql_info = info.build().map_err(internal)?;
        Ok(FlightSql {
            engine,
            token,
            prepared: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            sql_info,
        })
    }

    fn check(&self, metadata: &MetadataMap) -> Result<(), Status> {
        if self.token.is_empty() {
            return Ok(());
        }
        let given = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given.is_some_and(|t| t.trim() == self.token) {
            Ok(())
        } else {
            Err(Status::unauthenticated("missing or wrong bearer token"))
        }
    }

    /// The `FlightInfo` of a metadata command (its ticket is the command itself).
    fn command_info(
        &self,
        request: Request<FlightDescriptor>,
        schema: &Schema,
        command: arrow_flight::sql::Any,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(request.metadata())?;
        flight_info(schema, command, request.into_inner())
    }

    fn prepared_sql(&self, handle: &[u8]) -> Result<String, Status> {
        self.prepared
            .lock()
            .map_err(|_| Status::internal("prepared statements lock"))?
            .get(handle)
            .cloned()
            .ok_or_else(|| Status::not_found("no such prepared statement (closed?)"))
    }

    async fn answer(&self, sql: &str) -> Result<Response<DoGetStream>, Status> {
        let answer = self.engine.run(sql).await.map_err(status)?;
        Ok(batches_stream(answer.schema, answer.batches))
    }

    /// The lake's tables with their schemas, as DataFusion registers them.
    async fn tables(&self) -> Result<Vec<(String, std::sync::Arc<Schema>)>, Status> {
        let ctx = self.engine.session().map_err(status)?;
        let schema = ctx
            .catalog(CATALOG)
            .and_then(|c| c.schema(SCHEMA))
            .ok_or_else(|| Status::internal("no public schema"))?;
        let mut names = schema.table_names();
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let provider = schema.table(&name).await.map_err(internal)?;
            if let Some(provider) = provider {
                out.push((name, provider.schema()));
            }
        }
        Ok(out)
    }
}

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let mut response =
            Response::new(Box::pin(stream::iter([Ok(HandshakeResponse::default())]))
                as Pin<
                    Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>,
                >);
        if self.token.is_empty() {
            return Ok(response);
        }
        let basic = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|b| String::from_utf8(b).ok());
        let password_ok = basic
            .as_deref()
            .and_then(|pair| pair.split_once(':'))
            .is_some_and(|(_, password)| password == self.token);
        if !password_ok {
            self.check(request.metadata())?;
        }
        let bearer = format!("Bearer {}", self.token)
            .parse()
            .map_err(|_| Status::internal("token is not a header value"))?;
        response.metadata_mut().insert("authorization", bearer);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(request.metadata())?;
        let schema = self
            .engine
            .plan_schema(&query.query)
            .await
            .map_err(status)?;
        let ticket = TicketStatementQuery {
            statement_handle: query.query.into_bytes().into(),
        };
        flight_info(&schema, ticket.as_any(), request.into_inner())
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.check(request.metadata())?;
        let sql = String::from_utf8(ticket.statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("statement handle is not text"))?;
        self.answer(&sql).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        self.check(request.metadata())?;
        let schema = self
            .engine
            .plan_schema(&query.query)
            .await
            .map_err(status)?;
        let handle = self
            .next_handle
            .fetch_add(1, Ordering::Relaxed)
            .to_string()
            .into_bytes();
        self.prepared
            .lock()
            .map_err(|_| Status::internal("prepared statements lock"))?
            .insert(handle.clone(), query.query);
        let message: IpcMessage = SchemaAsIpc::new(&schema, &IpcWriteOptions::default())
            .try_into()
            .map_err(internal)?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into(),
            dataset_schema: message.0,
            parameter_schema: Default::default(),
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        self.check(request.metadata())?;
        self.prepared
            .lock()
            .map_err(|_| Status::internal("prepared statements lock"))?
            .remove(query.prepared_statement_handle.as_ref());
        Ok(())
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(request.metadata())?;
        let sql = self.prepared_sql(&query.prepared_statement_handle)?;
        let schema = self.engine.plan_schema(&sql).await.map_err(status)?;
        flight_info(&schema, query.as_any(), request.into_inner())
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.check(request.metadata())?;
        let sql = self.prepared_sql(&query.prepared_statement_handle)?;
        self.answer(&sql).await
    }

    async fn do_put_prepared_statement_query(
        &self,
        _query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<arrow_flight::sql::DoPutPreparedStatementResult, Status> {
        self.check(request.metadata())?;
        Err(Status::unimplemented(
            "prepared statements take no parameters",
        ))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.command_info(request, &query.into_builder().schema(), query.as_any())
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.check(request.metadata())?;
        let mut builder = query.into_builder();
        builder.append(CATALOG);
        one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.command_info(request, &schema, query.as_any())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.check(request.metadata())?;
        let mut builder = query.into_builder();
        builder.append(CATALOG, SCHEMA);
        one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.command_info(request, &schema, query.as_any())
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.check(request.metadata())?;
        let tables = self.tables().await?;
        let mut builder = query.into_builder();
        for (name, schema) in tables {
            builder
                .append(CATALOG, SCHEMA, name, "TABLE", &schema)
                .map_err(internal)?;
        }
        one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.command_info(request, &query.into_builder().schema(), query.as_any())
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.check(request.metadata())?;
        let mut builder = query.into_builder();
        builder.append("TABLE");
        one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.command_info(request, &self.sql_info.schema(), query.as_any())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.check(request.metadata())?;
        let builder = query.into_builder(&self.sql_info);
        one_batch(builder.schema(), builder.build())
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// Serves Flight SQL until `stop` is cancelled; returns the bound address once listening.
pub async fn serve(
    listen: SocketAddr,
    engine: Engine,
    token: String,
    stop: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let service =
        FlightSql::new(engine, token).map_err(|e| std::io::Error::other(e.message().to_owned()))?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let task = tokio::spawn(async move {
        let result = tonic::transport::Server::builder()
            .add_service(FlightServiceServer::new(service))
            .serve_with_incoming_shutdown(incoming, async move { stop.cancelled().await })
            .await;
        if let Err(error) = result {
            tracing::error!(%error, "flight sql server");
        }
    });
    tracing::info!(%addr, "query Flight SQL listening");
    Ok((addr, task))
}
