//! The levels of a run's log lines, as the console's and the API's filters name them.

/// The log levels, most severe first.
pub const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// The rank of `level` in [`LEVELS`]: lower is more severe. Unknown levels rank as
/// `info`, so a line is never hidden for an odd level name.
pub fn level_rank(level: &str) -> usize {
    let level = level.to_ascii_lowercase();
    LEVELS.iter().position(|l| *l == level).unwrap_or(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_rank_by_severity_in_any_case_and_odd_ones_as_info() {
        assert!(level_rank("ERROR") < level_rank("warn"));
        assert!(level_rank("debug") < level_rank("trace"));
        assert_eq!(level_rank("notice"), level_rank("info"));
    }
}
