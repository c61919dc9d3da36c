package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The binary starts with a config, serves health on both listeners, and
// refuses the admin API without the token.
func TestSmokeStartHealthAuth(t *testing.T) {
	n := StartNode(t, NodeOptions{})
	for _, base := range []string{n.Proxy, n.Admin} {
		if r := Do(t, "GET", base+"/healthz", ""); r.Status != 200 {
			t.Fatalf("%s/healthz: %d", base, r.Status)
		}
	}
	r := Do(t, "GET", n.Admin+"/admin/v1/plans", "")
	if r.Status != 401 {
		t.Fatalf("no token: %d", r.Status)
	}
	Expect(t, r.JSON(t), "error.code", "unauthorized")
	r = n.AdminDo("GET", "/admin/v1/plans", "")
	Expect(t, r.JSON(t), "data.1.id", "pro", "data.1.usd_equivalent", "30.02")
}

// A config with an unknown key or a bad value stops the binary before it
// starts anything, with exit code 2 and a message naming the key.
func TestBadConfigRefused(t *testing.T) {
	for _, c := range []struct{ toml, want string }{
		{"[node]\nlisen = \"127.0.0.1:1\"\n", `unknown key "node.lisen"`},
		{"[accounting]\nack = \"maybe\"\n", "accounting.ack"},
		{"[flow]\nusd_per_flow = -1\n", "flow.usd_per_flow"},
	} {
		path := filepath.Join(t.TempDir(), "bad.toml")
		if err := os.WriteFile(path, []byte(c.toml), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(binary, "-config", path).CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), c.want) {
			t.Errorf("%q: exit %v, output %q; want exit 2 naming %s", c.toml, err, out, c.want)
		}
	}
}
