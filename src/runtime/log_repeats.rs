//! Repeated identical warnings, summarised: the operator log shows a warning or an error the
//! first [`SHOWN`] times its exact text occurs, then counts it silently; [`flush`] logs one
//! line per silenced text with how often it came again since the last flush ("… repeated 297
//! more times"). A running bot flushes about once a minute and every command at its end, so a
//! problem that persists stays visible without printing the same line 300 times. The journal
//! keeps every occurrence; this only concerns the log. At most [`TRACKED`] distinct texts are
//! counted (texts that differ each time, e.g. with a time in them, are not repeats).

use std::collections::HashMap;
use std::sync::Mutex;

/// How many times one text is shown before it is counted instead.
pub const SHOWN: u64 = 3;

/// How many distinct texts are counted at most (beyond, new texts are always shown).
pub const TRACKED: usize = 4096;

/// (level, text) → (occurrences, occurrences already reported).
type Counts = HashMap<(tracing::Level, String), (u64, u64)>;

static SEEN: Mutex<Option<Counts>> = Mutex::new(None);

/// Whether an event at `level` with text `message` is written (warnings and errors are
/// counted; other levels always pass).
pub fn admit(level: tracing::Level, message: &str) -> bool {
    if level > tracing::Level::WARN {
        return true;
    }
    let Ok(mut seen) = SEEN.lock() else { return true };
    let seen = seen.get_or_insert_with(HashMap::new);
    let key = (level, message.to_string());
    if seen.len() >= TRACKED && !seen.contains_key(&key) {
        return true;
    }
    let (n, _) = seen.entry(key).or_insert((0, SHOWN));
    *n += 1;
    *n <= SHOWN
}

/// Logs how often each silenced text came again since the last flush.
pub fn flush() {
    let mut due: Vec<(tracing::Level, String, u64)> = Vec::new();
    if let Ok(mut seen) = SEEN.lock() {
        for ((level, text), (n, reported)) in seen.get_or_insert_with(HashMap::new).iter_mut() {
            if *n > *reported {
                due.push((*level, text.clone(), *n - *reported));
                *reported = *n;
            }
        }
    }
    for (level, text, more) in due {
        if level == tracing::Level::ERROR {
            tracing::error!(repeated = more, "repeated {more} more times: {text}");
        } else {
            tracing::warn!(repeated = more, "repeated {more} more times: {text}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_is_shown_three_times_then_counted() {
        let text = "log_repeats unit test: feed failing";
        let shown = (0..300).filter(|_| admit(tracing::Level::WARN, text)).count();
        assert_eq!(shown, 3);
        assert!((0..10).all(|_| admit(tracing::Level::INFO, text)));
    }
}
