//! The processes that share the database, as the store keeps them.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What a process does with the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceKind {
    /// `batchboard serve`: the scheduler and the console.
    Serve,
    /// A one-off `batchboard run JOB`.
    Run,
}

impl InstanceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Serve => "serve",
            Self::Run => "run",
        }
    }
}

impl std::str::FromStr for InstanceKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "serve" => Ok(Self::Serve),
            "run" => Ok(Self::Run),
            other => Err(format!("unknown instance kind {other:?}")),
        }
    }
}

/// A process registering itself.
#[derive(Debug, Clone, PartialEq)]
pub struct NewInstance {
    pub id: String,
    pub kind: InstanceKind,
    pub host: String,
    pub pid: u32,
}

/// A registered process, with how many runs it has going.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceRecord {
    pub id: String,
    pub kind: InstanceKind,
    pub host: String,
    pub pid: i64,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
    /// Its runs still `queued` or `running`.
    pub running_runs: u64,
}

impl InstanceRecord {
    /// Whether it still counts as alive at `now` (the database's time): not stopped,
    /// and heard from within `lease`.
    pub fn is_alive(&self, now: DateTime<Utc>, lease: chrono::Duration) -> bool {
        self.stopped_at.is_none() && now - self.heartbeat_at < lease
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(heartbeat_at: DateTime<Utc>, stopped_at: Option<DateTime<Utc>>) -> InstanceRecord {
        InstanceRecord {
            id: "a".into(),
            kind: InstanceKind::Serve,
            host: "h".into(),
            pid: 1,
            started_at: heartbeat_at,
            heartbeat_at,
            stopped_at,
            running_runs: 0,
        }
    }

    #[test]
    fn an_instance_lives_until_its_lease_runs_out_or_it_stops() {
        let beat = DateTime::from_timestamp(1_000, 0).expect("a time");
        let lease = chrono::Duration::seconds(15);
        let second = chrono::Duration::seconds(1);
        assert!(instance(beat, None).is_alive(beat + lease - second, lease));
        assert!(!instance(beat, None).is_alive(beat + lease, lease));
        assert!(!instance(beat, Some(beat)).is_alive(beat, lease));
    }
}

/// A term of a leadership lease: who holds it, since when, and until when the database
/// counts it as held unless renewed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaderTerm {
    pub holder: String,
    /// Identifies the term with `holder`: a new election gives a new one.
    pub elected_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}
