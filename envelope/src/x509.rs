//! Minimal X.509 / SubjectPublicKeyInfo parsing: just what CMS recipients need.

use aws_lc_rs::digest;

use super::ber::{
    self, BerError, BerResult, CLASS_CONTEXT, TAG_BIT_STRING, TAG_BOOLEAN, TAG_INTEGER, TAG_NULL,
    TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE,
};
use super::oids;

/// An RSA `SubjectPublicKeyInfo`, decomposed.
pub(crate) struct RsaSpki {
    /// Contents of the subjectPublicKey BIT STRING (without the unused-bits
    /// octet): the DER `RSAPublicKey`.
    pub subject_public_key: Vec<u8>,
    /// Modulus, big-endian, without leading zeros.
    pub modulus: Vec<u8>,
    /// Public exponent, big-endian, without leading zeros.
    pub exponent: Vec<u8>,
    /// The complete SubjectPublicKeyInfo encoding.
    pub spki_der: Vec<u8>,
}

impl RsaSpki {
    /// RFC 5280 section 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits
    /// (what OpenSSL puts in certificates it makes).
    pub(crate) fn ski_sha1(&self) -> Vec<u8> {
        digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &self.subject_public_key)
            .as_ref()
            .to_vec()
    }

    /// Every key identifier another tool may plausibly have derived from this
    /// key: RFC 5280 method 1 (SHA-1), RFC 7093 method 1 (SHA-256 truncated to
    /// 160 bits) and rcgen 0.13's default (SHA-256 of the whole SPKI, truncated).
    pub(crate) fn key_identifiers(&self) -> Vec<Vec<u8>> {
        let sha256_spk = digest::digest(&digest::SHA256, &self.subject_public_key);
        let sha256_spki = digest::digest(&digest::SHA256, &self.spki_der);
        vec![
            self.ski_sha1(),
            sha256_spk.as_ref().get(..20).unwrap_or_default().to_vec(),
            sha256_spki.as_ref().get(..20).unwrap_or_default().to_vec(),
        ]
    }

    /// Modulus size in octets.
    pub(crate) fn modulus_len(&self) -> usize {
        self.modulus.len()
    }

    pub(crate) fn same_key(&self, other: &RsaSpki) -> bool {
        self.modulus == other.modulus && self.exponent == other.exponent
    }
}

/// Parse the `SubjectPublicKeyInfo` element of an RSA key.
pub(crate) fn parse_rsa_spki_element(el: &ber::Element<'_>) -> BerResult<RsaSpki> {
    let mut r = el.sequence()?;
    let alg = r.expect_universal(TAG_SEQUENCE)?;
    let mut a = alg.children()?;
    if a.expect_universal(TAG_OID)?.oid()? != oids::RSA_ENCRYPTION {
        return Err(BerError);
    }
    if !a.is_empty() {
        let p = a.next()?;
        if !p.is_universal(TAG_NULL) || !p.body.is_empty() {
            return Err(BerError);
        }
    }
    a.finish()?;
    let bits = r.expect_universal(TAG_BIT_STRING)?;
    r.finish()?;
    if bits.constructed {
        return Err(BerError);
    }
    let (unused, spk) = bits.body.split_first().ok_or(BerError)?;
    if *unused != 0 {
        return Err(BerError);
    }
    let rsa = ber::parse_single(spk)?;
    let mut k = rsa.sequence()?;
    let n = k.expect_universal(TAG_INTEGER)?.integer_bytes()?;
    let e = k.expect_universal(TAG_INTEGER)?.integer_bytes()?;
    k.finish()?;
    if n.first().is_some_and(|b| b & 0x80 != 0) || e.first().is_some_and(|b| b & 0x80 != 0) {
        return Err(BerError); // negative
    }
    let modulus = ber::strip_leading_zeros(n).to_vec();
    let exponent = ber::strip_leading_zeros(e).to_vec();
    if modulus.is_empty() || exponent.is_empty() {
        return Err(BerError);
    }
    Ok(RsaSpki {
        subject_public_key: spk.to_vec(),
        modulus,
        exponent,
        spki_der: el.raw.to_vec(),
    })
}

pub(crate) fn parse_rsa_spki(der: &[u8]) -> BerResult<RsaSpki> {
    parse_rsa_spki_element(&ber::parse_single(der)?)
}

/// The parts of a certificate that identify a CMS recipient.
pub(crate) struct CertInfo {
    /// Complete encoding of the issuer `Name`.
    pub issuer: Vec<u8>,
    /// Serial number INTEGER contents, leading zeros stripped.
    pub serial: Vec<u8>,
    /// The subjectKeyIdentifier extension's value, if present.
    pub ski_extension: Option<Vec<u8>>,
    pub spki: RsaSpki,
}

/// Parse an X.509 v1/v3 certificate holding an RSA key.
pub(crate) fn parse_certificate(der: &[u8]) -> BerResult<CertInfo> {
    let cert = ber::parse_single(der)?;
    let mut c = cert.sequence()?;
    let tbs = c.expect_universal(TAG_SEQUENCE)?;
    let mut t = tbs.children()?;
    let _version = t.optional_context(0)?;
    let serial_el = t.expect_universal(TAG_INTEGER)?;
    let serial = ber::strip_leading_zeros(serial_el.integer_bytes()?).to_vec();
    let _sig_alg = t.expect_universal(TAG_SEQUENCE)?;
    let issuer = t.expect_universal(TAG_SEQUENCE)?.raw.to_vec();
    let _validity = t.expect_universal(TAG_SEQUENCE)?;
    let _subject = t.expect_universal(TAG_SEQUENCE)?;
    let spki = parse_rsa_spki_element(&t.expect_universal(TAG_SEQUENCE)?)?;
    let _issuer_uid = t.optional_context(1)?;
    let _subject_uid = t.optional_context(2)?;
    let mut ski_extension = None;
    if let Some(exts) = t.optional_context(3)? {
        if exts.class != CLASS_CONTEXT {
            return Err(BerError);
        }
        let mut outer = exts.children()?;
        let list = outer.expect_universal(TAG_SEQUENCE)?;
        outer.finish()?;
        let mut l = list.children()?;
        while !l.is_empty() {
            let ext = l.expect_universal(TAG_SEQUENCE)?;
            let mut e = ext.children()?;
            let id = e.expect_universal(TAG_OID)?.oid()?;
            let mut value = e.next()?;
            if value.is_universal(TAG_BOOLEAN) {
                value = e.next()?;
            }
            if !value.is_universal(TAG_OCTET_STRING) {
                return Err(BerError);
            }
            e.finish()?;
            if id == oids::SUBJECT_KEY_IDENTIFIER {
                let inner = value.octets()?;
                let key_id = ber::parse_single(&inner)?;
                if !key_id.is_universal(TAG_OCTET_STRING) {
                    return Err(BerError);
                }
                ski_extension = Some(key_id.octets()?.into_owned());
            }
        }
    }
    t.finish()?;
    Ok(CertInfo {
        issuer,
        serial,
        ski_extension,
        spki,
    })
}
