//! Arrow Flight SQL with the Rust client: the same answers as the engine, prepared statements,
//! the catalog calls, refusals and tokens.

use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{CommandGetDbSchemas, CommandGetTables, SqlInfo};
use arrow_flight::{FlightInfo, Ticket};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::util::pretty::pretty_format_batches;
use futures::TryStreamExt;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::support::*;

async fn client(addr: std::net::SocketAddr) -> FlightSqlServiceClient<Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    FlightSqlServiceClient::new(channel)
}

async fn fetch(client: &mut FlightSqlServiceClient<Channel>, info: FlightInfo) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket: Ticket = endpoint.ticket.unwrap();
        let stream = client.do_get(ticket).await.unwrap();
        batches.extend(stream.try_collect::<Vec<_>>().await.unwrap());
    }
    batches
}

fn text(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).unwrap().to_string()
}

const SQL: &str = "SELECT station_id, count(*) AS n, round(avg(efficiency_pct), 2) AS eff \
                   FROM telemetry GROUP BY station_id ORDER BY station_id";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flight_sql_answers_as_the_engine_does() {
    let fixture = lake().await;
    let engine = engine(&fixture);
    let expected = text(&engine.run(SQL).await.unwrap().batches);
    let stop = CancellationToken::new();
    let (addr, server) = query::flight::serve(
        "127.0.0.1:0".parse().unwrap(),
        engine,
        String::new(),
        stop.clone(),
    )
    .await
    .unwrap();
    let mut client = client(addr).await;

    let info = client.execute(SQL.into(), None).await.unwrap();
    assert_eq!(text(&fetch(&mut client, info).await), expected);

    let mut prepared = client.prepare(SQL.into(), None).await.unwrap();
    assert_eq!(prepared.dataset_schema().unwrap().fields().len(), 3);
    let info = prepared.execute().await.unwrap();
    assert_eq!(text(&fetch(&mut client, info).await), expected);
    prepared.close().await.unwrap();

    let info = client.get_catalogs().await.unwrap();
    let catalogs = fetch(&mut client, info).await;
    assert_eq!(
        catalogs[0].column(0).as_string::<i32>().value(0),
        "datafusion"
    );
    let info = client
        .get_db_schemas(CommandGetDbSchemas::default())
        .await
        .unwrap();
    assert_eq!(fetch(&mut client, info).await[0].num_rows(), 1);
    let request = CommandGetTables {
        include_schema: true,
        ..CommandGetTables::default()
    };
    let info = client.get_tables(request).await.unwrap();
    let tables = fetch(&mut client, info).await;
    let names: Vec<&str> = tables[0]
        .column(2)
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    assert_eq!(names, ["alerts", "deadletter", "events", "telemetry"]);
    let info = client
        .get_sql_info(vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::FlightSqlServerReadOnly,
        ])
        .await
        .unwrap();
    assert_eq!(fetch(&mut client, info).await[0].num_rows(), 2);

    let error = client
        .execute("DROP TABLE telemetry".into(), None)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("read-only"), "{error}");
    stop.cancel();
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flight_sql_requires_the_token_when_set() {
    let fixture = lake().await;
    let stop = CancellationToken::new();
    let (addr, server) = query::flight::serve(
        "127.0.0.1:0".parse().unwrap(),
        engine(&fixture),
        "s3cret".into(),
        stop.clone(),
    )
    .await
    .unwrap();
    let mut anonymous = client(addr).await;
    let error = anonymous
        .execute("SELECT 1".into(), None)
        .await
        .unwrap_err();
    assert!(
        error.to_string().to_lowercase().contains("token"),
        "{error}"
    );
    assert!(anonymous.handshake("user", "wrong").await.is_err());

    let mut logged_in = client(addr).await;
    logged_in.handshake("user", "s3cret").await.unwrap();
    let info = logged_in
        .execute("SELECT 1 AS one".into(), None)
        .await
        .unwrap();
    assert_eq!(fetch(&mut logged_in, info).await[0].num_rows(), 1);
    let mut bearer = client(addr).await;
    bearer.set_token("s3cret".into());
    assert!(bearer.execute("SELECT 1".into(), None).await.is_ok());
    stop.cancel();
    server.await.unwrap();
}
