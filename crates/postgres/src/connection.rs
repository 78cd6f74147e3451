//! A replication connection (`replication=database`) written on postgres-protocol's message
//! codecs: startup, TLS, authentication, simple queries and the replication commands.
//!
//! Released tokio-postgres cannot enter the CopyBoth mode a replication stream needs, so this
//! connection speaks the frontend/backend protocol itself. Ordinary SQL may run on it too
//! (PostgreSQL accepts SQL on logical replication connections), which is what
//! `CREATE_REPLICATION_SLOT ... USE_SNAPSHOT` inside a transaction needs.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::backend::{ErrorFields, Header, Message};
use postgres_protocol::message::frontend;
use secrecy::ExposeSecret;
use sluice_pgoutput::Lsn;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use crate::config::{ConnectConfig, Host, SslMode};
use crate::error::{Error, ServerError, ServerErrorKind};
use crate::options::{PgOutputOptions, ProtocolChoice};
use crate::transport::Transport;

/// Bytes asked of the socket per read: large reads let the walsender run ahead of us instead
/// of waking this task once per message.
const READ_CHUNK: usize = 256 * 1024;

/// The tag of CopyBothResponse, which postgres-protocol's backend parser does not know.
const COPY_BOTH_RESPONSE: u8 = b'W';

/// A frame read from the server.
pub(crate) enum Backend {
    Message(Message),
    CopyBothResponse,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Message(_) => f.write_str("Message"),
            Backend::CopyBothResponse => f.write_str("CopyBothResponse"),
        }
    }
}

/// One row of a simple query's result, every value in text form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    values: Vec<Option<String>>,
}

impl Row {
    /// The value of column `index`, `None` for SQL NULL or a missing column.
    pub fn get(&self, index: usize) -> Option<&str> {
        self.values.get(index).and_then(Option::as_deref)
    }
}

/// The answer to `IDENTIFY_SYSTEM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifySystem {
    pub system_id: String,
    pub timeline: u32,
    pub xlog_position: Lsn,
    pub dbname: Option<String>,
}

/// What `CREATE_REPLICATION_SLOT` does with the slot's snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotAction {
    /// Export it, for other sessions to import with `SET TRANSACTION SNAPSHOT` until the next
    /// command on this connection.
    Export,
    /// Use it for the transaction this command is the first statement of (a read-only one:
    /// PostgreSQL 18 refuses any other).
    Use,
    /// Neither.
    NoExport,
}

/// The answer to `CREATE_REPLICATION_SLOT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSlot {
    pub slot_name: String,
    /// The LSN from which streaming is consistent with the slot's snapshot.
    pub consistent_point: Lsn,
    /// The exported snapshot's name, with [`SnapshotAction::Export`].
    pub snapshot_name: Option<String>,
    pub output_plugin: String,
}

/// An open replication connection, between commands.
#[derive(Debug)]
pub struct ReplicationConnection {
    transport: Transport,
    read_buf: BytesMut,
    write_buf: BytesMut,
    target: String,
    parameters: HashMap<String, String>,
    server_version_num: u32,
}

impl ReplicationConnection {
    /// Connects, negotiates TLS as `sslmode` says, authenticates and waits until the server
    /// is ready for commands.
    pub async fn connect(config: &ConnectConfig) -> Result<Self, Error> {
        let target = config.target();
        tokio::time::timeout(config.connect_timeout, Self::connect_inner(config))
            .await
            .map_err(|_| {
                Error::io(
                    &target,
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "no answer within {:?}: check the host, port and firewall",
                            config.connect_timeout
                        ),
                    ),
                )
            })?
    }

    async fn connect_inner(config: &ConnectConfig) -> Result<Self, Error> {
        let target = config.target();
        let transport = match &config.host {
            // libpq ignores sslmode on Unix sockets; so does sluice.
            Host::UnixSocketDir(dir) => Transport::Unix(
                UnixStream::connect(dir.join(format!(".s.PGSQL.{}", config.port)))
                    .await
                    .map_err(|e| Error::io(&target, e))?,
            ),
            Host::Tcp(host) => {
                let tcp = TcpStream::connect((host.as_str(), config.port))
                    .await
                    .map_err(|e| Error::io(&target, e))?;
                tcp.set_nodelay(true).map_err(|e| Error::io(&target, e))?;
                bound_silence(&tcp).map_err(|e| Error::io(&target, e))?;
                negotiate_tls(tcp, host, config).await?
            }
        };
        let mut conn = ReplicationConnection {
            transport,
            read_buf: BytesMut::with_capacity(READ_CHUNK),
            write_buf: BytesMut::with_capacity(1024),
            target,
            parameters: HashMap::new(),
            server_version_num: 0,
        };
        conn.startup(config).await?;
        Ok(conn)
    }

    async fn startup(&mut self, config: &ConnectConfig) -> Result<(), Error> {
        let params = [
            ("user", config.user.as_str()),
            ("database", config.dbname.as_str()),
            ("replication", "database"),
            ("application_name", config.application_name.as_str()),
            ("client_encoding", "UTF8"),
        ];
        // A startup parameter that is not one of the protocol's own sets that setting for the
        // session, over the role's and the database's.
        frontend::startup_message(
            params.into_iter().chain(crate::config::SESSION_SETTINGS),
            &mut self.write_buf,
        )
        .map_err(|e| Error::io(&self.target, e))?;
        self.flush().await?;
        self.authenticate(config).await?;
        loop {
            match self.read_message().await? {
                Message::ReadyForQuery(_) => break,
                Message::BackendKeyData(_) => {}
                Message::ErrorResponse(body) => return Err(server_error(body.fields())),
                _ => return Err(Error::protocol("unexpected message during startup")),
            }
        }
        let version = self
            .parameters
            .get("server_version")
            .ok_or_else(|| Error::protocol("the server did not report server_version"))?;
        self.server_version_num = parse_server_version(version)
            .ok_or_else(|| Error::protocol(format!("cannot parse server_version {version:?}")))?;
        Ok(())
    }

    async fn authenticate(&mut self, config: &ConnectConfig) -> Result<(), Error> {
        let password = || {
            config
                .password
                .as_ref()
                .map(ExposeSecret::expose_secret)
                .ok_or_else(|| Error::PasswordMissing(config.user.clone()))
        };
        let mut scram: Option<ScramSha256> = None;
        loop {
            match self.read_message().await? {
                Message::AuthenticationOk => return Ok(()),
                Message::AuthenticationCleartextPassword => {
                    frontend::password_message(password()?.as_bytes(), &mut self.write_buf)
                        .map_err(|e| Error::io(&self.target, e))?;
                }
                Message::AuthenticationMd5Password(body) => {
                    let hash =
                        md5_hash(config.user.as_bytes(), password()?.as_bytes(), body.salt());
                    frontend::password_message(hash.as_bytes(), &mut self.write_buf)
                        .map_err(|e| Error::io(&self.target, e))?;
                }
                Message::AuthenticationSasl(body) => {
                    let mut offers_scram = false;
                    let mut mechanisms = body.mechanisms();
                    while let Some(mechanism) = mechanisms
                        .next()
                        .map_err(|e| Error::protocol(format!("SASL mechanisms: {e}")))?
                    {
                        offers_scram |= mechanism == SCRAM_SHA_256;
                    }
                    if !offers_scram {
                        return Err(Error::UnsupportedAuthentication(
                            "SASL (without SCRAM-SHA-256)",
                        ));
                    }
                    let client =
                        ScramSha256::new(password()?.as_bytes(), ChannelBinding::unsupported());
                    frontend::sasl_initial_response(
                        SCRAM_SHA_256,
                        client.message(),
                        &mut self.write_buf,
                    )
                    .map_err(|e| Error::io(&self.target, e))?;
                    scram = Some(client);
                }
                Message::AuthenticationSaslContinue(body) => {
                    let client = scram
                        .as_mut()
                        .ok_or_else(|| Error::protocol("SASL continue before SASL start"))?;
                    client
                        .update(body.data())
                        .map_err(|e| Error::protocol(format!("SCRAM: {e}")))?;
                    frontend::sasl_response(client.message(), &mut self.write_buf)
                        .map_err(|e| Error::io(&self.target, e))?;
                }
                Message::AuthenticationSaslFinal(body) => {
                    scram
                        .as_mut()
                        .ok_or_else(|| Error::protocol("SASL final before SASL start"))?
                        .finish(body.data())
                        .map_err(|e| {
                            Error::protocol(format!("the server's SCRAM signature is wrong: {e}"))
                        })?;
                    continue;
                }
                Message::ErrorResponse(body) => return Err(server_error(body.fields())),
                Message::AuthenticationGss | Message::AuthenticationGssContinue(_) => {
                    return Err(Error::UnsupportedAuthentication("GSSAPI"));
                }
                Message::AuthenticationSspi => {
                    return Err(Error::UnsupportedAuthentication("SSPI"));
                }
                Message::AuthenticationKerberosV5 => {
                    return Err(Error::UnsupportedAuthentication("Kerberos V5"));
                }
                Message::AuthenticationScmCredential => {
                    return Err(Error::UnsupportedAuthentication("SCM credential"));
                }
                _ => return Err(Error::protocol("unexpected message during authentication")),
            }
            self.flush().await?;
        }
    }

    /// The server's version as `server_version_num` counts it (150018 for 15.18).
    pub fn server_version_num(&self) -> u32 {
        self.server_version_num
    }

    /// A run-time parameter the server reported (`server_version`, `integer_datetimes`, ...).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
    }

    /// Runs one or more statements with the simple query protocol and returns the rows of the
    /// last statement that produced any.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<Row>, Error> {
        frontend::query(sql, &mut self.write_buf).map_err(|e| Error::io(&self.target, e))?;
        self.flush().await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            match self.read_message().await? {
                Message::RowDescription(_) => rows.clear(),
                Message::DataRow(body) => {
                    let mut values = Vec::new();
                    let mut ranges = body.ranges();
                    while let Some(range) = ranges
                        .next()
                        .map_err(|e| Error::protocol(format!("DataRow: {e}")))?
                    {
                        values.push(match range {
                            None => None,
                            Some(range) => Some(
                                std::str::from_utf8(body.buffer().get(range).ok_or_else(|| {
                                    Error::protocol("DataRow value out of bounds")
                                })?)
                                .map_err(|_| Error::protocol("DataRow value is not UTF-8"))?
                                .to_owned(),
                            ),
                        });
                    }
                    rows.push(Row { values });
                }
                Message::CommandComplete(_) | Message::EmptyQueryResponse => {}
                Message::ErrorResponse(body) => error = Some(server_error(body.fields())),
                Message::ReadyForQuery(_) => {
                    return match error {
                        Some(err) => Err(err),
                        None => Ok(rows),
                    };
                }
                Message::CopyOutResponse(_) | Message::CopyInResponse(_) => {
                    return Err(Error::protocol("COPY is not supported by simple_query"));
                }
                _ => return Err(Error::protocol("unexpected message in a query's reply")),
            }
        }
    }

    /// `IDENTIFY_SYSTEM`: the cluster's id, timeline and current WAL position.
    pub async fn identify_system(&mut self) -> Result<IdentifySystem, Error> {
        let rows = self.simple_query("IDENTIFY_SYSTEM").await?;
        let row = rows
            .first()
            .ok_or_else(|| Error::protocol("IDENTIFY_SYSTEM returned no row"))?;
        let field = |i: usize, name: &str| {
            row.get(i)
                .ok_or_else(|| Error::protocol(format!("IDENTIFY_SYSTEM without {name}")))
        };
        Ok(IdentifySystem {
            system_id: field(0, "systemid")?.to_owned(),
            timeline: field(1, "timeline")?
                .parse()
                .map_err(|_| Error::protocol("IDENTIFY_SYSTEM timeline is not a number"))?,
            xlog_position: parse_lsn(field(2, "xlogpos")?)?,
            dbname: row.get(3).map(str::to_owned),
        })
    }

    /// `CREATE_REPLICATION_SLOT <name> [TEMPORARY] LOGICAL pgoutput <snapshot action>`.
    pub async fn create_slot(
        &mut self,
        name: &str,
        temporary: bool,
        snapshot: SnapshotAction,
    ) -> Result<CreatedSlot, Error> {
        self.create_slot_with_failover(name, temporary, snapshot, false)
            .await
    }

    /// [`create_slot`](Self::create_slot), and with `failover` a failover slot (PostgreSQL
    /// 17 on): one that standbys with `sync_replication_slots` keep a copy of, to stream from
    /// after a promotion.
    pub async fn create_slot_with_failover(
        &mut self,
        name: &str,
        temporary: bool,
        snapshot: SnapshotAction,
        failover: bool,
    ) -> Result<CreatedSlot, Error> {
        check_slot_name(name)?;
        let temporary = if temporary { " TEMPORARY" } else { "" };
        let command = if failover {
            self.require_failover_slots()?;
            // FAILOVER exists only in the option list (PostgreSQL 15 on).
            let action = match snapshot {
                SnapshotAction::Export => "export",
                SnapshotAction::Use => "use",
                SnapshotAction::NoExport => "nothing",
            };
            format!(
                "CREATE_REPLICATION_SLOT {name}{temporary} LOGICAL pgoutput (SNAPSHOT '{action}', FAILOVER true)"
            )
        } else {
            let action = match snapshot {
                SnapshotAction::Export => "EXPORT_SNAPSHOT",
                SnapshotAction::Use => "USE_SNAPSHOT",
                SnapshotAction::NoExport => "NOEXPORT_SNAPSHOT",
            };
            format!("CREATE_REPLICATION_SLOT {name}{temporary} LOGICAL pgoutput {action}")
        };
        let rows = self.simple_query(&command).await?;
        let row = rows
            .first()
            .ok_or_else(|| Error::protocol("CREATE_REPLICATION_SLOT returned no row"))?;
        Ok(CreatedSlot {
            slot_name: row.get(0).unwrap_or(name).to_owned(),
            consistent_point: parse_lsn(row.get(1).ok_or_else(|| {
                Error::protocol("CREATE_REPLICATION_SLOT without a consistent point")
            })?)?,
            snapshot_name: row.get(2).map(str::to_owned),
            output_plugin: row.get(3).unwrap_or("pgoutput").to_owned(),
        })
    }

    /// `ALTER_REPLICATION_SLOT <name> (FAILOVER true)` (PostgreSQL 17 on): an existing slot
    /// becomes a failover slot.
    pub async fn make_failover_slot(&mut self, name: &str) -> Result<(), Error> {
        check_slot_name(name)?;
        self.require_failover_slots()?;
        self.simple_query(&format!("ALTER_REPLICATION_SLOT {name} (FAILOVER true)"))
            .await
            .map(drop)
    }

    fn require_failover_slots(&self) -> Result<(), Error> {
        if self.server_version_num < 170_000 {
            return Err(Error::Unsupported(format!(
                "failover slots need PostgreSQL 17 or newer; {} runs PostgreSQL {}: set replication.failover = false, or upgrade",
                self.target,
                self.server_version_num / 10_000
            )));
        }
        Ok(())
    }

    /// `DROP_REPLICATION_SLOT <name> [WAIT]`; with `wait`, waits for an active user to let go.
    pub async fn drop_slot(&mut self, name: &str, wait: bool) -> Result<(), Error> {
        check_slot_name(name)?;
        let wait = if wait { " WAIT" } else { "" };
        self.simple_query(&format!("DROP_REPLICATION_SLOT {name}{wait}"))
            .await
            .map(drop)
    }

    /// Chooses the newest pgoutput protocol this server speaks for `options`.
    pub fn negotiate(&self, options: &PgOutputOptions) -> ProtocolChoice {
        ProtocolChoice::for_server(self.server_version_num, options)
    }

    pub(crate) async fn wait_ready(&mut self) -> Result<(), Error> {
        loop {
            if let Message::ReadyForQuery(_) = self.read_message().await? {
                return Ok(());
            }
        }
    }

    /// Closes the connection politely.
    pub async fn close(mut self) -> Result<(), Error> {
        frontend::terminate(&mut self.write_buf);
        self.flush().await?;
        let _ = self.transport.shutdown().await;
        Ok(())
    }

    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    pub(crate) fn write_buf(&mut self) -> &mut BytesMut {
        &mut self.write_buf
    }

    pub(crate) async fn flush(&mut self) -> Result<(), Error> {
        if !self.write_buf.is_empty() {
            self.transport
                .write_all(&self.write_buf)
                .await
                .map_err(|e| Error::io(&self.target, e))?;
            self.write_buf.clear();
        }
        self.transport
            .flush()
            .await
            .map_err(|e| Error::io(&self.target, e))
    }

    /// Reads more bytes from the socket into the buffer. Cancel-safe: nothing read is lost if
    /// the future is dropped.
    pub(crate) async fn fill(&mut self) -> Result<(), Error> {
        if self.read_buf.capacity() - self.read_buf.len() < READ_CHUNK / 4 {
            self.read_buf.reserve(READ_CHUNK);
        }
        let read = self
            .transport
            .read_buf(&mut self.read_buf)
            .await
            .map_err(|e| Error::io(&self.target, e))?;
        if read == 0 {
            return Err(Error::io(
                &self.target,
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ),
            ));
        }
        Ok(())
    }

    /// Reads what a Unix socket already holds into the buffer, without waiting, unless a
    /// read's worth is buffered already (the buffer stays bounded); whether it read anything.
    pub(crate) fn try_fill(&mut self) -> Result<bool, Error> {
        if self.read_buf.len() >= READ_CHUNK {
            return Ok(false);
        }
        if self.read_buf.capacity() - self.read_buf.len() < READ_CHUNK / 4 {
            self.read_buf.reserve(READ_CHUNK);
        }
        let read = self
            .transport
            .try_read_buf(&mut self.read_buf)
            .map_err(|e| Error::io(&self.target, e))?;
        Ok(read > 0)
    }

    /// Takes one complete frame from the buffer, if one is there; never reads the socket.
    pub(crate) fn try_frame(&mut self) -> Result<Option<Backend>, Error> {
        loop {
            let header = match Header::parse(&self.read_buf) {
                Ok(Some(header)) => header,
                Ok(None) => return Ok(None),
                Err(e) => return Err(Error::protocol(format!("bad message header: {e}"))),
            };
            if header.tag() == COPY_BOTH_RESPONSE {
                let total = usize::try_from(header.len())
                    .map_err(|_| Error::protocol("negative message length"))?
                    + 1;
                if self.read_buf.len() < total {
                    return Ok(None);
                }
                self.read_buf.advance(total);
                return Ok(Some(Backend::CopyBothResponse));
            }
            let message = match Message::parse(&mut self.read_buf) {
                Ok(Some(message)) => message,
                Ok(None) => return Ok(None),
                Err(e) => return Err(Error::protocol(format!("bad message: {e}"))),
            };
            match message {
                Message::ParameterStatus(body) => {
                    if let (Ok(name), Ok(value)) = (body.name(), body.value()) {
                        self.parameters.insert(name.to_owned(), value.to_owned());
                    }
                }
                Message::NoticeResponse(body) => {
                    let notice = server_error(body.fields());
                    // From PostgreSQL 18 on, pgoutput skips a publication that does not
                    // exist with a WARNING instead of failing: the changes of its tables
                    // would go by unseen and be confirmed. As an error, nothing is.
                    if notice
                        .server()
                        .is_some_and(|n| n.kind() == ServerErrorKind::PublicationMissing)
                    {
                        return Err(notice);
                    }
                    tracing::info!(target: "postgres", notice = %notice, "server notice");
                }
                other => return Ok(Some(Backend::Message(other))),
            }
        }
    }

    pub(crate) async fn read_frame(&mut self) -> Result<Backend, Error> {
        loop {
            if let Some(frame) = self.try_frame()? {
                return Ok(frame);
            }
            self.fill().await?;
        }
    }

    async fn read_message(&mut self) -> Result<Message, Error> {
        match self.read_frame().await? {
            Backend::Message(message) => Ok(message),
            Backend::CopyBothResponse => Err(Error::protocol("unexpected CopyBothResponse")),
        }
    }
}

async fn negotiate_tls(
    tcp: TcpStream,
    host: &str,
    config: &ConnectConfig,
) -> Result<Transport, Error> {
    let target = config.target();
    if config.sslmode == SslMode::Disable {
        return Ok(Transport::Tcp(tcp));
    }
    let mut tcp = tcp;
    let mut request = BytesMut::new();
    frontend::ssl_request(&mut request);
    tcp.write_all(&request)
        .await
        .map_err(|e| Error::io(&target, e))?;
    let answer = tcp.read_u8().await.map_err(|e| Error::io(&target, e))?;
    match answer {
        b'S' => {}
        b'N' if config.sslmode == SslMode::Prefer => return Ok(Transport::Tcp(tcp)),
        b'N' => return Err(Error::TlsUnavailable(target)),
        other => {
            return Err(Error::protocol(format!(
                "unexpected answer {other:#x} to the TLS request"
            )));
        }
    }
    let connector = config.tls_connector()?;
    let tls = tokio_native_tls::TlsConnector::from(connector)
        .connect(host, tcp)
        .await
        .map_err(|source| Error::Tls { target, source })?;
    Ok(Transport::Tls(Box::new(tls)))
}

pub(crate) fn server_error(mut fields: ErrorFields<'_>) -> Error {
    let mut severity = String::new();
    let mut code = String::new();
    let mut message = String::new();
    let mut detail = None;
    let mut hint = None;
    while let Ok(Some(field)) = fields.next() {
        let value = String::from_utf8_lossy(field.value_bytes()).into_owned();
        match field.type_() {
            b'S' => severity = value,
            b'C' => code = value,
            b'M' => message = value,
            b'D' => detail = Some(value),
            b'H' => hint = Some(value),
            _ => {}
        }
    }
    Error::Server(Box::new(ServerError::new(
        severity, code, message, detail, hint,
    )))
}

/// `15.18 (Debian 15.18-0+deb12u1)` → 150018; `9.6.24` → 90624.
fn parse_server_version(version: &str) -> Option<u32> {
    let numeric = version
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()?;
    let mut parts = numeric.split('.').map(str::parse::<u32>);
    let major = parts.next()?.ok()?;
    let minor = parts.next().and_then(Result::ok).unwrap_or(0);
    if major >= 10 {
        Some(major * 10_000 + minor)
    } else {
        let patch = parts.next().and_then(Result::ok).unwrap_or(0);
        Some(major * 10_000 + minor * 100 + patch)
    }
}

fn parse_lsn(text: &str) -> Result<Lsn, Error> {
    text.parse()
        .map_err(|_| Error::protocol(format!("{text:?} is not an LSN")))
}

/// Slot names are lower-case letters, digits and underscores in PostgreSQL; checking that here
/// also keeps them safe to splice into replication commands.
pub(crate) fn check_slot_name(name: &str) -> Result<(), Error> {
    let valid = !name.is_empty()
        && name.len() < 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(Error::protocol(format!(
            "invalid replication slot name {name:?}: use lower-case letters, digits and underscores (at most 63)"
        )))
    }
}

/// How long data sent may stay unacknowledged before the socket fails.
const UNACKNOWLEDGED_LIMIT: Duration = Duration::from_secs(60);

/// Bounds how long the kernel waits on a dead peer: unacknowledged data (a status update into
/// a network that lost the server) fails the socket after [`UNACKNOWLEDGED_LIMIT`], and an
/// idle connection is probed after 30 s, then every 10 s, three times. Without them a read or
/// a write waits until TCP's own retransmissions give up, about 15 minutes on Linux.
fn bound_silence(tcp: &TcpStream) -> std::io::Result<()> {
    let socket = socket2::SockRef::from(tcp);
    socket.set_tcp_keepalive(
        &socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(30))
            .with_interval(Duration::from_secs(10))
            .with_retries(3),
    )?;
    #[cfg(target_os = "linux")]
    socket.set_tcp_user_timeout(Some(UNACKNOWLEDGED_LIMIT))?;
    Ok(())
}

/// Data already read from the socket but not yet parsed, for the stream.
pub(crate) fn take_copy_data(frame: Backend) -> Result<Option<Bytes>, Backend> {
    match frame {
        Backend::Message(Message::CopyData(body)) => Ok(Some(body.into_bytes())),
        Backend::Message(Message::CopyDone) => Ok(None),
        other => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_versions_parse_as_server_version_num() {
        assert_eq!(
            parse_server_version("15.18 (Debian 15.18-0+deb12u1)"),
            Some(150018)
        );
        assert_eq!(parse_server_version("17.10"), Some(170010));
        assert_eq!(parse_server_version("16beta1"), Some(160000));
        assert_eq!(parse_server_version("9.6.24"), Some(90624));
        assert_eq!(parse_server_version("x"), None);
    }

    #[test]
    fn slot_names_are_checked() {
        assert!(check_slot_name("sluice_1").is_ok());
        for bad in ["", "Upper", "a-b", "a;DROP", &"x".repeat(64)] {
            assert!(check_slot_name(bad).is_err(), "{bad}");
        }
    }
}
