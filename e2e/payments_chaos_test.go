package e2e

// The payments chaos test of #11 ("Exactly once", C1, C2, PAY3): Stripe's
// webhooks for many top-ups, each event delivered 1–3 times to random
// nodes of a 3-node cluster (some deliveries of one event at the same
// moment), while the leader is killed with SIGKILL and restarted every
// 2–4 s. Stripe delivers an event again until a node answers 2xx, so a
// delivery here is retried on the next node after a transport failure or
// a non-2xx answer. Afterwards every top-up is credited exactly once, no
// anomaly was recorded and all replicas hold the same state.
//
// The default run is the short form (50 payments, 2 kills); ZENMUX_CHAOS=long
// runs 1,000 payments under 12 kills. ZENMUX_CHAOS_SEED=<n> replays a run's
// amounts, delivery counts, nodes and order (the kills' timing is the
// cluster's own). Every loop is bounded in count and time; everything
// listens on 127.0.0.1.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// payChaosIntent is one top-up: the ledger's intent, the Checkout Session
// the driver opened for it, and the one event that pays it, whose body
// every delivery repeats (Stripe re-signs each attempt, the body stays).
type payChaosIntent struct {
	acct      string
	id        string // the ledger's intent id (the session's metadata.intent_id)
	session   string
	cents     int64
	eventID   string
	paymentPI string // the session's PaymentIntent, the intent's payment_ref once paid
	body      []byte
}

// payChaosDelivery is one delivery of an intent's event by Stripe: sent to
// node first, then to the next node after each failure, until one answers
// 2xx.
type payChaosDelivery struct {
	in       *payChaosIntent
	node     int
	statuses []int // every attempt's status, 0 for a transport failure
	ok       bool
	lastErr  string
}

// send delivers d, retrying (bounded by maxAttempts and ctx) as Stripe
// does after anything but 2xx, with a short growing pause between tries.
func (d *payChaosDelivery) send(ctx context.Context, hc *http.Client, nodes []*Node, secret string, maxAttempts int) {
	for a := 0; a < maxAttempts && ctx.Err() == nil; a++ {
		if a > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(50*time.Millisecond<<a, time.Second)):
			}
		}
		n := nodes[(d.node+a)%len(nodes)]
		r, err := chaosTry(ctx, hc, "POST", n.Proxy+stripeWebhookPath, string(d.in.body),
			"Stripe-Signature: "+stripeSignature(secret, time.Now(), d.in.body))
		switch {
		case err != nil:
			d.statuses = append(d.statuses, 0)
			d.lastErr = fmt.Sprintf("%s: %v", n.ID, err)
		case r.Status/100 == 2:
			d.statuses = append(d.statuses, r.Status)
			d.ok = true
			return
		default:
			d.statuses = append(d.statuses, r.Status)
			d.lastErr = fmt.Sprintf("%s: %d %s", n.ID, r.Status, tail(string(r.Body), 200))
		}
	}
}

// payChaosSeed is ZENMUX_CHAOS_SEED when set, else the clock.
func payChaosSeed(t *testing.T) uint64 {
	t.Helper()
	if s := os.Getenv("ZENMUX_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("ZENMUX_CHAOS_SEED=%q is not a number: %v", s, err)
		}
		return v
	}
	return uint64(time.Now().UnixNano())
}

// payChaosExpect is Expect naming what it checks.
func payChaosExpect(t *testing.T, what string, m map[string]any, pairs ...string) {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if got := Get(m, pairs[i]); got != pairs[i+1] {
			t.Errorf("%s: %s = %s, want %s", what, pairs[i], got, pairs[i+1])
		}
	}
}

// payChaosCents renders cents as the top-up's amount_usd.
func payChaosCents(c int64) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }

// TestPaymentsChaos: webhooks for many top-ups delivered 1–3 times each to
// random nodes while the leader is killed every 2–4 s. Every account's
// balance is exactly the sum of its top-ups to the micro-USD on every node
// (C2, PAY3); every intent succeeded once, paid by its own event; its
// billing shows each top-up once; no anomaly was recorded (PAY4); the
// replicas agree (C1).
func TestPaymentsChaos(t *testing.T) {
	var (
		accounts     = chaosSize(10, 100)
		perAccount   = chaosSize(5, 10) // the ledger takes at most 10 unpaid a day per account
		creators     = chaosSize(8, 16)
		workers      = chaosSize(4, 16)
		kills        = chaosSize(2, 12)
		downFor      = chaosSize(700*time.Millisecond, 1200*time.Millisecond)
		deliverLimit = chaosSize(90*time.Second, 15*time.Minute)
	)
	const maxAttempts = 40
	seed := payChaosSeed(t)
	rng := rand.New(rand.NewPCG(seed, 11))
	t.Logf("seed %d (ZENMUX_CHAOS_SEED=%d replays it): %d accounts × %d top-ups, %d kills", seed, seed, accounts, perAccount, kills)

	e := payStartCluster(t)
	nodes := e.nodes
	start := time.Now()

	// Accounts on Free, each with the key its console calls use.
	type account struct {
		id, key string
		cents   []int64 // the top-ups asked, in the order asked
	}
	accts := make([]*account, accounts)
	for i := range accts {
		id, key := payAccount(t, nodes[i%3], fmt.Sprintf("card-chaos-%d", i))
		a := &account{id: id, key: key}
		for j := 0; j < perAccount; j++ {
			a.cents = append(a.cents, 100+rng.Int64N(99_901)) // $1.00 to $1,000.00
		}
		accts[i] = a
	}

	// Every top-up through the console's route, creators at a time, on
	// all three nodes; nothing is killed yet.
	type topUp struct {
		a     *account
		cents int64
		node  *Node
	}
	var asks []topUp
	for i, a := range accts {
		for j, c := range a.cents {
			asks = append(asks, topUp{a, c, nodes[(i+j)%3]})
		}
	}
	created := time.Now()
	hc := chaosHTTP(30 * time.Second)
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []string
	)
	createCtx, cancelCreate := context.WithTimeout(context.Background(), chaosSize(60*time.Second, 10*time.Minute))
	defer cancelCreate()
	for w := 0; w < creators; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for createCtx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(asks) {
					return
				}
				k := asks[i]
				r, err := chaosTry(createCtx, hc, "POST", k.node.Proxy+"/api/v1/me/top-ups", fmt.Sprintf(`{"amount_usd":%s}`, payChaosCents(k.cents)), "Authorization: Bearer "+k.a.key)
				if err != nil || r.Status != 201 || !strings.Contains(string(r.Body), `"driver":"stripe"`) {
					mu.Lock()
					if err != nil {
						failures = append(failures, fmt.Sprintf("%s on %s: %v", k.a.id, k.node.ID, err))
					} else {
						failures = append(failures, fmt.Sprintf("%s on %s: %d %s", k.a.id, k.node.ID, r.Status, tail(string(r.Body), 200)))
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if createCtx.Err() != nil || len(failures) > 0 {
		t.Fatalf("%d top-ups asked, %d failed (%v): %s", len(asks), len(failures), createCtx.Err(), chaosSample(failures, 5))
	}
	t.Logf("%d top-up Checkouts opened in %s (%d at a time)", len(asks), time.Since(created).Round(time.Millisecond), creators)

	// What Stripe knows of each Checkout, from the recorder: its intent,
	// account, amount and session id.
	byAcct := map[string]*account{}
	for _, a := range accts {
		byAcct[a.id] = a
	}
	intents := map[string]*payChaosIntent{}
	perAcct := map[string][]int64{}
	for _, c := range e.mock.Calls("POST", "/v1/checkout/sessions") {
		a := byAcct[c.Form.Get("client_reference_id")]
		id := c.Form.Get("metadata[intent_id]")
		if a == nil || id == "" || intents[id] != nil {
			t.Fatalf("a Checkout Session for no account of this test, with no intent or a second one for its intent: %v", c.Form)
		}
		cents, err := strconv.ParseInt(c.Form.Get("line_items[0][price_data][unit_amount]"), 10, 64)
		session := Get(c.Answer, "id")
		if err != nil || c.Status != 200 || !strings.HasPrefix(session, "cs_") || c.Form.Get("line_items[0][price_data][currency]") != "usd" {
			t.Fatalf("Checkout Session for %s: %v; stripe-mock answered %d %v", id, c.Form, c.Status, c.Answer)
		}
		in := &payChaosIntent{acct: a.id, id: id, session: session, cents: cents, eventID: "evt_chaos_" + id, paymentPI: "pi_chaos_" + id}
		in.body = stripeCheckoutCompleted(in.eventID, session, id, a.id, cents, "usd", in.paymentPI, "cus_chaos_"+a.id).JSON()
		intents[id] = in
		perAcct[a.id] = append(perAcct[a.id], cents)
	}
	for _, a := range accts {
		got, want := perAcct[a.id], append([]int64(nil), a.cents...)
		sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
		sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: Checkouts for %v cents, asked %v", a.id, got, want)
		}
		payChaosExpect(t, a.id+" before any event", payAccountView(t, nodes[0], a.id), "balance_usd", "0")
	}

	// Stripe's deliveries: 1–3 per event, each to a random node; a third of
	// the events delivered more than once get all their deliveries at the
	// same moment, the others' are spread through the run.
	ids := make([]string, 0, len(intents))
	for id := range intents {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var items [][]*payChaosDelivery
	var deliveries []*payChaosDelivery
	together := 0
	for _, id := range ids {
		var ds []*payChaosDelivery
		for c := 1 + rng.IntN(3); c > 0; c-- {
			ds = append(ds, &payChaosDelivery{in: intents[id], node: rng.IntN(3)})
		}
		deliveries = append(deliveries, ds...)
		if len(ds) > 1 && rng.IntN(3) == 0 {
			items = append(items, ds)
			together++
			continue
		}
		for _, d := range ds {
			items = append(items, []*payChaosDelivery{d})
		}
	}
	rng.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
	// Send i is due window×i/len(items) after the start, so the sends
	// spread over the kills (on average 3 s apart, then the node's downtime
	// and restart); once the kills are over the rest go at once.
	window := time.Duration(kills) * (3*time.Second + downFor + 1200*time.Millisecond)
	t.Logf("%d events, %d deliveries in %d sends (%d events' deliveries at once), %d workers, spread over %s",
		len(ids), len(deliveries), len(items), together, workers, window)

	ctx, cancel := context.WithTimeout(context.Background(), deliverLimit)
	defer cancel()
	dhc := chaosHTTP(15 * time.Second)
	var (
		sent  atomic.Int64
		hurry atomic.Bool
		done  = make(chan struct{})
		dwg   sync.WaitGroup
	)
	next.Store(0)
	chaosStart := time.Now()
	for w := 0; w < workers; w++ {
		dwg.Add(1)
		go func() {
			defer dwg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(items) {
					return
				}
				if wait := time.Until(chaosStart.Add(window * time.Duration(i) / time.Duration(len(items)))); wait > 0 && !hurry.Load() {
					select {
					case <-ctx.Done():
						return
					case <-time.After(wait):
					}
				}
				var g sync.WaitGroup
				for _, d := range items[i] {
					g.Add(1)
					go func() { defer g.Done(); d.send(ctx, dhc, nodes, e.secret, maxAttempts) }()
				}
				g.Wait()
				sent.Add(int64(len(items[i])))
			}
		}()
	}
	go func() { dwg.Wait(); close(done) }()
	defer func() { cancel(); <-done }() // on a t.Fatal below, stop the deliveries first

	// The kills, from the test's goroutine (chaosLeader and Start may
	// fail the test): every 2–4 s the current leader, SIGKILL, down for
	// downFor, restarted.
	killed := 0
	for k := 0; k < kills; k++ {
		time.Sleep(2*time.Second + time.Duration(rng.Int64N(int64(2*time.Second))))
		if ctx.Err() != nil {
			break
		}
		l := chaosLeader(t, nodes)
		t.Logf("t=%.1fs kill -9 leader %s (%d of %d deliveries made)", time.Since(chaosStart).Seconds(), l.ID, sent.Load(), len(deliveries))
		l.Kill()
		killed++
		time.Sleep(downFor)
		l.Start()
		t.Logf("t=%.1fs %s is back", time.Since(chaosStart).Seconds(), l.ID)
	}
	hurry.Store(true)
	<-done
	t.Logf("t=%.1fs all sends over: %d kills, %d of %d deliveries made", time.Since(chaosStart).Seconds(), killed, sent.Load(), len(deliveries))
	if killed != kills {
		t.Errorf("%d of %d leader kills happened within %s", killed, kills, deliverLimit)
	}

	// Every delivery ended with a 2xx; what the retried attempts met.
	histogram := map[string]int{}
	attempts, retried := 0, 0
	var undelivered, refused []string
	for _, d := range deliveries {
		attempts += len(d.statuses)
		if len(d.statuses) > 1 {
			retried++
		}
		for _, s := range d.statuses {
			k := strconv.Itoa(s)
			if s == 0 {
				k = "transport"
			}
			histogram[k]++
			if s/100 == 4 {
				refused = append(refused, fmt.Sprintf("%s got %d", d.in.eventID, s))
			}
		}
		if !d.ok {
			undelivered = append(undelivered, fmt.Sprintf("%s after %d attempts: %s", d.in.eventID, len(d.statuses), d.lastErr))
		}
	}
	t.Logf("%d deliveries in %d attempts (%d retried); answers %v", len(deliveries), attempts, retried, histogram)
	if len(undelivered) > 0 {
		t.Errorf("%d deliveries got no 2xx within %d attempts: %s", len(undelivered), maxAttempts, chaosSample(undelivered, 5))
	}
	if len(refused) > 0 {
		t.Errorf("a correctly signed event was answered 4xx %d times (Stripe would retry it, but nothing was wrong with it): %s", len(refused), chaosSample(refused, 5))
	}

	// The replicas agree and the state has stopped moving (C1).
	chaosWaitStable(t, nodes, 60*time.Second)
	hashes, same := stateHashes(t, nodes)
	t.Logf("state hashes %v", hashes)
	if !same {
		t.Fatalf("rule C1: the replicas disagree after the chaos: %v", hashes)
	}

	// Exactly once (C2, PAY3): on every node each balance is the sum of its
	// top-ups; each intent succeeded by its own event; billing lists each
	// top-up once; no anomaly anywhere (PAY4).
	for i, a := range accts {
		var sum int64
		want := make([]string, 0, len(a.cents))
		for _, c := range a.cents {
			sum += c * 10_000
			want = append(want, "topup null "+rtMicro(c*10_000)+" succeeded")
		}
		for _, n := range nodes {
			payChaosExpect(t, a.id+" on "+n.ID, payAccountView(t, n, a.id), "balance_usd", rtMicro(sum), "plan", "free")
		}
		n := nodes[i%3]
		got := payBilling(t, n, a.id)
		sort.Strings(got)
		sort.Strings(want)
		payEqualStrings(t, a.id+": billing", got, want)
		m := wtWant(t, n.AdminDo("GET", "/admin/v1/accounts/"+a.id+"/payment-intents", ""), 200)
		list, _ := m["data"].([]any)
		if len(list) != perAccount {
			t.Errorf("%s has %d payment intents, want %d", a.id, len(list), perAccount)
		}
		for _, v := range list {
			o, _ := v.(map[string]any)
			in := intents[Get(o, "id")]
			if in == nil || in.acct != a.id {
				t.Errorf("%s: a payment intent no Checkout was opened for: %v", a.id, o)
				continue
			}
			payChaosExpect(t, "intent "+in.id+" of "+a.id, o, "kind", "topup", "status", "succeeded", "amount_usd", rtMicro(in.cents*10_000), "currency", "usd",
				"event_id", in.eventID, "payment_ref", in.paymentPI, "anomaly", "null")
		}
	}
	for _, n := range nodes {
		if an := payAnomalies(t, n); len(an) != 0 {
			t.Errorf("anomalies on %s after the chaos, want none: %q", n.ID, an)
		}
	}
	t.Logf("%d payments credited exactly once on 3 nodes; the whole test took %s", len(intents), time.Since(start).Round(time.Millisecond))
}
