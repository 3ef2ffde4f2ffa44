// Package deploy holds no code. Its tests validate what is beside it: every
// Kustomize overlay renders offline, every rendered object decodes strictly
// into its Kubernetes (or Prometheus Operator) type, every example's
// configuration is accepted by authsidecar itself and starts from its
// provider's preset, the Secrets the examples describe hold what the sidecar
// reads, the alert rules pass Prometheus' rule parser, and the alerts and the
// Grafana dashboard query only metrics that a running authsidecar exports. It
// is a module of its own so that these heavy dependencies stay out of the
// sidecar's binary.
package deploy
