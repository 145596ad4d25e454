//! `keys generate`: the issuer's PKCS#7 key pair, its certificate and the PAN index key.

use anyhow::Context;
use std::path::{Path, PathBuf};

pub const PRIVATE_KEY_FILE: &str = "issuer-pkcs7-key.pem";
pub const CERTIFICATE_FILE: &str = "issuer-pkcs7-cert.pem";
pub const PAN_INDEX_KEY_FILE: &str = "pan-index.key";

/// Creates the key pair, its self-signed certificate and the PAN index key in `dir`, refusing
/// to overwrite any existing file. Returns the files written.
pub fn generate(dir: &Path, bits: u32, common_name: &str) -> anyhow::Result<Vec<PathBuf>> {
    if bits != 2048 && bits != 4096 {
        anyhow::bail!("--bits: must be 2048 or 4096");
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("--out: cannot create {}", dir.display()))?;
    let files = [PRIVATE_KEY_FILE, CERTIFICATE_FILE, PAN_INDEX_KEY_FILE].map(|f| dir.join(f));
    for f in &files {
        if f.exists() {
            anyhow::bail!(
                "{} already exists; keys are never overwritten (choose another --out)",
                f.display()
            );
        }
    }
    let pair = crate::envelope::generate_key_pair(bits, common_name)
        .map_err(|e| anyhow::anyhow!("key generation failed: {e}"))?;
    let [key, cert, pan] = &files;
    crate::data_keys::write_private_file(key, pair.private_key_pem.as_bytes())
        .with_context(|| format!("cannot write {}", key.display()))?;
    std::fs::write(cert, pair.certificate_pem.as_bytes())
        .with_context(|| format!("cannot write {}", cert.display()))?;
    crate::data_keys::write_private_file(pan, crate::data_keys::new_key_text().as_bytes())
        .with_context(|| format!("cannot write {}", pan.display()))?;
    Ok(files.to_vec())
}
