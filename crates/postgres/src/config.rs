//! Where and how to connect to PostgreSQL.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::error::Error;

/// How TLS is used, with libpq's meaning of each mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, without verifying the certificate.
    #[default]
    Prefer,
    /// TLS always, without verifying the certificate.
    Require,
    /// TLS always; the certificate must chain to the configured CA.
    VerifyCa,
    /// TLS always; the certificate must chain to the CA and name the host.
    VerifyFull,
}

impl std::str::FromStr for SslMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "unknown sslmode {other:?}: use disable, prefer, require, verify-ca or verify-full"
                ));
            }
        })
    }
}

/// The session settings every connection of sluice's sets at startup (replication, catalog,
/// COPY), whatever the role's or database's own: the text forms of values that sluice parses
/// depend on them (dates in ISO order, intervals in the postgres style, floats to their last
/// digit, bytea in hex), and the snapshot, text mode and binary mode (which prints values
/// inside composites and ranges from their binary form, timestamps in UTC) must give the same
/// events. PostgreSQL's own subscriber pins the first three likewise.
pub const SESSION_SETTINGS: [(&str, &str); 5] = [
    ("DateStyle", "ISO"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
    ("TimeZone", "UTC"),
];

/// [`SESSION_SETTINGS`] as libpq's `options` value (`-c name=value ...`), for connections
/// made through a connection string.
pub fn session_options() -> String {
    SESSION_SETTINGS
        .iter()
        .map(|(name, value)| format!("-c {name}={value}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Tcp(String),
    /// A directory holding the server's Unix socket `.s.PGSQL.<port>`: on the same host it is
    /// the faster transport (the walsender sends about twice as fast as over loopback TCP).
    UnixSocketDir(PathBuf),
}

/// Connection settings for one PostgreSQL database.
#[derive(Debug, Clone)]
pub struct ConnectConfig {
    pub host: Host,
    pub port: u16,
    pub user: String,
    /// A [`SecretString`]: wiped when dropped, `[REDACTED]` in Debug.
    pub password: Option<SecretString>,
    pub dbname: String,
    pub sslmode: SslMode,
    /// CA certificate (PEM) for verify-ca and verify-full.
    pub ssl_root_cert: Option<PathBuf>,
    pub application_name: String,
    pub connect_timeout: Duration,
}

impl ConnectConfig {
    pub fn new(host: Host, port: u16, user: &str, dbname: &str) -> Self {
        ConnectConfig {
            host,
            port,
            user: user.to_owned(),
            password: None,
            dbname: dbname.to_owned(),
            sslmode: SslMode::default(),
            ssl_root_cert: None,
            application_name: "sluice".to_owned(),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// `host:port` or the socket path, for messages.
    pub fn target(&self) -> String {
        match &self.host {
            Host::Tcp(host) => format!("{host}:{}", self.port),
            Host::UnixSocketDir(dir) => format!("{}/.s.PGSQL.{}", dir.display(), self.port),
        }
    }
}

impl ConnectConfig {
    /// A TLS connector with libpq's sslmode semantics: verify-ca checks the certificate chain
    /// against `ssl_root_cert` only, verify-full also the host name, require and prefer
    /// encrypt without checking. Shared by the replication connection and ordinary ones.
    pub fn tls_connector(&self) -> Result<native_tls::TlsConnector, Error> {
        let mut builder = native_tls::TlsConnector::builder();
        match self.sslmode {
            SslMode::Disable | SslMode::Prefer | SslMode::Require => {
                builder
                    .danger_accept_invalid_certs(true)
                    .danger_accept_invalid_hostnames(true);
            }
            SslMode::VerifyCa => {
                builder.danger_accept_invalid_hostnames(true);
            }
            SslMode::VerifyFull => {}
        }
        if matches!(self.sslmode, SslMode::VerifyCa | SslMode::VerifyFull) {
            let path = self
                .ssl_root_cert
                .as_ref()
                .ok_or_else(|| Error::CaCertificate {
                    path: "(none)".to_owned(),
                    reason: "verify-ca and verify-full need ssl_root_cert".to_owned(),
                })?;
            let unreadable = |reason: String| Error::CaCertificate {
                path: path.display().to_string(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| unreadable(e.to_string()))?;
            let ca =
                native_tls::Certificate::from_pem(&pem).map_err(|e| unreadable(e.to_string()))?;
            // Trust only the configured CA, as libpq does with sslrootcert.
            builder
                .disable_built_in_roots(true)
                .add_root_certificate(ca);
        }
        builder.build().map_err(|source| Error::Tls {
            target: self.target(),
            source,
        })
    }
}
