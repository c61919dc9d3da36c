// Package node wires one zenmuxd node in a straight line: config → cluster
// TLS files → data dir and admin token → the cluster replica (Pebble and
// Raft) → ledger seed → admin API and proxy listeners (the proxy's shared
// with the self-service API and pages) → shutdown. It is the only package that knows every
// other one.
package node

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"zenmux/admin"
	"zenmux/catalog"
	"zenmux/cluster"
	"zenmux/config"
	"zenmux/internal/connset"
	"zenmux/internal/metrics"
	"zenmux/internal/zlog"
	"zenmux/payments"
	"zenmux/proxy"
	"zenmux/raftfsm"
	"zenmux/selfservice"
	"zenmux/web"
)

// Run starts a node and blocks until ctx is done, then shuts it down.
func Run(ctx context.Context, cfg *config.Config, log zerolog.Logger) error {
	// The TLS files are read and verified first: a certificate that cannot
	// serve stops the node before it writes or opens anything.
	peerTLS, err := clusterTLS(cfg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.Node.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	token, err := adminToken(cfg, log)
	if err != nil {
		return err
	}
	secret, err := loadSecret(cfg.Cluster.SecretFile)
	if err != nil {
		return err
	}
	mode := cluster.Single
	if cfg.Cluster.Clustered() {
		mode = cluster.Clustered
	}
	rep, err := cluster.Open(cluster.Options{
		Mode: mode,
		Raft: raftfsm.Options{
			NodeID: cfg.Node.ID, Dir: cfg.Node.DataDir, RaftAddr: cfg.Node.RaftListen, RaftAdvertise: cfg.Node.AdvertiseRaft, Bootstrap: cfg.Cluster.Bootstrap, Secret: secret,
			SnapshotEvery: uint64(cfg.Cluster.SnapshotEntries), TLS: peerTLS, MemTableMB: cfg.Node.MemtableMB, Log: log,
		},
		AdminAddr: cfg.Node.AdminAddr(), RaftAddr: cfg.Node.RaftAddr(), Join: cfg.Cluster.Join, Log: log,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := rep.Close(); err != nil {
			log.Error().Err(err).Msg("close store")
		}
	}()
	if err := rep.Start(ctx); err != nil {
		return err
	}
	if err := seed(cfg, rep); err != nil {
		return err
	}
	rep.ReleaseAllowances()

	adminConf, err := adminTLS(cfg, peerTLS, log)
	if err != nil {
		return err
	}
	adminLn, err := listenAdmin(cfg.Node.AdminListen, adminConf)
	if err != nil {
		return fmt.Errorf("admin listen: %w", err)
	}
	proxyConf, err := proxyTLS(cfg, log)
	if err != nil {
		adminLn.Close()
		return err
	}
	rawProxyLn, err := net.Listen("tcp", cfg.Node.Listen)
	if err != nil {
		adminLn.Close()
		return fmt.Errorf("proxy listen: %w", err)
	}
	// Tracked, so a drain whose grace ran out can cut what is still open.
	proxyConns := connset.Wrap(rawProxyLn)
	var proxyLn net.Listener = proxyConns
	if proxyConf != nil {
		proxyLn = tls.NewListener(proxyConns, proxyConf)
	}
	// Card payments when [payments] names Stripe; else plan changes are
	// recorded for the operator (selfservice's manual driver).
	card, err := payments.FromConfig(cfg.Payments, rep, os.Getenv, log)
	if err != nil {
		adminLn.Close()
		proxyLn.Close()
		return err
	}
	adminOpts := admin.Options{Token: token, TestClock: cfg.Node.TestClock, Backup: backupOpener(rep)}
	if card != nil {
		adminOpts.Reconcile = func(since time.Time) (any, error) { return card.Reconcile(context.Background(), since) }
	}
	m := metrics.New()
	api := admin.New(adminStore{rep, m}, adminOpts)
	adminHandler := func(ctx *fasthttp.RequestCtx) {
		if strings.HasPrefix(string(ctx.Path()), "/internal/") {
			rep.InternalHandler(ctx)
			return
		}
		api.Handler(ctx)
	}
	adminSrv := &fasthttp.Server{Handler: adminHandler, ErrorHandler: admin.TransportError, Name: "zenmuxd", MaxRequestBodySize: 1 << 20,
		Logger:      zlog.NewPrinter(log.With().Str(zlog.NameField, "fasthttp.admin").Logger(), zerolog.WarnLevel),
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	providers, providerProblems, err := buildProviders(cfg, os.Getenv, log)
	if err != nil {
		adminLn.Close()
		proxyLn.Close()
		return err
	}
	batchOpts := proxy.BatcherOptions{MaxCharges: cfg.Accounting.BatchMaxCharges, MaxQueue: cfg.Accounting.MaxQueuedCharges}
	if cfg.Accounting.Ack == config.AckAsync {
		batchOpts.Linger = time.Duration(cfg.Accounting.AsyncBatchWait)
	}
	// Charges a previous run could not commit before it stopped (C5).
	batchOpts.Spool = filepath.Join(cfg.Node.DataDir, "charges.spool")
	if batchOpts.Spooled, err = proxy.ReadSpool(batchOpts.Spool); err != nil {
		adminLn.Close()
		proxyLn.Close()
		return fmt.Errorf("%w: its charges were served and not committed; restore the file or move it aside to start without them", err)
	}
	if n := len(batchOpts.Spooled); n > 0 {
		log.Warn().Int("batches", n).Str("spool", batchOpts.Spool).Msg("committing the charges the last run could not commit before it stopped")
	}
	charges := proxy.NewBatcher(meteredCharges{rep, m}, batchOpts)
	defer charges.Close()
	var limiter proxy.RateLimiter
	var leases *proxy.LeaseLimiter
	var allowances *proxy.Allowances
	if rep.Mode() == cluster.Clustered {
		// In a cluster the rate bucket and the quota windows are shared:
		// nodes lease requests and Flows from the replicated state.
		leases = proxy.NewLeaseLimiter(rep, rep.Size, proxy.LeaseOptions{Now: rep.Now})
		defer leases.Close()
		limiter = leases
		allowances = proxy.NewAllowances(rep, proxy.LeaseOptions{Now: rep.Now})
		defer allowances.Close()
	}
	scraped(m, rep, leases, allowances)
	gw, err := proxy.New(proxy.Options{
		Limiter: limiter, Allowances: allowances,
		NodeID: cfg.Node.ID, Ledger: rep.Ledger, Now: rep.Now, Charges: charges,
		AckQuorum: cfg.Accounting.Ack == config.AckQuorum, Providers: providers, ProviderProblems: providerProblems, Routes: modelRoutes(cfg),
		PaygRPM: int64(cfg.Payg.RPM), PaygBurst: int64(cfg.Payg.Burst),
		CountTokensRPM: int64(cfg.Proxy.CountTokensRPM), CountTokensBurst: int64(cfg.Proxy.CountTokensBurst), Ready: rep.Ready, Log: log, Refresh: rep.Refresh,
		Metrics: m,
	})
	if err != nil {
		adminLn.Close()
		proxyLn.Close()
		return err
	}
	var pay selfservice.Payments
	if card != nil {
		pay = card
	}
	self, err := selfservice.New(selfservice.Options{
		Store: rep, Pages: web.Asset, Studio: gw, Payments: pay, SessionTTL: time.Duration(cfg.SelfService.SessionTTL),
		SignInPerAddress: cfg.SelfService.SignInPerAddress, SignInPerAccount: cfg.SelfService.SignInPerAccount,
		SecureCookie: cfg.SelfService.SecureCookie, SignIns: m, Log: log,
	})
	if err != nil {
		adminLn.Close()
		proxyLn.Close()
		return err
	}
	// The proxy listener serves subscribers too: the self-service API and
	// pages take the requests selfservice.Owns, the proxy the rest.
	proxyHandler := func(ctx *fasthttp.RequestCtx) {
		if card != nil && string(ctx.Path()) == payments.WebhookPath {
			card.Webhook(ctx)
			return
		}
		if selfservice.Owns(ctx.Method(), ctx.Path()) {
			self.Handler(ctx)
			return
		}
		gw.Handler(ctx)
	}
	proxySrv := &fasthttp.Server{Handler: proxyHandler, ErrorHandler: gw.TransportError, Name: "zenmuxd",
		Logger:             zlog.NewPrinter(log.With().Str(zlog.NameField, "fasthttp.proxy").Logger(), zerolog.WarnLevel),
		MaxRequestBodySize: int(cfg.Proxy.MaxBodyBytes),
		ReadTimeout:        5 * time.Minute, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 2)
	go func() { errc <- adminSrv.Serve(adminLn) }()
	go func() { errc <- proxySrv.Serve(proxyLn) }()
	tickDone := make(chan struct{})
	tickCtx, stopTick := context.WithCancel(ctx)
	go func() { defer close(tickDone); rep.TickLoop(tickCtx) }()
	payDone := make(chan struct{})
	go func() {
		defer close(payDone)
		if card != nil {
			// The leader charges due renewals and sends refunds to Stripe.
			card.Run(tickCtx, rep.IsLeader)
		}
	}()
	log.Info().Str("node", cfg.Node.ID).Str("listen", proxyLn.Addr().String()).Str("admin", adminLn.Addr().String()).
		Str("raft", cfg.Node.RaftListen).Str("advertise_admin", cfg.Node.AdminAddr()).Str("advertise_raft", cfg.Node.RaftAddr()).Msg("zenmuxd ready")

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	log.Info().Msg("shutting down")
	drain(log, time.Duration(cfg.Node.DrainGrace), proxySrv, gw, proxyConns, charges, rep)
	stopTick()
	<-tickDone
	<-payDone
	_ = adminSrv.ShutdownWithContext(context.Background())
	return runErr
}

// drain stops a node gracefully: the proxy listener takes no new
// connections while the requests and streams in flight finish, up to
// grace; the ones still open then are cut, as a client going away cuts
// them, and charged for what they delivered (Q7); their charges are
// committed (the batcher's queue emptied, or spooled, C5); then a leader
// hands leadership to a follower, so the cluster does not wait an
// election timeout. The admin listener, which peers use to forward and to
// read, stays up until after the hand-off.
func drain(log zerolog.Logger, grace time.Duration, proxySrv *fasthttp.Server, api *proxy.Server, conns *connset.Listener, charges *proxy.Batcher, rep *cluster.Replica) {
	log.Info().Dur("grace", grace).Msg("draining: no new connections; waiting for requests in flight")
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := proxySrv.ShutdownWithContext(ctx); err != nil {
		cut := conns.CloseAll()
		// A cut stream's handler notices at its next write, charges what
		// was delivered and returns; one waiting on a silent upstream may
		// not, so the wait is bounded.
		deadline := time.Now().Add(cutWait)
		for (proxySrv.GetOpenConnectionsCount() > 0 || api.Streams() > 0) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		// fasthttp's count can go below 0 after a shutdown that timed out.
		log.Warn().Err(err).Int("cut", cut).Int32("still_open", max(proxySrv.GetOpenConnectionsCount(), 0)).Int64("streams", api.Streams()).
			Msg("drain grace elapsed: the requests still open were cut and charged for what they delivered")
	}
	if err := charges.Close(); err != nil {
		log.Error().Err(err).Int("batches", charges.Unsent()).Msg("the charges not committed could not be written to the charge spool: they are lost")
	} else if n := charges.Unsent(); n > 0 {
		log.Warn().Int("batches", n).Msg("charges not committed (no quorum) are kept in the charge spool; the next start commits them")
	}
	if err := rep.HandOff(); err != nil {
		log.Warn().Err(err).Msg("leadership hand-off failed; the followers elect a leader by timeout")
	} else {
		log.Info().Msg("drained")
	}
}

// cutWait bounds how long a drain waits, after cutting the requests still
// open, for their handlers to charge what they delivered.
const cutWait = 5 * time.Second

// adminToken returns the admin token: ZENMUX_ADMIN_TOKEN, else the
// configured token file, else <data_dir>/admin.token, generated (0600) on
// first start. The token is never logged, only its path.
func adminToken(cfg *config.Config, log zerolog.Logger) ([]byte, error) {
	if t := strings.TrimSpace(os.Getenv("ZENMUX_ADMIN_TOKEN")); t != "" {
		return []byte(t), nil
	}
	path := cfg.Admin.TokenFile
	if path == "" {
		path = filepath.Join(cfg.Node.DataDir, "admin.token")
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			b := make([]byte, 32)
			if _, err := rand.Read(b); err != nil {
				return nil, err
			}
			if err := os.WriteFile(path, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
				return nil, fmt.Errorf("write admin token: %w", err)
			}
			log.Info().Str("path", path).Msg("generated admin token")
		}
	}
	t, err := readSecretFile(path, "admin token")
	if err != nil {
		return nil, err
	}
	log.Info().Str("path", path).Msg("admin token file")
	return t, nil
}

// buildProviders makes this node's upstream clients from config; provider
// addresses and secrets are per node, never replicated. A provider whose
// key is missing (its api_key_env variable unset or empty, its
// api_key_file missing, unreadable or empty) is not built: it is reported
// here, at start, and its models answer 503 model_unavailable (problems)
// instead of failing at the upstream with a 401 turned 502.
func buildProviders(cfg *config.Config, getenv func(string) string, log zerolog.Logger) (map[string]proxy.Provider, map[string]string, error) {
	out, problems := map[string]proxy.Provider{}, map[string]string{}
	for _, p := range cfg.Providers {
		if p.Kind == config.KindEcho {
			out[p.Name] = &proxy.Echo{Latency: time.Duration(p.Latency), TokensPerSecond: p.TokensPerSecond}
			continue
		}
		key, err := providerKey(p, getenv)
		if err != nil {
			problems[p.Name] = "has no API key on this node"
			log.Error().Str("provider", p.Name).Str("api_key_env", p.APIKeyEnv).Str("api_key_file", p.APIKeyFile).Err(err).
				Msg("provider has no API key, so its models answer 503 model_unavailable until it is given one and the node restarted")
			continue
		}
		hp, err := proxy.NewHTTPProvider(proxy.HTTPOptions{
			Kind: p.Kind, BaseURL: p.BaseURL, APIKey: key, NoResponses: p.NoResponses, DropBetas: p.DropBetas, MaxConcurrent: p.MaxConcurrent,
			ConnectTimeout: time.Duration(p.ConnectTimeout), FirstByteTimeout: time.Duration(p.FirstByteTimeout), IdleTimeout: time.Duration(p.IdleTimeout),
		})
		if err != nil {
			return nil, nil, fmt.Errorf("provider %q: %w", p.Name, err)
		}
		out[p.Name] = hp
	}
	return out, problems, nil
}

// errNoKey is a provider key that is named but missing.
var errNoKey = errors.New("no API key")

// providerKey reads a provider's key from its variable or its file,
// without surrounding white space; "" when it names neither (a local
// upstream without auth).
func providerKey(p config.Provider, getenv func(string) string) (string, error) {
	switch {
	case p.APIKeyEnv != "":
		if key := strings.TrimSpace(getenv(p.APIKeyEnv)); key != "" {
			return key, nil
		}
		return "", fmt.Errorf("%w: the variable %s is unset or empty", errNoKey, p.APIKeyEnv)
	case p.APIKeyFile != "":
		raw, err := os.ReadFile(p.APIKeyFile)
		if err != nil {
			return "", fmt.Errorf("%w: %w", errNoKey, err)
		}
		if key := strings.TrimSpace(string(raw)); key != "" {
			return key, nil
		}
		return "", fmt.Errorf("%w: the file %s is empty", errNoKey, p.APIKeyFile)
	}
	return "", nil
}

// modelRoutes is the proxy's Routes for catalog models (a model that
// names its provider is served by it alone, in the proxy): the
// configured providers of each preset on its catalog route, in route order
// and, within a preset, in config order. Providers that are not built on
// this node stay listed: the proxy skips them and reports why.
func modelRoutes(cfg *config.Config) func(modelID string) []proxy.Route {
	byPreset := map[string][]string{}
	for _, p := range cfg.Providers {
		if p.Preset != "" {
			byPreset[p.Preset] = append(byPreset[p.Preset], p.Name)
		}
	}
	// Computed once: the proxy asks on every request.
	routes := map[string][]proxy.Route{}
	for _, m := range catalog.Models() {
		var rs []proxy.Route
		for _, r := range catalog.Route(m.ID) {
			for _, name := range byPreset[r.Preset] {
				rs = append(rs, proxy.Route{Provider: name, Upstream: r.Upstream})
			}
		}
		routes[m.ID] = rs
	}
	return func(modelID string) []proxy.Route { return routes[modelID] }
}

// adminStore is the replica as the admin API sees it, with the node's
// metrics added to the replica's on /metrics.
type adminStore struct {
	*cluster.Replica
	m *metrics.Metrics
}

// Cluster describes the members for GET /admin/v1/cluster.
func (s adminStore) Cluster() (any, error) { return s.Replica.Cluster() }

// loadSecret reads the cluster secret file ("" → no cluster secret).
func loadSecret(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	return readSecretFile(path, "cluster secret")
}

// readSecretFile reads a secret (the admin token, the cluster secret) from
// path, without surrounding white space; it must hold 16 characters or
// more. what names it in errors.
func readSecretFile(path, what string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	s := strings.TrimSpace(string(raw))
	if len(s) < 16 {
		return nil, fmt.Errorf("%s in %s is shorter than 16 characters", what, path)
	}
	return []byte(s), nil
}
