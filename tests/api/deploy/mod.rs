//! deploy/: the runtime image (built from the test binary without a registry), the compose
//! fleet behind nginx, the Kubernetes manifests, the alerting rules and the dashboard.
//! Tools: Docker (image, compose), docker compose or docker-compose, promtool (Debian's
//! prometheus package), nginx (the balancer image); kubectl only where installed.

mod compose;
mod contract;
mod docker;
mod image;
mod k8s;
mod monitoring;
mod scrape;
mod support;
