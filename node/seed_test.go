package node

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"zenmux/catalog"
	"zenmux/cluster"
	"zenmux/config"
	"zenmux/ledger"
	"zenmux/raftfsm"
)

// The config's plans and models replace the built-in ones of their id in
// place and follow them when new; amounts arrive in integer units.
func TestSeedFromConfig(t *testing.T) {
	cfg, err := config.Parse([]byte(`
[flow]
usd_per_flow = 0.05
[[plans]]
id = "team"
price_usd = 49.99
window_5h_flows = 0.5
weekly_flows = 2
monthly_flows = 914.443
rpm = 5
burst = 6
[[plans]]
id = "pro"
name = "Pro+"
price_usd = 25
window_5h_flows = 60
weekly_flows = 250
monthly_flows = 1000
rpm = 20
burst = 30
[[models]]
id = "a/b"
provider = "echo"
upstream = "e"
input_usd_per_mtok = 0.125
image_usd = 0.04
plans = ["team"]
[[models]]
id = "openai/gpt-5.4"
output_usd_per_mtok = 12
`))
	if err != nil {
		t.Fatal(err)
	}
	s := seedFromConfig(cfg)
	if s.NanoUSDPerFlow != 50_000000 || s.DedupeDays != 7 || s.RequestLogDays != 30 ||
		!reflect.DeepEqual(s.Members, []ledger.Member{{ID: "n1", RaftAddr: "127.0.0.1:8300", AdminAddr: "127.0.0.1:8081"}}) {
		t.Fatalf("seed = %+v", s)
	}
	builtin := ledger.DefaultPlans()
	want := []ledger.Plan{builtin[0],
		{ID: "pro", Name: "Pro+", PriceMicroUSD: 25_000000, Window5hMicroFlows: 60_000000, WeeklyMicroFlows: 250_000000, MonthlyMicroFlows: 1000_000000, RPM: 20, Burst: 30},
		builtin[2], builtin[3],
		{ID: "team", Name: "team", PriceMicroUSD: 49_990000, Window5hMicroFlows: 500000, WeeklyMicroFlows: 2_000000, MonthlyMicroFlows: 914_443000, RPM: 5, Burst: 6},
	}
	if !reflect.DeepEqual(s.Plans, want) {
		t.Fatalf("plans =\n%+v\nwant\n%+v", s.Plans, want)
	}
	// The echo model, the catalog in its order with gpt-5.4 repriced in
	// place (output only: the rest is the catalog's), then the new model.
	wantModels := append(ledger.DefaultModels(), catalog.Models()...)
	for i := range wantModels {
		if wantModels[i].ID == "openai/gpt-5.4" {
			wantModels[i].OutputMicroUSDPerMTok, wantModels[i].Unpriced = 12_000000, false
		}
	}
	wantModels = append(wantModels, ledger.Model{ID: "a/b", Provider: "echo", Upstream: "e", InputMicroUSDPerMTok: 125000, ImageMicroUSD: 40000, Plans: []string{"team"}})
	if !reflect.DeepEqual(s.Models, wantModels) {
		t.Fatalf("models =\n%+v\nwant\n%+v", s.Models, wantModels)
	}
}

// The default config's seed (echo and the whole catalog) is one the
// ledger takes: every catalog model with its name and prices, and an
// unpriced one kept but marked so (M5).
func TestDefaultSeedApplies(t *testing.T) {
	rep, err := cluster.Open(cluster.Options{Raft: raftfsm.Options{NodeID: "n1", Dir: t.TempDir(), RaftAddr: "127.0.0.1:0", Bootstrap: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := rep.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := seed(config.Default(), rep); err != nil {
		t.Fatalf("the default seed: %v", err)
	}
	models := rep.Ledger().Models()
	if want := 1 + len(catalog.Models()); len(models) != want {
		t.Fatalf("%d models seeded, want %d", len(models), want)
	}
	b, _ := json.Marshal(models)
	for _, frag := range []string{`{"id":"anthropic/claude-opus-4.6","name":"Claude Opus 4.6","modality":"text","provider":"","upstream":"",`, `"id":"zenmux/echo","provider":"echo"`} {
		if !strings.Contains(string(b), frag) {
			t.Errorf("seeded models lack %s", frag)
		}
	}
	for _, m := range catalog.Models() {
		if m.Unpriced && !strings.Contains(string(b), `"id":"`+m.ID+`","name":"`+m.Name+`","modality":"`+m.Modality+`","provider":"","upstream":"","unpriced":true,`) {
			t.Errorf("unpriced %s is not seeded as unpriced", m.ID)
		}
	}
}

// A seed the ledger refuses stops the start with the ledger's reason,
// rather than leaving the node unready for ever with nothing said.
func TestSeedRefusedIsAnError(t *testing.T) {
	rep, err := cluster.Open(cluster.Options{Raft: raftfsm.Options{NodeID: "n1", Dir: t.TempDir(), RaftAddr: "127.0.0.1:0", Bootstrap: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := rep.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Accounting.DedupeDays = 1 // config would refuse it; the ledger must too
	if err := seed(cfg, rep); !errors.Is(err, ledger.ErrInvalid) {
		t.Fatalf("seed with dedupe_days 1: %v, want the ledger's invalid_request", err)
	}
	if rep.Ledger().Seeded() {
		t.Fatal("the refused seed was applied")
	}
}
