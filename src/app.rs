//! Builds the whole application from its settings, exactly as `main` and the tests do:
//! store, writer, scheduler and HTTP server, and stops it in order.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context as _;
use tokio::task::JoinHandle;

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::instance::{Elector, Registration, ServeLock};
use crate::job::RegistryBuilder;
use crate::runlog::RunLogPolicy;
use crate::scheduler::{self, SchedulerConfig, SchedulerHandle, SchedulerParts};
use crate::secrets::RedactionList;
use crate::store::writer::Writer;
use crate::store::{self, InstanceKind, SharedStore};
use crate::{jobs, web};

mod one_off;

pub use one_off::{JobOverview, job_overviews, run_job_once};

/// The parts of a running application that the outside may need.
pub struct Application {
    store: SharedStore,
    scheduler: SchedulerHandle,
    scheduler_task: JoinHandle<()>,
    writer_task: JoinHandle<()>,
    /// Taken by [`Application::run_until_stopped`] when it starts serving.
    listener: Option<tokio::net::TcpListener>,
    router: Option<axum::Router>,
    address: SocketAddr,
    /// `[metrics] bind`: its listener and open `/metrics` router, and its address.
    metrics_server: Option<(tokio::net::TcpListener, axum::Router)>,
    metrics_address: Option<SocketAddr>,
    /// Deletes expired sessions in the background; cancelled at shutdown.
    session_cleanup: (tokio_util::sync::CancellationToken, JoinHandle<()>),
    jobs_source: String,
    /// This process among the instances sharing the database.
    registration: Registration,
    /// Asks for the scheduler lease; only the leader fires scheduled runs.
    elector: Elector,
    /// Reloads the jobs other instances change (PostgreSQL); cancelled at shutdown.
    job_changes: (tokio_util::sync::CancellationToken, Option<JoinHandle<()>>),
    /// On SQLite, proof that no other `serve` uses the file; released when dropped.
    _serve_lock: Option<ServeLock>,
    /// Watches runs for alerts; cancelled once the scheduler has stopped.
    alert_watch: (tokio_util::sync::CancellationToken, Option<JoinHandle<()>>),
}

/// How to build an [`Application`] besides its settings.
pub struct Options {
    /// Adds the application's own handlers to the built-in ones.
    pub handlers: Box<dyn FnOnce(RegistryBuilder) -> RegistryBuilder + Send>,
    /// The clock; tests pass a manual one.
    pub clock: SharedClock,
    /// Static files. Its cookie and header settings are replaced by the settings'
    /// `[web]` table.
    pub web: web::WebConfig,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            handlers: Box::new(|builder| builder),
            clock: std::sync::Arc::new(crate::clock::SystemClock),
            web: web::WebConfig::default(),
        }
    }
}

/// Fills in the demo jobs when there is no settings file, and says where the jobs come
/// from.
pub fn use_demo_jobs_without_file(settings: &mut Settings) -> String {
    match &settings.source {
        Some(path) => path.display().to_string(),
        None => {
            settings.jobs = jobs::demo_jobs();
            settings.alerts = jobs::demo_alerts();
            "the built-in demo jobs (no batchboard.toml found)".into()
        }
    }
}

/// The scheduler's settings, from the settings file's `[scheduler]` and `[runlog]`.
pub fn scheduler_config(settings: &Settings) -> SchedulerConfig {
    SchedulerConfig {
        max_concurrent_runs: settings.scheduler.max_concurrent_runs,
        shutdown_grace: settings.scheduler.shutdown_grace,
        timeout_grace: settings.scheduler.timeout_grace,
        instance_id: scheduler::new_instance_id(),
        // Several servers share a PostgreSQL database, and they share its runs; a
        // SQLite file has one server, which runs its own.
        shared_execution: !settings.database_url.starts_with("sqlite:"),
        runlog: std::sync::Arc::new(RunLogPolicy::new(
            u32::try_from(settings.runlog.max_lines_per_run).unwrap_or(u32::MAX),
            &settings.runlog.redact,
        )),
    }
}

impl Application {
    /// Validates the jobs, opens and migrates the database, syncs the jobs into it,
    /// starts the writer and the scheduler, and binds the HTTP listener.
    ///
    /// # Errors
    /// When a job is invalid (before the database is touched), the database cannot be
    /// opened or migrated, or the address cannot be bound.
    pub async fn build(mut settings: Settings, options: Options) -> anyhow::Result<Self> {
        // Before the scheduler starts, so the first runs are counted too.
        web::metrics::install_recorder();
        let store = store::open(&settings.database_url).context("opening the database")?;
        let registry = (options.handlers)(jobs::builtins(store.clone())).build();
        let jobs_source = use_demo_jobs_without_file(&mut settings);
        settings.job_specs(&registry)?;
        let serve_lock = ServeLock::acquire(&settings.database_url)?;
        store.migrate().await.context("migrating the database")?;
        store
            .sync_jobs(&settings.jobs, options.clock.now())
            .await
            .context("saving the jobs")?;
        if let Some(first_admin) = crate::users::ensure_first_admin(
            &store,
            settings.admin_password.as_deref(),
            options.clock.now(),
        )
        .await?
        {
            crate::users::announce_first_admin(&first_admin);
        }
        let config = scheduler_config(&settings);
        let registration = Registration::register(
            store.clone(),
            options.clock.clone(),
            &config.instance_id,
            InstanceKind::Serve,
        )
        .await
        .context("registering this instance")?;
        if serve_lock.is_some() {
            // The lock proves that every other server on this file is gone, so their runs
            // are recovered now rather than when their leases run out.
            store
                .stop_other_instances(InstanceKind::Serve, registration.id(), options.clock.now())
                .await
                .context("recording that earlier servers stopped")?;
        }
        let elector = Elector::start(store.clone(), options.clock.clone(), registration.id()).await;
        let (writer, writer_task) = Writer::start(store.clone());
        let parts = SchedulerParts {
            store: store.clone(),
            writer,
            registry: registry.clone(),
            clock: options.clock.clone(),
            config,
            leading: Some(elector.leading()),
        };
        crate::telemetry::redact_on_stdout(std::sync::Arc::clone(&parts.config.runlog));
        let (scheduler, scheduler_task) = scheduler::start(parts)
            .await
            .context("starting the scheduler")?;
        let alerts = crate::alerts::Alerts::new(
            settings.alerts.clone(),
            settings.web.public_url.clone(),
            store.clone(),
            options.clock.clone(),
        );
        let stop_alerts = tokio_util::sync::CancellationToken::new();
        let alert_watch = (
            stop_alerts.clone(),
            alerts.watch(scheduler.subscribe(), stop_alerts),
        );
        let stop_following = tokio_util::sync::CancellationToken::new();
        let following = crate::instance::job_changes::follow(
            store.clone(),
            scheduler.clone(),
            stop_following.clone(),
            settings.scheduler.listen,
        )
        .await
        .context("following the job changes of other instances")?;
        let mut metrics_server = None;
        let mut metrics_address = None;
        let signer = web::signing::Signer::load(&store, options.clock.now())
            .await
            .context("loading the cookie signing key")?;
        let sessions = web::sessions::Sessions::open(store.clone())
            .await
            .context("preparing the session store")?;
        let stop_cleanup = tokio_util::sync::CancellationToken::new();
        let cleanup = sessions
            .clone()
            .spawn_cleanup(web::sessions::CLEANUP_PERIOD, stop_cleanup.clone());
        let session_cleanup = (stop_cleanup, cleanup);
        let mut web_config = web::WebConfig {
            secure_cookies: settings.web.secure_cookies,
            hsts: settings.web.hsts,
            ..options.web
        };
        // The settings file's proxies, next to any the embedding code set.
        web_config
            .trusted_proxies
            .extend(settings.web.trusted_proxies.iter().copied());
        let state = web::AppState {
            signer,
            sessions,
            store: store.clone(),
            scheduler: scheduler.clone(),
            alerts,
            banner: std::sync::Arc::default(),
            registry,
            config: std::sync::Arc::new(web_config),
            throttle: std::sync::Arc::new(web::throttle::LoginThrottle::new(options.clock.clone())),
            password_checks: std::sync::Arc::new(
                crate::password_checks::PasswordCheckLimit::for_this_machine(),
            ),
            clock: options.clock,
            dashboard: std::sync::Arc::default(),
            metrics: std::sync::Arc::new(settings.metrics.clone()),
            redaction: std::sync::Arc::new(RedactionList::new(&settings.runlog.redact)),
        };
        let router = web::router(state.clone())
            .await
            .context("preparing the web server")?;
        let listener = tokio::net::TcpListener::bind(settings.bind)
            .await
            .with_context(|| format!("binding {}", settings.bind))?;
        let address = listener.local_addr().context("reading the bound address")?;
        if let Some(bind) = settings.metrics.bind {
            let metrics_listener = tokio::net::TcpListener::bind(bind)
                .await
                .with_context(|| format!("binding {bind} for the metrics"))?;
            let address = metrics_listener
                .local_addr()
                .context("reading the metrics address")?;
            tracing::info!(%address, "serving /metrics without credentials");
            metrics_address = Some(address);
            metrics_server = Some((metrics_listener, web::metrics::open_router(state)));
        }
        Ok(Self {
            store,
            scheduler,
            scheduler_task,
            writer_task,
            listener: Some(listener),
            router: Some(router),
            address,
            metrics_server,
            metrics_address,
            session_cleanup,
            jobs_source,
            registration,
            elector,
            job_changes: (stop_following, following),
            _serve_lock: serve_lock,
            alert_watch,
        })
    }

    /// The address the HTTP server listens on (useful with port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The address where `/metrics` is served openly (`[metrics] bind`), if any.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_address
    }

    /// The scheduler's handle.
    pub fn scheduler(&self) -> &SchedulerHandle {
        &self.scheduler
    }

    /// The store.
    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// Where the jobs came from, for the start-up message.
    pub fn jobs_source(&self) -> &str {
        &self.jobs_source
    }

    /// Serves HTTP and runs the scheduler until `shutdown` completes, then stops both in
    /// order: the server stops taking requests, the scheduler stops firing and lets
    /// running runs finish within the grace period, and the writer commits what is left.
    ///
    /// # Errors
    /// When the HTTP server fails.
    pub async fn run_until_stopped(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
        let server = self
            .listener
            .take()
            .zip(self.router.take())
            .map(|(listener, router)| {
                // The peer address feeds the sign-in throttle (see web::client_address).
                let service = router.into_make_service_with_connect_info::<SocketAddr>();
                tokio::spawn(async move {
                    axum::serve(listener, service)
                        .with_graceful_shutdown(async move {
                            let _ = http_stopped.await;
                        })
                        .await
                })
            });
        let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
        let metrics_server = self.metrics_server.take().map(|(listener, router)| {
            tokio::spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = metrics_stopped.await;
                    })
                    .await
            })
        });
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_http.send(());
        let _ = stop_metrics.send(());
        // Its failure is only logged: the main server and the scheduler still stop in order.
        if let Some(metrics_server) = metrics_server {
            match metrics_server.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(%error, "the metrics server failed"),
                Err(error) => tracing::error!(%error, "the metrics server task failed"),
            }
        }
        if let Some(server) = server {
            server
                .await
                .context("the HTTP server task failed")?
                .context("the HTTP server failed")?;
        }
        self.stop().await;
        Ok(())
    }

    /// Stops the session cleanup, the scheduler (with its grace period) and the writer.
    pub async fn stop(self) {
        let (stop_following, following) = self.job_changes;
        stop_following.cancel();
        if let Some(following) = following
            && let Err(error) = following.await
        {
            tracing::error!(%error, "the job change follower failed");
        }
        let (stop_cleanup, cleanup) = self.session_cleanup;
        stop_cleanup.cancel();
        if let Err(error) = cleanup.await {
            tracing::error!(%error, "the session cleanup task failed");
        }
        self.scheduler.shutdown();
        if let Err(error) = self.scheduler_task.await {
            tracing::error!(%error, "the scheduler task failed");
        }
        let (stop_alerts, alert_watch) = self.alert_watch;
        stop_alerts.cancel();
        if let Some(alert_watch) = alert_watch
            && let Err(error) = alert_watch.await
        {
            tracing::error!(%error, "the alert watcher failed");
        }
        // Resigned once this scheduler stopped firing, so the next leader starts at once.
        self.elector.stop().await;
        drop(self.scheduler);
        drop(self.store);
        if let Err(error) = self.writer_task.await {
            tracing::error!(%error, "the writer task failed");
        }
        self.registration.deregister().await;
    }
}

/// Completes on Ctrl-C or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled, so a signal that arrives while the server is still
/// starting (a supervisor stopping it at once) stops it gracefully instead of killing it:
/// call it before building the application.
///
/// # Errors
/// When the handlers cannot be installed.
pub fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            if let Err(error) = tokio::signal::ctrl_c().await {
                tracing::error!(%error, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        })
    }
}
