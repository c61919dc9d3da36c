package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"zenmux/internal/testca"
	"zenmux/ledger"
)

func TestDefault(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	want := &Config{
		Node: Node{
			ID:          "n1",
			DataDir:     "./zenmux-data",
			MemtableMB:  4,
			DrainGrace:  Duration(30 * time.Second),
			Listen:      "127.0.0.1:8080",
			AdminListen: "127.0.0.1:8081",
			RaftListen:  "127.0.0.1:8300",
		},
		Cluster: Cluster{Bootstrap: true, SnapshotEntries: 8192},
		Flow:    Flow{NanoUSDPerFlow: 32_830000},
		Proxy:   Proxy{MaxBodyBytes: 33554432, CountTokensRPM: 100, CountTokensBurst: 20},
		Accounting: Accounting{
			Ack:              "quorum",
			DedupeDays:       7,
			RequestLogDays:   30,
			BatchMaxCharges:  1000,
			MaxQueuedCharges: 16000,
			AsyncBatchWait:   Duration(10 * time.Millisecond),
		},
		Payg:        Payg{RPM: 600, Burst: 600},
		SelfService: SelfService{SessionTTL: Duration(7 * 24 * time.Hour), SignInPerAddress: 10, SignInPerAccount: 20},
		Payments:    Payments{Provider: PaymentsManual, SweepEvery: Duration(30 * time.Second)},
		Providers: []Provider{{
			Name:             "echo",
			Kind:             "echo",
			MaxConcurrent:    256,
			ConnectTimeout:   Duration(5 * time.Second),
			FirstByteTimeout: Duration(120 * time.Second),
			IdleTimeout:      Duration(120 * time.Second),
		}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Default() =\n%+v\nwant\n%+v", c, want)
	}
	if len(c.Plans) != 0 || len(c.Models) != 0 {
		t.Fatalf("Default() has plans or models; the built-in ones live in the ledger")
	}

	// Default() returns a fresh value each time.
	c.Providers[0].Name = "changed"
	if Default().Providers[0].Name != "echo" {
		t.Fatal("Default() shares state between calls")
	}

	l, err := Load("")
	if err != nil {
		t.Fatalf(`Load("") = %v`, err)
	}
	if !reflect.DeepEqual(l, Default()) {
		t.Fatalf(`Load("") = %+v, want Default()`, l)
	}
	e, err := Parse(nil)
	if err != nil || !reflect.DeepEqual(e, Default()) {
		t.Fatalf("Parse(empty) = %+v, %v; want Default()", e, err)
	}
}

func TestExampleFileLoads(t *testing.T) {
	c, err := Load("../zenmux.example.toml")
	if err != nil {
		t.Fatalf("example: %v", err)
	}
	// Every section but the seeds repeats the defaults exactly.
	d := Default()
	c2 := *c
	c2.Plans, c2.Models = nil, nil
	if c2.Cluster.Join != nil && len(c2.Cluster.Join) == 0 {
		c2.Cluster.Join = nil
	}
	if !reflect.DeepEqual(&c2, d) {
		t.Fatalf("example differs from Default() outside plans/models:\n%+v\nwant\n%+v", c2, *d)
	}
	wantPro := Plan{ID: "pro", Name: "Pro", PriceMicroUSD: 20_000000, Window5hMicroFlows: 50_000000, WeeklyMicroFlows: 213_370000, MonthlyMicroFlows: 914_443000, RPM: 10, Burst: 15}
	if len(c.Plans) != 1 || c.Plans[0] != wantPro {
		t.Fatalf("example plans = %+v, want the built-in Pro plan %+v", c.Plans, wantPro)
	}
	if len(c.Models) != 1 || c.Models[0].Provider != "echo" {
		t.Fatalf("example models = %+v", c.Models)
	}
}

// TestExampleDocumentsEveryKey checks that each TOML key of Config appears in
// the example file, uncommented.
func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile("../zenmux.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	var active []string
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			active = append(active, line)
		}
	}
	text := "\n" + strings.Join(active, "\n")
	for _, section := range []any{Config{}, Node{}, Admin{}, Cluster{}, Flow{}, Proxy{}, Accounting{}, Payg{}, SelfService{}, Payments{}, Provider{}, Plan{}, Model{}} {
		typ := reflect.TypeOf(section)
		for i := 0; i < typ.NumField(); i++ {
			if !typ.Field(i).IsExported() {
				continue
			}
			key := typ.Field(i).Tag.Get("toml")
			if typ.Name() == "Config" {
				if !strings.Contains(text, "\n["+key+"]") && !strings.Contains(text, "\n[["+key+"]]") {
					t.Errorf("example lacks section %q", key)
				}
				continue
			}
			if !strings.Contains(text, "\n"+key+" = ") {
				t.Errorf("example lacks key %s.%s", typ.Name(), key)
			}
		}
	}
}

const validBase = `
[[providers]]
name = "echo"
kind = "echo"

[[providers]]
name = "openai"
kind = "openai"
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"

[[plans]]
id = "pro"
name = "Pro"
price_usd = 20
window_5h_flows = 50
weekly_flows = 213.37
monthly_flows = 914.443
rpm = 10
burst = 15

[[models]]
id = "openai/gpt-5.4"
provider = "openai"
upstream = "gpt-5.4"
input_usd_per_mtok = 1.25
output_usd_per_mtok = 10.0
cache_read_usd_per_mtok = 0.125
plans = ["pro", "max", "ultra"]
`

func TestParseValid(t *testing.T) {
	c, err := Parse([]byte(validBase))
	if err != nil {
		t.Fatalf("Parse = %v", err)
	}
	if len(c.Providers) != 2 || c.Providers[1].BaseURL != "https://api.openai.com/v1" {
		t.Fatalf("providers = %+v", c.Providers)
	}
	if c.Node.ID != "n1" || c.Payg.RPM != 600 {
		t.Fatalf("defaults not kept under a file: %+v", c)
	}
}

// A file's [[providers]] replaces the built-in list wholesale, and the
// default echo entry's fields do not leak into the file's first entry.
func TestProvidersReplaceDefault(t *testing.T) {
	c, err := Parse([]byte(`
[[providers]]
name = "oa"
kind = "openai"
base_url = "http://127.0.0.1:9000/v1"
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Provider{withDefaults(Provider{Name: "oa", Kind: "openai", BaseURL: "http://127.0.0.1:9000/v1"})}
	if !reflect.DeepEqual(c.Providers, want) {
		t.Fatalf("providers = %+v, want %+v", c.Providers, want)
	}
	// A file that only sets a name must not inherit kind "echo".
	_, err = Parse([]byte("[[providers]]\nname = \"x\"\n"))
	if err == nil || !strings.Contains(err.Error(), "providers[0].kind") {
		t.Fatalf("provider without kind: err = %v", err)
	}
}

const (
	echoEntry   = "[[providers]]\nname = \"e\"\nkind = \"echo\"\n"
	openaiEntry = "[[providers]]\nname = \"oa\"\nkind = \"openai\"\nbase_url = \"https://x/v1\"\n"
)

// withDefaults returns p with the Provider defaults filled in.
func withDefaults(p Provider) Provider {
	p.MaxConcurrent = 256
	p.ConnectTimeout = Duration(5 * time.Second)
	p.FirstByteTimeout = Duration(120 * time.Second)
	p.IdleTimeout = Duration(120 * time.Second)
	p.Latency = 0
	p.TokensPerSecond = 0
	return p
}

// Each [[providers]] entry gets the defaults for the keys it leaves out, and
// keeps the ones it gives, whatever its position.
func TestProviderDefaults(t *testing.T) {
	if got, want := Default().Providers, []Provider{withDefaults(Provider{Name: "echo", Kind: "echo"})}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Default().Providers = %+v, want %+v", got, want)
	}

	bare := Provider{Name: "openai", Kind: "openai", BaseURL: "https://api.openai.com/v1"}
	for name, file := range map[string]string{
		"array of tables": "[[providers]]\nname = \"openai\"\nkind = \"openai\"\nbase_url = \"https://api.openai.com/v1\"\n",
		"inline array":    "providers = [{name = \"openai\", kind = \"openai\", base_url = \"https://api.openai.com/v1\"}]\n",
	} {
		c, err := Parse([]byte(file))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := []Provider{withDefaults(bare)}; !reflect.DeepEqual(c.Providers, want) {
			t.Fatalf("%s: providers = %+v, want %+v", name, c.Providers, want)
		}
	}

	c, err := Parse([]byte(`
[[providers]]
name = "slow-echo"
kind = "echo"
max_concurrent = 1
connect_timeout = "1s"
first_byte_timeout = "1h"
idle_timeout = "250ms"
latency = "1m"
tokens_per_second = 1000000

[[providers]]
name = "fast-echo"
kind = "echo"
latency = "0s"
tokens_per_second = 0

[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "https://api.anthropic.com"
idle_timeout = "10m"
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Provider{
		{
			Name: "slow-echo", Kind: "echo", MaxConcurrent: 1,
			ConnectTimeout:   Duration(time.Second),
			FirstByteTimeout: Duration(time.Hour),
			IdleTimeout:      Duration(250 * time.Millisecond),
			Latency:          Duration(time.Minute),
			TokensPerSecond:  1000000,
		},
		withDefaults(Provider{Name: "fast-echo", Kind: "echo"}),
		func() Provider {
			p := withDefaults(Provider{Name: "anthropic", Kind: "anthropic", BaseURL: "https://api.anthropic.com"})
			p.IdleTimeout = Duration(10 * time.Minute)
			return p
		}(),
	}
	if !reflect.DeepEqual(c.Providers, want) {
		t.Fatalf("providers =\n%+v\nwant\n%+v", c.Providers, want)
	}

	// Edges of the ranges are allowed.
	if _, err := Parse([]byte(echoEntry + "max_concurrent = 100000\nconnect_timeout = \"10m\"\nfirst_byte_timeout = \"1ns\"\nidle_timeout = \"1h\"\n")); err != nil {
		t.Fatalf("range edges: %v", err)
	}
}

// Validate alone, without a file, refuses echo-only values on other kinds
// and unfilled (zero) limits.
func TestValidateProviders(t *testing.T) {
	c := Default()
	c.Providers = append(c.Providers, withDefaults(Provider{Name: "oa", Kind: "openai", BaseURL: "https://x/v1"}))
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate = %v", err)
	}
	c.Providers[1].Latency = Duration(time.Millisecond)
	c.Providers[1].TokensPerSecond = 10
	c.Providers = append(c.Providers, Provider{Name: "raw", Kind: "echo"})
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate accepted echo-only values on openai and a provider without limits")
	}
	for _, key := range []string{
		"providers[1].latency", "providers[1].tokens_per_second",
		"providers[2].max_concurrent", "providers[2].connect_timeout",
		"providers[2].first_byte_timeout", "providers[2].idle_timeout",
	} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error %q does not name %s", err, key)
		}
	}
}

func TestBadConfigs(t *testing.T) {
	tests := []struct {
		name, toml, key string
	}{
		{"empty node id", "[node]\nid = \"\"", "node.id"},
		{"node id with slash", "[node]\nid = \"a/b\"", "node.id"},
		{"empty data dir", "[node]\ndata_dir = \"\"", "node.data_dir"},
		{"listen not host:port", "[node]\nlisten = \"localhost\"", "node.listen"},
		{"listen port 0", "[node]\nlisten = \"127.0.0.1:0\"", "node.listen"},
		{"listen port too big", "[node]\nlisten = \"127.0.0.1:65536\"", "node.listen"},
		{"listen named port", "[node]\nlisten = \"127.0.0.1:http\"", "node.listen"},
		{"admin_listen bad", "[node]\nadmin_listen = \"127.0.0.1\"", "node.admin_listen"},
		{"raft_listen bad", "[node]\nraft_listen = \":-1\"", "node.raft_listen"},
		{"memtable too small", "[node]\nmemtable_mb = 3", "node.memtable_mb"},
		{"memtable too big", "[node]\nmemtable_mb = 1025", "node.memtable_mb"},
		{"drain grace zero", "[node]\ndrain_grace = \"0s\"", "node.drain_grace"},
		{"drain grace too long", "[node]\ndrain_grace = \"2h\"", "node.drain_grace"},
		{"admin equals listen", "[node]\nadmin_listen = \"127.0.0.1:8080\"", "node.admin_listen"},
		{"raft equals admin", "[node]\nraft_listen = \"127.0.0.1:8081\"", "node.raft_listen"},
		{"wildcard collides", "[node]\nlisten = \"0.0.0.0:8300\"", "node.raft_listen"},
		{"raft on every interface, no advertise", "[node]\nraft_listen = \"0.0.0.0:8300\"", "node.advertise_raft"},
		{"raft on every IPv6 interface, no advertise", "[node]\nraft_listen = \"[::]:8300\"", "node.advertise_raft"},
		{"raft on every interface, empty host", "[node]\nraft_listen = \":8300\"", "node.advertise_raft"},
		{"clustered admin on every interface, no advertise", "[node]\nadmin_listen = \"0.0.0.0:8081\"\n[cluster]\nsecret_file = \"s\"", "node.advertise_admin"},
		{"advertise a wildcard", "[node]\nadvertise_raft = \"0.0.0.0:8300\"", "node.advertise_raft"},
		{"advertise no host", "[node]\nadvertise_admin = \":8081\"", "node.advertise_admin"},
		{"advertise no port", "[node]\nadvertise_admin = \"10.0.0.2\"", "node.advertise_admin"},
		{"count_tokens rpm 0", "[proxy]\ncount_tokens_rpm = 0", "proxy.count_tokens_rpm"},
		{"count_tokens burst too big", "[proxy]\ncount_tokens_burst = 1000001", "proxy.count_tokens_burst"},
		{"join without secret", "[cluster]\njoin = [\"10.0.0.1:8081\"]", "cluster.secret_file"},
		{"no bootstrap without secret", "[cluster]\nbootstrap = false", "cluster.secret_file"},
		{"join bad address", "[cluster]\nsecret_file = \"s\"\njoin = [\"10.0.0.1:8081\", \"nohost\"]", "cluster.join[1]"},
		{"join empty host", "[cluster]\nsecret_file = \"s\"\njoin = [\":8081\"]", "cluster.join[0]"},
		{"rate zero", "[flow]\nusd_per_flow = 0", "flow.usd_per_flow"},
		{"rate negative", "[flow]\nusd_per_flow = -1.0", "flow.usd_per_flow"},
		{"rate too big", "[flow]\nusd_per_flow = 100.5", "flow.usd_per_flow"},
		{"rate nan", "[flow]\nusd_per_flow = nan", "flow.usd_per_flow"},
		{"rate 10 decimals", "[flow]\nusd_per_flow = 0.0328300001", "flow.usd_per_flow"},
		{"body too small", "[proxy]\nmax_body_bytes = 1023", "proxy.max_body_bytes"},
		{"body too big", "[proxy]\nmax_body_bytes = 1073741825", "proxy.max_body_bytes"},
		{"ack unknown", "[accounting]\nack = \"sync\"", "accounting.ack"},
		{"dedupe under C4", "[accounting]\ndedupe_days = 6", "accounting.dedupe_days"},
		{"dedupe too long", "[accounting]\ndedupe_days = 366", "accounting.dedupe_days"},
		{"request log zero", "[accounting]\nrequest_log_days = 0", "accounting.request_log_days"},
		{"request log too long", "[accounting]\nrequest_log_days = 3651", "accounting.request_log_days"},
		{"batch charges zero", "[accounting]\nbatch_max_charges = 0", "accounting.batch_max_charges"},
		{"batch charges too many", "[accounting]\nbatch_max_charges = 10001", "accounting.batch_max_charges"},
		{"batch wait removed", "[accounting]\nbatch_max_wait = \"2ms\"", `unknown key "accounting.batch_max_wait"`},
		{"queued charges zero", "[accounting]\nmax_queued_charges = 0", "accounting.max_queued_charges"},
		{"queued charges negative", "[accounting]\nmax_queued_charges = -1", "accounting.max_queued_charges"},
		{"queued charges too many", "[accounting]\nmax_queued_charges = 1000001", "accounting.max_queued_charges"},
		{"async wait negative", "[accounting]\nasync_batch_wait = \"-1ms\"", "accounting.async_batch_wait"},
		{"async wait too long", "[accounting]\nasync_batch_wait = \"2s\"", "accounting.async_batch_wait"},
		{"payg rpm zero", "[payg]\nrpm = 0", "payg.rpm"},
		{"payg burst huge", "[payg]\nburst = 1000001", "payg.burst"},
		{"session ttl short", "[selfservice]\nsession_ttl = \"59s\"", "selfservice.session_ttl: 59s must be from 1m to 720h"},
		{"session ttl long", "[selfservice]\nsession_ttl = \"721h\"", "selfservice.session_ttl: 721h0m0s must be from 1m to 720h"},
		{"sign-in per address zero", "[selfservice]\nsign_in_per_address = 0", "selfservice.sign_in_per_address"},
		{"sign-in per account huge", "[selfservice]\nsign_in_per_account = 1000001", "selfservice.sign_in_per_account"},
		{"payments sweep zero", "[payments]\nsweep_every = \"0s\"", "payments.sweep_every"},
		{"payments provider unknown", "[payments]\nprovider = \"paypal\"", `payments.provider: "paypal" must be "manual" or "stripe"`},
		{"payments stripe key on manual", "[payments]\nstripe_secret_key_env = \"K\"", `payments.stripe_secret_key_env: is for provider "stripe" only`},
		{"payments stripe without secrets", "[payments]\nprovider = \"stripe\"\npublic_url = \"https://z.example\"", `payments.stripe_secret_key_env: or payments.stripe_secret_key_file must be set for provider "stripe"`},
		{"payments stripe two key places", "[payments]\nprovider = \"stripe\"\nstripe_secret_key_env = \"K\"\nstripe_secret_key_file = \"/k\"\nstripe_webhook_secret_env = \"W\"\npublic_url = \"https://z.example\"", "payments.stripe_secret_key_file: is exclusive with payments.stripe_secret_key_env"},
		{"payments stripe without public url", "[payments]\nprovider = \"stripe\"\nstripe_secret_key_env = \"K\"\nstripe_webhook_secret_env = \"W\"", "payments.public_url: must be set"},
		{"payments stripe bad api base", "[payments]\nprovider = \"stripe\"\nstripe_secret_key_env = \"K\"\nstripe_webhook_secret_env = \"W\"\npublic_url = \"https://z.example\"\nstripe_api_base = \"ftp://x\"", "payments.stripe_api_base"},
		{"wrong type", "[node]\nlisten = 8080", "node.listen"},
		{"provider no name", "[[providers]]\nkind = \"echo\"", "providers[0].name"},
		{"provider duplicate", "[[providers]]\nname = \"a\"\nkind = \"echo\"\n[[providers]]\nname = \"a\"\nkind = \"echo\"", "providers[1].name"},
		{"provider bad kind", "[[providers]]\nname = \"a\"\nkind = \"vertex\"", "providers[0].kind"},
		{"openai no base_url", "[[providers]]\nname = \"a\"\nkind = \"openai\"", "providers[0].base_url"},
		{"anthropic ftp base_url", "[[providers]]\nname = \"a\"\nkind = \"anthropic\"\nbase_url = \"ftp://x\"", "providers[0].base_url"},
		{"base_url no scheme", "[[providers]]\nname = \"a\"\nkind = \"openai\"\nbase_url = \"api.openai.com/v1\"", "providers[0].base_url"},
		{"base_url no host", "[[providers]]\nname = \"a\"\nkind = \"openai\"\nbase_url = \"https:///v1\"", "providers[0].base_url"},
		{"base_url unparsable", "[[providers]]\nname = \"a\"\nkind = \"openai\"\nbase_url = \"http://[::1\"", "providers[0].base_url"},
		{"base_url with query", "[[providers]]\nname = \"a\"\nkind = \"openai\"\nbase_url = \"https://x/v1?a=b\"", "providers[0].base_url"},
		{"max_concurrent zero", echoEntry + "max_concurrent = 0", "providers[0].max_concurrent"},
		{"max_concurrent negative", echoEntry + "max_concurrent = -1", "providers[0].max_concurrent"},
		{"max_concurrent too many", echoEntry + "max_concurrent = 100001", "providers[0].max_concurrent"},
		{"connect_timeout zero", echoEntry + "connect_timeout = \"0s\"", "providers[0].connect_timeout"},
		{"connect_timeout negative", echoEntry + "connect_timeout = \"-1s\"", "providers[0].connect_timeout"},
		{"connect_timeout too long", echoEntry + "connect_timeout = \"10m1s\"", "providers[0].connect_timeout"},
		{"connect_timeout unparsable", echoEntry + "connect_timeout = \"soon\"", "providers.connect_timeout"},
		{"connect_timeout no unit", echoEntry + "connect_timeout = 5", "providers.connect_timeout"},
		{"first_byte_timeout zero", echoEntry + "first_byte_timeout = \"0s\"", "providers[0].first_byte_timeout"},
		{"first_byte_timeout too long", echoEntry + "first_byte_timeout = \"1h0m0.001s\"", "providers[0].first_byte_timeout"},
		{"idle_timeout zero", echoEntry + "idle_timeout = \"0s\"", "providers[0].idle_timeout"},
		{"idle_timeout negative", echoEntry + "idle_timeout = \"-5s\"", "providers[0].idle_timeout"},
		{"idle_timeout too long", echoEntry + "idle_timeout = \"61m\"", "providers[0].idle_timeout"},
		{"latency negative", echoEntry + "latency = \"-1ms\"", "providers[0].latency"},
		{"latency too long", echoEntry + "latency = \"1m0.001s\"", "providers[0].latency"},
		{"tokens_per_second negative", echoEntry + "tokens_per_second = -1", "providers[0].tokens_per_second"},
		{"tokens_per_second too many", echoEntry + "tokens_per_second = 1000001", "providers[0].tokens_per_second"},
		{"second entry bad", echoEntry + "\n[[providers]]\nname = \"b\"\nkind = \"echo\"\nidle_timeout = \"0s\"", "providers[1].idle_timeout"},
		{"latency on openai", openaiEntry + "latency = \"10ms\"", "providers[0].latency"},
		{"zero latency on openai", openaiEntry + "latency = \"0s\"", "providers[0].latency"},
		{"tokens_per_second on anthropic", "[[providers]]\nname = \"a\"\nkind = \"anthropic\"\nbase_url = \"https://x\"\ntokens_per_second = 50", "providers[0].tokens_per_second"},
		{"zero tokens_per_second on openai", openaiEntry + "tokens_per_second = 0", "providers[0].tokens_per_second"},
		{"latency on second entry openai", echoEntry + "latency = \"5ms\"\n" + openaiEntry + "latency = \"5ms\"", "providers[1].latency"},
		{"plan no id", validBase + "[[plans]]\nname = \"x\"\nrpm = 1\nburst = 1", "plans[1].id"},
		{"plan id uppercase", validBase + "[[plans]]\nid = \"Team\"\nrpm = 1\nburst = 1", "plans[1].id"},
		{"plan id duplicate", validBase + "[[plans]]\nid = \"pro\"\nrpm = 1\nburst = 1", "plans[1].id"},
		{"plan price 3 decimals", validBase + "[[plans]]\nid = \"x\"\nprice_usd = 19.999\nrpm = 1\nburst = 1", "plans[1].price_usd"},
		{"plan price negative", validBase + "[[plans]]\nid = \"x\"\nprice_usd = -1\nrpm = 1\nburst = 1", "plans[1].price_usd"},
		{"plan price huge", validBase + "[[plans]]\nid = \"x\"\nprice_usd = 1e10\nrpm = 1\nburst = 1", "plans[1].price_usd"},
		{"plan 5h 7 decimals", validBase + "[[plans]]\nid = \"x\"\nwindow_5h_flows = 1.0000001\nrpm = 1\nburst = 1", "plans[1].window_5h_flows"},
		{"plan weekly negative", validBase + "[[plans]]\nid = \"x\"\nweekly_flows = -0.5\nrpm = 1\nburst = 1", "plans[1].weekly_flows"},
		{"plan monthly inf", validBase + "[[plans]]\nid = \"x\"\nmonthly_flows = inf\nrpm = 1\nburst = 1", "plans[1].monthly_flows"},
		{"plan rpm zero", validBase + "[[plans]]\nid = \"x\"\nburst = 1", "plans[1].rpm"},
		{"plan burst huge", validBase + "[[plans]]\nid = \"x\"\nrpm = 1\nburst = 2000000", "plans[1].burst"},
		{"model no id", validBase + "[[models]]\nprovider = \"echo\"\nupstream = \"e\"\nplans = [\"pro\"]", "models[1].id"},
		{"model id no vendor", validBase + "[[models]]\nid = \"gpt-5\"\nprovider = \"echo\"\nupstream = \"e\"\nplans = [\"pro\"]", "models[1].id"},
		{"model id two slashes", validBase + "[[models]]\nid = \"a/b/c\"\nprovider = \"echo\"\nupstream = \"e\"\nplans = [\"pro\"]", "models[1].id"},
		{"model id empty name", validBase + "[[models]]\nid = \"a/\"\nprovider = \"echo\"\nupstream = \"e\"\nplans = [\"pro\"]", "models[1].id"},
		{"model id duplicate", validBase + "[[models]]\nid = \"openai/gpt-5.4\"\nprovider = \"echo\"\nupstream = \"e\"\nplans = [\"pro\"]", "models[1].id"},
		{"model unknown provider", validBase + "[[models]]\nid = \"a/b\"\nprovider = \"gemini\"\nupstream = \"e\"\nplans = [\"pro\"]", "models[1].provider"},
		{"model no provider", validBase + "[[models]]\nid = \"a/b\"\nupstream = \"e\"\nplans = [\"pro\"]", "models[1].provider"},
		{"model no upstream", validBase + "[[models]]\nid = \"a/b\"\nprovider = \"echo\"\nplans = [\"pro\"]", "models[1].upstream"},
		{"model input negative", validBase + "[[models]]\nid = \"a/b\"\nprovider = \"echo\"\nupstream = \"e\"\nplans = [\"pro\"]\ninput_usd_per_mtok = -1", "models[1].input_usd_per_mtok"},
		{"model output 7 decimals", validBase + "[[models]]\nid = \"a/b\"\nprovider = \"echo\"\nupstream = \"e\"\nplans = [\"pro\"]\noutput_usd_per_mtok = 0.0000001", "models[1].output_usd_per_mtok"},
		{"model cache read huge", validBase + "[[models]]\nid = \"a/b\"\nprovider = \"echo\"\nupstream = \"e\"\nplans = [\"pro\"]\ncache_read_usd_per_mtok = 1000001", "models[1].cache_read_usd_per_mtok"},
		{"model cache write negative", validBase + "[[models]]\nid = \"a/b\"\nprovider = \"echo\"\nupstream = \"e\"\nplans = [\"pro\"]\ncache_write_usd_per_mtok = -0.1", "models[1].cache_write_usd_per_mtok"},
		{"model image nan", validBase + "[[models]]\nid = \"a/b\"\nprovider = \"echo\"\nupstream = \"e\"\nplans = [\"pro\"]\nimage_usd = nan", "models[1].image_usd"},
		{"model request 7 decimals", validBase + "[[models]]\nid = \"a/b\"\nprovider = \"echo\"\nupstream = \"e\"\nplans = [\"pro\"]\nrequest_usd = 0.0012345", "models[1].request_usd"},
		{"model no plans", validBase + "[[models]]\nid = \"a/b\"\nprovider = \"echo\"\nupstream = \"e\"", "models[1].plans"},
		{"model empty plans", validBase + "[[models]]\nid = \"a/b\"\nprovider = \"echo\"\nupstream = \"e\"\nplans = []", "models[1].plans"},
		{"model bad plan id", validBase + "[[models]]\nid = \"a/b\"\nprovider = \"echo\"\nupstream = \"e\"\nplans = [\"pro\", \"\"]", "models[1].plans[1]"},
		{"model plan twice", validBase + "[[models]]\nid = \"a/b\"\nprovider = \"echo\"\nupstream = \"e\"\nplans = [\"pro\", \"pro\"]", "models[1].plans[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.toml))
			if err == nil {
				t.Fatalf("Parse accepted %q", tt.toml)
			}
			if c != nil {
				t.Errorf("Parse returned a config with its error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "config: ") {
				t.Errorf("error %q lacks the \"config: \" prefix", msg)
			}
			if !strings.Contains(msg, tt.key) {
				t.Errorf("error %q does not name %s", msg, tt.key)
			}
		})
	}
}

// Validate reports every problem, not only the first.
func TestValidateReportsAll(t *testing.T) {
	c := Default()
	c.Node.ID = ""
	c.Payg.RPM = 0
	c.Plans = []Plan{{ID: "x", RPM: 1, Burst: 1, PriceMicroUSD: 1000}}
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad config")
	}
	for _, key := range []string{"node.id", "payg.rpm", "plans[0].price_usd"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error %q does not name %s", err, key)
		}
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if !strings.HasPrefix(line, "config: ") {
			t.Errorf("line %q lacks the \"config: \" prefix", line)
		}
	}
}

// A [[plans]] entry is checked by the ledger's plan rules, each broken
// rule filed under its key, every one of them.
func TestPlanRules(t *testing.T) {
	c := Default()
	c.Plans = []Plan{
		{ID: "Bad Id", Name: strings.Repeat("n", 65), PriceMicroUSD: 1000, Window5hMicroFlows: 0, WeeklyMicroFlows: -1, MonthlyMicroFlows: ledger.MaxPlanMicroFlows + 1, RPM: 0, Burst: ledger.MaxRateLimit + 1},
		{ID: "free", PriceMicroUSD: 10_000, Window5hMicroFlows: 1, WeeklyMicroFlows: 1, MonthlyMicroFlows: 1, RPM: 1, Burst: 1},
		{ID: "team", Window5hMicroFlows: 1, WeeklyMicroFlows: 1, MonthlyMicroFlows: 1, RPM: 1, Burst: 1},
		{ID: "team", Name: "Team", Window5hMicroFlows: 1, WeeklyMicroFlows: 1, MonthlyMicroFlows: 1, RPM: 1, Burst: 1},
	}
	want := []string{
		"config: plans[0].id: must be 1-32 of [a-z0-9_-]",
		"config: plans[0].name: must be 1-64 characters",
		"config: plans[0].price_usd: must be whole cents between 0 and 1000000",
		"config: plans[0].window_5h_flows: must be > 0 and ≤ 1e9",
		"config: plans[0].weekly_flows: must be > 0 and ≤ 1e9",
		"config: plans[0].monthly_flows: must be > 0 and ≤ 1e9",
		"config: plans[0].rpm: must be 1..1000000",
		"config: plans[0].burst: must be 1..1000000",
		"config: plans[1].price_usd: must be 0 on the free plan",
		`config: plans[3].id: "team" is already used by another plan`,
	}
	if err := c.Validate(); err == nil || err.Error() != strings.Join(want, "\n") {
		t.Fatalf("Validate = %v\nwant\n%s", err, strings.Join(want, "\n"))
	}
	// An entry without a name is named by its id, as it is seeded.
	if got := c.Plans[2].Ledger().Name; got != "team" {
		t.Fatalf("unnamed plan seeds as %q", got)
	}
}

func TestMultiNode(t *testing.T) {
	c, err := Parse([]byte(`
[node]
id = "n2"
[cluster]
bootstrap = false
join = ["10.0.0.1:8081", "[::1]:8081"]
secret_file = "/etc/zenmux/secret"
`))
	if err != nil {
		t.Fatalf("joining node: %v", err)
	}
	if c.Cluster.Bootstrap || len(c.Cluster.Join) != 2 {
		t.Fatalf("cluster = %+v", c.Cluster)
	}
}

// Peers dial a node at its advertised addresses: the listen addresses
// unless set, and set they must be where a listener takes every interface.
func TestAdvertise(t *testing.T) {
	c, err := Parse([]byte(`
[node]
listen = "0.0.0.0:8080"
admin_listen = "0.0.0.0:8081"
raft_listen = "[::]:8300"
advertise_admin = "10.0.0.2:8081"
advertise_raft = "10.0.0.2:8300"
[cluster]
bootstrap = false
join = ["10.0.0.1:8081"]
secret_file = "/etc/zenmux/secret"
`))
	if err != nil {
		t.Fatalf("wildcard listeners with advertised addresses: %v", err)
	}
	if a, r := c.Node.AdminAddr(), c.Node.RaftAddr(); a != "10.0.0.2:8081" || r != "10.0.0.2:8300" {
		t.Errorf("advertised %s, %s", a, r)
	}
	// Alone, a node's admin address is dialled by no peer.
	c, err = Parse([]byte("[node]\nadmin_listen = \"0.0.0.0:8081\""))
	if err != nil {
		t.Fatalf("single node, admin on every interface: %v", err)
	}
	if a, r := c.Node.AdminAddr(), c.Node.RaftAddr(); a != "0.0.0.0:8081" || r != "127.0.0.1:8300" {
		t.Errorf("defaults advertised %s, %s", a, r)
	}
}

func TestUnknownKeys(t *testing.T) {
	_, err := Parse([]byte(`
[node]
lisen = "127.0.0.1:9000"

[[providers]]
name = "echo"
kind = "echo"

[[providers]]
name = "oa"
kind = "openai"
base_url = "https://x/v1"
api_key = "sk-secret-value"

[[plans]]
id = "pro"
rpm = 1
burst = 1
prize_usd = 3

[bogus]
a.b = 1
c = 2
`))
	if err == nil {
		t.Fatal("unknown keys accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		`config: unknown key "node.lisen"`,
		`config: unknown key "providers[1].api_key"`,
		`config: unknown key "plans[0].prize_usd"`,
		`config: unknown key "bogus"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "bogus.c") {
		t.Errorf("error %q repeats keys under an unknown table", msg)
	}
	if strings.Contains(msg, "sk-secret-value") {
		t.Errorf("error %q leaks a value", msg)
	}
}

func TestDurations(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
	}{
		{`"2ms"`, 2 * time.Millisecond},
		{`"500us"`, 500 * time.Microsecond},
		{`"1s"`, time.Second},
		{`"1ns"`, time.Nanosecond},
		{`"0.25s"`, 250 * time.Millisecond},
	} {
		c, err := Parse([]byte(echoEntry + "idle_timeout = " + tt.in))
		if err != nil {
			t.Fatalf("idle_timeout = %s: %v", tt.in, err)
		}
		if got := time.Duration(c.Providers[0].IdleTimeout); got != tt.want {
			t.Errorf("idle_timeout = %s: got %v, want %v", tt.in, got, tt.want)
		}
	}
	var d Duration
	if err := d.UnmarshalText([]byte("1m30s")); err != nil || time.Duration(d) != 90*time.Second {
		t.Fatalf("UnmarshalText(1m30s) = %v, %v", time.Duration(d), err)
	}
	if b, _ := d.MarshalText(); string(b) != "1m30s" || d.String() != "1m30s" {
		t.Fatalf("MarshalText = %q, String = %q", b, d.String())
	}
	if err := d.UnmarshalText([]byte("fast")); err == nil {
		t.Fatal(`UnmarshalText("fast") accepted`)
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "z.toml")
	if err := os.WriteFile(path, []byte("[node]\nid = \"n3\"\n[payg]\nrpm = 60\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Node.ID != "n3" || c.Payg.RPM != 60 || c.Payg.Burst != 600 {
		t.Fatalf("Load = %+v", c)
	}
	if _, err := Load(filepath.Join(dir, "missing.toml")); err == nil || !strings.HasPrefix(err.Error(), "config: ") {
		t.Fatalf("Load(missing) = %v", err)
	}
	if err := os.WriteFile(path, []byte("[node\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.HasPrefix(err.Error(), "config: ") {
		t.Fatalf("Load(broken) = %v", err)
	}
}

// Amounts are read from the file's decimal digits into integer units:
// every value below would come out a unit off if multiplied as a float
// (914.443 * 1e6 = 914442999.9999999).
func TestAmounts(t *testing.T) {
	c, err := Parse([]byte(`
[flow]
usd_per_flow = 0.000100001

[[plans]]
id = "team"
price_usd = 19.99
window_5h_flows = 0.000001
weekly_flows = 5486.659
monthly_flows = 914.443
rpm = 1
burst = 1

[[models]]
id = "a/b"
provider = "echo"
upstream = "e"
plans = ["team"]
input_usd_per_mtok = 0.125
output_usd_per_mtok = 14.631091
cache_read_usd_per_mtok = 0.3
cache_write_usd_per_mtok = 1000
image_usd = 1e-6
request_usd = 2.5e1
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Flow.NanoUSDPerFlow; got != 100_001 {
		t.Errorf("usd_per_flow = %d nano-USD, want 100001", got)
	}
	wantPlan := Plan{ID: "team", PriceMicroUSD: 19_990000, Window5hMicroFlows: 1, WeeklyMicroFlows: 5486_659000, MonthlyMicroFlows: 914_443000, RPM: 1, Burst: 1}
	if c.Plans[0] != wantPlan {
		t.Errorf("plan = %+v, want %+v", c.Plans[0], wantPlan)
	}
	m := c.Models[0]
	if m.InputMicroUSDPerMTok != 125000 || m.OutputMicroUSDPerMTok != 14_631091 || m.CacheReadMicroUSDPerM != 300000 ||
		m.CacheWriteMicroUSDPerM != 1000_000000 || m.ImageMicroUSD != 1 || m.RequestMicroUSD != 25_000000 {
		t.Errorf("model = %+v", m)
	}
	if s := fmt.Sprint(c.Flow.NanoUSDPerFlow, " ", c.Plans[0].MonthlyMicroFlows, " ", m.ImageMicroUSD); s != "0.000100001 914.443 0.000001" {
		t.Errorf("String() = %q", s)
	}

	// A value the unit cannot hold is refused under its key, with the
	// index of its entry, every one of them; nothing else is reported
	// until they are fixed.
	_, err = Parse([]byte(validBase + `
[flow]
usd_per_flow = 0.0328300001
[[plans]]
id = "x"
weekly_flows = 1.0000001
monthly_flows = "12"
rpm = 1
burst = 0
[[models]]
id = "a/b"
provider = "echo"
upstream = "e"
plans = ["pro"]
image_usd = nan
request_usd = 1e13
`))
	want := []string{
		"config: flow.usd_per_flow: 0.0328300001 has 10 decimals; at most 9",
		"config: plans[1].weekly_flows: 1.0000001 has 7 decimals; at most 6",
		"config: plans[1].monthly_flows: must be a number",
		"config: models[1].image_usd: NaN is not a finite number",
		"config: models[1].request_usd: 10000000000000 is out of range",
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Fatalf("Parse = %v\nwant\n%s", err, strings.Join(want, "\n"))
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error %v is not ErrInvalid", err)
	}

	// Written back, amounts read the same.
	for _, v := range []Micros{0, 1, 19_990000, 914_443000, -500000, ledger.MaxPlanMicroFlows} {
		b, _ := v.MarshalTOML()
		var back Micros
		if err := toml.Unmarshal([]byte("v = "+string(b)), &struct {
			V *Micros `toml:"v"`
		}{&back}); err != nil || back != v {
			t.Errorf("Micros %d written as %s reads %d, %v", v, b, back, err)
		}
	}
}

func clusterTOML(secret, cert, key, ca string) string {
	var b strings.Builder
	b.WriteString("[cluster]\n")
	for _, kv := range [][2]string{{"secret_file", secret}, {"tls_cert_file", cert}, {"tls_key_file", key}, {"tls_ca_file", ca}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, "%s = %q\n", kv[0], kv[1])
		}
	}
	return b.String()
}

func TestClusterTLSValid(t *testing.T) {
	_, f := testca.NodeFiles(t)
	c, err := Parse([]byte(clusterTOML("/etc/zenmux/secret", f.Cert, f.Key, f.CA)))
	if err != nil {
		t.Fatalf("valid TLS config: %v", err)
	}
	if c.Cluster.TLSCertFile != f.Cert || c.Cluster.TLSKeyFile != f.Key || c.Cluster.TLSCAFile != f.CA || !c.Cluster.TLSEnabled() {
		t.Fatalf("cluster = %+v", c.Cluster)
	}
	if Default().Cluster.TLSEnabled() {
		t.Fatal("TLS enabled by default")
	}
	wild := "[node]\nraft_listen = \"0.0.0.0:8300\"\nadmin_listen = \":8081\"\nadvertise_admin = \"127.0.0.1:8081\"\n"
	if _, err := Parse([]byte(wild + "advertise_raft = \"127.0.0.1:8300\"\n" + clusterTOML("s", f.Cert, f.Key, f.CA))); err != nil {
		t.Fatalf("wildcard listeners: %v", err)
	}
}

// Config checks that the TLS files are named together and exist; what they
// hold is checked by the node when it starts (node/tls_test.go).
func TestClusterTLSBad(t *testing.T) {
	_, f := testca.NodeFiles(t)
	missing := filepath.Join(f.Dir, "missing.pem")
	tests := []struct {
		name, toml string
		keys       []string // every one must be named
	}{
		{"cert only", clusterTOML("s", f.Cert, "", ""), []string{"cluster.tls_key_file", "cluster.tls_ca_file"}},
		{"key only", clusterTOML("s", "", f.Key, ""), []string{"cluster.tls_cert_file", "cluster.tls_ca_file"}},
		{"ca only", clusterTOML("s", "", "", f.CA), []string{"cluster.tls_cert_file", "cluster.tls_key_file"}},
		{"no ca", clusterTOML("s", f.Cert, f.Key, ""), []string{"cluster.tls_ca_file"}},
		{"no secret", clusterTOML("", f.Cert, f.Key, f.CA), []string{"cluster.secret_file"}},
		{"cert missing", clusterTOML("s", missing, f.Key, f.CA), []string{"cluster.tls_cert_file"}},
		{"key missing", clusterTOML("s", f.Cert, missing, f.CA), []string{"cluster.tls_key_file"}},
		{"ca missing", clusterTOML("s", f.Cert, f.Key, missing), []string{"cluster.tls_ca_file"}},
		{"ca a directory", clusterTOML("s", f.Cert, f.Key, f.Dir), []string{"cluster.tls_ca_file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.toml))
			if err == nil || c != nil {
				t.Fatalf("Parse accepted %q", tt.toml)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "config: ") {
					t.Errorf("line %q lacks the \"config: \" prefix", line)
				}
			}
			for _, key := range tt.keys {
				if !strings.Contains(err.Error(), key) {
					t.Errorf("error %q does not name %s", err, key)
				}
			}
		})
	}
}

// A [[providers]] entry naming a preset takes the preset's name, kind,
// base URL, key variable and flags for the keys it leaves out; keys it
// gives win, and a key file replaces the preset's key variable.
func TestProviderPresets(t *testing.T) {
	c, err := Parse([]byte(`
[[providers]]
preset = "anthropic"

[[providers]]
preset = "deepseek"

[[providers]]
preset = "openai"
name = "openai-eu"
base_url = "https://eu.api.openai.com/v1"
api_key_file = "/run/secrets/openai"
max_concurrent = 8

[[providers]]
preset = "minimax"
kind = "anthropic"
base_url = "https://api.minimax.io/anthropic"
no_responses = false
drop_betas = true
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Provider{
		{Name: "anthropic", Preset: "anthropic", Kind: KindAnthropic, BaseURL: "https://api.anthropic.com", APIKeyEnv: "ANTHROPIC_API_KEY"},
		{Name: "deepseek", Preset: "deepseek", Kind: KindOpenAI, BaseURL: "https://api.deepseek.com", APIKeyEnv: "DEEPSEEK_API_KEY", NoResponses: true},
		{Name: "openai-eu", Preset: "openai", Kind: KindOpenAI, BaseURL: "https://eu.api.openai.com/v1", APIKeyFile: "/run/secrets/openai"},
		{Name: "minimax", Preset: "minimax", Kind: KindAnthropic, BaseURL: "https://api.minimax.io/anthropic", APIKeyEnv: "MINIMAX_API_KEY", DropBetas: true},
	}
	for i := range want {
		providerDefaults(&want[i], nil)
	}
	want[2].MaxConcurrent = 8
	if !reflect.DeepEqual(c.Providers, want) {
		t.Errorf("providers =\n%+v\nwant\n%+v", c.Providers, want)
	}

	for _, tt := range []struct{ name, toml, key, msg string }{
		{"unknown preset", "[[providers]]\npreset = \"vertex\"", "providers[0].preset", `"vertex" is not a preset (openai, anthropic, gemini, deepseek, xai, moonshot, zai, qwen, minimax, openrouter)`},
		{"key env and file", "[[providers]]\npreset = \"xai\"\napi_key_env = \"X\"\napi_key_file = \"/k\"", "providers[0].api_key_file", "is exclusive with api_key_env"},
		{"no_responses on anthropic", "[[providers]]\npreset = \"anthropic\"\nno_responses = true", "providers[0].no_responses", `is for kind "openai" only, not "anthropic"`},
		{"drop_betas on openai", "[[providers]]\npreset = \"zai\"\ndrop_betas = true", "providers[0].drop_betas", `is for kind "anthropic" only, not "openai"`},
		{"two of one preset", "[[providers]]\npreset = \"qwen\"\n[[providers]]\npreset = \"qwen\"", "providers[1].name", `"qwen" is already used by another provider`},
	} {
		_, err := Parse([]byte(tt.toml))
		if err == nil || !strings.Contains(err.Error(), "config: "+tt.key+": "+tt.msg) {
			t.Errorf("%s: %v, want %s: %s", tt.name, err, tt.key, tt.msg)
		}
	}
}

// A [[models]] entry for a built-in model changes only the keys it gives
// and keeps the catalog's others (name, plans, other prices); giving any
// price prices an unpriced model (M5). A new id is a whole model, and a
// model names a provider and an upstream together or neither.
func TestModelsMergeOverCatalog(t *testing.T) {
	var unpriced ledger.Model
	for _, m := range BuiltinModels() {
		if m.Unpriced {
			unpriced = m
			break
		}
	}
	if unpriced.ID == "" {
		t.Skip("every catalog model is priced")
	}
	base := `
[[providers]]
name = "echo"
kind = "echo"
`
	c, err := Parse([]byte(base + `
[[models]]
id = "anthropic/claude-opus-4.6"
input_usd_per_mtok = 4.5

[[models]]
id = "` + unpriced.ID + `"
output_usd_per_mtok = 0

[[models]]
id = "zenmux/echo"
plans = ["pro"]

[[models]]
id = "anthropic/claude-haiku-4.5"
name = "Haiku"
provider = "echo"
upstream = "echo"

[[models]]
id = "acme/new"
provider = "echo"
upstream = "e"
plans = ["free"]
`))
	if err != nil {
		t.Fatal(err)
	}
	builtin := map[string]ledger.Model{}
	for _, m := range BuiltinModels() {
		builtin[m.ID] = m
	}
	seeded := map[string]ledger.Model{}
	for _, m := range c.SeedModels() {
		seeded[m.ID] = m
	}
	if len(seeded) != len(builtin)+1 {
		t.Errorf("%d seeded models, want the %d built-in ones and acme/new", len(seeded), len(builtin))
	}
	opus := builtin["anthropic/claude-opus-4.6"]
	opus.InputMicroUSDPerMTok, opus.Unpriced = 4_500000, false
	up := builtin[unpriced.ID]
	up.Unpriced = false
	echo := builtin[ledger.EchoModelID]
	echo.Plans = []string{"pro"}
	haiku := builtin["anthropic/claude-haiku-4.5"]
	haiku.Name, haiku.Provider, haiku.Upstream = "Haiku", "echo", "echo"
	for _, want := range []ledger.Model{opus, up, echo, haiku,
		{ID: "acme/new", Provider: "echo", Upstream: "e", Plans: []string{"free"}},
		builtin["openai/gpt-5.4"],
	} {
		if got := seeded[want.ID]; !reflect.DeepEqual(got, want) {
			t.Errorf("seeded %s =\n%+v\nwant\n%+v", want.ID, got, want)
		}
	}
	if opus.Name != "Claude Opus 4.6" || len(opus.Plans) == 0 {
		t.Errorf("the repriced model lost its catalog name or plans: %+v", opus)
	}

	for _, tt := range []struct{ name, toml, key string }{
		{"new model without provider", "[[models]]\nid = \"acme/x\"\nupstream = \"e\"\nplans = [\"pro\"]", "models[0].provider"},
		{"new model without plans", "[[models]]\nid = \"acme/x\"\nprovider = \"echo\"\nupstream = \"e\"", "models[0].plans"},
		{"catalog model upstream alone", "[[models]]\nid = \"openai/gpt-5.4\"\nupstream = \"gpt-5.4\"", "models[0].provider"},
		{"catalog model provider alone", "[[models]]\nid = \"openai/gpt-5.4\"\nprovider = \"echo\"", "models[0].upstream"},
		{"catalog model unknown provider", "[[models]]\nid = \"openai/gpt-5.4\"\nprovider = \"openai\"\nupstream = \"gpt-5.4\"", "models[0].provider"},
		{"catalog model empty plans", "[[models]]\nid = \"openai/gpt-5.4\"\nplans = []", "models[0].plans"},
	} {
		if _, err := Parse([]byte(base + tt.toml)); err == nil || !strings.Contains(err.Error(), "config: "+tt.key+": ") {
			t.Errorf("%s: %v, want an error under %s", tt.name, err, tt.key)
		}
	}
}
