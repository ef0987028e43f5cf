//! Ordering release versions the way people read them: runs of digits compare as numbers
//! (`0.6.10` after `0.6.9`, `41-1.10` after `41-1.9`, dates `20250102` after `20241231`), the
//! rest as text. Pure; never panics, whatever the strings (digit runs of any length compare
//! without converting to an integer).

use std::cmp::Ordering;

/// The order of two versions: the newer is greater.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (mut left, mut right) = (runs(a), runs(b));
    loop {
        match (left.next(), right.next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match compare_runs(x, y) {
                Ordering::Equal => continue,
                other => return other,
            },
        }
    }
}

/// The string cut where digits meet non-digits.
fn runs(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let first = rest.chars().next()?;
        let digits = first.is_ascii_digit();
        let end = rest
            .find(|ch: char| ch.is_ascii_digit() != digits)
            .unwrap_or(rest.len());
        let (run, tail) = rest.split_at(end);
        rest = tail;
        Some(run)
    })
}

fn compare_runs(x: &str, y: &str) -> Ordering {
    let numeric = |run: &str| run.bytes().all(|byte| byte.is_ascii_digit());
    if numeric(x) && numeric(y) {
        let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
        x.len().cmp(&y.len()).then_with(|| x.cmp(y))
    } else {
        x.cmp(y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_as_people_read_them() {
        let rows = [
            ("0.6.9", "0.6.10", Ordering::Less),
            ("0.6.2", "0.6.2", Ordering::Equal),
            ("41-1.4", "41-1.10", Ordering::Less),
            ("20241231", "20250102", Ordering::Less),
            ("1.0", "1.0.1", Ordering::Less),
            ("1.0", "1.00", Ordering::Less),
            ("release-20240101", "release-20240102", Ordering::Less),
            ("12.2", "12.10", Ordering::Less),
            ("b", "a", Ordering::Greater),
            (
                "99999999999999999999999999",
                "100000000000000000000000000",
                Ordering::Less,
            ),
        ];
        for (a, b, expected) in rows {
            assert_eq!(compare(a, b), expected, "{a} vs {b}");
            assert_eq!(compare(b, a), expected.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn sorting_puts_the_newest_last() {
        let mut versions = vec!["0.6.10", "0.5.3", "0.6.2", "0.6.9"];
        versions.sort_by(|a, b| compare(a, b));
        assert_eq!(versions, ["0.5.3", "0.6.2", "0.6.9", "0.6.10"]);
    }
}
