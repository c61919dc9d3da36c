package config

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"zenmux/internal/testca"
)

// FuzzParse feeds arbitrary file contents to the loader (Parse, and Load
// of the same bytes in a file when Parse accepts them). Whatever the input:
//   - it does not panic, and returns a config or an error, never both;
//   - an error is "config: "-prefixed on every line (errors.Join puts one
//     problem on each line), and when the file is well-formed TOML each
//     line names the offending key: `unknown key "…"`, a key path
//     (`providers[1].base_url: …`), or the decoder's `(last key "…")`;
//   - an accepted config passes Validate, Load reads the same, and
//     rendered back to TOML it parses to the same config again.
//
// Seeds: zenmux.example.toml, every string config_test.go and this file
// build from literals and constants (the valid and the bad configs alike,
// and the regression cases below), and cluster TLS configs over real files.
//
//	go test ./config -run '^$' -fuzz '^FuzzParse$' -fuzztime 3m -parallel 1
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("../zenmux.example.toml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	// The example less its comments: the mutator does better on 2 KiB
	// than on 8.
	var compact []string
	for _, line := range strings.Split(string(example), "\n") {
		if line, _, _ = strings.Cut(line, "#"); strings.TrimSpace(line) != "" {
			compact = append(compact, strings.TrimSpace(line))
		}
	}
	f.Add([]byte(strings.Join(compact, "\n")))
	for _, s := range testFileStrings(f, "config_test.go", "fuzz_test.go") {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	ca := testca.New(f, "fuzz CA")
	cert, key := ca.Issue(f, "node", nil)
	certPath, keyPath, caPath := filepath.Join(dir, "node.pem"), filepath.Join(dir, "node.key"), filepath.Join(dir, "ca.pem")
	for path, data := range map[string][]byte{certPath: cert, keyPath: key, caPath: ca.PEM} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			f.Fatal(err)
		}
	}
	f.Add([]byte(clusterTOML("s", certPath, keyPath, caPath)))
	f.Add([]byte(clusterTOML("s", certPath, "", caPath)))
	f.Add([]byte(clusterTOML("s", caPath, keyPath, certPath)))

	file := filepath.Join(dir, "fuzz.toml")
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if (c == nil) == (err == nil) {
			t.Fatalf("Parse = %v, %v: want exactly one of a config and an error", c, err)
		}
		if err != nil {
			checkConfigError(t, data, err)
			return
		}
		checkAccepted(t, data, c)
		// Load is ReadFile and Parse; checked on accepted files only, as
		// the TOML decoder is slow enough (≈0.7 ms for the example) that
		// every exec counts.
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if lc, err := Load(file); err != nil || !reflect.DeepEqual(lc, c) {
			t.Fatalf("Load = %+v, %v; Parse = %+v", lc, err, c)
		}
	})
}

// keyLine is an error line that names a key: an unknown key, a key path
// (`plans[2].price_usd: …`, `cluster.join[0]: …`), or a decoder error with
// the key it was at.
var keyLine = regexp.MustCompile(`^config: (unknown key "|[a-z_0-9]+(\[\d+\])?(\.[a-z_0-9]+(\[\d+\])?)*: |toml: line \d+ \(last key ")`)

func checkConfigError(t *testing.T, data []byte, err error) {
	t.Helper()
	msg := err.Error()
	for _, line := range strings.Split(msg, "\n") {
		if !strings.HasPrefix(line, "config: ") {
			t.Fatalf("error line %q lacks the \"config: \" prefix; whole error:\n%s", line, msg)
		}
		if !keyLine.MatchString(line) {
			// Only a syntax error may name no key.
			var tree map[string]any
			if toml.Unmarshal(data, &tree) == nil {
				t.Fatalf("error line %q on well-formed TOML names no key; whole error:\n%s", line, msg)
			}
		}
	}
}

func checkAccepted(t *testing.T, data []byte, c *Config) {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatalf("Parse accepted a config that Validate refuses: %v", err)
	}
	again, err := Parse(data)
	if err != nil || !reflect.DeepEqual(again, c) {
		t.Fatalf("Parse is not deterministic: %+v, %v; first %+v", again, err, c)
	}
	out := render(t, c)
	back, err := Parse(out)
	if err != nil {
		t.Fatalf("rendered config does not parse: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(normalize(back), normalize(c)) {
		t.Fatalf("rendered config parses differently:\n%+v\nwant\n%+v\nrendered:\n%s", back, c, out)
	}
}

// render writes c as a TOML file Parse reads back: the encoder's output,
// less the echo-only keys it writes (as zero) for other provider kinds,
// which Parse refuses even at 0.
func render(t *testing.T, c *Config) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(c); err != nil {
		t.Fatalf("encode %+v: %v", c, err)
	}
	var tree map[string]any
	if _, err := toml.Decode(buf.String(), &tree); err != nil {
		t.Fatalf("encoded config is not TOML: %v\n%s", err, buf.Bytes())
	}
	if ps, ok := tree["providers"].([]map[string]any); ok {
		for _, p := range ps {
			if p["kind"] != KindEcho {
				delete(p, "latency")
				delete(p, "tokens_per_second")
			}
		}
	}
	// A [[models]] entry changes only the keys it gives (Model.Over), so
	// the keys the encoder writes as zero are not written.
	if ms, ok := tree["models"].([]map[string]any); ok {
		for i, m := range ms {
			for key := range m {
				if !c.Models[i].given(key) {
					delete(m, key)
				}
			}
		}
	}
	buf.Reset()
	if err := toml.NewEncoder(&buf).Encode(tree); err != nil {
		t.Fatalf("encode %v: %v", tree, err)
	}
	return buf.Bytes()
}

// normalize makes empty and nil slices alike: TOML cannot tell them apart.
func normalize(c *Config) *Config {
	cp := *c
	if len(cp.Cluster.Join) == 0 {
		cp.Cluster.Join = nil
	}
	if len(cp.Plans) == 0 {
		cp.Plans = nil
	}
	if len(cp.Models) == 0 {
		cp.Models = nil
	}
	return &cp
}

// testFileStrings returns every string expression of the named Go files
// of this directory that is built from literals and the files' constants
// (so `validBase + "[[models]]…"` too), for seeding.
func testFileStrings(f *testing.F, names ...string) []string {
	f.Helper()
	fset := token.NewFileSet()
	var files []*ast.File
	consts := map[string]ast.Expr{}
	for _, name := range names {
		file, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			f.Fatal(err)
		}
		files = append(files, file)
		for _, d := range file.Decls {
			if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.CONST {
				for _, s := range g.Specs {
					vs := s.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if i < len(vs.Values) {
							consts[n.Name] = vs.Values[i]
						}
					}
				}
			}
		}
	}
	var eval func(ast.Expr) (string, bool)
	eval = func(e ast.Expr) (string, bool) {
		switch e := e.(type) {
		case *ast.BasicLit:
			if e.Kind != token.STRING {
				return "", false
			}
			s, err := strconv.Unquote(e.Value)
			return s, err == nil
		case *ast.ParenExpr:
			return eval(e.X)
		case *ast.Ident:
			if v, ok := consts[e.Name]; ok {
				return eval(v)
			}
		case *ast.BinaryExpr:
			if e.Op == token.ADD {
				x, okx := eval(e.X)
				y, oky := eval(e.Y)
				return x + y, okx && oky
			}
		}
		return "", false
	}
	seen := map[string]bool{}
	var out []string
	for _, file := range files {
		ast.Inspect(file, func(n ast.Node) bool {
			e, ok := n.(ast.Expr)
			if !ok {
				return true
			}
			if s, ok := eval(e); ok && !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
			return true
		})
	}
	if len(out) < 50 {
		f.Fatalf("found only %d seed strings in %v", len(out), names)
	}
	return out
}

// FuzzParse found that the decoder matches keys ignoring case and counts
// such a key as decoded: `Burst = 80` set plans[0].burst past the
// unknown-key check, and `[[plAns]]` beside `[[plans]]` both filled Plans
// in map order, so Parse of the same file gave burst 7001 or 80 from one
// call to the next. Keys must now match a tag exactly.
func TestParseRefusesKeysInAnotherCase(t *testing.T) {
	for _, tt := range []struct{ toml, key string }{
		{"[[plAns]]\nid = \"p\"\nrpm = 1\nburst = 7001\n[[plans]]\nid = \"p\"\nrpm = 1\nburst = 80\n", `unknown key "plAns"`},
		{"[[plans]]\nid = \"p\"\nrpm = 1\nBurst = 1\n", `unknown key "plans[0].Burst"`},
		{"[Node]\nid = \"x\"\n", `unknown key "Node"`},
		{"[node]\nID = \"x\"\n", `unknown key "node.ID"`},
		{echoEntry + "[[providers]]\nname = \"oa\"\nkind = \"openai\"\nbase_url = \"https://x/v1\"\nLatency = \"0s\"\n", `unknown key "providers[1].Latency"`},
		{"providers = [{Name = \"e\", kind = \"echo\"}]\n", `unknown key "providers.Name"`},
	} {
		for range 20 { // the old failure depended on map order
			c, err := Parse([]byte(tt.toml))
			if err == nil || c != nil || !strings.Contains(err.Error(), tt.key) {
				t.Fatalf("Parse(%q) = %+v, %v; want an error naming %s", tt.toml, c, err, tt.key)
			}
		}
	}
}

// A value holding a control character (here a TOML-escaped newline) came
// back raw in some errors (net.SplitHostPort's, os.ReadFile's), so one
// problem spread over two lines, the second with neither "config: " nor
// its key.
func TestParseErrorKeepsValueOnOneLine(t *testing.T) {
	for _, tt := range []struct{ toml, key string }{
		{"[node]\nlisten = \"a\\nb\"\n", "node.listen"},
		{"[cluster]\nsecret_file = \"s\"\njoin = [\"x\\r\\ny\"]\n", "cluster.join[0]"},
		{clusterTOML("s", "no\nsuch\tcert", "k", "c"), "cluster.tls_cert_file"},
	} {
		_, err := Parse([]byte(tt.toml))
		if err == nil {
			t.Fatalf("Parse(%q) accepted", tt.toml)
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			if !strings.HasPrefix(line, "config: ") {
				t.Errorf("Parse(%q): error line %q lacks the \"config: \" prefix", tt.toml, line)
			}
		}
		if !strings.Contains(err.Error(), tt.key) {
			t.Errorf("Parse(%q) = %v; want it to name %s", tt.toml, err, tt.key)
		}
	}
}

// A peer address with a space, a control character or a slash in its host
// is refused where it is configured, as the admin API refuses it in a
// member (a join list entry "a\nb:1" was accepted and failed only when
// dialled).
func TestPeerHostRefusesSpaceAndControl(t *testing.T) {
	for _, tt := range []struct{ toml, key string }{
		{"[cluster]\nsecret_file = \"s\"\njoin = [\"a\\nb:1\"]\n", "cluster.join[0]"},
		{"[cluster]\nsecret_file = \"s\"\njoin = [\"a b:1\"]\n", "cluster.join[0]"},
		{"[cluster]\nsecret_file = \"s\"\njoin = [\"a/b:1\"]\n", "cluster.join[0]"},
		{"[node]\nadvertise_raft = \"node\\t1:7001\"\n", "node.advertise_raft"},
	} {
		_, err := Parse([]byte(tt.toml))
		if err == nil || !strings.Contains(err.Error(), tt.key+`: "`) || !strings.Contains(err.Error(), "the host holds a space, a control character or a slash") {
			t.Errorf("Parse(%q) = %v; want %s refused for its host", tt.toml, err, tt.key)
		}
	}
}
