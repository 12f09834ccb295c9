//! Numbers and lists as people in the UK read them: `14,180`, not `14180`; `Stevenage,
//! Hitchin and Harpenden and Hertford and Stortford`.

/// `n` with a comma between each group of three digits.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// `n` of `one` (`1 person`, `14,180 people`), with the plural given.
pub fn counted(n: u64, one: &str, many: &str) -> String {
    match n {
        1 => format!("1 {one}"),
        n => format!("{} {many}", thousands(n)),
    }
}

/// Items as a sentence lists them: `a`, `a and b`, `a, b and c`.
pub fn listed<S: AsRef<str>>(items: &[S]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_owned(),
        [rest @ .., last] => {
            let rest: Vec<&str> = rest.iter().map(AsRef::as_ref).collect();
            format!("{} and {}", rest.join(", "), last.as_ref())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_of_three_from_the_right() {
        let cases = [
            (0, "0"),
            (7, "7"),
            (999, "999"),
            (1000, "1,000"),
            (14180, "14,180"),
            (999_999, "999,999"),
            (1_000_000, "1,000,000"),
            (u64::MAX, "18,446,744,073,709,551,615"),
        ];
        for (n, read) in cases {
            assert_eq!(thousands(n), read);
        }
        assert_eq!(counted(1, "person", "people"), "1 person");
        assert_eq!(counted(0, "person", "people"), "0 people");
        assert_eq!(counted(14180, "person", "people"), "14,180 people");
    }

    #[test]
    fn a_list_reads_as_a_sentence() {
        assert_eq!(listed::<&str>(&[]), "");
        assert_eq!(listed(&["Stevenage"]), "Stevenage");
        assert_eq!(listed(&["Stevenage", "Hitchin"]), "Stevenage and Hitchin");
        assert_eq!(listed(&["A", "B", "C"]), "A, B and C");
    }
}
