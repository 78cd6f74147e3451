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

/// The server to use and a connection to it: `postgres` itself without `hosts`; with them,
/// the first that answers and is not in recovery (a primary), as a section naming that one.
/// None being a primary (all down, or a failover under way) is transient: the caller tries
/// again later.
pub async fn connect_primary(
    postgres: &PostgresSection,
) -> Result<(PostgresSection, Client), PipelineError> {
    let Some(candidates) = postgres.candidates() else {
        return Ok((
            postgres.clone(),
            bounded(postgres, connect_sql(postgres)).await?,
        ));
    };
    let mut tried = Vec::new();
    for candidate in candidates {
        let target = candidate.connect_config().target();
        let sql = match bounded(&candidate, connect_sql(&candidate)).await {
            Ok(sql) => sql,
            // A definite error (a refused password) is the same on every server.
            Err(err) if !err.is_transient() => return Err(err),
            Err(err) => {
                tried.push(format!("{target}: {err}"));
                continue;
            }
        };
        if !bounded(&candidate, in_recovery(&sql)).await? {
            tracing::debug!(%target, "the primary of postgres.hosts");
            return Ok((candidate, sql));
        }
        tried.push(format!("{target}: a standby (in recovery)"));
    }
    Err(PipelineError::PostgresUnavailable(format!(
        "none of postgres.hosts is a primary now ({})",
        tried.join("; ")
    )))
}

/// `work` on `postgres` (connecting, or a first query), given up as unavailable after its
/// `connect_timeout`: libpq's bound covers the TCP connection only, not TLS, authentication or
/// a server that accepts and then says nothing.
async fn bounded<T>(
    postgres: &PostgresSection,
    work: impl Future<Output = Result<T, PipelineError>>,
) -> Result<T, PipelineError> {
    tokio::time::timeout(postgres.connect_timeout, work)
        .await
        .unwrap_or_else(|_| {
            Err(PipelineError::PostgresUnavailable(format!(
                "{} did not answer within postgres.connect_timeout ({:?})",
                postgres.connect_config().target(),
                postgres.connect_timeout
            )))
        })
}

/// Whether the server `sql` is connected to is a standby (in recovery).
pub(crate) async fn in_recovery(sql: &Client) -> Result<bool, PipelineError> {
    Ok(sql
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .map_err(|e| pg("asking whether the server is a standby", &e))?
        .get(0))
}
