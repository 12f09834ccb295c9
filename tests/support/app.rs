//! The real HTTP service on a free port, over a test store, with people in it.

use std::sync::Arc;

use canvass::domain::{ContactExport, Email, PublicId};
use canvass::http::{Application, Metrics, ServiceSettings};
use canvass::mail::Mailer;
use canvass::mail::Transport;
use canvass::mail::token::{Purpose, SigningKeys};
use tokio::sync::oneshot;

use super::{Recorded, TestStore};

/// The bearer token that reads the test service's `/metrics`.
pub const METRICS_TOKEN: &str = "metrics-reader-secret";

pub const KEY_1: &str = "k1:c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0";
pub const KEY_2: &str = "k2:YW5vdGhlci1zZWNyZXQtYW5vdGhlci1zZWNyZXQ=";

/// A running service. Dropping it stops the server.
pub struct TestApp {
    pub db: TestStore,
    pub base: String,
    pub keys: SigningKeys,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    /// Starts the service with `keys` (`kid:secret,...`) over the store, after loading the
    /// sample directory and `contacts` (a contacts CSV); its own messages (test sends, requests
    /// for approval) go to the store's outbox folder.
    pub async fn start(db: TestStore, keys: &str, contacts: &str) -> Self {
        db.load_sample_directory().await;
        let mut report = Recorded::default();
        let file = db.file("contacts.csv", contacts);
        let file = canvass::import::CsvFile::open(&file).unwrap();
        canvass::app::imports::contacts(
            &db.app(),
            &canvass::domain::Actor::Operator,
            file,
            "test",
            None,
            &mut report,
        )
        .await
        .unwrap();
        assert!(report.rejections.is_empty(), "{:?}", report.rejections);
        let outbox = db.dir.path().join("outbox");
        std::fs::create_dir_all(&outbox).unwrap();
        let outbox = format!("file://{}", outbox.display());
        Self::serve_mailing(db, keys, Some(outbox)).await
    }

    /// The messages in the outbox folder, by file name.
    pub fn outbox(&self) -> Vec<(String, String)> {
        self.db.outbox()
    }

    /// Starts the service over the store as it is.
    pub async fn serve(db: TestStore, keys: &str) -> Self {
        Self::serve_mailing(db, keys, None).await
    }

    /// Starts the service over the store as it is, sending sign-up confirmations to
    /// `mailer` (an SMTP or file:// URL).
    pub async fn serve_mailing(db: TestStore, keys: &str, mailer: Option<String>) -> Self {
        Self::serve_at(db, keys, mailer, "https://links.example.org").await
    }

    /// The same, its links (and the console's cookie) under `base_url`: an `http://` one
    /// lets a browser keep the console's cookie on this plain-HTTP test server.
    pub async fn serve_at(
        db: TestStore,
        keys: &str,
        mailer: Option<String>,
        base_url: &str,
    ) -> Self {
        Self::launch(db, keys, mailer, base_url, |app| app).await
    }

    /// Starts the service over the store as it is, its application set up by `configure`
    /// (webhooks, say).
    pub async fn serve_configured(
        db: TestStore,
        keys: &str,
        configure: impl FnOnce(canvass::app::App) -> canvass::app::App,
    ) -> Self {
        Self::launch(db, keys, None, "https://links.example.org", configure).await
    }

    async fn launch(
        db: TestStore,
        keys: &str,
        mailer: Option<String>,
        base_url: &str,
        configure: impl FnOnce(canvass::app::App) -> canvass::app::App,
    ) -> Self {
        let keys: SigningKeys = keys.parse().unwrap();
        let publisher = canvass::domain::Publisher {
            organisation: "Hertford & <Stortford> Labour".into(),
            ..super::publisher()
        };
        let mut service = canvass::app::App::new(db.store.clone(), publisher, base_url)
            .with_sender_domains(vec!["hertford.example.org".into()]);
        if let Some(smtp_url) = mailer {
            service = service.with_mailer(Mailer {
                transport: Transport::from_url(&smtp_url).unwrap(),
                letterhead: canvass::mail::Letterhead {
                    keys: keys.clone(),
                    dkim: canvass::mail::DkimKeys::one("hertford.example.org", test_dkim()),
                    ..super::letterhead()
                },
            });
        }
        let app = Application::build(ServiceSettings {
            app: configure(service),
            keys: keys.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
            metrics: Arc::new(Metrics::new()),
            trusted_proxies: canvass::http::parse_trusted_proxies("127.0.0.1").unwrap(),
            worker: None,
            metrics_access: canvass::http::MetricsAccess {
                token: Some(METRICS_TOKEN.into()),
                listen: None,
            },
        })
        .await
        .unwrap();
        let base = format!("http://{}", app.local_addr());
        let (stop, stopped) = oneshot::channel();
        let server = tokio::spawn(async move {
            app.run_until_stopped(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            db,
            base,
            keys,
            client,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// The staff API's OpenAPI document, as served.
    pub async fn openapi(&self) -> serde_json::Value {
        self.client
            .get(format!("{}/api/v1/openapi.json", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The public id of the contact with this address.
    pub async fn public_id(&self, email: &str) -> PublicId {
        self.export(email).await.public_id
    }

    /// Everything held on the person (who must be held).
    pub async fn export(&self, email: &str) -> ContactExport {
        self.db
            .store
            .export_contact(&Email::parse(email).unwrap())
            .await
            .unwrap()
            .expect("the contact is held")
    }

    pub async fn link(&self, purpose: Purpose, email: &str) -> String {
        let id = self.public_id(email).await;
        let path = match purpose {
            Purpose::Unsubscribe => "u",
            Purpose::Preferences => "p",
            Purpose::Confirm => "confirm",
        };
        format!(
            "{}/{path}/{}",
            self.base,
            self.keys.sign(purpose, &id).as_str()
        )
    }

    /// Tells the server to stop; the handle completes once the requests in flight are answered.
    pub fn begin_stop(&mut self) -> tokio::task::JoinHandle<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.server.take().expect("the server is running")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The topics the person hears about now, in topic order.
pub fn granted(export: &ContactExport) -> Vec<&str> {
    export
        .consents
        .iter()
        .filter(|c| c.granted)
        .map(|c| c.topic.as_str())
        .collect()
}

/// An Ed25519 DKIM key for the test domain (a fixed seed: the tests check that mail is signed,
/// `tests/worker.rs` that signatures verify).
fn test_dkim() -> lettre::message::dkim::DkimConfig {
    use lettre::message::dkim::{DkimConfig, DkimSigningAlgorithm, DkimSigningKey};
    let key = DkimSigningKey::new(
        "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=",
        DkimSigningAlgorithm::Ed25519,
    )
    .unwrap();
    DkimConfig::default_config("canvass".into(), "hertford.example.org".into(), key)
}
