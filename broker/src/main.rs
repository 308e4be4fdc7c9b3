//! `floe`: the broker binary.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use floe_broker::config::{Cli, Command, ServeArgs};
use floe_broker::http::listener::LimitedListener;
use std::sync::Arc;

use floe_broker::jwt::{JwtConfig, JwtVerifier};
use floe_broker::kafka::authentication::{ListenerAuth, SaslSettings};
use floe_broker::kafka::connections::{raise_file_limit, Admission, ConnectionLimits};
use floe_broker::kafka::{server, tls};
use floe_broker::sasl::SaslMechanism;
use floe_broker::{http, Broker};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{error, info, warn};

/// A request frame may make the decoder reserve a buffer sized by a count
/// the client sent; reserved, not committed (see `floe_alloc`).
#[global_allocator]
static ALLOCATOR: floe_alloc::LazyHuge = floe_alloc::LazyHuge;

fn main() -> anyhow::Result<()> {
    floe_alloc::keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FLOE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // A panic that remains in a request handler ends that connection's
    // task (tokio catches it); the process and every other client go on.
    // It is logged like everything else.
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        error!(thread = thread.name().unwrap_or("?"), "panic: {info}");
    }));
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Room for the recursion that client data may drive, under its
        // limits (protobuf's 100 levels of nesting).
        .thread_stack_size(8 << 20)
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

/// The checker of identity-provider tokens, with --oauth-jwks.
fn jwt_verifier(args: &ServeArgs) -> anyhow::Result<Option<Arc<JwtVerifier>>> {
    let Some(path) = &args.oauth_jwks else {
        return Ok(None);
    };
    Ok(Some(Arc::new(JwtVerifier::open(JwtConfig {
        jwks: path.clone(),
        issuer: args.oauth_issuer.clone(),
        audience: args.oauth_audience.clone(),
        principal_claim: args.oauth_principal_claim.clone(),
    })?)))
}

/// How the Kafka listener authenticates, from the flags.
fn listener_auth(args: &ServeArgs) -> anyhow::Result<ListenerAuth> {
    if !args.kafka_security_protocol.starts_with("SASL_") {
        return Ok(ListenerAuth::None);
    }
    let mut mechanisms = args
        .sasl_mechanisms
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(|m| {
            SaslMechanism::by_name(m).with_context(|| {
                format!("--sasl-mechanisms: {m} is not one of SCRAM-SHA-512, SCRAM-SHA-256, PLAIN, OAUTHBEARER")
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let jwt = jwt_verifier(args)?;
    if jwt.is_some() && !mechanisms.contains(&SaslMechanism::OAuthBearer) {
        mechanisms.push(SaslMechanism::OAuthBearer);
    }
    anyhow::ensure!(
        jwt.is_some() || !mechanisms.contains(&SaslMechanism::OAuthBearer),
        "OAUTHBEARER needs --oauth-jwks, the keys its tokens are signed with"
    );
    anyhow::ensure!(
        !mechanisms.is_empty(),
        "--sasl-mechanisms names no mechanism"
    );
    Ok(ListenerAuth::Sasl(SaslSettings {
        offered: mechanisms.into(),
        jwt,
        max_reauth: (args.connections_max_reauth_ms > 0)
            .then(|| Duration::from_millis(args.connections_max_reauth_ms)),
    }))
}

/// The Kafka listener's TLS, from the flags: none unless the protocol is
/// SSL or SASL_SSL, which need both files.
fn listener_tls(args: &ServeArgs) -> anyhow::Result<Option<TlsAcceptor>> {
    let wanted = args.kafka_security_protocol.ends_with("SSL");
    anyhow::ensure!(
        wanted || args.tls_client_ca.is_none(),
        "--tls-client-ca is for --kafka-security-protocol SSL or SASL_SSL"
    );
    match (wanted, &args.tls_cert, &args.tls_key) {
        (true, Some(cert), Some(key)) => Ok(Some(tls::acceptor(
            cert,
            key,
            args.tls_client_ca.as_deref(),
        )?)),
        (true, _, _) => anyhow::bail!(
            "--kafka-security-protocol {} needs --tls-cert and --tls-key",
            args.kafka_security_protocol
        ),
        (false, None, None) => Ok(None),
        (false, _, _) => anyhow::bail!(
            "--tls-cert and --tls-key are for --kafka-security-protocol SSL or SASL_SSL"
        ),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let auth = listener_auth(&args)?;
    let tls = listener_tls(&args)?;
    let http_tls = match (args.http_tls, &args.tls_cert, &args.tls_key) {
        (false, _, _) => None,
        (true, Some(cert), Some(key)) => Some(tls::acceptor(cert, key, None)?),
        (true, _, _) => anyhow::bail!("--http-tls needs --tls-cert and --tls-key"),
    };
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
    let (kafka_limits, http_limits) = connection_limits(&args);
    let broker = Broker::open(&args, advertised).await?;
    // The test harness and scripts wait for this line.
    info!(kafka = %kafka_addr, http = %http_addr, data_dir = %args.data_dir.display(), "floe is ready");
    let app = http::router(
        broker.clone(),
        args.http_max_body_bytes,
        match args.http_authentication.as_str() {
            "required" => http::HttpLogin::Required(jwt_verifier(&args)?),
            _ => http::HttpLogin::None,
        },
    );
    let http_listener = LimitedListener::new(http_listener, Admission::new(http_limits), http_tls);
    let app = app.into_make_service_with_connect_info::<http::listener::Peer>();
    let http_task = tokio::spawn(async move { axum::serve(http_listener, app).await });
    let kafka_task = tokio::spawn(server::serve_kafka(
        kafka,
        broker.clone(),
        Admission::new(kafka_limits),
        auth,
        tls,
    ));
    tokio::select! {
        r = kafka_task => r.context("Kafka listener failed")?,
        r = http_task => r?.context("HTTP listener failed")?,
        _ = shutdown_signal() => info!("stopping; unacknowledged buffers are dropped, nothing acknowledged is lost"),
    }
    broker.group_saver().flush().await;
    broker.membership().leave().await;
    Ok(())
}

/// The Kafka and HTTP listeners' limits. The open-file limit is raised to
/// its maximum first, and the connection limits lowered to fit in it (with
/// room for the files the broker itself opens).
fn connection_limits(args: &ServeArgs) -> (ConnectionLimits, ConnectionLimits) {
    const OWN_FILES: usize = 1024;
    let mut kafka_max = args.max_connections;
    let mut http_max = args.http_max_connections;
    match raise_file_limit() {
        Ok(files) => {
            let room = (files as usize).saturating_sub(OWN_FILES).max(64);
            if kafka_max + http_max > room {
                http_max = http_max.min(room / 8).max(8);
                kafka_max = room.saturating_sub(http_max).max(8);
                warn!(open_files = files, max_connections = kafka_max, http_max_connections = http_max,
                    "the open-file limit is too low for the connection limits asked for; lowered them (raise `ulimit -n` to keep them)");
            }
        }
        Err(e) => warn!(error = %e, "could not read the open-file limit"),
    }
    let kafka = ConnectionLimits {
        max_total: kafka_max,
        max_per_address: args.max_connections_per_address.min(kafka_max),
        idle: Duration::from_millis(args.connections_max_idle_ms),
        request_arrival: Duration::from_millis(args.request_arrival_timeout_ms),
    };
    let http = ConnectionLimits {
        max_total: http_max,
        max_per_address: http_max,
        idle: Duration::from_millis(args.http_idle_timeout_ms),
        request_arrival: Duration::from_millis(args.http_idle_timeout_ms),
    };
    (kafka, http)
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
