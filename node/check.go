package node

import (
	"fmt"
	"strings"

	"github.com/rs/zerolog"

	"zenmux/config"
	"zenmux/payments"
)

// Check reads every file a start of cfg would read before it opens the
// data dir — the [cluster] TLS files, the proxy's and the admin
// listener's TLS pairs, the cluster secret, the admin token file, the
// Stripe secrets — and checks them as Run does, without opening
// the data dir, a listener or a peer. It returns the problems that would
// stop the node, each naming its key, and warnings: provider keys that
// are missing, whose models a started node answers with 503
// model_unavailable instead of failing. An admin token left to its
// default place (<data_dir>/admin.token) is not read, since it lives in
// the data dir and a first start writes it.
func Check(cfg *config.Config, getenv func(string) string) (problems, warnings []error) {
	if _, err := clusterTLS(cfg); err != nil {
		problems = append(problems, splitJoined(err)...)
	}
	if strings.TrimSpace(getenv("ZENMUX_ADMIN_TOKEN")) == "" && cfg.Admin.TokenFile != "" {
		if _, err := readSecretFile(cfg.Admin.TokenFile, "admin.token_file: admin token"); err != nil {
			problems = append(problems, err)
		}
	}
	if cfg.Cluster.SecretFile != "" {
		if _, err := readSecretFile(cfg.Cluster.SecretFile, "cluster.secret_file: cluster secret"); err != nil {
			problems = append(problems, err)
		}
	}
	if _, err := proxyTLS(cfg, zerolog.Nop()); err != nil {
		problems = append(problems, err)
	}
	if _, err := adminTLS(cfg, nil, zerolog.Nop()); err != nil {
		problems = append(problems, err)
	}
	// The Stripe driver is only built here, over no store: building it
	// reads and checks its secrets and starts nothing.
	if _, err := payments.FromConfig(cfg.Payments, nil, getenv, zerolog.Nop()); err != nil {
		problems = append(problems, err)
	}
	for i, p := range cfg.Providers {
		if p.Kind == config.KindEcho {
			continue
		}
		if _, err := providerKey(p, getenv); err != nil {
			warnings = append(warnings, providerProblem(i, p, err))
		}
	}
	return problems, warnings
}

// providerProblem names a provider's missing key by its indexed key, as
// config's own problems do.
func providerProblem(i int, p config.Provider, err error) error {
	key := "api_key_file"
	if p.APIKeyEnv != "" {
		key = "api_key_env"
	}
	return fmt.Errorf("providers[%d].%s (provider %q): %w; its models answer 503 model_unavailable on this node", i, key, p.Name, err)
}

// splitJoined lists the errors an errors.Join holds, or err alone.
func splitJoined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
