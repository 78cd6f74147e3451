//! `inet`, `cidr`, `macaddr` and `macaddr8` as the strings PostgreSQL prints, from either
//! form. Text is parsed and printed again, so both forms go through the same printer.

use std::fmt::Write as _;

use crate::binary_form::BinaryReader;
use crate::formats::{decimal, hex};

/// PostgreSQL's address families in the binary form: `AF_INET`, and `PGSQL_AF_INET6`
/// (`AF_INET + 1`, not the platform's `AF_INET6`).
const FAMILY_V4: u8 = 2;
const FAMILY_V6: u8 = 3;

/// An `inet` or `cidr` value: an address and its netmask length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Address {
    v6: bool,
    bits: u8,
    /// IPv4 in the first 4 bytes.
    bytes: [u8; 16],
}

impl Address {
    fn width(self) -> u8 {
        if self.v6 { 128 } else { 32 }
    }

    fn len(self) -> usize {
        if self.v6 { 16 } else { 4 }
    }

    /// The binary form: family, bits, is_cidr, address length, address bytes.
    pub(crate) fn of_binary(raw: &[u8]) -> Option<Self> {
        let mut reader = BinaryReader::new(raw);
        let v6 = match reader.u8()? {
            FAMILY_V4 => false,
            FAMILY_V6 => true,
            _ => return None,
        };
        let bits = reader.u8()?;
        // The flag says which type the value was sent as; the column's type decides how
        // it prints, as PostgreSQL's output functions do.
        if reader.u8()? > 1 {
            return None;
        }
        let mut address = Address {
            v6,
            bits,
            bytes: [0; 16],
        };
        let len = address.len();
        if usize::from(reader.u8()?) != len || bits > address.width() {
            return None;
        }
        address.bytes[..len].copy_from_slice(reader.take(len)?);
        reader.end()?;
        Some(address)
    }

    /// PostgreSQL's text form: `192.168.0.1/24`, `::ffff:1.2.3.4`, `2001:db8::/32`.
    pub(crate) fn of_text(text: &str) -> Option<Self> {
        let (host, bits) = match text.split_once('/') {
            Some((host, bits)) => (host, Some(bits)),
            None => (text, None),
        };
        let mut address = Address {
            v6: host.contains(':'),
            bits: 0,
            bytes: [0; 16],
        };
        if address.v6 {
            parse_v6(host, &mut address.bytes)?;
        } else {
            parse_v4(host, &mut address.bytes[..4])?;
        }
        address.bits = match bits {
            None => address.width(),
            Some(bits) => decimal(bits)?,
        };
        (address.bits <= address.width()).then_some(address)
    }

    /// As PostgreSQL prints it: `inet` omits a host's full netmask (`/32`, `/128`), `cidr`
    /// always shows it.
    pub(crate) fn format(self, out: &mut String, cidr: bool) {
        if self.v6 {
            format_v6(out, &self.bytes);
        } else {
            format_v4(out, &self.bytes[..4]);
        }
        if cidr || self.bits != self.width() {
            let _ = write!(out, "/{}", self.bits);
        }
    }
}

fn format_v4(out: &mut String, octets: &[u8]) {
    for (i, octet) in octets.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        let _ = write!(out, "{octet}");
    }
}

/// The compressed form PostgreSQL's `inet_net_ntop` prints: the first longest run of at
/// least two zero words becomes `::`, words are lower-case hex without leading zeros, and
/// the last 32 bits print as dotted IPv4 after six zero words (`::1.2.3.4`) or after five
/// and `ffff` (`::ffff:1.2.3.4`).
fn format_v6(out: &mut String, bytes: &[u8; 16]) {
    let mut words = [0u16; 8];
    for (word, pair) in words.iter_mut().zip(bytes.chunks_exact(2)) {
        *word = u16::from_be_bytes([pair[0], pair[1]]);
    }
    // The first longest run of zero words: (start, length).
    let mut best = (0, 0);
    let mut run = (0, 0);
    for (i, &word) in words.iter().enumerate() {
        if word == 0 {
            run = if run.1 == 0 {
                (i, 1)
            } else {
                (run.0, run.1 + 1)
            };
            if run.1 > best.1 {
                best = run;
            }
        } else {
            run = (0, 0);
        }
    }
    let zeros = if best.1 >= 2 { Some(best) } else { None };
    for (i, word) in words.iter().enumerate() {
        if let Some((start, length)) = zeros
            && (start..start + length).contains(&i)
        {
            if i == start {
                out.push(':');
            }
            continue;
        }
        if i > 0 {
            out.push(':');
        }
        let embedded_v4 =
            i == 6 && (zeros == Some((0, 6)) || (zeros == Some((0, 5)) && words[5] == 0xffff));
        if embedded_v4 {
            format_v4(out, &bytes[12..]);
            break;
        }
        let _ = write!(out, "{word:x}");
    }
    if let Some((start, length)) = zeros
        && start + length == words.len()
    {
        out.push(':');
    }
}

fn parse_v4(text: &str, out: &mut [u8]) -> Option<()> {
    let mut octets = text.split('.');
    for byte in out.iter_mut() {
        *byte = decimal(octets.next()?)?;
    }
    octets.next().is_none().then_some(())
}

/// Eight hex words, or fewer around one `::`; the last two words may be dotted IPv4.
fn parse_v6(text: &str, out: &mut [u8; 16]) -> Option<()> {
    let (head, tail) = match text.split_once("::") {
        Some((head, tail)) => (head, Some(tail)),
        None => (text, None),
    };
    let mut words = [0u16; 8];
    let head_count = parse_words(head, &mut words)?;
    let mut count = head_count;
    if let Some(tail) = tail {
        let mut tail_words = [0u16; 8];
        let tail_count = parse_words(tail, &mut tail_words)?;
        count += tail_count;
        if count > 7 {
            return None;
        }
        words[8 - tail_count..].copy_from_slice(&tail_words[..tail_count]);
    } else if count != 8 {
        return None;
    }
    for (pair, word) in out.chunks_exact_mut(2).zip(words) {
        pair.copy_from_slice(&word.to_be_bytes());
    }
    Some(())
}

/// `:`-separated hex words (the last possibly dotted IPv4, two words) into `words`; returns
/// how many. The empty string is none.
fn parse_words(text: &str, words: &mut [u16; 8]) -> Option<usize> {
    if text.is_empty() {
        return Some(0);
    }
    let mut count = 0;
    let mut groups = text.split(':').peekable();
    while let Some(group) = groups.next() {
        if groups.peek().is_none() && group.contains('.') {
            let mut v4 = [0u8; 4];
            parse_v4(group, &mut v4)?;
            *words.get_mut(count)? = u16::from_be_bytes([v4[0], v4[1]]);
            *words.get_mut(count + 1)? = u16::from_be_bytes([v4[2], v4[3]]);
            return Some(count + 2);
        }
        if group.len() > 4 {
            return None;
        }
        *words.get_mut(count)? = u16::try_from(hex(group)?).ok()?;
        count += 1;
    }
    Some(count)
}

/// `macaddr` (6 bytes) and `macaddr8` (8): lower-case hex pairs joined by `:`.
pub(crate) fn format_mac(out: &mut String, bytes: &[u8]) {
    for (i, byte) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{byte:02x}");
    }
}

/// A MAC address as PostgreSQL prints it (`08:00:2b:01:02:03`) into `N` bytes.
pub(crate) fn parse_mac<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut bytes = [0u8; N];
    let mut pairs = text.split(':');
    for byte in &mut bytes {
        let pair = pairs.next()?;
        if pair.len() != 2 {
            return None;
        }
        *byte = u8::try_from(hex(pair)?).ok()?;
    }
    pairs.next().is_none().then_some(bytes)
}
