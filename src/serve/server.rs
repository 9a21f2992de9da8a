//! The server: its models, its listeners (HTTP and gRPC), and its life from start to a
//! graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

use super::grpc::proto::grpc_inference_service_server::GrpcInferenceServiceServer;
use super::model::ServedModel;
use super::shared::Shared;

/// Where and how a [`Server`] listens.
///
/// ```
/// use wgpu_lstm::serve::ServeOptions;
///
/// let options = ServeOptions {
///     grpc: None, // HTTP only
///     ..ServeOptions::default()
/// };
/// assert_eq!(options.http.unwrap().port(), 8000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// The HTTP/REST listener (default `127.0.0.1:8000`; port 0 picks a free one); `None`
    /// for none.
    pub http: Option<SocketAddr>,
    /// The gRPC listener (default `127.0.0.1:8001`); `None` for none.
    pub grpc: Option<SocketAddr>,
    /// The largest request body (HTTP) or message (gRPC) taken, in bytes (default 64 MiB).
    pub max_body_bytes: usize,
    /// How long a shutdown waits for the requests in flight before it drops them (default
    /// 30 s).
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            http: Some(SocketAddr::from(([127, 0, 0, 1], 8000))),
            grpc: Some(SocketAddr::from(([127, 0, 0, 1], 8001))),
            max_body_bytes: 64 << 20,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// A server of one or more [`ServedModel`]s over the Open Inference Protocol (see the
/// [module documentation](super)).
#[derive(Debug)]
pub struct Server {
    models: Vec<ServedModel>,
}

impl Server {
    /// A server of `models`. Fails where there are none or two have the same name.
    pub fn new(models: Vec<ServedModel>) -> Result<Server> {
        if models.is_empty() {
            return Err(Error::InvalidInput(
                "a server needs at least one model".into(),
            ));
        }
        for (i, m) in models.iter().enumerate() {
            if models[..i].iter().any(|o| o.name() == m.name()) {
                return Err(Error::InvalidInput(format!(
                    "two models are named `{}`",
                    m.name()
                )));
            }
        }
        Ok(Server { models })
    }

    /// Binds the listeners of `options` and starts serving on the current tokio runtime.
    /// Fails where a listener cannot be bound or none is asked for.
    pub async fn start(self, options: &ServeOptions) -> Result<Running> {
        if options.http.is_none() && options.grpc.is_none() {
            return Err(Error::InvalidInput(
                "the server needs an HTTP or a gRPC listener".into(),
            ));
        }
        let shared = Arc::new(Shared::new(self.models, options.max_body_bytes));
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|e| Error::InvalidInput(format!("cannot listen on {addr}: {e}")))
        };
        let mut http = None;
        if let Some(addr) = options.http {
            let listener = bind(addr).await?;
            http = Some(
                listener
                    .local_addr()
                    .map_err(|e| Error::Internal(e.to_string()))?,
            );
            let router = super::http::router(shared.clone());
            let signal = wait(stopped.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router)
                    .with_graceful_shutdown(signal)
                    .await
                {
                    eprintln!("{}", serde_json::json!({"level": "error", "protocol": "http", "error": e.to_string()}));
                }
            }));
        }
        let mut grpc = None;
        if let Some(addr) = options.grpc {
            let listener = bind(addr).await?;
            grpc = Some(
                listener
                    .local_addr()
                    .map_err(|e| Error::Internal(e.to_string()))?,
            );
            let service = GrpcInferenceServiceServer::new(super::grpc::Service {
                shared: shared.clone(),
            })
            .max_decoding_message_size(options.max_body_bytes)
            .max_encoding_message_size(usize::MAX);
            // Without TCP_NODELAY a small answer waits for the client's delayed ACK (40 ms).
            let incoming = tokio_stream::StreamExt::map(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                |conn| conn.and_then(|tcp| tcp.set_nodelay(true).map(|()| tcp)),
            );
            let signal = wait(stopped.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming_shutdown(incoming, signal)
                    .await
                {
                    eprintln!("{}", serde_json::json!({"level": "error", "protocol": "grpc", "error": e.to_string()}));
                }
            }));
        }
        tasks.push(tokio::spawn(sweep(shared.clone(), stopped)));
        Ok(Running {
            http,
            grpc,
            shared,
            stop,
            tasks,
            grace: options.shutdown_grace,
        })
    }
}

/// Resolves once `stop` says so (or its sender is gone).
async fn wait(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Forgets idle sequences once a second until the server stops.
async fn sweep(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = Instant::now();
                for m in shared.models() {
                    m.sequences.sweep(now);
                }
            }
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// A server running: its addresses, and its shutdown.
#[derive(Debug)]
pub struct Running {
    http: Option<SocketAddr>,
    grpc: Option<SocketAddr>,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    grace: Duration,
}

impl Running {
    /// The address the HTTP listener is bound to.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http
    }

    /// The address the gRPC listener is bound to.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc
    }

    /// Shuts down gracefully: stops accepting connections and reports not ready, finishes
    /// the requests in flight (for at most the grace period), then shuts each model's
    /// batcher down (finishing what it admitted).
    pub async fn shutdown(self) {
        self.shared.stop_taking();
        let _ = self.stop.send(true);
        let all = futures_join(self.tasks);
        if tokio::time::timeout(self.grace, all).await.is_err() {
            eprintln!(
                "{}",
                serde_json::json!({"level": "warn", "error": "requests still in flight after the shutdown's grace period were dropped"})
            );
        }
        let shared = self.shared;
        let _ = tokio::task::spawn_blocking(move || {
            for m in shared.models() {
                m.batcher().shutdown();
            }
        })
        .await;
    }

    /// Serves until `signal` resolves (e.g. `tokio::signal::ctrl_c()`), then
    /// [`shutdown`](Self::shutdown).
    pub async fn serve_until(self, signal: impl std::future::Future<Output = ()>) {
        signal.await;
        self.shutdown().await;
    }
}

/// Waits for every task.
async fn futures_join(tasks: Vec<JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}
