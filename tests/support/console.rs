//! The staff console as a browser without JavaScript uses it: a cookie, forms with their token,
//! and the same-origin headers a browser sends.

use canvass::app::Actor;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::TestStore;
use super::app::TestApp;

/// The password every person of the tests' staff chooses.
pub const PASSWORD: &str = "correct horse battery staple";

/// Adds a person to the staff and sets their password through their link, as they would.
pub async fn add_staff(db: &TestStore, email: &str, role: &str, constituencies: &[&str]) {
    let app = db.app();
    let constituencies: Vec<String> = constituencies.iter().map(|c| c.to_string()).collect();
    let added = canvass::app::staff::add(
        &app,
        &Actor::Operator,
        email,
        &format!("Person at {email}"),
        role,
        &constituencies,
    )
    .await
    .unwrap();
    let secret = link_secret(&added.link);
    canvass::app::staff::set_password(&app, secret, PASSWORD, PASSWORD, None)
        .await
        .unwrap();
}

/// The secret of a password link.
pub fn link_secret(link: &str) -> &str {
    link.rsplit('/').next().unwrap()
}

/// A response, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    async fn of(response: reqwest::Response) -> Self {
        Self {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    pub fn location(&self) -> Option<&str> {
        self.headers
            .get("location")
            .and_then(|value| value.to_str().ok())
    }

    /// The form token the page carries (every signed-in page has the sign-out form).
    pub fn form_token(&self) -> String {
        let marker = "name=\"form_token\" value=\"";
        let start = self.body.find(marker).expect("the page has a form token") + marker.len();
        let end = self.body[start..].find('"').unwrap();
        self.body[start..start + end].to_owned()
    }

    /// The text of the page's `<main>`, tags removed.
    pub fn main_text(&self) -> String {
        let start = self.body.find("<main").unwrap_or(0);
        let end = self.body.find("</main>").unwrap_or(self.body.len());
        let mut text = String::new();
        let mut in_tag = false;
        for c in self.body[start..end].chars() {
            match c {
                '<' => in_tag = true,
                '>' => {
                    in_tag = false;
                    text.push(' ');
                }
                c if !in_tag => text.push(c),
                _ => {}
            }
        }
        text.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace("&#x27;", "'")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&#x3D;", "=")
            .replace("&amp;", "&")
    }
}

/// A browser signed in to the console, or not yet.
pub struct Browser<'a> {
    pub app: &'a TestApp,
    /// `name=value` of the session cookie.
    pub cookie: Option<String>,
    /// The IP the requests come from (through the trusted proxy at 127.0.0.1).
    pub ip: String,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookie: None,
            ip: "203.0.113.7".into(),
        }
    }

    /// Signs in; panics unless the console lets them in.
    pub async fn signed_in(app: &'a TestApp, email: &str) -> Self {
        let mut browser = Self::new(app);
        let answer = browser.sign_in(email, PASSWORD).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
        browser
    }

    /// Posts the sign-in form, keeping the cookie it sets.
    pub async fn sign_in(&mut self, email: &str, password: &str) -> Answer {
        let answer = self
            .post_form("/admin/login", &[("email", email), ("password", password)])
            .await;
        if let Some(cookie) = answer.headers.get("set-cookie") {
            let cookie = cookie.to_str().unwrap();
            self.cookie = Some(cookie.split(';').next().unwrap().to_owned());
        }
        answer
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self
            .app
            .client
            .request(method, format!("{}{path}", self.app.base))
            .header("x-forwarded-for", &self.ip);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        request
    }

    pub async fn get(&self, path: &str) -> Answer {
        Answer::of(
            self.request(reqwest::Method::GET, path)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Posts `fields` as a same-origin form would, as they are (no token added).
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let origin = self.app.base.clone();
        Answer::of(
            self.request(reqwest::Method::POST, path)
                .header("origin", origin)
                .header("sec-fetch-site", "same-origin")
                .form(fields)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Posts `fields` from the page at `from`, with the form token that page carries.
    pub async fn submit(&self, from: &str, path: &str, fields: &[(&str, &str)]) -> Answer {
        let token = self.get(from).await.form_token();
        let mut fields = fields.to_vec();
        fields.push(("form_token", &token));
        self.post_form(path, &fields).await
    }

    /// Presses a button as a browser does: posts its form from the page at `from`, which must
    /// answer 303, and follows to the page it leads to, carrying the cookie that tells that page
    /// what the button did. That page.
    pub async fn press(&self, from: &str, path: &str, fields: &[(&str, &str)]) -> Answer {
        let posted = self.submit(from, path, fields).await;
        assert_eq!(
            posted.status,
            StatusCode::SEE_OTHER,
            "{path} answers with a redirect: {}",
            posted.main_text()
        );
        self.follow(posted).await
    }

    /// Posts as [`Browser::submit`] does and, when the answer is a redirect, follows it as a
    /// browser does (with the message it carries): the page the person ends on.
    pub async fn submit_following(
        &self,
        from: &str,
        path: &str,
        fields: &[(&str, &str)],
    ) -> Answer {
        let posted = self.submit(from, path, fields).await;
        match posted.status {
            StatusCode::SEE_OTHER => self.follow(posted).await,
            _ => posted,
        }
    }

    async fn follow(&self, posted: Answer) -> Answer {
        let flash = posted
            .headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find(|value| {
                value.starts_with("canvass_flash=") || value.starts_with("__Host-canvass_flash=")
            })
            .map(|value| value.split(';').next().unwrap().to_owned());
        let to = posted.location().expect("a redirect says where").to_owned();
        let cookies: Vec<String> = self.cookie.iter().cloned().chain(flash.clone()).collect();
        let request = self
            .app
            .client
            .get(format!("{}{to}", self.app.base))
            .header("x-forwarded-for", &self.ip)
            .header("cookie", cookies.join("; "));
        let page = Answer::of(request.send().await.unwrap()).await;
        if flash.is_some() && page.status != StatusCode::SEE_OTHER {
            assert!(
                page.headers
                    .get_all("set-cookie")
                    .iter()
                    .any(|value| value.to_str().unwrap().contains("canvass_flash=;")),
                "the page that shows the message forgets it"
            );
        }
        page
    }
}
