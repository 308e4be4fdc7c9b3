//! `floe`: the broker binary.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use floe_broker::config::{Cli, Command, ServeArgs};
use floe_broker::{http, server, Broker};
use tokio::net::TcpListener;
use tracing::info;

/// A request frame may make the decoder reserve a buffer sized by a count
/// the client sent; reserved, not committed (see `floe_alloc`).
#[global_allocator]
static ALLOCATOR: floe_alloc::LazyHuge = floe_alloc::LazyHuge;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FLOE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
    }
}

fn split_host_port(s: &str) -> anyhow::Result<(String, i32)> {
    let (host, port) = s
        .rsplit_once(':')
        .with_context(|| format!("{s} is not host:port"))?;
    let port = port.parse().with_context(|| format!("bad port in {s}"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let kafka = TcpListener::bind(&args.kafka_listen)
        .await
        .with_context(|| format!("binding the Kafka listener on {}", args.kafka_listen))?;
    let kafka_addr: SocketAddr = kafka.local_addr()?;
    let http_listener = TcpListener::bind(&args.http_listen)
        .await
        .with_context(|| format!("binding the HTTP listener on {}", args.http_listen))?;
    let http_addr = http_listener.local_addr()?;
    let advertised = match &args.advertised_listener {
        Some(a) => split_host_port(a)?,
        None => (kafka_addr.ip().to_string(), kafka_addr.port() as i32),
    };
    let broker = Broker::open(&args, advertised).await?;
    // The test harness and scripts wait for this line.
    info!(kafka = %kafka_addr, http = %http_addr, data_dir = %args.data_dir.display(), "floe is ready");
    let app = http::router(broker.clone());
    let http_task = tokio::spawn(async move { axum::serve(http_listener, app).await });
    let kafka_task = tokio::spawn(server::serve_kafka(kafka, broker.clone()));
    tokio::select! {
        r = kafka_task => r?.context("Kafka listener failed")?,
        r = http_task => r?.context("HTTP listener failed")?,
        _ = shutdown_signal() => info!("stopping; unacknowledged buffers are dropped, nothing acknowledged is lost"),
    }
    broker.group_saver.flush().await;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
