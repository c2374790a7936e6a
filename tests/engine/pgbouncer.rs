//! Two real `batchboard serve` processes behind a real PgBouncer in transaction mode, with
//! the poll-only setting the README documents (`[scheduler] listen = false`): every
//! statement goes through the pooler, so a session-level lock, a LISTEN or a prepared
//! statement that the pooler does not carry over between server connections would show
//! here as an error or a lost fire. Afterwards the run rows are compared with the
//! schedule as in the cluster test. Runs only with `BATCHBOARD_TEST_POSTGRES_URL` and
//! `BATCHBOARD_TEST_PGBOUNCER` (the path of a `pgbouncer` 1.21 or newer, which carries
//! prepared statements in transaction mode); CI builds one.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::str::FromStr as _;
use std::time::Duration;

use batchboard::store;
use sqlx::postgres::PgConnectOptions;

use crate::processes::{
    all_runs, each_fire_once, every_instance_ran, every_second_jobs, instances_alive, no_overlap,
    nothing_left_running, serve, stop,
};
use crate::support::PgDatabase;

const PGBOUNCER_VAR: &str = "BATCHBOARD_TEST_PGBOUNCER";

const JOBS: usize = 50;

/// A PgBouncer in transaction mode in front of one test database, stopped with the value.
struct PgBouncer {
    child: Child,
    /// The database through the pooler.
    url: String,
    _config: tempfile::TempDir,
}

impl PgBouncer {
    /// Starts the PgBouncer of [`PGBOUNCER_VAR`] for `database`, or returns `None` when
    /// the variable is not set, saying SKIP.
    fn start(database: &PgDatabase) -> Option<PgBouncer> {
        let Some(binary) = std::env::var(PGBOUNCER_VAR)
            .ok()
            .filter(|path| !path.is_empty())
        else {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIP: PgBouncer test skipped (set {PGBOUNCER_VAR})"
            );
            return None;
        };
        let server = PgConnectOptions::from_str(&database.url).expect("a PostgreSQL URL");
        let name = server.get_database().expect("the URL names a database");
        let user = server.get_username();
        let port = free_port();
        let config = tempfile::tempdir().expect("a temporary directory");
        let users = config.path().join("users.txt");
        std::fs::write(&users, format!("\"{user}\" \"\"\n")).expect("users written");
        let ini = config.path().join("pgbouncer.ini");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n\
                 {name} = host={host} port={server_port} dbname={name}\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = trust\n\
                 auth_file = {users}\n\
                 pool_mode = transaction\n\
                 max_prepared_statements = 200\n\
                 ignore_startup_parameters = extra_float_digits\n\
                 default_pool_size = 10\n\
                 max_client_conn = 400\n",
                host = server.get_host(),
                server_port = server.get_port(),
                users = users.display(),
            ),
        )
        .expect("settings written");
        // PgBouncer refuses to run as root; CI is root, and runs it as `postgres`.
        use std::os::unix::fs::PermissionsExt as _;
        for path in [config.path(), &users, &ini] {
            let mode = if path.is_dir() { 0o755 } else { 0o644 };
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .expect("readable by the pooler");
        }
        let mut command = if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&binary);
            command
        } else {
            Command::new(&binary)
        };
        let child = command
            .arg(&ini)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pgbouncer starts");
        let bouncer = PgBouncer {
            child,
            url: format!("postgres://{user}@127.0.0.1:{port}/{name}"),
            _config: config,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "pgbouncer never listened on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(bouncer)
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // Through `runuser` the pooler is a grandchild: SIGTERM reaches it through
        // runuser, which passes it on; a kill of runuser alone would leave it running.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_behind_pgbouncer_in_transaction_mode_start_each_fire_once() {
    let Some(database) = PgDatabase::create().await else {
        return;
    };
    let Some(bouncer) = PgBouncer::start(&database) else {
        return;
    };
    // Migrated over a direct connection, as the README says: sqlx's migrations take a
    // session-level lock, which a transaction-mode pooler cannot hold.
    let store = store::connect(&database.url)
        .await
        .expect("the database migrates");
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(
        dir.path().join("batchboard.toml"),
        every_second_jobs(JOBS, "listen = false"),
    )
    .expect("settings written");

    let servers: Vec<Child> = (0..2).map(|_| serve(dir.path(), &bouncer.url)).collect();
    instances_alive(&store, 2).await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    let stopping = chrono::Utc::now();
    for server in servers {
        stop(server).await;
    }

    let runs = all_runs(&store).await;
    assert!(
        runs.len() > JOBS * 5,
        "the jobs ran through the pooler: {} runs",
        runs.len()
    );
    nothing_left_running(&runs, stopping);
    each_fire_once(&runs, JOBS);
    every_instance_ran(&runs, 2);
    no_overlap(&runs);
    drop(bouncer);
}
