//! Errors in words, one way for every command: a PostgreSQL error as the server said it (with
//! the fix sluice knows), or a client error with its causes.

use sluice_postgres::ServerError;

pub use sluice_avro::error_chain as chain;

/// The server's error a tokio-postgres error carries, if it is one: with the remedy sluice
/// knows for it.
pub fn server_error(err: &tokio_postgres::Error) -> Option<ServerError> {
    let db = err.as_db_error()?;
    Some(ServerError::new(
        db.severity().to_owned(),
        db.code().code().to_owned(),
        db.message().to_owned(),
        db.detail().map(str::to_owned),
        db.hint().map(str::to_owned),
    ))
}

/// A tokio-postgres error in words: the server's error whole (SQLSTATE, detail, hint and the
/// fix sluice knows), or the client's error with its causes (a refused connection).
pub fn pg(err: &tokio_postgres::Error) -> String {
    match server_error(err) {
        Some(server) => server.to_string(),
        None => chain(err),
    }
}

/// A tokio-postgres error as what was said and, apart, the fix sluice knows: for reports
/// that show the fix in a column of its own.
pub fn pg_parts(err: &tokio_postgres::Error) -> (String, Option<&'static str>) {
    match server_error(err) {
        Some(server) => (server.summary(), server.remedy()),
        None => (chain(err), None),
    }
}
