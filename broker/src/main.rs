//! `floe`: the broker binary.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use floe_broker::config::{Cli, Command, ServeArgs};
use floe_broker::http::listener::LimitedListener;
use floe_broker::http::stream::HttpTls;
use std::sync::Arc;

use floe_broker::jwks::{JwksSource, KeySet};
use floe_broker::jwt::{JwtConfig, JwtVerifier};
use floe_broker::kafka::authentication::{ListenerAuth, SaslSettings};
use floe_broker::kafka::connections::{raise_file_limit, Admission, ConnectionLimits};
use floe_broker::kafka::listeners::{self, ListenerFlags, ListenerSpec};
use floe_broker::kafka::principal_mapping::PrincipalMapping;
use floe_broker::kafka::server::KafkaListener;
use floe_broker::kafka::{server, tls};
use floe_broker::registry::ANONYMOUS;
use floe_broker::sasl::SaslMechanism;
use floe_broker::{http, Broker};
use floe_storage::meta::ListenerAddress;
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
        Command::Serve(args) => runtime.block_on(serve(*args)),
        Command::Topic { target, command } => {
            exit_on_error(runtime.block_on(floe_broker::cli::topic(&target, command)))
        }
        Command::Group { target, command } => {
            exit_on_error(runtime.block_on(floe_broker::cli::group(&target, command)))
        }
        Command::Consume { target, args } => {
            exit_on_error(runtime.block_on(floe_broker::cli::consume(&target, args)))
        }
        Command::Produce { target, args } => {
            exit_on_error(runtime.block_on(floe_broker::cli::produce(&target, args)))
        }
        Command::Schema { target, command } => {
            exit_on_error(runtime.block_on(floe_broker::cli::schema(&target, command)))
        }
        Command::User { target, command } => {
            exit_on_error(runtime.block_on(floe_broker::cli::user(&target, command)))
        }
        Command::Acl { target, command } => {
            exit_on_error(runtime.block_on(floe_broker::cli::acl(&target, command)))
        }
        Command::Completion { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "floe", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// A CLI command's failure: its message, exit code 1.
fn exit_on_error(result: anyhow::Result<()>) -> anyhow::Result<()> {
    if let Err(e) = result {
        eprintln!("floe: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}

/// The checker of identity-provider tokens, with --oauth-jwks.
async fn jwt_verifier(args: &ServeArgs) -> anyhow::Result<Option<Arc<JwtVerifier>>> {
    let Some(source) = &args.oauth_jwks else {
        return Ok(None);
    };
    let keys = KeySet::open(
        &JwksSource::parse(source),
        Duration::from_millis(args.oauth_jwks_refresh_ms),
    )
    .await
    .map_err(|e| anyhow::anyhow!("--oauth-jwks {source}: {e}"))?;
    Ok(Some(Arc::new(JwtVerifier::new(
        JwtConfig {
            issuer: args.oauth_issuer.clone(),
            audience: args.oauth_audience.clone(),
            principal_claim: args.oauth_principal_claim.clone(),
        },
        keys,
    ))))
}

/// How a Kafka listener authenticates, from the flags.
fn listener_auth(
    args: &ServeArgs,
    spec: &ListenerSpec,
    jwt: &Option<Arc<JwtVerifier>>,
) -> anyhow::Result<ListenerAuth> {
    if !spec.protocol.uses_sasl() {
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
    let jwt = jwt.clone();
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

/// The TLS of the Kafka listeners that use it (SSL, SASL_SSL), from the
/// flags: every such listener needs the certificate and key, and they are
/// for nothing else (but --http-tls).
fn listener_tls(args: &ServeArgs, specs: &[ListenerSpec]) -> anyhow::Result<Option<TlsAcceptor>> {
    let wanted = specs.iter().any(|s| s.protocol.uses_tls());
    anyhow::ensure!(
        wanted || args.http_tls || args.tls_client_ca.is_none(),
        "--tls-client-ca is for SSL or SASL_SSL listeners and --http-tls"
    );
    match (wanted, &args.tls_cert, &args.tls_key) {
        (true, Some(cert), Some(key)) => Ok(Some(tls::acceptor(
            cert,
            key,
            args.tls_client_ca.as_deref(),
            true,
        )?)),
        (true, _, _) => {
            let spec = specs
                .iter()
                .find(|s| s.protocol.uses_tls())
                .expect("wanted");
            anyhow::bail!(
                "listener {} ({}) needs --tls-cert and --tls-key",
                spec.name,
                spec.protocol
            )
        }
        (false, _, _) if args.http_tls => Ok(None),
        (false, None, None) => Ok(None),
        (false, _, _) => {
            anyhow::bail!(
                "--tls-cert and --tls-key are for SSL or SASL_SSL listeners and --http-tls"
            )
        }
    }
}

/// The Kafka listeners the flags describe, bound, each with what its
/// connections need, and the addresses each advertises.
async fn kafka_listeners(
    args: &ServeArgs,
    mapping: &Arc<PrincipalMapping>,
    jwt: &Option<Arc<JwtVerifier>>,
) -> anyhow::Result<(Vec<(TcpListener, KafkaListener)>, Vec<ListenerAddress>)> {
    let specs = listeners::from_flags(&ListenerFlags {
        listeners: args.listeners.as_deref(),
        kafka_listen: &args.kafka_listen,
        kafka_security_protocol: &args.kafka_security_protocol,
        advertised_listeners: args.advertised_listeners.as_deref(),
        advertised_listener: args.advertised_listener.as_deref(),
        protocol_map: args.listener_security_protocol_map.as_deref(),
        principals: args.listener_principals.as_deref(),
    })
    .map_err(anyhow::Error::msg)?;
    let tls = listener_tls(args, &specs)?;
    let mut bound = Vec::with_capacity(specs.len());
    let mut advertised = Vec::with_capacity(specs.len());
    for spec in &specs {
        let socket = TcpListener::bind(&spec.bind).await.with_context(|| {
            format!("binding the Kafka listener {} on {}", spec.name, spec.bind)
        })?;
        let local: SocketAddr = socket.local_addr()?;
        let (host, port) = spec
            .advertised
            .clone()
            .unwrap_or_else(|| (local.ip().to_string(), i32::from(local.port())));
        info!(listener = %spec.name, protocol = %spec.protocol, bound = %local,
            advertised = %format!("{host}:{port}"), "Kafka listener");
        advertised.push(ListenerAddress {
            name: spec.name.clone(),
            host,
            port,
        });
        let listener = KafkaListener {
            name: spec.name.as_str().into(),
            auth: listener_auth(args, spec, jwt)?,
            tls: tls.clone().filter(|_| spec.protocol.uses_tls()),
            unauthenticated: spec.principal.as_deref().unwrap_or(ANONYMOUS).into(),
            principal_mapping: mapping.clone(),
        };
        bound.push((socket, listener));
    }
    Ok((bound, advertised))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mapping = Arc::new(
        PrincipalMapping::parse(&args.ssl_principal_mapping_rules)
            .map_err(|e| anyhow::anyhow!("--ssl-principal-mapping-rules: {e}"))?,
    );
    let jwt = jwt_verifier(&args).await?;
    let (kafka, advertised) = kafka_listeners(&args, &mapping, &jwt).await?;
    // HTTPS asks for a client certificate with --tls-client-ca, and takes
    // a client without one (it has other logins).
    let http_tls = match (args.http_tls, &args.tls_cert, &args.tls_key) {
        (false, _, _) => None,
        (true, Some(cert), Some(key)) => Some(HttpTls {
            acceptor: tls::acceptor(cert, key, args.tls_client_ca.as_deref(), false)?,
            mapping: mapping.clone(),
        }),
        (true, _, _) => anyhow::bail!("--http-tls needs --tls-cert and --tls-key"),
    };
    let kafka_addr: SocketAddr = kafka[0].0.local_addr()?;
    let http_listener = TcpListener::bind(&args.http_listen)
        .await
        .with_context(|| format!("binding the HTTP listener on {}", args.http_listen))?;
    let http_addr = http_listener.local_addr()?;
    let (kafka_limits, http_limits) = connection_limits(&args);
    let broker = Broker::open(&args, advertised).await?;
    // The test harness and scripts wait for this line (`kafka` is the
    // first listener).
    info!(kafka = %kafka_addr, http = %http_addr, data_dir = %args.data_dir.display(), "floe is ready");
    let app = http::router(
        broker.clone(),
        args.http_max_body_bytes,
        match args.http_authentication.as_str() {
            "required" => http::HttpLogin::Required(jwt),
            _ => http::HttpLogin::None,
        },
    );
    let http_listener = LimitedListener::new(http_listener, Admission::new(http_limits), http_tls);
    let app = app.into_make_service_with_connect_info::<http::listener::Peer>();
    let http_task = tokio::spawn(async move { axum::serve(http_listener, app).await });
    // One admission for every Kafka listener: --max-connections bounds
    // them together.
    let admission = Admission::new(kafka_limits);
    let mut kafka_tasks = tokio::task::JoinSet::new();
    for (socket, listener) in kafka {
        kafka_tasks.spawn(server::serve_kafka(
            socket,
            broker.clone(),
            admission.clone(),
            listener,
        ));
    }
    tokio::select! {
        r = kafka_tasks.join_next() => r.context("no Kafka listener")?.context("Kafka listener failed")?,
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
