//! Parsing and opening CMS EnvelopedData.

use std::borrow::Cow;

use aws_lc_rs::cipher::{
    AES_128, AES_192, AES_256, Algorithm, DecryptionContext, PaddedBlockDecryptingKey,
    UnboundCipherKey,
};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OAEP_SHA384_MGF1SHA384, OAEP_SHA512_MGF1SHA512,
    OaepAlgorithm,
};
use zeroize::Zeroizing;

use super::ber::{
    self, BerError, CLASS_CONTEXT, Element, TAG_INTEGER, TAG_NULL, TAG_OCTET_STRING, TAG_OID,
    TAG_SEQUENCE, TAG_SET,
};
use super::keys::RingKey;
use super::wire::MAX_ENVELOPE_BYTES;
use super::{OpenError, oids};

/// At most this many RecipientInfos are looked at.
const MAX_RECIPIENT_INFOS: usize = 16;
/// At most this many RSA private-key operations per envelope (bounds the CPU a
/// hostile envelope with many unknown recipients can cost).
const MAX_KEY_TRIALS: usize = 16;
const AES_BLOCK: usize = 16;

impl From<BerError> for OpenError {
    fn from(_: BerError) -> Self {
        OpenError::Malformed
    }
}

/// How a KeyTransRecipientInfo names its recipient.
pub(crate) enum Rid<'a> {
    /// Complete encoding of the issuer Name, and the serial without leading zeros.
    IssuerSerial {
        issuer: &'a [u8],
        serial: &'a [u8],
    },
    SubjectKeyId(Cow<'a, [u8]>),
}

pub(crate) enum Transport<'a> {
    Pkcs1v15,
    Oaep {
        alg: &'static OaepAlgorithm,
        label: Option<Cow<'a, [u8]>>,
    },
}

pub(crate) struct Ktri<'a> {
    pub rid: Rid<'a>,
    /// `None` when the key encryption algorithm is not supported.
    pub transport: Option<Transport<'a>>,
    pub encrypted_key: Cow<'a, [u8]>,
}

#[derive(Clone, Copy)]
/// AES-CBC with PKCS#7 padding, by key size.
pub(crate) enum ContentCipher {
    Aes128,
    Aes192,
    Aes256,
}

impl ContentCipher {
    fn key_len(self) -> usize {
        match self {
            ContentCipher::Aes128 => 16,
            ContentCipher::Aes192 => 24,
            ContentCipher::Aes256 => 32,
        }
    }

    fn algorithm(self) -> &'static Algorithm {
        match self {
            ContentCipher::Aes128 => &AES_128,
            ContentCipher::Aes192 => &AES_192,
            ContentCipher::Aes256 => &AES_256,
        }
    }
}

pub(crate) struct Parsed<'a> {
    pub recipients: Vec<Ktri<'a>>,
    /// Whether any RecipientInfo other than KeyTransRecipientInfo was seen.
    pub other_recipient_kinds: bool,
    pub cipher: ContentCipher,
    pub iv: [u8; AES_BLOCK],
    pub ciphertext: Cow<'a, [u8]>,
}

/// Parse ContentInfo(EnvelopedData), or a bare EnvelopedData.
pub(crate) fn parse(data: &[u8]) -> Result<Parsed<'_>, OpenError> {
    let top = ber::parse_single(data)?;
    let mut r = top.sequence()?;
    let first = r.next()?;
    let enveloped = if first.is_universal(TAG_OID) {
        if first.oid()? != oids::ENVELOPED_DATA {
            return Err(OpenError::Unsupported);
        }
        let explicit = r.expect(CLASS_CONTEXT, 0)?;
        r.finish()?;
        let mut e = explicit.children()?;
        let inner = e.next()?;
        e.finish()?;
        inner
    } else if first.is_universal(TAG_INTEGER) {
        top
    } else {
        return Err(OpenError::Malformed);
    };
    parse_enveloped_data(&enveloped)
}

fn parse_enveloped_data<'a>(el: &Element<'a>) -> Result<Parsed<'a>, OpenError> {
    let mut r = el.sequence()?;
    let _version = r.expect_universal(TAG_INTEGER)?.small_uint()?;
    let _originator_info = r.optional_context(0)?;
    let infos = r.expect_universal(TAG_SET)?;
    let eci = r.expect_universal(TAG_SEQUENCE)?;
    let _unprotected_attrs = r.optional_context(1)?;
    r.finish()?;

    let mut recipients = Vec::new();
    let mut other_recipient_kinds = false;
    let mut ri = infos.children()?;
    let mut count = 0usize;
    while !ri.is_empty() {
        count += 1;
        if count > MAX_RECIPIENT_INFOS {
            return Err(OpenError::Malformed);
        }
        let info = ri.next()?;
        if info.is_universal(TAG_SEQUENCE) {
            recipients.push(parse_ktri(&info)?);
        } else if info.class == CLASS_CONTEXT {
            other_recipient_kinds = true; // kari, kekri, pwri, ori
        } else {
            return Err(OpenError::Malformed);
        }
    }
    if count == 0 {
        return Err(OpenError::Malformed);
    }

    let (cipher, iv, ciphertext) = parse_encrypted_content_info(&eci)?;
    Ok(Parsed {
        recipients,
        other_recipient_kinds,
        cipher,
        iv,
        ciphertext,
    })
}

fn parse_ktri<'a>(el: &Element<'a>) -> Result<Ktri<'a>, OpenError> {
    let mut k = el.sequence()?;
    // Version (0 for issuerAndSerialNumber, 2 for subjectKeyIdentifier) is
    // not enforced: the rid's own tag says which form is used.
    let _version = k.expect_universal(TAG_INTEGER)?.small_uint()?;
    let rid_el = k.next()?;
    let rid = if rid_el.is_universal(TAG_SEQUENCE) {
        let mut ias = rid_el.children()?;
        let issuer = ias.expect_universal(TAG_SEQUENCE)?;
        let serial = ias.expect_universal(TAG_INTEGER)?;
        ias.finish()?;
        Rid::IssuerSerial {
            issuer: issuer.raw,
            serial: ber::strip_leading_zeros(serial.integer_bytes()?),
        }
    } else if rid_el.class == CLASS_CONTEXT && rid_el.number == 0 {
        Rid::SubjectKeyId(rid_el.octets()?)
    } else {
        return Err(OpenError::Malformed);
    };
    let alg = k.expect_universal(TAG_SEQUENCE)?;
    let transport = parse_transport(&alg)?;
    let encrypted_key = k.expect_universal(TAG_OCTET_STRING)?.octets()?;
    k.finish()?;
    Ok(Ktri {
        rid,
        transport,
        encrypted_key,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

/// `AlgorithmIdentifier` of a hash; `None` if not one we know.
fn parse_hash(el: &Element<'_>) -> Result<Option<Hash>, OpenError> {
    let mut a = el.sequence()?;
    let oid = a.expect_universal(TAG_OID)?.oid()?;
    absent_or_null(&mut a)?;
    Ok(match oid {
        o if o == oids::SHA1 => Some(Hash::Sha1),
        o if o == oids::SHA256 => Some(Hash::Sha256),
        o if o == oids::SHA384 => Some(Hash::Sha384),
        o if o == oids::SHA512 => Some(Hash::Sha512),
        _ => None,
    })
}

/// Parameters absent or NULL, and nothing else.
fn absent_or_null(r: &mut ber::Reader<'_>) -> Result<(), OpenError> {
    if !r.is_empty() {
        let p = r.next()?;
        if !p.is_universal(TAG_NULL) || !p.body.is_empty() {
            return Err(OpenError::Malformed);
        }
    }
    r.finish()?;
    Ok(())
}

/// The only element inside an EXPLICIT `[n]` wrapper.
fn explicit_inner<'a>(el: &Element<'a>) -> Result<Element<'a>, OpenError> {
    let mut r = el.children()?;
    let inner = r.next()?;
    r.finish()?;
    Ok(inner)
}

/// keyEncryptionAlgorithm; `Ok(None)` for algorithms we do not support.
fn parse_transport<'a>(el: &Element<'a>) -> Result<Option<Transport<'a>>, OpenError> {
    let mut a = el.sequence()?;
    let oid = a.expect_universal(TAG_OID)?.oid()?;
    if oid == oids::RSA_ENCRYPTION {
        absent_or_null(&mut a)?;
        return Ok(Some(Transport::Pkcs1v15));
    }
    if oid != oids::RSAES_OAEP {
        return Ok(None);
    }
    // RSAES-OAEP-params; every field has a SHA-1 / empty-label default.
    let mut hash = Some(Hash::Sha1);
    let mut mgf_hash = Some(Hash::Sha1);
    let mut label: Option<Cow<'a, [u8]>> = None;
    if !a.is_empty() {
        let params = a.next()?;
        a.finish()?;
        let mut p = params.sequence()?;
        if let Some(h) = p.optional_context(0)? {
            hash = parse_hash(&explicit_inner(&h)?)?;
        }
        if let Some(m) = p.optional_context(1)? {
            let mgf = explicit_inner(&m)?;
            let mut mr = mgf.sequence()?;
            let mgf_oid = mr.expect_universal(TAG_OID)?.oid()?;
            let mgf_param = mr.expect_universal(TAG_SEQUENCE)?;
            mr.finish()?;
            if mgf_oid != oids::MGF1 {
                return Ok(None);
            }
            mgf_hash = parse_hash(&mgf_param)?;
        }
        if let Some(s) = p.optional_context(2)? {
            let source = explicit_inner(&s)?;
            let mut sr = source.sequence()?;
            let source_oid = sr.expect_universal(TAG_OID)?.oid()?;
            let value = sr.expect_universal(TAG_OCTET_STRING)?.octets()?;
            sr.finish()?;
            if source_oid != oids::P_SPECIFIED {
                return Ok(None);
            }
            if !value.is_empty() {
                label = Some(value);
            }
        }
        p.finish()?;
    }
    let alg = match (hash, mgf_hash) {
        (Some(Hash::Sha1), Some(Hash::Sha1)) => &OAEP_SHA1_MGF1SHA1,
        (Some(Hash::Sha256), Some(Hash::Sha256)) => &OAEP_SHA256_MGF1SHA256,
        (Some(Hash::Sha384), Some(Hash::Sha384)) => &OAEP_SHA384_MGF1SHA384,
        (Some(Hash::Sha512), Some(Hash::Sha512)) => &OAEP_SHA512_MGF1SHA512,
        _ => return Ok(None),
    };
    Ok(Some(Transport::Oaep { alg, label }))
}

type ContentParts<'a> = (ContentCipher, [u8; AES_BLOCK], Cow<'a, [u8]>);

fn parse_encrypted_content_info<'a>(el: &Element<'a>) -> Result<ContentParts<'a>, OpenError> {
    let mut e = el.sequence()?;
    let _content_type = e.expect_universal(TAG_OID)?.oid()?;
    let alg = e.expect_universal(TAG_SEQUENCE)?;
    let content = e.optional_context(0)?;
    e.finish()?;

    let mut a = alg.children()?;
    let oid = a.expect_universal(TAG_OID)?.oid()?;
    let cipher = match oid {
        o if o == oids::AES256_CBC => ContentCipher::Aes256,
        o if o == oids::AES192_CBC => ContentCipher::Aes192,
        o if o == oids::AES128_CBC => ContentCipher::Aes128,
        _ => return Err(OpenError::Unsupported),
    };
    let iv_octets = a.expect_universal(TAG_OCTET_STRING)?.octets()?;
    a.finish()?;
    let iv: [u8; AES_BLOCK] = iv_octets
        .as_ref()
        .try_into()
        .map_err(|_| OpenError::Malformed)?;

    // Absent content (detached) cannot be opened here.
    let content = content.ok_or(OpenError::ContentDecryption)?;
    Ok((cipher, iv, content.octets()?))
}

/// Open an envelope with the given keys.
pub(crate) fn open(keys: &[RingKey], data: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    if data.len() > MAX_ENVELOPE_BYTES {
        return Err(OpenError::TooLarge);
    }
    let parsed = parse(data)?;
    let usable: Vec<(&Ktri<'_>, &Transport<'_>)> = parsed
        .recipients
        .iter()
        .filter_map(|k| k.transport.as_ref().map(|t| (k, t)))
        .collect();
    if usable.is_empty() {
        return Err(
            if parsed.recipients.is_empty() && !parsed.other_recipient_kinds {
                OpenError::Malformed
            } else {
                OpenError::Unsupported
            },
        );
    }
    if parsed.ciphertext.is_empty() || parsed.ciphertext.len() % AES_BLOCK != 0 {
        return Err(OpenError::ContentDecryption);
    }

    let mut trials = 0usize;
    let mut identified = false;
    // 1. Keys the recipient identifiers name.
    for (ktri, transport) in &usable {
        for key in keys.iter().filter(|k| k.matches(&ktri.rid)) {
            identified = true;
            if trials >= MAX_KEY_TRIALS {
                return Err(OpenError::NoMatchingKey);
            }
            trials += 1;
            if let Some(plaintext) = attempt(key, ktri, transport, &parsed) {
                return Ok(plaintext);
            }
        }
    }
    // 2. Nothing named a known key: try each key of the right size.
    if !identified {
        for (ktri, transport) in &usable {
            for key in keys
                .iter()
                .filter(|k| k.modulus_len == ktri.encrypted_key.len())
            {
                if trials >= MAX_KEY_TRIALS {
                    return Err(OpenError::NoMatchingKey);
                }
                trials += 1;
                if let Some(plaintext) = attempt(key, ktri, transport, &parsed) {
                    return Ok(plaintext);
                }
            }
        }
    }
    Err(OpenError::NoMatchingKey)
}

/// Try one key on one recipient info. Returns plaintext only when the RSA
/// decryption succeeded, produced a key of exactly the cipher's key length, and
/// the content decrypted with valid padding.
///
/// When RSA decryption fails the content is still decrypted under a random key
/// (and the result discarded), so that both failure paths cost about the same
/// and report the same error: no Bleichenbacher-style oracle on PKCS#1 v1.5.
fn attempt(
    key: &RingKey,
    ktri: &Ktri<'_>,
    transport: &Transport<'_>,
    parsed: &Parsed<'_>,
) -> Option<Zeroizing<Vec<u8>>> {
    let key_len = parsed.cipher.key_len();
    let mut out = Zeroizing::new(vec![0u8; key.modulus_len]);
    let decrypted_len = match transport {
        Transport::Pkcs1v15 => key
            .pkcs1
            .decrypt(&ktri.encrypted_key, &mut out)
            .map(|s| s.len()),
        Transport::Oaep { alg, label } => key
            .oaep
            .decrypt(alg, &ktri.encrypted_key, &mut out, label.as_deref())
            .map(|s| s.len()),
    };
    let mut cek = Zeroizing::new(vec![0u8; key_len]);
    let cek_ok = match decrypted_len {
        Ok(n) if n == key_len => match out.get(..n) {
            Some(bytes) => {
                cek.copy_from_slice(bytes);
                true
            }
            None => false,
        },
        _ => false,
    };
    if !cek_ok && aws_lc_rs::rand::fill(&mut cek).is_err() {
        return None;
    }
    let content = decrypt_content(parsed.cipher, &cek, &parsed.iv, &parsed.ciphertext);
    match content {
        Some(plaintext) if cek_ok => Some(plaintext),
        _ => None,
    }
}

/// AES-CBC decryption with PKCS#7 padding check.
fn decrypt_content(
    cipher: ContentCipher,
    cek: &[u8],
    iv: &[u8; AES_BLOCK],
    ciphertext: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let key = UnboundCipherKey::new(cipher.algorithm(), cek).ok()?;
    let key = PaddedBlockDecryptingKey::cbc_pkcs7(key).ok()?;
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let len = key
        .decrypt(&mut buf, DecryptionContext::Iv128(FixedLength::from(iv)))
        .ok()?
        .len();
    buf.truncate(len);
    Some(buf)
}
