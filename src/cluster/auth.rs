//! The worker's guard: a tower layer ([`tonic::service::InterceptorLayer`]) in front of
//! every gRPC service of `blossom worker` that refuses a call not presenting the
//! cluster's token (`authorization: Bearer $BLOSSOM_CLUSTER_TOKEN`) with
//! `UNAUTHENTICATED`, before any plan is decoded.

use tonic::service::{Interceptor, InterceptorLayer};
use tonic::{Request, Status};

use crate::cluster_token::{AUTHORIZATION, ClusterToken};

/// Accepts a call only with the cluster's token.
#[derive(Debug, Clone)]
pub struct TokenCheck {
    token: ClusterToken,
}

impl TokenCheck {
    /// A check against `token`.
    pub fn new(token: ClusterToken) -> Self {
        Self { token }
    }

    /// As a tower layer for `tonic::transport::Server::layer`.
    pub fn layer(self) -> InterceptorLayer<Self> {
        InterceptorLayer::new(self)
    }
}

impl Interceptor for TokenCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let presented = request
            .metadata()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        if self.token.accepts(presented) {
            Ok(request)
        } else {
            // Says nothing of what was expected or presented.
            Err(Status::unauthenticated(
                "this blossom worker accepts plans only from a coordinator presenting the \
                 cluster's token (BLOSSOM_CLUSTER_TOKEN)",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_without_the_token_is_refused() {
        let token = ClusterToken::new("cluster-secret").unwrap();
        let mut check = TokenCheck::new(token.clone());
        assert_eq!(
            check.call(Request::new(())).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        let mut wrong = Request::new(());
        wrong
            .metadata_mut()
            .insert(AUTHORIZATION, "Bearer other-secret".parse().unwrap());
        let refused = check.call(wrong).unwrap_err();
        assert!(!refused.message().contains("cluster-secret"));
        let mut right = Request::new(());
        right
            .metadata_mut()
            .insert(AUTHORIZATION, token.header_value().parse().unwrap());
        assert!(check.call(right).is_ok());
    }
}
