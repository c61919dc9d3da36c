package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"zenmux/ledger"
)

// A flood of requests with random bad keys through a follower costs the
// leader at most one round trip a second (refreshEvery), not one a
// request: each Refresh is one read barrier to the leader, and the test
// counts them. A key the refresh makes known is still admitted.
func TestUnknownKeyFloodRefreshesOnceASecond(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	var refreshes atomic.Int64
	_, key, _ := g.account("pro")
	s, err := New(Options{
		NodeID: "follower", Ledger: func() *ledger.Ledger { return g.L }, Now: g.now.Load, Charges: g.charges, AckQuorum: true,
		Providers: map[string]Provider{"echo": &Echo{}},
		Refresh:   func() error { refreshes.Add(1); return nil },
		PaygRPM:   600, PaygBurst: 600, CountTokensRPM: 100, CountTokensBurst: 20, Ready: func() bool { return true }, Log: zerolog.New(io.Discard),
	})
	if err != nil {
		t.Fatal(err)
	}
	call := func(secret string) int {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetRequestURI("/v1/chat/completions")
		ctx.Request.Header.Set("Authorization", "Bearer "+secret)
		ctx.Request.SetBodyString(`{"model":"zenmux/echo","messages":[{"role":"user","content":"hi"}]}`)
		s.Handler(&ctx)
		return ctx.Response.StatusCode()
	}
	const flood, workers = 50_000, 8
	start := time.Now()
	var wg sync.WaitGroup
	var not401 atomic.Int64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := make([]byte, 32)
			for i := 0; i < flood/workers; i++ {
				_, _ = rand.Read(b)
				if call(ledger.PrefixSubscription+hex.EncodeToString(b)) != 401 {
					not401.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if n := not401.Load(); n != 0 {
		t.Fatalf("%d bad keys were not refused with 401", n)
	}
	// One refresh a second of the flood, plus the first.
	limit := int64(elapsed/refreshEvery) + 1
	if got := refreshes.Load(); got < 1 || got > limit {
		t.Fatalf("%d bad keys in %s made %d refreshes (leader round trips), want 1..%d", flood, elapsed.Round(time.Millisecond), got, limit)
	}
	t.Logf("%d bad keys in %s: %d leader round trips", flood, elapsed.Round(time.Millisecond), refreshes.Load())
	if status := call(key); status != 200 {
		t.Fatalf("a known key after the flood: %d", status)
	}
}
