//! sluice's ordinary PostgreSQL connections (catalog, COPY, housekeeping), with the same TLS
//! rules as the replication connection.

use secrecy::ExposeSecret;
use sluice_postgres::ConnectConfig;
use tokio_postgres::Client;

use crate::config::PostgresSection;
use crate::error::{PipelineError, pg, tls_refused};

/// An ordinary connection to the configured database.
pub async fn connect_sql(postgres: &PostgresSection) -> Result<Client, PipelineError> {
    let config = postgres.connect_config();
    let tls = sql_tls(&config)?;
    let (client, connection) = tokio_postgres::connect(postgres.conninfo().expose_secret(), tls)
        .await
        .map_err(|e| {
            let target = config.target();
            let hint = if tls_refused(&e) {
                " (check postgres.sslmode and postgres.sslrootcert: the server's certificate \
                 must be signed by that CA and, for verify-full, name postgres.host)"
            } else if e.as_db_error().is_none() {
                " (check postgres.host and postgres.port, and that PostgreSQL listens there)"
            } else {
                ""
            };
            pg(&format!("connecting to PostgreSQL at {target}{hint}"), &e)
        })?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(error = %err, "a PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// The TLS of ordinary connections, with the same rules as the replication connection's.
pub fn sql_tls(
    postgres: &ConnectConfig,
) -> Result<postgres_native_tls::MakeTlsConnector, PipelineError> {
    Ok(postgres_native_tls::MakeTlsConnector::new(
        postgres.tls_connector()?,
    ))
}
