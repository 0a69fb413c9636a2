//! A started role as one handle, whatever the role.
//!
//! A role's work runs either on a thread of its own with a current-thread runtime
//! ([`Role::on_own_thread`]: the processor and the sink, whose decoding, DataFusion and
//! Parquet work must not stall the admin endpoints or the caller's runtime) or as a task of the
//! caller's runtime ([`Role::on_runtime`]: ingest and query, which serve many connections at
//! once). Either way the handle holds the stop token the work watches, the [`Admin`] server
//! (stopped only after the work has ended, so probes and metrics answer through the drain),
//! and what the role finishes when told to stop, for the binary's log.

use std::fmt::Display;
use std::future::Future;
use std::io;
use std::net::SocketAddr;

use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A role's admin server (see [`crate::admin`]).
#[derive(Debug)]
pub struct Admin {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
    stop: CancellationToken,
}

impl Admin {
    /// Binds `listen` and serves `router` until the role holding it has stopped.
    pub async fn serve(listen: SocketAddr, router: Router) -> io::Result<Admin> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let task = crate::admin::spawn(listener, router, stop.clone());
        Ok(Admin { addr, task, stop })
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// A running role.
#[derive(Debug)]
pub struct Role<E> {
    name: &'static str,
    drains: &'static str,
    stop: CancellationToken,
    done: oneshot::Receiver<Result<(), E>>,
    admin: Option<Admin>,
}

impl<E> Role<E>
where
    E: Display + From<io::Error> + Send + 'static,
{
    /// Runs `work` on a thread named `name` with a current-thread runtime. `stop` is the token
    /// `work` watches; `drains` says what it finishes once stop is asked (for the log).
    pub fn on_own_thread<F, Fut>(
        name: &'static str,
        drains: &'static str,
        stop: CancellationToken,
        admin: Option<Admin>,
        work: F,
    ) -> io::Result<Self>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>>,
    {
        let (tx, done) = oneshot::channel();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(E::from)
                    .and_then(|runtime| runtime.block_on(work()));
                report(name, &result);
                let _ = tx.send(result);
            })?;
        Ok(Role {
            name,
            drains,
            stop,
            done,
            admin,
        })
    }

    /// Runs `work` as a task of the caller's runtime; otherwise as [`Role::on_own_thread`].
    pub fn on_runtime<Fut>(
        name: &'static str,
        drains: &'static str,
        stop: CancellationToken,
        admin: Option<Admin>,
        work: Fut,
    ) -> Self
    where
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        let (tx, done) = oneshot::channel();
        tokio::spawn(async move {
            let result = work.await;
            report(name, &result);
            let _ = tx.send(result);
        });
        Role {
            name,
            drains,
            stop,
            done,
            admin,
        }
    }

    /// The role's name, as its thread and log lines say it.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// What the role finishes after [`shutdown`](Self::shutdown) before it ends.
    pub fn drains(&self) -> &'static str {
        self.drains
    }

    /// Where the admin endpoints answer, if the role has them.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.addr)
    }

    /// Asks the role to stop: it drains, then ends.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }

    /// The token [`shutdown`](Self::shutdown) cancels, for a signal handler while another
    /// task awaits [`wait`](Self::wait).
    pub fn stop_handle(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Waits until the role has ended (by itself or after a shutdown), then stops its admin
    /// server.
    pub async fn wait(self) -> Result<(), E> {
        let name = self.name;
        let result = self.done.await.unwrap_or_else(|_| {
            Err(io::Error::other(format!("the {name} role ended without a result")).into())
        });
        self.stop.cancel();
        if let Some(admin) = self.admin {
            admin.stop().await;
        }
        result
    }
}

fn report<E: Display>(name: &str, result: &Result<(), E>) {
    if let Err(error) = result {
        tracing::error!(%error, role = name, "stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn own_thread_role_stops_when_asked_and_reports_its_result() {
        let stop = CancellationToken::new();
        let watched = stop.clone();
        let role: Role<io::Error> =
            Role::on_own_thread("test", "nothing", stop, None, move || async move {
                watched.cancelled().await;
                Err(io::Error::other("stopped on purpose"))
            })
            .unwrap();
        assert_eq!(role.name(), "test");
        role.shutdown();
        let error = role.wait().await.unwrap_err();
        assert_eq!(error.to_string(), "stopped on purpose");
    }

    #[tokio::test]
    async fn admin_server_answers_until_the_role_has_ended() {
        let router = Router::new().route("/healthz", axum::routing::get(|| async { "ok\n" }));
        let admin = Admin::serve("127.0.0.1:0".parse().unwrap(), router)
            .await
            .unwrap();
        let addr = admin.addr;
        let stop = CancellationToken::new();
        let (release, released) = oneshot::channel::<()>();
        let role: Role<io::Error> = Role::on_runtime("test", "nothing", stop, Some(admin), async {
            let _ = released.await;
            Ok(())
        });
        assert_eq!(role.admin_addr(), Some(addr));
        role.shutdown();
        // Told to stop but not yet ended: the admin endpoints still answer.
        let stream = tokio::net::TcpStream::connect(addr).await;
        assert!(
            stream.is_ok(),
            "admin endpoint closed before the role ended"
        );
        drop(stream);
        release.send(()).unwrap();
        role.wait().await.unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
