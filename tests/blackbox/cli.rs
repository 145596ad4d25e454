//! The command line, as an operator meets it.

use crate::common::{bin, keyed_config, write_config};

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["demo", "--help"],
        vec!["keys", "generate", "--help"],
        vec!["cards", "import", "--help"],
    ] {
        let out = bin().args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

#[test]
fn keys_generate_never_overwrites_and_protects_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("k");
    let out = bin()
        .args(["keys", "generate", "--bits", "2048", "--out"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(out.status.success());
    for f in [
        "issuer-pkcs7-key.pem",
        "issuer-pkcs7-cert.pem",
        "pan-index.key",
    ] {
        assert!(keys.join(f).exists(), "{f}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["issuer-pkcs7-key.pem", "pan-index.key"] {
            assert_eq!(
                std::fs::metadata(keys.join(f))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777,
                0o600,
                "{f}"
            );
        }
    }
    let key_before = std::fs::read(keys.join("issuer-pkcs7-key.pem")).unwrap();
    let again = bin()
        .args(["keys", "generate", "--out"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert_eq!(
        std::fs::read(keys.join("issuer-pkcs7-key.pem")).unwrap(),
        key_before
    );
    let bad = bin()
        .args(["keys", "generate", "--bits", "1024", "--out"])
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

#[test]
fn cards_import_reports_lines_without_pans() {
    let dir = tempfile::tempdir().unwrap();
    let config = keyed_config(dir.path());
    let csv = "pan,exp,status,product_id,phone,email,note\n\
               4111111111111111,1229,active,P1,+447700900123,a@example.com,x\n\
               4111111111111112,1229,active,P1,,,\n\
               5555555555554444,1229,teleported,P1,,,\n\
               4000056655665556,1229,active,P1,0770,,\n\
               4111111111111111,0130,active,P2,,,\n";
    std::fs::write(dir.path().join("cards.csv"), csv).unwrap();
    let out = bin()
        .args(["cards", "import", "--config"])
        .arg(&config)
        .arg(dir.path().join("cards.csv"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "rejections make the exit code 1"
    );
    assert!(
        stdout.starts_with("added 1, updated 1, rejected 3\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 3: pan: card number fails the Luhn check"),
        "{stdout}"
    );
    assert!(stdout.contains("line 4: status: 'teleported'"), "{stdout}");
    assert!(stdout.contains("line 5: phone:"), "{stdout}");
    assert!(stderr.contains("column 'note'"), "{stderr}");
    for pan in [
        "4111111111111111",
        "4111111111111112",
        "5555555555554444",
        "4000056655665556",
    ] {
        assert!(!stdout.contains(pan) && !stderr.contains(pan));
    }
    // The database holds no PAN, phone or e-mail in clear.
    let db = std::fs::read(dir.path().join("gw.db")).unwrap();
    let wal = std::fs::read(dir.path().join("gw.db-wal")).unwrap_or_default();
    for needle in ["4111111111111111", "447700900123", "a@example.com"] {
        let n = needle.as_bytes();
        assert!(
            !db.windows(n.len()).any(|w| w == n) && !wal.windows(n.len()).any(|w| w == n),
            "database holds {needle} in clear"
        );
    }
}

/// A mistake next to a secret: `serve` names the key, line and column, and prints neither the
/// secret nor the offending line.
#[test]
fn serve_never_echoes_a_secret_from_a_bad_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    for (text, named) in [
        // A syntax error: the closing quote is missing.
        (
            "[sms]\nprovider = \"twilio\"\nauth_token = \"tw-S3CRET-0001\n",
            "line 3, column",
        ),
        // A type error: a secret where a number belongs.
        (
            "[email]\ntimeout_ms = \"smtp-S3CRET-0002\"\n",
            "email.timeout_ms",
        ),
        // A database URL whose password holds an '@', printed by --print-config.
        (
            "[database]\nurl = \"postgres://gw:db@S3CRET-0003@db.internal/gw\"\n",
            "",
        ),
    ] {
        std::fs::write(&cfg, text).unwrap();
        let out = bin()
            .args(["serve", "--print-config", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains("S3CRET"), "a secret is echoed:\n{all}");
        assert!(all.contains(named), "{named} not named:\n{all}");
    }
}

/// `serve --require-real-channels` (or server.require_real_channels) refuses a channel on the
/// outbox, naming each.
#[test]
fn serve_can_refuse_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let config = keyed_config(dir.path());
    let out = bin()
        .args(["serve", "--require-real-channels", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for key in ["- sms.provider: is outbox", "- email.provider: is outbox"] {
        assert!(err.contains(key), "{key} missing from:\n{err}");
    }
    let out = bin()
        .args(["serve", "--config"])
        .arg(&config)
        .env("ISSUER_GATEWAY__SERVER__REQUIRE_REAL_CHANNELS", "true")
        .env("ISSUER_GATEWAY__EMAIL__PROVIDER", "disabled")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("- sms.provider: is outbox"), "{err}");
    assert!(!err.contains("email.provider"), "{err}");
}

#[test]
fn serve_refuses_a_bad_configuration_naming_each_setting() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[issuer]\nid = \"SHORT\"\n[admin]\nlisten = \"0.0.0.0:9999\"\n[sms]\nprovider = \"pigeon\"\n").unwrap();
    let out = bin()
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for key in [
        "issuer.id",
        "admin.token",
        "sms.provider",
        "keys.pkcs7_private_keys",
        "keys.pan_index_key_file",
    ] {
        assert!(
            err.lines()
                .any(|l| l.trim_start().starts_with(&format!("- {key}"))),
            "{key} not named:\n{err}"
        );
    }
    // A key file readable by others is refused with a clear line.
    let good = keyed_config(dir.path());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = dir.path().join("keys/issuer-pkcs7-key.pem");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = bin()
            .args(["serve", "--config"])
            .arg(&good)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("chmod 600"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn print_config_shows_overrides_and_hides_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "sqlite://x.db");
    let out = bin()
        .args(["serve", "--print-config", "--config"])
        .arg(&cfg)
        .env("ISSUER_GATEWAY__ADMIN__TOKEN", "admin-s3cret-token")
        .env("ISSUER_GATEWAY__SMS__TIMEOUT_MS", "2500")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("timeout_ms = 2500"), "{text}");
    assert!(text.contains("token = \"[redacted]\""), "{text}");
    assert!(!text.contains("admin-s3cret-token"));
}

#[test]
fn demo_runs_the_whole_flow() {
    let out = bin().arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "1. Green",
        "2. Yellow with SMS OTP",
        "3. Yellow with e-mail OTP",
        "4. Red",
        "5. Failed delivery",
        "11. Option C",
        "12. Option D",
        "All steps went as expected.",
    ] {
        assert!(stdout.contains(step), "{step}");
    }
    assert!(stdout.contains("responseCode 911"));
    assert!(stdout.contains(", 0 of 16 card numbers"));
}
