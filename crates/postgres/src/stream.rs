//! The replication stream: CopyBoth mode, entered by `START_REPLICATION`
//! ([`ReplicationConnection::start_replication`]) and left by [`ReplicationStream::finish`].
//!
//! Three LSNs are kept apart. `received` is how far the server has sent WAL; `flushed` is
//! what the caller has made durable (in sluice: acknowledged by the broker) and confirmed
//! with [`ReplicationStream::confirm`]; PostgreSQL may recycle WAL and advances the slot's
//! `confirmed_flush_lsn` only up to `flushed`, which is also reported as applied. `flushed`
//! never moves backwards.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use sluice_pgoutput::{
    Lsn, PgTimestamp, PrimaryKeepalive, ReplicationMessage, StandbyStatusUpdate, XLogData,
};
use tokio::time::Instant;

use crate::connection::{
    Backend, ReplicationConnection, check_slot_name, server_error, take_copy_data,
};
use crate::error::Error;
use crate::options::{PgOutputOptions, ProtocolChoice};

/// How often a status update is sent while the stream is otherwise quiet. Well under the
/// server's `wal_sender_timeout` (60 s by default, 10 s on the local stack), so the walsender
/// never drops us for silence even when no keepalive asks for a reply.
pub const DEFAULT_STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// How long [`ReplicationStream::finish`] waits for the server to end the copy.
const FINISH_TIMEOUT: Duration = Duration::from_secs(10);

/// What the server sent.
#[derive(Debug)]
pub enum StreamEvent {
    /// WAL data: one pgoutput message.
    XLogData(XLogData),
    /// A keepalive. One that asked for a reply has already been answered.
    Keepalive(PrimaryKeepalive),
}

impl ReplicationConnection {
    /// `START_REPLICATION SLOT <slot> LOGICAL <start>` with the pgoutput options `choice`
    /// gives, and hands the connection over to the stream.
    pub async fn start_replication(
        mut self,
        slot: &str,
        start: Lsn,
        options: &PgOutputOptions,
        choice: ProtocolChoice,
    ) -> Result<ReplicationStream, Error> {
        check_slot_name(slot)?;
        let mut command = format!("START_REPLICATION SLOT {slot} LOGICAL {start} (");
        let _ = write!(
            command,
            "\"proto_version\" '{}', \"publication_names\" {}",
            choice.protocol_version,
            quote_literal(&publication_list(&options.publications))
        );
        if choice.binary {
            command.push_str(", \"binary\" 'true'");
        }
        if choice.messages {
            command.push_str(", \"messages\" 'true'");
        }
        if let Some(streaming) = choice.streaming.option_value() {
            let _ = write!(command, ", \"streaming\" '{streaming}'");
        }
        command.push(')');
        frontend::query(&command, self.write_buf()).map_err(|e| Error::io(self.target(), e))?;
        self.flush().await?;
        match self.read_frame().await? {
            Backend::CopyBothResponse => Ok(ReplicationStream::new(self, choice, start)),
            Backend::Message(Message::ErrorResponse(body)) => {
                let err = server_error(body.fields());
                self.wait_ready().await?;
                Err(err)
            }
            Backend::Message(_) => {
                Err(Error::protocol("START_REPLICATION did not enter copy mode"))
            }
        }
    }
}

/// A replication connection in CopyBoth mode.
#[derive(Debug)]
pub struct ReplicationStream {
    conn: ReplicationConnection,
    choice: ProtocolChoice,
    received: Lsn,
    flushed: Lsn,
    status_interval: Duration,
    next_status: Instant,
    /// A keepalive asked for a reply while the caller took buffered messages only; it goes
    /// out at the next [`ReplicationStream::next`].
    reply_owed: bool,
    ended: bool,
}

impl ReplicationStream {
    fn new(conn: ReplicationConnection, choice: ProtocolChoice, start: Lsn) -> Self {
        ReplicationStream {
            conn,
            choice,
            received: start,
            flushed: start,
            status_interval: DEFAULT_STATUS_INTERVAL,
            next_status: Instant::now() + DEFAULT_STATUS_INTERVAL,
            reply_owed: false,
            ended: false,
        }
    }

    /// The protocol options in force, for the decoder.
    pub fn protocol(&self) -> ProtocolChoice {
        self.choice
    }

    /// Sets how often unprompted status updates go out.
    pub fn set_status_interval(&mut self, interval: Duration) {
        self.status_interval = interval;
        self.next_status = Instant::now() + interval;
    }

    /// The highest WAL position the server has reported sending.
    pub fn received(&self) -> Lsn {
        self.received
    }

    /// The position confirmed to the server as flushed.
    pub fn flushed(&self) -> Lsn {
        self.flushed
    }

    /// Marks everything up to `lsn` as durable downstream. Goes out with the next status
    /// update; a smaller LSN than one confirmed before is ignored.
    pub fn confirm(&mut self, lsn: Lsn) {
        if lsn > self.flushed {
            self.flushed = lsn;
        }
        debug_assert!(
            self.flushed <= self.received.max(self.flushed),
            "flushed never passes what was received"
        );
    }

    /// The next message from the server; `None` once the server has ended the stream.
    /// Answers keepalives that ask for a reply and sends periodic status updates while it
    /// waits, so the walsender never times out on us.
    pub async fn next(&mut self) -> Result<Option<StreamEvent>, Error> {
        if self.reply_owed {
            self.send_status(false).await?;
        }
        loop {
            if let Some(event) = self.try_next()? {
                if self.reply_owed {
                    self.send_status(false).await?;
                }
                return Ok(Some(event));
            }
            if self.ended {
                return Ok(None);
            }
            if self.status_due() {
                self.send_status(false).await?;
            }
            tokio::select! {
                biased;
                read = self.conn.fill() => read?,
                () = tokio::time::sleep_until(self.next_status) => self.send_status(false).await?,
            }
        }
    }

    /// The next message from the server, reading the socket as needed but never writing:
    /// cancel-safe, for a caller that sends the status updates itself, when
    /// [`ReplicationStream::status_at`] says (a keepalive that asks for a reply makes that
    /// now). `None` once the server has ended the stream.
    pub async fn recv(&mut self) -> Result<Option<StreamEvent>, Error> {
        loop {
            if let Some(event) = self.try_next()? {
                return Ok(Some(event));
            }
            if self.ended {
                return Ok(None);
            }
            self.conn.fill().await?;
        }
    }

    /// When the next status update is due: the periodic one, or now when a keepalive asked
    /// for a reply.
    pub fn status_at(&self) -> Instant {
        if self.reply_owed {
            Instant::now()
        } else {
            self.next_status
        }
    }

    /// The next message already read from the socket, without waiting or writing: for a
    /// caller that handles everything a read brought before it waits again. A keepalive that
    /// asks for a reply is answered by the next [`ReplicationStream::next`].
    pub fn try_next(&mut self) -> Result<Option<StreamEvent>, Error> {
        if self.ended {
            return Ok(None);
        }
        let Some(frame) = self.conn.try_frame()? else {
            return Ok(None);
        };
        let Some(data) = self.copy_data(frame)? else {
            self.ended = true;
            return Ok(None);
        };
        match ReplicationMessage::decode(data)? {
            ReplicationMessage::XLogData(xlog) => {
                self.received = self.received.max(xlog.wal_start());
                Ok(Some(StreamEvent::XLogData(xlog)))
            }
            ReplicationMessage::PrimaryKeepalive(keepalive) => {
                self.received = self.received.max(keepalive.wal_end());
                self.reply_owed |= keepalive.reply_requested();
                Ok(Some(StreamEvent::Keepalive(keepalive)))
            }
            _ => Err(Error::protocol("unknown replication message")),
        }
    }

    /// Moves what a Unix socket already holds into the read buffer, without waiting: for a
    /// caller busy with earlier messages, so that the server's writes do not stall on the full
    /// socket meanwhile (it holds only ~200 small messages; over TCP, whose buffers hold
    /// megabytes, this does nothing). Whether it read any.
    pub fn read_ahead(&mut self) -> Result<bool, Error> {
        if self.ended {
            return Ok(false);
        }
        self.conn.try_fill()
    }

    fn copy_data(&mut self, frame: Backend) -> Result<Option<Bytes>, Error> {
        stream_data(frame)
    }

    /// Whether an unprompted status update is due; for callers busy with other work.
    pub fn status_due(&self) -> bool {
        Instant::now() >= self.next_status
    }

    /// Sends a standby status update now: received as written, `flushed` as flushed and
    /// applied.
    pub async fn send_status(&mut self, reply_requested: bool) -> Result<(), Error> {
        let update = StandbyStatusUpdate {
            written: self.received,
            flushed: self.flushed,
            applied: self.flushed,
            client_time: PgTimestamp::from_system_time(SystemTime::now()),
            reply_requested,
        };
        let mut payload = bytes::BytesMut::with_capacity(34);
        update.encode(&mut payload);
        frontend::CopyData::new(&payload[..])
            .map_err(|e| Error::io(self.conn.target(), e))?
            .write(self.conn.write_buf());
        self.conn.flush().await?;
        self.reply_owed = false;
        self.next_status = Instant::now() + self.status_interval;
        tracing::trace!(received = %self.received, flushed = %self.flushed, "status update sent");
        Ok(())
    }

    /// Ends the stream cleanly: a last status update, CopyDone, then waits for the server to
    /// finish its side and returns the connection, ready for commands again.
    pub async fn finish(mut self) -> Result<ReplicationConnection, Error> {
        self.send_status(false).await?;
        frontend::copy_done(self.conn.write_buf());
        self.conn.flush().await?;
        tokio::time::timeout(FINISH_TIMEOUT, async {
            loop {
                match self.conn.read_frame().await? {
                    Backend::Message(Message::ReadyForQuery(_)) => return Ok(()),
                    Backend::Message(Message::ErrorResponse(body)) => {
                        return Err(server_error(body.fields()));
                    }
                    // Data still in flight, the server's CopyDone, CommandComplete.
                    _ => {}
                }
            }
        })
        .await
        .map_err(|_| Error::protocol("the server did not end the stream after CopyDone"))??;
        Ok(self.conn)
    }
}

/// `pub1,"Pub 2"`: the identifier list pgoutput's `publication_names` parses.
fn publication_list(publications: &[String]) -> String {
    publications
        .iter()
        .map(|name| format!("\"{}\"", name.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(",")
}

fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A frame of the replication stream: its data, or `None` at its end.
fn stream_data(frame: Backend) -> Result<Option<Bytes>, Error> {
    match take_copy_data(frame) {
        Ok(data) => Ok(data),
        // A walsender stopping for a server shutdown, once everything it sent is confirmed,
        // ends the COPY with CommandComplete alone, no CopyDone (walsender.c, WalSndDone).
        Err(Backend::Message(Message::CommandComplete(_))) => Ok(None),
        Err(Backend::Message(Message::ErrorResponse(body))) => Err(server_error(body.fields())),
        Err(_) => Err(Error::protocol(
            "unexpected message in the replication stream",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(bytes: &[u8]) -> Backend {
        let mut buf = bytes::BytesMut::from(bytes);
        match Message::parse(&mut buf) {
            Ok(Some(message)) => Backend::Message(message),
            _ => panic!("a whole message"),
        }
    }

    #[test]
    fn a_shutdown_walsender_ends_the_stream_with_command_complete_alone() {
        let command_complete = frame(b"C\0\0\0\x0bCOPY 0\0");
        assert!(matches!(stream_data(command_complete), Ok(None)));
        let copy_done = frame(b"c\0\0\0\x04");
        assert!(matches!(stream_data(copy_done), Ok(None)));
        let data = frame(b"d\0\0\0\x05k");
        assert_eq!(stream_data(data).unwrap().as_deref(), Some(&b"k"[..]));
        let ready = frame(b"Z\0\0\0\x05I");
        assert!(stream_data(ready).is_err());
    }

    #[test]
    fn publication_names_are_quoted() {
        let names = ["a".to_owned(), "We\"ird's".to_owned()];
        assert_eq!(
            quote_literal(&publication_list(&names)),
            r#"'"a","We""ird''s"'"#
        );
    }
}
