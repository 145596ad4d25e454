//! The `outbox` channel: each message becomes one file in `outbox.dir`, holding the destination
//! and the text exactly as they would be sent. For development, tests and the demo: the files
//! hold OTPs and destinations in clear, so the folder must be treated like the live channel.

use super::{DeliveryError, Message, Receipt};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Outbox {
    dir: PathBuf,
    seq: AtomicU64,
}

impl Outbox {
    pub fn new(dir: &Path) -> std::io::Result<Outbox> {
        std::fs::create_dir_all(dir)?;
        Ok(Outbox {
            dir: dir.to_owned(),
            seq: AtomicU64::new(0),
        })
    }

    /// Writes the message durably (temporary file, fsync, rename) and answers its file name as
    /// the provider message id.
    pub async fn write(&self, msg: &Message) -> Result<Receipt, DeliveryError> {
        let now = time::OffsetDateTime::now_utc();
        let stamp = now.unix_timestamp_nanos() / 1_000_000;
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let id = format!(
            "{stamp}-{}-{n:06}-{}",
            msg.channel,
            hex::encode(crate::data_keys::random_bytes::<4>())
        );
        let ext = match msg.channel {
            crate::domain::Channel::Sms => "txt",
            crate::domain::Channel::Email => "eml",
        };
        let mut content = zeroize::Zeroizing::new(String::new());
        content.push_str(&format!(
            "Channel: {}\nTo: {}\n",
            msg.channel,
            msg.to.as_str()
        ));
        if let Some(subject) = &msg.subject {
            content.push_str(&format!("Subject: {subject}\n"));
        }
        content.push('\n');
        content.push_str(&msg.body);
        let dir = self.dir.clone();
        let final_path = dir.join(format!("{id}.{ext}"));
        let tmp_path = dir.join(format!(".{id}.tmp"));
        let result = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            // The message holds the OTP and the destination: owner-only, like a key file.
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(&tmp_path)?;
            f.write_all(content.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp_path, &final_path)?;
            if let Ok(d) = std::fs::File::open(&dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })
        .await;
        match result {
            Ok(Ok(())) => Ok(Receipt {
                provider_message_id: Some(id),
            }),
            Ok(Err(e)) => Err(DeliveryError::Refused {
                code: e.raw_os_error().map(|c| format!("os-{c}")),
                reason: format!("outbox write failed: {}", e.kind()),
            }),
            Err(_) => Err(DeliveryError::Refused {
                code: None,
                reason: "outbox writer stopped".into(),
            }),
        }
    }
}
