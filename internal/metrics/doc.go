// Package metrics holds zenmuxd's Prometheus series for traffic, latency,
// money, upstream errors, refusals and Raft, on
// github.com/prometheus/client_golang (chosen by measured hot-path cost:
// bench/README.md, "Metrics client").
package metrics
