//! Reading PostgreSQL's binary send formats: big-endian fields with checked lengths. Every
//! read returns `None` past the end instead of panicking.

/// A cursor over one value's binary form.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BinaryReader<'a> {
    rest: &'a [u8],
}

impl<'a> BinaryReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        BinaryReader { rest: bytes }
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.array()?))
    }

    pub(crate) fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.array()?))
    }

    pub(crate) fn f64(&mut self) -> Option<f64> {
        Some(f64::from_be_bytes(self.array()?))
    }

    /// A NUL-terminated string (the NUL read, not returned).
    pub(crate) fn cstring(&mut self) -> Option<&'a [u8]> {
        let length = self.rest.iter().position(|&b| b == 0)?;
        let text = self.take(length)?;
        self.take(1)?;
        Some(text)
    }

    /// A length-prefixed field: `int32` length, then that many bytes; `-1` is NULL
    /// (`Some(None)`). Any other negative length is malformed (`None`).
    pub(crate) fn field(&mut self) -> Option<Option<&'a [u8]>> {
        match self.i32()? {
            -1 => Some(None),
            length => Some(Some(self.take(usize::try_from(length).ok()?)?)),
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// `Some(())` when every byte was read: trailing bytes make a value malformed.
    pub(crate) fn end(&self) -> Option<()> {
        self.rest.is_empty().then_some(())
    }
}

/// The whole of `bytes` as one fixed-size field.
pub(crate) fn exact<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    bytes.try_into().ok()
}
