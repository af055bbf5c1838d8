//! Optional OTLP export of traces (`--otlp-endpoint`, or `OTEL_EXPORTER_OTLP_ENDPOINT`):
//! the spans of `hearth_core::trace` become OpenTelemetry spans (tracing-opentelemetry),
//! batched and sent as HTTP/protobuf to `<endpoint>/v1/traces`. Off by default: without
//! an endpoint nothing here runs and the binary makes no network call of its own.
//!
//! The W3C trace context crosses what a span cannot ([`W3c`], installed as the core's
//! `trace::Propagation`): a command's `traceparent` is stored with the job its event
//! asks for, so the relay, the embedded executor and a Temporal workflow's activities
//! (through the workflow's input) continue the command's trace, across processes.
//!
//! The exporter sends with the reqwest client the binary already has (no second HTTP
//! stack). The SDK's batch processor exports from a thread of its own, outside tokio,
//! so each request is spawned onto the runtime that was current at [`init`].

use anyhow::Context as _;
use async_trait::async_trait;
use bytes::Bytes;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::collections::HashMap;
use std::time::Duration;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// How long one export may take before it is given up (the batch is dropped).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The running export: flush it with [`Otel::shutdown`] before the process exits.
#[derive(Debug)]
pub struct Otel {
    provider: SdkTracerProvider,
}

impl Otel {
    /// Exports what is still batched, then stops. Waits at most a few seconds.
    pub async fn shutdown(self) {
        let provider = self.provider;
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = flushed {
            eprintln!("warning: traces not all exported at exit: {e}");
        }
    }
}

/// Builds the exporter for `endpoint` (the collector's base URL, e.g.
/// `http://localhost:4318`) and the tracing layer that feeds it; installs the W3C
/// propagation. Must be called within a tokio runtime.
pub fn init<S>(
    endpoint: &str,
    service_name: String,
) -> anyhow::Result<(Otel, impl tracing_subscriber::Layer<S>)>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let url = traces_url(endpoint)?;
    let client = Client {
        http: reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .build()
            .context("building the OTLP HTTP client")?,
        runtime: tokio::runtime::Handle::try_current()
            .context("the OTLP exporter needs a tokio runtime")?,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_endpoint(url)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .context("building the OTLP span exporter")?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service_name)
                .build(),
        )
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("hearth"));
    hearth_core::trace::install_propagation(Box::new(W3c));
    Ok((Otel { provider }, layer))
}

/// `<endpoint>/v1/traces`, as the OTLP specification builds a signal's URL from
/// `OTEL_EXPORTER_OTLP_ENDPOINT`.
pub fn traces_url(endpoint: &str) -> anyhow::Result<String> {
    let url = reqwest::Url::parse(endpoint)
        .with_context(|| format!("--otlp-endpoint {endpoint:?} is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        anyhow::bail!("--otlp-endpoint {endpoint:?}: expected an http:// or https:// URL");
    }
    Ok(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
}

/// The exporter's HTTP client: reqwest on the binary's tokio runtime.
#[derive(Debug)]
struct Client {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait]
impl HttpClient for Client {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let mut builder = self
            .http
            .request(parts.method, parts.uri.to_string())
            .body(body);
        for (name, value) in &parts.headers {
            builder = builder.header(name, value);
        }
        let sent = self.runtime.spawn(async move {
            let response = builder.send().await?;
            let status = response.status();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        });
        let (status, body) = sent.await??;
        let mut response = Response::new(body);
        *response.status_mut() = status;
        Ok(response)
    }
}

/// W3C trace context over tracing-opentelemetry's spans.
#[derive(Debug)]
struct W3c;

const TRACEPARENT: &str = "traceparent";

impl hearth_core::trace::Propagation for W3c {
    fn traceparent(&self, span: &tracing::Span) -> Option<String> {
        let cx = span.context();
        if !cx.span().span_context().is_valid() {
            return None;
        }
        let mut carrier = HashMap::new();
        TraceContextPropagator::new().inject_context(&cx, &mut carrier);
        carrier.remove(TRACEPARENT)
    }

    fn continue_from(&self, span: &tracing::Span, traceparent: &str) {
        let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
        let cx = TraceContextPropagator::new().extract(&carrier);
        if cx.span().span_context().is_valid() {
            let _ = span.set_parent(cx);
        }
    }

    fn start_trace(&self, span: &tracing::Span) {
        let opened_in = tracing::Span::current()
            .context()
            .span()
            .span_context()
            .clone();
        let _ = span.set_parent(opentelemetry::Context::new());
        if opened_in.is_valid() {
            span.add_link(opened_in);
        }
    }
}
