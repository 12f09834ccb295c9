//! Who may do what: a member of staff's role, the constituencies they are kept to, and the
//! password they sign in to the console with.

use std::fmt;

use super::ConstituencyCode;

/// What a member of staff may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads what their scope holds; changes nothing.
    Viewer,
    /// Imports, edits and mails contacts of their scope; approves others' campaigns.
    Organiser,
    /// Everything, and manages the staff.
    Admin,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a role (admin, organiser or viewer)")]
pub struct RoleError(String);

impl Role {
    pub fn parse(input: &str) -> Result<Self, RoleError> {
        match input.trim().to_ascii_lowercase().as_str() {
            "admin" => Ok(Self::Admin),
            "organiser" | "organizer" => Ok(Self::Organiser),
            "viewer" => Ok(Self::Viewer),
            _ => Err(RoleError(input.trim().chars().take(32).collect())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Organiser => "organiser",
            Self::Viewer => "viewer",
        }
    }

    /// Whether they may change anything at all.
    pub fn writes(self) -> bool {
        self >= Self::Organiser
    }

    /// Whether they may add, change and disable members of staff.
    pub fn manages_staff(self) -> bool {
        self == Self::Admin
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The contacts a member of staff sees, counts, exports and mails: those whose postcode lies in
/// one of their constituencies, or everyone. A contact with no postcode, or one the directory
/// does not hold, lies in no constituency and is seen only by those who see everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Scope {
    #[default]
    Everyone,
    /// Sorted, each once, never empty.
    Constituencies(Vec<ConstituencyCode>),
}

impl Scope {
    /// The scope of these constituencies; none at all is everyone.
    pub fn of(mut codes: Vec<ConstituencyCode>) -> Self {
        codes.sort();
        codes.dedup();
        if codes.is_empty() {
            Self::Everyone
        } else {
            Self::Constituencies(codes)
        }
    }

    /// No one at all: what two scopes that share nothing leave.
    pub fn nobody() -> Self {
        Self::Constituencies(Vec::new())
    }

    /// Whether everyone `other` sees, this scope sees too.
    pub fn contains(&self, other: &Scope) -> bool {
        match (self, other) {
            (Self::Everyone, _) => true,
            (Self::Constituencies(_), Self::Everyone) => false,
            (Self::Constituencies(mine), Self::Constituencies(theirs)) => {
                theirs.iter().all(|code| mine.contains(code))
            }
        }
    }

    /// The constituencies, or `None` for everyone.
    pub fn constituencies(&self) -> Option<&[ConstituencyCode]> {
        match self {
            Self::Everyone => None,
            Self::Constituencies(codes) => Some(codes),
        }
    }

    /// The codes of the constituencies it keeps to: none for everyone.
    pub fn codes(&self) -> Vec<&str> {
        let codes = self.constituencies().unwrap_or_default();
        codes.iter().map(ConstituencyCode::as_str).collect()
    }

    /// Whether a contact in `constituency` (`None`: in none) is within the scope.
    pub fn covers(&self, constituency: Option<&str>) -> bool {
        match (self, constituency) {
            (Self::Everyone, _) => true,
            (Self::Constituencies(codes), Some(code)) => codes.iter().any(|c| c.as_str() == code),
            (Self::Constituencies(_), None) => false,
        }
    }

    /// The contacts both scopes see.
    pub fn intersect(&self, other: &Scope) -> Scope {
        match (self, other) {
            (Self::Everyone, scope) | (scope, Self::Everyone) => scope.clone(),
            (Self::Constituencies(mine), Self::Constituencies(theirs)) => {
                let both: Vec<_> = mine
                    .iter()
                    .filter(|c| theirs.contains(c))
                    .cloned()
                    .collect();
                // Two scopes that share nothing see no one.
                Self::Constituencies(both)
            }
        }
    }

    /// The codes for a query that binds them as one parameter: comma-separated, or `None` for
    /// everyone. Codes are nine letters and digits, so the comma cannot occur in one.
    pub fn as_list(&self) -> Option<String> {
        self.constituencies().map(|codes| {
            codes
                .iter()
                .map(ConstituencyCode::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
    }
}

/// A member of staff as a request acts: through a console session or an API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffMember {
    /// Who the audit log names: the person's address, or the name of a token of no one's.
    pub name: String,
    pub role: Role,
    pub scope: Scope,
}

/// A console session left this long without a request ends.
pub const SESSION_IDLE: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Who made a request that a session carries: only a person's own requests keep it from going
/// idle, so that a dashboard left open does not keep a session alive for its whole 12 hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionUse {
    /// The person asked for a page or sent a form.
    Person,
    /// The page asked by itself: a live stream's tick, a progress bar's refresh.
    Page,
}
/// A console session ends this long after sign-in however busy, so that a stolen cookie does
/// not last.
pub const SESSION_LONGEST: chrono::TimeDelta = chrono::TimeDelta::hours(12);

/// The shortest password taken (NIST SP 800-63B asks for 15 where it is the only factor).
pub const MIN_PASSWORD_CHARS: usize = 15;
/// The longest: argon2 takes any length, but a megabyte of password is an attack, not a password.
pub const MAX_PASSWORD_CHARS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("use at least {MIN_PASSWORD_CHARS} characters (a few words make a good one)")]
    TooShort,
    #[error("use at most {MAX_PASSWORD_CHARS} characters")]
    TooLong,
    #[error("use more than one kind of character")]
    Repetitive,
}

/// A new password as the person chose it: long enough, not one character repeated. Hidden
/// from logs and panics.
pub struct Password(String);

impl Password {
    pub fn parse(input: &str) -> Result<Self, PasswordError> {
        let chars = input.chars().count();
        if chars < MIN_PASSWORD_CHARS {
            return Err(PasswordError::TooShort);
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(PasswordError::TooLong);
        }
        let mut distinct: Vec<char> = input.chars().collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() < 4 {
            return Err(PasswordError::Repetitive);
        }
        Ok(Self(input.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> ConstituencyCode {
        ConstituencyCode::parse(s).unwrap()
    }

    #[test]
    fn roles_parse_in_any_case_and_order_by_power() {
        assert_eq!(Role::parse(" Organiser ").unwrap(), Role::Organiser);
        assert_eq!(Role::parse("organizer").unwrap(), Role::Organiser);
        assert_eq!(Role::parse("ADMIN").unwrap(), Role::Admin);
        assert!(Role::parse("owner").is_err());
        assert!(!Role::Viewer.writes());
        assert!(Role::Organiser.writes() && !Role::Organiser.manages_staff());
        assert!(Role::Admin.manages_staff());
    }

    #[test]
    fn a_scope_of_no_constituency_is_everyone() {
        assert_eq!(Scope::of(vec![]), Scope::Everyone);
        assert!(Scope::Everyone.covers(None));
        let scope = Scope::of(vec![
            code("E14001285"),
            code("e14001285"),
            code("E14000001"),
        ]);
        assert_eq!(scope.as_list().unwrap(), "E14000001,E14001285");
        assert!(scope.covers(Some("E14001285")));
        assert!(!scope.covers(Some("E14000002")));
        assert!(!scope.covers(None), "no postcode: in no constituency");
    }

    #[test]
    fn scopes_that_share_nothing_see_no_one() {
        let a = Scope::of(vec![code("E14000001")]);
        let b = Scope::of(vec![code("E14000002")]);
        let none = a.intersect(&b);
        assert!(!none.covers(Some("E14000001")) && !none.covers(Some("E14000002")));
        assert!(!none.covers(None));
        assert_eq!(a.intersect(&Scope::Everyone), a);
        assert_eq!(Scope::Everyone.intersect(&b), b);
        assert!(Scope::Everyone.contains(&a) && !a.contains(&Scope::Everyone));
        assert!(a.contains(&none) && !a.contains(&b) && a.contains(&a));
    }

    #[test]
    fn passwords_are_long_and_hidden() {
        assert_eq!(
            Password::parse("short").unwrap_err(),
            PasswordError::TooShort
        );
        assert_eq!(
            Password::parse(&"a".repeat(20)).unwrap_err(),
            PasswordError::Repetitive
        );
        assert_eq!(
            Password::parse(&"ab1-".repeat(65)).unwrap_err(),
            PasswordError::TooLong
        );
        let password = Password::parse("correct horse battery staple").unwrap();
        assert_eq!(format!("{password:?}"), "Password(***)");
    }
}
