package metrics

import (
	"strconv"
	"testing"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// The hot-path cost of the two candidate client libraries (bench/README.md,
// "Metrics client"): per proxied request zenmuxd bumps a counter with three
// labels whose values are known only at request time, and records one
// latency observation. Label values rotate through a small set so that the
// lookup is measured, not a single cached handle.

var benchLabels = func() [][3]string {
	out := make([][3]string, 0, 16)
	for i := range 16 {
		out = append(out, [3]string{"chat", strconv.Itoa(200 + i%4), "model-" + strconv.Itoa(i%4)})
	}
	return out
}()

var benchBounds = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

func BenchmarkCounter3LabelsPrometheus(b *testing.B) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bench_requests_total", Help: "bench"}, []string{"surface", "status", "model"})
	reg.MustRegister(c)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		l := &benchLabels[i&15]
		c.WithLabelValues(l[0], l[1], l[2]).Inc()
		i++
	}
}

func BenchmarkCounter3LabelsVictoria(b *testing.B) {
	s := vm.NewSet()
	b.ReportAllocs()
	var buf []byte
	i := 0
	for b.Loop() {
		l := &benchLabels[i&15]
		buf = append(buf[:0], `bench_requests_total{surface="`...)
		buf = append(buf, l[0]...)
		buf = append(buf, `",status="`...)
		buf = append(buf, l[1]...)
		buf = append(buf, `",model="`...)
		buf = append(buf, l[2]...)
		buf = append(buf, `"}`...)
		s.GetOrCreateCounter(string(buf)).Inc()
		i++
	}
}

func BenchmarkHistogramPrometheus(b *testing.B) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bench_seconds", Help: "bench", Buckets: benchBounds})
	reg.MustRegister(h)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		h.Observe(float64(i%1000) / 1000)
		i++
	}
}

func BenchmarkHistogramVictoria(b *testing.B) {
	s := vm.NewSet()
	h := s.NewPrometheusHistogramExt("bench_seconds", benchBounds)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		h.Update(float64(i%1000) / 1000)
		i++
	}
}

func BenchmarkHistogramParallelPrometheus(b *testing.B) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bench_seconds", Help: "bench", Buckets: benchBounds})
	reg.MustRegister(h)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			h.Observe(float64(i%1000) / 1000)
			i++
		}
	})
}

func BenchmarkHistogramParallelVictoria(b *testing.B) {
	s := vm.NewSet()
	h := s.NewPrometheusHistogramExt("bench_seconds", benchBounds)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			h.Update(float64(i%1000) / 1000)
			i++
		}
	})
}

// The cost zenmux_proxy_added_seconds adds per request (bench/README.md,
// "Metrics client (#13)"): Duration as the proxy calls it now, observing
// the duration and the added time through the surface's resolved
// histograms, against what it did before: the duration alone, its label
// looked up on every request.
func BenchmarkDurationAndAdded(b *testing.B) {
	m := New()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.Duration(surfacesBench[i&3], time.Duration(i%1000)*time.Microsecond, time.Duration(i%700)*time.Microsecond)
		i++
	}
}

func BenchmarkDurationBefore(b *testing.B) {
	m := New()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.duration.WithLabelValues(surfacesBench[i&3]).Observe((time.Duration(i%1000) * time.Microsecond).Seconds())
		i++
	}
}

var surfacesBench = [4]string{"chat", "messages", "responses", "embeddings"}

// The per-request counter and the per-batch charge series as the proxy and
// the batcher call them, against the label lookups they replaced
// (bench/README.md, "Metrics client (#13)").
func BenchmarkRequest(b *testing.B) {
	m := New()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		l := &benchLabels[i&15]
		m.Request(l[0], 200+i&3, "subscription", l[2])
		i++
	}
}

func BenchmarkRequestBefore(b *testing.B) {
	m := New()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		l := &benchLabels[i&15]
		var num [8]byte
		m.requests.WithLabelValues(l[0], string(strconv.AppendInt(num[:0], int64(200+i&3), 10)), "subscription", l[2]).Inc()
		i++
	}
}

var benchBatch = func() []Charge {
	out := make([]Charge, 16)
	for i := range out {
		out[i] = Charge{Billing: "subscription", Result: "charged", MicroUSD: 1234, MicroFlows: 5678}
	}
	out[3].Billing, out[9].Result = "payg", "exists"
	return out
}()

func BenchmarkCommitted16(b *testing.B) {
	m := New()
	b.ReportAllocs()
	for b.Loop() {
		m.Committed(time.Millisecond, benchBatch)
	}
}

func BenchmarkCommitted16Before(b *testing.B) {
	m := New()
	b.ReportAllocs()
	for b.Loop() {
		for i := range benchBatch {
			c := &benchBatch[i]
			m.charges.WithLabelValues(c.Result).Inc()
			if c.Result == "charged" {
				m.chargedFlows.WithLabelValues(c.Billing).Add(float64(c.MicroFlows))
				m.chargedUSD.WithLabelValues(c.Billing).Add(float64(c.MicroUSD))
			}
		}
	}
}
