//! Which pgoutput protocol to ask for, from what the server's version supports.

use sluice_pgoutput::DecoderOptions;

/// What the caller wants from pgoutput; [`ProtocolChoice::for_server`] narrows it to what the
/// server can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOutputOptions {
    pub publications: Vec<String>,
    /// Column values in binary form where the server supports it (14+).
    pub binary: bool,
    /// Logical decoding messages (`pg_logical_emit_message`, 14+).
    pub messages: bool,
    /// Stream large in-progress transactions instead of spilling them on the server (14+).
    pub streaming: bool,
}

impl PgOutputOptions {
    pub fn new(publications: Vec<String>) -> Self {
        PgOutputOptions {
            publications,
            binary: false,
            messages: true,
            streaming: true,
        }
    }
}

/// How in-progress transactions are streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streaming {
    Off,
    /// `streaming 'on'` (protocol 2 and 3).
    On,
    /// `streaming 'parallel'` (protocol 4): Stream Abort also carries the abort LSN and time.
    Parallel,
}

impl Streaming {
    pub(crate) fn option_value(self) -> Option<&'static str> {
        match self {
            Streaming::Off => None,
            Streaming::On => Some("on"),
            Streaming::Parallel => Some("parallel"),
        }
    }
}

/// The options actually sent with `START_REPLICATION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolChoice {
    pub protocol_version: u32,
    pub binary: bool,
    pub messages: bool,
    pub streaming: Streaming,
}

impl ProtocolChoice {
    /// The newest protocol `server_version_num` speaks: v4 with parallel streaming on 16+,
    /// v2 with streaming on 14 and 15, v1 below (where binary, messages and streaming are
    /// unavailable).
    pub fn for_server(server_version_num: u32, wanted: &PgOutputOptions) -> Self {
        let (protocol_version, streaming) = match server_version_num {
            160_000.. => (4, Streaming::Parallel),
            140_000.. => (2, Streaming::On),
            _ => (1, Streaming::Off),
        };
        let modern = server_version_num >= 140_000;
        ProtocolChoice {
            protocol_version,
            binary: wanted.binary && modern,
            messages: wanted.messages && modern,
            streaming: if wanted.streaming {
                streaming
            } else {
                Streaming::Off
            },
        }
    }

    /// How the decoder must read what this choice makes the server send.
    pub fn decoder_options(&self) -> DecoderOptions {
        DecoderOptions {
            protocol_version: self.protocol_version,
            streaming_abort_info: self.streaming == Streaming::Parallel,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_by_server_version() {
        let mut wanted = PgOutputOptions::new(vec!["p".into()]);
        wanted.binary = true;
        let v13 = ProtocolChoice::for_server(130_012, &wanted);
        assert_eq!(
            (
                v13.protocol_version,
                v13.streaming,
                v13.binary,
                v13.messages
            ),
            (1, Streaming::Off, false, false)
        );
        let v15 = ProtocolChoice::for_server(150_018, &wanted);
        assert_eq!(
            (
                v15.protocol_version,
                v15.streaming,
                v15.binary,
                v15.messages
            ),
            (2, Streaming::On, true, true)
        );
        let v17 = ProtocolChoice::for_server(170_010, &wanted);
        assert_eq!(
            (v17.protocol_version, v17.streaming),
            (4, Streaming::Parallel)
        );
        assert!(v17.decoder_options().streaming_abort_info);
        wanted.streaming = false;
        assert_eq!(
            ProtocolChoice::for_server(170_010, &wanted).streaming,
            Streaming::Off
        );
    }
}
