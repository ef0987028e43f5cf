//! The five-field cron notation of `spec.schedule.cron` (minute, hour, day of month, month, day
//! of week; in UTC): numbers, `*`, lists `1,15`, ranges `1-5` and steps `*/15` or `10-50/20`.
//! As in cron, when both day fields are restricted a day matching either counts. Pure: the
//! time is passed in; never panics.

use jiff::civil::DateTime;
use jiff::{Timestamp, ToSpan, tz::TimeZone};

/// A parsed schedule: which minutes, hours, days and months fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days: Vec<bool>,
    months: Vec<bool>,
    weekdays: Vec<bool>,
    days_restricted: bool,
    weekdays_restricted: bool,
}

/// Why a cron expression was refused, in words that say what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schedule.cron {expression:?}: {problem}")]
pub struct CronError {
    expression: String,
    problem: String,
}

const FIELDS: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
];

impl Cron {
    pub fn parse(expression: &str) -> Result<Self, CronError> {
        let error = |problem: String| CronError {
            expression: expression.to_string(),
            problem,
        };
        let fields: Vec<&str> = expression.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(error(format!(
                "needs 5 fields (minute hour day-of-month month day-of-week, for example 0 3 * * *), not {}",
                fields.len()
            )));
        }
        let mut sets = Vec::with_capacity(5);
        for (text, (name, low, high)) in fields.iter().zip(FIELDS) {
            sets.push(
                field(text, low, high).map_err(|problem| error(format!("{name}: {problem}")))?,
            );
        }
        let mut weekdays = sets.pop().unwrap_or_default();
        // 7 is Sunday too.
        if weekdays.get(7).copied().unwrap_or(false) {
            weekdays[0] = true;
        }
        let months = sets.pop().unwrap_or_default();
        let days = sets.pop().unwrap_or_default();
        let hours = sets.pop().unwrap_or_default();
        let minutes = sets.pop().unwrap_or_default();
        Ok(Self {
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_restricted: fields[2] != "*",
            weekdays_restricted: fields[4] != "*",
        })
    }

    /// The first firing strictly after `after` (to the minute), within five years.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let utc = TimeZone::UTC;
        let start = after.to_zoned(utc.clone()).datetime();
        let mut at = DateTime::new(
            start.year(),
            start.month(),
            start.day(),
            start.hour(),
            start.minute(),
            0,
            0,
        )
        .ok()?
        .checked_add(1.minute())
        .ok()?;
        let limit = at.checked_add(5.years()).ok()?;
        while at < limit {
            if !self.months[at.month() as usize] {
                at = DateTime::new(at.year(), at.month(), 1, 0, 0, 0, 0)
                    .ok()?
                    .checked_add(1.month())
                    .ok()?;
                continue;
            }
            if !self.day_matches(at) {
                at = at
                    .date()
                    .checked_add(1.day())
                    .ok()?
                    .to_datetime(jiff::civil::Time::midnight());
                continue;
            }
            if !self.hours[at.hour() as usize] {
                at = DateTime::new(at.year(), at.month(), at.day(), at.hour(), 0, 0, 0)
                    .ok()?
                    .checked_add(1.hour())
                    .ok()?;
                continue;
            }
            if !self.minutes[at.minute() as usize] {
                at = at.checked_add(1.minute()).ok()?;
                continue;
            }
            return at.to_zoned(utc).ok().map(|zoned| zoned.timestamp());
        }
        None
    }

    fn day_matches(&self, at: DateTime) -> bool {
        let day = self.days[at.day() as usize];
        let weekday = self.weekdays[at.weekday().to_sunday_zero_offset() as usize];
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => day || weekday,
            (true, false) => day,
            (false, true) => weekday,
            (false, false) => true,
        }
    }
}

/// One field as a table of which values fire (indexed by value).
fn field(text: &str, low: u32, high: u32) -> Result<Vec<bool>, String> {
    let mut set = vec![false; high as usize + 1];
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step.parse().ok().filter(|step| *step > 0).ok_or_else(|| {
                    format!("{part:?}: the step after / must be a number above 0")
                })?;
                (range, step)
            }
            None => (part, 1),
        };
        let (from, to) = if range == "*" {
            (low, high)
        } else if let Some((from, to)) = range.split_once('-') {
            (number(from, low, high)?, number(to, low, high)?)
        } else {
            let value = number(range, low, high)?;
            (value, if step > 1 { high } else { value })
        };
        if from > to {
            return Err(format!("{part:?}: the range runs backwards"));
        }
        let mut value = from;
        while value <= to {
            set[value as usize] = true;
            value = value.saturating_add(step);
        }
    }
    Ok(set)
}

fn number(text: &str, low: u32, high: u32) -> Result<u32, String> {
    text.parse::<u32>()
        .ok()
        .filter(|value| (low..=high).contains(value))
        .ok_or_else(|| format!("{text:?} is not a number from {low} to {high}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn the_next_firing_follows_each_field() {
        let rows = [
            ("0 3 * * *", "2026-12-02T14:00:00Z", "2026-12-03T03:00:00Z"),
            ("0 3 * * *", "2026-12-02T02:59:30Z", "2026-12-02T03:00:00Z"),
            (
                "*/15 * * * *",
                "2026-12-02T14:07:00Z",
                "2026-12-02T14:15:00Z",
            ),
            ("30 4 1 * *", "2026-12-02T00:00:00Z", "2027-01-01T04:30:00Z"),
            ("0 0 * * 1", "2026-12-02T10:00:00Z", "2026-12-07T00:00:00Z"),
            ("0 0 * * 7", "2026-12-02T10:00:00Z", "2026-12-06T00:00:00Z"),
            (
                "0 12 13 * 5",
                "2026-12-02T10:00:00Z",
                "2026-12-04T12:00:00Z",
            ),
            ("0 0 29 2 *", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z"),
            (
                "5,35 9-10 * * *",
                "2026-12-02T09:06:00Z",
                "2026-12-02T09:35:00Z",
            ),
            (
                "10-50/20 * * * *",
                "2026-12-02T09:31:00Z",
                "2026-12-02T09:50:00Z",
            ),
        ];
        for (expression, after, expected) in rows {
            let cron = Cron::parse(expression).expect(expression);
            assert_eq!(
                cron.next_after(at(after)),
                Some(at(expected)),
                "{expression} after {after}"
            );
        }
    }

    #[test]
    fn bad_expressions_say_which_field_is_wrong() {
        let rows = [
            ("0 3 * *", "needs 5 fields"),
            ("61 * * * *", "minute: \"61\" is not a number from 0 to 59"),
            ("0 24 * * *", "hour"),
            ("0 0 0 * *", "day of month"),
            ("0 0 * 13 *", "month"),
            ("*/0 * * * *", "step"),
            ("5-1 * * * *", "backwards"),
            ("a * * * *", "minute"),
        ];
        for (expression, fragment) in rows {
            let err = Cron::parse(expression).expect_err(expression).to_string();
            assert!(err.contains(fragment), "{expression}: {err}");
        }
    }

    #[test]
    fn a_date_that_never_comes_has_no_next_firing() {
        let cron = Cron::parse("0 0 31 2 *").expect("parses");
        assert_eq!(cron.next_after(at("2026-01-01T00:00:00Z")), None);
    }
}
