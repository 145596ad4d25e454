//! Issuer private keys: loading (PEM PKCS#8 / PKCS#1), the key ring used to
//! open envelopes, certificate binding, and key pair generation.

use std::fmt;
use std::time::{Duration, SystemTime};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{
    KeySize, OaepPrivateDecryptingKey, Pkcs1PrivateDecryptingKey, PrivateDecryptingKey,
};
use zeroize::Zeroizing;

use super::open::Rid;
use super::x509::{self, RsaSpki};
use super::{KeyError, OpenError, der, open, wire};

/// Summary of a loaded key (safe to log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// Hex of the RFC 5280 method-1 key identifier (SHA-1 of the public key bits).
    pub ski_hex: String,
    /// Modulus size in bits.
    pub bits: usize,
}

/// A certificate registered for a key: how envelopes may name it.
struct CertBinding {
    issuer: Vec<u8>,
    serial: Vec<u8>,
    ski: Option<Vec<u8>>,
}

/// One private key of the ring.
pub(crate) struct RingKey {
    pub(crate) oaep: OaepPrivateDecryptingKey,
    pub(crate) pkcs1: Pkcs1PrivateDecryptingKey,
    /// Modulus size in octets (= RSA ciphertext size).
    pub(crate) modulus_len: usize,
    bits: usize,
    spki: RsaSpki,
    /// Key identifiers derived from the public key (see `RsaSpki::key_identifiers`).
    key_ids: Vec<Vec<u8>>,
    certs: Vec<CertBinding>,
}

impl RingKey {
    fn info(&self) -> KeyInfo {
        KeyInfo {
            ski_hex: hex::encode(self.spki.ski_sha1()),
            bits: self.bits,
        }
    }

    /// Does the recipient identifier name this key?
    pub(crate) fn matches(&self, rid: &Rid<'_>) -> bool {
        match rid {
            Rid::SubjectKeyId(id) => {
                let id: &[u8] = id;
                self.key_ids.iter().any(|k| k.as_slice() == id)
                    || self.certs.iter().any(|c| c.ski.as_deref() == Some(id))
            }
            Rid::IssuerSerial { issuer, serial } => self
                .certs
                .iter()
                .any(|c| c.issuer.as_slice() == *issuer && c.serial.as_slice() == *serial),
        }
    }
}

impl fmt::Debug for RingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingKey")
            .field("ski", &hex::encode(self.spki.ski_sha1()))
            .field("bits", &self.bits)
            .field("certificates", &self.certs.len())
            .finish_non_exhaustive()
    }
}

/// The issuer's private keys (several at once during rotation).
///
/// `Send + Sync`: share it behind an `Arc`; opening only reads it.
#[derive(Default)]
pub struct KeyRing {
    keys: Vec<RingKey>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing").field("keys", &self.keys).finish()
    }
}

impl KeyRing {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Summaries of the loaded keys, in load order.
    #[allow(dead_code)]
    pub fn key_infos(&self) -> Vec<KeyInfo> {
        self.keys.iter().map(RingKey::info).collect()
    }

    /// Add an RSA private key from PEM: PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1
    /// (`BEGIN RSA PRIVATE KEY`). The first private key block of the document
    /// is used (other blocks, e.g. certificates, are ignored). Adding a key that
    /// is already present is a no-op returning its info.
    pub fn add_private_key_pem(&mut self, pem_text: &str) -> Result<KeyInfo, KeyError> {
        let blocks = pem::parse_many(pem_text).map_err(|_| KeyError::Pem)?;
        if blocks.is_empty() {
            return Err(KeyError::Pem);
        }
        let mut saw_encrypted = false;
        let mut pkcs8: Option<Zeroizing<Vec<u8>>> = None;
        for block in blocks {
            let tag = block.tag().to_owned();
            let proc_type_encrypted = block
                .headers()
                .get("Proc-Type")
                .is_some_and(|v| v.contains("ENCRYPTED"));
            let contents = Zeroizing::new(block.into_contents());
            if pkcs8.is_some() {
                continue;
            }
            match tag.as_str() {
                "ENCRYPTED PRIVATE KEY" => saw_encrypted = true,
                _ if proc_type_encrypted => saw_encrypted = true,
                "PRIVATE KEY" => pkcs8 = Some(contents),
                "RSA PRIVATE KEY" => pkcs8 = Some(der::wrap_pkcs1_private_key(&contents)),
                _ => {}
            }
        }
        match pkcs8 {
            Some(der) => self.add_private_key_pkcs8_der(&der),
            None if saw_encrypted => Err(KeyError::EncryptedKey),
            None => Err(KeyError::NoPrivateKey),
        }
    }

    /// Add an RSA private key given as PKCS#8 v1 DER.
    pub fn add_private_key_pkcs8_der(&mut self, pkcs8_der: &[u8]) -> Result<KeyInfo, KeyError> {
        let key = PrivateDecryptingKey::from_pkcs8(pkcs8_der).map_err(|_| KeyError::InvalidKey)?;
        let spki_der = key
            .public_key()
            .as_der()
            .map_err(|_| KeyError::InvalidKey)?;
        let spki = x509::parse_rsa_spki(spki_der.as_ref()).map_err(|_| KeyError::InvalidKey)?;
        if let Some(existing) = self.keys.iter().find(|k| k.spki.same_key(&spki)) {
            return Ok(existing.info());
        }
        let bits = key.key_size_bits();
        let modulus_len = key.key_size_bytes();
        if modulus_len != spki.modulus_len() {
            return Err(KeyError::InvalidKey);
        }
        let pkcs1 =
            Pkcs1PrivateDecryptingKey::new(key.clone()).map_err(|_| KeyError::InvalidKey)?;
        let oaep = OaepPrivateDecryptingKey::new(key).map_err(|_| KeyError::InvalidKey)?;
        let ring_key = RingKey {
            oaep,
            pkcs1,
            modulus_len,
            bits,
            key_ids: spki.key_identifiers(),
            spki,
            certs: Vec::new(),
        };
        let info = ring_key.info();
        self.keys.push(ring_key);
        Ok(info)
    }

    /// Register the certificate(s) of a PEM document for the key(s) holding
    /// the same public key, so envelopes naming them by issuer-and-serial (or
    /// by the certificate's own subjectKeyIdentifier) select that key directly.
    /// Certificates that match no key (e.g. CA certificates of a chain) are
    /// ignored; fails if none matches a loaded key.
    pub fn add_certificate_pem(&mut self, pem_text: &str) -> Result<(), KeyError> {
        let blocks = pem::parse_many(pem_text).map_err(|_| KeyError::Pem)?;
        let mut parsed_any = false;
        let mut bound = false;
        for block in blocks.iter().filter(|b| b.tag() == "CERTIFICATE") {
            let Ok(cert) = x509::parse_certificate(block.contents()) else {
                continue;
            };
            parsed_any = true;
            if let Some(key) = self.keys.iter_mut().find(|k| k.spki.same_key(&cert.spki)) {
                bound = true;
                let already = key
                    .certs
                    .iter()
                    .any(|c| c.issuer == cert.issuer && c.serial == cert.serial);
                if !already {
                    key.certs.push(CertBinding {
                        issuer: cert.issuer,
                        serial: cert.serial,
                        ski: cert.ski_extension,
                    });
                }
            }
        }
        if bound {
            Ok(())
        } else if parsed_any {
            Err(KeyError::NoKeyForCertificate)
        } else {
            Err(KeyError::InvalidCertificate)
        }
    }

    /// Open an envelope given as wire text (base64, hex or PEM; see [`decode_wire`](super::decode_wire)).
    pub fn open(&self, wire_text: &str) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let der = wire::decode_wire(wire_text)?;
        self.open_der(&der)
    }

    /// Open an envelope given as BER/DER bytes.
    pub fn open_der(&self, ber_bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        open::open(&self.keys, ber_bytes)
    }
}

/// A freshly generated issuer key pair (for the `keys generate` command).
pub struct GeneratedKeyPair {
    /// PKCS#8 PEM (`BEGIN PRIVATE KEY`).
    pub private_key_pem: Zeroizing<String>,
    /// Self-signed X.509 certificate PEM carrying a subjectKeyIdentifier
    /// (RFC 5280 method 1, as OpenSSL computes it).
    pub certificate_pem: String,
    /// Hex of that subject key identifier.
    pub ski_hex: String,
    pub bits: usize,
}

impl fmt::Debug for GeneratedKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKeyPair")
            .field("ski_hex", &self.ski_hex)
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

/// Validity of generated certificates.
const CERT_VALIDITY: Duration = Duration::from_secs(3 * 365 * 24 * 3600);
/// Backdating of `notBefore`, to tolerate clock skew.
const CERT_BACKDATE: Duration = Duration::from_secs(3600);

/// Generate an RSA key pair (2048 or 4096 bits) and a self-signed certificate
/// (`CN=common_name`, valid for 3 years, keyEncipherment, SKI extension).
pub fn generate_key_pair(bits: u32, common_name: &str) -> Result<GeneratedKeyPair, KeyError> {
    let size = match bits {
        2048 => KeySize::Rsa2048,
        4096 => KeySize::Rsa4096,
        _ => return Err(KeyError::UnsupportedKeySize),
    };
    let key = PrivateDecryptingKey::generate(size).map_err(|_| KeyError::Generation)?;
    let pkcs8 = key.as_der().map_err(|_| KeyError::Generation)?;
    let spki_der = key
        .public_key()
        .as_der()
        .map_err(|_| KeyError::Generation)?;
    let spki = x509::parse_rsa_spki(spki_der.as_ref()).map_err(|_| KeyError::Generation)?;
    let ski = spki.ski_sha1();

    let pem_block = pem::Pem::new("PRIVATE KEY", pkcs8.as_ref());
    let private_key_pem = Zeroizing::new(pem::encode(&pem_block));
    drop(Zeroizing::new(pem_block.into_contents()));

    let signing_key =
        rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&private_key_pem, &rcgen::PKCS_RSA_SHA256)
            .map_err(|_| KeyError::Generation)?;

    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| KeyError::Generation)?;
    if let Some(first) = serial.first_mut() {
        // Positive, and exactly 16 octets long.
        *first = (*first & 0x7f) | 0x40;
    }

    let now = SystemTime::now();
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.not_before = now.checked_sub(CERT_BACKDATE).unwrap_or(now).into();
    params.not_after = now.checked_add(CERT_VALIDITY).unwrap_or(now).into();
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyEncipherment,
        rcgen::KeyUsagePurpose::DataEncipherment,
    ];
    params.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(ski.clone());
    let cert = params
        .self_signed(&signing_key)
        .map_err(|_| KeyError::Generation)?;

    Ok(GeneratedKeyPair {
        private_key_pem,
        certificate_pem: cert.pem(),
        ski_hex: hex::encode(ski),
        bits: key.key_size_bits(),
    })
}
