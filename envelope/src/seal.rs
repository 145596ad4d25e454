//! Sealing: build a DER CMS EnvelopedData for one recipient certificate.

use std::fmt;

use aws_lc_rs::cipher::{AES_256, EncryptionContext, PaddedBlockEncryptingKey, UnboundCipherKey};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rsa::{
    OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, Pkcs1PublicEncryptingKey, PublicEncryptingKey,
};
use base64::Engine as _;
use zeroize::Zeroizing;

use super::wire::MAX_ENVELOPE_BYTES;
use super::{KeyError, SealError, der, oids, x509};

/// RSA key transport used when sealing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTransport {
    /// RSAES-OAEP with SHA-256 and MGF1-SHA-256 (recommended).
    Oaep,
    /// RSAES-PKCS1-v1_5 (legacy default of many tools).
    Pkcs1v15,
}

/// How the recipient is named in the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientIdKind {
    /// issuerAndSerialNumber of the certificate.
    IssuerSerial,
    /// subjectKeyIdentifier (the certificate's extension, else RFC 5280 method 1).
    SubjectKeyId,
}

/// A recipient certificate's public key and identifiers.
pub struct Recipient {
    issuer: Vec<u8>,
    serial: Vec<u8>,
    ski: Vec<u8>,
    public_key: PublicEncryptingKey,
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recipient")
            .field("ski", &self.ski_hex())
            .field("bits", &self.bits())
            .finish_non_exhaustive()
    }
}

impl Recipient {
    /// From a PEM document: its first `CERTIFICATE` block.
    pub fn from_certificate_pem(pem_text: &str) -> Result<Self, KeyError> {
        let blocks = pem::parse_many(pem_text).map_err(|_| KeyError::Pem)?;
        let block = blocks
            .iter()
            .find(|b| b.tag() == "CERTIFICATE")
            .ok_or(KeyError::InvalidCertificate)?;
        Self::from_certificate_der(block.contents())
    }

    /// From a DER X.509 certificate holding an RSA key (2048 to 8192 bits).
    pub fn from_certificate_der(cert_der: &[u8]) -> Result<Self, KeyError> {
        let cert = x509::parse_certificate(cert_der).map_err(|_| KeyError::InvalidCertificate)?;
        let public_key = PublicEncryptingKey::from_der(&cert.spki.spki_der)
            .map_err(|_| KeyError::InvalidCertificate)?;
        let ski = cert.ski_extension.unwrap_or_else(|| cert.spki.ski_sha1());
        // Re-encode the serial as a positive DER INTEGER body.
        let mut serial = cert.serial;
        if serial.is_empty() || serial.first().is_some_and(|b| b & 0x80 != 0) {
            serial.insert(0, 0);
        }
        Ok(Self {
            issuer: cert.issuer,
            serial,
            ski,
            public_key,
        })
    }

    /// Hex of the subject key identifier used with [`RecipientIdKind::SubjectKeyId`].
    pub fn ski_hex(&self) -> String {
        hex::encode(&self.ski)
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        self.public_key.key_size_bits()
    }
}

/// Encrypt `plaintext` for `recipient`: AES-256-CBC under a fresh random key
/// and IV, the key transported with RSA. Returns the DER ContentInfo.
pub fn seal(
    recipient: &Recipient,
    plaintext: &[u8],
    transport: KeyTransport,
    rid: RecipientIdKind,
) -> Result<Vec<u8>, SealError> {
    if plaintext.len() > MAX_ENVELOPE_BYTES {
        return Err(SealError::TooLarge);
    }
    let mut cek = Zeroizing::new([0u8; 32]);
    let mut iv = [0u8; 16];
    aws_lc_rs::rand::fill(cek.as_mut_slice()).map_err(|_| SealError::Crypto)?;
    aws_lc_rs::rand::fill(&mut iv).map_err(|_| SealError::Crypto)?;

    // Content encryption (buffer sized up front: no stray plaintext copies).
    let mut content = Zeroizing::new(Vec::with_capacity(plaintext.len() + 16));
    content.extend_from_slice(plaintext);
    let key = UnboundCipherKey::new(&AES_256, cek.as_slice()).map_err(|_| SealError::Crypto)?;
    let key = PaddedBlockEncryptingKey::cbc_pkcs7(key).map_err(|_| SealError::Crypto)?;
    key.less_safe_encrypt(
        &mut *content,
        EncryptionContext::Iv128(FixedLength::from(&iv)),
    )
    .map_err(|_| SealError::Crypto)?;

    // Key transport.
    let mut encrypted_key = vec![0u8; recipient.public_key.key_size_bytes()];
    let (ek_len, kea) = match transport {
        KeyTransport::Oaep => {
            let k = OaepPublicEncryptingKey::new(recipient.public_key.clone())
                .map_err(|_| SealError::Crypto)?;
            let n = k
                .encrypt(
                    &OAEP_SHA256_MGF1SHA256,
                    cek.as_slice(),
                    &mut encrypted_key,
                    None,
                )
                .map_err(|_| SealError::Crypto)?
                .len();
            (n, oaep_sha256_algorithm_identifier())
        }
        KeyTransport::Pkcs1v15 => {
            let k = Pkcs1PublicEncryptingKey::new(recipient.public_key.clone())
                .map_err(|_| SealError::Crypto)?;
            let n = k
                .encrypt(cek.as_slice(), &mut encrypted_key)
                .map_err(|_| SealError::Crypto)?
                .len();
            (
                n,
                der::algorithm_identifier(oids::RSA_ENCRYPTION, Some(&der::null())),
            )
        }
    };
    encrypted_key.truncate(ek_len);

    let (version, rid_der) = match rid {
        RecipientIdKind::IssuerSerial => (
            0u8,
            der::sequence(&[
                &recipient.issuer,
                &der::tlv(der::INTEGER, &recipient.serial),
            ]),
        ),
        RecipientIdKind::SubjectKeyId => (2u8, der::tlv(der::context_primitive(0), &recipient.ski)),
    };
    let ktri = der::sequence(&[
        &der::small_uint(version),
        &rid_der,
        &kea,
        &der::tlv(der::OCTET_STRING, &encrypted_key),
    ]);
    let recipient_infos = der::constructed(der::SET, &[&ktri]);
    let content_alg =
        der::algorithm_identifier(oids::AES256_CBC, Some(&der::tlv(der::OCTET_STRING, &iv)));
    let eci = der::sequence(&[
        &der::oid(oids::DATA),
        &content_alg,
        &der::tlv(der::context_primitive(0), &content),
    ]);
    let enveloped = der::sequence(&[&der::small_uint(version), &recipient_infos, &eci]);
    let content_info = der::sequence(&[
        &der::oid(oids::ENVELOPED_DATA),
        &der::constructed(der::context_constructed(0), &[&enveloped]),
    ]);
    if content_info.len() > MAX_ENVELOPE_BYTES {
        return Err(SealError::TooLarge);
    }
    Ok(content_info)
}

/// [`seal`], then standard padded base64 (the reference wire form).
pub fn seal_base64(
    recipient: &Recipient,
    plaintext: &[u8],
    transport: KeyTransport,
    rid: RecipientIdKind,
) -> Result<String, SealError> {
    let der = seal(recipient, plaintext, transport, rid)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(der))
}

/// [`seal`], then lower-case hexadecimal (the alternative wire form).
#[allow(dead_code)]
pub fn seal_hex(
    recipient: &Recipient,
    plaintext: &[u8],
    transport: KeyTransport,
    rid: RecipientIdKind,
) -> Result<String, SealError> {
    let der = seal(recipient, plaintext, transport, rid)?;
    Ok(hex::encode(der))
}

/// RSAES-OAEP AlgorithmIdentifier with SHA-256 / MGF1-SHA-256 / empty label.
fn oaep_sha256_algorithm_identifier() -> Vec<u8> {
    let sha256 = der::algorithm_identifier(oids::SHA256, Some(&der::null()));
    let mgf1 = der::algorithm_identifier(oids::MGF1, Some(&sha256));
    let params = der::sequence(&[
        &der::constructed(der::context_constructed(0), &[&sha256]),
        &der::constructed(der::context_constructed(1), &[&mgf1]),
    ]);
    der::algorithm_identifier(oids::RSAES_OAEP, Some(&params))
}
