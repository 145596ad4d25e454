//! A small, defensive BER reader (X.690) sufficient for CMS and X.509.
//!
//! Handles low and high tag numbers, short/long definite lengths, indefinite
//! lengths (constructed encodings only) and constructed string segments.
//! Every access is bounds-checked; nesting depth is capped so hostile input can
//! neither recurse without bound nor panic, and every allocation is bounded by
//! the size of the input.

use std::borrow::Cow;

/// Maximum nesting depth of constructed encodings we are willing to follow.
pub(crate) const MAX_DEPTH: usize = 32;

/// Largest tag number accepted (4 base-128 octets).
const MAX_TAG_NUMBER: u32 = (1 << 28) - 1;

pub(crate) const CLASS_UNIVERSAL: u8 = 0;
pub(crate) const CLASS_CONTEXT: u8 = 2;

pub(crate) const TAG_BOOLEAN: u32 = 1;
pub(crate) const TAG_INTEGER: u32 = 2;
pub(crate) const TAG_BIT_STRING: u32 = 3;
pub(crate) const TAG_OCTET_STRING: u32 = 4;
pub(crate) const TAG_NULL: u32 = 5;
pub(crate) const TAG_OID: u32 = 6;
pub(crate) const TAG_SEQUENCE: u32 = 16;
pub(crate) const TAG_SET: u32 = 17;

/// Any structural problem in the encoding. Deliberately carries no detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BerError;

pub(crate) type BerResult<T> = Result<T, BerError>;

/// One decoded TLV.
#[derive(Clone, Copy)]
pub(crate) struct Element<'a> {
    pub class: u8,
    pub constructed: bool,
    pub number: u32,
    /// Contents octets (for indefinite lengths: without the end-of-contents).
    pub body: &'a [u8],
    /// The complete encoding: identifier, length, contents (and end-of-contents).
    pub raw: &'a [u8],
    depth: usize,
}

/// Sequential reader over the contents of a constructed encoding.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    depth: usize,
}

fn take_byte(data: &[u8], pos: &mut usize) -> BerResult<u8> {
    let b = *data.get(*pos).ok_or(BerError)?;
    *pos = pos.checked_add(1).ok_or(BerError)?;
    Ok(b)
}

/// Parse one element from the start of `data`; returns it and its total size.
fn parse_element(data: &[u8], depth: usize) -> BerResult<(Element<'_>, usize)> {
    if depth > MAX_DEPTH {
        return Err(BerError);
    }
    let mut pos = 0usize;
    let id = take_byte(data, &mut pos)?;
    let class = id >> 6;
    let constructed = id & 0x20 != 0;
    let mut number = u32::from(id & 0x1f);
    if number == 0x1f {
        number = 0;
        let mut count = 0usize;
        loop {
            let b = take_byte(data, &mut pos)?;
            if count == 0 && b == 0x80 {
                return Err(BerError); // non-minimal high tag number
            }
            count += 1;
            if count > 4 {
                return Err(BerError);
            }
            number = (number << 7) | u32::from(b & 0x7f);
            if b & 0x80 == 0 {
                break;
            }
        }
        if !(0x1f..=MAX_TAG_NUMBER).contains(&number) {
            return Err(BerError);
        }
    } else if class == CLASS_UNIVERSAL && number == 0 {
        // End-of-contents is never a valid element on its own.
        return Err(BerError);
    }

    let first_len = take_byte(data, &mut pos)?;
    if first_len == 0x80 {
        // Indefinite length: constructed only; contents run to end-of-contents.
        if !constructed {
            return Err(BerError);
        }
        let start = pos;
        loop {
            let rest = data.get(pos..).ok_or(BerError)?;
            match rest {
                [0, 0, ..] => {
                    let body = data.get(start..pos).ok_or(BerError)?;
                    let end = pos.checked_add(2).ok_or(BerError)?;
                    let raw = data.get(..end).ok_or(BerError)?;
                    let el = Element {
                        class,
                        constructed,
                        number,
                        body,
                        raw,
                        depth,
                    };
                    return Ok((el, end));
                }
                [] => return Err(BerError),
                _ => {
                    let (_, used) = parse_element(rest, depth.checked_add(1).ok_or(BerError)?)?;
                    pos = pos.checked_add(used).ok_or(BerError)?;
                }
            }
        }
    }

    let len: usize = if first_len < 0x80 {
        usize::from(first_len)
    } else {
        let n = usize::from(first_len & 0x7f);
        if n == 0x7f || n > 4 {
            return Err(BerError); // reserved, or larger than any envelope we accept
        }
        let mut len = 0usize;
        for _ in 0..n {
            let b = take_byte(data, &mut pos)?;
            len = len
                .checked_mul(256)
                .and_then(|l| l.checked_add(usize::from(b)))
                .ok_or(BerError)?;
        }
        len
    };
    let end = pos.checked_add(len).ok_or(BerError)?;
    let body = data.get(pos..end).ok_or(BerError)?;
    let raw = data.get(..end).ok_or(BerError)?;
    Ok((
        Element {
            class,
            constructed,
            number,
            body,
            raw,
            depth,
        },
        end,
    ))
}

/// Parse exactly one element spanning all of `data`.
pub(crate) fn parse_single(data: &[u8]) -> BerResult<Element<'_>> {
    let mut r = Reader {
        rest: data,
        depth: 0,
    };
    let el = r.next()?;
    r.finish()?;
    Ok(el)
}

impl<'a> Reader<'a> {
    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Read the next element.
    pub(crate) fn next(&mut self) -> BerResult<Element<'a>> {
        let (el, used) = parse_element(self.rest, self.depth)?;
        self.rest = self.rest.get(used..).ok_or(BerError)?;
        Ok(el)
    }

    /// Identifier of the next element, if any: (class, constructed, number).
    /// Only low tag numbers are reported precisely; that is all we need for
    /// optional-field detection.
    pub(crate) fn peek(&self) -> Option<(u8, bool, u32)> {
        let id = *self.rest.first()?;
        Some((id >> 6, id & 0x20 != 0, u32::from(id & 0x1f)))
    }

    /// Read the next element and check its class and number.
    pub(crate) fn expect(&mut self, class: u8, number: u32) -> BerResult<Element<'a>> {
        let el = self.next()?;
        if el.class != class || el.number != number {
            return Err(BerError);
        }
        Ok(el)
    }

    /// Read a universal element with the given tag number.
    pub(crate) fn expect_universal(&mut self, number: u32) -> BerResult<Element<'a>> {
        self.expect(CLASS_UNIVERSAL, number)
    }

    /// Read the next element if it is a context-specific `[number]`.
    pub(crate) fn optional_context(&mut self, number: u32) -> BerResult<Option<Element<'a>>> {
        match self.peek() {
            Some((CLASS_CONTEXT, _, n)) if n == number => self.next().map(Some),
            _ => Ok(None),
        }
    }

    /// Succeeds only if nothing is left.
    pub(crate) fn finish(&self) -> BerResult<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(BerError)
        }
    }
}

impl<'a> Element<'a> {
    pub(crate) fn is_universal(&self, number: u32) -> bool {
        self.class == CLASS_UNIVERSAL && self.number == number
    }

    /// Reader over the children of a constructed element.
    pub(crate) fn children(&self) -> BerResult<Reader<'a>> {
        if !self.constructed {
            return Err(BerError);
        }
        let depth = self.depth.checked_add(1).ok_or(BerError)?;
        if depth > MAX_DEPTH {
            return Err(BerError);
        }
        Ok(Reader {
            rest: self.body,
            depth,
        })
    }

    /// Children of a universal SEQUENCE.
    pub(crate) fn sequence(&self) -> BerResult<Reader<'a>> {
        if !self.is_universal(TAG_SEQUENCE) {
            return Err(BerError);
        }
        self.children()
    }

    /// Contents of a string type (whatever its tag, e.g. IMPLICIT): primitive
    /// contents directly, or the concatenation of constructed segments, each of
    /// which must be a universal OCTET STRING (X.690 8.7.3 / 8.23.6).
    pub(crate) fn octets(&self) -> BerResult<Cow<'a, [u8]>> {
        if !self.constructed {
            return Ok(Cow::Borrowed(self.body));
        }
        let mut out = Vec::new();
        self.append_segments(&mut out)?;
        Ok(Cow::Owned(out))
    }

    fn append_segments(&self, out: &mut Vec<u8>) -> BerResult<()> {
        let mut r = self.children()?;
        while !r.is_empty() {
            let seg = r.next()?;
            if !seg.is_universal(TAG_OCTET_STRING) {
                return Err(BerError);
            }
            if seg.constructed {
                seg.append_segments(out)?;
            } else {
                out.extend_from_slice(seg.body);
            }
        }
        Ok(())
    }

    /// Contents of a primitive universal OBJECT IDENTIFIER.
    pub(crate) fn oid(&self) -> BerResult<&'a [u8]> {
        if !self.is_universal(TAG_OID) || self.constructed || self.body.is_empty() {
            return Err(BerError);
        }
        Ok(self.body)
    }

    /// Contents of a primitive INTEGER (any tag), as two's complement octets.
    pub(crate) fn integer_bytes(&self) -> BerResult<&'a [u8]> {
        if self.constructed || self.body.is_empty() {
            return Err(BerError);
        }
        Ok(self.body)
    }

    /// A small non-negative universal INTEGER (e.g. a version number).
    pub(crate) fn small_uint(&self) -> BerResult<u32> {
        if !self.is_universal(TAG_INTEGER) {
            return Err(BerError);
        }
        let bytes = self.integer_bytes()?;
        if bytes.len() > 4 || bytes.first().is_some_and(|b| b & 0x80 != 0) {
            return Err(BerError);
        }
        Ok(bytes.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
    }
}

/// Strip leading zero octets of an unsigned big-endian integer.
pub(crate) fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definite_and_indefinite() {
        // SEQUENCE { INTEGER 5 } definite.
        let d = [0x30, 0x03, 0x02, 0x01, 0x05];
        let el = parse_single(&d).unwrap();
        let mut r = el.sequence().unwrap();
        assert_eq!(r.next().unwrap().small_uint().unwrap(), 5);
        assert!(r.is_empty());

        // Same with indefinite length.
        let i = [0x30, 0x80, 0x02, 0x01, 0x05, 0x00, 0x00];
        let el = parse_single(&i).unwrap();
        assert_eq!(el.body, &[0x02, 0x01, 0x05]);
        assert_eq!(el.raw.len(), i.len());
        let mut r = el.sequence().unwrap();
        assert_eq!(r.next().unwrap().small_uint().unwrap(), 5);
        r.finish().unwrap();
    }

    #[test]
    fn constructed_octet_string() {
        // [0] constructed, indefinite, two segments, one of them nested.
        let d = [
            0xA0, 0x80, 0x04, 0x02, b'a', b'b', 0x24, 0x80, 0x04, 0x01, b'c', 0x00, 0x00, 0x00,
            0x00,
        ];
        let el = parse_single(&d).unwrap();
        assert_eq!(&*el.octets().unwrap(), b"abc");
        // A segment that is not an OCTET STRING is rejected.
        let bad = [0x24, 0x03, 0x02, 0x01, 0x00];
        assert!(parse_single(&bad).unwrap().octets().is_err());
    }

    #[test]
    fn rejects_bad_encodings() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x05, 0x02],
            &[0x04, 0x80, 0x00, 0x00],             // primitive indefinite
            &[0x30, 0x80, 0x02, 0x01, 0x05],       // missing end-of-contents
            &[0x30, 0x85, 1, 0, 0, 0, 0],          // length too wide
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff], // length beyond input
            &[0x00, 0x00],                         // bare end-of-contents
            &[0x1f, 0x80, 0x01, 0x00],             // non-minimal high tag
            &[0x02, 0x01, 0x05, 0x00],             // trailing data
        ] {
            assert!(parse_single(bad).is_err(), "{bad:02x?}");
        }
    }

    #[test]
    fn depth_is_bounded() {
        let mut deep = Vec::new();
        for _ in 0..(MAX_DEPTH + 10) {
            deep.extend_from_slice(&[0x30, 0x80]);
        }
        for _ in 0..(MAX_DEPTH + 10) {
            deep.extend_from_slice(&[0x00, 0x00]);
        }
        assert!(parse_single(&deep).is_err());

        // Definite-length nesting: parsing succeeds lazily, descending fails.
        let n = MAX_DEPTH + 5;
        let mut v: Vec<u8> = Vec::new();
        for _ in 0..n {
            let mut outer = vec![0x30, u8::try_from(v.len()).unwrap_or(0)];
            if v.len() > 127 {
                break;
            }
            outer.extend_from_slice(&v);
            v = outer;
        }
        let mut el = parse_single(&v).unwrap();
        let mut reached = 0;
        while let Ok(mut r) = el.children() {
            match r.next() {
                Ok(child) => {
                    el = child;
                    reached += 1;
                }
                Err(_) => break,
            }
        }
        assert!(reached <= MAX_DEPTH);
    }

    #[test]
    fn high_tag_numbers() {
        // [APPLICATION 200] primitive, 1 byte.
        let d = [0x5f, 0x81, 0x48, 0x01, 0xAA];
        let el = parse_single(&d).unwrap();
        assert_eq!(el.class, 1);
        assert_eq!(el.number, 200);
        assert_eq!(el.body, &[0xAA]);
    }
}
