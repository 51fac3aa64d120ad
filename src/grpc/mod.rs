//! The gRPC surface: generated types, the two services, health and reflection.

mod admin_service;
mod broker_service;
pub mod convert;
mod proxy_admission;
mod proxy_convert;
mod proxy_rpc;
pub mod readiness;
mod rewrap_convert;
mod size_limit;
pub mod status;

pub use admin_service::AdminService;
pub use broker_service::BrokerService;
pub use readiness::Readiness;

use crate::broker::Broker;
use crate::proxy::ProxySettings;
use crate::security::Gate;
use std::sync::Arc;
use tonic::service::Routes;

/// Code generated from `proto/credbroker/v1/broker.proto`.
pub mod pb {
    tonic::include_proto!("credbroker.v1");

    /// The encoded descriptor set, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("credbroker_descriptor");
}

/// [`routes_with_proxy`] with the default proxy limits.
pub async fn routes(broker: Arc<Broker>) -> Routes {
    routes_with_proxy(broker, ProxySettings::default()).await
}

/// Every gRPC service credbroker serves, ready for `Server::builder().add_routes(...)`:
/// the broker, the admin API, `grpc.health.v1` and reflection (v1 and v1alpha, so that
/// older grpcurl releases work too). Health reports ready at once (a broker built in a test);
/// the application passes its own [`Readiness`] in the [`Surface`].
pub async fn routes_with_proxy(broker: Arc<Broker>, proxy: ProxySettings) -> Routes {
    let readiness = Readiness::new().await;
    readiness.store_reached().await;
    let surface =
        Surface { gate: Arc::new(Gate::open(status::security_code)), reflection: true, admin: true, readiness };
    routes_with(broker, proxy, surface).await
}

/// What one listener serves, and through which gate.
pub struct Surface {
    pub gate: Arc<Gate>,
    pub reflection: bool,
    /// The admin API here too (`false` when `[admin] listen` serves it apart).
    pub admin: bool,
    /// What the health service reports (readiness per service, `""` liveness).
    pub readiness: Readiness,
}

/// The admin API alone, for the `[admin] listen` listener (with health).
pub async fn admin_routes(broker: Arc<Broker>, gate: Arc<Gate>, readiness: &Readiness) -> Routes {
    Routes::new(readiness.health_service()).add_service(admin_server(broker, gate))
}

fn admin_server(
    broker: Arc<Broker>,
    gate: Arc<Gate>,
) -> pb::credential_admin_server::CredentialAdminServer<AdminService> {
    pb::credential_admin_server::CredentialAdminServer::new(AdminService::new(broker).with_gate(gate))
}

/// The main listener's services, per `surface`.
pub async fn routes_with(broker: Arc<Broker>, proxy: ProxySettings, surface: Surface) -> Routes {
    let max_message = proxy.max_message_size();
    let broker_service = BrokerService::with_proxy(broker.clone(), proxy).with_gate(surface.gate.clone());
    let in_flight = broker_service.in_flight();
    let health_service = surface.readiness.health_service();
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the embedded descriptor set is valid");
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .expect("the embedded descriptor set is valid");
    let routes = Routes::new(health_service)
        // ProxyCall messages are refused past the proxy's limit (tonic's default is 4 MiB), and
        // proxied calls are admitted against the global caps before their request is read.
        .add_service(proxy_admission::ProxyAdmission {
            inner: size_limit::SizeRefusals(
                pb::credential_broker_server::CredentialBrokerServer::new(broker_service)
                    .max_decoding_message_size(max_message),
            ),
            in_flight,
        });
    let routes = if surface.admin { routes.add_service(admin_server(broker, surface.gate)) } else { routes };
    if surface.reflection { routes.add_service(reflection_v1).add_service(reflection_v1alpha) } else { routes }
}
