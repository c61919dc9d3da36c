package node

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"zenmux/config"
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
