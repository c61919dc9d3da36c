package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"

	"zenmux/catalog"
	"zenmux/internal/tagname"
	"zenmux/ledger"
)

// Limits enforced by Validate.
const (
	maxBodyBytesMin  = 1024
	maxBodyBytesMax  = 1 << 30
	minDedupeDays    = 7 // C4
	maxDedupeDays    = 365
	maxRequestLogDay = 3650
	maxQueuedCharges = 1_000_000
	maxConcurrent    = 100_000
	maxConnectTO     = 10 * time.Minute
	maxStreamTO      = time.Hour // first_byte_timeout and idle_timeout
	maxLatency       = time.Minute
	maxTokensPerSec  = 1_000_000
	maxRate          = 1_000_000 // rpm and burst
	maxNodeIDLen     = 64
)

// ErrInvalid is a configuration that cannot run: every problem Load,
// Parse and Validate report wraps it, so each starts with "config: ".
var ErrInvalid = errors.New("config")

// problems collects validation errors, each naming its key.
type problems []error

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%w: %s: %s", ErrInvalid, key, escapeControls(fmt.Sprintf(format, args...))))
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
	checkNode(&p, &c.Node, c.Cluster.Clustered())
	checkCluster(&p, &c.Cluster)
	checkFlow(&p, c.Flow)
	checkProxy(&p, c.Proxy)
	checkAdmin(&p, c.Admin, &c.Cluster)
	checkAccounting(&p, c.Accounting)
	checkPayg(&p, c.Payg)
	checkSelfService(&p, c.SelfService)
	checkPayments(&p, c.Payments)
	providers := checkProviders(&p, c.Providers, defined)
	checkPlans(&p, c.Plans)
	checkModels(&p, c.Models, providers)
	return errors.Join(p...)
}

// Clustered reports whether this node has peers, or may get some: then
// they dial its advertised admin address.
func (c *Cluster) Clustered() bool {
	return len(c.Join) > 0 || !c.Bootstrap || c.SecretFile != ""
}

// checkNode checks [node]: the id, the data directory, three distinct
// listeners, and addresses peers can dial.
func checkNode(p *problems, n *Node, clustered bool) {
	if g := time.Duration(n.DrainGrace); g <= 0 || g > time.Hour {
		p.add("node.drain_grace", "%s must be in (0, 1h]", g)
	}
	switch {
	case n.ID == "":
		p.add("node.id", "must not be empty")
	case !ValidNodeID(n.ID):
		p.add("node.id", "%q must be at most %d letters, digits, '.', '_' or '-'", n.ID, maxNodeIDLen)
	}
	if n.DataDir == "" {
		p.add("node.data_dir", "must not be empty")
	}
	listeners := []struct{ key, addr string }{
		{"node.listen", n.Listen},
		{"node.admin_listen", n.AdminListen},
		{"node.raft_listen", n.RaftListen},
	}
	valid := make([]bool, len(listeners))
	for i, l := range listeners {
		valid[i] = checkHostPort(p, l.key, l.addr, true)
	}
	for i := range listeners {
		for j := i + 1; j < len(listeners); j++ {
			if valid[i] && valid[j] && sameListener(listeners[i].addr, listeners[j].addr) {
				p.add(listeners[j].key, "%q collides with %s %q", listeners[j].addr, listeners[i].key, listeners[i].addr)
			}
		}
	}
	for _, a := range []struct {
		key, addr, listenKey, listen string
		need                         bool
	}{
		// Raft advertises its address even alone: it is the bootstrap
		// configuration's server address.
		{"node.advertise_raft", n.AdvertiseRaft, "node.raft_listen", n.RaftListen, valid[2]},
		{"node.advertise_admin", n.AdvertiseAdmin, "node.admin_listen", n.AdminListen, valid[1] && clustered},
	} {
		switch {
		case a.addr != "":
			if checkHostPort(p, a.key, a.addr, false) && WildcardHost(a.addr) {
				p.add(a.key, "%q is not an address peers can dial", a.addr)
			}
		case a.need && WildcardHost(a.listen):
			p.add(a.key, "must be set: %s %q listens on every interface, which is not an address peers can dial", a.listenKey, a.listen)
		}
	}
	checkRange(p, "node.memtable_mb", n.MemtableMB, 4, 1024)
}

// checkCluster checks [cluster]: the peers to join, the secret they need,
// the snapshot interval and the TLS files.
func checkCluster(p *problems, c *Cluster) {
	for i, addr := range c.Join {
		checkHostPort(p, fmt.Sprintf("cluster.join[%d]", i), addr, false)
	}
	if c.SecretFile == "" && (len(c.Join) > 0 || !c.Bootstrap || c.TLSEnabled()) {
		p.add("cluster.secret_file", "must be set when cluster.join is not empty, cluster.bootstrap is false or cluster TLS is configured (TLS adds to the secret, it does not replace it)")
	}
	checkTLSFiles(p, c)
	checkRange(p, "cluster.snapshot_entries", c.SnapshotEntries, 16, 10_000_000)
}

// checkTLSFiles checks that the [cluster] TLS files are given all three or
// none, and that each names a file. The node reads and verifies them when
// it starts (node/tls.go): the certificates are used there, and read there
// once.
func checkTLSFiles(p *problems, c *Cluster) {
	if !c.TLSEnabled() {
		return
	}
	for _, f := range []struct{ key, path string }{
		{"cluster.tls_cert_file", c.TLSCertFile},
		{"cluster.tls_key_file", c.TLSKeyFile},
		{"cluster.tls_ca_file", c.TLSCAFile},
	} {
		if f.path == "" {
			p.add(f.key, "must be set when any of cluster.tls_cert_file, cluster.tls_key_file, cluster.tls_ca_file is (all three or none)")
			continue
		}
		switch st, err := os.Stat(f.path); {
		case err != nil:
			p.add(f.key, "%v", err)
		case !st.Mode().IsRegular():
			p.add(f.key, "%q is not a file", f.path)
		}
	}
}

// checkFlow checks [flow].
func checkFlow(p *problems, f Flow) {
	if v := f.NanoUSDPerFlow; v < ledger.MinNanoUSDPerFlow || v > ledger.MaxNanoUSDPerFlow {
		p.add("flow.usd_per_flow", "%s must be ≥ %s and ≤ %s", v, Nanos(ledger.MinNanoUSDPerFlow), Nanos(ledger.MaxNanoUSDPerFlow))
	}
}

// checkProxy checks [proxy].
func checkProxy(p *problems, x Proxy) {
	if n := x.MaxBodyBytes; n < maxBodyBytesMin || n > maxBodyBytesMax {
		p.add("proxy.max_body_bytes", "%d must be in [%d, %d] (1 KiB to 1 GiB)", n, maxBodyBytesMin, maxBodyBytesMax)
	}
	checkRange(p, "proxy.count_tokens_rpm", x.CountTokensRPM, 1, maxRate)
	checkRange(p, "proxy.count_tokens_burst", x.CountTokensBurst, 1, maxRate)
	checkTLSPair(p, "proxy", x.TLSCertFile, x.TLSKeyFile)
}

// checkAdmin checks [admin]'s TLS pair. Peers call a clustered node's
// admin listener too, and authenticate it by the cluster CA: an https
// admin listener in a cluster needs the [cluster] TLS files, whose
// certificate it serves to peers.
func checkAdmin(p *problems, a Admin, c *Cluster) {
	checkTLSPair(p, "admin", a.TLSCertFile, a.TLSKeyFile)
	if a.TLSCertFile != "" && c.Clustered() && !c.TLSEnabled() {
		p.add("admin.tls_cert_file", "needs cluster TLS (cluster.tls_cert_file, tls_key_file, tls_ca_file) on a clustered node: peers call the admin listener too, over TLS with the cluster certificate")
	}
}

// checkTLSPair checks a section's tls_cert_file and tls_key_file: both or
// neither, existing files. The node loads them when it starts.
func checkTLSPair(p *problems, section, certFile, keyFile string) {
	if certFile == "" && keyFile == "" {
		return
	}
	certKey, keyKey := section+".tls_cert_file", section+".tls_key_file"
	for _, f := range []struct{ key, path string }{{certKey, certFile}, {keyKey, keyFile}} {
		if f.path == "" {
			p.add(f.key, "must be set when the other of %s, %s is (both or neither)", certKey, keyKey)
			continue
		}
		switch st, err := os.Stat(f.path); {
		case err != nil:
			p.add(f.key, "%v", err)
		case !st.Mode().IsRegular():
			p.add(f.key, "%q is not a file", f.path)
		}
	}
}

// checkAccounting checks [accounting].
func checkAccounting(p *problems, a Accounting) {
	if a.Ack != AckQuorum && a.Ack != AckAsync {
		p.add("accounting.ack", "%q must be %q or %q", a.Ack, AckQuorum, AckAsync)
	}
	if a.DedupeDays < minDedupeDays || a.DedupeDays > maxDedupeDays {
		p.add("accounting.dedupe_days", "%d must be in [%d, %d] (rule C4: at least 7 days)", a.DedupeDays, minDedupeDays, maxDedupeDays)
	}
	if a.RequestLogDays < 1 || a.RequestLogDays > maxRequestLogDay {
		p.add("accounting.request_log_days", "%d must be in [1, %d]", a.RequestLogDays, maxRequestLogDay)
	}
	if a.BatchMaxCharges < 1 || a.BatchMaxCharges > ledger.MaxBatchCharges {
		p.add("accounting.batch_max_charges", "%d must be in [1, %d]", a.BatchMaxCharges, ledger.MaxBatchCharges)
	}
	checkRange(p, "accounting.max_queued_charges", a.MaxQueuedCharges, 1, maxQueuedCharges)
	if w := time.Duration(a.AsyncBatchWait); w < 0 || w > time.Second {
		p.add("accounting.async_batch_wait", "%s must be in [0s, 1s]", w)
	}
}

// checkPayg checks [payg].
func checkPayg(p *problems, g Payg) {
	checkRange(p, "payg.rpm", g.RPM, 1, maxRate)
	checkRange(p, "payg.burst", g.Burst, 1, maxRate)
}

// checkSelfService checks [selfservice]: a session lasts a minute to the
// ledger's longest (30 days).
func checkSelfService(p *problems, s SelfService) {
	if d := time.Duration(s.SessionTTL); d < time.Minute || int64(d) > ledger.MaxSessionTTL {
		p.add("selfservice.session_ttl", "%s must be from 1m to 720h", d)
	}
	checkRange(p, "selfservice.sign_in_per_address", s.SignInPerAddress, 1, maxRate)
	checkRange(p, "selfservice.sign_in_per_account", s.SignInPerAccount, 1, maxRate)
}

// checkPayments checks [payments]: Stripe needs its secret key and its
// webhook secret, each from one place, and the public address Checkout
// returns to; the Stripe keys belong to provider "stripe" only.
func checkPayments(p *problems, c Payments) {
	checkDuration(p, "payments.sweep_every", c.SweepEvery, false, time.Hour)
	switch c.Provider {
	case "", PaymentsManual:
		for _, f := range []struct{ key, v string }{
			{"payments.stripe_secret_key_env", c.StripeSecretKeyEnv}, {"payments.stripe_secret_key_file", c.StripeSecretKeyFile},
			{"payments.stripe_webhook_secret_env", c.StripeWebhookSecretEnv}, {"payments.stripe_webhook_secret_file", c.StripeWebhookSecretFile},
			{"payments.stripe_api_base", c.StripeAPIBase},
		} {
			if f.v != "" {
				p.add(f.key, "is for provider %q only", PaymentsStripe)
			}
		}
		return
	case PaymentsStripe:
	default:
		p.add("payments.provider", "%q must be %q or %q", c.Provider, PaymentsManual, PaymentsStripe)
		return
	}
	oneOf := func(env, file, envKey, fileKey string) {
		switch {
		case env != "" && file != "":
			p.add(fileKey, "is exclusive with %s: the secret comes from one place", envKey)
		case env == "" && file == "":
			p.add(envKey, "or %s must be set for provider %q", fileKey, PaymentsStripe)
		}
	}
	oneOf(c.StripeSecretKeyEnv, c.StripeSecretKeyFile, "payments.stripe_secret_key_env", "payments.stripe_secret_key_file")
	oneOf(c.StripeWebhookSecretEnv, c.StripeWebhookSecretFile, "payments.stripe_webhook_secret_env", "payments.stripe_webhook_secret_file")
	if c.StripeAPIBase != "" {
		checkBaseURL(p, "payments.stripe_api_base", c.StripeAPIBase)
	}
	if c.PublicURL == "" {
		p.add("payments.public_url", "must be set for provider %q (Checkout returns subscribers there)", PaymentsStripe)
	} else {
		checkBaseURL(p, "payments.public_url", c.PublicURL)
	}
}

// checkProviders checks each [[providers]] entry and returns the set of
// provider names. defined is as for validate.
func checkProviders(p *problems, list []Provider, defined func(i int, key string) bool) map[string]bool {
	names := make(map[string]bool, len(list))
	for i, pr := range list {
		key := fmt.Sprintf("providers[%d]", i)
		switch {
		case pr.Name == "":
			p.add(key+".name", "must not be empty")
		case names[pr.Name]:
			p.add(key+".name", "%q is already used by another provider", pr.Name)
		}
		names[pr.Name] = true
		if _, ok := catalog.PresetByName(pr.Preset); pr.Preset != "" && !ok {
			p.add(key+".preset", "%q is not a preset (%s)", pr.Preset, presetNames())
		}
		if pr.APIKeyEnv != "" && pr.APIKeyFile != "" {
			p.add(key+".api_key_file", "is exclusive with api_key_env: the key comes from one place")
		}
		if pr.NoResponses && pr.Kind != KindOpenAI {
			p.add(key+".no_responses", "is for kind %q only, not %q", KindOpenAI, pr.Kind)
		}
		if pr.DropBetas && pr.Kind != KindAnthropic {
			p.add(key+".drop_betas", "is for kind %q only, not %q", KindAnthropic, pr.Kind)
		}
		checkRange(p, key+".max_concurrent", pr.MaxConcurrent, 1, maxConcurrent)
		checkDuration(p, key+".connect_timeout", pr.ConnectTimeout, false, maxConnectTO)
		checkDuration(p, key+".first_byte_timeout", pr.FirstByteTimeout, false, maxStreamTO)
		checkDuration(p, key+".idle_timeout", pr.IdleTimeout, false, maxStreamTO)
		checkDuration(p, key+".latency", pr.Latency, true, maxLatency)
		checkRange(p, key+".tokens_per_second", pr.TokensPerSecond, 0, maxTokensPerSec)
		switch pr.Kind {
		case KindOpenAI, KindAnthropic, KindGemini:
			if pr.BaseURL == "" {
				p.add(key+".base_url", "must be set for kind %q", pr.Kind)
			} else {
				checkBaseURL(p, key+".base_url", pr.BaseURL)
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
				checkBaseURL(p, key+".base_url", pr.BaseURL)
			}
		default:
			p.add(key+".kind", "%q must be %q, %q, %q or %q", pr.Kind, KindOpenAI, KindAnthropic, KindGemini, KindEcho)
		}
	}
	return names
}

// presetNames lists the catalog's preset names for an error message.
func presetNames() string {
	var names []string
	for _, pr := range catalog.Presets() {
		names = append(names, pr.Name)
	}
	return strings.Join(names, ", ")
}

// checkPlans checks each [[plans]] entry by the ledger's plan rules
// (ledger.ValidatePlan), as the entry will be seeded, and that no two
// share an id.
func checkPlans(p *problems, plans []Plan) {
	seen := make(map[string]bool, len(plans))
	for i := range plans {
		key := fmt.Sprintf("plans[%d]", i)
		pl := plans[i].Ledger()
		if err := ledger.ValidatePlan(&pl); err != nil {
			planProblems(p, key, err)
		}
		if pl.ID != "" && seen[pl.ID] {
			p.add(key+".id", "%q is already used by another plan", pl.ID)
		}
		seen[pl.ID] = true
	}
}

// planProblems files each rule of a ledger.ValidatePlan error under the
// key of its field in the entry at key ("price_usd must be …" as
// plans[1].price_usd), or under key itself for a field config does not
// know.
func planProblems(p *problems, key string, err error) {
	var pe *ledger.PlanError
	if !errors.As(err, &pe) {
		p.add(key, "%s", err)
		return
	}
	for _, b := range pe.Broken {
		if _, ok := tagname.Field(reflect.TypeFor[Plan](), "toml", b.Field); !ok {
			p.add(key, "%s %s", b.Field, b.Rule)
			continue
		}
		p.add(key+"."+b.Field, "%s", b.Rule)
	}
}

// checkModels checks each [[models]] entry; providers are the configured
// provider names. An entry for a built-in model (BuiltinModels) may give
// only the keys it changes; a new model gives its provider, upstream and
// plans. Either way the model it makes names a provider and an upstream
// together or neither (then the node's routes serve it).
func checkModels(p *problems, models []Model, providers map[string]bool) {
	builtin := map[string]ledger.Model{}
	for _, m := range BuiltinModels() {
		builtin[m.ID] = m
	}
	seen := make(map[string]bool, len(models))
	for i := range models {
		m := &models[i]
		key := fmt.Sprintf("models[%d]", i)
		base, isBuiltin := builtin[m.ID]
		switch {
		case m.ID == "":
			p.add(key+".id", "must not be empty")
		case !isModelID(m.ID):
			p.add(key+".id", "%q must be \"vendor/name\" (letters, digits, '.', '_', '-', ':', '+')", m.ID)
		case seen[m.ID]:
			p.add(key+".id", "%q is already used by another model", m.ID)
		}
		seen[m.ID] = true
		merged := m.Over(base)
		switch {
		case m.given("provider") && !providers[m.Provider]:
			p.add(key+".provider", "%q is not a configured provider", m.Provider)
		case merged.Provider == "" && (!isBuiltin || merged.Upstream != ""):
			p.add(key+".provider", "must not be empty")
		}
		if merged.Provider != "" && strings.TrimSpace(merged.Upstream) == "" {
			p.add(key+".upstream", "must not be empty")
		}
		if len(m.Name) > 128 {
			p.add(key+".name", "must be at most 128 bytes")
		}
		checkAmount(p, key+".input_usd_per_mtok", m.InputMicroUSDPerMTok, ledger.MaxTokenMicroUSD)
		checkAmount(p, key+".output_usd_per_mtok", m.OutputMicroUSDPerMTok, ledger.MaxTokenMicroUSD)
		checkAmount(p, key+".cache_read_usd_per_mtok", m.CacheReadMicroUSDPerM, ledger.MaxTokenMicroUSD)
		checkAmount(p, key+".cache_write_usd_per_mtok", m.CacheWriteMicroUSDPerM, ledger.MaxTokenMicroUSD)
		checkAmount(p, key+".image_usd", m.ImageMicroUSD, ledger.MaxItemMicroUSD)
		checkAmount(p, key+".request_usd", m.RequestMicroUSD, ledger.MaxItemMicroUSD)
		if len(merged.Plans) == 0 {
			p.add(key+".plans", "must name at least one plan")
		}
		listed := make(map[string]bool, len(m.Plans))
		for j, id := range m.Plans {
			pkey := fmt.Sprintf("%s.plans[%d]", key, j)
			switch {
			case id == "" || !allChars(id, isPlanIDChar):
				p.add(pkey, "%q is not a plan id (a-z, 0-9, '_', '-')", id)
			case listed[id]:
				p.add(pkey, "%q is listed twice", id)
			}
			listed[id] = true
		}
	}
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

// checkAmount requires 0 ≤ v ≤ hi, hi in millionths as v is.
func checkAmount(p *problems, key string, v Micros, hi int64) {
	if v < 0 || int64(v) > hi {
		p.add(key, "%s must be ≥ 0 and ≤ %s", v, Micros(hi))
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

// ValidNodeID reports whether id may name a node: 1 to 64 letters,
// digits, '.', '_' or '-' (node.id, and a member the cluster API adds).
func ValidNodeID(id string) bool {
	return id != "" && len(id) <= maxNodeIDLen && allChars(id, isIDChar)
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
