//! `credbroker.v1.CredentialAdmin`: what operators (or an onboarding service) call. Never
//! returns a secret.

use super::convert::{encode_page_token, list_query};
use super::pb::{self, credential_admin_server::CredentialAdmin};
use super::status::{invalid, to_status};
use crate::broker::{Broker, RewrapRequest};
use crate::domain::{CredentialId, SecretMaterial};
use std::sync::Arc;
use tonic::{Request, Response, Status};
use tracing::Span;

pub struct AdminService {
    broker: Arc<Broker>,
}

impl AdminService {
    pub fn new(broker: Arc<Broker>) -> Self {
        Self { broker }
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
        let (id, material): (CredentialId, SecretMaterial) = request.into_inner().try_into().map_err(invalid)?;
        record_id(&id);
        Span::current().record("kind", material.kind());
        let view = self.broker.put_credential(id, material).await.map_err(to_status)?;
        tracing::info!(version = view.version, "credential stored");
        Ok(Response::new(view.into()))
    }

    #[tracing::instrument(name = "credbroker.v1.CredentialAdmin/GetCredentialStatus", skip_all, fields(otel.kind = "server", rpc.system = "grpc", provider, subject))]
    async fn get_credential_status(
        &self,
        request: Request<pb::CredentialRef>,
    ) -> Result<Response<pb::CredentialStatus>, Status> {
        let id = CredentialId::try_from(request.into_inner()).map_err(invalid)?;
        record_id(&id);
        let view = self.broker.credential_status(id).await.map_err(to_status)?;
        Ok(Response::new(view.into()))
    }

    #[tracing::instrument(name = "credbroker.v1.CredentialAdmin/ListCredentials", skip_all, fields(otel.kind = "server", rpc.system = "grpc", provider))]
    async fn list_credentials(
        &self,
        request: Request<pb::ListCredentialsRequest>,
    ) -> Result<Response<pb::ListCredentialsResponse>, Status> {
        let (provider, after, size) = list_query(request.get_ref()).map_err(invalid)?;
        Span::current().record("provider", provider.as_str());
        let page = self.broker.list_credentials(&provider, after.as_ref(), size).await.map_err(to_status)?;
        Ok(Response::new(pb::ListCredentialsResponse {
            credentials: page.credentials.into_iter().map(Into::into).collect(),
            next_page_token: page.next.as_ref().map(encode_page_token).unwrap_or_default(),
        }))
    }

    #[tracing::instrument(name = "credbroker.v1.CredentialAdmin/DeleteCredential", skip_all, fields(otel.kind = "server", rpc.system = "grpc", provider, subject))]
    async fn delete_credential(
        &self,
        request: Request<pb::CredentialRef>,
    ) -> Result<Response<pb::DeleteCredentialResponse>, Status> {
        let id = CredentialId::try_from(request.into_inner()).map_err(invalid)?;
        record_id(&id);
        self.broker.delete_credential(id).await.map_err(to_status)?;
        tracing::info!("credential deleted");
        Ok(Response::new(pb::DeleteCredentialResponse {}))
    }

    #[tracing::instrument(name = "credbroker.v1.CredentialAdmin/Rewrap", skip_all, fields(otel.kind = "server", rpc.system = "grpc", provider))]
    async fn rewrap(&self, request: Request<pb::RewrapRequest>) -> Result<Response<pb::RewrapResponse>, Status> {
        let request = RewrapRequest::try_from(request.into_inner()).map_err(invalid)?;
        if let Some(provider) = &request.provider {
            Span::current().record("provider", provider.as_str());
        }
        let report = self.broker.rewrap(request).await.map_err(to_status)?;
        Ok(Response::new(report.into()))
    }
}
