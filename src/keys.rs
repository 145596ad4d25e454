//! `keys generate` and the card import command's plumbing.

use crate::config::Config;
use crate::data_keys::DataKeys;
use crate::domain::Millis;
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

/// `cards import`: opens the database and the PAN index key named by the configuration and
/// imports the file, printing progress on standard error for long files.
pub async fn import_cards(
    config: &Config,
    file: &Path,
) -> anyhow::Result<crate::cards::ImportReport> {
    import_cards_at(config, file, crate::clock::Clock::system().now_ms()).await
}

/// `import_cards` at a given time (destination changes are recorded at `now`).
pub async fn import_cards_at(
    config: &Config,
    file: &Path,
    now: Millis,
) -> anyhow::Result<crate::cards::ImportReport> {
    let key_file = config
        .keys
        .pan_index_key_file
        .as_ref()
        .context("keys.pan_index_key_file: required to index the PANs")?;
    let keys = DataKeys::from_file(key_file)
        .map_err(|e| anyhow::anyhow!("keys.pan_index_key_file: {e}"))?;
    let reader =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let parsed = crate::cards::parse(std::io::BufReader::new(reader))
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let store = crate::store::Store::connect(
        &config.database.url,
        config.database.max_connections,
        std::time::Duration::from_millis(config.database.timeout_ms),
    )
    .await
    .map_err(|e| anyhow::anyhow!("database.url: cannot open the database: {e}"))?;
    let report = crate::cards::import(&store, &keys, parsed, now, |done, total| {
        eprintln!("  {done} of {total} lines imported");
    })
    .await
    .map_err(|e| anyhow::anyhow!("import stopped: {e}"))?;
    store.close().await;
    Ok(report)
}
