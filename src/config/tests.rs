//! The settings' precedence, their parsing and what each refuses.

use super::*;
use crate::domain::BankHolidays;

#[test]
fn defaults_follow_the_contract() {
    let config = Settings::default().resolve().unwrap();
    assert_eq!(config.database_url, "sqlite://canvass.db".parse().unwrap());
    assert_eq!(config.smtp_url, "file://outbox");
    assert_eq!(config.base_url, "http://127.0.0.1:8080");
    assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(config.from.to_string(), "canvass <canvass@localhost>");
    assert_eq!(config.send_concurrency.get(), 8);
    assert!(config.send_rate.is_none() && config.dkim.is_empty());
}

#[test]
fn given_settings_beat_the_fallback() {
    let given = Settings {
        database_url: Some("postgres://localhost/a".into()),
        ..Settings::default()
    };
    let file: Settings = toml::from_str(
        "database_url = \"sqlite://file.db\"\nbase_url = \"https://canvass.example.org/\"",
    )
    .unwrap();
    let config = given.or(file).resolve().unwrap();
    assert_eq!(
        config.database_url,
        "postgres://localhost/a".parse().unwrap()
    );
    assert_eq!(config.base_url, "https://canvass.example.org");
}

#[test]
fn a_secret_file_given_here_beats_a_value_in_the_config_file_and_the_journal_is_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("smtp_url");
    std::fs::write(&secret, "smtps://news:pw@relay.example.org\r\n").unwrap();
    let given = Settings {
        smtp_url_file: Some(secret),
        ..Settings::default()
    };
    let file: Settings = toml::from_str("smtp_url = \"file:///var/lib/canvass/outbox\"").unwrap();
    let config = given
        .with_secrets_read()
        .unwrap()
        .or(file)
        .resolve()
        .unwrap();
    assert_eq!(config.smtp_url, "smtps://news:pw@relay.example.org");

    let same = Settings {
        database_url: Some("sqlite://canvass.db".into()),
        journal: Some("canvass.db-wal".into()),
        ..Settings::default()
    };
    assert!(same.resolve().unwrap_err().to_string().contains("journal"));
}

#[test]
fn the_privacy_table_and_the_data_protection_settings_are_read_and_checked() {
    let file: Settings = toml::from_str(
        "retention_months = 24\nbank_holidays = \"scotland\"\n\
         [privacy]\ncontroller = \"Hertford CLP\"\nrecipients = [\"Mailgun\"]\n\
         [privacy.purposes]\nevents = \"Local events\"\n",
    )
    .unwrap();
    let config = file.resolve().unwrap();
    let data = &config.data_protection;
    assert_eq!(data.retention_months, Some(24));
    assert_eq!(data.bank_holidays, BankHolidays::Scotland);
    assert_eq!(data.privacy.controller.as_deref(), Some("Hertford CLP"));
    assert_eq!(data.privacy.purposes["events"], "Local events");
    let typo = toml::from_str::<Settings>("[privacy]\ncontroler = \"x\"\n");
    assert!(typo.is_err(), "an unknown key in [privacy] is an error");
    let wales = Settings {
        bank_holidays: Some("wales-and-england".into()),
        ..Settings::default()
    };
    assert!(
        wales
            .resolve()
            .unwrap_err()
            .to_string()
            .contains("bank_holidays")
    );
    let never = Settings {
        retention_months: Some(0),
        ..Settings::default()
    };
    assert!(never.resolve().is_err());
}

#[test]
fn dkim_keys_are_one_per_domain_and_the_return_path_an_address() {
    let settings = Settings {
        dkim_domain: Some("Hertford.example.org".into()),
        dkim_selector: Some("s1".into()),
        dkim_key_file: Some("main.pem".into()),
        dkim_keys: Some("stevenage.example.org:s2:/keys/stevenage.pem, ".into()),
        return_path: Some("returns@hertford.example.org".into()),
        ..Settings::default()
    };
    let config = settings.clone().resolve().unwrap();
    let domains: Vec<&str> = config.dkim.iter().map(|k| k.domain.as_str()).collect();
    assert_eq!(domains, ["hertford.example.org", "stevenage.example.org"]);
    assert_eq!(
        config.dkim[1].key_file,
        PathBuf::from("/keys/stevenage.pem")
    );
    assert_eq!(
        config.return_path.unwrap().to_string(),
        "returns@hertford.example.org"
    );
    let twice = Settings {
        dkim_keys: Some("hertford.example.org:s3:other.pem".into()),
        ..settings.clone()
    };
    assert!(
        twice
            .resolve()
            .unwrap_err()
            .to_string()
            .contains("two keys")
    );
    let garbled = Settings {
        dkim_keys: Some("stevenage.example.org:s2".into()),
        ..settings.clone()
    };
    assert!(
        garbled
            .resolve()
            .unwrap_err()
            .to_string()
            .contains("dkim_keys")
    );
    let not_an_address = Settings {
        return_path: Some("bounces".into()),
        ..settings
    };
    assert!(not_an_address.resolve().is_err());
    // In the file, a relative key file is the file's folder's.
    let file: Settings = toml::from_str("dkim_keys = \"example.org:s:keys/k.pem\"").unwrap();
    let file = file.relative_to(Path::new("/etc/canvass")).unwrap();
    assert_eq!(
        file.dkim_keys.as_deref(),
        Some("example.org:s:/etc/canvass/keys/k.pem")
    );
}

#[test]
fn file_with_an_unknown_key_is_refused() {
    assert!(toml::from_str::<Settings>("databse_url = \"x\"").is_err());
}

#[test]
fn a_reply_to_is_held_to_the_sending_domains() {
    let settings = |reply_to: &str| Settings {
        from: Some("Hertford Labour <news@hertford.example.org>".into()),
        sender_domains: Some("stevenage.example.org".into()),
        reply_to: Some(reply_to.into()),
        ..Settings::default()
    };
    let refused = settings("Phisher <phish@evil.example>")
        .resolve()
        .unwrap_err();
    assert!(refused.to_string().contains("reply_to"), "{refused}");
    for fine in [
        "Office <office@hertford.example.org>",
        "office@Stevenage.example.org",
    ] {
        assert!(settings(fine).resolve().is_ok(), "{fine}");
    }
}

#[test]
fn partial_dkim_is_refused() {
    let settings = Settings {
        dkim_domain: Some("example.org".into()),
        ..Settings::default()
    };
    assert!(settings.resolve().is_err());
}

#[test]
fn debug_hides_the_signing_keys() {
    let settings = Settings {
        signing_keys: Some("k1:c2VjcmV0LXNlY3JldA==".into()),
        ..Settings::default()
    };
    let shown = format!("{:?}", settings.resolve().unwrap());
    assert!(!shown.contains("c2VjcmV0"), "{shown}");
}
