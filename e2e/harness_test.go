// Package e2e starts the real zenmuxd binary and talks to it over HTTP on
// 127.0.0.1, the way an operator and a developer would.
package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"zenmux/internal/testca"
)

// binary is the zenmuxd built once for the whole package by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "zenmuxd-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "zenmuxd")
	build := exec.Command("go", "build", "-o", binary, "zenmux/cmd/zenmuxd")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build zenmuxd:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// sourcesRead reads, once, every file the binary is built from.
var sourcesRead sync.Once

// readSources reads the module's Go sources (tests aside), go.mod and
// go.sum from inside a test, where go test's cache records the files a
// test opens and runs the tests again when one changes. The binary these
// tests run is built by a child process, whose reads it does not see: an
// import of the server's packages was not enough, since code the linker
// drops from this test binary (a changed refusal in the proxy, say) left
// it unchanged, and "ok (cached)" answered for a server never tested.
func readSources() {
	root := ".."
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "results") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") || name == "go.mod" || name == "go.sum" {
			os.ReadFile(path) // read to be recorded; the bytes are not needed
		}
		return nil
	})
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	return freePorts(t, 1)[0]
}

// freePorts returns n distinct TCP ports on 127.0.0.1 that were free a
// moment ago: every listener stays open until all n are picked, so the
// kernel cannot hand the same port out twice (picking one at a time and
// closing it between picks did, once, in CI).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// Node is one zenmuxd process under test.
type Node struct {
	t        *testing.T
	ID       string
	RaftAddr string
	Dir      string // data dir
	Config   string // config file path
	Proxy    string // http://127.0.0.1:port
	Admin    string
	Token    string
	// Binary is the zenmuxd executable Start runs: the package's build
	// when empty (the upgrade test swaps it between restarts).
	Binary string
	// peer calls /internal/v1 as another node would: with cluster TLS,
	// a client that shows a certificate of the cluster CA.
	peer    *http.Client
	cmd     *exec.Cmd
	done    chan struct{} // closed when the running process has exited
	exitErr error         // its Wait error, valid once done is closed
	logPath string
}

// NodeOptions tune StartNode.
type NodeOptions struct {
	ID        string // node id, "n1" when empty
	Token     string // the admin token when it comes from [admin] token_file
	TestClock bool
	Extra     string // appended to the generated TOML
	// ClusterTLS gives the node a certificate of clusterCA and puts
	// tls_cert_file, tls_key_file and tls_ca_file in the [cluster] table
	// of Extra (one at the end if it has none); the admin API is then https.
	ClusterTLS bool
	// AdvertiseHost, when set, is the host of node.advertise_admin and
	// node.advertise_raft (the listeners stay on 127.0.0.1).
	AdvertiseHost string
	// Binary is Node.Binary: another zenmuxd build to run.
	Binary string
}

// StartNode writes a config with fresh loopback ports and a data dir under
// t.TempDir(), starts zenmuxd and waits until /readyz answers 200. A port
// taken between freePort and zenmuxd's bind (another package's tests run
// alongside) gets fresh ports and a fresh data dir, at most twice.
func StartNode(t *testing.T, o NodeOptions) *Node {
	t.Helper()
	sourcesRead.Do(readSources)
	dir := t.TempDir()
	n := &Node{t: t, Dir: filepath.Join(dir, "data"), Config: filepath.Join(dir, "zenmux.toml"), logPath: filepath.Join(dir, "zenmuxd.log")}
	id := o.ID
	if id == "" {
		id = "n1"
	}
	n.ID, n.Token, n.peer, n.Binary = id, o.Token, client, o.Binary
	scheme := "http"
	if o.ClusterTLS {
		scheme = "https"
		ca := clusterCA(t)
		cert, key := ca.Issue(t, id, nil)
		var paths []string
		for _, f := range []struct {
			name string
			data []byte
		}{{"node.pem", cert}, {"node.key", key}, {"ca.pem", ca.PEM}} {
			path := filepath.Join(dir, f.name)
			if err := os.WriteFile(path, f.data, 0o600); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, path)
		}
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		tr := clientTransport()
		tr.TLSClientConfig.Certificates = []tls.Certificate{pair}
		n.peer = &http.Client{Timeout: client.Timeout, Transport: tr}
		keys := fmt.Sprintf("tls_cert_file = %q\ntls_key_file = %q\ntls_ca_file = %q\n", paths[0], paths[1], paths[2])
		if strings.Contains(o.Extra, "[cluster]\n") {
			o.Extra = strings.Replace(o.Extra, "[cluster]\n", "[cluster]\n"+keys, 1)
		} else {
			o.Extra += "\n[cluster]\n" + keys
		}
	}
	t.Cleanup(func() {
		n.Kill()
		if t.Failed() {
			if b, err := os.ReadFile(n.logPath); err == nil {
				t.Logf("zenmuxd log:\n%s", tail(string(b), 4000))
			}
		}
	})
	for attempt := 1; ; attempt++ {
		ports := freePorts(t, 3)
		pp, ap, rp := ports[0], ports[1], ports[2]
		n.Proxy = fmt.Sprintf("http://127.0.0.1:%d", pp)
		n.Admin = fmt.Sprintf("%s://127.0.0.1:%d", scheme, ap)
		n.RaftAddr = fmt.Sprintf("127.0.0.1:%d", rp)
		advertise := ""
		if o.AdvertiseHost != "" {
			advertise = fmt.Sprintf("advertise_admin = \"%s:%d\"\nadvertise_raft = \"%s:%d\"\n", o.AdvertiseHost, ap, o.AdvertiseHost, rp)
		}
		cfg := fmt.Sprintf(`[node]
id = %q
data_dir = %q
listen = "127.0.0.1:%d"
admin_listen = "127.0.0.1:%d"
raft_listen = "127.0.0.1:%d"
test_clock = %v
%s%s
`, id, n.Dir, pp, ap, rp, o.TestClock, advertise, o.Extra)
		if err := os.WriteFile(n.Config, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		err := n.start()
		if err == nil {
			return n
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			t.Fatal(err)
		}
		t.Logf("%s: a port was taken before zenmuxd bound it; retrying with fresh ports", id)
		if err := os.RemoveAll(n.Dir); err != nil {
			t.Fatal(err)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Start (re)starts the process on the same config and data and waits for
// readiness.
func (n *Node) Start() {
	n.t.Helper()
	if err := n.start(); err != nil {
		n.t.Fatal(err)
	}
}

// errPortTaken: zenmuxd exited because one of its ports was in use.
var errPortTaken = errors.New("a port was in use")

// start runs the process and waits (bounded) until /readyz answers 200.
func (n *Node) start() error {
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	logStart, _ := logf.Seek(0, io.SeekEnd)
	bin := n.Binary
	if bin == "" {
		bin = binary
	}
	n.cmd = exec.Command(bin, "-config", n.Config)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	n.cmd.Env = append(os.Environ(), "ZENMUX_ADMIN_TOKEN=")
	if err := n.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	n.done = make(chan struct{})
	go func(c *exec.Cmd, f *os.File, done chan struct{}) {
		n.exitErr = c.Wait()
		f.Close()
		close(done)
	}(n.cmd, logf, n.done)
	deadline := time.Now().Add(30 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		select {
		case <-n.done:
			b, _ := os.ReadFile(n.logPath)
			b = b[min(int(logStart), len(b)):]
			if bytes.Contains(b, []byte("address already in use")) {
				return fmt.Errorf("%w: %s", errPortTaken, tail(string(b), 500))
			}
			return fmt.Errorf("zenmuxd exited before it was ready (%v); its log:\n%s", n.exitErr, tail(string(b), 4000))
		default:
		}
		resp, err := client.Get(n.Admin + "/readyz")
		if err != nil {
			last = err.Error()
		} else {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = string(body)
			if resp.StatusCode == 200 {
				if n.Token == "" {
					tok, err := os.ReadFile(filepath.Join(n.Dir, "admin.token"))
					if err != nil {
						return err
					}
					n.Token = strings.TrimSpace(string(tok))
				}
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("zenmuxd did not become ready within 30s; last /readyz: %s", last)
}

// Kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (n *Node) Kill() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		n.t.Errorf("zenmuxd did not die within 10s of SIGKILL")
	}
	n.cmd = nil
}

// Stop sends SIGTERM and waits up to 10 s for a clean exit.
func (n *Node) Stop() {
	n.t.Helper()
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
		n.cmd = nil
		if n.exitErr != nil {
			n.t.Fatalf("zenmuxd exited uncleanly after SIGTERM: %v", n.exitErr)
		}
	case <-time.After(10 * time.Second):
		n.t.Fatal("zenmuxd did not exit within 10s of SIGTERM")
	}
}

// Response is a decoded HTTP answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a generic object, numbers kept exact.
func (r *Response) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(r.Body))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("status %d, body is not a JSON object: %v: %s", r.Status, err, r.Body)
	}
	return m
}

var client = &http.Client{Timeout: 30 * time.Second, Transport: clientTransport()}

// clientTransport is Go's default transport that trusts clusterCA, the way
// curl --cacert would, and shows no certificate of its own.
func clientTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{
		// clusterCA exists only once a TLS test made it, so the chain is
		// verified here instead of through RootCAs.
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: verifyClusterCert,
	}
	return tr
}

func verifyClusterCert(raw [][]byte, _ [][]*x509.Certificate) error {
	ca := e2eCA.Load()
	if ca == nil || len(raw) == 0 {
		return errors.New("no cluster CA to verify the node's certificate against")
	}
	leaf, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return err
	}
	_, err = leaf.Verify(x509.VerifyOptions{Roots: ca.Pool, DNSName: "127.0.0.1"})
	return err
}

// e2eCA is the CA of every TLS cluster the tests start, made by the first
// test that needs one (clusterCA).
var (
	e2eCAOnce sync.Once
	e2eCA     atomic.Pointer[testca.CA]
)

func clusterCA(t *testing.T) *testca.CA {
	t.Helper()
	e2eCAOnce.Do(func() { e2eCA.Store(testca.New(t, "e2e cluster CA")) })
	ca := e2eCA.Load()
	if ca == nil {
		t.Fatal("the cluster CA could not be made")
	}
	return ca
}

// Do sends a request with the given headers ("Name: value") and body.
func Do(t *testing.T, method, url, body string, headers ...string) *Response {
	t.Helper()
	return doWith(t, client, method, url, body, headers...)
}

// doWith is Do through hc.
func doWith(t *testing.T, hc *http.Client, method, url, body string, headers ...string) *Response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// AdminDo calls the admin API with the node's token.
func (n *Node) AdminDo(method, path, body string, headers ...string) *Response {
	n.t.Helper()
	return Do(n.t, method, n.Admin+path, body, append([]string{"Authorization: Bearer " + n.Token}, headers...)...)
}

// Get walks a decoded JSON object by dotted path ("subscription.plan",
// "data.0.id") and renders the leaf as text; "null" for JSON null.
func Get(m any, path string) string {
	cur := m
	for _, p := range strings.Split(path, ".") {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[p]
		case []any:
			var i int
			if _, err := fmt.Sscan(p, &i); err != nil || i < 0 || i >= len(c) {
				return "<missing>"
			}
			cur = c[i]
		default:
			return "<missing>"
		}
	}
	if cur == nil {
		return "null"
	}
	return fmt.Sprint(cur)
}

// Expect checks path/value pairs on a decoded object.
func Expect(t *testing.T, m map[string]any, pairs ...string) {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if got := Get(m, pairs[i]); got != pairs[i+1] {
			t.Errorf("%s = %s, want %s", pairs[i], got, pairs[i+1])
		}
	}
}

// clusterToken mirrors node.clusterToken for the test cluster's secret.
func clusterToken(n *Node) string {
	m := hmac.New(sha256.New, []byte("test-cluster-secret-0123456789abcdef"))
	m.Write([]byte("zenmux internal v1"))
	return hex.EncodeToString(m.Sum(nil))
}
