//! The `[[jobs]]` of the settings file, checked against the registered handlers.

use std::collections::BTreeMap;

use super::{ConfigError, ConfigProblem, Settings};
use crate::job::{JobName, JobSpec, Registry, chain};

impl Settings {
    /// Validates every job: its own fields ([`JobSpec::from_settings`]), that its
    /// handler is registered, that its params suit that handler, and that no two jobs
    /// share a name; then that the chains between jobs name jobs and never loop
    /// ([`chain::check`]). Every problem of every job is reported.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] listing each problem, one per line.
    pub fn job_specs(&self, registry: &Registry) -> Result<Vec<JobSpec>, ConfigError> {
        let origin = self.origin();
        let mut problems = Vec::new();
        let mut specs = Vec::with_capacity(self.jobs.len());
        // Name → position of the first job with it.
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (index, job) in self.jobs.iter().enumerate() {
            let label = match job.name.parse::<JobName>() {
                Ok(name) => format!("job {:?}", name.as_str()),
                Err(_) => format!("jobs[{index}]"),
            };
            let mut problem = |field: &str, message: String| {
                problems.push(ConfigProblem {
                    origin: origin.clone(),
                    job: Some(label.clone()),
                    field: Some(field.to_owned()),
                    message,
                });
            };
            if let Some(first) = seen.get(job.name.as_str()) {
                problem(
                    "name",
                    format!("the name {:?} is already used by jobs[{first}]", job.name),
                );
            } else {
                seen.insert(&job.name, index);
            }
            let spec = JobSpec::from_settings(job);
            if let Err(error) = &spec {
                for (field, message) in &error.fields {
                    problem(field, message.clone());
                }
            }
            let handler = job.handler.trim();
            if !handler.is_empty() {
                match registry.get(handler) {
                    None => problem("handler", unknown_handler(handler, registry)),
                    Some(found) => {
                        let empty = serde_json::Value::Object(serde_json::Map::new());
                        let params = job.params.as_ref().unwrap_or(&empty);
                        if let Err(reason) = found.check_params(params) {
                            problem(
                                "params",
                                format!("the params do not suit handler {handler:?}: {reason}"),
                            );
                        }
                    }
                }
            }
            if let Ok(spec) = spec {
                specs.push(spec);
            }
        }
        if problems.is_empty() {
            let links: Vec<chain::Links> = specs.iter().map(chain::Links::of).collect();
            problems.extend(
                chain::check(&links)
                    .into_iter()
                    .map(|problem| ConfigProblem {
                        origin: origin.clone(),
                        job: Some(format!("job {:?}", problem.job.as_str())),
                        field: Some(problem.field.to_owned()),
                        message: problem.message,
                    }),
            );
        }
        if problems.is_empty() {
            Ok(specs)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

fn unknown_handler(handler: &str, registry: &Registry) -> String {
    let known: Vec<&str> = registry.names().collect();
    if known.is_empty() {
        format!("unknown handler {handler:?}: no handlers are registered")
    } else {
        format!(
            "unknown handler {handler:?}: use one of {}",
            known.join(", ")
        )
    }
}
