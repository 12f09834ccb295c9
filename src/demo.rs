//! `canvass demo`: the whole job on the embedded defaults, in a folder of its own.

use std::path::Path;

use anyhow::Context;

use crate::cli::{import_contact_list, import_postcodes};
use crate::domain::Email;
use crate::store::{DatabaseUrl, Store};
use crate::token::{Purpose, SigningKeys};

/// Where `canvass serve` listens by default.
const DEMO_LISTEN: &str = "127.0.0.1:8080";

/// The sample postcode directory and contacts list, shipped inside the binary so that the demo
/// runs from anywhere. The constituency codes are invented (`E149...`); real ones come from the
/// ONS postcode directory.
const SAMPLE_POSTCODES: &str = include_str!("../examples/postcodes.csv");
const SAMPLE_CONTACTS: &str = include_str!("../examples/contacts.csv");

pub async fn run(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let database = dir.join("canvass.db");
    let url = DatabaseUrl::Sqlite(format!("sqlite://{}", database.display()));
    let store = Store::connect(&url)
        .await
        .with_context(|| format!("opening {url}"))?;
    store.migrate().await?;
    println!("database: {url}");

    let postcodes = dir.join("postcodes.csv");
    let contacts = dir.join("contacts.csv");
    std::fs::write(&postcodes, SAMPLE_POSTCODES)?;
    std::fs::write(&contacts, SAMPLE_CONTACTS)?;

    println!("\n$ canvass postcodes import {}", postcodes.display());
    import_postcodes(&store, &postcodes).await?;
    println!(
        "\n$ canvass contacts import {} --source demo",
        contacts.display()
    );
    println!("(two rows of the sample are wrong on purpose, to show how bad rows are reported)");
    import_contact_list(&store, &contacts, "demo").await?;

    // The links an email to Amira would carry, signed with the key kept in the demo database.
    let keys = SigningKeys::load(None, &store).await?;
    let amira = Email::parse("amira.hassan@example.org")?;
    let amira = store
        .export_contact(&amira)
        .await?
        .context("the sample holds Amira")?;
    let preferences = keys.sign(Purpose::Preferences, &amira.public_id);
    let unsubscribe = keys.sign(Purpose::Unsubscribe, &amira.public_id);
    store.close().await;

    let canvass = this_program();
    println!(
        "\nTry, with CANVASS_DATABASE_URL={url}:\n  \
         {canvass} topics list\n  \
         {canvass} contact export amira.hassan@example.org\n  \
         {canvass} contact erase isla.brown@example.org\n  \
         {canvass} serve\n\
         and, while it serves, Amira's links:\n  \
         preferences  http://{DEMO_LISTEN}/p/{preferences}\n  \
         unsubscribe  http://{DEMO_LISTEN}/u/{unsubscribe}",
        preferences = preferences.as_str(),
        unsubscribe = unsubscribe.as_str(),
    );
    Ok(())
}

/// How to run this program again from here: `canvass` when it is on the PATH, else its path.
fn this_program() -> String {
    let exe = std::env::current_exe().ok();
    let on_path = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| Some(dir.join("canvass")) == exe)
    });
    match exe {
        Some(exe) if !on_path => {
            let cwd = std::env::current_dir().unwrap_or_default();
            exe.strip_prefix(&cwd).unwrap_or(&exe).display().to_string()
        }
        _ => "canvass".to_owned(),
    }
}
