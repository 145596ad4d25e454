//! `fpanDetails`: the old and new card numbers and expiries of an `updateCard`, sealed to
//! Thales's certificate (`tsh.encryption_cert`) as PKCS#7 EnvelopedData, AES-256-CBC with
//! RSA-OAEP-SHA256. The issuer cannot open it again: once sealed it is safe to store until sent.
//! The card file seals it (the PANs exist in memory only while their row is processed).

use crate::config::FpanEncoding;
use crate::domain::{Expiry, Pan};
use crate::envelope::{KeyTransport, Recipient, RecipientIdKind};

/// Thales's certificate, ready to seal to.
pub struct FpanSealer {
    recipient: Recipient,
    encoding: FpanEncoding,
}

impl FpanSealer {
    /// The certificate of `tsh.encryption_cert`, read from `path`.
    pub fn from_file(path: &std::path::Path, encoding: FpanEncoding) -> anyhow::Result<FpanSealer> {
        let pem = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!("tsh.encryption_cert: cannot read {}: {e}", path.display())
        })?;
        Self::from_pem(&pem, encoding)
    }

    pub fn from_pem(pem: &str, encoding: FpanEncoding) -> anyhow::Result<FpanSealer> {
        let recipient = Recipient::from_certificate_pem(pem)
            .map_err(|e| anyhow::anyhow!("tsh.encryption_cert: {e}"))?;
        Ok(FpanSealer {
            recipient,
            encoding,
        })
    }

    /// Seals `{"oldFPAN","oldExpDate","newFPAN","newExpDate"}`.
    pub fn seal(
        &self,
        old_pan: &Pan,
        old_exp: &Expiry,
        new_pan: &Pan,
        new_exp: &Expiry,
    ) -> anyhow::Result<String> {
        let plain = zeroize::Zeroizing::new(
            serde_json::to_vec(&serde_json::json!({
                "oldFPAN": old_pan.expose_digits(),
                "oldExpDate": old_exp.mmyy(),
                "newFPAN": new_pan.expose_digits(),
                "newExpDate": new_exp.mmyy(),
            }))
            .map_err(|e| anyhow::anyhow!("fpanDetails: {e}"))?,
        );
        let sealed = match self.encoding {
            FpanEncoding::Base64 => crate::envelope::seal_base64(
                &self.recipient,
                &plain,
                KeyTransport::Oaep,
                RecipientIdKind::IssuerSerial,
            ),
            FpanEncoding::Hex => crate::envelope::seal_hex(
                &self.recipient,
                &plain,
                KeyTransport::Oaep,
                RecipientIdKind::IssuerSerial,
            ),
        };
        sealed.map_err(|e| anyhow::anyhow!("fpanDetails: cannot seal: {e}"))
    }
}
