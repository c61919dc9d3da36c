// Package config loads and validates a zenmuxd node's TOML configuration
// (API.md "Running" and "Config").
//
// A configuration is always Default() with a file laid over it, then
// Validate()d before anything starts. Unknown keys are an error, and every
// error names the offending key by its TOML path (`plans[2].price_usd`) and
// starts with "config: ".
//
// Plans, models and the Flow rate are only seeds: they are replicated state
// once a cluster is bootstrapped, and config [[plans]] and [[models]] merge
// over the ledger's built-in ones by id. That merge, and the check that the
// plan ids a model names exist, belong to the ledger, not to this package.
// Providers are per node.
package config

import (
	"bytes"
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/BurntSushi/toml"

	"zenmux/internal/tagname"
)

// Config is a whole node configuration, one field per TOML section.
type Config struct {
	Node       Node       `toml:"node"`
	Admin      Admin      `toml:"admin"`
	Cluster    Cluster    `toml:"cluster"`
	Flow       Flow       `toml:"flow"`
	Proxy      Proxy      `toml:"proxy"`
	Accounting Accounting `toml:"accounting"`
	Payg       Payg       `toml:"payg"`
	Providers  []Provider `toml:"providers"`
	Plans      []Plan     `toml:"plans"`
	Models     []Model    `toml:"models"`
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
	// Validate reads and checks the files (see loadTLS).
	TLSCertFile string `toml:"tls_cert_file"`
	TLSKeyFile  string `toml:"tls_key_file"`
	TLSCAFile   string `toml:"tls_ca_file"`
}

// ClusterTLS is the loaded and checked [cluster] TLS material.
type ClusterTLS struct {
	Cert tls.Certificate // this node's chain and key
	CA   *x509.CertPool  // the cluster CA: peers' chains must end there
}

// TLSEnabled reports whether any [cluster] tls_*_file key is set.
func (c Cluster) TLSEnabled() bool {
	return c.TLSCertFile != "" || c.TLSKeyFile != "" || c.TLSCAFile != ""
}

// LoadTLS reads and checks the [cluster] TLS files, as Validate does; it
// returns nil, nil when none is set. The node calls it at start, so files
// changed since Validate are checked again. Errors name the key.
func (c Cluster) LoadTLS() (*ClusterTLS, error) {
	var p problems
	m := c.loadTLS(&p, nil)
	if err := errors.Join(p...); err != nil {
		return nil, err
	}
	return m, nil
}

// loadTLS checks the [cluster] TLS keys: all three or none, and then that
// the files exist and parse, that the key matches the certificate, and
// that the certificate chains to the CA for both server and client use
// (every node is both) and is valid now. When node is given, it also
// checks that the certificate names the hosts of node.raft_listen and
// node.admin_listen, which peers dial and verify (wildcard hosts are not
// checked). It returns nil when TLS is off or a problem was found.
func (c Cluster) loadTLS(p *problems, node *Node) *ClusterTLS {
	if !c.TLSEnabled() {
		return nil
	}
	files := []struct{ key, path string }{
		{"cluster.tls_cert_file", c.TLSCertFile},
		{"cluster.tls_key_file", c.TLSKeyFile},
		{"cluster.tls_ca_file", c.TLSCAFile},
	}
	data := make([][]byte, len(files))
	ok := true
	for i, f := range files {
		if f.path == "" {
			p.add(f.key, "must be set when any of cluster.tls_cert_file, cluster.tls_key_file, cluster.tls_ca_file is (all three or none)")
			ok = false
			continue
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			p.add(f.key, "%v", err)
			ok = false
			continue
		}
		data[i] = b
	}
	if !ok {
		return nil
	}
	certPEM, keyPEM, caPEM := data[0], data[1], data[2]
	chain, err := parseCerts(certPEM)
	if err != nil {
		p.add("cluster.tls_cert_file", "%s: %v", c.TLSCertFile, err)
		return nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		p.add("cluster.tls_key_file", "%s: %v (a PEM private key matching cluster.tls_cert_file)", c.TLSKeyFile, err)
		return nil
	}
	cas, err := parseCerts(caPEM)
	if err != nil {
		p.add("cluster.tls_ca_file", "%s: %v", c.TLSCAFile, err)
		return nil
	}
	pool := x509.NewCertPool()
	for _, ca := range cas {
		pool.AddCert(ca)
	}
	inter := x509.NewCertPool()
	for _, ic := range chain[1:] {
		inter.AddCert(ic)
	}
	leaf := chain[0]
	for _, u := range []struct {
		usage x509.ExtKeyUsage
		name  string
	}{{x509.ExtKeyUsageServerAuth, "server"}, {x509.ExtKeyUsageClientAuth, "client"}} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{u.usage}}); err != nil {
			p.add("cluster.tls_cert_file", "%s does not verify against cluster.tls_ca_file for %s authentication (node certificates need both server and client authentication): %v",
				c.TLSCertFile, u.name, err)
			return nil
		}
	}
	if node != nil {
		raftKey, adminKey := "node.raft_listen", "node.admin_listen"
		if node.AdvertiseRaft != "" {
			raftKey = "node.advertise_raft"
		}
		if node.AdvertiseAdmin != "" {
			adminKey = "node.advertise_admin"
		}
		for _, l := range []struct{ key, addr string }{{raftKey, node.RaftAddr()}, {adminKey, node.AdminAddr()}} {
			host, _, err := net.SplitHostPort(l.addr)
			if err != nil || wildcard(host) {
				continue
			}
			if err := leaf.VerifyHostname(host); err != nil {
				p.add("cluster.tls_cert_file", "%s is not valid for the host of %s, which peers verify: %v", c.TLSCertFile, l.key, err)
			}
		}
	}
	cert.Leaf = leaf
	return &ClusterTLS{Cert: cert, CA: pool}
}

// parseCerts returns every CERTIFICATE block of a PEM file, in order.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return out, nil
}

// Flow is the [flow] section. UsdPerFlow only seeds the replicated rate when
// a cluster is bootstrapped (SPEC M3).
type Flow struct {
	UsdPerFlow float64 `toml:"usd_per_flow"`
}

// Proxy is the [proxy] section.
type Proxy struct {
	MaxBodyBytes int64 `toml:"max_body_bytes"` // larger request bodies get 413
	// CountTokensRPM and CountTokensBurst are an account's own bucket for
	// /v1/messages/count_tokens: free, so not in the plan's bucket, but
	// limited (WIRE.md §3.5).
	CountTokensRPM   int `toml:"count_tokens_rpm"`
	CountTokensBurst int `toml:"count_tokens_burst"`
}

// Accounting is the [accounting] section: how charges are acknowledged,
// batched into Raft entries, and how long their traces are kept (SPEC C2, C4).
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

// Provider is one [[providers]] entry: where and how this node reaches an
// upstream. Kind is "openai", "anthropic" or "echo"; an openai BaseURL
// includes its version prefix, an anthropic one does not (API.md "Proxy").
//
// Keys an entry leaves out get the defaults below (Parse fills them per
// entry). Latency and TokensPerSecond belong to the echo kind only.
type Provider struct {
	Name      string `toml:"name"`
	Kind      string `toml:"kind"`
	BaseURL   string `toml:"base_url"`
	APIKeyEnv string `toml:"api_key_env"` // name of the environment variable holding the key

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

// Plan is one [[plans]] entry; it seeds the replicated plans (SPEC P1).
type Plan struct {
	ID            string  `toml:"id"`
	Name          string  `toml:"name"`
	PriceUSD      float64 `toml:"price_usd"`
	Window5hFlows float64 `toml:"window_5h_flows"`
	WeeklyFlows   float64 `toml:"weekly_flows"`
	MonthlyFlows  float64 `toml:"monthly_flows"`
	RPM           int     `toml:"rpm"`
	Burst         int     `toml:"burst"`
}

// Model is one [[models]] entry; it seeds the replicated catalog (SPEC M2, P3).
type Model struct {
	ID                   string   `toml:"id"` // catalog id, "vendor/name"
	Provider             string   `toml:"provider"`
	Upstream             string   `toml:"upstream"` // the model name the provider sees
	InputUSDPerMTok      float64  `toml:"input_usd_per_mtok"`
	OutputUSDPerMTok     float64  `toml:"output_usd_per_mtok"`
	CacheReadUSDPerMTok  float64  `toml:"cache_read_usd_per_mtok"`
	CacheWriteUSDPerMTok float64  `toml:"cache_write_usd_per_mtok"`
	ImageUSD             float64  `toml:"image_usd"`
	RequestUSD           float64  `toml:"request_usd"`
	Plans                []string `toml:"plans"` // plan ids that may call the model
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
			MemtableMB:  8,
			Listen:      "127.0.0.1:8080",
			AdminListen: "127.0.0.1:8081",
			RaftListen:  "127.0.0.1:8300",
		},
		Cluster: Cluster{Bootstrap: true, SnapshotEntries: 8192},
		Flow:    Flow{UsdPerFlow: 0.03283},
		Proxy:   Proxy{MaxBodyBytes: 32 << 20, CountTokensRPM: 100, CountTokensBurst: 20},
		Accounting: Accounting{
			Ack:              AckQuorum,
			DedupeDays:       7,
			RequestLogDays:   30,
			BatchMaxCharges:  1000,
			MaxQueuedCharges: 16000,
			AsyncBatchWait:   Duration(10 * time.Millisecond),
		},
		Payg:      Payg{RPM: 600, Burst: 600},
		Providers: defaultProviders(),
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
	KindEcho      = "echo"
)

// Load reads the TOML file at path over Default() and validates the result.
// An empty path means Default() alone.
func Load(path string) (*Config, error) {
	if path == "" {
		c := Default()
		if err := c.Validate(); err != nil {
			return nil, err
		}
		return c, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data)
}

// Parse is Load from bytes: Default() overlaid with data, then Validate().
//
// Arrays replace rather than merge: a file with any [[providers]] replaces
// the built-in echo provider, so it must list echo again to keep it. Each
// file entry gets the Provider defaults for the keys it leaves out; a key
// given explicitly keeps its value, even 0, and is validated as such.
func Parse(data []byte) (*Config, error) {
	c := Default()
	// The decoder reuses existing slice elements, which would leak the default
	// echo provider's fields into the file's first [[providers]] entry.
	builtin := c.Providers
	c.Providers = nil
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(c)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := unknownKeys(md); err != nil {
		return nil, err
	}
	var defined func(i int, key string) bool
	if md.IsDefined("providers") {
		if defined, err = providerKeys(data); err != nil {
			return nil, err
		}
		for i := range c.Providers {
			providerDefaults(&c.Providers[i], func(key string) bool { return defined(i, key) })
		}
	} else {
		c.Providers = builtin
	}
	if err := c.validate(defined); err != nil {
		return nil, err
	}
	return c, nil
}

// providerKeys reports which keys each [[providers]] entry of data defines.
// toml.MetaData.IsDefined cannot look inside an array of tables (its path
// has no index step), and MetaData.Keys() does not separate the elements of
// an inline array, so the entries are read a second time as plain tables,
// which works for both `[[providers]]` and `providers = [{...}]`.
func providerKeys(data []byte) (func(i int, key string) bool, error) {
	var raw struct {
		Providers []map[string]any `toml:"providers"`
	}
	if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return func(i int, key string) bool {
		if i < 0 || i >= len(raw.Providers) {
			return false
		}
		_, ok := raw.Providers[i][key]
		return ok
	}, nil
}

// unknownKeys reports every key the decoder did not use, or used only by
// ignoring case (see caseExact), one error each, with array-of-tables
// indices filled in ("providers[1].nme"). Keys below an unknown table are
// not repeated.
func unknownKeys(md toml.MetaData) error {
	unknown := map[string]bool{}
	for _, k := range md.Undecoded() {
		unknown[k.String()] = true
	}
	for _, k := range md.Keys() {
		if !caseExact(k) {
			unknown[k.String()] = true
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	index := map[string]int{} // array-of-tables path → index of its current element
	var reported []string
	var errs []error
	for _, k := range md.Keys() {
		ks := k.String()
		if md.Type(k...) == "ArrayHash" {
			if n, ok := index[ks]; ok {
				index[ks] = n + 1
			} else {
				index[ks] = 0
			}
		}
		if !unknown[ks] {
			continue
		}
		under := false
		for _, r := range reported {
			if strings.HasPrefix(ks, r+".") {
				under = true
				break
			}
		}
		if under {
			continue
		}
		reported = append(reported, ks)
		var b strings.Builder
		for i := range k {
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(k[i])
			if n, ok := index[k[:i+1].String()]; ok && i < len(k)-1 {
				fmt.Fprintf(&b, "[%d]", n)
			}
		}
		errs = append(errs, fmt.Errorf("config: unknown key %q", b.String()))
	}
	return errors.Join(errs...)
}

// caseExact reports whether each step of key names a field of Config by
// its exact TOML tag. The decoder also takes a key that matches a tag only
// when case is ignored (`Burst` fills burst) and counts it as decoded, so
// such keys escaped the unknown-key check; and `[[plAns]]` next to
// `[[plans]]` both filled Plans, in map order, so which one won changed
// from one Parse of the same file to the next.
func caseExact(key toml.Key) bool {
	t := reflect.TypeFor[Config]()
	for _, step := range key {
		for t.Kind() == reflect.Slice || t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return true // below a value: the decoder refuses that itself
		}
		f, ok := tagname.Field(t, "toml", step)
		if !ok {
			return false
		}
		t = f.Type
	}
	return true
}

// Limits enforced by Validate.
const (
	maxUsdPerFlow    = 100
	maxBodyBytesMin  = 1024
	maxBodyBytesMax  = 1 << 30
	minDedupeDays    = 7 // SPEC C4
	maxDedupeDays    = 365
	maxRequestLogDay = 3650
	maxBatchCharges  = 10000
	maxQueuedCharges = 1_000_000
	maxConcurrent    = 100_000
	maxConnectTO     = 10 * time.Minute
	maxStreamTO      = time.Hour // first_byte_timeout and idle_timeout
	maxLatency       = time.Minute
	maxTokensPerSec  = 1_000_000
	maxRate          = 1_000_000 // rpm and burst
	maxPlanAmount    = 1e9
	maxModelPrice    = 1e6
	maxNodeIDLen     = 64
)

// problems collects validation errors, each naming its key.
type problems []error

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, fmt.Errorf("config: %s: %s", key, escapeControls(fmt.Sprintf(format, args...))))
}

// escapeControls writes control characters as Go escapes (\n, \x00). Some
// errors quote a value raw (net.SplitHostPort's and os.ReadFile's name it
// as given), and a value holding a newline, such as listen = "a\nb", broke
// its problem over two lines, the second without "config: " or a key:
// problems are joined one per line.
func escapeControls(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Validate checks every value and returns all problems found, joined, or nil.
// It does not check that plan ids named by models exist: plans are merged
// with the ledger's built-in ones, which this package does not know.
//
// Validate sees values, not keys, so an echo-only key set to its zero value
// on another kind passes here; Parse, which knows the keys, refuses it.
func (c *Config) Validate() error { return c.validate(nil) }

// validate is Validate; defined, when not nil, reports which keys the file
// gave each [[providers]] entry, so that an echo-only key is refused on
// another kind even when set to 0.
func (c *Config) validate(defined func(i int, key string) bool) error {
	var p problems

	// [node]
	switch {
	case c.Node.ID == "":
		p.add("node.id", "must not be empty")
	case len(c.Node.ID) > maxNodeIDLen || !allChars(c.Node.ID, isIDChar):
		p.add("node.id", "%q must be at most %d letters, digits, '.', '_' or '-'", c.Node.ID, maxNodeIDLen)
	}
	if c.Node.DataDir == "" {
		p.add("node.data_dir", "must not be empty")
	}
	listeners := []struct{ key, addr string }{
		{"node.listen", c.Node.Listen},
		{"node.admin_listen", c.Node.AdminListen},
		{"node.raft_listen", c.Node.RaftListen},
	}
	valid := make([]bool, len(listeners))
	for i, l := range listeners {
		valid[i] = checkHostPort(&p, l.key, l.addr, true)
	}
	for i := range listeners {
		for j := i + 1; j < len(listeners); j++ {
			if valid[i] && valid[j] && sameListener(listeners[i].addr, listeners[j].addr) {
				p.add(listeners[j].key, "%q collides with %s %q", listeners[j].addr, listeners[i].key, listeners[i].addr)
			}
		}
	}

	clustered := len(c.Cluster.Join) > 0 || !c.Cluster.Bootstrap || c.Cluster.SecretFile != ""
	for _, a := range []struct {
		key, addr, listenKey, listen string
		need                         bool
	}{
		// Raft advertises its address even alone: it is the bootstrap
		// configuration's server address.
		{"node.advertise_raft", c.Node.AdvertiseRaft, "node.raft_listen", c.Node.RaftListen, valid[2]},
		{"node.advertise_admin", c.Node.AdvertiseAdmin, "node.admin_listen", c.Node.AdminListen, valid[1] && clustered},
	} {
		switch {
		case a.addr != "":
			if checkHostPort(&p, a.key, a.addr, false) && WildcardHost(a.addr) {
				p.add(a.key, "%q is not an address peers can dial", a.addr)
			}
		case a.need && WildcardHost(a.listen):
			p.add(a.key, "must be set: %s %q listens on every interface, which is not an address peers can dial", a.listenKey, a.listen)
		}
	}

	// [cluster]
	for i, addr := range c.Cluster.Join {
		checkHostPort(&p, fmt.Sprintf("cluster.join[%d]", i), addr, false)
	}
	if c.Cluster.SecretFile == "" && (len(c.Cluster.Join) > 0 || !c.Cluster.Bootstrap || c.Cluster.TLSEnabled()) {
		p.add("cluster.secret_file", "must be set when cluster.join is not empty, cluster.bootstrap is false or cluster TLS is configured (TLS adds to the secret, it does not replace it)")
	}
	c.Cluster.loadTLS(&p, &c.Node)

	// [flow]
	if f := c.Flow.UsdPerFlow; !(f > 0 && f <= maxUsdPerFlow) {
		p.add("flow.usd_per_flow", "%v must be > 0 and ≤ %d", f, maxUsdPerFlow)
	} else if d := Decimals(f); d > 9 {
		p.add("flow.usd_per_flow", "%v has %d decimals; at most 9", f, d)
	}

	// [proxy]
	if n := c.Proxy.MaxBodyBytes; n < maxBodyBytesMin || n > maxBodyBytesMax {
		p.add("proxy.max_body_bytes", "%d must be in [%d, %d] (1 KiB to 1 GiB)", n, maxBodyBytesMin, maxBodyBytesMax)
	}

	// [accounting]
	a := c.Accounting
	if a.Ack != AckQuorum && a.Ack != AckAsync {
		p.add("accounting.ack", "%q must be %q or %q", a.Ack, AckQuorum, AckAsync)
	}
	if a.DedupeDays < minDedupeDays || a.DedupeDays > maxDedupeDays {
		p.add("accounting.dedupe_days", "%d must be in [%d, %d] (SPEC C4: at least 7 days)", a.DedupeDays, minDedupeDays, maxDedupeDays)
	}
	if a.RequestLogDays < 1 || a.RequestLogDays > maxRequestLogDay {
		p.add("accounting.request_log_days", "%d must be in [1, %d]", a.RequestLogDays, maxRequestLogDay)
	}
	if a.BatchMaxCharges < 1 || a.BatchMaxCharges > maxBatchCharges {
		p.add("accounting.batch_max_charges", "%d must be in [1, %d]", a.BatchMaxCharges, maxBatchCharges)
	}
	checkRange(&p, "accounting.max_queued_charges", a.MaxQueuedCharges, 1, maxQueuedCharges)
	if w := time.Duration(a.AsyncBatchWait); w < 0 || w > time.Second {
		p.add("accounting.async_batch_wait", "%s must be in [0s, 1s]", w)
	}

	checkRange(&p, "cluster.snapshot_entries", c.Cluster.SnapshotEntries, 16, 10_000_000)
	checkRange(&p, "node.memtable_mb", c.Node.MemtableMB, 4, 1024)

	// [payg]
	checkRange(&p, "proxy.count_tokens_rpm", c.Proxy.CountTokensRPM, 1, maxRate)
	checkRange(&p, "proxy.count_tokens_burst", c.Proxy.CountTokensBurst, 1, maxRate)
	checkRange(&p, "payg.rpm", c.Payg.RPM, 1, maxRate)
	checkRange(&p, "payg.burst", c.Payg.Burst, 1, maxRate)

	// [[providers]]
	providers := make(map[string]bool, len(c.Providers))
	for i, pr := range c.Providers {
		key := fmt.Sprintf("providers[%d]", i)
		switch {
		case pr.Name == "":
			p.add(key+".name", "must not be empty")
		case providers[pr.Name]:
			p.add(key+".name", "%q is already used by another provider", pr.Name)
		}
		providers[pr.Name] = true
		checkRange(&p, key+".max_concurrent", pr.MaxConcurrent, 1, maxConcurrent)
		checkDuration(&p, key+".connect_timeout", pr.ConnectTimeout, false, maxConnectTO)
		checkDuration(&p, key+".first_byte_timeout", pr.FirstByteTimeout, false, maxStreamTO)
		checkDuration(&p, key+".idle_timeout", pr.IdleTimeout, false, maxStreamTO)
		checkDuration(&p, key+".latency", pr.Latency, true, maxLatency)
		checkRange(&p, key+".tokens_per_second", pr.TokensPerSecond, 0, maxTokensPerSec)
		switch pr.Kind {
		case KindOpenAI, KindAnthropic:
			if pr.BaseURL == "" {
				p.add(key+".base_url", "must be set for kind %q", pr.Kind)
			} else {
				checkBaseURL(&p, key+".base_url", pr.BaseURL)
			}
			set := func(k string) bool { return defined != nil && defined(i, k) }
			if pr.Latency != 0 || set("latency") {
				p.add(key+".latency", "is for kind %q only, not %q", KindEcho, pr.Kind)
			}
			if pr.TokensPerSecond != 0 || set("tokens_per_second") {
				p.add(key+".tokens_per_second", "is for kind %q only, not %q", KindEcho, pr.Kind)
			}
		case KindEcho:
			if pr.BaseURL != "" {
				checkBaseURL(&p, key+".base_url", pr.BaseURL)
			}
		default:
			p.add(key+".kind", "%q must be %q, %q or %q", pr.Kind, KindOpenAI, KindAnthropic, KindEcho)
		}
	}

	// [[plans]]
	plans := make(map[string]bool, len(c.Plans))
	for i, pl := range c.Plans {
		key := fmt.Sprintf("plans[%d]", i)
		switch {
		case pl.ID == "":
			p.add(key+".id", "must not be empty")
		case !allChars(pl.ID, isPlanIDChar):
			p.add(key+".id", "%q may only hold a-z, 0-9, '_' and '-'", pl.ID)
		case plans[pl.ID]:
			p.add(key+".id", "%q is already used by another plan", pl.ID)
		}
		plans[pl.ID] = true
		checkAmount(&p, key+".price_usd", pl.PriceUSD, maxPlanAmount, 2)
		checkAmount(&p, key+".window_5h_flows", pl.Window5hFlows, maxPlanAmount, 6)
		checkAmount(&p, key+".weekly_flows", pl.WeeklyFlows, maxPlanAmount, 6)
		checkAmount(&p, key+".monthly_flows", pl.MonthlyFlows, maxPlanAmount, 6)
		checkRange(&p, key+".rpm", pl.RPM, 1, maxRate)
		checkRange(&p, key+".burst", pl.Burst, 1, maxRate)
	}

	// [[models]]
	models := make(map[string]bool, len(c.Models))
	for i, m := range c.Models {
		key := fmt.Sprintf("models[%d]", i)
		switch {
		case m.ID == "":
			p.add(key+".id", "must not be empty")
		case !isModelID(m.ID):
			p.add(key+".id", "%q must be \"vendor/name\" (letters, digits, '.', '_', '-', ':', '+')", m.ID)
		case models[m.ID]:
			p.add(key+".id", "%q is already used by another model", m.ID)
		}
		models[m.ID] = true
		switch {
		case m.Provider == "":
			p.add(key+".provider", "must not be empty")
		case !providers[m.Provider]:
			p.add(key+".provider", "%q is not a configured provider", m.Provider)
		}
		if strings.TrimSpace(m.Upstream) == "" {
			p.add(key+".upstream", "must not be empty")
		}
		checkAmount(&p, key+".input_usd_per_mtok", m.InputUSDPerMTok, maxModelPrice, 6)
		checkAmount(&p, key+".output_usd_per_mtok", m.OutputUSDPerMTok, maxModelPrice, 6)
		checkAmount(&p, key+".cache_read_usd_per_mtok", m.CacheReadUSDPerMTok, maxModelPrice, 6)
		checkAmount(&p, key+".cache_write_usd_per_mtok", m.CacheWriteUSDPerMTok, maxModelPrice, 6)
		checkAmount(&p, key+".image_usd", m.ImageUSD, maxModelPrice, 6)
		checkAmount(&p, key+".request_usd", m.RequestUSD, maxModelPrice, 6)
		if len(m.Plans) == 0 {
			p.add(key+".plans", "must name at least one plan")
		}
		seen := make(map[string]bool, len(m.Plans))
		for j, id := range m.Plans {
			pkey := fmt.Sprintf("%s.plans[%d]", key, j)
			switch {
			case id == "" || !allChars(id, isPlanIDChar):
				p.add(pkey, "%q is not a plan id (a-z, 0-9, '_', '-')", id)
			case seen[id]:
				p.add(pkey, "%q is listed twice", id)
			}
			seen[id] = true
		}
	}

	return errors.Join(p...)
}

// checkHostPort checks that addr is host:port with a numeric port in
// 1..65535. A listener may leave the host empty (all interfaces); a peer
// address (listener false) may not. It reports whether addr was valid.
func checkHostPort(p *problems, key, addr string, listener bool) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		p.add(key, "%q is not host:port: %v", addr, err)
		return false
	}
	if host == "" && !listener {
		p.add(key, "%q has no host", addr)
		return false
	}
	if strings.ContainsFunc(host, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '/' }) {
		p.add(key, "%q: the host holds a space, a control character or a slash", addr)
		return false
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		p.add(key, "%q: port must be a number in 1..65535", addr)
		return false
	}
	return true
}

// sameListener reports whether two valid host:port listen addresses would
// bind the same port: equal hosts, or either one the wildcard.
func sameListener(a, b string) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	if pa != pb {
		return false
	}
	return strings.EqualFold(ha, hb) || wildcard(ha) || wildcard(hb)
}

// wildcard reports whether a listen host means every interface.
func wildcard(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || ip != nil && ip.IsUnspecified()
}

// WildcardHost reports whether host:port has no host or one meaning every
// interface (or is not host:port): an address to listen on, not to dial.
func WildcardHost(addr string) bool {
	host, _, _ := net.SplitHostPort(addr)
	return wildcard(host)
}

// checkBaseURL requires an absolute http(s) URL with a host and no query or
// fragment (paths are appended to it).
func checkBaseURL(p *problems, key, raw string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		p.add(key, "%q is not a URL: %v", raw, err)
	case u.Scheme != "http" && u.Scheme != "https":
		p.add(key, "%q must start with http:// or https://", raw)
	case u.Host == "":
		p.add(key, "%q has no host", raw)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		p.add(key, "%q must not have a query or fragment", raw)
	}
}

// checkDuration requires 0 < d ≤ hi, or 0 ≤ d ≤ hi when zeroOK.
func checkDuration(p *problems, key string, d Duration, zeroOK bool, hi time.Duration) {
	v := time.Duration(d)
	switch {
	case zeroOK && (v < 0 || v > hi):
		p.add(key, "%q must be ≥ 0 and ≤ %s", v.String(), hi)
	case !zeroOK && (v <= 0 || v > hi):
		p.add(key, "%q must be > 0 and ≤ %s", v.String(), hi)
	}
}

func checkRange(p *problems, key string, v, lo, hi int) {
	if v < lo || v > hi {
		p.add(key, "%d must be in [%d, %d]", v, lo, hi)
	}
}

// checkAmount requires 0 ≤ v ≤ hi with at most maxDecimals decimals.
func checkAmount(p *problems, key string, v, hi float64, maxDecimals int) {
	if !(v >= 0 && v <= hi) {
		p.add(key, "%v must be ≥ 0 and ≤ %v", v, hi)
		return
	}
	if d := Decimals(v); d > maxDecimals {
		p.add(key, "%v has %d decimals; at most %d", v, d, maxDecimals)
	}
}

func allChars(s string, ok func(rune) bool) bool {
	for _, r := range s {
		if !ok(r) {
			return false
		}
	}
	return true
}

func isIDChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

func isPlanIDChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-'
}

func isModelID(id string) bool {
	vendor, name, ok := strings.Cut(id, "/")
	if !ok || vendor == "" || name == "" {
		return false
	}
	isChar := func(r rune) bool { return isIDChar(r) || r == ':' || r == '+' }
	return allChars(vendor, isChar) && allChars(name, isChar)
}

// Decimals returns the number of decimals in the shortest representation of
// f that reads back as f (strconv 'f', -1): Decimals(914.443) = 3,
// Decimals(20) = 0. NaN and infinities count 0.
func Decimals(f float64) int {
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return len(s) - i - 1
	}
	return 0
}

// MicroUnits converts f to an exact integer count of millionths (micro-USD,
// micro-Flows), from the digits of f's shortest decimal representation rather
// than by multiplying floats: MicroUnits(914.443) = 914443000 exactly. It
// fails for more than 6 decimals, NaN, infinities and results beyond int64.
func MicroUnits(f float64) (int64, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("config: %v is not a finite number", f)
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > 6 {
		return 0, fmt.Errorf("config: %s has %d decimals; at most 6", s, len(frac))
	}
	digits := whole + frac + strings.Repeat("0", 6-len(frac))
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("config: %s millionths do not fit in int64", s)
	}
	return n, nil
}
