//! The dashboard's access rule: with a token configured for the cluster
//! (`--token`, `security.token`), every dashboard page and data endpoint
//! needs it, as `?token=...` in the address (what a browser can carry,
//! Server-sent events included) or an `Authorization: Bearer ...` header.
//! The static assets (the page's script and style, no data) are served
//! without it.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::wire::security::constant_time_eq;

/// The cluster's token, if it has one.
#[derive(Clone, Default)]
pub struct DashboardAccess {
    token: Option<Arc<str>>,
}

impl DashboardAccess {
    /// Access guarded by `token` (None: open).
    pub fn new(token: Option<&str>) -> Self {
        DashboardAccess {
            token: token.map(Arc::from),
        }
    }

    /// Whether the dashboard needs a token.
    pub fn needs_token(&self) -> bool {
        self.token.is_some()
    }

    /// None if `req` may see the dashboard, else the 401 answer saying how
    /// to reach it.
    pub fn check(&self, req: &HttpRequest) -> Option<HttpResponse> {
        let expected = self.token.as_deref()?;
        let bearer = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        let offered = bearer.or_else(|| {
            web::Query::<HashMap<String, String>>::from_query(req.query_string())
                .ok()
                .and_then(|q| q.get("token").cloned())
        });
        let ok = offered.is_some_and(|o| constant_time_eq(expected.as_bytes(), o.as_bytes()));
        (!ok).then(|| {
            HttpResponse::build(StatusCode::UNAUTHORIZED)
                .content_type("text/plain; charset=utf-8")
                .body(
                    "this rdask dashboard needs the cluster's token: open /status?token=TOKEN \
                     (the token the scheduler was started with, --token or security.token)\n",
                )
        })
    }
}
