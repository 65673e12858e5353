//! Event type patterns such as `image.*`, `video.progress` or `*`, used by
//! `GET /v1/events?types=` and by webhook endpoint subscriptions.

/// A set of patterns; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeFilter {
    patterns: Vec<String>,
}

/// Most patterns one filter may hold.
pub const MAX_PATTERNS: usize = 64;

/// A pattern that is not a known event type or a prefix wildcard, or too many.
#[derive(Debug, thiserror::Error)]
pub enum BadPattern {
    #[error("`{0}` is not an event type pattern like `image.*`, `video.progress` or `*`")]
    Malformed(String),
    #[error("at most {MAX_PATTERNS} event type patterns are allowed")]
    TooMany,
}

impl TypeFilter {
    /// Parses a comma-separated list.
    pub fn parse(text: &str) -> Result<TypeFilter, BadPattern> {
        Self::from_patterns(text.split(',').map(str::trim).filter(|p| !p.is_empty()))
    }

    /// Checks each pattern: `*`, `prefix.*`, or a dotted lowercase name.
    pub fn from_patterns<'a>(
        patterns: impl IntoIterator<Item = &'a str>,
    ) -> Result<TypeFilter, BadPattern> {
        let mut out = Vec::new();
        for pattern in patterns {
            if out.len() == MAX_PATTERNS {
                return Err(BadPattern::TooMany);
            }
            let name = pattern.strip_suffix(".*").unwrap_or(pattern);
            let valid = pattern == "*"
                || (!name.is_empty()
                    && name.len() <= 100
                    && name.split('.').all(|part| {
                        !part.is_empty()
                            && part
                                .bytes()
                                .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
                    }));
            if !valid {
                return Err(BadPattern::Malformed(pattern.to_string()));
            }
            out.push(pattern.to_string());
        }
        Ok(TypeFilter { patterns: out })
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `event_type` is selected.
    pub fn matches(&self, event_type: &str) -> bool {
        self.patterns.is_empty() || self.patterns.iter().any(|p| pattern_matches(p, event_type))
    }
}

/// Whether one checked pattern (`*`, `image.*`, `video.progress`) selects `event_type`.
pub fn pattern_matches(pattern: &str, event_type: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix(".*") {
        Some(prefix) => event_type
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.')),
        None => pattern == event_type,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_whole_segments() {
        let filter = TypeFilter::parse("image.*, video.progress").unwrap();
        assert!(filter.matches("image.completed"));
        assert!(filter.matches("video.progress"));
        assert!(!filter.matches("video.completed"));
        assert!(!filter.matches("imagex.completed"));
        assert!(TypeFilter::parse("").unwrap().matches("anything"));
        assert!(TypeFilter::parse("*").unwrap().matches("key.disabled"));
        assert!(
            TypeFilter::parse("audio.*")
                .unwrap()
                .matches("audio.synthesis.completed")
        );
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in ["Image.*", "image..x", "*.completed", "a b", "image.*.x"] {
            assert!(TypeFilter::parse(bad).is_err(), "{bad}");
        }
        let many: Vec<String> = (0..=MAX_PATTERNS).map(|i| format!("a{i}")).collect();
        assert!(matches!(
            TypeFilter::parse(&many.join(",")),
            Err(BadPattern::TooMany)
        ));
        assert!(TypeFilter::parse(&many[..MAX_PATTERNS].join(",")).is_ok());
    }
}
