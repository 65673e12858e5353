//! The event types Conduit emits, by who receives them. Webhook endpoints are
//! checked against this list, so a filter with a typo (`image.complete`) is
//! refused instead of silently never firing.

use std::sync::LazyLock;

use super::filter::{TypeFilter, pattern_matches};
use crate::tasks::model::TaskType;

/// What happens to a task, after its type's prefix (`image.started`).
pub const TASK_SUFFIXES: &[&str] = &["started", "progress", "completed", "failed", "cancelled"];

/// Events of a key that belong to no task.
pub const KEY_TYPES: &[&str] = &[
    "key.disabled",
    "key.budget.exceeded",
    "key.rate_limited",
    "webhook.endpoint_disabled",
];

/// Events of no key (operators' admin endpoints receive these).
pub const SYSTEM_TYPES: &[&str] = &[
    "provider.health_changed",
    "system.maintenance",
    "webhook.endpoint_disabled",
];

/// Every type a key's endpoint can receive: its tasks' and its own.
pub fn key_types() -> &'static [String] {
    static TYPES: LazyLock<Vec<String>> = LazyLock::new(|| {
        let tasks = [
            TaskType::Image,
            TaskType::Video,
            TaskType::Speech,
            TaskType::Transcription,
        ];
        let mut out: Vec<String> = tasks
            .iter()
            .flat_map(|t| {
                TASK_SUFFIXES
                    .iter()
                    .map(move |s| format!("{}.{s}", t.event_prefix()))
            })
            .collect();
        out.extend(KEY_TYPES.iter().map(|t| t.to_string()));
        out
    });
    &TYPES
}

/// Every type a key's event feed can hold: its own and system events.
pub fn feed_types() -> &'static [String] {
    static TYPES: LazyLock<Vec<String>> = LazyLock::new(|| {
        let mut out = key_types().to_vec();
        out.extend(system_types().iter().cloned());
        out
    });
    &TYPES
}

/// [`SYSTEM_TYPES`] as owned strings, like the other lists.
pub fn system_types() -> &'static [String] {
    static TYPES: LazyLock<Vec<String>> =
        LazyLock::new(|| SYSTEM_TYPES.iter().map(|t| t.to_string()).collect());
    &TYPES
}

/// The first pattern of `filter` that matches none of `types`, if any.
pub fn unmatched<'a>(filter: &'a TypeFilter, types: &[String]) -> Option<&'a str> {
    filter
        .patterns()
        .iter()
        .find(|p| !types.iter().any(|t| pattern_matches(p, t)))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_and_other_scopes_match_nothing() {
        let key = key_types();
        let check = |patterns: &[&str], types: &[String]| {
            let filter = TypeFilter::from_patterns(patterns.iter().copied()).unwrap();
            unmatched(&filter, types).map(str::to_string)
        };
        assert_eq!(
            check(&["image.complete"], key).as_deref(),
            Some("image.complete")
        );
        assert_eq!(
            check(&["image.*"], system_types()).as_deref(),
            Some("image.*")
        );
        assert_eq!(
            check(&["system.maintenence"], system_types()).as_deref(),
            Some("system.maintenence")
        );
        for ok in [
            &["*"][..],
            &["image.*", "video.progress"],
            &["audio.*"],
            &["audio.transcription.completed"],
            &["key.*", "webhook.endpoint_disabled"],
        ] {
            assert_eq!(check(ok, key), None, "{ok:?}");
        }
        assert_eq!(check(&["system.*", "provider.*"], system_types()), None);
    }
}
