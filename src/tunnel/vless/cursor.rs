//! A read position over a partial buffer that turns "not enough bytes yet"
//! into a lower bound on the bytes a whole header needs.

use super::{Decoded, VlessError};

/// Why parsing stopped before a value was complete.
#[derive(Debug)]
pub(super) enum Stop {
    /// The buffer ended early; a valid header is at least this long.
    Short(usize),
    Bad(VlessError),
}

impl From<VlessError> for Stop {
    fn from(e: VlessError) -> Self {
        Stop::Bad(e)
    }
}

pub(super) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// Runs `parse` from the start of `buf` and reports how far it got.
    pub(super) fn run<T>(
        buf: &'a [u8],
        parse: impl FnOnce(&mut Cursor<'a>) -> Result<T, Stop>,
    ) -> Result<Decoded<T>, VlessError> {
        let mut cursor = Cursor { buf, pos: 0 };
        match parse(&mut cursor) {
            Ok(value) => Ok(Decoded::Complete {
                value,
                consumed: cursor.pos,
            }),
            Err(Stop::Short(need_at_least)) => Ok(Decoded::Incomplete { need_at_least }),
            Err(Stop::Bad(e)) => Err(e),
        }
    }

    /// Takes the next `n` bytes. When they are not all there, asks for them
    /// plus `then` more: the fewest bytes any valid header has after them.
    /// The tighter the bound, the fewer reads a driver makes.
    pub(super) fn take(&mut self, n: usize, then: usize) -> Result<&'a [u8], Stop> {
        let end = self.pos + n;
        let Some(bytes) = self.buf.get(self.pos..end) else {
            return Err(Stop::Short(end + then));
        };
        self.pos = end;
        Ok(bytes)
    }

    pub(super) fn byte(&mut self, then: usize) -> Result<u8, Stop> {
        Ok(self.take(1, then)?[0])
    }

    pub(super) fn array<const N: usize>(&mut self, then: usize) -> Result<[u8; N], Stop> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, then)?);
        Ok(out)
    }

    pub(super) fn u16_be(&mut self, then: usize) -> Result<u16, Stop> {
        self.array(then).map(u16::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_reads_ask_for_the_field_and_what_follows() {
        let r = Cursor::run(&[1, 2, 3], |c| {
            c.take(2, 0)?;
            c.u16_be(5)
        });
        assert_eq!(r, Ok(Decoded::Incomplete { need_at_least: 9 }));
    }

    #[test]
    fn complete_reports_bytes_read_not_buffer_length() {
        let r = Cursor::run(&[0xab, 0xcd, 0xef], |c| c.u16_be(0));
        assert_eq!(
            r,
            Ok(Decoded::Complete {
                value: 0xabcd,
                consumed: 2
            })
        );
    }

    #[test]
    fn errors_pass_through() {
        let r: Result<Decoded<()>, _> = Cursor::run(&[], |_| Err(VlessError::BadDomain.into()));
        assert_eq!(r, Err(VlessError::BadDomain));
    }
}
