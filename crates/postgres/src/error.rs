//! Errors of the PostgreSQL side, split by what the caller should do about them.

use std::fmt;

use sluice_pgoutput::DecodeError;

/// An error of the replication connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server refused something; `remedy()` says what the user can do.
    #[error("{0}")]
    Server(Box<ServerError>),
    /// The network failed or the server went away.
    #[error("connection to PostgreSQL at {target} failed: {source}")]
    Io {
        target: String,
        #[source]
        source: std::io::Error,
    },
    /// TLS could not be set up or the server's certificate was refused.
    #[error("TLS with PostgreSQL at {target} failed: {source}")]
    Tls {
        target: String,
        #[source]
        source: native_tls::Error,
    },
    /// The server does not offer TLS but the configuration requires it.
    #[error(
        "PostgreSQL at {0} does not accept TLS, but sslmode requires it: enable ssl on the server or lower sslmode"
    )]
    TlsUnavailable(String),
    /// The CA certificate file could not be read or parsed.
    #[error("reading the CA certificate {path}: {reason}")]
    CaCertificate { path: String, reason: String },
    /// The server asked for a password and none was configured.
    #[error("PostgreSQL asks a password for user {0}, but none is configured")]
    PasswordMissing(String),
    /// The server asked for an authentication method this client does not speak.
    #[error(
        "PostgreSQL asks for the {0} authentication method, which sluice does not support; use scram-sha-256, md5, password or trust in pg_hba.conf"
    )]
    UnsupportedAuthentication(&'static str),
    /// The server sent something the protocol does not allow here.
    #[error("unexpected reply from PostgreSQL: {0}")]
    Protocol(String),
    /// A streamed transaction could not be kept or replayed.
    #[error(transparent)]
    Streamed(#[from] crate::streamed::StreamedError),
    /// The server lacks what was asked of it (a feature of a newer version).
    #[error("{0}")]
    Unsupported(String),
    /// A replication message could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl Error {
    pub(crate) fn io(target: &str, source: std::io::Error) -> Self {
        Error::Io {
            target: target.to_owned(),
            source,
        }
    }

    pub(crate) fn protocol(what: impl Into<String>) -> Self {
        Error::Protocol(what.into())
    }

    /// The server's error, if this is one.
    pub fn server(&self) -> Option<&ServerError> {
        match self {
            Error::Server(err) => Some(err),
            _ => None,
        }
    }

    /// Whether retrying later, on a new connection, may succeed without anyone changing
    /// anything: a lost connection, a server restarting, a slot still held by a dying process.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Io { .. } => true,
            Error::Server(err) => matches!(
                err.kind(),
                ServerErrorKind::SlotInUse | ServerErrorKind::ServerShuttingDown
            ),
            _ => false,
        }
    }
}

/// An ErrorResponse from the server, with its SQLSTATE and the fields users need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    severity: String,
    code: String,
    message: String,
    detail: Option<String>,
    hint: Option<String>,
}

/// What a server error means for sluice, derived from the SQLSTATE and the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerErrorKind {
    AuthenticationFailed,
    DatabaseMissing,
    NoReplicationPrivilege,
    WalLevelNotLogical,
    SlotMissing,
    SlotExists,
    SlotInUse,
    SlotInvalidated,
    PublicationMissing,
    SlotLimitReached,
    ConnectionLimitReached,
    ServerShuttingDown,
    Other,
}

impl ServerError {
    /// A server error from its fields, e.g. those an ordinary (tokio-postgres) connection got.
    pub fn new(
        severity: String,
        code: String,
        message: String,
        detail: Option<String>,
        hint: Option<String>,
    ) -> Self {
        ServerError {
            severity,
            code,
            message,
            detail,
            hint,
        }
    }

    pub fn severity(&self) -> &str {
        &self.severity
    }

    /// The SQLSTATE, e.g. `42704`.
    pub fn code(&self) -> &str {
        &self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    pub fn kind(&self) -> ServerErrorKind {
        let message = self.message.as_str();
        // "must be superuser or replication role to start walsender" (up to 15),
        // "permission denied to start WAL sender" (16+).
        let about_walsender = {
            let lower = message.to_ascii_lowercase();
            lower.contains("replication")
                || lower.contains("wal sender")
                || lower.contains("walsender")
        };
        match self.code.as_str() {
            "28P01" | "28000" => ServerErrorKind::AuthenticationFailed,
            "3D000" => ServerErrorKind::DatabaseMissing,
            "42501" if about_walsender => ServerErrorKind::NoReplicationPrivilege,
            "55000" if message.contains("wal_level") => ServerErrorKind::WalLevelNotLogical,
            // "can no longer get changes from replication slot" (16+); up to 15 the message is
            // "cannot read from logical replication slot" and the detail says "invalidated".
            "55000"
                if message.contains("can no longer")
                    || message.contains("invalidated")
                    || self.detail().is_some_and(|d| d.contains("invalidated")) =>
            {
                ServerErrorKind::SlotInvalidated
            }
            "55006" => ServerErrorKind::SlotInUse,
            // PostgreSQL 18's WARNING when pgoutput skips a publication that does not exist.
            "55000" if message.starts_with("skipped loading publication") => {
                ServerErrorKind::PublicationMissing
            }
            "42704" if message.contains("publication") => ServerErrorKind::PublicationMissing,
            "42704" if message.contains("replication slot") => ServerErrorKind::SlotMissing,
            "42710" if message.contains("replication slot") => ServerErrorKind::SlotExists,
            "53400" => ServerErrorKind::SlotLimitReached,
            "53300" => ServerErrorKind::ConnectionLimitReached,
            "57P01" | "57P02" | "57P03" => ServerErrorKind::ServerShuttingDown,
            _ => ServerErrorKind::Other,
        }
    }

    /// What the user should do about this error, where sluice knows.
    pub fn remedy(&self) -> Option<&'static str> {
        Some(match self.kind() {
            ServerErrorKind::AuthenticationFailed => {
                "check the user and password in sluice's configuration, and that pg_hba.conf allows this user to connect for replication"
            }
            ServerErrorKind::DatabaseMissing => {
                "check the database name in sluice's configuration, or create the database"
            }
            ServerErrorKind::NoReplicationPrivilege => {
                "grant the role replication rights: ALTER ROLE <user> REPLICATION"
            }
            ServerErrorKind::WalLevelNotLogical => {
                "set wal_level = logical in postgresql.conf (ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL"
            }
            ServerErrorKind::SlotMissing => {
                "the replication slot does not exist: let sluice create it, or check the slot name in the configuration"
            }
            ServerErrorKind::SlotExists => {
                "a replication slot of that name already exists: reuse it, choose another name, or drop it with pg_drop_replication_slot"
            }
            ServerErrorKind::SlotInUse => {
                "another process is streaming from this slot: stop the other sluice (or consumer) using it; see pg_replication_slots.active_pid"
            }
            ServerErrorKind::SlotInvalidated => {
                "the slot lost WAL it needed (max_slot_wal_keep_size) and can't resume: drop the slot and let sluice take a new snapshot"
            }
            ServerErrorKind::PublicationMissing => {
                "the publication does not exist: let sluice create it, or CREATE PUBLICATION for the captured tables; if it was dropped while the slot was in use, the changes written meanwhile can't be decoded with a new one: drop the slot (sluice teardown) and let sluice take a new snapshot"
            }
            ServerErrorKind::SlotLimitReached => {
                "all replication slots are in use: raise max_replication_slots, or drop unused slots"
            }
            ServerErrorKind::ConnectionLimitReached => {
                "too many connections: raise max_wal_senders / max_connections, or close unused replication connections"
            }
            ServerErrorKind::ServerShuttingDown => "PostgreSQL is shutting down; sluice retries",
            ServerErrorKind::Other => return None,
        })
    }
}

impl ServerError {
    /// What the server said, without the severity or sluice's remedy: `message (SQLSTATE
    /// code); detail: ...; hint: ...`, for reports that show the fix apart.
    pub fn summary(&self) -> String {
        let mut text = format!("{} (SQLSTATE {})", self.message, self.code);
        if let Some(detail) = &self.detail {
            text.push_str("; detail: ");
            text.push_str(detail);
        }
        if let Some(hint) = &self.hint {
            text.push_str("; hint: ");
            text.push_str(hint);
        }
        text
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgreSQL {}: {}", self.severity, self.summary())?;
        if let Some(remedy) = self.remedy() {
            write!(f, "; to fix: {remedy}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ServerError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(code: &str, message: &str) -> ServerError {
        ServerError::new("ERROR".into(), code.into(), message.into(), None, None)
    }

    #[test]
    fn server_errors_map_to_what_the_user_must_do() {
        let cases = [
            // PostgreSQL 18's WARNING when pgoutput skips a publication.
            (
                "55000",
                "skipped loading publication \"p\"",
                ServerErrorKind::PublicationMissing,
            ),
            (
                "28P01",
                "password authentication failed for user \"x\"",
                ServerErrorKind::AuthenticationFailed,
            ),
            (
                "3D000",
                "database \"nope\" does not exist",
                ServerErrorKind::DatabaseMissing,
            ),
            (
                "42501",
                "permission denied to start WAL sender: must have REPLICATION",
                ServerErrorKind::NoReplicationPrivilege,
            ),
            (
                "55000",
                "logical decoding requires \"wal_level\" >= \"logical\"",
                ServerErrorKind::WalLevelNotLogical,
            ),
            (
                "55000",
                "can no longer get changes from replication slot \"s\"",
                ServerErrorKind::SlotInvalidated,
            ),
            (
                "55006",
                "replication slot \"s\" is active for PID 42",
                ServerErrorKind::SlotInUse,
            ),
            (
                "42704",
                "replication slot \"s\" does not exist",
                ServerErrorKind::SlotMissing,
            ),
            (
                "42704",
                "publication \"p\" does not exist",
                ServerErrorKind::PublicationMissing,
            ),
            (
                "42710",
                "replication slot \"s\" already exists",
                ServerErrorKind::SlotExists,
            ),
            (
                "53400",
                "all replication slots are in use",
                ServerErrorKind::SlotLimitReached,
            ),
            (
                "57P01",
                "terminating connection due to administrator command",
                ServerErrorKind::ServerShuttingDown,
            ),
            ("XX000", "something else", ServerErrorKind::Other),
        ];
        for (code, message, kind) in cases {
            let err = error(code, message);
            assert_eq!(err.kind(), kind, "{code} {message}");
            assert_eq!(err.remedy().is_some(), kind != ServerErrorKind::Other);
        }
        let shown = error(
            "55000",
            "logical decoding requires \"wal_level\" >= \"logical\"",
        )
        .to_string();
        assert!(
            shown.contains("SQLSTATE 55000") && shown.contains("wal_level = logical"),
            "{shown}"
        );
    }

    #[test]
    fn the_summary_is_what_the_server_said_and_the_display_adds_the_fix() {
        let err = ServerError::new(
            "FATAL".into(),
            "28P01".into(),
            "password authentication failed for user \"u\"".into(),
            Some("a detail".into()),
            Some("a hint".into()),
        );
        assert_eq!(
            err.summary(),
            "password authentication failed for user \"u\" (SQLSTATE 28P01); detail: a detail; \
             hint: a hint"
        );
        let shown = err.to_string();
        assert!(
            shown.starts_with(&format!("PostgreSQL FATAL: {}; to fix: ", err.summary())),
            "{shown}"
        );
    }

    #[test]
    fn an_invalidated_slot_is_recognised_by_the_detail_up_to_postgres_15() {
        let err = ServerError::new(
            "ERROR".into(),
            "55000".into(),
            "cannot read from logical replication slot \"s\"".into(),
            Some(
                "This slot has been invalidated because it exceeded the maximum reserved size."
                    .into(),
            ),
            None,
        );
        assert_eq!(err.kind(), ServerErrorKind::SlotInvalidated);
    }

    #[test]
    fn only_errors_a_retry_can_fix_are_transient() {
        let busy = Error::Server(Box::new(error(
            "55006",
            "replication slot \"s\" is active for PID 1",
        )));
        assert!(busy.is_transient());
        let gone = Error::Server(Box::new(error(
            "55000",
            "can no longer get changes from replication slot \"s\"",
        )));
        assert!(!gone.is_transient());
    }
}
