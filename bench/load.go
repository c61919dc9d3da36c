package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// target is one place the load goes: the stub itself, or a proxy in front
// of it.
type target struct {
	Name   string
	Addr   string // host:port
	url    string
	auth   string
	model  string
	proc   *proc // nil for direct
	client *fasthttp.HostClient
	unary  []byte // request bodies
	stream []byte
	failed error // set once the target cannot be measured any more
}

func newTarget(name, addr, auth, model string, p *proc, maxConns int) *target {
	return &target{
		Name: name, Addr: addr, url: "http://" + addr + "/v1/chat/completions", auth: "Bearer " + auth, model: model, proc: p,
		client: &fasthttp.HostClient{
			Addr:                     addr,
			Name:                     "zenmux-bench",
			MaxConns:                 maxConns,
			MaxIdleConnDuration:      2 * time.Minute,
			ReadBufferSize:           16 << 10,
			NoDefaultUserAgentHeader: true,
			DisablePathNormalizing:   true,
		},
		unary: []byte(`{"model":"` + model + `","messages":[{"role":"user","content":"Say hello to the benchmark."}],"max_tokens":16}`),
		stream: []byte(`{"model":"` + model + `","messages":[{"role":"user","content":"Say hello to the benchmark."}],"max_tokens":16,` +
			`"stream":true,"stream_options":{"include_usage":true}}`),
	}
}

// result of one request. Times are offsets from the run's base instant
// (monotonic clock).
type result struct {
	status    int
	err       error
	firstByte time.Duration // streams: first body byte
	end       time.Duration
}

var (
	errBadBody   = errors.New("answer body has no usage object")
	errNoDone    = errors.New("stream ended without data: [DONE]")
	errEmptyBody = errors.New("empty answer body")
	doneMarker   = []byte("data: [DONE]")
	usageMarker  = []byte(`"usage"`)
)

// do sends one request: streamed or not.
func (t *target) do(base time.Time, timeout time.Duration, stream bool) result {
	if stream {
		return t.doStream(base, timeout)
	}
	return t.doUnary(base, timeout)
}

// doUnary sends one non-streamed completion.
func (t *target) doUnary(base time.Time, timeout time.Duration) result {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(t.url)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.Header.Set(fasthttp.HeaderAuthorization, t.auth)
	req.SetBodyRaw(t.unary)
	req.SetTimeout(timeout)
	err := t.client.Do(req, resp)
	r := result{end: time.Since(base)}
	if err != nil {
		r.err = err
		return r
	}
	r.status = resp.StatusCode()
	if r.status == fasthttp.StatusOK && !bytes.Contains(resp.Body(), usageMarker) {
		r.err = errBadBody
	}
	return r
}

// doStream sends one streamed completion and reads it to the end,
// noting when the first body byte arrived.
func (t *target) doStream(base time.Time, timeout time.Duration) result {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(t.url)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.Header.Set(fasthttp.HeaderAuthorization, t.auth)
	req.Header.Set("Accept", "text/event-stream")
	req.SetBodyRaw(t.stream)
	req.SetTimeout(timeout)
	resp.StreamBody = true
	err := t.client.Do(req, resp)
	if err != nil {
		return result{err: err, end: time.Since(base)}
	}
	r := result{status: resp.StatusCode()}
	body := resp.BodyStream()
	if body == nil { // buffered after all (e.g. an error answer with a length)
		b := resp.Body()
		r.firstByte, r.end = time.Since(base), time.Since(base)
		if r.status == fasthttp.StatusOK && !bytes.Contains(b, doneMarker) {
			r.err = errNoDone
		}
		return r
	}
	var buf [16 << 10]byte
	var tail []byte // the last bytes seen, to find [DONE]
	total := 0
	deadline := time.Now().Add(timeout)
	for i := 0; i < 1_000_000 && time.Now().Before(deadline); i++ { // bounded: an answer is ~22 events
		n, rerr := body.Read(buf[:])
		if n > 0 {
			if total == 0 {
				r.firstByte = time.Since(base)
			}
			total += n
			tail = append(tail, buf[:n]...)
			if len(tail) > 256 {
				tail = append(tail[:0], tail[len(tail)-64:]...)
			}
		}
		if rerr != nil {
			if rerr != io.EOF {
				r.err = rerr
			}
			break
		}
	}
	_ = resp.CloseBodyStream()
	r.end = time.Since(base)
	if r.err == nil && r.status == fasthttp.StatusOK {
		switch {
		case total == 0:
			r.err = errEmptyBody
		case !bytes.Contains(tail, doneMarker):
			r.err = errNoDone
		}
	}
	return r
}

// tally collects one worker's outcomes; merged after a run.
type tally struct {
	lat, ttfb, lag []time.Duration
	ok, non200     int64
	errs           int64
	statuses       map[int]int64
	errSamples     []string
}

const maxSamples = 4_000_000 // bound on recorded latencies per run

func (t *tally) add(r result, sched time.Duration, stream bool, samples *atomic.Int64) {
	if t.statuses == nil {
		t.statuses = map[int]int64{}
	}
	if r.err != nil && r.status == 0 {
		t.errs++
		if len(t.errSamples) < 3 {
			t.errSamples = append(t.errSamples, r.err.Error())
		}
		return
	}
	t.statuses[r.status]++
	if r.status != fasthttp.StatusOK {
		t.non200++
		return
	}
	if r.err != nil { // 200 with a broken body
		t.errs++
		if len(t.errSamples) < 3 {
			t.errSamples = append(t.errSamples, r.err.Error())
		}
		return
	}
	t.ok++
	if samples.Add(1) > maxSamples {
		return
	}
	t.lat = append(t.lat, r.end-sched)
	if stream {
		t.ttfb = append(t.ttfb, r.firstByte-sched)
	}
}

// Dist is a latency distribution in microseconds.
type Dist struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean_us"`
	P50  float64 `json:"p50_us"`
	P90  float64 `json:"p90_us"`
	P99  float64 `json:"p99_us"`
	P999 float64 `json:"p999_us"`
	Max  float64 `json:"max_us"`
}

func dist(d []time.Duration) *Dist {
	if len(d) == 0 {
		return nil
	}
	slices.Sort(d)
	q := func(p float64) float64 {
		i := int(p*float64(len(d))+0.5) - 1
		i = max(0, min(i, len(d)-1))
		return us(d[i])
	}
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return &Dist{N: len(d), Mean: us(sum / time.Duration(len(d))), P50: q(0.50), P90: q(0.90), P99: q(0.99), P999: q(0.999), Max: us(d[len(d)-1])}
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// runStats is what one run (warm-up or measurement) produced.
type runStats struct {
	Window     time.Duration // first send to last completion
	Sent       int64
	OK         int64
	Non200     int64
	Errors     int64
	Statuses   map[int]int64
	ErrSamples []string
	Lat, TTFB  *Dist
	Lag        *Dist // open loop: actual dispatch time minus schedule
}

func merge(ts []*tally, window time.Duration, sent int64, stream bool) *runStats {
	s := &runStats{Window: window, Sent: sent, Statuses: map[int]int64{}}
	var lat, ttfb, lag []time.Duration
	for _, t := range ts {
		s.OK += t.ok
		s.Non200 += t.non200
		s.Errors += t.errs
		for k, v := range t.statuses {
			s.Statuses[k] += v
		}
		for _, e := range t.errSamples {
			if len(s.ErrSamples) < 5 {
				s.ErrSamples = append(s.ErrSamples, e)
			}
		}
		lat = append(lat, t.lat...)
		ttfb = append(ttfb, t.ttfb...)
		lag = append(lag, t.lag...)
	}
	s.Lat = dist(lat)
	if stream {
		s.TTFB = dist(ttfb)
	}
	s.Lag = dist(lag)
	return s
}

// closedLoop runs conns workers, each sending its next request (streamed
// or not) as soon as the previous one is answered, for d.
func closedLoop(ctx context.Context, t *target, conns int, d, timeout time.Duration, stream bool) *runStats {
	base := time.Now()
	var wg sync.WaitGroup
	var samples atomic.Int64
	ts := make([]*tally, conns)
	sent := make([]int64, conns)
	for w := range conns {
		ts[w] = &tally{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Bounded by time (end) and, defensively, by count.
			for i := 0; i < 50_000_000 && ctx.Err() == nil; i++ {
				start := time.Since(base)
				if start >= d {
					return
				}
				sent[w]++
				ts[w].add(t.do(base, timeout, stream), start, stream, &samples)
			}
		}()
	}
	wg.Wait()
	var n int64
	for _, x := range sent {
		n += x
	}
	return merge(ts, time.Since(base), n, stream)
}

// openLoop sends rate requests a second for d on a fixed schedule, whatever
// the answers do: a request's latency runs from its scheduled send time, so
// a stalled target is charged for every request it delayed (no
// coordinated omission). workers bounds the requests in flight; a request
// waiting for a free worker is still timed from its schedule.
func openLoop(ctx context.Context, t *target, rate float64, d time.Duration, workers int, stream bool, timeout time.Duration) *runStats {
	n := int(rate * d.Seconds())
	if n < 1 {
		n = 1
	}
	jobs := make(chan time.Duration, n)
	ts := make([]*tally, workers)
	var wg sync.WaitGroup
	var samples atomic.Int64
	base := time.Now().Add(2 * time.Millisecond)
	for w := range workers {
		ts[w] = &tally{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sched := range jobs {
				if ctx.Err() != nil {
					continue // drain without sending
				}
				ts[w].add(t.do(base, timeout, stream), sched, stream, &samples)
			}
		}()
	}
	lag := dispatch(ctx, base, n, rate, jobs)
	close(jobs)
	// Every request carries its own timeout, so this wait is bounded.
	wg.Wait()
	s := merge(ts, time.Since(base), int64(len(lag)), stream)
	s.Lag = dist(lag)
	return s
}

// dispatch puts n scheduled offsets on jobs at their times. Go's timers
// overshoot by up to ~1 ms on an idle machine, so it sleeps with
// nanosleep(2) on a locked thread with a 1 µs timer slack (~30 µs
// overshoot). It returns each job's dispatch lag.
func dispatch(ctx context.Context, base time.Time, n int, rate float64, jobs chan<- time.Duration) []time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	setTimerSlack(1000)
	defer setTimerSlack(50_000) // Linux's default
	lags := make([]time.Duration, 0, n)
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		sched := time.Duration(float64(i) * float64(time.Second) / rate)
		for k := 0; k < 10_000; k++ { // EINTR may cut a sleep short
			left := sched - time.Since(base)
			if left <= 0 {
				break
			}
			ts := syscall.NsecToTimespec(int64(left))
			_ = syscall.Nanosleep(&ts, nil)
		}
		lags = append(lags, time.Since(base)-sched)
		jobs <- sched // never blocks: the channel holds n
	}
	return lags
}

func setTimerSlack(ns uintptr) {
	const prSetTimerslack = 29
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerslack, ns, 0)
}

func statusString(m map[int]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[strconv.Itoa(k)] = v
	}
	return out
}

// sanity checks a target answers one unary and one streamed request
// correctly, quoting the answer when it does not.
func sanity(t *target, timeout time.Duration) error {
	for _, body := range [][]byte{t.unary, t.stream} {
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		req.SetRequestURI(t.url)
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.SetContentType("application/json")
		req.Header.Set(fasthttp.HeaderAuthorization, t.auth)
		req.SetBodyRaw(body)
		req.SetTimeout(timeout)
		err := t.client.Do(req, resp)
		status, answer := resp.StatusCode(), string(resp.Body())
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
		kind := "unary"
		if bytes.Equal(body, t.stream) {
			kind = "streamed"
		}
		switch {
		case err != nil:
			return fmt.Errorf("%s: %s request: %v", t.Name, kind, err)
		case status != fasthttp.StatusOK:
			return fmt.Errorf("%s: %s request: status %d: %.300s", t.Name, kind, status, answer)
		case kind == "unary" && !strings.Contains(answer, `"usage"`):
			return fmt.Errorf("%s: unary answer has no usage: %.300s", t.Name, answer)
		case kind == "streamed" && !strings.Contains(answer, "data: [DONE]"):
			return fmt.Errorf("%s: streamed answer has no [DONE]: %.300s", t.Name, answer)
		}
	}
	return nil
}
