//! The protobuf wire format: a message is a sequence of (field number, wire type, value).
//! Only what Kubernetes' messages use: varints, 64- and 32-bit fixed values and
//! length-delimited bytes (strings, bytes, nested messages, packed repeated numbers).

/// Why bytes are not a well-formed protobuf message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("truncated")]
    Truncated,
    #[error("a varint longer than 10 bytes")]
    VarintOverflow,
    #[error("field number 0")]
    ZeroField,
    #[error("wire type {0} (groups are not used by Kubernetes)")]
    WireType(u8),
}

/// One field's value as it is on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl Wire<'_> {
    /// The wire type's name, for errors.
    pub fn name(&self) -> &'static str {
        match self {
            Wire::Varint(_) => "varint",
            Wire::Fixed64(_) => "64-bit",
            Wire::Bytes(_) => "length-delimited",
            Wire::Fixed32(_) => "32-bit",
        }
    }
}

/// Reads a message's fields in order.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// The next (field number, value), `None` at the end of the message.
    pub fn field(&mut self) -> Result<Option<(u32, Wire<'a>)>, WireError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).map_err(|_| WireError::VarintOverflow)?;
        if number == 0 {
            return Err(WireError::ZeroField);
        }
        let value = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => Wire::Fixed64(u64::from_le_bytes(
                self.take(8)?.try_into().unwrap_or([0; 8]),
            )),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| WireError::Truncated)?;
                Wire::Bytes(self.take(len)?)
            }
            5 => Wire::Fixed32(u32::from_le_bytes(
                self.take(4)?.try_into().unwrap_or([0; 4]),
            )),
            other => return Err(WireError::WireType(other as u8)),
        };
        Ok(Some((number, value)))
    }

    /// A base-128 varint, least significant group first.
    pub fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some((&byte, rest)) = self.buf.split_first() else {
                return Err(WireError::Truncated);
            };
            self.buf = rest;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::VarintOverflow)
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_wire_type() {
        // 1: varint 150, 2: "hi", 3: fixed64 1, 4: fixed32 2
        let bytes = [
            0x08, 0x96, 0x01, 0x12, 2, b'h', b'i', 0x19, 1, 0, 0, 0, 0, 0, 0, 0, 0x25, 2, 0, 0, 0,
        ];
        let mut r = Reader::new(&bytes);
        assert_eq!(r.field(), Ok(Some((1, Wire::Varint(150)))));
        assert_eq!(r.field(), Ok(Some((2, Wire::Bytes(b"hi")))));
        assert_eq!(r.field(), Ok(Some((3, Wire::Fixed64(1)))));
        assert_eq!(r.field(), Ok(Some((4, Wire::Fixed32(2)))));
        assert_eq!(r.field(), Ok(None));
    }

    #[test]
    fn rejects_bad_input_without_panicking() {
        assert_eq!(
            Reader::new(&[0x12, 5, b'a']).field(),
            Err(WireError::Truncated)
        );
        assert_eq!(Reader::new(&[0x08]).field(), Err(WireError::Truncated));
        let long = [&[0x08][..], &[0xff; 10], &[1]].concat();
        assert_eq!(Reader::new(&long).field(), Err(WireError::VarintOverflow));
        assert_eq!(Reader::new(&[0x00, 1]).field(), Err(WireError::ZeroField));
        assert_eq!(Reader::new(&[0x0b]).field(), Err(WireError::WireType(3)));
        assert_eq!(
            Reader::new(&[0x09, 1, 2]).field(),
            Err(WireError::Truncated)
        );
    }
}
