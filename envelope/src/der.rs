//! A tiny DER writer (definite lengths, low tag numbers) used for sealing and
//! for wrapping PKCS#1 keys into PKCS#8.

use zeroize::Zeroizing;

pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const SET: u8 = 0x31;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const OID: u8 = 0x06;
pub(crate) const NULL: u8 = 0x05;

/// Context-specific constructed `[n]` (EXPLICIT, or IMPLICIT of a constructed type).
pub(crate) const fn context_constructed(n: u8) -> u8 {
    0xA0 | (n & 0x1f)
}

/// Context-specific primitive `[n]` (IMPLICIT of a primitive type).
pub(crate) const fn context_primitive(n: u8) -> u8 {
    0x80 | (n & 0x1f)
}

/// Number of octets the length field for `len` takes.
pub(crate) fn length_size(len: usize) -> usize {
    if len < 0x80 {
        1
    } else {
        let bytes = (usize::BITS - len.leading_zeros()).div_ceil(8);
        1 + bytes as usize
    }
}

/// Total size of a TLV whose contents are `len` octets.
pub(crate) fn tlv_size(len: usize) -> usize {
    1 + length_size(len) + len
}

pub(crate) fn push_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    if len < 0x80 {
        // Fits in 7 bits by the check above.
        out.push(len.to_be_bytes().last().copied().unwrap_or(0));
    } else {
        let be = len.to_be_bytes();
        let skip = be.iter().take_while(|b| **b == 0).count();
        let digits = be.get(skip..).unwrap_or_default();
        out.push(0x80 | u8::try_from(digits.len()).unwrap_or(0));
        out.extend_from_slice(digits);
    }
}

/// Encode one TLV.
pub(crate) fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(tlv_size(contents.len()));
    push_header(&mut out, tag, contents.len());
    out.extend_from_slice(contents);
    out
}

/// Encode a constructed TLV whose contents are the concatenation of `parts`.
pub(crate) fn constructed(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(tlv_size(len));
    push_header(&mut out, tag, len);
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

pub(crate) fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    constructed(SEQUENCE, parts)
}

pub(crate) fn oid(contents: &[u8]) -> Vec<u8> {
    tlv(OID, contents)
}

pub(crate) fn null() -> Vec<u8> {
    vec![NULL, 0x00]
}

/// Non-negative INTEGER from a small value.
pub(crate) fn small_uint(v: u8) -> Vec<u8> {
    if v & 0x80 != 0 {
        vec![INTEGER, 0x02, 0x00, v]
    } else {
        vec![INTEGER, 0x01, v]
    }
}

/// `AlgorithmIdentifier { algorithm, parameters }` with explicit parameters TLV.
pub(crate) fn algorithm_identifier(oid_contents: &[u8], params: Option<&[u8]>) -> Vec<u8> {
    let o = oid(oid_contents);
    match params {
        Some(p) => sequence(&[&o, p]),
        None => sequence(&[&o]),
    }
}

/// Wrap a PKCS#1 `RSAPrivateKey` DER into a PKCS#8 v1 `PrivateKeyInfo` DER,
/// writing into a buffer allocated once at its final size (so no stray copies
/// of the key are left behind by reallocation) that is wiped on drop.
pub(crate) fn wrap_pkcs1_private_key(rsa_private_key: &[u8]) -> Zeroizing<Vec<u8>> {
    const VERSION: [u8; 3] = [INTEGER, 0x01, 0x00];
    // SEQUENCE { OID rsaEncryption, NULL }
    const ALG: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let octet_len = tlv_size(rsa_private_key.len());
    let inner_len = VERSION.len() + ALG.len() + octet_len;
    let mut out = Zeroizing::new(Vec::with_capacity(tlv_size(inner_len)));
    push_header(&mut out, SEQUENCE, inner_len);
    out.extend_from_slice(&VERSION);
    out.extend_from_slice(&ALG);
    push_header(&mut out, OCTET_STRING, rsa_private_key.len());
    out.extend_from_slice(rsa_private_key);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        assert_eq!(tlv(OCTET_STRING, &[1, 2]), vec![0x04, 0x02, 1, 2]);
        let long = vec![0u8; 200];
        let enc = tlv(OCTET_STRING, &long);
        assert_eq!(&enc[..3], &[0x04, 0x81, 200]);
        assert_eq!(enc.len(), tlv_size(200));
        let longer = vec![0u8; 70_000];
        let enc = tlv(OCTET_STRING, &longer);
        assert_eq!(&enc[..5], &[0x04, 0x83, 0x01, 0x11, 0x70]);
        assert_eq!(enc.len(), tlv_size(70_000));
        assert_eq!(small_uint(2), vec![0x02, 0x01, 0x02]);
        assert_eq!(small_uint(200), vec![0x02, 0x02, 0x00, 200]);
    }

    #[test]
    fn pkcs8_wrapper_is_well_formed() {
        let fake = vec![0x30, 0x03, 0x02, 0x01, 0x00];
        let wrapped = wrap_pkcs1_private_key(&fake);
        assert_eq!(wrapped.len(), wrapped.capacity());
        let el = super::super::ber::parse_single(&wrapped).unwrap();
        let mut r = el.sequence().unwrap();
        assert_eq!(r.next().unwrap().small_uint().unwrap(), 0);
        r.next().unwrap();
        assert_eq!(&*r.next().unwrap().octets().unwrap(), &fake[..]);
        r.finish().unwrap();
    }
}
