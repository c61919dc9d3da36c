package node

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"zenmux/config"
	"zenmux/ledger"
	"zenmux/proxy"
)

// A provider whose api_key_env variable is unset or empty is reported at
// start, by name and variable, and left out, with the reason its models
// give (503 model_unavailable); one with its key and one with no
// api_key_env (a local upstream without auth) are built.
func TestProviderWithoutKeyReportedAtStart(t *testing.T) {
	cfg, err := config.Parse([]byte(`
[[providers]]
name = "openai"
kind = "openai"
base_url = "https://api.openai.com/v1"
api_key_env = "ZENMUX_TEST_OPENAI_KEY"

[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "https://api.anthropic.com"
api_key_env = "ZENMUX_TEST_ANTHROPIC_KEY"

[[providers]]
name = "blank"
kind = "openai"
base_url = "https://example.com/v1"
api_key_env = "ZENMUX_TEST_BLANK_KEY"

[[providers]]
name = "local"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
`))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"ZENMUX_TEST_ANTHROPIC_KEY": "sk-ant-test", "ZENMUX_TEST_BLANK_KEY": "  \n"}
	var logs bytes.Buffer
	providers, problems, err := buildProviders(cfg, func(k string) string { return env[k] }, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"anthropic", "local"} {
		if providers[name] == nil {
			t.Errorf("provider %q not built", name)
		}
	}
	for _, name := range []string{"openai", "blank"} {
		if providers[name] != nil || problems[name] != "has no API key on this node" {
			t.Errorf("provider %q: built %v, problem %q", name, providers[name] != nil, problems[name])
		}
	}
	if len(problems) != 2 {
		t.Errorf("problems %v, want openai and blank only", problems)
	}
	var reported []string
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var e map[string]string
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if e["level"] != "error" || !strings.Contains(e["message"], "no API key") {
			t.Errorf("log line %s", line)
		}
		reported = append(reported, e["provider"]+"="+e["api_key_env"])
	}
	if strings.Join(reported, ",") != "openai=ZENMUX_TEST_OPENAI_KEY,blank=ZENMUX_TEST_BLANK_KEY" {
		t.Errorf("reported %v", reported)
	}
}

// Preset-backed providers are built with the key from their variable or
// file; a key file that is missing or blank is reported like an unset
// variable. Routes list, for a catalog model, the configured providers of
// each preset on its route in order (vendor first, OpenRouter last), and
// for a model that names its provider, that provider alone.
func TestPresetProvidersAndRoutes(t *testing.T) {
	dir := t.TempDir()
	keyFile, blankFile := filepath.Join(dir, "or.key"), filepath.Join(dir, "blank.key")
	if err := os.WriteFile(keyFile, []byte("  sk-or-test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blankFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(`
[[providers]]
name = "echo"
kind = "echo"

[[providers]]
preset = "anthropic"

[[providers]]
preset = "openrouter"
api_key_file = "` + keyFile + `"

[[providers]]
preset = "openrouter"
name = "openrouter-backup"
api_key_file = "` + blankFile + `"

[[providers]]
preset = "deepseek"
api_key_file = "` + filepath.Join(dir, "missing.key") + `"

[[models]]
id = "anthropic/claude-haiku-4.5"
provider = "echo"
upstream = "echo"
`))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"ANTHROPIC_API_KEY": "sk-ant-test"}
	providers, problems, err := buildProviders(cfg, func(k string) string { return env[k] }, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"echo", "anthropic", "openrouter"} {
		if providers[name] == nil {
			t.Errorf("provider %q not built", name)
		}
	}
	want := map[string]string{"openrouter-backup": "has no API key on this node", "deepseek": "has no API key on this node"}
	if !reflect.DeepEqual(problems, want) {
		t.Errorf("problems %v, want %v", problems, want)
	}

	routes := modelRoutes(cfg)
	models := map[string]ledger.Model{}
	for _, m := range cfg.SeedModels() {
		models[m.ID] = m
	}
	for id, want := range map[string][]proxy.Route{
		"anthropic/claude-opus-4.6": {{Provider: "anthropic", Upstream: "claude-opus-4-6"},
			{Provider: "openrouter", Upstream: "anthropic/claude-opus-4.6"}, {Provider: "openrouter-backup", Upstream: "anthropic/claude-opus-4.6"}},
		"deepseek/deepseek-chat": {{Provider: "deepseek", Upstream: "deepseek-chat"},
			{Provider: "openrouter", Upstream: "deepseek/deepseek-chat"}, {Provider: "openrouter-backup", Upstream: "deepseek/deepseek-chat"}},
		"baidu/ernie-x1.1-preview": {{Provider: "openrouter", Upstream: "baidu/ernie-x1.1-preview"},
			{Provider: "openrouter-backup", Upstream: "baidu/ernie-x1.1-preview"}},
		"openai/gpt-5.4":             {{Provider: "openrouter", Upstream: "openai/gpt-5.4"}, {Provider: "openrouter-backup", Upstream: "openai/gpt-5.4"}},
		"anthropic/claude-haiku-4.5": {{Provider: "echo", Upstream: "echo"}},
		ledger.EchoModelID:           {{Provider: "echo", Upstream: "echo"}},
	} {
		m := models[id]
		got := routes(m.ID)
		if m.Provider != "" { // the proxy serves it by its own provider alone, not asking Routes
			got = []proxy.Route{{Provider: m.Provider, Upstream: m.Upstream}}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("routes(%s) = %v, want %v", id, got, want)
		}
	}
}
