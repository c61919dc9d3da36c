package catalog

import (
	"errors"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"zenmux/ledger"
)

// Every slug of the seed list (testdata/seed-models.tsv, a verbatim copy)
// is in the catalog, in the same order, with its display name, plans and
// modality (P3), and the catalog holds nothing else.
func TestSeedModelsPresent(t *testing.T) {
	b, err := os.ReadFile("testdata/seed-models.tsv")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if lines[0] != "slug\tname\tplans\tmodality" {
		t.Fatalf("seed header %q", lines[0])
	}
	models := Models()
	if len(lines)-1 != 152 || len(models) != 152 {
		t.Fatalf("seed has %d slugs and the catalog %d, want 152 each", len(lines)-1, len(models))
	}
	for i, l := range lines[1:] {
		c := strings.Split(l, "\t")
		m, ok := Model(c[0])
		switch {
		case !ok:
			t.Errorf("%s is not in the catalog", c[0])
		case models[i].ID != c[0]:
			t.Errorf("catalog entry %d is %s, the seed's is %s", i, models[i].ID, c[0])
		case m.Name != c[1] || strings.Join(m.Plans, ",") != c[2] || m.Modality != c[3]:
			t.Errorf("%s: name %q plans %v modality %q, seed says %q %q %q", c[0], m.Name, m.Plans, m.Modality, c[1], c[2], c[3])
		case m.Provider != "" || m.Upstream != "":
			t.Errorf("%s names provider %q upstream %q: routes decide", c[0], m.Provider, m.Upstream)
		}
	}
}

// Every priced row names the URL its price came from and the date it was
// checked; every model without a price the ledger can charge is Unpriced,
// and a priced one is within the ledger's bounds, so the seed takes it.
func TestPricesSourcedAndUnpricedMarked(t *testing.T) {
	d := loaded()
	priced := 0
	for _, e := range d.entries {
		m, p := e.model, e.price
		if p.any() {
			if !regexp.MustCompile(`^https?://[^ /]+\.[^ /]+/`).MatchString(p.source) {
				t.Errorf("%s: source %q is not a URL", m.ID, p.source)
			}
			if _, err := time.Parse(time.DateOnly, p.checked); err != nil {
				t.Errorf("%s: checked %q is not a date", m.ID, p.checked)
			}
		}
		if m.Unpriced != !p.chargeable() {
			t.Errorf("%s: Unpriced %v, but its prices are %+v", m.ID, m.Unpriced, p)
		}
		if m.Unpriced {
			if m.InputMicroUSDPerMTok|m.OutputMicroUSDPerMTok|m.CacheReadMicroUSDPerM|m.CacheWriteMicroUSDPerM|m.ImageMicroUSD|m.RequestMicroUSD != 0 {
				t.Errorf("%s is unpriced with a price: %+v", m.ID, m)
			}
			continue
		}
		priced++
		for _, v := range []int64{m.InputMicroUSDPerMTok, m.OutputMicroUSDPerMTok, m.CacheReadMicroUSDPerM, m.CacheWriteMicroUSDPerM} {
			if v < 0 || v > ledger.MaxTokenMicroUSD {
				t.Errorf("%s: token price %d µUSD is out of the ledger's range", m.ID, v)
			}
		}
		if m.ImageMicroUSD < 0 || m.ImageMicroUSD > ledger.MaxItemMicroUSD {
			t.Errorf("%s: image price %d µUSD is out of the ledger's range", m.ID, m.ImageMicroUSD)
		}
	}
	t.Logf("%d of %d models priced", priced, len(d.entries))
}

// Every model has a route: the vendor's preset first when one serves it,
// OpenRouter last by the model's own id; a vendor route names a vendor
// preset, and an unknown id has none.
func TestEveryModelHasRoute(t *testing.T) {
	for _, m := range Models() {
		r := Route(m.ID)
		if len(r) == 0 || r[len(r)-1] != (RouteEntry{Preset: OpenRouter, Upstream: m.ID}) {
			t.Errorf("%s: route %v does not end with OpenRouter by its id", m.ID, r)
			continue
		}
		for _, e := range r[:len(r)-1] {
			if _, ok := PresetByName(e.Preset); !ok || e.Preset == OpenRouter || e.Upstream == "" {
				t.Errorf("%s: route entry %+v", m.ID, e)
			}
		}
	}
	want := map[string][]RouteEntry{
		"anthropic/claude-opus-4.6":  {{"anthropic", "claude-opus-4-6"}, {OpenRouter, "anthropic/claude-opus-4.6"}},
		"openai/gpt-5.4":             {{"openai", "gpt-5.4"}, {OpenRouter, "openai/gpt-5.4"}},
		"google/gemini-2.5-pro":      {{"gemini", "gemini-2.5-pro"}, {OpenRouter, "google/gemini-2.5-pro"}},
		"deepseek/deepseek-reasoner": {{"deepseek", "deepseek-reasoner"}, {OpenRouter, "deepseek/deepseek-reasoner"}},
		"x-ai/grok-4.1-fast":         {{"xai", "grok-4-1-fast-reasoning"}, {OpenRouter, "x-ai/grok-4.1-fast"}},
		"moonshotai/kimi-k2.6":       {{"moonshot", "kimi-k2.6"}, {OpenRouter, "moonshotai/kimi-k2.6"}},
		"z-ai/glm-4.7":               {{"zai", "glm-4.7"}, {OpenRouter, "z-ai/glm-4.7"}},
		"qwen/qwen3-max":             {{"qwen", "qwen3-max"}, {OpenRouter, "qwen/qwen3-max"}},
		"minimax/minimax-m2.5":       {{"minimax", "MiniMax-M2.5"}, {OpenRouter, "minimax/minimax-m2.5"}},
		"baidu/ernie-x1.1-preview":   {{OpenRouter, "baidu/ernie-x1.1-preview"}},
		"nope/model":                 nil,
	}
	for slug, w := range want {
		if got := Route(slug); !slices.Equal(got, w) {
			t.Errorf("Route(%s) = %v, want %v", slug, got, w)
		}
	}
}

// The presets the product promises, each with its kind, base URL, key
// variable and flags.
func TestPresets(t *testing.T) {
	want := map[string]Preset{
		"openai":    {Name: "openai", Kind: "openai", BaseURL: "https://api.openai.com/v1", KeyEnv: "OPENAI_API_KEY"},
		"anthropic": {Name: "anthropic", Kind: "anthropic", BaseURL: "https://api.anthropic.com", KeyEnv: "ANTHROPIC_API_KEY"},
		"gemini":    {Name: "gemini", Kind: "gemini", BaseURL: "https://generativelanguage.googleapis.com", KeyEnv: "GEMINI_API_KEY"},
		"deepseek":  {Name: "deepseek", Kind: "openai", BaseURL: "https://api.deepseek.com", KeyEnv: "DEEPSEEK_API_KEY", NoResponses: true},
		"xai":       {Name: "xai", Kind: "openai", BaseURL: "https://api.x.ai/v1", KeyEnv: "XAI_API_KEY"},
		"moonshot":  {Name: "moonshot", Kind: "openai", BaseURL: "https://api.moonshot.ai/v1", KeyEnv: "MOONSHOT_API_KEY", NoResponses: true},
		"zai":       {Name: "zai", Kind: "openai", BaseURL: "https://api.z.ai/api/paas/v4", KeyEnv: "ZAI_API_KEY", NoResponses: true},
		"qwen":      {Name: "qwen", Kind: "openai", BaseURL: "https://dashscope-intl.aliyuncs.com/compatible-mode/v1", KeyEnv: "DASHSCOPE_API_KEY", NoResponses: true},
		"minimax":   {Name: "minimax", Kind: "openai", BaseURL: "https://api.minimax.io/v1", KeyEnv: "MINIMAX_API_KEY", NoResponses: true},
		OpenRouter:  {Name: OpenRouter, Kind: "openai", BaseURL: "https://openrouter.ai/api/v1", KeyEnv: "OPENROUTER_API_KEY", NoResponses: true},
	}
	all := Presets()
	if len(all) != len(want) || all[len(all)-1].Name != OpenRouter {
		t.Fatalf("presets %v", all)
	}
	for _, p := range all {
		if got, ok := PresetByName(p.Name); !ok || got != want[p.Name] {
			t.Errorf("preset %s = %+v, want %+v", p.Name, got, want[p.Name])
		}
	}
	if _, ok := PresetByName("nope"); ok {
		t.Error("an unknown preset was found")
	}
}

// Doubao models answer under bytedance/ and volcengine/ alike (P3).
func TestDoubaoAliases(t *testing.T) {
	for slug, want := range map[string][]string{
		"bytedance/doubao-seed-2.0-pro":     {"volcengine/doubao-seed-2.0-pro"},
		"volcengine/doubao-seed-1-6-vision": {"bytedance/doubao-seed-1-6-vision"},
		"bytedance/doubao-seedance-2.0":     {"volcengine/doubao-seedance-2.0"},
		"openai/gpt-5.4":                    nil,
	} {
		if got := Aliases(slug); !slices.Equal(got, want) {
			t.Errorf("Aliases(%s) = %v, want %v", slug, got, want)
		}
	}
	n := 0
	for _, m := range Models() {
		if strings.Contains(m.ID, "/doubao-") {
			n++
			if len(Aliases(m.ID)) != 1 {
				t.Errorf("%s has aliases %v", m.ID, Aliases(m.ID))
			}
		} else if Aliases(m.ID) != nil {
			t.Errorf("%s is not a Doubao model but has aliases %v", m.ID, Aliases(m.ID))
		}
	}
	if n != 10 {
		t.Errorf("%d Doubao models, want 10", n)
	}
}

// Dollars become micro-dollars exactly, digit by digit; anything that is
// not a plain decimal with at most six decimals is refused.
func TestParseMicroUSD(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		err  string
	}{
		{"0", 0, ""},
		{"3", 3_000000, ""},
		{"0.075", 75000, ""},
		{"18.75", 18_750000, ""},
		{"0.000001", 1, ""},
		{"1000000", 1_000_000_000000, ""},
		{"0.1", 100000, ""},
		{"007.50", 7_500000, ""},
		{"0.0000001", 0, "more than 6 decimals"},
		{"1000000.000001", 0, "above $1,000,000"},
		{"10000000", 0, "above $1,000,000"},
		{".5", 0, "digits before the point"},
		{"5.", 0, "digits after the point"},
		{"-1", 0, "only digits"},
		{"+1", 0, "only digits"},
		{"1e3", 0, "only digits"},
		{"1,5", 0, "only digits"},
		{" 1", 0, "only digits"},
		{"1.2.3", 0, "only digits"},
		{"$1", 0, "only digits"},
	} {
		got, err := parseMicroUSD(c.in)
		switch {
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("parseMicroUSD(%q) = %d, %v; want %d", c.in, got, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("parseMicroUSD(%q) = %d, %v; want an error with %q", c.in, got, err, c.err)
		}
	}
}

// A bad prices.tsv cell is refused with its file, line and column.
func TestPriceRowErrors(t *testing.T) {
	r := func(cells ...string) row {
		return row{file: "prices.tsv", line: 7, columns: priceColumns, cells: cells}
	}
	for _, c := range []struct {
		row  row
		want string
	}{
		{r("a/b", "1", "2.5e1", "", "", "", "", "https://x.example/p", "2026-01-02"),
			`prices.tsv line 7 column 3 (output_usd_per_mtok): "2.5e1" is not a decimal number`},
		{r("a/b", "1", "2", "", "", "", "", "vendor page", "2026-01-02"),
			`prices.tsv line 7 column 8 (source): a priced row's source must start with its URL`},
		{r("a/b", "", "", "", "", "", "0.4", "https://x.example/p", "last week"),
			`prices.tsv line 7 column 9 (checked): a priced row's checked must be a date`},
		{r("a/b", "", "", "", "", "", "", "", ""),
			`prices.tsv line 7 column 8 (source): a row without a price must say "not found: "`},
	} {
		_, err := parsePrice(c.row)
		if !errors.Is(err, ErrData) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parsePrice(%v) = %v, want %q", c.row.cells, err, c.want)
		}
	}
	p, err := parsePrice(r("a/b", "", "", "", "", "", "0.4", "https://x.example/p", "2026-01-02"))
	if err != nil || p.chargeable() || !p.any() || p.videoPerSecond.v != 400000 {
		t.Errorf("a video-only price: %+v %v (priced, but not chargeable by the ledger)", p, err)
	}
}
