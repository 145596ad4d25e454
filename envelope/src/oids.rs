//! Object identifier contents octets (DER) used by this module.

/// id-envelopedData 1.2.840.113549.1.7.3
pub(crate) const ENVELOPED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
/// id-data 1.2.840.113549.1.7.1
pub(crate) const DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
/// rsaEncryption 1.2.840.113549.1.1.1
pub(crate) const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// id-RSAES-OAEP 1.2.840.113549.1.1.7
pub(crate) const RSAES_OAEP: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07];
/// id-mgf1 1.2.840.113549.1.1.8
pub(crate) const MGF1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];
/// id-pSpecified 1.2.840.113549.1.1.9
pub(crate) const P_SPECIFIED: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x09];
/// id-sha1 1.3.14.3.2.26
pub(crate) const SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];
/// id-sha256 2.16.840.1.101.3.4.2.1
pub(crate) const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
/// id-sha384 2.16.840.1.101.3.4.2.2
pub(crate) const SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
/// id-sha512 2.16.840.1.101.3.4.2.3
pub(crate) const SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];
/// id-aes128-CBC 2.16.840.1.101.3.4.1.2
pub(crate) const AES128_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02];
/// id-aes192-CBC 2.16.840.1.101.3.4.1.22
pub(crate) const AES192_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x16];
/// id-aes256-CBC 2.16.840.1.101.3.4.1.42
pub(crate) const AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];
/// id-ce-subjectKeyIdentifier 2.5.29.14
pub(crate) const SUBJECT_KEY_IDENTIFIER: &[u8] = &[0x55, 0x1d, 0x0e];

#[cfg(test)]
mod tests {
    /// Independent dotted-decimal encoder to cross-check the constants.
    fn encode(dotted: &str) -> Vec<u8> {
        let arcs: Vec<u64> = dotted.split('.').map(|a| a.parse().unwrap()).collect();
        let mut out = Vec::new();
        let mut push = |mut v: u64| {
            let mut tmp = vec![(v & 0x7f) as u8];
            v >>= 7;
            while v > 0 {
                tmp.push(((v & 0x7f) as u8) | 0x80);
                v >>= 7;
            }
            tmp.reverse();
            out.extend(tmp);
        };
        push(arcs[0] * 40 + arcs[1]);
        for a in &arcs[2..] {
            push(*a);
        }
        out
    }

    #[test]
    fn constants_match_dotted_forms() {
        use super::*;
        for (c, d) in [
            (ENVELOPED_DATA, "1.2.840.113549.1.7.3"),
            (DATA, "1.2.840.113549.1.7.1"),
            (RSA_ENCRYPTION, "1.2.840.113549.1.1.1"),
            (RSAES_OAEP, "1.2.840.113549.1.1.7"),
            (MGF1, "1.2.840.113549.1.1.8"),
            (P_SPECIFIED, "1.2.840.113549.1.1.9"),
            (SHA1, "1.3.14.3.2.26"),
            (SHA256, "2.16.840.1.101.3.4.2.1"),
            (SHA384, "2.16.840.1.101.3.4.2.2"),
            (SHA512, "2.16.840.1.101.3.4.2.3"),
            (AES128_CBC, "2.16.840.1.101.3.4.1.2"),
            (AES192_CBC, "2.16.840.1.101.3.4.1.22"),
            (AES256_CBC, "2.16.840.1.101.3.4.1.42"),
            (SUBJECT_KEY_IDENTIFIER, "2.5.29.14"),
        ] {
            assert_eq!(c, &encode(d)[..], "{d}");
        }
    }
}
