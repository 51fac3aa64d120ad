//! `credbroker.v1.CredentialBroker`: what services call.

use super::convert::AuthorizationQuery;
use super::pb::{self, credential_broker_server::CredentialBroker};
use super::proxy_rpc;
use super::status::{invalid, to_status};
use crate::broker::Broker;
use crate::domain::{InvalidField, ProviderName, Subject};
use crate::proxy::{InFlight, Proxy, ProxySettings};
use crate::security::{Gate, Rpc};
use std::sync::Arc;
use tonic::{Request, Response, Status, Streaming};
use tracing::Span;

pub struct BrokerService {
    broker: Arc<Broker>,
    proxy: Proxy,
    gate: Arc<Gate>,
}

impl BrokerService {
    /// With the default proxy limits (until `[proxy]` settings are wired in).
    pub fn new(broker: Arc<Broker>) -> Self {
        Self::with_proxy(broker, ProxySettings::default())
    }

    pub fn with_proxy(broker: Arc<Broker>, proxy: ProxySettings) -> Self {
        Self {
            proxy: Proxy::new(broker.clone(), proxy),
            broker,
            gate: Arc::new(Gate::open(super::status::security_code)),
        }
    }

    /// Authenticates, authorizes and audits every call through `gate`.
    pub fn with_gate(mut self, gate: Arc<Gate>) -> Self {
        self.gate = gate;
        self
    }

    /// The proxy's global budgets, for the admission layer in front of this service.
    pub fn in_flight(&self) -> Arc<InFlight> {
        self.proxy.in_flight().clone()
    }
}

#[tonic::async_trait]
impl CredentialBroker for BrokerService {
    #[tracing::instrument(
        name = "credbroker.v1.CredentialBroker/GetAuthorization",
        skip_all,
        fields(otel.kind = "server", rpc.system = "grpc", provider, subject, token_fingerprint)
    )]
    async fn get_authorization(
        &self,
        request: Request<pb::GetAuthorizationRequest>,
    ) -> Result<Response<pb::GetAuthorizationResponse>, Status> {
        let (provider, subject) = (&request.get_ref().provider, &request.get_ref().subject);
        let passed = self.gate.check(&request, Rpc::GetAuthorization, provider, subject)?;
        let served = async {
            let query = AuthorizationQuery::try_from(request.into_inner()).map_err(invalid)?;
            let span = Span::current();
            span.record("provider", query.provider.as_str());
            span.record("subject", query.subject.as_ref().map_or("", |s| s.as_str()));
            self.broker
                .get_authorization(&query.provider, query.subject.as_ref(), query.min_validity)
                .await
                .map_err(to_status)
        }
        .await;
        // With `[audit] fail_closed`, no header leaves unless its event was written.
        self.gate.finish(&passed, served.as_ref().map(|s| Some(s.fingerprint.as_str()))).await?;
        let served = served?;
        Span::current().record("token_fingerprint", served.fingerprint.as_str());
        Ok(Response::new(pb::GetAuthorizationResponse::from(&*served)))
    }

    #[tracing::instrument(
        name = "credbroker.v1.CredentialBroker/ReportRejected",
        skip_all,
        fields(otel.kind = "server", rpc.system = "grpc", provider, subject, token_fingerprint, renewed)
    )]
    async fn report_rejected(
        &self,
        request: Request<pb::ReportRejectedRequest>,
    ) -> Result<Response<pb::ReportRejectedResponse>, Status> {
        let passed =
            self.gate.check(&request, Rpc::ReportRejected, &request.get_ref().provider, &request.get_ref().subject)?;
        let report = request.into_inner();
        let fingerprint = report.token_fingerprint.clone();
        let result = self.report(report).await;
        // The reported fingerprint ties the report to the GetAuthorization that served it.
        self.gate.finish(&passed, result.as_ref().map(|()| Some(fingerprint.as_str()))).await?;
        result.map(|()| Response::new(pb::ReportRejectedResponse {}))
    }

    async fn proxy_call(
        &self,
        request: Request<pb::ProxyCallRequest>,
    ) -> Result<Response<pb::ProxyCallResponse>, Status> {
        proxy_rpc::unary(&self.proxy, &self.gate, request).await
    }

    type ProxyCallStreamStream = proxy_rpc::ResponseStream;

    async fn proxy_call_stream(
        &self,
        request: Request<Streaming<pb::ProxyCallChunk>>,
    ) -> Result<Response<Self::ProxyCallStreamStream>, Status> {
        proxy_rpc::streaming(&self.proxy, &self.gate, request).await
    }

    // The consent flow and credential events: the contract is in broker.proto; the
    // implementation lands in its own modules (docs/connect.md, docs/events.md).
    async fn start_authorization(
        &self,
        _request: Request<pb::StartAuthorizationRequest>,
    ) -> Result<Response<pb::StartAuthorizationResponse>, Status> {
        Err(Status::unimplemented("StartAuthorization is not implemented yet"))
    }

    async fn get_authorization_session(
        &self,
        _request: Request<pb::GetAuthorizationSessionRequest>,
    ) -> Result<Response<pb::AuthorizationSession>, Status> {
        Err(Status::unimplemented("GetAuthorizationSession is not implemented yet"))
    }

    type WatchCredentialsStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::WatchCredentialsResponse, Status>> + Send>>;

    async fn watch_credentials(
        &self,
        _request: Request<pb::WatchCredentialsRequest>,
    ) -> Result<Response<Self::WatchCredentialsStream>, Status> {
        Err(Status::unimplemented("WatchCredentials is not implemented yet"))
    }
}

impl BrokerService {
    async fn report(&self, report: pb::ReportRejectedRequest) -> Result<(), Status> {
        let provider = ProviderName::parse("provider", &report.provider).map_err(invalid)?;
        let subject = Subject::parse_optional("subject", &report.subject).map_err(invalid)?;
        let fingerprint = report.token_fingerprint.as_str();
        if fingerprint.is_empty() || fingerprint.len() > 64 {
            let problem = "must be the token_fingerprint GetAuthorization returned";
            return Err(invalid(InvalidField::new("token_fingerprint", problem)));
        }
        let span = Span::current();
        span.record("provider", provider.as_str());
        span.record("subject", subject.as_ref().map_or("", |s| s.as_str()));
        span.record("token_fingerprint", fingerprint);
        let renewed = self.broker.report_rejected(&provider, subject.as_ref(), fingerprint).await.map_err(to_status)?;
        span.record("renewed", renewed);
        Ok(())
    }
}
