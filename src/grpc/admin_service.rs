//! `credbroker.v1.CredentialAdmin`: what operators (or an onboarding service) call. Never
//! returns a secret.

use super::convert::{encode_page_token, list_query};
use super::pb::{self, credential_admin_server::CredentialAdmin};
use super::status::{invalid, to_status};
use crate::broker::{Broker, RewrapRequest};
use crate::domain::{CredentialId, SecretMaterial};
use crate::security::{Gate, Passed, Rpc};
use std::sync::Arc;
use tonic::{Request, Response, Status};
use tracing::Span;

pub struct AdminService {
    broker: Arc<Broker>,
    gate: Arc<Gate>,
}

impl AdminService {
    pub fn new(broker: Arc<Broker>) -> Self {
        Self { broker, gate: Arc::new(Gate::open(super::status::security_code)) }
    }

    /// Authenticates, authorizes and audits every call through `gate`.
    pub fn with_gate(mut self, gate: Arc<Gate>) -> Self {
        self.gate = gate;
        self
    }

    /// The gate's check for an RPC addressed by a `CredentialRef`.
    fn check_ref(&self, request: &Request<pb::CredentialRef>, rpc: Rpc) -> Result<Passed, Status> {
        let reference = request.get_ref();
        Ok(self.gate.check(request, rpc, &reference.provider, &reference.subject)?)
    }

    /// Audits the outcome of an allowed call and passes it on.
    async fn audited<T>(&self, passed: &Passed, result: Result<T, Status>) -> Result<T, Status> {
        self.gate.finish(passed, result.as_ref().map(|_| None)).await?;
        result
    }
}

fn record_id(id: &CredentialId) {
    let span = Span::current();
    span.record("provider", id.provider.as_str());
    span.record("subject", id.subject.as_str());
}

#[tonic::async_trait]
impl CredentialAdmin for AdminService {
    #[tracing::instrument(name = "credbroker.v1.CredentialAdmin/PutCredential", skip_all, fields(otel.kind = "server", rpc.system = "grpc", provider, subject, kind))]
    async fn put_credential(
        &self,
        request: Request<pb::PutCredentialRequest>,
    ) -> Result<Response<pb::CredentialStatus>, Status> {
        let passed =
            self.gate.check(&request, Rpc::PutCredential, &request.get_ref().provider, &request.get_ref().subject)?;
        let result = async {
            let (id, material): (CredentialId, SecretMaterial) = request.into_inner().try_into().map_err(invalid)?;
            record_id(&id);
            Span::current().record("kind", material.kind());
            let view = self.broker.admin().put_credential(id, material).await.map_err(to_status)?;
            tracing::info!(version = view.version, "credential stored");
            Ok(Response::new(view.into()))
        };
        self.audited(&passed, result.await).await
    }

    #[tracing::instrument(name = "credbroker.v1.CredentialAdmin/GetCredentialStatus", skip_all, fields(otel.kind = "server", rpc.system = "grpc", provider, subject))]
    async fn get_credential_status(
        &self,
        request: Request<pb::CredentialRef>,
    ) -> Result<Response<pb::CredentialStatus>, Status> {
        let passed = self.check_ref(&request, Rpc::GetCredentialStatus)?;
        let result = async {
            let id = CredentialId::try_from(request.into_inner()).map_err(invalid)?;
            record_id(&id);
            let view = self.broker.admin().credential_status(id).await.map_err(to_status)?;
            Ok(Response::new(view.into()))
        };
        self.audited(&passed, result.await).await
    }

    #[tracing::instrument(name = "credbroker.v1.CredentialAdmin/ListCredentials", skip_all, fields(otel.kind = "server", rpc.system = "grpc", provider))]
    async fn list_credentials(
        &self,
        request: Request<pb::ListCredentialsRequest>,
    ) -> Result<Response<pb::ListCredentialsResponse>, Status> {
        let passed = self.gate.check(&request, Rpc::ListCredentials, &request.get_ref().provider, "")?;
        let result = async {
            let (provider, after, size) = list_query(request.get_ref()).map_err(invalid)?;
            Span::current().record("provider", provider.as_str());
            let mut page =
                self.broker.admin().list_credentials(&provider, after.as_ref(), size).await.map_err(to_status)?;
            // Only what the caller's rules cover; paging still follows the whole listing.
            page.credentials.retain(|c| self.gate.may_see(&passed, c.id.subject.as_str()));
            Ok(Response::new(pb::ListCredentialsResponse {
                credentials: page.credentials.into_iter().map(Into::into).collect(),
                next_page_token: page.next.as_ref().map(encode_page_token).unwrap_or_default(),
                resume_token: String::new(),
            }))
        };
        self.audited(&passed, result.await).await
    }

    #[tracing::instrument(name = "credbroker.v1.CredentialAdmin/DeleteCredential", skip_all, fields(otel.kind = "server", rpc.system = "grpc", provider, subject))]
    async fn delete_credential(
        &self,
        request: Request<pb::CredentialRef>,
    ) -> Result<Response<pb::DeleteCredentialResponse>, Status> {
        let passed = self.check_ref(&request, Rpc::DeleteCredential)?;
        let result = async {
            let id = CredentialId::try_from(request.into_inner()).map_err(invalid)?;
            record_id(&id);
            self.broker.admin().delete_credential(id).await.map_err(to_status)?;
            tracing::info!("credential deleted");
            Ok(Response::new(pb::DeleteCredentialResponse {}))
        };
        self.audited(&passed, result.await).await
    }

    #[tracing::instrument(name = "credbroker.v1.CredentialAdmin/Rewrap", skip_all, fields(otel.kind = "server", rpc.system = "grpc", provider))]
    async fn rewrap(&self, request: Request<pb::RewrapRequest>) -> Result<Response<pb::RewrapResponse>, Status> {
        // Rewrap covers every subject of a provider (or every provider): no subject to match.
        let passed = self.gate.check(&request, Rpc::Rewrap, &request.get_ref().provider, "*")?;
        let result = async {
            let request = RewrapRequest::try_from(request.into_inner()).map_err(invalid)?;
            if let Some(provider) = &request.provider {
                Span::current().record("provider", provider.as_str());
            }
            let report = self.broker.admin().rewrap(request).await.map_err(to_status)?;
            Ok(Response::new(report.into()))
        };
        self.audited(&passed, result.await).await
    }

    async fn replay_webhooks(
        &self,
        _request: Request<pb::ReplayWebhooksRequest>,
    ) -> Result<Response<pb::ReplayWebhooksResponse>, Status> {
        Err(Status::unimplemented("ReplayWebhooks is not implemented yet"))
    }
}
