//! `[keys]`: the PKCS#7 private keys that open envelopes, and the data key file.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeysConfig {
    /// PEM private keys (PKCS#8 or PKCS#1) able to open the envelopes.
    pub pkcs7_private_keys: Vec<PathBuf>,
    /// Optional: the certificates of those keys, so recipients named by issuer and serial number
    /// are matched directly instead of by trial.
    pub pkcs7_certificates: Vec<PathBuf>,
    /// The secret key file used to index PANs (and, derived from it, to seal contact details).
    pub pan_index_key_file: Option<PathBuf>,
}

impl KeysConfig {
    pub fn validate(&self, p: &mut Vec<String>) {
        if self.pkcs7_private_keys.is_empty() {
            p.push("keys.pkcs7_private_keys: at least one PEM private key is required (see 'issuer-gateway keys generate')".into());
        }
        if self.pan_index_key_file.is_none() {
            p.push("keys.pan_index_key_file: required (see 'issuer-gateway keys generate')".into());
        }
    }
}
