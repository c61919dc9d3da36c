package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// runBinary runs the built zenmuxd with args (at most 30 s) and returns
// its stdout, stderr and exit code.
func runBinary(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	sourcesRead.Do(readSources)
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "ZENMUX_ADMIN_TOKEN=")
	cmd.WaitDelay = time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// writeFile writes data to name under dir (0600) and returns its path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCheckGoodConfig: `zenmuxd check` accepts a clustered config with
// TLS, secrets and a provider key file, says "ok" and exits 0 without
// creating the data dir or binding its listeners (one is held here).
func TestCheckGoodConfig(t *testing.T) {
	dir := t.TempDir()
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	ca := clusterCA(t)
	cert, key := ca.Issue(t, "n1", nil)
	data := filepath.Join(dir, "data")
	ports := freePorts(t, 2)
	cfg := fmt.Sprintf(`[node]
id = "n1"
data_dir = %q
listen = %q
admin_listen = "127.0.0.1:%d"
raft_listen = "127.0.0.1:%d"

[admin]
token_file = %q

[cluster]
bootstrap = true
secret_file = %q
tls_cert_file = %q
tls_key_file = %q
tls_ca_file = %q

[[providers]]
name = "up"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_file = %q
`, data, held.Addr().String(), ports[0], ports[1],
		writeFile(t, dir, "admin.token", []byte("0123456789abcdef0123456789abcdef\n")),
		writeFile(t, dir, "cluster.secret", []byte("fedcba9876543210fedcba9876543210\n")),
		writeFile(t, dir, "node.pem", cert), writeFile(t, dir, "node.key", key), writeFile(t, dir, "ca.pem", ca.PEM),
		writeFile(t, dir, "up.key", []byte("sk-upstream\n")))
	path := writeFile(t, dir, "zenmux.toml", []byte(cfg))
	stdout, stderr, code := runBinary(t, "check", "-config", path)
	if code != 0 || stdout != "ok\n" || stderr != "" {
		t.Fatalf("check = %d, stdout %q, stderr %q; want 0, \"ok\\n\", \"\"", code, stdout, stderr)
	}
	if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("check touched the data dir: stat = %v", err)
	}
}

// TestCheckBadConfig: each problem on its own line, config's own by their
// indexed keys, then those of the files a start reads (a cluster secret
// too short, a key not of its certificate); exit 1. A provider without
// its key is a warning on stderr, as a start logs it and serves without.
func TestCheckBadConfig(t *testing.T) {
	dir := t.TempDir()
	bad := `[[providers]]
name = "echo"
kind = "echo"

[[providers]]
name = "up"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
max_concurrent = 0

[[providers]]
name = "up2"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
idle_timeout = "0s"
`
	stdout, _, code := runBinary(t, "check", "-config", writeFile(t, dir, "bad.toml", []byte(bad)))
	want := "config: providers[1].max_concurrent: 0 must be in [1, 100000]\n" +
		"config: providers[2].idle_timeout: \"0s\" must be > 0 and ≤ 1h0m0s\n"
	if code != 1 || stdout != want {
		t.Fatalf("check = %d, stdout %q; want 1, %q", code, stdout, want)
	}

	ca := clusterCA(t)
	cert, _ := ca.Issue(t, "n1", nil)
	_, otherKey := ca.Issue(t, "n2", nil)
	ports := freePorts(t, 3)
	files := fmt.Sprintf(`[node]
data_dir = %q
listen = "127.0.0.1:%d"
admin_listen = "127.0.0.1:%d"
raft_listen = "127.0.0.1:%d"

[cluster]
secret_file = %q
tls_cert_file = %q
tls_key_file = %q
tls_ca_file = %q

[[providers]]
name = "up"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "ZENMUX_CHECK_TEST_UNSET"
`, filepath.Join(dir, "data"), ports[0], ports[1], ports[2],
		writeFile(t, dir, "cluster.secret", []byte("short\n")),
		writeFile(t, dir, "node.pem", cert), writeFile(t, dir, "node.key", otherKey), writeFile(t, dir, "ca.pem", ca.PEM))
	stdout, stderr, code := runBinary(t, "check", "-config", writeFile(t, dir, "files.toml", []byte(files)))
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if code != 1 || len(lines) != 2 ||
		!strings.HasPrefix(lines[0], "cluster tls: cluster.tls_key_file: "+filepath.Join(dir, "node.key")+": tls: private key does not match public key") ||
		lines[1] != "cluster.secret_file: cluster secret in "+filepath.Join(dir, "cluster.secret")+" is shorter than 16 characters" {
		t.Fatalf("check = %d, stdout:\n%s", code, stdout)
	}
	wantWarn := `warning: providers[0].api_key_env (provider "up"): no API key: the variable ZENMUX_CHECK_TEST_UNSET is unset or empty; its models answer 503 model_unavailable on this node` + "\n"
	if stderr != wantWarn {
		t.Fatalf("stderr %q, want %q", stderr, wantWarn)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("check touched the data dir: stat = %v", err)
	}
}

// TestVersion: `zenmuxd version` prints one line naming the Go version
// it was built with, and exits 0.
func TestVersion(t *testing.T) {
	stdout, stderr, code := runBinary(t, "version")
	if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "zenmuxd ") ||
		!strings.HasSuffix(stdout, ", "+runtime.Version()+"\n") || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("version = %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
