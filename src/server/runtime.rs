//! What each shard runs: its inbox, its front listener and (shard 0 only) the
//! admin listener and the SIGHUP certificate reloader.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use glommio::net::TcpListener;
use http::HeaderValue;
use shards::runtime::{RuntimeOptions, Shard};
use shards::shutdown::{ConnTracker, Shutdown};

use super::{load_certs, ShardMsg, Shared, StartError};
use crate::admin::driver as admin;
use crate::front::driver::{serve, FrontShard};
use crate::front::http::Site;
use crate::front::route::Router;
use crate::front::tls;
use crate::sfu;
use crate::sfu::session::Timeouts;
use crate::sfu::signalling::SfuShard;
use crate::sfu::upgrade::serve_handed;
use crate::telemetry::metrics::{Metric, ShardMetrics};
use crate::tunnel::forward_driver::{self, Forward};
use crate::tunnel::link::CoreLink;

/// Runs the node until it has drained after SIGINT/SIGTERM (or `shutdown.trigger()`).
pub fn run(shared: Arc<Shared>, shutdown: &Shutdown) -> Result<(), StartError> {
    let rt = &shared.cfg.runtime;
    let opts = RuntimeOptions {
        cores: (rt.cores > 0).then_some(rt.cores as usize),
        io_memory: (rt.io_memory_kib as usize) << 10,
        ring_depth: rt.ring_depth as usize,
        bus_capacity: rt.bus_capacity as usize,
        name: "edge".into(),
    };
    let sd = shutdown.clone();
    let sh = shared.clone();
    let hup = sighup_channel();
    shards::runtime::run(opts, shutdown, move |shard: Shard<ShardMsg>| {
        shard_main(sh.clone(), shard, sd.clone(), hup.clone())
    })?;
    let fatal = shared.fatal.lock().map(|f| f.clone()).unwrap_or_default();
    if !fatal.is_empty() {
        return Err(StartError::Shard(fatal.join("; ")));
    }
    Ok(())
}

/// SIGHUP arrives on a std thread (signal-hook) and is forwarded to shard 0.
fn sighup_channel() -> flume::Receiver<()> {
    let (tx, rx) = flume::bounded(1);
    match signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP]) {
        Ok(mut signals) => {
            std::thread::Builder::new()
                .name("sighup".into())
                .spawn(move || {
                    for _ in signals.forever() {
                        let _ = tx.try_send(());
                    }
                })
                .ok();
        }
        Err(e) => {
            tracing::warn!(error = %e, "SIGHUP handler not installed; certificates will not reload")
        }
    }
    rx
}

fn fail(shared: &Shared, shutdown: &Shutdown, msg: String) {
    tracing::error!("{msg}");
    if let Ok(mut f) = shared.fatal.lock() {
        f.push(msg);
    }
    shutdown.trigger();
}

async fn shard_main(
    shared: Arc<Shared>,
    shard: Shard<ShardMsg>,
    shutdown: Shutdown,
    hup: flume::Receiver<()>,
) {
    let cfg = &shared.cfg;
    let metrics = Rc::new(ShardMetrics::default());
    let tls_cfg = match tls::server_config(shared.certs.clone(), shared.ticketer.clone()) {
        Ok(c) => c,
        Err(e) => return fail(&shared, &shutdown, format!("TLS config: {e}")),
    };
    let listener = match TcpListener::bind(shared.front_addr) {
        Ok(l) => l,
        Err(e) => {
            let err = StartError::Bind {
                what: "front listener",
                addr: shared.front_addr,
                source: e.into(),
            };
            return fail(&shared, &shutdown, err.to_string());
        }
    };
    let server_header = (!cfg.front.server_header.is_empty())
        .then(|| HeaderValue::from_str(&cfg.front.server_header).ok())
        .flatten();
    let conns = ConnTracker::default();
    // Group calls: this shard's rooms and their UDP media port, when the
    // signalling route is on (a token key is configured).
    let rooms = match &shared.sfu_secret {
        None => None,
        Some(_) => {
            let addrs = sfu::media_addrs(&cfg.sfu, shard.index);
            let bound = addrs.bound;
            let hub_cfg = sfu::HubConfig::from_config(&cfg.sfu, cfg.sfu.max_participants as usize);
            match sfu::media_driver::start(
                addrs,
                hub_cfg,
                Some(metrics.clone()),
                shard.shutdown.clone(),
            ) {
                Ok(hub) => {
                    let port = hub.borrow().media_addrs().bound.port();
                    tracing::info!(shard = shard.index, port, "group-call media listening");
                    Some(hub as Rc<RefCell<dyn crate::sfu::api::Rooms>>)
                }
                Err(e) => {
                    let err = StartError::Bind {
                        what: "group-call media (UDP)",
                        addr: bound,
                        source: e,
                    };
                    return fail(&shared, &shutdown, err.to_string());
                }
            }
        }
    };
    let sfu = shared
        .sfu_secret
        .as_ref()
        .zip(rooms)
        .map(|(secret, rooms)| {
            Rc::new(SfuShard {
                index: shard.index,
                shards: shard.count,
                secret: secret.clone(),
                rooms,
                timeouts: Timeouts {
                    offer: cfg.sfu.offer_timeout(),
                    ..Timeouts::default()
                },
                metrics: metrics.clone(),
                conns: conns.clone(),
                shutdown: shard.shutdown.clone(),
                bus: (shard.count > 1).then(|| shard.bus.clone()),
                server_header: server_header.clone(),
            })
        });
    let site = Rc::new(Site {
        cover: shared.cover.clone(),
        classifier: shared.classifier.clone(),
        server_header,
        max_body_bytes: cfg.front.limits.max_body_bytes,
        metrics: metrics.clone(),
    });
    let front = Rc::new(FrontShard {
        router: Router::new(&cfg.front.domains),
        tls: RefCell::new(tls_cfg),
        site,
        limits: cfg.front.limits.clone(),
        metrics: metrics.clone(),
        conns,
        sfu,
    });

    let tunnel_sni: Rc<RefCell<Option<Arc<str>>>> = Rc::default();
    glommio::spawn_local(inbox_loop(
        shard.inbox,
        front.clone(),
        shared.clone(),
        tunnel_sni.clone(),
    ))
    .detach();
    if let Some(settings) = &shared.tunnel {
        let link = CoreLink::new(settings.clone(), tunnel_sni.clone(), metrics.clone());
        for (addr, target) in &shared.forwards {
            let listener = match TcpListener::bind(*addr) {
                Ok(l) => l,
                Err(e) => {
                    let err = StartError::Bind {
                        what: "tunnel forward",
                        addr: *addr,
                        source: e.into(),
                    };
                    return fail(&shared, &shutdown, err.to_string());
                }
            };
            let fwd = Rc::new(Forward {
                target: target.clone(),
                link: link.clone(),
                metrics: metrics.clone(),
                // Shared with the front, so the drain waits for open tunnels too.
                conns: front.conns.clone(),
            });
            glommio::spawn_local(forward_driver::serve(fwd, listener, shard.shutdown.clone()))
                .detach();
            if shard.index == 0 {
                tracing::info!(listen = %addr, "tunnel forward listening");
            }
        }
    }

    if shard.index == 0 {
        match TcpListener::bind(shared.admin_addr) {
            Ok(l) => {
                let st = admin::AdminState {
                    bus: shard.bus.clone(),
                    shared: shared.clone(),
                    shutdown: shard.shutdown.clone(),
                };
                glommio::spawn_local(admin::serve(l, Rc::new(st))).detach();
            }
            Err(e) => {
                let err = StartError::Bind {
                    what: "admin listener",
                    addr: shared.admin_addr,
                    source: e.into(),
                };
                return fail(&shared, &shutdown, err.to_string());
            }
        }
        glommio::spawn_local(reload_on_hup(hup, shard.bus.clone(), shared.clone())).detach();
        if !cfg.tunnel.sni_pool.is_empty() {
            glommio::spawn_local(rotate_sni(shard.bus.clone(), shared.clone())).detach();
        }
        tracing::info!(
            front = %shared.front_addr,
            admin = %shared.admin_addr,
            shards = shard.count,
            dev = cfg.node.dev,
            "edge listening"
        );
    }
    shared.ready.fetch_add(1, Ordering::SeqCst);
    serve(front, listener, shard.shutdown.clone()).await;
    shared.ready.fetch_sub(1, Ordering::SeqCst);
    if shard.index == 0 {
        // Shard 0 hosts the admin listener: keep it answering `/readyz`
        // ("draining") until every other shard has finished its drain.
        let until = shard
            .shutdown
            .deadline()
            .unwrap_or_else(std::time::Instant::now);
        while shared.ready.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < until {
            glommio::timer::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn inbox_loop(
    inbox: shards::bus::Inbox<ShardMsg>,
    front: Rc<FrontShard>,
    shared: Arc<Shared>,
    tunnel_sni: Rc<RefCell<Option<Arc<str>>>>,
) {
    while let Some(msg) = inbox.recv().await {
        match msg {
            ShardMsg::Sni(name) => {
                // Read by new tunnel sessions once the tunnel pool lands; open ones keep theirs.
                *tunnel_sni.borrow_mut() = Some(name);
                front.metrics.inc(Metric::SniRotations);
            }
            ShardMsg::Metrics(reply) => reply.send(front.metrics.snapshot()),
            ShardMsg::Signalling(handed) => match &front.sfu {
                Some(sfu) => {
                    glommio::spawn_local(serve_handed(sfu.clone(), *handed)).detach();
                }
                // Every shard builds the route from the same config, so this cannot
                // happen; dropping the socket is the safe answer if it does.
                None => drop(handed),
            },
            ShardMsg::Certs(set) => match tls::server_config(set, shared.ticketer.clone()) {
                Ok(c) => {
                    *front.tls.borrow_mut() = c;
                    front.metrics.inc(Metric::CertReloads);
                }
                Err(e) => {
                    tracing::error!(error = %e, "new certificates rejected; keeping the old ones")
                }
            },
        }
    }
}

/// Shard 0 re-reads the PEM files on SIGHUP and hands the result to every shard.
async fn reload_on_hup(
    hup: flume::Receiver<()>,
    bus: shards::bus::Bus<ShardMsg>,
    shared: Arc<Shared>,
) {
    while hup.recv_async().await.is_ok() {
        if shared.cfg.front.certs.is_empty() {
            tracing::info!("SIGHUP: no certificate files configured; nothing to reload");
            continue;
        }
        // PEM files are small; reading them on the shard for a rare signal is fine.
        match load_certs(&shared.cfg) {
            Ok((set, _)) => {
                let set = Arc::new(set);
                let delivered = (0..bus.shards())
                    .filter(|&i| bus.send_to(i, ShardMsg::Certs(set.clone())).is_ok())
                    .count();
                tracing::info!(delivered, "SIGHUP: certificates reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: certificates not reloaded; keeping the old ones")
            }
        }
        glommio::timer::sleep(Duration::from_millis(100)).await;
    }
}

/// Shard 0 evaluates the tunnel SNI pick at start and daily at 04:00 UTC plus a
/// random delay, and tells every shard when it changes.
async fn rotate_sni(bus: shards::bus::Bus<ShardMsg>, shared: Arc<Shared>) {
    use crate::front::probe::{random_nonce, unix_now};
    use crate::tunnel::sni::{next_evaluation, Rotation};
    let mut rotation = Rotation::new(
        shared.cfg.node.id.clone(),
        shared.cfg.tunnel.sni_pool.clone(),
    );
    loop {
        let now = unix_now();
        if let Some(name) = rotation.evaluate(now) {
            let name: Arc<str> = Arc::from(name);
            let delivered = (0..bus.shards())
                .filter(|&i| bus.send_to(i, ShardMsg::Sni(name.clone())).is_ok())
                .count();
            // The name itself is the node's public disguise, but logs carry no more than needed.
            tracing::info!(delivered, "tunnel SNI pick applied");
        }
        let n = random_nonce();
        let jitter = u64::from_le_bytes([n[0], n[1], n[2], n[3], n[4], n[5], n[6], n[7]]);
        let wait = next_evaluation(now, jitter).saturating_sub(now);
        glommio::timer::sleep(Duration::from_secs(wait.max(1))).await;
    }
}
