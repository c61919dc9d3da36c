package payments

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"zenmux/config"
	"zenmux/internal/zlog"
)

// FromConfig builds the Stripe driver of a [payments] provider = "stripe"
// section over store, reading its secrets from their variables (getenv)
// or files; it answers nil for any other provider (the manual driver).
func FromConfig(c config.Payments, store Store, getenv func(string) string, log zerolog.Logger) (*Stripe, error) {
	if !c.Stripe() {
		return nil, nil
	}
	key, err := secret("stripe_secret_key", c.StripeSecretKeyEnv, c.StripeSecretKeyFile, getenv)
	if err != nil {
		return nil, err
	}
	hook, err := secret("stripe_webhook_secret", c.StripeWebhookSecretEnv, c.StripeWebhookSecretFile, getenv)
	if err != nil {
		return nil, err
	}
	return New(Options{Ledger: LedgerStore{store}, SecretKey: key, WebhookSecret: hook, APIBase: c.StripeAPIBase, PublicURL: c.PublicURL,
		SweepEvery: time.Duration(c.SweepEvery), Log: log.With().Str(zlog.NameField, "payments").Logger()})
}

// secret reads a secret from its variable or its file, trimmed; the node
// does not start without it (a driver that cannot verify webhooks must not
// take payments).
func secret(name, env, file string, getenv func(string) string) (string, error) {
	if env != "" {
		if v := strings.TrimSpace(getenv(env)); v != "" {
			return v, nil
		}
		return "", fmt.Errorf("%w: payments.%s_env: the variable %s is unset or empty", ErrConfig, name, env)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%w: payments.%s_file: %w", ErrConfig, name, err)
	}
	if v := strings.TrimSpace(string(raw)); v != "" {
		return v, nil
	}
	return "", fmt.Errorf("%w: payments.%s_file: %s is empty", ErrConfig, name, file)
}
