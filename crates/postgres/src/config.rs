//! Where and how to connect to PostgreSQL.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

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

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Tcp(String),
    /// A directory holding the server's Unix socket `.s.PGSQL.<port>`: on the same host it is
    /// the faster transport (the walsender sends about twice as fast as over loopback TCP).
    UnixSocketDir(PathBuf),
}

/// Connection settings for one PostgreSQL database.
#[derive(Clone)]
pub struct ConnectConfig {
    pub host: Host,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
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

// Never print the password.
impl fmt::Debug for ConnectConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("dbname", &self.dbname)
            .field("sslmode", &self.sslmode)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .field("application_name", &self.application_name)
            .finish()
    }
}
