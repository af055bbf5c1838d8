//! Whether the Temporal frontend answers, for a readiness check (`/readyz`).

use crate::error::TemporalError;
use crate::worker::{TemporalConfig, connect};
use temporalio_client::Client;
use temporalio_client::tonic;
use temporalio_common::protos::grpc::health::v1::HealthCheckRequest;
use temporalio_common::protos::grpc::health::v1::health_check_response::ServingStatus;

/// The service whose health the frontend reports (what `temporal operator cluster
/// health` asks).
const WORKFLOW_SERVICE: &str = "temporal.api.workflowservice.v1.WorkflowService";

/// Asks the frontend's gRPC health service whether the workflow service is serving,
/// through a client it connects on first use (and again after a failure).
#[derive(Debug)]
pub struct Reachability {
    config: TemporalConfig,
    client: tokio::sync::Mutex<Option<Client>>,
}

impl Reachability {
    /// Checks the frontend `config` names; `client`, when given, is used until it fails.
    pub fn new(config: TemporalConfig, client: Option<Client>) -> Self {
        Self {
            config,
            client: tokio::sync::Mutex::new(client),
        }
    }

    /// Ok when the frontend answers that the workflow service is serving.
    pub async fn check(&self) -> Result<(), TemporalError> {
        let mut slot = self.client.lock().await;
        let client = match slot.as_ref() {
            Some(client) => client.clone(),
            None => {
                let client = connect(&self.config).await?;
                *slot = Some(client.clone());
                client
            }
        };
        let request = HealthCheckRequest {
            service: WORKFLOW_SERVICE.to_owned(),
        };
        let answer = client
            .connection()
            .health_service()
            .check(tonic::Request::new(request))
            .await;
        match answer {
            Ok(response) => {
                let status = response.into_inner().status;
                if status == ServingStatus::Serving as i32 {
                    Ok(())
                } else {
                    Err(TemporalError::Client(format!(
                        "{} is not serving (health status {status})",
                        self.config.address
                    )))
                }
            }
            Err(status) => {
                *slot = None;
                Err(TemporalError::Connect {
                    address: self.config.address.clone(),
                    message: status.to_string(),
                })
            }
        }
    }
}
