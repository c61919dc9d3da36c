// Package config loads and validates a zenmuxd node's TOML configuration
// (docs/config.md).
//
// A configuration is always Default() with a file laid over it, then
// Validate()d before anything starts. Unknown keys are an error, and every
// error names the offending key by its TOML path (`plans[2].price_usd`) and
// starts with "config: " (ErrInvalid).
//
// Money and Flow amounts are integers (Micros, Nanos) read from the
// file's decimal numbers digit by digit: no float64 holds one.
//
// Plans, models and the Flow rate are only seeds: they are replicated state
// once a cluster is bootstrapped. Config [[plans]] replace the ledger's
// built-in plans by id; [[models]] entries lay the keys they give over the
// built-in catalog (SeedModels). The check that the plan ids a model names
// exist belongs to the ledger, not to this package. Providers are per node.
package config

import (
	"cmp"
	"slices"
	"time"

	"zenmux/catalog"
	"zenmux/ledger"
)

// Config is a whole node configuration, one field per TOML section.
type Config struct {
	Node        Node        `toml:"node"`
	Admin       Admin       `toml:"admin"`
	Cluster     Cluster     `toml:"cluster"`
	Flow        Flow        `toml:"flow"`
	Proxy       Proxy       `toml:"proxy"`
	Accounting  Accounting  `toml:"accounting"`
	Payg        Payg        `toml:"payg"`
	SelfService SelfService `toml:"selfservice"`
	Payments    Payments    `toml:"payments"`
	Providers   []Provider  `toml:"providers"`
	Plans       []Plan      `toml:"plans"`
	Models      []Model     `toml:"models"`
}

// Node is the [node] section: this node's identity, storage and listeners.
type Node struct {
	ID          string `toml:"id"`
	DataDir     string `toml:"data_dir"`
	Listen      string `toml:"listen"`       // proxy, self-service API, web pages
	AdminListen string `toml:"admin_listen"` // admin API, /metrics
	RaftListen  string `toml:"raft_listen"`
	// AdvertiseAdmin and AdvertiseRaft are the addresses peers dial for
	// this node's admin API and Raft (default: the listen address). A
	// listener on every interface (0.0.0.0, ::) needs one: that is not an
	// address another machine can reach.
	AdvertiseAdmin string `toml:"advertise_admin"`
	AdvertiseRaft  string `toml:"advertise_raft"`
	TestClock      bool   `toml:"test_clock"` // enables /admin/v1/clock; tests only
	// MemtableMB sizes the state database's memtable: larger ones flush
	// less often, which a node committing tens of thousands of charges a
	// second needs, and cost that much more memory.
	MemtableMB int `toml:"memtable_mb"`
	// DrainGrace is how long a stopping node (SIGTERM) lets requests and
	// streams in flight finish before it closes them, (0, 1h].
	DrainGrace Duration `toml:"drain_grace"`
}

// AdminAddr is the address peers dial for this node's admin API.
func (n *Node) AdminAddr() string { return cmp.Or(n.AdvertiseAdmin, n.AdminListen) }

// RaftAddr is the address peers dial for this node's Raft.
func (n *Node) RaftAddr() string { return cmp.Or(n.AdvertiseRaft, n.RaftListen) }

// Admin is the [admin] section. The admin token comes from the
// ZENMUX_ADMIN_TOKEN environment variable, else TokenFile, else it is
// generated at first start into <data_dir>/admin.token.
type Admin struct {
	TokenFile string `toml:"token_file"`
	// TLSCertFile and TLSKeyFile serve the admin listener to operators
	// over TLS with their own certificate (a public CA's, say); both or
	// neither. The node reads them again when either file changes, without
	// a restart. Peers keep getting the cluster certificate (node/tls.go).
	TLSCertFile string `toml:"tls_cert_file"`
	TLSKeyFile  string `toml:"tls_key_file"`
}

// Cluster is the [cluster] section.
type Cluster struct {
	Bootstrap  bool     `toml:"bootstrap"`   // first node of a new cluster
	Join       []string `toml:"join"`        // admin addresses (host:port) of members
	SecretFile string   `toml:"secret_file"` // shared secret for node-to-node calls and Raft
	// SnapshotEntries is how many log entries pass between snapshots, and
	// how many are kept behind a snapshot for slow followers (16..10,000,000).
	SnapshotEntries int `toml:"snapshot_entries"`
	// TLS for node-to-node traffic (Raft and the admin listener), all three
	// or none, PEM files: this node's certificate (optionally followed by
	// intermediates), its private key, and the cluster CA that signs every
	// node's certificate. It needs SecretFile: TLS adds to the secret.
	// Validate checks that the three are set together and exist; the node
	// reads and verifies them when it starts.
	TLSCertFile string `toml:"tls_cert_file"`
	TLSKeyFile  string `toml:"tls_key_file"`
	TLSCAFile   string `toml:"tls_ca_file"`
}

// TLSEnabled reports whether any [cluster] tls_*_file key is set.
func (c Cluster) TLSEnabled() bool {
	return c.TLSCertFile != "" || c.TLSKeyFile != "" || c.TLSCAFile != ""
}

// Flow is the [flow] section. NanoUSDPerFlow only seeds the replicated
// rate when a cluster is bootstrapped (M3).
type Flow struct {
	NanoUSDPerFlow Nanos `toml:"usd_per_flow"`
}

// Proxy is the [proxy] section.
type Proxy struct {
	MaxBodyBytes int64 `toml:"max_body_bytes"` // larger request bodies get 413
	// CountTokensRPM and CountTokensBurst are an account's own bucket for
	// /v1/messages/count_tokens: free, so not in the plan's bucket, but
	// limited (W3.5).
	CountTokensRPM   int `toml:"count_tokens_rpm"`
	CountTokensBurst int `toml:"count_tokens_burst"`
	// TLSCertFile and TLSKeyFile serve the proxy listener (the API, the
	// pages, Stripe's webhook) over TLS; both or neither. The node reads
	// them again when either file changes, without a restart.
	TLSCertFile string `toml:"tls_cert_file"`
	TLSKeyFile  string `toml:"tls_key_file"`
}

// Accounting is the [accounting] section: how charges are acknowledged,
// batched into Raft entries, and how long their traces are kept (C2, C4).
//
// Charges batch naturally: a batch forms while the previous one commits.
// With ack = "quorum" no charge waits on a timer for its batch to fill;
// with ack = "async" nothing waits for a commit, so a batch may gather for
// up to AsyncBatchWait, trading a slightly larger crash-loss window for far
// fewer Raft entries at moderate load.
type Accounting struct {
	Ack              string   `toml:"ack"`                // "quorum" or "async"
	DedupeDays       int      `toml:"dedupe_days"`        // charge ids and Idempotency-Keys, ≥ 7 (C4)
	RequestLogDays   int      `toml:"request_log_days"`   // request log retention
	BatchMaxCharges  int      `toml:"batch_max_charges"`  // charges per Raft entry, 1..10000
	MaxQueuedCharges int      `toml:"max_queued_charges"` // charges awaiting commit before request completion blocks, 1..1000000
	AsyncBatchWait   Duration `toml:"async_batch_wait"`   // ack = "async": how long a batch may gather, [0, 1s]
}

// Payg is the [payg] section: the token bucket of pay-as-you-go keys.
type Payg struct {
	RPM   int `toml:"rpm"`
	Burst int `toml:"burst"`
}

// SelfService is the [selfservice] section: the subscriber's sessions and
// how fast sign-in may be tried (docs/api.md, "Self-service API").
type SelfService struct {
	SessionTTL Duration `toml:"session_ttl"` // how long a session lasts from sign-in
	// SignInPerAddress and SignInPerAccount are sign-in attempts a minute
	// (and burst), per client address and per account, counted per node.
	SignInPerAddress int `toml:"sign_in_per_address"`
	SignInPerAccount int `toml:"sign_in_per_account"`
	// SecureCookie marks session cookies Secure on plain HTTP too, for a
	// listener behind a proxy that terminates TLS.
	SecureCookie bool `toml:"secure_cookie"`
}

// Payments is the [payments] section: who takes the subscriber's money.
// Provider "" or "manual" records plan changes for the operator to confirm;
// "stripe" takes card payments through Stripe Checkout, credited only by
// its signed webhook (docs/config.md). The Stripe secrets come from a
// variable or a file each, never from this file; they are per node.
type Payments struct {
	Provider                string `toml:"provider"`                   // "", "manual" or "stripe"
	StripeSecretKeyEnv      string `toml:"stripe_secret_key_env"`      // variable holding the secret API key
	StripeSecretKeyFile     string `toml:"stripe_secret_key_file"`     // or a file holding it; not both
	StripeWebhookSecretEnv  string `toml:"stripe_webhook_secret_env"`  // variable holding the webhook signing secret
	StripeWebhookSecretFile string `toml:"stripe_webhook_secret_file"` // or a file holding it; not both
	// StripeAPIBase replaces Stripe's API address (tests point it at
	// stripe-mock); "" is Stripe's own.
	StripeAPIBase string `toml:"stripe_api_base"`
	// PublicURL is the address subscribers reach the proxy listener at:
	// Checkout sends them back to its /console.
	PublicURL string `toml:"public_url"`
	// SweepEvery is how often the leader charges due renewals and sends
	// refunds to Stripe.
	SweepEvery Duration `toml:"sweep_every"`
}

// Payment providers.
const (
	PaymentsManual = "manual"
	PaymentsStripe = "stripe"
)

// Stripe reports whether card payments go through Stripe.
func (p Payments) Stripe() bool { return p.Provider == PaymentsStripe }

// Provider is one [[providers]] entry: where and how this node reaches an
// upstream. Kind is "openai", "anthropic", "gemini" or "echo"; an openai
// BaseURL includes its version prefix, an anthropic one does not
// (docs/config.md).
//
// Keys an entry leaves out get the defaults below (Parse fills them per
// entry). An entry naming a Preset gets the preset's name, kind, base URL,
// key variable and flags for the keys it leaves out (catalog.Preset), so
// `preset = "anthropic"` alone is a whole provider. Latency and
// TokensPerSecond belong to the echo kind only.
type Provider struct {
	Name       string `toml:"name"`
	Preset     string `toml:"preset"` // a catalog preset: the defaults of the keys below
	Kind       string `toml:"kind"`
	BaseURL    string `toml:"base_url"`
	APIKeyEnv  string `toml:"api_key_env"`  // name of the environment variable holding the key
	APIKeyFile string `toml:"api_key_file"` // or a file holding it (trimmed); not both
	// NoResponses: an openai upstream that serves Chat Completions only.
	NoResponses bool `toml:"no_responses"`
	// DropBetas: an anthropic upstream that refuses Anthropic's beta flags.
	DropBetas bool `toml:"drop_betas"`

	MaxConcurrent    int      `toml:"max_concurrent"`     // concurrent upstream calls, 1..100000; default 256
	ConnectTimeout   Duration `toml:"connect_timeout"`    // (0, 10m]; default 5s
	FirstByteTimeout Duration `toml:"first_byte_timeout"` // request sent → first byte of the answer, (0, 1h]; default 120s
	IdleTimeout      Duration `toml:"idle_timeout"`       // longest silence between reads of a streamed answer, (0, 1h]; default 120s
	Latency          Duration `toml:"latency"`            // echo only: delay before the first byte, [0, 1m]; default 0s
	TokensPerSecond  int      `toml:"tokens_per_second"`  // echo only: output pacing, 0 = as fast as possible, 0..1000000; default 0
}

// Defaults of the Provider keys an entry may leave out; Latency and
// TokensPerSecond default to 0.
const (
	DefaultMaxConcurrent    = 256
	DefaultConnectTimeout   = 5 * time.Second
	DefaultFirstByteTimeout = 120 * time.Second
	DefaultIdleTimeout      = 120 * time.Second
)

// providerDefaults fills the defaultable keys of p for which defined (nil
// meaning none) reports false. defined is given the TOML key, e.g. "latency".
func providerDefaults(p *Provider, defined func(key string) bool) {
	set := func(key string) bool { return defined != nil && defined(key) }
	if !set("max_concurrent") {
		p.MaxConcurrent = DefaultMaxConcurrent
	}
	if !set("connect_timeout") {
		p.ConnectTimeout = Duration(DefaultConnectTimeout)
	}
	if !set("first_byte_timeout") {
		p.FirstByteTimeout = Duration(DefaultFirstByteTimeout)
	}
	if !set("idle_timeout") {
		p.IdleTimeout = Duration(DefaultIdleTimeout)
	}
	if !set("latency") {
		p.Latency = 0
	}
	if !set("tokens_per_second") {
		p.TokensPerSecond = 0
	}
}

// presetDefaults fills the keys of p that its preset gives and that
// defined reports the entry left out: the name, kind, base URL, flags, and
// the key variable unless the entry reads its key from a file. An unknown
// preset fills nothing; Validate reports it.
func presetDefaults(p *Provider, defined func(key string) bool) {
	pr, ok := catalog.PresetByName(p.Preset)
	if !ok {
		return
	}
	if !defined("name") {
		p.Name = pr.Name
	}
	if !defined("kind") {
		p.Kind = pr.Kind
	}
	if !defined("base_url") {
		p.BaseURL = pr.BaseURL
	}
	if !defined("api_key_env") && !defined("api_key_file") {
		p.APIKeyEnv = pr.KeyEnv
	}
	if !defined("no_responses") {
		p.NoResponses = pr.NoResponses
	}
	if !defined("drop_betas") {
		p.DropBetas = pr.DropBetas
	}
}

// Plan is one [[plans]] entry; it seeds the replicated plans (P1). An
// entry without a name is named by its id.
type Plan struct {
	ID                 string `toml:"id"`
	Name               string `toml:"name"`
	PriceMicroUSD      Micros `toml:"price_usd"`
	Window5hMicroFlows Micros `toml:"window_5h_flows"`
	WeeklyMicroFlows   Micros `toml:"weekly_flows"`
	MonthlyMicroFlows  Micros `toml:"monthly_flows"`
	RPM                int    `toml:"rpm"`
	Burst              int    `toml:"burst"`
}

// Model is one [[models]] entry; it seeds the replicated catalog (M2, P3).
// Token prices are per million tokens. An entry whose id is a built-in
// model (zenmux/echo, or a catalog model) changes only the keys it sets
// (Over); another id is a new model, whole.
type Model struct {
	ID                     string   `toml:"id"` // catalog id, "vendor/name"
	Name                   string   `toml:"name"`
	Provider               string   `toml:"provider"`
	Upstream               string   `toml:"upstream"` // the model name the provider sees
	InputMicroUSDPerMTok   Micros   `toml:"input_usd_per_mtok"`
	OutputMicroUSDPerMTok  Micros   `toml:"output_usd_per_mtok"`
	CacheReadMicroUSDPerM  Micros   `toml:"cache_read_usd_per_mtok"`
	CacheWriteMicroUSDPerM Micros   `toml:"cache_write_usd_per_mtok"`
	ImageMicroUSD          Micros   `toml:"image_usd"`
	RequestMicroUSD        Micros   `toml:"request_usd"`
	Plans                  []string `toml:"plans"` // plan ids that may call the model

	// keys the file gave this entry, filled by Parse; nil for an entry
	// built in code, whose non-zero fields count as given.
	keys map[string]bool
}

// Ledger returns the plan as the ledger holds it, named by its id when
// the entry gives no name.
func (p *Plan) Ledger() ledger.Plan {
	return ledger.Plan{
		ID: p.ID, Name: cmp.Or(p.Name, p.ID), PriceMicroUSD: int64(p.PriceMicroUSD),
		Window5hMicroFlows: int64(p.Window5hMicroFlows), WeeklyMicroFlows: int64(p.WeeklyMicroFlows), MonthlyMicroFlows: int64(p.MonthlyMicroFlows),
		RPM: int64(p.RPM), Burst: int64(p.Burst),
	}
}

// Ledger returns the model as the ledger holds it: a new model, every
// field from the entry.
func (m *Model) Ledger() ledger.Model { return m.Over(ledger.Model{}) }

// Over returns base with the keys the entry gives laid over it, field by
// field, and the entry's id. Giving any price prices the model: it is no
// longer Unpriced (M5), even at 0.
func (m *Model) Over(base ledger.Model) ledger.Model {
	out := base
	out.ID, out.Plans = m.ID, slices.Clone(base.Plans)
	str := []struct {
		key      string
		dst, src *string
	}{{"name", &out.Name, &m.Name}, {"provider", &out.Provider, &m.Provider}, {"upstream", &out.Upstream, &m.Upstream}}
	for _, f := range str {
		if m.given(f.key) {
			*f.dst = *f.src
		}
	}
	prices := []struct {
		key string
		dst *int64
		src Micros
	}{
		{"input_usd_per_mtok", &out.InputMicroUSDPerMTok, m.InputMicroUSDPerMTok},
		{"output_usd_per_mtok", &out.OutputMicroUSDPerMTok, m.OutputMicroUSDPerMTok},
		{"cache_read_usd_per_mtok", &out.CacheReadMicroUSDPerM, m.CacheReadMicroUSDPerM},
		{"cache_write_usd_per_mtok", &out.CacheWriteMicroUSDPerM, m.CacheWriteMicroUSDPerM},
		{"image_usd", &out.ImageMicroUSD, m.ImageMicroUSD},
		{"request_usd", &out.RequestMicroUSD, m.RequestMicroUSD},
	}
	for _, f := range prices {
		if m.given(f.key) {
			*f.dst, out.Unpriced = int64(f.src), false
		}
	}
	if m.given("plans") {
		out.Plans = slices.Clone(m.Plans)
	}
	return out
}

// given reports whether the entry sets a key: the file wrote it, or, for
// an entry built in code, its field is not zero.
func (m *Model) given(key string) bool {
	if m.keys != nil {
		return m.keys[key]
	}
	switch key {
	case "name":
		return m.Name != ""
	case "provider":
		return m.Provider != ""
	case "upstream":
		return m.Upstream != ""
	case "input_usd_per_mtok":
		return m.InputMicroUSDPerMTok != 0
	case "output_usd_per_mtok":
		return m.OutputMicroUSDPerMTok != 0
	case "cache_read_usd_per_mtok":
		return m.CacheReadMicroUSDPerM != 0
	case "cache_write_usd_per_mtok":
		return m.CacheWriteMicroUSDPerM != 0
	case "image_usd":
		return m.ImageMicroUSD != 0
	case "request_usd":
		return m.RequestMicroUSD != 0
	case "plans":
		return m.Plans != nil
	}
	return false
}

// BuiltinModels is the catalog a cluster is seeded with before config:
// the ledger's echo model, then every catalog model (catalog.Models).
func BuiltinModels() []ledger.Model {
	return append(ledger.DefaultModels(), catalog.Models()...)
}

// SeedModels is the catalog this config seeds: BuiltinModels with each
// [[models]] entry laid over the model of its id (Over), or appended
// after them, whole, when its id is new.
func (c *Config) SeedModels() []ledger.Model {
	out := BuiltinModels()
	at := make(map[string]int, len(out))
	for i := range out {
		at[out[i].ID] = i
	}
	for i := range c.Models {
		m := &c.Models[i]
		if j, ok := at[m.ID]; ok {
			out[j] = m.Over(out[j])
			continue
		}
		at[m.ID] = len(out)
		out = append(out, m.Ledger())
	}
	return out
}

// Duration is a time.Duration written in TOML as a Go duration string
// ("2ms", "1.5s").
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration in the form UnmarshalText reads.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(time.Duration(d).String()), nil
}

// String returns the Go duration string, e.g. "2ms".
func (d Duration) String() string { return time.Duration(d).String() }

// Default returns the built-in configuration: the one `zenmuxd` runs with
// when given no -config. Plans and Models are empty: the built-in plans and
// catalog live in the ledger.
func Default() *Config {
	return &Config{
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
		Flow:    Flow{NanoUSDPerFlow: ledger.DefaultNanoUSDPerFlow},
		Proxy:   Proxy{MaxBodyBytes: 32 << 20, CountTokensRPM: 100, CountTokensBurst: 20},
		Accounting: Accounting{
			Ack:              AckQuorum,
			DedupeDays:       7,
			RequestLogDays:   30,
			BatchMaxCharges:  1000,
			MaxQueuedCharges: 16000,
			AsyncBatchWait:   Duration(10 * time.Millisecond),
		},
		Payg:        Payg{RPM: 600, Burst: 600},
		SelfService: SelfService{SessionTTL: Duration(7 * 24 * time.Hour), SignInPerAddress: 10, SignInPerAccount: 20},
		Payments:    Payments{Provider: PaymentsManual, SweepEvery: Duration(30 * time.Second)},
		Providers:   defaultProviders(),
	}
}

// defaultProviders is the built-in provider list: echo alone, with every
// defaultable key at its default.
func defaultProviders() []Provider {
	echo := Provider{Name: "echo", Kind: KindEcho}
	providerDefaults(&echo, nil)
	return []Provider{echo}
}

// Values of Accounting.Ack.
const (
	AckQuorum = "quorum" // the last byte of a response waits for its charge's commit
	AckAsync  = "async"  // it does not
)

// Values of Provider.Kind.
const (
	KindOpenAI    = "openai"
	KindAnthropic = "anthropic"
	KindGemini    = "gemini"
	KindEcho      = "echo"
)
