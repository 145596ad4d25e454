#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use proptest::prelude::*;

use super::*;

const CARD: &[u8] = br#"{"fpan":"4111111111111111","exp":"1229","cvv":"123"}"#;
const MARKER: &str = "4111111111111111";

// ---------------------------------------------------------------- fixtures

fn key_a() -> &'static GeneratedKeyPair {
    static K: OnceLock<GeneratedKeyPair> = OnceLock::new();
    K.get_or_init(|| generate_key_pair(2048, "Issuer Key A").unwrap())
}

fn key_b() -> &'static GeneratedKeyPair {
    static K: OnceLock<GeneratedKeyPair> = OnceLock::new();
    K.get_or_init(|| generate_key_pair(2048, "Issuer Key B").unwrap())
}

fn key_4096() -> &'static GeneratedKeyPair {
    static K: OnceLock<GeneratedKeyPair> = OnceLock::new();
    K.get_or_init(|| generate_key_pair(4096, "Issuer Key 4096").unwrap())
}

fn ring(keys: &[&GeneratedKeyPair], with_certs: bool) -> KeyRing {
    let mut r = KeyRing::new();
    for k in keys {
        r.add_private_key_pem(&k.private_key_pem).unwrap();
        if with_certs {
            r.add_certificate_pem(&k.certificate_pem).unwrap();
        }
    }
    r
}

fn recipient(k: &GeneratedKeyPair) -> Recipient {
    Recipient::from_certificate_pem(&k.certificate_pem).unwrap()
}

const TRANSPORTS: [KeyTransport; 2] = [KeyTransport::Oaep, KeyTransport::Pkcs1v15];
const RIDS: [RecipientIdKind; 2] = [RecipientIdKind::IssuerSerial, RecipientIdKind::SubjectKeyId];

// ---------------------------------------------------------------- openssl

const OPENSSL: &str = "/usr/bin/openssl";

/// Run openssl in `dir`; the test fails (never skips) if it is missing or fails.
fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    assert!(
        Path::new(OPENSSL).exists(),
        "{OPENSSL} is required by these tests"
    );
    let out = Command::new(OPENSSL)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

struct OpensslKey {
    dir: tempfile::TempDir,
}

impl OpensslKey {
    /// `openssl req -x509 -newkey rsa:BITS` (PKCS#8 key + self-signed cert).
    fn new(bits: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let newkey = format!("rsa:{bits}");
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                &newkey,
                "-nodes",
                "-keyout",
                "key.pem",
                "-out",
                "cert.pem",
                "-subj",
                "/CN=openssl issuer/O=Test Bank",
                "-days",
                "30",
            ],
        );
        std::fs::write(dir.path().join("plain.bin"), CARD).unwrap();
        Self { dir }
    }

    /// `openssl genrsa -traditional` (PKCS#1 key) + a certificate for it.
    fn new_pkcs1() -> Self {
        let dir = tempfile::tempdir().unwrap();
        openssl(
            dir.path(),
            &["genrsa", "-traditional", "-out", "key.pem", "2048"],
        );
        openssl(
            dir.path(),
            &[
                "req",
                "-new",
                "-x509",
                "-key",
                "key.pem",
                "-out",
                "cert.pem",
                "-subj",
                "/CN=pkcs1 issuer",
                "-days",
                "30",
            ],
        );
        std::fs::write(dir.path().join("plain.bin"), CARD).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn key_pem(&self) -> String {
        std::fs::read_to_string(self.path("key.pem")).unwrap()
    }

    fn cert_pem(&self) -> String {
        std::fs::read_to_string(self.path("cert.pem")).unwrap()
    }

    /// `openssl cms -encrypt -binary -recip cert.pem [extra...]` → output file bytes.
    fn encrypt(&self, cipher: &str, outform: &str, extra: &[&str]) -> Vec<u8> {
        let mut args = vec![
            "cms",
            "-encrypt",
            cipher,
            "-binary",
            "-in",
            "plain.bin",
            "-outform",
            outform,
            "-out",
            "env.out",
            "-recip",
            "cert.pem",
        ];
        args.extend_from_slice(extra);
        openssl(self.dir.path(), &args);
        std::fs::read(self.path("env.out")).unwrap()
    }

    fn ring(&self, with_cert: bool) -> KeyRing {
        let mut r = KeyRing::new();
        r.add_private_key_pem(&self.key_pem()).unwrap();
        if with_cert {
            r.add_certificate_pem(&self.cert_pem()).unwrap();
        }
        r
    }
}

const OAEP_OPTS: [&str; 6] = [
    "-keyopt",
    "rsa_padding_mode:oaep",
    "-keyopt",
    "rsa_oaep_md:sha256",
    "-keyopt",
    "rsa_mgf1_md:sha256",
];

/// Does a BER encoding use any indefinite length?
fn has_indefinite_length(der: &[u8]) -> bool {
    der.windows(2)
        .any(|w| (w[0] == 0x30 || w[0] == 0xA0 || w[0] == 0x24) && w[1] == 0x80)
}

// ---------------------------------------------------------------- round trips

#[test]
fn round_trip_2048_all_combinations_and_wire_forms() {
    let k = key_a();
    let r = recipient(k);
    let with_cert = ring(&[k], true);
    let key_only = ring(&[k], false);
    for kt in TRANSPORTS {
        for rid in RIDS {
            let der = seal(&r, CARD, kt, rid).unwrap();
            for keys in [&with_cert, &key_only] {
                assert_eq!(&keys.open_der(&der).unwrap()[..], CARD, "{kt:?} {rid:?}");
                let b64 = seal_base64(&r, CARD, kt, rid).unwrap();
                assert_eq!(&keys.open(&b64).unwrap()[..], CARD);
                let hex_lower = seal_hex(&r, CARD, kt, rid).unwrap();
                assert_eq!(&keys.open(&hex_lower).unwrap()[..], CARD);
                assert_eq!(&keys.open(&hex_lower.to_uppercase()).unwrap()[..], CARD);
            }
        }
    }
}

#[test]
fn round_trip_4096() {
    let k = key_4096();
    assert_eq!(k.bits, 4096);
    let r = recipient(k);
    assert_eq!(r.bits(), 4096);
    let keys = ring(&[k], false);
    for kt in TRANSPORTS {
        for rid in RIDS {
            let b64 = seal_base64(&r, CARD, kt, rid).unwrap();
            assert_eq!(&keys.open(&b64).unwrap()[..], CARD, "{kt:?} {rid:?}");
        }
    }
}

#[test]
fn round_trip_sizes() {
    let k = key_a();
    let r = recipient(k);
    let keys = ring(&[k], false);
    for len in [0usize, 1, 15, 16, 17, 31, 32, 33, 1000, 70_000] {
        let pt: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let der = seal(&r, &pt, KeyTransport::Oaep, RecipientIdKind::SubjectKeyId).unwrap();
        assert_eq!(&keys.open_der(&der).unwrap()[..], &pt[..], "len {len}");
    }
}

#[test]
fn seal_uses_fresh_key_and_iv() {
    let r = recipient(key_a());
    let a = seal(&r, CARD, KeyTransport::Oaep, RecipientIdKind::SubjectKeyId).unwrap();
    let b = seal(&r, CARD, KeyTransport::Oaep, RecipientIdKind::SubjectKeyId).unwrap();
    assert_ne!(a, b);
    let pa = open::parse(&a).unwrap();
    let pb = open::parse(&b).unwrap();
    assert_ne!(pa.iv, pb.iv);
    assert_ne!(pa.ciphertext, pb.ciphertext);
}

#[test]
fn bare_enveloped_data_without_content_info() {
    let k = key_a();
    let der = seal(
        &recipient(k),
        CARD,
        KeyTransport::Oaep,
        RecipientIdKind::IssuerSerial,
    )
    .unwrap();
    let top = ber::parse_single(&der).unwrap();
    let mut r = top.sequence().unwrap();
    r.next().unwrap();
    let explicit = r.next().unwrap();
    let inner = explicit.children().unwrap().next().unwrap();
    let keys = ring(&[k], true);
    assert_eq!(&keys.open_der(inner.raw).unwrap()[..], CARD);
}

// ---------------------------------------------------------------- key identifiers

#[test]
fn generated_certificate_carries_method1_ski() {
    let k = key_a();
    let cert_der = pem::parse(&k.certificate_pem).unwrap().into_contents();
    let cert = x509::parse_certificate(&cert_der).unwrap();
    let ext = cert.ski_extension.expect("SKI extension");
    assert_eq!(ext, cert.spki.ski_sha1());
    assert_eq!(hex::encode(&ext), k.ski_hex);
    assert_eq!(recipient(k).ski_hex(), k.ski_hex);
    let mut keys = KeyRing::new();
    let info = keys.add_private_key_pem(&k.private_key_pem).unwrap();
    assert_eq!(info.ski_hex, k.ski_hex);
    assert_eq!(info.bits, 2048);
    assert_eq!(keys.key_infos(), vec![info]);
    assert!(k.private_key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
}

#[test]
fn openssl_accepts_generated_certificate_and_computes_same_ski() {
    let k = key_a();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), &k.certificate_pem).unwrap();
    let text = String::from_utf8(openssl(
        dir.path(),
        &["x509", "-in", "cert.pem", "-noout", "-text"],
    ))
    .unwrap();
    assert!(text.contains("CN = Issuer Key A"), "{text}");
    assert!(text.contains("Subject Key Identifier"));
    assert!(text.contains("Key Encipherment"));
    let expected = k
        .ski_hex
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    assert!(text.contains(&expected), "{expected} not in {text}");
    // Envelope by openssl naming the recipient by SKI, opened with the key only.
    std::fs::write(dir.path().join("plain.bin"), CARD).unwrap();
    openssl(
        dir.path(),
        &[
            "cms",
            "-encrypt",
            "-aes256",
            "-binary",
            "-in",
            "plain.bin",
            "-outform",
            "DER",
            "-out",
            "env.der",
            "-recip",
            "cert.pem",
            "-keyid",
        ],
    );
    let der = std::fs::read(dir.path().join("env.der")).unwrap();
    // Only A is configured and B has the same size: selection is by SKI.
    let keys = ring(&[key_b(), k], false);
    assert_eq!(&keys.open_der(&der).unwrap()[..], CARD);
}

// ---------------------------------------------------------------- openssl envelopes

#[test]
fn openssl_default_pkcs1_issuer_serial() {
    let o = OpensslKey::new(2048);
    let der = o.encrypt("-aes256", "DER", &[]);
    let parsed = open::parse(&der).unwrap();
    assert!(matches!(
        parsed.recipients[0].rid,
        open::Rid::IssuerSerial { .. }
    ));
    assert!(matches!(
        parsed.recipients[0].transport,
        Some(open::Transport::Pkcs1v15)
    ));
    // Key only: fallback by modulus size. Key + certificate: issuer/serial match.
    assert_eq!(&o.ring(false).open_der(&der).unwrap()[..], CARD);
    assert_eq!(&o.ring(true).open_der(&der).unwrap()[..], CARD);
    // Wire forms.
    assert_eq!(
        &o.ring(false).open(&STANDARD.encode(&der)).unwrap()[..],
        CARD
    );
    assert_eq!(
        &o.ring(false).open(&hex::encode_upper(&der)).unwrap()[..],
        CARD
    );
}

#[test]
fn openssl_keyid() {
    let o = OpensslKey::new(2048);
    let der = o.encrypt("-aes256", "DER", &["-keyid"]);
    let parsed = open::parse(&der).unwrap();
    assert!(matches!(
        parsed.recipients[0].rid,
        open::Rid::SubjectKeyId(_)
    ));
    assert_eq!(&o.ring(false).open_der(&der).unwrap()[..], CARD);
    assert_eq!(&o.ring(true).open_der(&der).unwrap()[..], CARD);
}

#[test]
fn openssl_oaep_sha256() {
    let o = OpensslKey::new(2048);
    for extra in [
        &OAEP_OPTS[..],
        &[&["-keyid"][..], &OAEP_OPTS[..]].concat()[..],
    ] {
        let der = o.encrypt("-aes256", "DER", extra);
        let parsed = open::parse(&der).unwrap();
        match &parsed.recipients[0].transport {
            Some(open::Transport::Oaep { alg, label }) => {
                assert_eq!(
                    alg.id(),
                    aws_lc_rs::rsa::EncryptionAlgorithmId::OaepSha256Mgf1sha256
                );
                assert!(label.is_none());
            }
            _ => panic!("expected OAEP"),
        }
        assert_eq!(&o.ring(false).open_der(&der).unwrap()[..], CARD);
        assert_eq!(&o.ring(true).open_der(&der).unwrap()[..], CARD);
    }
}

#[test]
fn openssl_oaep_with_label() {
    let o = OpensslKey::new(2048);
    let mut extra = OAEP_OPTS.to_vec();
    extra.extend_from_slice(&["-keyopt", "rsa_oaep_label:0a0b0c"]);
    let der = o.encrypt("-aes256", "DER", &extra);
    match &open::parse(&der).unwrap().recipients[0].transport {
        Some(open::Transport::Oaep { label, .. }) => {
            assert_eq!(label.as_deref(), Some(&[0x0a, 0x0b, 0x0c][..]));
        }
        _ => panic!("expected OAEP"),
    }
    assert_eq!(&o.ring(false).open_der(&der).unwrap()[..], CARD);
}

#[test]
fn openssl_oaep_default_sha1_params() {
    let o = OpensslKey::new(2048);
    let der = o.encrypt("-aes256", "DER", &["-keyopt", "rsa_padding_mode:oaep"]);
    assert_eq!(&o.ring(false).open_der(&der).unwrap()[..], CARD);
}

#[test]
fn openssl_stream_ber_indefinite() {
    let o = OpensslKey::new(2048);
    let ber = o.encrypt("-aes256", "DER", &["-stream"]);
    assert!(
        ber.starts_with(&[0x30, 0x80]),
        "expected indefinite length: {:02x?}",
        &ber[..8]
    );
    assert!(has_indefinite_length(&ber[2..]));
    // The encrypted content is a constructed OCTET STRING ([0] constructed).
    let parsed = open::parse(&ber).unwrap();
    assert!(matches!(parsed.ciphertext, std::borrow::Cow::Owned(_)));
    assert_eq!(&o.ring(false).open_der(&ber).unwrap()[..], CARD);
    assert_eq!(&o.ring(true).open_der(&ber).unwrap()[..], CARD);
    assert_eq!(
        &o.ring(true).open(&STANDARD.encode(&ber)).unwrap()[..],
        CARD
    );

    // Streamed with OAEP + keyid, and a multi-chunk content.
    let big: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(o.path("plain.bin"), &big).unwrap();
    let mut extra = vec!["-stream", "-keyid"];
    extra.extend_from_slice(&OAEP_OPTS);
    let ber = o.encrypt("-aes256", "DER", &extra);
    assert!(ber.starts_with(&[0x30, 0x80]));
    assert_eq!(&o.ring(false).open_der(&ber).unwrap()[..], &big[..]);
}

#[test]
fn openssl_pem_output_is_accepted_as_wire_text() {
    let o = OpensslKey::new(2048);
    let pem_out = o.encrypt("-aes256", "PEM", &[]);
    let text = String::from_utf8(pem_out).unwrap();
    assert!(text.starts_with("-----BEGIN CMS-----"));
    assert_eq!(&o.ring(false).open(&text).unwrap()[..], CARD);
}

#[test]
fn openssl_pkcs1_private_key() {
    let o = OpensslKey::new_pkcs1();
    assert!(o.key_pem().starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let der = o.encrypt("-aes256", "DER", &[]);
    assert_eq!(&o.ring(false).open_der(&der).unwrap()[..], CARD);
    let der = o.encrypt("-aes256", "DER", &OAEP_OPTS);
    assert_eq!(&o.ring(true).open_der(&der).unwrap()[..], CARD);
}

#[test]
fn openssl_4096_and_other_aes_sizes() {
    let o = OpensslKey::new(4096);
    for cipher in ["-aes256", "-aes192", "-aes128"] {
        let der = o.encrypt(cipher, "DER", &["-keyid"]);
        assert_eq!(&o.ring(false).open_der(&der).unwrap()[..], CARD, "{cipher}");
    }
    // 3DES is not supported.
    let der = o.encrypt("-des3", "DER", &[]);
    assert_eq!(o.ring(false).open_der(&der), Err(OpenError::Unsupported));
}

#[test]
fn openssl_decrypts_our_envelopes() {
    let k = key_a();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.pem"), k.private_key_pem.as_bytes()).unwrap();
    std::fs::write(dir.path().join("cert.pem"), &k.certificate_pem).unwrap();
    let r = recipient(k);
    for kt in TRANSPORTS {
        for rid in RIDS {
            let der = seal(&r, CARD, kt, rid).unwrap();
            std::fs::write(dir.path().join("env.der"), &der).unwrap();
            let out = openssl(
                dir.path(),
                &[
                    "cms", "-decrypt", "-binary", "-inform", "DER", "-in", "env.der", "-inkey",
                    "key.pem", "-recip", "cert.pem",
                ],
            );
            assert_eq!(out, CARD, "{kt:?} {rid:?}");
        }
    }
}

// ---------------------------------------------------------------- several keys

#[test]
fn key_ring_selects_right_key() {
    let (a, b, c) = (key_a(), key_b(), key_4096());
    let with_certs = ring(&[a, b, c], true);
    let keys_only = ring(&[a, b, c], false);
    assert_eq!(keys_only.len(), 3);
    for target in [a, b, c] {
        let r = recipient(target);
        for kt in TRANSPORTS {
            for rid in RIDS {
                let der = seal(&r, CARD, kt, rid).unwrap();
                assert_eq!(&with_certs.open_der(&der).unwrap()[..], CARD);
                // Keys only + issuer/serial: fallback trial over same-size keys
                // (for B, key A is tried first and must be rejected).
                assert_eq!(&keys_only.open_der(&der).unwrap()[..], CARD);
            }
        }
    }
}

#[test]
fn identified_match_skips_other_keys() {
    // When the SKI names a known key, only that key is used: an envelope whose
    // SKI names B but whose key was encrypted for A is not opened by trial.
    let (a, b) = (key_a(), key_b());
    let keys = ring(&[a, b], false);
    let der = seal(
        &recipient(a),
        CARD,
        KeyTransport::Oaep,
        RecipientIdKind::SubjectKeyId,
    )
    .unwrap();
    let ski_a = hex::decode(&a.ski_hex).unwrap();
    let ski_b = hex::decode(&b.ski_hex).unwrap();
    let pos = der.windows(20).position(|w| w == &ski_a[..]).unwrap();
    let mut forged = der.clone();
    forged[pos..pos + 20].copy_from_slice(&ski_b);
    assert_eq!(keys.open_der(&forged), Err(OpenError::NoMatchingKey));
    assert_eq!(&keys.open_der(&der).unwrap()[..], CARD);
}

/// The KeyTransRecipientInfo (complete encoding) of a sealed envelope.
fn ktri_of(der: &[u8]) -> Vec<u8> {
    let top = ber::parse_single(der).unwrap();
    let mut ci = top.sequence().unwrap();
    ci.next().unwrap();
    let env = ci.next().unwrap().children().unwrap().next().unwrap();
    let mut e = env.sequence().unwrap();
    e.next().unwrap();
    let infos = e.next().unwrap();
    let mut i = infos.children().unwrap();
    i.next().unwrap().raw.to_vec()
}

/// Rebuild a sealed envelope with other recipient infos.
fn with_recipient_infos(der: &[u8], infos: &[&[u8]]) -> Vec<u8> {
    let top = ber::parse_single(der).unwrap();
    let mut ci = top.sequence().unwrap();
    let ct_oid = ci.next().unwrap();
    let env = ci.next().unwrap().children().unwrap().next().unwrap();
    let mut e = env.sequence().unwrap();
    let version = e.next().unwrap();
    e.next().unwrap();
    let eci = e.next().unwrap();
    let set = der::constructed(der::SET, infos);
    let env = der::sequence(&[version.raw, &set, eci.raw]);
    der::sequence(&[
        ct_oid.raw,
        &der::constructed(der::context_constructed(0), &[&env]),
    ])
}

#[test]
fn several_recipient_infos() {
    let (a, b) = (key_a(), key_b());
    let der = seal(
        &recipient(a),
        CARD,
        KeyTransport::Pkcs1v15,
        RecipientIdKind::IssuerSerial,
    )
    .unwrap();
    let for_a = ktri_of(&der);
    // A recipient info for B carrying garbage of the right size.
    let other = seal(
        &recipient(b),
        CARD,
        KeyTransport::Oaep,
        RecipientIdKind::IssuerSerial,
    )
    .unwrap();
    let for_b = ktri_of(&other);
    let two = with_recipient_infos(&der, &[&for_b, &for_a]);
    assert_eq!(open::parse(&two).unwrap().recipients.len(), 2);
    // Identified (A's certificate registered) and by trial (keys only).
    assert_eq!(&ring(&[a], true).open_der(&two).unwrap()[..], CARD);
    assert_eq!(&ring(&[a], false).open_der(&two).unwrap()[..], CARD);
    // Keys tried in turn: B's cannot unwrap A's content key, so A's opens it. (Not on `two`:
    // its B recipient info wraps a *different* content key, which no real envelope does, and a
    // wrong AES key passes the CBC padding check about once in 256 tries.)
    assert_eq!(&ring(&[b, a], false).open_der(&der).unwrap()[..], CARD);
    // B can only recover B's (unrelated) key: the content does not decrypt
    // (CBC has no integrity check: a wrong key passes the padding check with
    // probability about 1/256, yielding garbage, never the plaintext).
    match ring(&[b], true).open_der(&two) {
        Err(e) => assert_eq!(e, OpenError::NoMatchingKey),
        Ok(garbage) => assert_ne!(&garbage[..], CARD),
    }
    // Bounds: too many recipient infos is malformed; many unknown recipients
    // stop after a bounded number of RSA trials.
    let many: Vec<&[u8]> = std::iter::repeat_n(&for_b[..], 17).collect();
    assert_eq!(
        ring(&[a], false).open_der(&with_recipient_infos(&der, &many)),
        Err(OpenError::Malformed)
    );
    let mut sixteen: Vec<&[u8]> = std::iter::repeat_n(&for_b[..], 15).collect();
    sixteen.push(&for_a);
    let keys = ring(&[b, a], false);
    // 15 x 2 keys tried before A's info is reached: over the trial budget.
    assert_eq!(
        keys.open_der(&with_recipient_infos(&der, &sixteen)),
        Err(OpenError::NoMatchingKey)
    );
    // No recipient infos at all.
    assert_eq!(
        keys.open_der(&with_recipient_infos(&der, &[])),
        Err(OpenError::Malformed)
    );
}

#[test]
fn certificate_chain_binding() {
    let (a, b) = (key_a(), key_b());
    let mut keys = ring(&[a], false);
    assert_eq!(
        keys.add_certificate_pem(&b.certificate_pem),
        Err(KeyError::NoKeyForCertificate)
    );
    let chain = format!("{}{}", b.certificate_pem, a.certificate_pem);
    keys.add_certificate_pem(&chain).unwrap();
    let der = seal(
        &recipient(a),
        CARD,
        KeyTransport::Oaep,
        RecipientIdKind::IssuerSerial,
    )
    .unwrap();
    assert_eq!(&keys.open_der(&der).unwrap()[..], CARD);
}

#[test]
fn duplicate_key_is_not_added_twice() {
    let mut keys = ring(&[key_a()], true);
    let info = keys.add_private_key_pem(&key_a().private_key_pem).unwrap();
    assert_eq!(info.ski_hex, key_a().ski_hex);
    keys.add_certificate_pem(&key_a().certificate_pem).unwrap();
    assert_eq!(keys.len(), 1);
}

// ---------------------------------------------------------------- failures

#[test]
fn wrong_key_only_is_no_matching_key() {
    let keys = ring(&[key_b()], true);
    let r = recipient(key_a());
    for kt in TRANSPORTS {
        for rid in RIDS {
            let der = seal(&r, CARD, kt, rid).unwrap();
            assert_eq!(keys.open_der(&der), Err(OpenError::NoMatchingKey));
        }
    }
    // A 4096-bit key never even gets tried on a 2048-bit envelope.
    let keys = ring(&[key_4096()], false);
    let der = seal(
        &r,
        CARD,
        KeyTransport::Pkcs1v15,
        RecipientIdKind::IssuerSerial,
    )
    .unwrap();
    assert_eq!(keys.open_der(&der), Err(OpenError::NoMatchingKey));
    assert_eq!(KeyRing::new().open_der(&der), Err(OpenError::NoMatchingKey));
}

#[test]
fn tampered_encrypted_key_is_rejected() {
    let k = key_a();
    let keys = ring(&[k], true);
    let r = recipient(k);
    for kt in TRANSPORTS {
        for rid in RIDS {
            let der = seal(&r, CARD, kt, rid).unwrap();
            let parsed = open::parse(&der).unwrap();
            let ek = parsed.recipients[0].encrypted_key.to_vec();
            let pos = der.windows(ek.len()).position(|w| w == &ek[..]).unwrap();
            for offset in [0, 1, 100, ek.len() - 1] {
                let mut t = der.clone();
                t[pos + offset] ^= 0x01;
                assert_eq!(keys.open_der(&t), Err(OpenError::NoMatchingKey));
            }
        }
    }
}

#[test]
fn truncated_or_garbage_is_an_error() {
    let k = key_a();
    let keys = ring(&[k], false);
    let der = seal(
        &recipient(k),
        CARD,
        KeyTransport::Pkcs1v15,
        RecipientIdKind::IssuerSerial,
    )
    .unwrap();
    for len in 0..der.len() {
        assert!(keys.open_der(&der[..len]).is_err(), "prefix {len}");
    }
    let mut longer = der.clone();
    longer.push(0);
    assert_eq!(keys.open_der(&longer), Err(OpenError::Malformed));
    assert_eq!(keys.open("%%%"), Err(OpenError::Encoding));
    assert_eq!(keys.open(""), Err(OpenError::Encoding));
    assert_eq!(keys.open("  \n "), Err(OpenError::Encoding));
    assert_eq!(keys.open("aGVsbG8="), Err(OpenError::Malformed));
    assert_eq!(keys.open_der(&[0x30, 0x00]), Err(OpenError::Malformed));
    let huge = vec![0x30u8; MAX_ENVELOPE_BYTES + 1];
    assert_eq!(keys.open_der(&huge), Err(OpenError::TooLarge));
    let huge_text = "A".repeat(MAX_WIRE_TEXT_BYTES + 1);
    assert_eq!(keys.open(&huge_text), Err(OpenError::TooLarge));
}

/// Rebuild a sealed DER envelope with another encrypted content (or none).
fn with_content(der: &[u8], content: Option<&[u8]>) -> Vec<u8> {
    let top = ber::parse_single(der).unwrap();
    let mut ci = top.sequence().unwrap();
    let ct_oid = ci.next().unwrap();
    let explicit = ci.next().unwrap();
    let env = explicit.children().unwrap().next().unwrap();
    let mut e = env.sequence().unwrap();
    let version = e.next().unwrap();
    let infos = e.next().unwrap();
    let eci = e.next().unwrap();
    let mut c = eci.sequence().unwrap();
    let inner_type = c.next().unwrap();
    let alg = c.next().unwrap();
    let new_content = content.map(|b| der::tlv(der::context_primitive(0), b));
    let mut eci_parts: Vec<&[u8]> = vec![inner_type.raw, alg.raw];
    if let Some(nc) = &new_content {
        eci_parts.push(nc);
    }
    let eci = der::sequence(&eci_parts);
    let env = der::sequence(&[version.raw, infos.raw, &eci]);
    der::sequence(&[
        ct_oid.raw,
        &der::constructed(der::context_constructed(0), &[&env]),
    ])
}

#[test]
fn bad_content_length_is_content_error() {
    let k = key_a();
    let keys = ring(&[k], false);
    let der = seal(
        &recipient(k),
        CARD,
        KeyTransport::Oaep,
        RecipientIdKind::SubjectKeyId,
    )
    .unwrap();
    let ct = open::parse(&der).unwrap().ciphertext.to_vec();
    // The rebuild helper itself is faithful.
    assert_eq!(with_content(&der, Some(&ct)), der);
    for bad in [&ct[..0], &ct[..15], &ct[..ct.len() - 1], &ct[1..]] {
        let t = with_content(&der, Some(bad));
        assert_eq!(keys.open_der(&t), Err(OpenError::ContentDecryption));
    }
    let detached = with_content(&der, None);
    assert_eq!(keys.open_der(&detached), Err(OpenError::ContentDecryption));
}

#[test]
fn unsupported_algorithms() {
    let k = key_a();
    let keys = ring(&[k], true);
    let r = recipient(k);
    // Key transport OID rsaEncryption → sha1WithRSAEncryption.
    let der = seal(
        &r,
        CARD,
        KeyTransport::Pkcs1v15,
        RecipientIdKind::IssuerSerial,
    )
    .unwrap();
    let mut t = der.clone();
    let pos = t
        .windows(oids::RSA_ENCRYPTION.len())
        .position(|w| w == oids::RSA_ENCRYPTION)
        .unwrap();
    t[pos + oids::RSA_ENCRYPTION.len() - 1] = 0x05;
    assert_eq!(keys.open_der(&t), Err(OpenError::Unsupported));
    // Content cipher aes256-CBC → aes256-GCM.
    let mut t = der.clone();
    let pos = t
        .windows(oids::AES256_CBC.len())
        .position(|w| w == oids::AES256_CBC)
        .unwrap();
    t[pos + oids::AES256_CBC.len() - 1] = 0x2e;
    assert_eq!(keys.open_der(&t), Err(OpenError::Unsupported));
    // Content type other than envelopedData (signedData).
    let mut t = der.clone();
    t[4 + oids::ENVELOPED_DATA.len() - 1 + 2] = 0x02;
    assert_eq!(open::parse(&t).err(), Some(OpenError::Unsupported));
}

// ---------------------------------------------------------------- wire decoding

#[test]
fn wire_detection() {
    let der = seal(
        &recipient(key_a()),
        CARD,
        KeyTransport::Oaep,
        RecipientIdKind::SubjectKeyId,
    )
    .unwrap();
    let b64 = STANDARD.encode(&der);
    let wrapped: String = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n");
    for text in [
        b64.clone(),
        format!("  {wrapped}\n"),
        STANDARD_NO_PAD.encode(&der),
        URL_SAFE_NO_PAD.encode(&der),
        hex::encode(&der),
        hex::encode_upper(&der),
        format!("{}\n{}", hex::encode(&der[..40]), hex::encode(&der[40..])),
        pem::encode(&pem::Pem::new("CMS", der.clone())),
        pem::encode(&pem::Pem::new("PKCS7", der.clone())),
    ] {
        assert_eq!(decode_wire(&text).unwrap(), der, "{text}");
    }
    // All-hex but not a SEQUENCE after hex decoding: base64.
    assert_eq!(
        decode_wire("abcd").unwrap(),
        STANDARD.decode("abcd").unwrap()
    );
    // Odd-length hex digits: base64 (and "abc" is valid unpadded base64).
    assert_eq!(
        decode_wire("abc").unwrap(),
        STANDARD_NO_PAD.decode("abc").unwrap()
    );
    assert_eq!(decode_wire("not*base64"), Err(OpenError::Encoding));
    assert_eq!(
        decode_wire("-----BEGIN CMS-----\n!!\n"),
        Err(OpenError::Encoding)
    );
}

// ---------------------------------------------------------------- keys

#[test]
fn key_loading_errors() {
    let mut keys = KeyRing::new();
    assert_eq!(keys.add_private_key_pem("garbage"), Err(KeyError::Pem));
    assert_eq!(keys.add_private_key_pem(""), Err(KeyError::Pem));
    assert_eq!(
        keys.add_private_key_pem(&key_a().certificate_pem),
        Err(KeyError::NoPrivateKey)
    );
    let enc = pem::encode(&pem::Pem::new("ENCRYPTED PRIVATE KEY", vec![0x30, 0x00]));
    assert_eq!(keys.add_private_key_pem(&enc), Err(KeyError::EncryptedKey));
    let bad = pem::encode(&pem::Pem::new("PRIVATE KEY", vec![0x30, 0x00]));
    assert_eq!(keys.add_private_key_pem(&bad), Err(KeyError::InvalidKey));
    assert_eq!(
        keys.add_certificate_pem(&key_a().certificate_pem),
        Err(KeyError::NoKeyForCertificate)
    );
    assert_eq!(
        keys.add_certificate_pem(&key_a().private_key_pem),
        Err(KeyError::InvalidCertificate)
    );
    assert!(keys.is_empty());
    assert_eq!(
        generate_key_pair(1024, "x").err(),
        Some(KeyError::UnsupportedKeySize)
    );
    assert!(Recipient::from_certificate_pem("nope").is_err());

    // A 1024-bit key (too small) made by openssl is rejected.
    let dir = tempfile::tempdir().unwrap();
    openssl(dir.path(), &["genrsa", "-out", "small.pem", "1024"]);
    let small = std::fs::read_to_string(dir.path().join("small.pem")).unwrap();
    assert_eq!(keys.add_private_key_pem(&small), Err(KeyError::InvalidKey));

    // A PEM bundle: certificate first, then the key.
    let bundle = format!(
        "{}{}",
        key_a().certificate_pem,
        key_a().private_key_pem.as_str()
    );
    keys.add_private_key_pem(&bundle).unwrap();
    keys.add_certificate_pem(&bundle).unwrap();
    assert_eq!(keys.len(), 1);
}

#[test]
fn key_ring_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<KeyRing>();
    assert_send_sync::<Recipient>();
    assert_send_sync::<std::sync::Arc<KeyRing>>();
}

// ---------------------------------------------------------------- secrets

#[test]
fn errors_and_debug_output_hold_no_secrets() {
    let k = key_a();
    let keys = ring(&[k], true);
    let pem_body: String = k
        .private_key_pem
        .lines()
        .nth(2)
        .unwrap()
        .chars()
        .take(40)
        .collect();
    let debug = format!("{keys:?} {k:?} {:?}", recipient(k));
    assert!(!debug.contains(&pem_body));
    assert!(!debug.contains("PRIVATE"));
    assert!(debug.contains(&k.ski_hex));

    let der = seal(
        &recipient(key_b()),
        CARD,
        KeyTransport::Pkcs1v15,
        RecipientIdKind::IssuerSerial,
    )
    .unwrap();
    let mut errors = vec![keys.open_der(&der).unwrap_err()];
    let mut t = der.clone();
    let n = t.len();
    t[n - 1] ^= 0xff;
    errors.push(keys.open_der(&t).unwrap_err());
    errors.extend([
        OpenError::Encoding,
        OpenError::TooLarge,
        OpenError::Malformed,
        OpenError::Unsupported,
        OpenError::NoMatchingKey,
        OpenError::ContentDecryption,
    ]);
    for e in errors {
        let s = format!("{e} {e:?}");
        assert!(!s.contains(MARKER), "{s}");
        assert!(!s.contains("fpan"), "{s}");
    }
    assert_eq!(
        OpenError::NoMatchingKey.to_string(),
        "no configured key can open this envelope"
    );
    assert_eq!(
        OpenError::Encoding.to_string(),
        "envelope is not valid base64 or hex"
    );
}

// ---------------------------------------------------------------- fuzzing

fn fuzz_ring() -> &'static (KeyRing, Vec<u8>) {
    static R: OnceLock<(KeyRing, Vec<u8>)> = OnceLock::new();
    R.get_or_init(|| {
        let k = key_a();
        let der = seal(
            &recipient(k),
            CARD,
            KeyTransport::Oaep,
            RecipientIdKind::IssuerSerial,
        )
        .unwrap();
        (ring(&[k], false), der)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let (keys, _) = fuzz_ring();
        let _ = keys.open_der(&bytes);
        let _ = open::parse(&bytes);
        let _ = ber::parse_single(&bytes);
        let _ = x509::parse_certificate(&bytes);
        let _ = Recipient::from_certificate_der(&bytes);
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,512}", hexish in "[0-9a-fA-F \n]{0,512}") {
        let (keys, _) = fuzz_ring();
        let _ = decode_wire(&text);
        let _ = keys.open(&text);
        let _ = keys.open(&hexish);
        let _ = KeyRing::new().add_private_key_pem(&text);
    }

    #[test]
    fn mutated_envelopes_never_panic(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<usize>()),
        insert in proptest::option::of((any::<usize>(), any::<u8>())),
    ) {
        let (keys, der) = fuzz_ring();
        let mut t = der.clone();
        for (i, b) in edits {
            let i = i % t.len();
            t[i] = b;
        }
        if let Some((i, b)) = insert {
            let i = i % (t.len() + 1);
            t.insert(i, b);
        }
        if let Some(c) = cut {
            t.truncate(c % (t.len() + 1));
        }
        let _ = keys.open_der(&t);
        let _ = keys.open(&STANDARD.encode(&t));
        let _ = keys.open(&hex::encode(&t));
    }

    #[test]
    fn nested_indefinite_lengths_never_panic(depth in 0usize..200, tail in proptest::collection::vec(any::<u8>(), 0..16)) {
        let mut t = Vec::new();
        for _ in 0..depth {
            t.extend_from_slice(&[0x30, 0x80]);
        }
        t.extend_from_slice(&tail);
        for _ in 0..depth {
            t.extend_from_slice(&[0x00, 0x00]);
        }
        let (keys, _) = fuzz_ring();
        prop_assert!(keys.open_der(&t).is_err());
    }
}
