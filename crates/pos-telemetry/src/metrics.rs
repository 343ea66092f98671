//! Prometheus metrics over HTTP. Services define their metrics as statics registered in the
//! default registry (`prometheus::register_int_counter_vec!` and friends, one name prefix per
//! service, e.g. `pos_gateway_`); this module serves them at `GET /metrics`.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, TextEncoder};
use tokio::net::TcpListener;

use crate::Result;

/// The registry's metrics in Prometheus text exposition format.
pub fn render() -> String {
    let families = prometheus::gather();
    let mut buffer = Vec::new();
    // Encoding into a Vec cannot fail for the text format.
    let _ = TextEncoder::new().encode(&families, &mut buffer);
    String::from_utf8(buffer).unwrap_or_default()
}

async fn metrics_handler() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            TextEncoder::new().format_type().to_owned(),
        )],
        render(),
    )
}

/// Binds `addr` (port 0 picks a free one) and returns the bound address and the server future,
/// which runs until `shutdown` completes.
pub async fn bind(
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = Router::new().route("/metrics", get(metrics_handler));
    let server = async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    };
    Ok((local, server))
}
