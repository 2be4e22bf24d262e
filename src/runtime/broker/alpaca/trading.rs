//! The Trading API v2 client: account, orders (by id and by `client_order_id`), positions,
//! clock and cancellation.

use super::credentials::Credentials;
use super::error::BrokerError;
use super::http::{Http, Method, RetryPolicy};
use super::model::{Account, CancelResult, Clock, Order, OrderRequest, Position};

/// A Trading API client bound to one base URL (paper, live, or a mock server in tests).
#[derive(Clone)]
pub struct TradingClient {
    http: Http,
}

impl TradingClient {
    /// A client for `base_url` (`crate::runtime::broker::live_gate::trading_url` picks it).
    ///
    /// # Errors
    /// [`BrokerError::Transport`] when the HTTP client cannot be built.
    pub fn new(base_url: &str, creds: Credentials, policy: RetryPolicy) -> Result<Self, BrokerError> {
        Ok(TradingClient { http: Http::new(base_url, creds, policy)? })
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        self.http.base()
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, BrokerError> {
        let r = self.http.send(Method::Get, path, query, None).await?;
        self.http.parse(Method::Get, path, &r.body)
    }

    /// `GET /v2/account`.
    ///
    /// # Errors
    /// Any [`BrokerError`]; 401/403 when the keys are wrong.
    pub async fn account(&self) -> Result<Account, BrokerError> {
        self.get("/v2/account", &[]).await
    }

    /// `GET /v2/clock`.
    ///
    /// # Errors
    /// Any [`BrokerError`].
    pub async fn clock(&self) -> Result<Clock, BrokerError> {
        self.get("/v2/clock", &[]).await
    }

    /// `POST /v2/orders`. Never retried on a timeout, a connection failure or a 5xx (a 429 is
    /// retried: it was refused): when [`BrokerError::outcome_unknown`], look the order up with
    /// [`TradingClient::order_by_client_order_id`] before submitting again.
    ///
    /// # Errors
    /// [`BrokerError::Rejected`] for 403 (buying power, shorting) and 422 (invalid, duplicate
    /// `client_order_id`); the others as documented on [`BrokerError`].
    pub async fn submit_order(&self, order: &OrderRequest) -> Result<Order, BrokerError> {
        let body = serde_json::to_value(order).map_err(|e| BrokerError::Malformed {
            method: "POST",
            path: "/v2/orders".into(),
            detail: e.to_string(),
        })?;
        let r = self.http.send(Method::Post, "/v2/orders", &[], Some(&body)).await?;
        self.http.parse(Method::Post, "/v2/orders", &r.body)
    }

    /// `GET /v2/orders:by_client_order_id`: the order with our id, or `None` when the broker
    /// has none (404).
    ///
    /// # Errors
    /// Any [`BrokerError`] but a 404.
    pub async fn order_by_client_order_id(&self, client_order_id: &str) -> Result<Option<Order>, BrokerError> {
        match self.get("/v2/orders:by_client_order_id", &[("client_order_id", client_order_id.to_string())]).await {
            Ok(o) => Ok(Some(o)),
            Err(BrokerError::Rejected { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /v2/orders/{id}`.
    ///
    /// # Errors
    /// Any [`BrokerError`]; 404 for an unknown id, 422 (`order_id is missing`) for a malformed one.
    pub async fn order(&self, id: &str) -> Result<Order, BrokerError> {
        self.get(&format!("/v2/orders/{id}"), &[]).await
    }

    /// `GET /v2/orders?status=...&limit=500&direction=asc&nested=true`: `open`, `closed` or
    /// `all` orders, optionally only those submitted after `after` (RFC 3339). With `nested`,
    /// the legs of an OCO or bracket order come inside their parent's `legs`.
    ///
    /// # Errors
    /// Any [`BrokerError`].
    pub async fn orders(&self, status: &str, after: Option<&str>) -> Result<Vec<Order>, BrokerError> {
        let mut q = vec![
            ("status", status.to_string()),
            ("limit", "500".into()),
            ("direction", "asc".into()),
            ("nested", "true".into()),
        ];
        if let Some(a) = after {
            q.push(("after", a.to_string()));
        }
        self.get("/v2/orders", &q).await
    }

    /// `GET /v2/positions`.
    ///
    /// # Errors
    /// Any [`BrokerError`].
    pub async fn positions(&self) -> Result<Vec<Position>, BrokerError> {
        self.get("/v2/positions", &[]).await
    }

    /// `DELETE /v2/orders/{id}` (204 on success).
    ///
    /// # Errors
    /// [`BrokerError::Rejected`] with 422 when the order cannot be cancelled (filled already)
    /// and 404 when it is unknown.
    pub async fn cancel_order(&self, id: &str) -> Result<(), BrokerError> {
        self.http.send(Method::Delete, &format!("/v2/orders/{id}"), &[], None).await.map(|_| ())
    }

    /// `DELETE /v2/orders`: cancels every open order; one result per order (207 Multi-Status).
    ///
    /// # Errors
    /// Any [`BrokerError`].
    pub async fn cancel_all_orders(&self) -> Result<Vec<CancelResult>, BrokerError> {
        let r = self.http.send(Method::Delete, "/v2/orders", &[], None).await?;
        if r.body.trim().is_empty() {
            return Ok(Vec::new());
        }
        self.http.parse(Method::Delete, "/v2/orders", &r.body)
    }
}
