//! The health and reflection services every binary mounts, and the `/metrics` endpoint, probed
//! over real sockets with standard clients.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::net::SocketAddr;

use futures::StreamExt;
use pos_telemetry::grpc::{self, ServingStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

async fn serve_health_and_reflection() -> (
    SocketAddr,
    tonic_health::server::HealthReporter,
    oneshot::Sender<()>,
) {
    let (reporter, health) = grpc::health();
    let reflection = grpc::reflection().expect("reflection service");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        Server::builder()
            .add_service(health)
            .add_service(reflection)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
    });
    (addr, reporter, stop)
}

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect")
}

#[tokio::test]
async fn health_reports_what_the_service_sets() {
    let (addr, reporter, stop) = serve_health_and_reflection().await;
    reporter
        .set_service_status("pos.v1.Issuer", ServingStatus::Serving)
        .await;
    let mut client = HealthClient::new(channel(addr).await);

    let serving = client
        .check(HealthCheckRequest {
            service: "pos.v1.Issuer".to_owned(),
        })
        .await
        .expect("known service answers")
        .into_inner();
    assert_eq!(
        serving.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    reporter
        .set_service_status("pos.v1.Issuer", ServingStatus::NotServing)
        .await;
    let draining = client
        .check(HealthCheckRequest {
            service: "pos.v1.Issuer".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        draining.status,
        tonic_health::pb::health_check_response::ServingStatus::NotServing as i32
    );

    let unknown = client
        .check(HealthCheckRequest {
            service: "pos.v1.Nope".to_owned(),
        })
        .await
        .expect_err("unknown service is an error");
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let _ = stop.send(());
}

#[tokio::test]
async fn reflection_lists_every_pos_service() {
    let (addr, _reporter, stop) = serve_health_and_reflection().await;
    let mut client = ServerReflectionClient::new(channel(addr).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection stream")
        .into_inner();
    let response = responses
        .next()
        .await
        .expect("one answer")
        .expect("no error");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!(
            "expected a service list, got {:?}",
            response.message_response
        );
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in [
        "pos.v1.TerminalGateway",
        "pos.v1.TerminalManagement",
        "pos.v1.Authorization",
        "pos.v1.Reversal",
        "pos.v1.Settlement",
        "pos.v1.FraudCheck",
        "pos.v1.Issuer",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == service),
            "{service} missing from {names:?}"
        );
    }
    let _ = stop.send(());
}

#[tokio::test]
async fn metrics_endpoint_serves_registered_counters() {
    let counter = prometheus::register_int_counter!(
        "pos_test_approvals_total",
        "approvals seen by the metrics test"
    )
    .expect("register");
    counter.inc_by(3);

    let (stop, stopped) = oneshot::channel::<()>();
    let (addr, server) = pos_telemetry::metrics::bind("127.0.0.1:0".parse().unwrap(), async {
        let _ = stopped.await;
    })
    .await
    .expect("bind metrics");
    let server = tokio::spawn(server);

    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();

    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("text/plain; version=0.0.4"), "{body}");
    assert!(body.contains("pos_test_approvals_total 3"), "{body}");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
